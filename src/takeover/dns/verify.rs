//! After a swap: ask every authoritative server of the zone, directly and without recursion,
//! for the SOA serial and the record; never a caching resolver, whose answer says nothing about
//! the zone (the resource-agents dnsupdate pitfall: a cache hides the change).
//!
//! The NS set comes from the primary. Each NS name's addresses come from the glue in that reply,
//! else from the primary when the name is inside the zone, else from the system resolver. An NS
//! whose address cannot be found is reported as such, never skipped.
//!
//! Ports: DNS servers listen on 53, and NS records cannot say otherwise. An NS that resolves to
//! the primary's own IP address *is* the primary and is asked on the primary's port; that is how
//! a test BIND on 127.0.0.1:high-port verifies against itself. Every other NS is asked on 53.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::net::NetError;
use serde::{Serialize, Serializer};
use tokio::task::JoinSet;

use super::snapshot::{self, Snapshot};
use super::{DnsError, Record, convergence, normalize};
use crate::dns::{self, Deadline, WireError};

/// The standard DNS port, for every NS that is not the primary.
const DNS_PORT: u16 = 53;

/// One authoritative server (one address of one NS name) and what it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerView {
    /// The NS record's target.
    #[serde(serialize_with = "as_text")]
    pub ns: Name,
    /// Where it was asked; `None` when no address could be found for `ns`.
    pub addr: Option<SocketAddr>,
    /// Its serial and record; `None` when it could not be asked or did not answer.
    pub seen: Option<Snapshot>,
    /// Why `seen` is missing.
    pub problem: Option<String>,
}

impl ServerView {
    /// Whether this server answered with exactly `want` (normalized).
    pub fn serves(&self, want: &[IpAddr]) -> bool {
        self.seen.as_ref().is_some_and(|s| s.addrs == want)
    }
}

/// Every authoritative server's view of the record after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    #[serde(serialize_with = "as_text")]
    pub zone: Name,
    #[serde(serialize_with = "as_text")]
    pub name: Name,
    /// The addresses the record should hold, sorted.
    pub want: Vec<IpAddr>,
    /// One entry per NS name and address, in NS order.
    pub servers: Vec<ServerView>,
    /// The zone's negative-caching TTL when the change was made (RFC 2308 §5).
    pub negative_ttl: u32,
    /// Worst-case time until every client sees `want` ([`super::convergence`]).
    #[serde(serialize_with = "as_secs")]
    pub convergence: Duration,
    /// Every server answered, with `want` and the same serial.
    pub consistent: bool,
}

impl Verification {
    /// One line per server that is not yet right (wrong addresses, an older serial than the
    /// newest seen, no answer), for reports.
    pub fn problems(&self) -> Vec<String> {
        let newest = self
            .servers
            .iter()
            .filter_map(|v| v.seen.as_ref().map(|s| s.serial))
            .max();
        self.servers
            .iter()
            .filter(|v| !v.serves(&self.want) || v.seen.as_ref().map(|s| s.serial) < newest)
            .map(|v| {
                let at = v
                    .addr
                    .map_or_else(|| v.ns.to_string(), |a| format!("{} ({a})", v.ns));
                match (&v.seen, &v.problem) {
                    (Some(s), _) => format!(
                        "{at} serves {} at serial {}",
                        super::error::list_or_none(&s.addrs),
                        s.serial
                    ),
                    (None, Some(p)) => format!("{at}: {p}"),
                    (None, None) => format!("{at}: no answer"),
                }
            })
            .collect()
    }
}

/// Asks every authoritative server of `rec.zone` (NS set from `server`, the primary) for the
/// serial and the record, within `timeout`. `before` is what the primary served before the
/// change ([`super::Swap::before`]), for the convergence estimate. One pass: secondaries that
/// have not caught up yet are reported, so call again to wait for them.
pub async fn verify(
    server: SocketAddr,
    rec: &Record,
    want: &[IpAddr],
    before: &Snapshot,
    timeout: Duration,
) -> Result<Verification, DnsError> {
    let deadline = Deadline::after(timeout);
    let want = normalize(want);
    let reply = dns::query(server, &rec.zone, RecordType::NS, deadline).await?;
    let names = name_servers(server, &rec.zone, &reply)?;

    let mut targets: Vec<(Name, Result<Vec<SocketAddr>, LookupError>)> = Vec::new();
    for ns in names {
        let mut ips = glue(&reply, &ns);
        if ips.is_empty() {
            ips = match lookup(server, rec, &ns, deadline).await {
                Ok(ips) => ips,
                Err(reason) => {
                    targets.push((ns, Err(reason)));
                    continue;
                }
            };
        }
        let addrs = ips.into_iter().map(|ip| port_for(server, ip)).collect();
        targets.push((ns, Ok(addrs)));
    }

    let mut asked = JoinSet::new();
    let mut servers = Vec::new();
    for (ns, addrs) in targets {
        match addrs {
            Err(reason) => servers.push(ServerView {
                ns,
                addr: None,
                seen: None,
                problem: Some(reason.to_string()),
            }),
            Ok(addrs) => {
                for addr in addrs {
                    let index = servers.len();
                    servers.push(ServerView {
                        ns: ns.clone(),
                        addr: Some(addr),
                        seen: None,
                        problem: None,
                    });
                    let rec = rec.clone();
                    asked.spawn(async move { (index, snapshot::read(addr, &rec, deadline).await) });
                }
            }
        }
    }
    while let Some(done) = asked.join_next().await {
        let (index, result) =
            done.map_err(|e| DnsError::Invalid(format!("verification task: {e}")))?;
        if let Some(view) = servers.get_mut(index) {
            match result {
                Ok(seen) => view.seen = Some(seen),
                Err(e) => view.problem = Some(e.to_string()),
            }
        }
    }
    Ok(judge(rec, want, servers, before))
}

