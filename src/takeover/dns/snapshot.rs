//! What one authoritative server serves for the record right now: the zone's SOA serial and
//! negative-caching TTL, and the name's A/AAAA addresses with their TTL. Read before an update
//! (for the convergence estimate and the serial it started from), after a failed prerequisite
//! (to tell "already done" from "someone else changed it"), and from every NS by `verify`.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::Serialize;

use super::{DnsError, Record};
use crate::dns::{self, Deadline, mnemonic};

/// One server's view of the zone and the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The zone's SOA serial.
    pub serial: u32,
    /// The name's A and AAAA addresses, sorted; empty when it has none (NODATA or NXDOMAIN).
    pub addrs: Vec<IpAddr>,
    /// The longest TTL among those records: how long a cache may keep them.
    pub ttl: Option<u32>,
    /// How long a cache may keep "no such record": min(SOA MINIMUM, SOA TTL) (RFC 2308 §5).
    pub negative_ttl: u32,
}

/// Reads the snapshot from `server` with three concurrent non-recursive queries (SOA, A, AAAA).
/// Every answer must be authoritative: a server that is not is reported as lame.
pub(crate) async fn read(
    server: SocketAddr,
    rec: &Record,
    deadline: Deadline,
) -> Result<Snapshot, DnsError> {
    let (soa, a, aaaa) = tokio::try_join!(
        dns::query(server, &rec.zone, RecordType::SOA, deadline),
        dns::query(server, &rec.name, RecordType::A, deadline),
        dns::query(server, &rec.name, RecordType::AAAA, deadline),
    )?;
    let (serial, negative_ttl) = soa_of(server, &rec.zone, &soa)?;
    let mut addrs = Vec::new();
    let mut ttl = None;
    for reply in [&a, &aaaa] {
        let (found, t) = addresses_of(server, &rec.zone, &rec.name, reply)?;
        addrs.extend(found);
        ttl = ttl.max(t);
    }
    addrs.sort();
    Ok(Snapshot {
        serial,
        addrs,
        ttl,
        negative_ttl,
    })
}

/// Serial and negative TTL from an SOA reply.
pub(crate) fn soa_of(
    server: SocketAddr,
    zone: &Name,
    reply: &Message,
) -> Result<(u32, u32), DnsError> {
    let what = || format!("SOA query for {zone}");
    check(server, zone, reply, what)?;
    reply
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) if r.name == *zone => Some((soa.serial, soa.minimum.min(r.ttl))),
            _ => None,
        })
        .ok_or_else(|| DnsError::Rejected {
            server,
            what: what(),
            rcode: "no SOA record (is the zone name right?)".into(),
        })
}

/// A or AAAA addresses of `name` and their longest TTL; NODATA and NXDOMAIN mean none.
pub(crate) fn addresses_of(
    server: SocketAddr,
    zone: &Name,
    name: &Name,
    reply: &Message,
) -> Result<(Vec<IpAddr>, Option<u32>), DnsError> {
    let qtype = reply
        .queries
        .first()
        .map_or(RecordType::A, |q| q.query_type());
    let nxdomain = reply.metadata.response_code == ResponseCode::NXDomain;
    if !(nxdomain && reply.metadata.authoritative) {
        check(server, zone, reply, || format!("{qtype} query for {name}"))?;
    }
    let mut addrs = Vec::new();
    let mut ttl = None;
    for r in reply.answers.iter().filter(|r| r.name == *name) {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        addrs.push(ip);
        ttl = ttl.max(Some(r.ttl));
    }
    Ok((addrs, ttl))
}

