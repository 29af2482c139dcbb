//! The layout file (`/etc/posta/routes.toml`): the domain, the switch, each office with where
//! its user list lives, and the zone settings `posta dns` needs.
//!
//! ```toml
//! domain = "inkacoca.org"
//! output = "/var/lib/posta/routes"     # one directory per server
//! renames = "renames"                  # optional: `old new` lines, old addresses kept
//!
//! [switch]
//! server = "switch.inkacoca.org"
//! address = "18.1.3.41"
//! smtp = "10.0.0.41:25"                # optional: where the offices reach it
//! reload = ["postfix", "reload"]       # optional: run after its tables change
//!
//! [[office]]
//! name = "lima"                        # its domain defaults to lima.inkacoca.org
//! server = "lima-mail.inkacoca.org"    # defaults to its domain
//! address = "18.1.3.40"
//! users = "/srv/lists/lima.txt"        # or read from the office's server:
//! # users_command = ["ssh", "lima-mail", "cat", "/etc/dovecot/users"]
//! users_format = "text"                # text | recipients | passwd
//!
//! [dns]
//! ns = ["ns1.inkacoca.org 18.1.3.2"]   # name, and its address when inside the zone
//! mx = ["20 mailserver2.inkacoca.org 18.1.3.42", "30 mx.laorganizacion.org"]
//! hostmaster = "hostmaster@inkacoca.org"  # the SOA mailbox, a name or an address
//! ttl = 3600                           # every record's TTL
//! switch_preference = 10               # the switch's MX preference
//! server = "18.1.3.2:53"               # what `posta dns verify` asks (default: first NS)
//! ```
//!
//! Typed by serde (unknown keys refused), then validated; every problem is reported with
//! `file:line:column`. Relative paths are relative to the layout file.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Located, Problem, parse_domain, parse_socket_addr_53};

/// Where `posta routes` looks for the layout when `--layout` does not name one.
pub const DEFAULT_PATH: &str = "/etc/posta/routes.toml";

/// The validated layout file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutFile {
    pub path: PathBuf,
    pub domain: String,
    pub output: PathBuf,
    pub renames: Option<PathBuf>,
    pub switch: Node,
    pub offices: Vec<OfficeNode>,
    pub dns: DnsSettings,
}

/// A mail server of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The server's host name (`lima-mail.inkacoca.org`; the switch's is `switch.inkacoca.org`).
    pub server: String,
    /// Its address, for the zone's A/AAAA record.
    pub address: Option<IpAddr>,
    /// Where the other servers hand it mail, when not `server` port 25.
    pub smtp: Option<SocketAddr>,
    /// Run (argv, no shell) after this server's tables changed.
    pub reload: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeNode {
    pub name: String,
    /// The office's own mail domain (`lima.inkacoca.org`).
    pub domain: String,
    pub node: Node,
    pub users: ListSource,
    pub format: ListFormat,
}

/// Where an office's list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListSource {
    /// A file on this host (kept by the office, or copied from its server).
    File(PathBuf),
    /// A command (argv, no shell) that prints the list: read from the office's own server,
    /// `ssh lima-mail cat /etc/dovecot/users`. A command that fails keeps the last tables.
    Command(Vec<String>),
}

/// How an office's user list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// One name per line; an optional second column names the local mailbox (`diego2 diego`).
    Text,
    /// A `posta mta --recipients` (Postfix relay_recipients) file: `user@domain [anything]`.
    Recipients,
    /// A Dovecot passwd-file, or `posta mta --pop3-users`: `user[@domain]:...`. Only the
    /// first field is read; the passwords are never kept.
    Passwd,
}

