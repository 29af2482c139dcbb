//! The `access` table (FEATURE(access_db); cf/README "ANTI-SPAM CONFIGURATION CONTROL",
//! proto.m4 rulesets `D`, `A`): tagged key first, then the deprecated untagged one; domains
//! match their subdomains; IPv4 keys match by octet prefix, IPv6 keys by `:` group prefix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{Reply, TableError, ValueError, error, lines, norm_domain, parse_reply, read};

/// The LHS tag: which SMTP stage an entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Tag {
    Connect,
    From,
    To,
}

/// The RHS of an access entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Action {
    /// Accept even where other checks would reject; never relay permission.
    Ok,
    /// Relay to (To:) or from (Connect:) the key; an implicit OK elsewhere.
    Relay,
    /// 550 with a generic text.
    Reject,
    /// Accept, then drop the whole message.
    Discard,
    /// Stop searching and fall back to the default (host, domain and IP keys only).
    Skip,
    /// `ERROR:[dsn:]code text`.
    Error(Reply),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Ok => f.write_str("OK"),
            Action::Relay => f.write_str("RELAY"),
            Action::Reject => f.write_str("REJECT"),
            Action::Discard => f.write_str("DISCARD"),
            Action::Skip => f.write_str("SKIP"),
            Action::Error(r) => write!(f, "ERROR:{r}"),
        }
    }
}

/// One line of the access table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessEntry {
    pub tag: Option<Tag>,
    /// Lowercased key without its tag.
    pub key: String,
    pub action: Action,
    pub line: usize,
}

impl fmt::Display for AccessEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = self.tag {
            write!(f, "{t:?}:")?;
        }
        write!(f, "{} {}", self.key, self.action)
    }
}

/// The parsed access table.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub path: PathBuf,
    entries: BTreeMap<(Option<Tag>, String), AccessEntry>,
}

