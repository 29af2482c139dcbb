//! Reads the live zone from its authoritative server: a zone transfer (AXFR over TCP, RFC
//! 5936) when the server allows it, which shows every record; otherwise one non-recursive
//! query per planned name for each common type, which shows what the plan names and anything
//! else living at those names, but not records at names the plan does not know.
//!
//! DNSSEC bookkeeping a signing server adds by itself (RRSIG, NSEC, NSEC3, NSEC3PARAM, DNSKEY,
//! CDS, CDNSKEY and BIND's private type 65534) is left out: it is not part of what posta plans.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::ProtoError;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::Rr;
use crate::dns::{self, Deadline, WireError, mnemonic};

/// The whole transfer: a routes zone is tens of records.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(15);
/// Each query (UDP retransmitted every second meanwhile).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Queries in flight at once.
const PARALLEL: usize = 16;
/// What is asked at each planned name without a transfer: the planned types and the ones
/// most likely to sit beside them by mistake (a CNAME would hide everything else).
const QUERY_TYPES: [RecordType; 8] = [
    RecordType::SOA,
    RecordType::NS,
    RecordType::MX,
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::SRV,
];

/// How the live zone was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Axfr,
    /// The transfer failed for this reason; each planned name was queried instead.
    Queries {
        axfr: String,
    },
}

/// The live zone's records and how they were read.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub records: Vec<Rr>,
    pub method: Method,
}

/// Why the live zone could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid zone name {name}: {source}")]
    Name { name: String, source: ProtoError },
    #[error(
        "cannot read zone {zone} from {server}: the transfer failed ({axfr}) and so did the \
         queries: {query}"
    )]
    Unreachable {
        zone: String,
        server: SocketAddr,
        axfr: String,
        #[source]
        query: WireError,
    },
    #[error(
        "DNS server {server} does not answer authoritatively for zone {zone} ({detail}): ask \
         the zone's primary with --server"
    )]
    NotAuthoritative {
        server: SocketAddr,
        zone: String,
        detail: String,
    },
}

/// Why the zone could not be transferred: said in [`Method::Queries`] when the queries worked.
#[derive(Debug, thiserror::Error)]
enum TransferError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("{server} answered {}", mnemonic(*.rcode))]
    Answered {
        server: SocketAddr,
        rcode: ResponseCode,
    },
    #[error("{server} did not send the whole zone")]
    Incomplete { server: SocketAddr },
}

/// Reads zone `origin` (absolute) from `server`, by transfer or else by querying `names`.
pub async fn fetch(
    server: SocketAddr,
    origin: &str,
    names: &[String],
) -> Result<Fetched, VerifyError> {
    let zone = Name::from_ascii(origin).map_err(|source| VerifyError::Name {
        name: origin.to_string(),
        source,
    })?;
    let axfr = match transfer(server, &zone).await {
        Ok(records) => {
            return Ok(Fetched {
                records,
                method: Method::Axfr,
            });
        }
        Err(reason) => reason.to_string(),
    };
    tracing::info!(%server, zone = origin, reason = axfr, "no zone transfer, querying");
    let records = queries(server, origin, &zone, names, &axfr).await?;
    Ok(Fetched {
        records,
        method: Method::Queries { axfr },
    })
}

/// The zone by AXFR, or why not (as the operator would want it said).
async fn transfer(server: SocketAddr, zone: &Name) -> Result<Vec<Rr>, TransferError> {
    let messages = dns::transfer(server, zone, Deadline::after(TRANSFER_TIMEOUT)).await?;
    let mut records = Vec::new();
    for m in &messages {
        let rcode = m.metadata.response_code;
        if rcode != ResponseCode::NoError {
            return Err(TransferError::Answered { server, rcode });
        }
        records.extend(m.answers.iter().filter(|r| !bookkeeping(r.record_type())));
    }
    let soas = records
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .count();
    if soas < 2 {
        return Err(TransferError::Incomplete { server });
    }
    // The closing SOA repeats the opening one (RFC 5936 §2.2).
    records.pop();
    Ok(records.into_iter().map(Rr::from_wire).collect())
}

/// Records a signing server adds by itself.
fn bookkeeping(t: RecordType) -> bool {
    matches!(
        t,
        RecordType::RRSIG
            | RecordType::NSEC
            | RecordType::NSEC3
            | RecordType::NSEC3PARAM
            | RecordType::DNSKEY
            | RecordType::CDS
            | RecordType::CDNSKEY
    ) || u16::from(t) == 65534
}