/// The verdict, from the views alone.
pub(crate) fn judge(
    rec: &Record,
    want: Vec<IpAddr>,
    servers: Vec<ServerView>,
    before: &Snapshot,
) -> Verification {
    let serials: Vec<u32> = servers
        .iter()
        .filter_map(|v| v.seen.as_ref().map(|s| s.serial))
        .collect();
    let consistent = !servers.is_empty()
        && servers.iter().all(|v| v.serves(&want))
        && serials.windows(2).all(|w| w[0] == w[1]);
    Verification {
        zone: rec.zone.clone(),
        name: rec.name.clone(),
        convergence: convergence(before, &want),
        negative_ttl: before.negative_ttl,
        want,
        servers,
        consistent,
    }
}

/// The NS names of `zone` in an authoritative NS reply.
fn name_servers(server: SocketAddr, zone: &Name, reply: &Message) -> Result<Vec<Name>, DnsError> {
    snapshot::check(server, zone, reply, || format!("NS query for {zone}"))?;
    let names: Vec<Name> = reply
        .answers
        .iter()
        .filter(|r| r.name == *zone)
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.clone()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Err(DnsError::NoNameServers {
            server,
            zone: zone.to_string(),
        });
    }
    Ok(names)
}

/// Addresses for `ns` from the reply's additional section.
fn glue(reply: &Message, ns: &Name) -> Vec<IpAddr> {
    reply
        .additionals
        .iter()
        .filter(|r| r.name == *ns)
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// Why no address was found for a name server without glue: that server's problem in the
/// verification.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Reply(#[from] DnsError),
    #[error("{ns} has no A or AAAA record in zone {zone}")]
    NoAddress { ns: Name, zone: Name },
    #[error("cannot set up the system resolver to find {ns}: {source}")]
    Resolver { ns: Name, source: NetError },
    #[error("no address for {ns} within {after:?}")]
    Timeout { ns: Name, after: Duration },
    #[error("no address for {ns}: {source}")]
    Resolve { ns: Name, source: NetError },
}

/// Addresses for an NS name without glue: from the primary when the name is in the zone, else
/// from the system resolver.
async fn lookup(
    server: SocketAddr,
    rec: &Record,
    ns: &Name,
    deadline: Deadline,
) -> Result<Vec<IpAddr>, LookupError> {
    if rec.zone.zone_of(ns) {
        let (a, aaaa) = tokio::try_join!(
            dns::query(server, ns, RecordType::A, deadline),
            dns::query(server, ns, RecordType::AAAA, deadline),
        )?;
        let mut ips = Vec::new();
        for reply in [&a, &aaaa] {
            let (found, _) = snapshot::addresses_of(server, &rec.zone, ns, reply)?;
            ips.extend(found);
        }
        if ips.is_empty() {
            return Err(LookupError::NoAddress {
                ns: ns.clone(),
                zone: rec.zone.clone(),
            });
        }
        return Ok(ips);
    }
    let resolver = hickory_resolver::TokioResolver::builder_tokio()
        .and_then(|b| b.build())
        .map_err(|source| LookupError::Resolver {
            ns: ns.clone(),
            source,
        })?;
    let found = tokio::time::timeout_at(deadline.at, resolver.lookup_ip(ns.clone()))
        .await
        .map_err(|_| LookupError::Timeout {
            ns: ns.clone(),
            after: deadline.total,
        })?
        .map_err(|source| LookupError::Resolve {
            ns: ns.clone(),
            source,
        })?;
    Ok(found.iter().collect())
}

/// 53, unless `ip` is the primary's own address: then the primary's port.
fn port_for(primary: SocketAddr, ip: IpAddr) -> SocketAddr {
    let port = if ip == primary.ip() {
        primary.port()
    } else {
        DNS_PORT
    };
    SocketAddr::new(ip, port)
}

fn as_text<S: Serializer>(name: &Name, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(name)
}

