//! The relay decision for one recipient, as sendmail's check_relay, check_mail and check_rcpt
//! make it from the tables (cf/README: access_db, virtusertable, use_cw_file), with a trail
//! like `sendmail -bt`.
//!
//! Never an open relay: a recipient is accepted only for a local domain (local-host-names or
//! `local_domains`), a virtusertable domain, an access `To:` RELAY, or a client with a
//! `Connect:` RELAY; anything else gets Postfix's `reject_unauth_destination` answer, 554 5.7.1
//! (`relay_domains_reject_code`). `localhost` is not ours unless configured: Postfix's
//! `mydestination` decides the same way, and a backup MX that took `x@localhost` from anyone
//! made a Maildir per invented name. Recipients that hide another destination (percent hack,
//! bang path, source route, quoted local part, address literal) are refused before any lookup.
//! The one recipient without a domain is `postmaster`, which RFC 5321 §4.5.1 says must be
//! accepted. Senders are only looked up, never routed to here, so a quoted local part or an
//! address literal is accepted from them, as Postfix does.

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
    let sender = match normalize(from, Role::Sender) {
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
    if is_postmaster(rcpt) {
        trail.push(format!(
            "rcpt to {rcpt}: the postmaster, accepted without a domain (RFC 5321 §4.5.1)"
        ));
        return Verdict::Accept(Accept::Local(POSTMASTER.into()));
    }
    let (local, domain) = match normalize(rcpt, Role::Recipient) {
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
    reject(554, "5.7.1", &format!("<{addr}>: relay access denied"))
}

/// The local part of the reserved mailbox (RFC 5321 §4.5.1).
pub const POSTMASTER: &str = "postmaster";

/// Whether `rcpt` is the postmaster without a domain, in any case (`<Postmaster>`).
pub fn is_postmaster(rcpt: &str) -> bool {
    let s = rcpt.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    s.eq_ignore_ascii_case(POSTMASTER)
}

/// Where a bare `postmaster` goes when the server has no Maildirs (`None`: the local verdict
/// stands, the `postmaster` Maildir): the first relay domain's postmaster, the primary,
/// through the queue. With neither, nobody here could read it: 550.
pub fn postmaster(domains: &Domains, maildir: bool, queue: bool) -> Option<Verdict> {
    if maildir {
        return None;
    }
    Some(match domains.relay.first() {
        Some(d) if queue => Verdict::Accept(Accept::Forward(format!("{POSTMASTER}@{d}"))),
        _ => reject(550, "5.1.1", "no postmaster mailbox here"),
    })
}

/// Which side of the envelope an address is on: a recipient decides where mail goes, so
/// nothing in it may hide another destination; a sender is only looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Sender,
    Recipient,
}

/// Why an envelope address is refused; shown after "sender " or "recipient " in the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum AddressError {
    #[error("source routes are not accepted")]
    SourceRoute,
    #[error("has an invalid quoted local part")]
    QuotedLocal,
    #[error("quoted local parts are not accepted")]
    Quoted,
    #[error("has no domain")]
    NoDomain,
    #[error("percent-hack routing is not accepted")]
    PercentHack,
    #[error("bang paths are not accepted")]
    BangPath,
    #[error("has an invalid local part")]
    LocalPart,
    #[error("address literals are not accepted")]
    Literal,
    #[error("has an invalid address literal {0:?}")]
    BadLiteral(String),
    #[error("has an invalid domain {0:?}")]
    Domain(String),
}

/// `<local@domain>` → (local part, lowercased domain without a trailing dot), or why not.
/// A sender may have a quoted local part (RFC 5321 §4.1.2 Quoted-string) and an address
/// literal (§4.1.3); both come back as written, the literal lowercased.
fn normalize(raw: &str, role: Role) -> Result<(String, String), AddressError> {
    let s = raw.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    if s.starts_with('@') {
        return Err(AddressError::SourceRoute);
    }
    if s.starts_with('"') && role == Role::Sender {
        let (local, domain) = quoted_local(s).ok_or(AddressError::QuotedLocal)?;
        return Ok((local.to_string(), sender_domain(domain)?));
    }
    if s.contains('"') {
        return Err(AddressError::Quoted);
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(AddressError::NoDomain);
    };
    if local.contains('%') {
        return Err(AddressError::PercentHack);
    }
    if local.contains('!') {
        return Err(AddressError::BangPath);
    }
    let bad = |c: char| c.is_control() || c.is_whitespace() || "@<>()[]\\,;:".contains(c);
    if local.is_empty() || local.contains(bad) || local.starts_with('.') || local.ends_with('.') {
        return Err(AddressError::LocalPart);
    }
    if domain.starts_with('[') {
        if role == Role::Sender {
            return Ok((local.to_string(), sender_domain(domain)?));
        }
        return Err(AddressError::Literal);
    }
    Ok((local.to_string(), domain_name(domain)?))
}

/// `"quoted string"@domain` → (the quoted string with its quotes, domain): printable ASCII
/// and spaces inside, `\x` pairs allowed (RFC 5321 §4.1.2 qtextSMTP / quoted-pairSMTP).
fn quoted_local(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if !(c == ' ' || c.is_ascii_graphic()) => return None,
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                let (local, rest) = s.split_at(i + 1);
                return rest.strip_prefix('@').map(|domain| (local, domain));
            }
            _ => {}
        }
    }
    None
}

