//! The relay decision for one recipient, as sendmail's check_relay, check_mail and check_rcpt
//! make it from the tables (notes §1.1–1.3), with a trail like `sendmail -bt`.
//!
//! Never an open relay: a recipient is accepted only for a local domain (local-host-names or
//! `local_domains`), a virtusertable domain, an access `To:` RELAY, or a client with a
//! `Connect:` RELAY. Addresses that hide another destination (percent hack, bang path, source
//! route, quoted local part, address literal) are refused before any lookup.

use std::fmt;
use std::net::IpAddr;

use super::tables::{AccessEntry, Action, Outcome, Reply, Tables, Tag};

/// How an accepted recipient is handled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "to")]
pub enum Accept {
    /// Final delivery to a local mailbox.
    Local(String),
    /// Relayed to the recipient's domain (backup MX, friend server).
    Relay,
    /// Rewritten by the virtusertable to another address.
    Forward(String),
}

/// The outcome for the recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept(Accept),
    Reject(Reply),
    /// Accepted, then dropped.
    Discard,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept(Accept::Local(u)) => write!(f, "accept: local delivery to {u}"),
            Verdict::Accept(Accept::Relay) => f.write_str("accept: relay"),
            Verdict::Accept(Accept::Forward(a)) => write!(f, "accept: forward to {a}"),
            Verdict::Reject(r) => write!(f, "reject: {r}"),
            Verdict::Discard => f.write_str("discard"),
        }
    }
}

/// The verdict and how it was reached, one step per line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub trail: Vec<String>,
}

fn reject(code: u16, dsn: &str, text: &str) -> Verdict {
    Verdict::Reject(Reply {
        code,
        dsn: Some(dsn.to_string()),
        text: text.to_string(),
    })
}

/// Domains configured outside the tables (the site file or `posta mta --domain`).
#[derive(Debug, Clone, Default)]
pub struct Domains {
    /// Final delivery here, like names in local-host-names.
    pub local: Vec<String>,
    /// Relayed (backup MX), like `To:domain RELAY`: the domain and its subdomains.
    pub relay: Vec<String>,
}

/// Decides one SMTP transaction's recipient. `domains` adds to the tables.
/// `helo` is only reported: it is forgeable, so no access entry is ever matched on it.
pub fn decide(
    tables: &Tables,
    client_ip: IpAddr,
    helo: Option<&str>,
    from: &str,
    rcpt: &str,
    domains: &Domains,
) -> Decision {
    let mut trail = Vec::new();
    let verdict = decide_inner(tables, client_ip, helo, from, rcpt, domains, &mut trail);
    trail.push(format!("decided: {verdict}"));
    Decision { verdict, trail }
}

fn at(tables: &Tables, e: &AccessEntry) -> String {
    format!("{}:{}: {e}", tables.access.path.display(), e.line)
}

fn from_action(action: &Action, default: Verdict) -> Option<Verdict> {
    match action {
        Action::Reject => Some(default),
        Action::Error(r) => Some(Verdict::Reject(r.clone())),
        Action::Discard => Some(Verdict::Discard),
        Action::Ok | Action::Relay | Action::Skip => None,
    }
}

