//! `virtusertable` (FEATURE(virtusertable); proto.m4 ~1113-1170): lookup order for
//! `user+detail@dom`, `%1 %2 %3` substitution, `error:` entries, and recursion on the result
//! with explicit loop detection (sendmail only has MaxHopCount, 25 Received hops by default).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{
    LocalHostNames, Reply, TableError, ValueError, error, lines, norm_domain, parse_reply, read,
};

/// Recursion limit; well under sendmail's MaxHopCount of 25.
const MAX_DEPTH: usize = 10;

#[derive(Debug, Clone)]
struct Entry {
    value: String,
    line: usize,
}

/// The parsed virtusertable.
#[derive(Debug, Clone, Default)]
pub struct VirtUser {
    pub path: PathBuf,
    entries: BTreeMap<String, Entry>,
    domains: BTreeSet<String>,
}

/// Where an address ends up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Outcome {
    /// A local mailbox (no domain, or a local domain with no further entry).
    Local(String),
    /// An address at a domain this host does not own.
    Forward(String),
    /// An `error:` entry.
    Error(Reply),
    /// The address (or a result) came back: the chain of addresses.
    Loop(Vec<String>),
    /// No entry for the address.
    NoMatch,
}

/// The outcome, the line of the last entry used and a human-readable trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolution {
    pub outcome: Outcome,
    pub line: Option<usize>,
    pub steps: Vec<String>,
}