impl Access {
    pub fn load(path: &Path) -> Result<Self, TableError> {
        Self::parse(path, &read(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, TableError> {
        let mut entries = BTreeMap::new();
        for l in lines(path, text)? {
            if l.value.is_empty() {
                return Err(error(
                    path,
                    l.line,
                    l.value_column,
                    "missing value after key",
                ));
            }
            let (tag, key) = split_tag(l.key);
            if key.is_empty() {
                return Err(error(path, l.line, 1, "empty key after tag"));
            }
            let action = parse_action(l.value)
                .map_err(|m| error(path, l.line, l.value_column, &m.to_string()))?;
            if action == Action::Skip && key.contains('@') {
                let m = "SKIP applies to host, domain and IP keys only";
                return Err(error(path, l.line, l.value_column, m));
            }
            let key = key.to_ascii_lowercase();
            let entry = AccessEntry {
                tag,
                key: key.clone(),
                action,
                line: l.line,
            };
            if let Some(first) = entries.insert((tag, key), entry) {
                let m = format!("duplicate key, first at line {}", first.line);
                return Err(error(path, l.line, 1, &m));
            }
        }
        Ok(Access {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// All entries in key order.
    pub fn entries(&self) -> impl Iterator<Item = &AccessEntry> {
        self.entries.values()
    }

    /// check_relay: the client's (reverse-DNS) name by domain, then its address by prefix.
    pub fn lookup_connect(&self, ip: IpAddr, hostname: Option<&str>) -> Option<&AccessEntry> {
        if let Some(e) = hostname.and_then(|h| self.lookup_domain(Tag::Connect, h)) {
            return Some(e);
        }
        ip_keys(ip).iter().find_map(|k| self.get(Tag::Connect, k))
    }

    /// check_mail: `user@domain`, `user@`, then the domain and its parents; `<>` for the
    /// null sender.
    pub fn lookup_from(&self, addr: &str) -> Option<&AccessEntry> {
        self.lookup_address(Tag::From, addr)
    }

    /// check_rcpt: `user@domain`, `user@`, then the domain and its parents.
    pub fn lookup_to(&self, addr: &str) -> Option<&AccessEntry> {
        self.lookup_address(Tag::To, addr)
    }

    fn lookup_address(&self, tag: Tag, addr: &str) -> Option<&AccessEntry> {
        let addr = addr.trim();
        if addr.is_empty() || addr == "<>" {
            return self.get(tag, "<>");
        }
        let Some((user, domain)) = addr.rsplit_once('@') else {
            return self.get(tag, &addr.to_ascii_lowercase());
        };
        let domain = norm_domain(domain);
        let user = user.to_ascii_lowercase();
        self.get(tag, &format!("{user}@{domain}"))
            .or_else(|| self.get(tag, &format!("{user}@")))
            .or_else(|| self.lookup_domain(tag, &domain))
    }

    /// Ruleset `D`: the domain, then each parent; tagged before untagged at every level.
    pub fn lookup_domain(&self, tag: Tag, domain: &str) -> Option<&AccessEntry> {
        let domain = norm_domain(domain);
        let mut d = domain.as_str();
        loop {
            if let Some(e) = self.get(tag, d) {
                return Some(e);
            }
            d = d.split_once('.')?.1;
        }
    }

    fn get(&self, tag: Tag, key: &str) -> Option<&AccessEntry> {
        self.entries
            .get(&(Some(tag), key.to_string()))
            .or_else(|| self.entries.get(&(None, key.to_string())))
    }
}

fn split_tag(key: &str) -> (Option<Tag>, &str) {
    if let Some((t, rest)) = key.split_once(':') {
        let tag = match t.to_ascii_lowercase().as_str() {
            "connect" => Some(Tag::Connect),
            "from" => Some(Tag::From),
            "to" => Some(Tag::To),
            _ => None,
        };
        if let Some(tag) = tag {
            return (Some(tag), rest);
        }
    }
    (None, key)
}

fn parse_action(value: &str) -> Result<Action, ValueError> {
    let upper = value.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "OK" => Action::Ok,
        "RELAY" => Action::Relay,
        "REJECT" => Action::Reject,
        "DISCARD" => Action::Discard,
        "SKIP" => Action::Skip,
        _ if upper.starts_with("ERROR:") => Action::Error(parse_reply(&value[6..])?),
        // Bare `550 text` is deprecated but still read by sendmail.
        _ if value.starts_with(['4', '5']) => Action::Error(parse_reply(value)?),
        _ => return Err(ValueError::Action(value.to_string())),
    })
}

/// Ruleset `A`: `1.2.3.4`, `1.2.3`, `1.2`, `1`; `ipv6:2001:db8::1` then drop `:` groups.
fn ip_keys(ip: IpAddr) -> Vec<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (mut key, sep, floor) = match ip {
        IpAddr::V4(v4) => (v4.to_string(), '.', 0),
        IpAddr::V6(v6) => (format!("ipv6:{v6}"), ':', "ipv6:".len()),
    };
    let mut keys = Vec::new();
    loop {
        keys.push(key.clone());
        match key.rfind(sep) {
            Some(i) if i > floor => key.truncate(i),
            _ => return keys,
        }
        while key.ends_with(sep) && key.len() > floor + 1 {
            key.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(text: &str) -> Access {
        Access::parse(Path::new("access"), text).unwrap()
    }

    #[test]
    fn seed_untagged_relay_covers_to_and_connect() {
        let a = access("# friend server\nlaorganizacion.org\tRELAY\n");
        for rcpt in ["u@laorganizacion.org", "u@mail.LaOrganizacion.org."] {
            let e = a.lookup_to(rcpt).unwrap();
            assert_eq!((e.line, &e.action), (2, &Action::Relay));
        }
        assert!(a.lookup_to("u@laorganizacion.org.evil.com").is_none());
        assert!(a.lookup_to("u@xlaorganizacion.org").is_none());
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let e = a
            .lookup_connect(ip, Some("spam.laorganizacion.org"))
            .unwrap();
        assert_eq!(e.action, Action::Relay);
        assert!(a.lookup_connect(ip, None).is_none());
    }

    #[test]
    fn tagged_before_untagged_and_order() {
        let a = access(
            "example.org REJECT\nTo:example.org RELAY\nFrom:bad@ REJECT\nFrom:boss@example.org OK\n",
        );
        assert_eq!(a.lookup_to("x@example.org").unwrap().action, Action::Relay);
        assert_eq!(
            a.lookup_from("x@example.org").unwrap().action,
            Action::Reject
        );
        assert_eq!(a.lookup_from("bad@other.net").unwrap().line, 3);
        assert_eq!(
            a.lookup_from("boss@example.org").unwrap().action,
            Action::Ok
        );
    }

    #[test]
    fn ip_prefixes_and_skip() {
        let a =
            access("Connect:192.168 RELAY\nConnect:192.168.2 SKIP\nConnect:IPv6:2001:db8 REJECT\n");
        let e = |ip: &str| {
            a.lookup_connect(ip.parse().unwrap(), None)
                .map(|e| e.action.clone())
        };
        assert_eq!(e("192.168.1.7"), Some(Action::Relay));
        assert_eq!(e("192.168.2.7"), Some(Action::Skip));
        assert_eq!(e("192.16.1.7"), None);
        assert_eq!(e("2001:db8::1"), Some(Action::Reject));
        assert_eq!(e("2001:db9::1"), None);
        assert_eq!(e("::ffff:192.168.1.1"), Some(Action::Relay));
    }

    #[test]
    fn errors_and_values() {
        let a = access("To:spam.com ERROR:\"5.7.1:550 no thanks\"\nnull.org 451 later\n");
        let Some(Action::Error(r)) = a.lookup_to("a@spam.com").map(|e| e.action.clone()) else {
            panic!("expected an error action");
        };
        assert_eq!((r.code, r.text.as_str()), (550, "no thanks"));
        assert!(matches!(
            a.lookup_to("a@null.org").unwrap().action,
            Action::Error(_)
        ));
        let err = Access::parse(Path::new("access"), "ok.org RELAY\nbad.org  MAYBE\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 10));
        assert!(err.to_string().starts_with("access:2:10: unknown action"));
        let err = Access::parse(Path::new("access"), "lonely.org\n").unwrap_err();
        assert_eq!((err.line, err.column), (1, 11));
        let err = Access::parse(Path::new("a"), "x.org OK\nX.ORG REJECT\n").unwrap_err();
        assert!(err.message.contains("duplicate"));
    }
}