fn decide_inner(
    tables: &Tables,
    ip: IpAddr,
    helo: Option<&str>,
    from: &str,
    rcpt: &str,
    domains: &Domains,
    trail: &mut Vec<String>,
) -> Verdict {
    // check_relay: without DNS the client has no name; the HELO name is never trusted.
    trail.push(format!(
        "connect: client {ip}, HELO {} (not used for access: it is forgeable)",
        helo.unwrap_or("none")
    ));
    let mut connect_relay = None;
    match tables.access.lookup_connect(ip, None) {
        Some(e) => {
            trail.push(format!("connect: {}", at(tables, e)));
            let denied = reject(550, "5.7.1", &format!("access denied for {ip}"));
            if let Some(v) = from_action(&e.action, denied) {
                return v;
            }
            if e.action == Action::Relay {
                connect_relay = Some(e.clone());
            }
        }
        None => trail.push("connect: no access entry".into()),
    }

    // check_mail
    let sender = match normalize(from) {
        _ if matches!(from.trim(), "" | "<>") => {
            trail.push("mail from: null sender <>".into());
            "<>".to_string()
        }
        Ok((l, d)) => format!("{l}@{d}"),
        Err(why) => {
            trail.push(format!("mail from: {from:?} refused: {why}"));
            return reject(553, "5.1.7", &format!("sender {why}"));
        }
    };
    match tables.access.lookup_from(&sender) {
        Some(e) => {
            trail.push(format!("mail from {sender}: {}", at(tables, e)));
            let denied = reject(550, "5.7.1", &format!("sender {sender} rejected"));
            if let Some(v) = from_action(&e.action, denied) {
                return v;
            }
        }
        None => trail.push(format!("mail from {sender}: no access entry")),
    }

    // check_rcpt
    let (local, domain) = match normalize(rcpt) {
        Ok(p) => p,
        Err(why) => {
            trail.push(format!("rcpt to: {rcpt:?} refused: {why}"));
            return reject(553, "5.1.3", &format!("recipient {why}"));
        }
    };
    let addr = format!("{local}@{domain}");
    let to_entry = tables.access.lookup_to(&addr);
    match to_entry {
        Some(e) => {
            trail.push(format!("rcpt to {addr}: {}", at(tables, e)));
            let denied = reject(550, "5.7.1", &format!("recipient {addr} rejected"));
            if let Some(v) = from_action(&e.action, denied) {
                return v;
            }
        }
        None => trail.push(format!("rcpt to {addr}: no access entry")),
    }
    let listed = domains
        .local
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain));
    let in_w = tables.hosts.contains(&domain) || listed;
    if in_w || tables.virtuser.has_domain(&domain) {
        if in_w {
            let where_ = match tables.hosts.line(&domain) {
                Some(l) => format!("{}:{l}", tables.hosts.path.display()),
                None if listed => "a configured local domain".to_string(),
                None => "built in".to_string(),
            };
            trail.push(format!("rcpt to {addr}: {domain} is local ({where_})"));
        } else {
            trail.push(format!(
                "rcpt to {addr}: {domain} is a virtusertable domain"
            ));
        }
        let r = tables.virtuser.resolve(&addr, &tables.hosts);
        trail.extend(r.steps.iter().map(|s| format!("virtusertable: {s}")));
        return match r.outcome {
            Outcome::Local(user) => Verdict::Accept(Accept::Local(user)),
            Outcome::Forward(to) => Verdict::Accept(Accept::Forward(to)),
            Outcome::Error(reply) => Verdict::Reject(reply),
            Outcome::Loop(chain) => {
                trail.push(format!("virtusertable: loop {}", chain.join(" -> ")));
                reject(550, "5.4.6", "virtusertable loop")
            }
            Outcome::NoMatch if in_w => {
                trail.push("virtusertable: no entry, local delivery".into());
                Verdict::Accept(Accept::Local(local))
            }
            Outcome::NoMatch => {
                trail.push("virtusertable: no entry for this user".into());
                reject(550, "5.1.1", &format!("{addr}: user unknown"))
            }
        };
    }
    let parent_of = |d: &String| domain == *d || domain.ends_with(&format!(".{d}"));
    if let Some(d) = domains.relay.iter().find(|d| parent_of(d)) {
        trail.push(format!(
            "rcpt to {addr}: relay allowed: {d} is a configured relay domain"
        ));
        return Verdict::Accept(Accept::Relay);
    }
    // Relay permission comes from domain keys only (ruleset D); `To:user@ RELAY` or a full
    // address would need FEATURE(relaytofulladdress), and `user@` would open every domain.
    let relay_entry = tables.access.lookup_domain(Tag::To, &domain);
    if let Some(e) = relay_entry.filter(|e| e.action == Action::Relay) {
        trail.push(format!(
            "rcpt to {addr}: relay allowed by {}",
            at(tables, e)
        ));
        return Verdict::Accept(Accept::Relay);
    }
    if let Some(e) = connect_relay {
        trail.push(format!(
            "rcpt to {addr}: relay allowed for the client by {}",
            at(tables, &e)
        ));
        return Verdict::Accept(Accept::Relay);
    }
    trail.push(format!(
        "rcpt to {addr}: {domain} is not ours and nothing allows relaying"
    ));
    reject(550, "5.7.1", "relaying denied")
}

