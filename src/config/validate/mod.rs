//! Raw site file → [`Site`], collecting every problem with its span.
//!
//! One file per section of the site file; [`Validator::site`] calls them in a fixed order,
//! which is the order of problems at the same place and of the secret files found.

mod hooks;
mod keys;
mod migrate;
mod mirror;
mod mta;
mod notify;
mod probe;
mod servers;
mod takeover;
mod tls;
mod values;
mod watch;

pub use probe::default_helo;
#[cfg(test)]
pub(super) use values::parse_service;
pub use values::{parse_domain, parse_socket_addr_53};

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::raw::{Field, RawSite};
use super::{Located, Problem, SecretFile, Site};
use keys::{headers, locate_key, problem_of, section_of, segments};

/// Validates the whole file at `file`; `Err` holds every problem found, in file order.
pub fn site(text: &str, file: &Path) -> Result<Site, Vec<Problem>> {
    let base = file.parent().unwrap_or(Path::new("."));
    let (tree, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax.iter().map(problem_of).collect());
    }
    let mut unknown: Vec<Vec<String>> = Vec::new();
    let deserializer = toml::de::Deserializer::from(tree.clone());
    let raw: RawSite = serde_ignored::deserialize(deserializer, |path| {
        unknown.push(segments(&path));
    })
    .map_err(|e| vec![problem_of(&e)])?;

    let mut v = Validator {
        problems: Vec::new(),
        base,
        secrets: Vec::new(),
        vip_interface: None,
    };
    for path in &unknown {
        v.problems.push(Problem::new(
            locate_key(&tree, path),
            format!("unknown key `{}`", path.join(".")),
        ));
    }
    let headers = headers(&raw);
    let site = v.site(raw);
    let mut problems = v.problems;
    if let (true, Some(mut site)) = (problems.is_empty(), site) {
        let at = |span: &Range<usize>, message: String| {
            Located::resolve(file, text, &Problem::new(span.clone(), message))
        };
        site.secrets = v
            .secrets
            .iter()
            .map(|(span, key, path)| {
                let needed_by = format!("`{key}` in {}", section_of(&headers, span));
                SecretFile {
                    path: path.clone(),
                    at: at(span, needed_by.clone()),
                    needed_by,
                }
            })
            .collect();
        site.vip_interface_at = v
            .vip_interface
            .as_ref()
            .map(|span| at(span, "`interface` in [vip]".into()));
        return Ok(site);
    }
    problems.sort_by_key(|p| p.span.start);
    Err(problems)
}

struct Validator<'a> {
    problems: Vec<Problem>,
    base: &'a Path,
    /// Secret files named so far: where, which key, the path.
    secrets: Vec<(Range<usize>, String, PathBuf)>,
    /// Where `[vip] interface` is written.
    vip_interface: Option<Range<usize>>,
}

impl Validator<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(Problem::new(span, message));
    }

    /// The value of a present field with the right type; records a problem otherwise.
    fn get<T: Clone>(&mut self, field: &Option<Field<T>>, key: &str) -> Option<T> {
        let field = field.as_ref()?;
        match &field.value {
            Ok(value) => Some(value.clone()),
            Err(e) => {
                self.problem(field.span.clone(), format!("`{key}`: {e}"));
                None
            }
        }
    }

    /// Like [`Self::get`], but a missing field is a problem located at its table.
    fn required<T: Clone>(
        &mut self,
        field: &Option<Field<T>>,
        key: &str,
        table: &str,
        table_span: &Range<usize>,
    ) -> Option<T> {
        if field.is_none() {
            self.problem(
                table_span.clone(),
                format!("missing key `{key}` in [{table}]"),
            );
            return None;
        }
        self.get(field, key)
    }

    /// Parses a present field's value with `parse`, recording its error at the field.
    fn parsed<T, U, E: std::fmt::Display>(
        &mut self,
        field: &Option<Field<T>>,
        key: &str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<U> {
        let span = field.as_ref().map(|f| f.span.clone())?;
        match parse(value?) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(span, format!("`{key}`: {e}"));
                None
            }
        }
    }

    fn path(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    /// A secret file's path, remembered for `posta config check`. It is not opened here:
    /// only the feature that needs the secret reads it (and refuses loose permissions then).
    fn secret_file(&mut self, field: &Option<Field<String>>, key: &str) -> Option<PathBuf> {
        let text = self.get(field, key)?;
        let path = self.path(&text);
        let span = field.as_ref().map(|f| f.span.clone()).unwrap_or(0..0);
        self.secrets.push((span, key.to_string(), path.clone()));
        Some(path)
    }

    fn site(&mut self, raw: RawSite) -> Option<Site> {
        let domain = self.domain(&raw);
        let (primary, backup, relay) = self.servers(&raw);
        let vip = self.vip(&raw);
        let dns = self.dns(&raw);
        let takeover = self.takeover(&raw, &vip, &primary);
        let probe = self.probe(&raw);
        self.ttl_within_grace(&raw, dns.as_ref(), probe.as_ref());
        let tls = self.tls(&raw);
        let migrate = self.migrate(&raw);
        let migrate_all = self.migrate_all(&raw);
        let takeover_state_file = self.takeover_state_file(&raw);
        let hooks = self.hooks(&raw);
        let mta = self.mta(&raw);
        let watch = self.watch(&raw);
        let notify = self.notify(&raw);
        let mirror = self.mirror(&raw);
        let migrate_state_dir = self.migrate_state_dir(&raw);
        let migrate_source = self.migrate_source(&raw);
        let (migrate_source_admin, migrate_dest_admin) = self.admins(&raw);

        Some(Site {
            domain: domain?,
            primary: primary?,
            backup: backup?,
            relay,
            takeover: takeover?,
            vip,
            dns,
            probe: probe?,
            tls: tls?,
            migrate,
            migrate_all: migrate_all?,
            migrate_state_dir,
            migrate_source: migrate_source?,
            migrate_source_admin,
            migrate_dest_admin,
            takeover_state_file,
            hooks: hooks?,
            mta: mta?,
            watch: watch?,
            notify: notify?,
            mirror: mirror?,
            secrets: Vec::new(),
            vip_interface_at: None,
        })
    }

    /// The top-level `domain`.
    fn domain(&mut self, raw: &RawSite) -> Option<String> {
        let whole = 0..0;
        let domain = self.required(&raw.domain, "domain", "top level", &whole);
        self.parsed(&raw.domain, "domain", domain, parse_domain)
    }
}