/// `[dns]`: what `posta dns plan` needs beyond the servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    pub ttl: u32,
    /// Name servers: name, and address when the name is inside the zone (glue).
    pub ns: Vec<(String, Option<IpAddr>)>,
    /// The SOA's mailbox, as a name (`hostmaster.inkacoca.org`).
    pub hostmaster: String,
    /// The domain's MX records besides the switch's (preference, host, address if in zone).
    pub mx: Vec<(u16, String, Option<IpAddr>)>,
    /// The switch's MX preference.
    pub switch_preference: u16,
    /// The authoritative server `posta dns verify` asks (default: the first NS's address).
    pub server: Option<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayout {
    domain: Spanned<String>,
    output: Option<Spanned<String>>,
    renames: Option<Spanned<String>>,
    switch: Spanned<RawNode>,
    #[serde(default)]
    office: Vec<Spanned<RawOffice>>,
    dns: Option<RawDns>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    server: Spanned<String>,
    address: Option<Spanned<String>>,
    smtp: Option<Spanned<String>>,
    #[serde(default)]
    reload: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffice {
    name: Spanned<String>,
    domain: Option<Spanned<String>>,
    server: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    smtp: Option<Spanned<String>>,
    #[serde(default)]
    reload: Vec<String>,
    users: Option<Spanned<String>>,
    users_command: Option<Spanned<Vec<String>>>,
    users_format: Option<ListFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    ttl: Option<u32>,
    #[serde(default)]
    ns: Vec<Spanned<String>>,
    hostmaster: Option<Spanned<String>>,
    #[serde(default)]
    mx: Vec<Spanned<String>>,
    switch_preference: Option<u16>,
    server: Option<Spanned<String>>,
}

/// A layout file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read layout file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(Located::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Located>),
}

impl LayoutFile {
    pub fn load(path: &Path) -> Result<LayoutFile, LayoutError> {
        let text = fs::read_to_string(path).map_err(|source| LayoutError::Read {
            path: path.to_owned(),
            source,
        })?;
        LayoutFile::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<LayoutFile, LayoutError> {
        let locate = |problems: Vec<Problem>| {
            LayoutError::Invalid(
                problems
                    .iter()
                    .map(|p| Located::resolve(path, text, p))
                    .collect(),
            )
        };
        let raw: RawLayout = toml::from_str(text).map_err(|e| {
            locate(vec![Problem::new(
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
            )])
        })?;
        let mut v = Validator {
            base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            problems: Vec::new(),
        };
        let layout = v.layout(path, raw);
        if v.problems.is_empty() {
            Ok(layout)
        } else {
            v.problems.sort_by_key(|p| p.span.start);
            Err(locate(v.problems))
        }
    }

    /// Every server: the switch first, then the offices in file order, with their names.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Node)> {
        std::iter::once(("switch", &self.switch))
            .chain(self.offices.iter().map(|o| (o.name.as_str(), &o.node)))
    }
}

struct Validator {
    base: PathBuf,
    problems: Vec<Problem>,
}

impl Validator {
    fn fail(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        self.problems.push(Problem::new(span, message));
    }

    fn domain(&mut self, s: &Spanned<String>) -> String {
        match parse_domain(s.get_ref().clone()) {
            Ok(d) => d,
            Err(e) => {
                self.fail(s.span(), e.to_string());
                String::new()
            }
        }
    }

    fn path(&self, s: &str) -> PathBuf {
        self.base.join(s)
    }

