//! sendmail's text tables as admins write them before `makemap`: `#` comments, blank lines,
//! a key and a value separated by whitespace, case-insensitive keys, values kept verbatim
//! (cf/README, FEATURE access_db, virtusertable and use_cw_file).
//!
//! A bad line fails the whole file, so a caller reloading tables keeps the old ones.

mod access;
mod hosts;
mod lint;
mod virtuser;

use std::fmt;
use std::path::{Path, PathBuf};

pub use access::{Access, AccessEntry, Action, Tag};
pub use hosts::LocalHostNames;
pub use lint::{Warning, lint, lint_peers};
pub use virtuser::{Outcome, Resolution, VirtUser};

/// A table that cannot be read or parsed; `line` and `column` are 1-based (0 when the file
/// could not be read at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TableError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            let (p, l, c, m) = (self.path.display(), self.line, self.column, &self.message);
            write!(f, "{p}:{l}:{c}: {m}")
        }
    }
}

/// The three tables of one host.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub access: Access,
    pub virtuser: VirtUser,
    pub hosts: LocalHostNames,
}

/// An SMTP reply given by an `ERROR:` access value or an `error:` virtusertable value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code (RFC 3463) when the entry gives one.
    pub dsn: Option<String>,
    pub text: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dsn {
            Some(d) => write!(f, "{} {d} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// Why a table value was refused; its position is added by [`error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("expected a 4xx or 5xx reply code, found {0:?}")]
    ReplyCode(String),
    #[error("unknown action {0:?} (expected OK, RELAY, REJECT, DISCARD, SKIP or ERROR:code text)")]
    Action(String),
}

/// Parses `550 text`, `5.7.1:550 text` or `"550 text"` (cf/README, ERROR: values).
pub(crate) fn parse_reply(text: &str) -> Result<Reply, ValueError> {
    let text = text.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let (dsn, rest) = match text.split_once(':') {
        Some((d, rest)) if is_dsn(d) => (Some(d.to_string()), rest),
        _ => (None, text),
    };
    let (code, msg) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    match code.parse::<u16>() {
        Ok(c) if (400..600).contains(&c) && code.len() == 3 => Ok(Reply {
            code: c,
            dsn,
            text: msg.trim().to_string(),
        }),
        _ => Err(ValueError::ReplyCode(code.to_string())),
    }
}

fn is_dsn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// One non-comment line: its key and the rest of the line, with 1-based positions.
pub(crate) struct Line<'a> {
    pub line: usize,
    pub key: &'a str,
    pub value: &'a str,
    pub value_column: usize,
}

/// Splits a table into lines; `value` is empty when the line has only a key.
pub(crate) fn lines<'a>(path: &Path, text: &'a str) -> Result<Vec<Line<'a>>, TableError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let lead = raw.len() - trimmed.len();
        if let Some(pos) = raw.find(|c: char| c.is_control() && c != '\t') {
            return Err(error(path, i + 1, pos + 1, "control character in line"));
        }
        let key_end = trimmed.find([' ', '\t']).unwrap_or(trimmed.len());
        let after = &trimmed[key_end..];
        let value = after.trim();
        let value_column = lead + key_end + (after.len() - after.trim_start().len()) + 1;
        out.push(Line {
            line: i + 1,
            key: &trimmed[..key_end],
            value,
            value_column,
        });
    }
    Ok(out)
}

pub(crate) fn error(path: &Path, line: usize, column: usize, message: &str) -> TableError {
    TableError {
        path: path.to_path_buf(),
        line,
        column,
        message: message.to_string(),
    }
}

/// Reads a table file; a read failure is a `TableError` with line 0.
pub(crate) fn read(path: &Path) -> Result<String, TableError> {
    std::fs::read_to_string(path).map_err(|e| error(path, 0, 0, &format!("cannot read: {e}")))
}

/// Whether `d` (already lowercased, without its trailing dot) is a host name of LDH labels
/// (RFC 1035 §2.3.1, RFC 5321 §4.1.2): 1-63 letters, digits and inner hyphens each, at most
/// 253 characters in all.
pub(crate) fn is_ldh_domain(d: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    !d.is_empty() && d.len() <= 253 && d.split('.').all(label_ok)
}

/// Lowercases a domain and drops one trailing dot (`OURS.ORG.` is `ours.org`).
pub(crate) fn norm_domain(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

/// Whether `domain` is `zone` or one of its subdomains (both normalised): what Postfix's
/// `parent_domain_matches_subdomains` gives relay_domains and its recipient maps.
pub(crate) fn within(domain: &str, zone: &str) -> bool {
    let (d, z) = (norm_domain(domain), norm_domain(zone));
    !z.is_empty()
        && (d == z
            || d.strip_suffix(&z)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1))
}

#[cfg(test)]
pub(crate) mod fixtures {
    /// Seed §11.2.2 with the `incakoca.com` typos fixed: the switch, and a region (Iquitos).
    pub(crate) const SWITCH: &str = "diego1@inkacoca.org  diego1@lima.inkacoca.org\n\
    diego2@inkacoca.org  diego2@cuzco.inkacoca.org\n# Linea agregada:\n\
    @switch.inkacoca.org %1@inkacoca.org\n";
    pub(crate) const REGION: &str = "usuario_x@inkacoca.org usuario_x@localhost\n\
    usuario_y@inkacoca.org usuario_y@localhost\n@inkacoca.org %1@switch.inkacoca.org\n";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let r = parse_reply("\"4.2.2:450 mailbox full\"").unwrap();
        assert_eq!(
            (r.code, r.dsn.as_deref(), r.text.as_str()),
            (450, Some("4.2.2"), "mailbox full")
        );
        assert_eq!(parse_reply("550 go away").unwrap().code, 550);
        assert!(parse_reply("250 fine").is_err());
        assert!(parse_reply("nope").is_err());
    }

    #[test]
    fn subdomains_are_within_their_parent() {
        assert!(within("example.test", "Example.Test."));
        assert!(within("mx2.sub.example.test", "example.test"));
        assert!(!within("badexample.test", "example.test"));
        assert!(!within("example.test", "sub.example.test"));
        assert!(!within(".example.test", "example.test"));
        assert!(!within("example.test", ""));
    }

    #[test]
    fn error_display() {
        let e = error(Path::new("access"), 3, 14, "bad");
        assert_eq!(e.to_string(), "access:3:14: bad");
    }
}
