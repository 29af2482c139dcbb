//! Where things are in the file: the section a key belongs to, and the key an unknown path
//! names.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Problem;
use crate::config::raw::RawSite;

/// The table headers of the file, by position: a key belongs to the last header before it.
pub(super) fn headers(raw: &RawSite) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut add = |span: Option<Range<usize>>, name: &str| {
        if let Some(span) = span {
            out.push((span.start, name.to_string()));
        }
    };
    add(raw.primary.as_ref().map(Spanned::span), "[primary]");
    add(raw.backup.as_ref().map(Spanned::span), "[backup]");
    add(raw.relay.as_ref().map(Spanned::span), "[relay]");
    add(raw.takeover.as_ref().map(Spanned::span), "[takeover]");
    add(raw.vip.as_ref().map(Spanned::span), "[vip]");
    add(raw.dns.as_ref().map(Spanned::span), "[dns]");
    add(raw.probe.as_ref().map(Spanned::span), "[probe]");
    add(raw.tls.as_ref().map(Spanned::span), "[tls]");
    add(raw.hooks.as_ref().map(Spanned::span), "[hooks]");
    add(raw.mta.as_ref().map(Spanned::span), "[mta]");
    add(raw.watch.as_ref().map(Spanned::span), "[watch]");
    add(raw.notify.as_ref().map(Spanned::span), "[notify]");
    add(raw.mirror.as_ref().map(Spanned::span), "[mirror]");
    if let Some(m) = &raw.migrate {
        add(Some(m.span()), "[migrate]");
        let accounts = m.get_ref().accounts.as_ref();
        for a in accounts.map_or(&[][..], |a| a.get_ref().list()) {
            add(Some(a.span()), "[[migrate.accounts]]");
        }
    }
    out
}

pub(super) fn section_of(headers: &[(usize, String)], span: &Range<usize>) -> String {
    headers
        .iter()
        .filter(|(start, _)| *start <= span.start)
        .max_by_key(|(start, _)| *start)
        .map_or_else(|| "the top level".to_string(), |(_, name)| name.clone())
}

pub(super) fn problem_of(e: &toml::de::Error) -> Problem {
    Problem::new(e.span().unwrap_or(0..0), e.message().trim().to_string())
}

/// The map keys and array indexes on the way to an ignored (unknown) key.
pub(super) fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    let mut here = path;
    loop {
        match here {
            Path::Root => break,
            Path::Map { parent, key } => {
                // toml::Spanned deserializes through a private wrapper field; not a user key.
                if !key.starts_with("$__serde_spanned_private") {
                    out.push(key.clone());
                }
                here = parent;
            }
            Path::Seq { parent, index } => {
                out.push(index.to_string());
                here = parent;
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => here = parent,
        }
    }
    out.reverse();
    out
}

/// The span of the key at `path` in the parsed tree (the start of the file if not found).
pub(super) fn locate_key(tree: &Spanned<DeTable<'_>>, path: &[String]) -> Range<usize> {
    let mut table = tree.get_ref();
    let mut found = 0..0;
    let mut rest = path;
    while let Some((segment, tail)) = rest.split_first() {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == segment) else {
            break;
        };
        found = key.span();
        rest = tail;
        let mut value = value;
        // Arrays of tables: the next segment is an index.
        if let (DeValue::Array(items), Some((index, after))) = (value.get_ref(), rest.split_first())
        {
            match index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(item) => {
                    value = item;
                    rest = after;
                }
                None => break,
            }
        }
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found
}