    fn address(&mut self, s: &Option<Spanned<String>>) -> Option<IpAddr> {
        let s = s.as_ref()?;
        match s.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.fail(s.span(), format!("{:?} is not an IP address", s.get_ref()));
                None
            }
        }
    }

    fn smtp(&mut self, s: &Option<Spanned<String>>) -> Option<SocketAddr> {
        let s = s.as_ref()?;
        match s.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.fail(
                    s.span(),
                    format!(
                        "{:?}: smtp is ADDRESS:PORT, e.g. \"192.0.2.41:25\"",
                        s.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A host name: fully qualified, or relative to the domain when it has no dot.
    fn host(&mut self, s: &Spanned<String>, domain: &str) -> String {
        let h = self.domain(s);
        if h.is_empty() || h.contains('.') || domain.is_empty() {
            h
        } else {
            format!("{h}.{domain}")
        }
    }

    fn layout(&mut self, path: &Path, raw: RawLayout) -> LayoutFile {
        let domain = self.domain(&raw.domain);
        let switch = self.node(&raw.switch, &raw.switch.get_ref().server, &domain);
        let mut offices: Vec<OfficeNode> = Vec::new();
        for o in &raw.office {
            let span = o.span();
            let o = o.get_ref();
            let name = o.name.get_ref().to_ascii_lowercase();
            let name_ok = !name.is_empty()
                && name != "switch"
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                self.fail(
                    o.name.span(),
                    format!(
                        "office name {:?}: letters, digits, '-' and '_' only, and not \"switch\"",
                        o.name.get_ref()
                    ),
                );
            } else if offices.iter().any(|p| p.name == name) {
                self.fail(o.name.span(), format!("office {name:?} is listed twice"));
            }
            let office_domain = match &o.domain {
                Some(d) => self.host(d, &domain),
                None => format!("{name}.{domain}"),
            };
            let server = match &o.server {
                Some(s) => self.host(s, &domain),
                None => office_domain.clone(),
            };
            if office_domain == domain {
                self.fail(
                    o.domain.as_ref().map_or(span.clone(), Spanned::span),
                    "an office's domain must not be the shared domain itself",
                );
            }
            let node = Node {
                server,
                address: self.address(&o.address),
                smtp: self.smtp(&o.smtp),
                reload: o.reload.clone(),
            };
            let users = match (&o.users, &o.users_command) {
                (Some(f), None) => ListSource::File(self.path(f.get_ref())),
                (None, Some(c)) if !c.get_ref().is_empty() => {
                    ListSource::Command(c.get_ref().clone())
                }
                (None, Some(c)) => {
                    self.fail(
                        c.span(),
                        "users_command is an argv list: [\"ssh\", \"host\", \"cat\", \"FILE\"]",
                    );
                    ListSource::Command(Vec::new())
                }
                (Some(f), Some(_)) => {
                    self.fail(f.span(), "give users or users_command, not both");
                    ListSource::File(PathBuf::new())
                }
                (None, None) => {
                    self.fail(
                        span.clone(),
                        format!("office {name:?} has no users (a file) or users_command"),
                    );
                    ListSource::File(PathBuf::new())
                }
            };
            offices.push(OfficeNode {
                name,
                domain: office_domain,
                node,
                users,
                format: o.users_format.unwrap_or(ListFormat::Text),
            });
        }
        if offices.is_empty() {
            self.fail(
                raw.domain.span(),
                "no [[office]]: a layout has at least one",
            );
        }
        let dns = self.dns(raw.dns.as_ref(), &domain, &switch);
        LayoutFile {
            path: path.to_path_buf(),
            output: raw.output.map_or_else(
                || PathBuf::from("/var/lib/posta/routes"),
                |o| self.path(o.get_ref()),
            ),
            renames: raw.renames.map(|r| self.path(r.get_ref())),
            domain,
            switch,
            offices,
            dns,
        }
    }

    fn node(&mut self, raw: &Spanned<RawNode>, server: &Spanned<String>, domain: &str) -> Node {
        let r = raw.get_ref();
        Node {
            server: self.host(server, domain),
            address: self.address(&r.address),
            smtp: self.smtp(&r.smtp),
            reload: r.reload.clone(),
        }
    }

    fn dns(&mut self, raw: Option<&RawDns>, domain: &str, switch: &Node) -> DnsSettings {
        let mut d = DnsSettings {
            ttl: 3600,
            ns: Vec::new(),
            hostmaster: format!("hostmaster.{domain}"),
            mx: Vec::new(),
            switch_preference: 10,
            server: None,
        };
        let Some(raw) = raw else {
            d.ns.push((switch.server.clone(), switch.address));
            return d;
        };
        d.ttl = raw.ttl.unwrap_or(d.ttl);
        d.switch_preference = raw.switch_preference.unwrap_or(d.switch_preference);
        if let Some(h) = &raw.hostmaster {
            d.hostmaster = self.mailbox(h, domain);
        }
        for ns in &raw.ns {
            let mut words = ns.get_ref().split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let name = self.host(&Spanned::new(ns.span(), name), domain);
            let addr = words.next().map(|a| Spanned::new(ns.span(), a.to_string()));
            let addr = self.address(&addr);
            if words.next().is_some() {
                self.fail(ns.span(), "an ns entry is \"NAME [ADDRESS]\"");
            }
            d.ns.push((name, addr));
        }
        if d.ns.is_empty() {
            d.ns.push((switch.server.clone(), switch.address));
        }
        for mx in &raw.mx {
            let words: Vec<&str> = mx.get_ref().split_whitespace().collect();
            let (pref, host, addr) = match words.as_slice() {
                [p, h] => (p, h, None),
                [p, h, a] => (p, h, Some(*a)),
                _ => {
                    self.fail(mx.span(), "an mx entry is \"PREFERENCE HOST [ADDRESS]\"");
                    continue;
                }
            };
            let Ok(pref) = pref.parse::<u16>() else {
                self.fail(
                    mx.span(),
                    format!("{pref:?} is not an MX preference (0-65535)"),
                );
                continue;
            };
            let host = self.host(&Spanned::new(mx.span(), host.to_string()), domain);
            let addr = self.address(&addr.map(|a| Spanned::new(mx.span(), a.to_string())));
            d.mx.push((pref, host, addr));
        }
        d.server = self.smtp_or_53(&raw.server);
        d
    }

    /// The SOA's mailbox as a name (RFC 1035 §8): `john.doe@inkacoca.org` is
    /// `john\\.doe.inkacoca.org`; without an `@` it is a host name like any other.
    fn mailbox(&mut self, s: &Spanned<String>, domain: &str) -> String {
        let Some((local, at)) = s.get_ref().split_once('@') else {
            return self.host(s, domain);
        };
        let local_ok = !local.is_empty()
            && local.len() <= 63
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
        if !local_ok {
            self.fail(
                s.span(),
                format!("{:?}: the hostmaster's mailbox is letters, digits, '-', '_', '.' and '+' before the '@'", s.get_ref()),
            );
            return String::new();
        }
        let at = self.domain(&Spanned::new(s.span(), at.to_string()));
        format!("{}.{at}", local.to_ascii_lowercase().replace('.', "\\."))
    }

    fn smtp_or_53(&mut self, s: &Option<Spanned<String>>) -> Option<SocketAddr> {
        let s = s.as_ref()?;
        parse_socket_addr_53(s.get_ref().clone())
            .map_err(|e| self.fail(s.span(), e.to_string()))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
domain = "inkacoca.org"
output = "out"

[switch]
server = "switch"
address = "18.1.3.41"

[[office]]
name = "lima"
server = "lima-mail"
address = "18.1.3.40"
users = "lima.txt"

[[office]]
name = "pmaldonado"
server = "pto-mail"
address = "18.1.7.40"
smtp = "127.0.0.1:2526"
users = "pto.passwd"
users_format = "passwd"

[dns]
ns = ["ns1 18.1.3.2"]
mx = ["20 mailserver2 18.1.3.42", "30 mx.laorganizacion.org"]
"#;

    #[test]
    fn reads_the_seeds_layout() {
        let l = LayoutFile::parse(Path::new("/etc/posta/routes.toml"), SEED).unwrap();
        assert_eq!(l.domain, "inkacoca.org");
        assert_eq!(l.output, Path::new("/etc/posta/out"));
        assert_eq!(l.switch.server, "switch.inkacoca.org");
        assert_eq!(l.offices[0].domain, "lima.inkacoca.org");
        assert_eq!(l.offices[0].node.server, "lima-mail.inkacoca.org");
        assert_eq!(l.offices[1].format, ListFormat::Passwd);
        assert_eq!(
            l.offices[1].node.smtp,
            Some("127.0.0.1:2526".parse().unwrap())
        );
        assert_eq!(l.dns.mx[1], (30, "mx.laorganizacion.org".to_string(), None));
        assert_eq!(l.dns.ns[0].0, "ns1.inkacoca.org");
        assert_eq!(l.dns.hostmaster, "hostmaster.inkacoca.org");
        let text = SEED.replace(
            "[dns]\n",
            "[dns]\nhostmaster = \"Juan.Perez@inkacoca.org\"\n",
        );
        let l = LayoutFile::parse(Path::new("r.toml"), &text).unwrap();
        assert_eq!(l.dns.hostmaster, "juan\\.perez.inkacoca.org");
        let names: Vec<&str> = l.nodes().map(|(n, _)| n).collect();
        assert_eq!(names, ["switch", "lima", "pmaldonado"]);
    }

    #[test]
    fn the_example_is_valid() {
        let text = include_str!("../../examples/routes.toml");
        let l = LayoutFile::parse(Path::new("examples/routes.toml"), text).unwrap();
        assert_eq!(l.offices.len(), 5);
        assert!(matches!(l.offices[1].users, ListSource::Command(_)));
        assert_eq!(l.dns.mx.len(), 2);
    }

    #[test]
    fn problems_are_located() {
        let text = SEED
            .replace("\"18.1.3.40\"", "\"18.1.3\"")
            .replace("users_format = \"passwd\"", "users_format = \"ldap\"");
        let e = LayoutFile::parse(Path::new("r.toml"), &text).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("r.toml:"), "{s}");
        assert!(s.contains("ldap"), "{s}");
        let text = SEED.replace("\"18.1.3.40\"", "\"18.1.3\"");
        let s = LayoutFile::parse(Path::new("r.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            s.starts_with("r.toml:12:11: \"18.1.3\" is not an IP address"),
            "{s}"
        );
        let s = LayoutFile::parse(
            Path::new("r.toml"),
            &SEED.replace("lima.txt\"", "x\"\nusers_list = 1"),
        )
        .unwrap_err()
        .to_string();
        assert!(s.contains("unknown field `users_list`"), "{s}");
    }
}