/// A sender's domain: a name, or an address literal holding a real IPv4 or IPv6 address.
fn sender_domain(domain: &str) -> Result<String, AddressError> {
    let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return domain_name(domain);
    };
    let ip = match literal.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            literal[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => literal.parse::<std::net::Ipv4Addr>().is_ok(),
    };
    if !ip {
        return Err(AddressError::BadLiteral(domain.to_string()));
    }
    Ok(domain.to_ascii_lowercase())
}

/// A domain name: LDH labels, lowercased, one trailing dot dropped.
fn domain_name(domain: &str) -> Result<String, AddressError> {
    let d = super::tables::norm_domain(domain);
    if !super::tables::is_ldh_domain(&d) {
        return Err(AddressError::Domain(domain.to_string()));
    }
    Ok(d)
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
            matches!(verdict(&t, OUT, "a@b.net", "ana@other.com"), Verdict::Reject(r) if r.code == 554)
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

    fn code(v: &Verdict) -> Option<(u16, &str)> {
        match v {
            Verdict::Reject(r) => Some((r.code, r.dsn.as_deref().unwrap_or(""))),
            _ => None,
        }
    }

    /// Postfix's reject_unauth_destination: 554 5.7.1 for a domain that is not ours;
    /// `localhost` is ours only when local-host-names lists it (Postfix's mydestination).
    #[test]
    fn localhost_is_foreign_unless_listed() {
        let t = tables("", "", "ours.org\n");
        for rcpt in ["anything@localhost", "postmaster@LOCALHOST.", "x@other.com"] {
            assert_eq!(
                code(&verdict(&t, OUT, "a@b.net", rcpt)),
                Some((554, "5.7.1")),
                "{rcpt}"
            );
        }
        let t = tables("", "", "ours.org\nlocalhost\n");
        assert_eq!(
            verdict(&t, OUT, "a@b.net", "ana@localhost"),
            Verdict::Accept(Accept::Local("ana".into()))
        );
        // A virtusertable value at localhost still means this host's user.
        let t = tables("", REGION_LOCAL, "inkacoca.org\n");
        assert_eq!(
            verdict(&t, OUT, "a@b.net", "usuario_x@inkacoca.org"),
            Verdict::Accept(Accept::Local("usuario_x".into()))
        );
    }

    const REGION_LOCAL: &str = "usuario_x@inkacoca.org usuario_x@localhost\n";

    /// RFC 5321 §4.5.1: `postmaster` without a domain is accepted, in any case; every other
    /// local part without a domain is not.
    #[test]
    fn bare_postmaster_is_accepted() {
        let t = tables("", "", "ours.org\n");
        for rcpt in ["postmaster", "PostMaster", "<postmaster>"] {
            assert_eq!(
                verdict(&t, OUT, "a@b.net", rcpt),
                Verdict::Accept(Accept::Local(POSTMASTER.into())),
                "{rcpt}"
            );
        }
        for rcpt in ["root", "postmaster2", "post master", "\"postmaster\""] {
            assert_eq!(
                code(&verdict(&t, OUT, "a@b.net", rcpt)),
                Some((553, "5.1.3")),
                "{rcpt}"
            );
        }
        // The access table still applies to the client.
        let t = tables("Connect:203.0.113 REJECT\n", "", "ours.org\n");
        assert!(matches!(
            verdict(&t, OUT, "a@b.net", "postmaster"),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn bare_postmaster_goes_to_the_maildir_or_the_primary() {
        let relay = Domains {
            local: vec![],
            relay: vec!["example.test".into(), "other.test".into()],
        };
        assert_eq!(postmaster(&relay, true, true), None);
        assert_eq!(
            postmaster(&relay, false, true),
            Some(Verdict::Accept(Accept::Forward(
                "postmaster@example.test".into()
            )))
        );
        assert!(matches!(
            postmaster(&Domains::default(), false, true),
            Some(Verdict::Reject(r)) if r.code == 550
        ));
    }

    /// Senders are looked up, never routed to: quoted local parts and address literals are
    /// accepted from them (Postfix does), never in recipients.
    #[test]
    fn quoted_and_literal_senders() {
        let t = tables("From:spam.example REJECT\n", "", "ours.org\n");
        let ok = Verdict::Accept(Accept::Local("ana".into()));
        for from in [
            "u@[192.0.2.1]",
            "u@[IPv6:2001:db8::1]",
            "\"a\\\"b@c\"@x.example",
            "\"jane doe\"@X.Example.",
        ] {
            assert_eq!(verdict(&t, OUT, from, "ana@ours.org"), ok, "{from}");
        }
        assert!(matches!(
            verdict(&t, OUT, "\"john smith\"@spam.example", "ana@ours.org"),
            Verdict::Reject(r) if r.code == 550
        ));
        for from in [
            "u@[192.0.2.300]",
            "u@[IPv6:nonsense]",
            "u@[mx.example]",
            "\"unterminated@x.example",
            "\"a\"b@x.example",
            "\"tab\there\"@x.example",
            "\"q\"@",
        ] {
            assert_eq!(
                code(&verdict(&t, OUT, from, "ana@ours.org")),
                Some((553, "5.1.7")),
                "{from}"
            );
        }
        for rcpt in ["ana@[192.0.2.1]", "\"ana\"@ours.org"] {
            assert!(
                matches!(verdict(&t, OUT, "a@b.net", rcpt), Verdict::Reject(r) if r.code == 553),
                "{rcpt}"
            );
        }
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