/// NOERROR and the AA bit, or the error that says what the server did instead.
pub(crate) fn check(
    server: SocketAddr,
    zone: &Name,
    reply: &Message,
    what: impl Fn() -> String,
) -> Result<(), DnsError> {
    match reply.metadata.response_code {
        ResponseCode::NoError if reply.metadata.authoritative => Ok(()),
        ResponseCode::NoError | ResponseCode::Refused | ResponseCode::NotAuth => {
            Err(DnsError::Lame {
                server,
                zone: zone.to_string(),
            })
        }
        ResponseCode::ServFail => Err(DnsError::ServerFailure {
            server,
            what: what(),
        }),
        rcode => Err(DnsError::Rejected {
            server,
            what: what(),
            rcode: mnemonic(rcode),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, AAAA, SOA};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn server() -> SocketAddr {
        "127.0.0.1:5353".parse().unwrap()
    }

    fn reply(q: &str, qtype: RecordType, rcode: ResponseCode, aa: bool) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.metadata.authoritative = aa;
        m.add_query(Query::query(name(q), qtype));
        m
    }

    #[test]
    fn soa_gives_serial_and_negative_ttl() {
        let zone = name("example.test.");
        let mut m = reply(
            "example.test.",
            RecordType::SOA,
            ResponseCode::NoError,
            true,
        );
        let soa = SOA::new(
            name("ns1.example.test."),
            name("h.example.test."),
            7,
            60,
            60,
            600,
            900,
        );
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            zone.clone(),
            300,
            RData::SOA(soa),
        ));
        // RFC 2308 §5: the smaller of the SOA's TTL (300) and its MINIMUM field (900).
        assert_eq!(soa_of(server(), &zone, &m).unwrap(), (7, 300));
    }

    #[test]
    fn addresses_of_the_name_only_and_longest_ttl() {
        let zone = name("example.test.");
        let mail = name("mail.example.test.");
        let mut m = reply(
            "mail.example.test.",
            RecordType::A,
            ResponseCode::NoError,
            true,
        );
        let rec = |n: &Name, ttl, ip: &str| {
            hickory_proto::rr::Record::from_rdata(n.clone(), ttl, RData::A(A(ip.parse().unwrap())))
        };
        m.add_answer(rec(&mail, 60, "10.0.0.25"));
        m.add_answer(rec(&mail, 90, "10.0.0.27"));
        m.add_answer(rec(&name("other.example.test."), 900, "10.9.9.9"));
        let (addrs, ttl) = addresses_of(server(), &zone, &mail, &m).unwrap();
        assert_eq!(addrs.len(), 2);
        assert_eq!(ttl, Some(90));
        let v6 = hickory_proto::rr::Record::from_rdata(
            mail.clone(),
            30,
            RData::AAAA(AAAA("2001:db8::25".parse().unwrap())),
        );
        let mut m6 = reply(
            "mail.example.test.",
            RecordType::AAAA,
            ResponseCode::NoError,
            true,
        );
        m6.add_answer(v6);
        let (addrs, _) = addresses_of(server(), &zone, &mail, &m6).unwrap();
        assert_eq!(addrs, vec!["2001:db8::25".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn nxdomain_is_no_address_but_refused_is_lame() {
        let zone = name("example.test.");
        let mail = name("mail.example.test.");
        let m = reply(
            "mail.example.test.",
            RecordType::A,
            ResponseCode::NXDomain,
            true,
        );
        assert_eq!(
            addresses_of(server(), &zone, &mail, &m).unwrap(),
            (vec![], None)
        );
        let m = reply(
            "mail.example.test.",
            RecordType::A,
            ResponseCode::Refused,
            false,
        );
        let e = addresses_of(server(), &zone, &mail, &m).unwrap_err();
        assert!(matches!(e, DnsError::Lame { .. }), "{e}");
        let m = reply(
            "mail.example.test.",
            RecordType::A,
            ResponseCode::NoError,
            false,
        );
        assert!(matches!(
            addresses_of(server(), &zone, &mail, &m),
            Err(DnsError::Lame { .. })
        ));
        let m = reply(
            "mail.example.test.",
            RecordType::A,
            ResponseCode::ServFail,
            false,
        );
        assert!(
            addresses_of(server(), &zone, &mail, &m)
                .unwrap_err()
                .is_transient()
        );
    }
}