/// Every (name, type) of `names` × [`QUERY_TYPES`], asked concurrently.
async fn queries(
    server: SocketAddr,
    origin: &str,
    zone: &Name,
    names: &[String],
    axfr: &str,
) -> Result<Vec<Rr>, VerifyError> {
    // The apex SOA first: an unreachable or wrong server says so once, clearly.
    let apex = dns::query(
        server,
        zone,
        RecordType::SOA,
        Deadline::after(QUERY_TIMEOUT),
    )
    .await
    .map_err(|query| VerifyError::Unreachable {
        zone: origin.to_string(),
        server,
        axfr: axfr.to_string(),
        query,
    })?;
    if !apex.metadata.authoritative || apex.metadata.response_code != ResponseCode::NoError {
        return Err(VerifyError::NotAuthoritative {
            server,
            zone: origin.to_string(),
            detail: format!(
                "SOA query answered {}{}",
                mnemonic(apex.metadata.response_code),
                if apex.metadata.authoritative {
                    ""
                } else {
                    " without the AA bit"
                }
            ),
        });
    }
    let mut asks = Vec::new();
    for name in names {
        let parsed = Name::from_ascii(name).map_err(|source| VerifyError::Name {
            name: name.clone(),
            source,
        })?;
        asks.extend(QUERY_TYPES.iter().map(|t| (parsed.clone(), *t)));
    }
    let replies: Vec<Result<(Name, RecordType, Message), WireError>> =
        futures::stream::iter(asks.into_iter().map(|(name, t)| async move {
            let m = dns::query(server, &name, t, Deadline::after(QUERY_TIMEOUT)).await?;
            Ok((name, t, m))
        }))
        .buffered(PARALLEL)
        .collect()
        .await;
    let mut records = Vec::new();
    for reply in replies {
        let (name, t, m) = reply.map_err(|query| VerifyError::Unreachable {
            zone: origin.to_string(),
            server,
            axfr: axfr.to_string(),
            query,
        })?;
        records.extend(answers(&name, t, &m).into_iter().map(Rr::from_wire));
    }
    Ok(records)
}

/// The records of `name` and `t` in a reply: the answer section of an authoritative answer, or
/// the NS set of a referral when the name itself is delegated away.
fn answers<'a>(name: &Name, t: RecordType, m: &'a Message) -> Vec<&'a hickory_proto::rr::Record> {
    let section = if m.metadata.authoritative {
        &m.answers
    } else if t == RecordType::NS {
        &m.authorities
    } else {
        return Vec::new();
    };
    section
        .iter()
        .filter(|r| r.record_type() == t && r.name.eq_ignore_root_case(name))
        .collect()
}

/// The planned owner names, each once, in plan order.
pub fn planned_names<'a>(records: impl Iterator<Item = &'a Rr>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in records {
        if !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, NS};
    use hickory_proto::rr::{RData, Record};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn a_referral_counts_only_for_the_ns_question() {
        let mut m = Message::query();
        m.metadata.authoritative = false;
        m.add_authority(Record::from_rdata(
            name("lima.inkacoca.org."),
            60,
            RData::NS(NS(name("ns.lima.example."))),
        ));
        let n = name("lima.inkacoca.org.");
        assert_eq!(answers(&n, RecordType::NS, &m).len(), 1);
        assert!(answers(&n, RecordType::A, &m).is_empty());
        m.metadata.authoritative = true;
        m.add_answer(Record::from_rdata(
            n.clone(),
            60,
            RData::A(A::new(1, 2, 3, 4)),
        ));
        m.add_answer(Record::from_rdata(
            name("other.inkacoca.org."),
            60,
            RData::A(A::new(1, 2, 3, 5)),
        ));
        assert_eq!(answers(&n, RecordType::A, &m).len(), 1);
        assert!(bookkeeping(RecordType::RRSIG) && bookkeeping(RecordType::Unknown(65534)));
        assert!(!bookkeeping(RecordType::TXT));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_said_once() {
        // A bound UDP socket that never answers, and no TCP listener on its port.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = silent.local_addr().unwrap();
        let zone = name("inkacoca.org.");
        let e = tokio::time::timeout(
            Duration::from_secs(20),
            queries(server, "inkacoca.org.", &zone, &[], "refused"),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(matches!(e, VerifyError::Unreachable { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("cannot read zone inkacoca.org. from"),
            "{e}"
        );
    }
}