impl VirtUser {
    pub fn load(path: &Path) -> Result<Self, TableError> {
        Self::parse(path, &read(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, TableError> {
        let (mut entries, mut domains) = (BTreeMap::new(), BTreeSet::new());
        for l in lines(path, text)? {
            if l.value.is_empty() {
                return Err(error(
                    path,
                    l.line,
                    l.value_column,
                    "missing value after key",
                ));
            }
            let Some((_, domain)) = l.key.rsplit_once('@').filter(|(_, d)| !d.is_empty()) else {
                return Err(error(path, l.line, 1, "key needs @domain"));
            };
            if l.value.to_ascii_lowercase().starts_with("error:") {
                parse_error(l.value)
                    .map_err(|m| error(path, l.line, l.value_column, &m.to_string()))?;
            }
            let key = l.key.to_ascii_lowercase();
            let entry = Entry {
                value: l.value.to_string(),
                line: l.line,
            };
            if let Some(first) = entries.insert(key, entry) {
                let m = format!("duplicate key, first at line {}", first.line);
                return Err(error(path, l.line, 1, &m));
            }
            domains.insert(norm_domain(domain));
        }
        Ok(VirtUser {
            path: path.to_path_buf(),
            entries,
            domains,
        })
    }

    /// Whether any key is at `domain`.
    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.contains(&norm_domain(domain))
    }

    /// Every key, lowercased: `user@domain`, `@domain`.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Domains named by keys.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().map(String::as_str)
    }

    /// Resolves `addr`, recursing while the result is at a domain this host owns (in `hosts`
    /// or keyed here).
    pub fn resolve(&self, addr: &str, hosts: &LocalHostNames) -> Resolution {
        let mut cur = lower_addr(addr);
        let mut seen = vec![cur.clone()];
        let (mut steps, mut line) = (Vec::new(), None);
        let done = |outcome, line, steps| Resolution {
            outcome,
            line,
            steps,
        };
        for _ in 0..MAX_DEPTH {
            let Some((local, domain)) = cur.rsplit_once('@') else {
                return done(Outcome::Local(cur), line, steps);
            };
            let Some((key, entry, result)) = self.lookup(local, domain) else {
                let outcome = if steps.is_empty() {
                    Outcome::NoMatch
                } else if hosts.is_local_target(domain) {
                    Outcome::Local(local.to_string())
                } else {
                    Outcome::Forward(cur)
                };
                return done(outcome, line, steps);
            };
            let p = self.path.display();
            steps.push(format!("{p}:{}: {key} -> {result}", entry.line));
            line = Some(entry.line);
            if result.to_ascii_lowercase().starts_with("error:") {
                return match parse_error(&result) {
                    Ok(r) => done(Outcome::Error(r), line, steps),
                    Err(m) => bad_error_entry(m, line, steps),
                };
            }
            let next = lower_addr(&result);
            if seen.contains(&next) {
                seen.push(next);
                return done(Outcome::Loop(seen), line, steps);
            }
            seen.push(next.clone());
            match next.rsplit_once('@') {
                None => return done(Outcome::Local(next), line, steps),
                Some((_, d)) if !(hosts.is_local_target(d) || self.has_domain(d)) => {
                    return done(Outcome::Forward(next), line, steps);
                }
                Some(_) => cur = next,
            }
        }
        done(Outcome::Loop(seen), line, steps)
    }

    /// The first key that matches, in proto.m4 order, and its substituted value.
    fn lookup(&self, local: &str, domain: &str) -> Option<(String, &Entry, String)> {
        let (user, detail) = match local.split_once('+') {
            Some((u, d)) => (u, Some(d)),
            None => (local, None),
        };
        let mut keys = Vec::new();
        match detail {
            Some(d) => {
                keys.push(format!("{local}@{domain}"));
                if !d.is_empty() {
                    keys.push(format!("{user}++@{domain}"));
                }
                keys.push(format!("{user}+*@{domain}"));
                keys.push(format!("{user}@{domain}"));
                if !d.is_empty() {
                    keys.push(format!("++@{domain}"));
                }
                keys.push(format!("+*@{domain}"));
            }
            None => keys.push(format!("{user}@{domain}")),
        }
        keys.push(format!("@{domain}"));
        let plus_detail = detail.map(|d| format!("+{d}")).unwrap_or_default();
        keys.into_iter().find_map(|k| {
            let e = self.entries.get(&k)?;
            let v = e
                .value
                .replace("%1", user)
                .replace("%2", detail.unwrap_or(""))
                .replace("%3", &plus_detail);
            Some((k, e, v))
        })
    }
}

/// An `error:` entry was validated at parse time, so this only guards a substituted value.
fn bad_error_entry(m: ValueError, line: Option<usize>, steps: Vec<String>) -> Resolution {
    Resolution {
        outcome: Outcome::Error(Reply {
            code: 451,
            dsn: Some("4.3.0".into()),
            text: format!("bad virtusertable error entry: {m}"),
        }),
        line,
        steps,
    }
}

/// `error:nouser 550 text`, `error:5.7.0:550 text`, `error:550 text`.
fn parse_error(value: &str) -> Result<Reply, ValueError> {
    let rest = &value["error:".len()..];
    let rest = match rest.split_once(' ') {
        Some((word, tail)) if word.bytes().all(|b| b.is_ascii_alphabetic()) => tail,
        _ => rest,
    };
    parse_reply(rest)
}

fn lower_addr(addr: &str) -> String {
    match addr.trim().rsplit_once('@') {
        Some((l, d)) => format!("{}@{}", l.to_ascii_lowercase(), norm_domain(d)),
        None => addr.trim().to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{REGION, SWITCH};
    use super::*;

    fn vt(text: &str) -> VirtUser {
        VirtUser::parse(Path::new("virtusertable"), text).unwrap()
    }

    #[test]
    fn switch_routes_users_to_their_offices() {
        let (t, h) = (
            vt(SWITCH),
            LocalHostNames::from_names(["switch.inkacoca.org"]),
        );
        let r = t.resolve("Diego1@InkaCoca.org", &h);
        assert_eq!(
            r.outcome,
            Outcome::Forward("diego1@lima.inkacoca.org".into())
        );
        assert_eq!(r.line, Some(1));
        assert_eq!(
            t.resolve("nobody@inkacoca.org", &h).outcome,
            Outcome::NoMatch
        );
        // The reverse mapping turns X@switch back into X@inkacoca.org, then the user entry.
        let r = t.resolve("diego2@switch.inkacoca.org", &h);
        assert_eq!(
            r.outcome,
            Outcome::Forward("diego2@cuzco.inkacoca.org".into())
        );
        assert_eq!(r.steps.len(), 2);
    }

    #[test]
    fn region_delivers_locally_and_sends_the_rest_to_the_switch() {
        let (t, h) = (vt(REGION), LocalHostNames::from_names(["inkacoca.org"]));
        assert_eq!(
            t.resolve("usuario_y@inkacoca.org", &h).outcome,
            Outcome::Local("usuario_y".into())
        );
        let r = t.resolve("diego1@inkacoca.org", &h);
        assert_eq!(
            r.outcome,
            Outcome::Forward("diego1@switch.inkacoca.org".into())
        );
        assert_eq!(r.line, Some(3));
    }

    #[test]
    fn detail_order_and_substitution() {
        let t = vt(
            "joe+*@foo.org joe-all\nann@foo.org ann\n+*@foo.org %1%3@bar.net\n\
             @foo.org %1.%2@baz.net\nbad@foo.org error:nouser 550 No such user here\n",
        );
        let h = LocalHostNames::from_names(["foo.org"]);
        let o = |a: &str| t.resolve(a, &h).outcome;
        assert_eq!(o("joe+x@foo.org"), Outcome::Local("joe-all".into()));
        assert_eq!(o("joe@foo.org"), Outcome::Forward("joe.@baz.net".into()));
        assert_eq!(o("ann+x@foo.org"), Outcome::Local("ann".into()));
        assert_eq!(
            o("max+tag@foo.org"),
            Outcome::Forward("max+tag@bar.net".into())
        );
        assert_eq!(o("max@foo.org"), Outcome::Forward("max.@baz.net".into()));
        let Outcome::Error(r) = o("bad@foo.org") else {
            panic!("expected error")
        };
        assert_eq!((r.code, r.text.as_str()), (550, "No such user here"));
    }

    #[test]
    fn loops_are_detected() {
        let t = vt("@a.org %1@b.org\n@b.org %1@a.org\n");
        let r = t.resolve("x@a.org", &LocalHostNames::default());
        assert!(matches!(r.outcome, Outcome::Loop(ref chain) if chain.len() == 3));
    }

    #[test]
    fn parse_errors_have_positions() {
        let e = VirtUser::parse(Path::new("vt"), "a@b.org c\nnodomain x\n").unwrap_err();
        assert_eq!(e.to_string(), "vt:2:1: key needs @domain");
        let e = VirtUser::parse(Path::new("vt"), "a@b.org   error:nouser 250 ok\n").unwrap_err();
        assert_eq!((e.line, e.column), (1, 11));
    }
}