/// `<local@domain>` → (local part, lowercased domain without a trailing dot), or why not.
fn normalize(raw: &str) -> Result<(String, String), String> {
    let s = raw.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    if s.starts_with('@') {
        return Err("source routes are not accepted".into());
    }
    if s.contains('"') {
        return Err("quoted local parts are not accepted".into());
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err("has no domain".into());
    };
    if local.contains('%') {
        return Err("percent-hack routing is not accepted".into());
    }
    if local.contains('!') {
        return Err("bang paths are not accepted".into());
    }
    let bad = |c: char| c.is_control() || c.is_whitespace() || "@<>()[]\\,;:".contains(c);
    if local.is_empty() || local.contains(bad) || local.starts_with('.') || local.ends_with('.') {
        return Err("has an invalid local part".into());
    }
    if domain.starts_with('[') {
        return Err("address literals are not accepted".into());
    }
    let d = super::tables::norm_domain(domain);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if d.len() > 253 || !d.split('.').all(label_ok) {
        return Err(format!("has an invalid domain {domain:?}"));
    }
    Ok((local.to_string(), d))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::tables::{Access, LocalHostNames, VirtUser};
    use super::*;

    fn tables(access: &str, vt: &str, hosts: &str) -> Tables {
        Tables {
            access: Access::parse(Path::new("access"), access).unwrap(),
            virtuser: VirtUser::parse(Path::new("virtusertable"), vt).unwrap(),
            hosts: LocalHostNames::parse(Path::new("local-host-names"), hosts).unwrap(),
        }
    }

    fn verdict(t: &Tables, ip: &str, from: &str, rcpt: &str) -> Verdict {
        decide(
            t,
            ip.parse().unwrap(),
            Some("mx.example"),
            from,
            rcpt,
            &Domains::default(),
        )
        .verdict
    }

    const OUT: &str = "203.0.113.50";

    #[test]
    fn friend_server_relays_for_laorganizacion_and_subdomains_only() {
        let t = tables("laorganizacion.org\tRELAY\n", "", "friend-store.com\n");
        let relay = Verdict::Accept(Accept::Relay);
        assert_eq!(verdict(&t, OUT, "a@b.net", "ana@laorganizacion.org"), relay);
        assert_eq!(
            verdict(&t, OUT, "a@b.net", "ana@mail.laorganizacion.org"),
            relay
        );
        assert!(
            matches!(verdict(&t, OUT, "a@b.net", "ana@other.com"), Verdict::Reject(r) if r.code == 550)
        );
        let d = decide(
            &t,
            OUT.parse().unwrap(),
            None,
            "a@b.net",
            "ana@laorganizacion.org",
            &Domains::default(),
        );
        assert!(
            d.trail
                .iter()
                .any(|s| s.contains("access:1: laorganizacion.org RELAY")),
            "{d:?}"
        );
    }

    #[test]
    fn open_relay_battery() {
        let t = tables(
            "To:relayed.org RELAY\nConnect:198.51.100 OK\nTo:user@ RELAY\nTo:x@other.com RELAY\n",
            "info@ours.org boss\n",
            "ours.org\n",
        );
        for rcpt in [
            "user%other.com@ours.org",
            "other.com!user@ours.org",
            "@ours.org,@relayed.org:user@other.com",
            "\"a@other.com\"@ours.org",
            "user@other.com",
            "user@[1.2.3.4]",
            "user@ours.org.other.com",
            "user@other.com.",
            "user@relayed.org.evil.com",
            "<user@other.com>",
            "user@ours.org@other.com",
            "user",
            "x@other.com",
        ] {
            for from in ["", "<>", "a@b.net"] {
                for ip in [OUT, "198.51.100.7", "127.0.0.1"] {
                    let v = verdict(&t, ip, from, rcpt);
                    assert!(
                        matches!(&v, Verdict::Reject(r) if r.code >= 550),
                        "{rcpt} from {from:?} via {ip}: {v:?}"
                    );
                }
            }
        }
        assert_eq!(
            verdict(&t, OUT, "<>", "INFO@OURS.ORG."),
            Verdict::Accept(Accept::Local("boss".into()))
        );
        assert_eq!(
            verdict(&t, OUT, "", "Ann@Ours.Org"),
            Verdict::Accept(Accept::Local("Ann".into()))
        );
        assert_eq!(
            verdict(&t, OUT, "a@b.net", "x@relayed.org"),
            Verdict::Accept(Accept::Relay)
        );
    }

    #[test]
    fn connect_relay_and_rejections() {
        let t = tables(
            "Connect:10.1 RELAY\nConnect:10.2 REJECT\nFrom:spammer.net DISCARD\nTo:no@ours.org ERROR:5.1.1:550 gone\n",
            "",
            "ours.org\n",
        );
        assert_eq!(
            verdict(&t, "10.1.2.3", "a@b.net", "x@anywhere.com"),
            Verdict::Accept(Accept::Relay)
        );
        assert!(matches!(
            verdict(&t, "10.2.2.3", "a@b.net", "x@ours.org"),
            Verdict::Reject(_)
        ));
        assert_eq!(
            verdict(&t, OUT, "a@x.spammer.net", "x@ours.org"),
            Verdict::Discard
        );
        let Verdict::Reject(r) = verdict(&t, OUT, "a@b.net", "no@ours.org") else {
            panic!("reject")
        };
        assert_eq!((r.code, r.text.as_str()), (550, "gone"));
    }

    #[test]
    fn inkacoca_region_and_loop() {
        use super::super::tables::fixtures::REGION;
        let t = tables("", REGION, "inkacoca.org\n");
        assert_eq!(
            verdict(&t, OUT, "a@b.net", "diego1@inkacoca.org"),
            Verdict::Accept(Accept::Forward("diego1@switch.inkacoca.org".into()))
        );
        let l = tables("", "@a.org %1@b.org\n@b.org %1@a.org\n", "a.org\n");
        assert!(
            matches!(verdict(&l, OUT, "a@b.net", "x@a.org"), Verdict::Reject(r) if r.code == 550)
        );
    }
}