fn as_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::Record as Rr;
    use hickory_proto::rr::rdata::{A, NS};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn primary() -> SocketAddr {
        "127.0.0.1:5353".parse().unwrap()
    }

    fn rec() -> Record {
        Record::new("example.test", "mail", 60).unwrap()
    }

    fn seen(serial: u32, addrs: &[&str]) -> Option<Snapshot> {
        Some(Snapshot {
            serial,
            addrs: addrs.iter().map(|a| ip(a)).collect(),
            ttl: Some(60),
            negative_ttl: 300,
        })
    }

    fn view(ns: &str, addr: &str, seen: Option<Snapshot>) -> ServerView {
        ServerView {
            ns: name(ns),
            addr: Some(addr.parse().unwrap()),
            problem: seen
                .is_none()
                .then(|| "no answer from DNS server".to_owned()),
            seen,
        }
    }

    fn before() -> Snapshot {
        Snapshot {
            serial: 1,
            addrs: vec![ip("10.0.0.25")],
            ttl: Some(3600),
            negative_ttl: 300,
        }
    }

    #[test]
    fn consistent_when_all_serve_want_at_one_serial() {
        let want = vec![ip("10.0.0.26")];
        let servers = vec![
            view(
                "ns1.example.test.",
                "127.0.0.1:5353",
                seen(2, &["10.0.0.26"]),
            ),
            view("ns2.example.test.", "192.0.2.2:53", seen(2, &["10.0.0.26"])),
        ];
        let v = judge(&rec(), want, servers, &before());
        assert!(v.consistent);
        assert!(v.problems().is_empty());
        assert_eq!(v.convergence, Duration::from_secs(3600));
        assert_eq!(v.negative_ttl, 300);
    }

    #[test]
    fn a_stale_secondary_or_a_silent_one_is_inconsistent() {
        let want = vec![ip("10.0.0.26")];
        let stale = vec![
            view(
                "ns1.example.test.",
                "127.0.0.1:5353",
                seen(2, &["10.0.0.26"]),
            ),
            view("ns2.example.test.", "192.0.2.2:53", seen(1, &["10.0.0.25"])),
        ];
        let v = judge(&rec(), want.clone(), stale, &before());
        assert!(!v.consistent);
        assert_eq!(
            v.problems(),
            vec!["ns2.example.test. (192.0.2.2:53) serves 10.0.0.25 at serial 1"]
        );
        let silent = vec![
            view(
                "ns1.example.test.",
                "127.0.0.1:5353",
                seen(2, &["10.0.0.26"]),
            ),
            view("ns2.example.test.", "192.0.2.2:53", None),
        ];
        assert!(!judge(&rec(), want.clone(), silent, &before()).consistent);
        let serials = vec![
            view(
                "ns1.example.test.",
                "127.0.0.1:5353",
                seen(3, &["10.0.0.26"]),
            ),
            view("ns2.example.test.", "192.0.2.2:53", seen(2, &["10.0.0.26"])),
        ];
        let v = judge(&rec(), want.clone(), serials, &before());
        assert!(!v.consistent);
        assert_eq!(
            v.problems(),
            vec!["ns2.example.test. (192.0.2.2:53) serves 10.0.0.26 at serial 2"]
        );
        assert!(!judge(&rec(), want, vec![], &before()).consistent);
    }

    #[test]
    fn unresolvable_ns_is_reported() {
        let servers = vec![ServerView {
            ns: name("ns.elsewhere.test."),
            addr: None,
            seen: None,
            problem: Some("no address for ns.elsewhere.test.: NXDOMAIN".into()),
        }];
        let v = judge(&rec(), vec![ip("10.0.0.26")], servers, &before());
        assert!(!v.consistent);
        assert_eq!(
            v.problems(),
            vec!["ns.elsewhere.test.: no address for ns.elsewhere.test.: NXDOMAIN"]
        );
    }

    #[test]
    fn ns_names_and_glue_from_the_reply() {
        let zone = name("example.test.");
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        m.metadata.response_code = ResponseCode::NoError;
        m.add_query(Query::query(zone.clone(), RecordType::NS));
        for ns in ["ns1.example.test.", "ns.elsewhere.test."] {
            m.add_answer(Rr::from_rdata(zone.clone(), 60, RData::NS(NS(name(ns)))));
        }
        let glue_rr = Rr::from_rdata(
            name("ns1.example.test."),
            60,
            RData::A(A::new(127, 0, 0, 1)),
        );
        m.add_additional(glue_rr);
        let names = name_servers(primary(), &zone, &m).unwrap();
        assert_eq!(names.len(), 2);
        assert_eq!(glue(&m, &names[0]), vec![ip("127.0.0.1")]);
        assert!(glue(&m, &names[1]).is_empty());
        m.answers.clear();
        assert!(matches!(
            name_servers(primary(), &zone, &m),
            Err(DnsError::NoNameServers { .. })
        ));
    }

    #[test]
    fn the_primarys_address_keeps_its_port() {
        assert_eq!(port_for(primary(), ip("127.0.0.1")), primary());
        assert_eq!(
            port_for(primary(), ip("192.0.2.2")),
            "192.0.2.2:53".parse().unwrap()
        );
    }

    #[test]
    fn serializes_names_as_text_and_convergence_in_seconds() {
        let v = judge(&rec(), vec![ip("10.0.0.26")], vec![], &before());
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["zone"], "example.test.");
        assert_eq!(json["name"], "mail.example.test.");
        assert_eq!(json["convergence"], 3600);
    }
}
