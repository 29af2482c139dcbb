//! The compare-and-swap UPDATE (RFC 2136) and what the server's answer means.
//!
//! One message, so there is never a moment without the record (docs/failover.md §2):
//!
//! - zone section: the zone, type SOA;
//! - prerequisites, per address family: "RRset exists (value dependent)" with exactly the
//!   expected addresses (§2.4.2), or "RRset does not exist" (§2.4.3) when none of that family is
//!   expected; together they say "the name holds exactly `expect`";
//! - updates: delete the A and AAAA RRsets (§2.5.2), add `to` with the site's TTL (§2.5.1).
//!
//! A failed prerequisite (NXRRSET/YXRRSET) is followed by a read: the record already holding
//! exactly `to` is a repeated takeover ([`Swap::AlreadyDone`]), anything else is
//! [`DnsError::NotExpected`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, RData, Record as Rr, RecordType};

use super::{DnsError, Record, Swap, TsigKey, normalize, snapshot};
use crate::clock::unix_now;
use crate::dns::{self, Deadline, WireError, mnemonic};

/// Replaces the A/AAAA addresses of `rec.name` with `to` (TTL `rec.ttl`) on `server`, the
/// zone's primary, if and only if they are exactly `expect` now; signed with `key`. Within
/// `timeout` overall (UDP retried, TCP for large or truncated messages).
///
/// Before the update the record and SOA are read from `server` (the serial and TTL the change
/// starts from); if the server refuses even that, nothing is sent.
pub async fn swap(
    server: SocketAddr,
    key: &TsigKey,
    rec: &Record,
    expect: &[IpAddr],
    to: &[IpAddr],
    timeout: Duration,
) -> Result<Swap, DnsError> {
    let (expect, to) = (normalize(expect), normalize(to));
    check_request(rec, &expect, &to)?;
    let deadline = Deadline::after(timeout);
    let before = snapshot::read(server, rec, deadline).await?;
    let what = format!("update of {} in zone {}", rec.name, rec.zone);

    let mut msg = build(rec, &expect, &to);
    let now = unix_now();
    let verifier = msg
        .finalize(key.signer(), now)
        .map_err(|e| DnsError::Invalid(format!("cannot sign the {what}: {e}")))?;
    let bytes = msg
        .to_vec()
        .map_err(|e| DnsError::Invalid(format!("cannot encode the {what}: {e}")))?;
    tracing::debug!(%server, zone = %rec.zone, name = %rec.name, key = %key.display_name(),
        bytes = bytes.len(), "sending signed update");
    let reply_bytes = dns::exchange(server, &bytes, deadline, &what).await?;
    let reply = Message::from_vec(&reply_bytes).map_err(|e| {
        DnsError::Wire(WireError::Malformed {
            server,
            what: what.clone(),
            reason: e.to_string(),
        })
    })?;
    let verified = match verifier {
        Some(mut v) => v
            .verify(&reply_bytes)
            .map(drop)
            .map_err(|e| SignatureError::Invalid(e.to_string())),
        None => Err(SignatureError::NoVerifier),
    };
    let ctx = Context {
        server,
        key,
        rec,
        what: &what,
    };
    match interpret(&reply, verified, &ctx, now)? {
        Outcome::Applied => Ok(Swap::Done { before }),
        Outcome::PrerequisiteFailed => {
            let current = snapshot::read(server, rec, deadline).await?;
            judge(server, rec, &expect, &to, current)
        }
    }
}

/// What [`swap`] would do now, found by reading the record and changing nothing, so a dry run
/// fails exactly where the compare-and-swap would: `Done` means the record holds `expect` and
/// the update would apply.
pub async fn preview(
    server: SocketAddr,
    rec: &Record,
    expect: &[IpAddr],
    to: &[IpAddr],
    timeout: Duration,
) -> Result<Swap, DnsError> {
    let (expect, to) = (normalize(expect), normalize(to));
    check_request(rec, &expect, &to)?;
    let current = snapshot::read(server, rec, Deadline::after(timeout)).await?;
    judge(server, rec, &expect, &to, current)
}

/// The compare of the compare-and-swap (RFC 2136 §2.4.2: the RRset must be exactly `expect`);
/// `expect` and `to` normalized.
fn judge(
    server: SocketAddr,
    rec: &Record,
    expect: &[IpAddr],
    to: &[IpAddr],
    current: snapshot::Snapshot,
) -> Result<Swap, DnsError> {
    if current.addrs == to {
        Ok(Swap::AlreadyDone { current })
    } else if current.addrs == expect {
        Ok(Swap::Done { before: current })
    } else {
        Err(DnsError::NotExpected {
            name: rec.name.to_string(),
            at: server.to_string(),
            expected: expect.to_vec(),
            found: current.addrs,
        })
    }
}

/// Refuses requests that would delete the record or compare against nothing.
pub(crate) fn check_request(
    rec: &Record,
    expect: &[IpAddr],
    to: &[IpAddr],
) -> Result<(), DnsError> {
    let name = &rec.name;
    if to.is_empty() {
        return Err(DnsError::Invalid(format!(
            "no new address for {name}: refusing to leave it without A/AAAA records"
        )));
    }
    if expect.is_empty() {
        return Err(DnsError::Invalid(format!(
            "no expected address for {name}: the compare-and-swap needs the address it replaces"
        )));
    }
    if expect == to {
        return Err(DnsError::Invalid(format!(
            "the expected and the new addresses of {name} are the same: nothing to swap"
        )));
    }
    Ok(())
}

/// The UPDATE message, unsigned. `expect` and `to` are normalized and non-empty.
pub(crate) fn build(rec: &Record, expect: &[IpAddr], to: &[IpAddr]) -> Message {
    let mut msg = Message::query();
    msg.metadata.op_code = OpCode::Update;
    msg.metadata.recursion_desired = false;
    let mut zone = Query::query(rec.zone.clone(), RecordType::SOA);
    zone.set_query_class(DNSClass::IN);
    msg.add_zone(zone);
    for rtype in [RecordType::A, RecordType::AAAA] {
        let family: Vec<&IpAddr> = expect.iter().filter(|ip| rtype_of(ip) == rtype).collect();
        if family.is_empty() {
            // §2.4.3 RRset does not exist: CLASS NONE, TTL 0, no RDATA.
            let mut none = Rr::update0(rec.name.clone(), 0, rtype);
            none.dns_class = DNSClass::NONE;
            msg.add_pre_requisite(none);
        } else {
            // §2.4.2 RRset exists (value dependent): the whole RRset, CLASS IN, TTL 0.
            for ip in family {
                msg.add_pre_requisite(Rr::from_rdata(rec.name.clone(), 0, rdata(ip)));
            }
        }
    }
    for rtype in [RecordType::A, RecordType::AAAA] {
        // §2.5.2 Delete an RRset: CLASS ANY, TTL 0, no RDATA.
        let mut delete = Rr::update0(rec.name.clone(), 0, rtype);
        delete.dns_class = DNSClass::ANY;
        msg.add_update(delete);
    }
    for ip in to {
        msg.add_update(Rr::from_rdata(rec.name.clone(), rec.ttl, rdata(ip)));
    }
    msg
}

fn rtype_of(ip: &IpAddr) -> RecordType {
    match ip {
        IpAddr::V4(_) => RecordType::A,
        IpAddr::V6(_) => RecordType::AAAA,
    }
}

fn rdata(ip: &IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(*v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
    }
}

/// What an accepted reply means for the swap.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// NOERROR with a valid signature: the change is in the zone.
    Applied,
    /// NXRRSET/YXRRSET: the record is not what `expect` says.
    PrerequisiteFailed,
}

pub(crate) struct Context<'a> {
    pub server: SocketAddr,
    pub key: &'a TsigKey,
    pub rec: &'a Record,
    pub what: &'a str,
}

/// Why a reply's TSIG signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    /// The verifier's own message.
    #[error("{0}")]
    Invalid(String),
    #[error("the signer made no verifier")]
    NoVerifier,
}

/// Reads the server's real answer, including TSIG errors in unsigned replies (the case
/// hickory's own client reports as "truncated HMACs"). Error replies are believed without a
/// signature (RFC 8945 §5.3.2 says they come unsigned; believing them can only make us stop);
/// success is believed only with a valid one (`verified`).
pub(crate) fn interpret(
    reply: &Message,
    verified: Result<(), SignatureError>,
    ctx: &Context<'_>,
    now: u64,
) -> Result<Outcome, DnsError> {
    let server = ctx.server;
    let key = ctx.key.display_name();
    let file = ctx.key.file.clone();
    let tsig = reply.signature.as_ref().map(|s| &s.data);
    match (reply.metadata.response_code, tsig.and_then(|t| t.error)) {
        (_, Some(TsigError::BadSig)) => Err(DnsError::BadSignature { server, key, file }),
        (_, Some(TsigError::BadKey)) => Err(DnsError::UnknownKey {
            server,
            key,
            algorithm: ctx.key.algorithm.to_string(),
            file,
        }),
        (_, Some(TsigError::BadTime)) => Err(DnsError::ClockSkew {
            server,
            skew: tsig
                .and_then(|t| server_time(&t.other))
                .map(|t| t - now as i64),
            fudge: ctx.key.signer().fudge(),
        }),
        (rcode, Some(e)) => Err(DnsError::Rejected {
            server,
            what: ctx.what.to_owned(),
            rcode: format!("{} with TSIG error {e:?}", mnemonic(rcode)),
        }),
        (ResponseCode::NoError, None) => match verified {
            Ok(()) => Ok(Outcome::Applied),
            Err(why) => Err(DnsError::Unverified {
                server,
                key,
                reason: why.to_string(),
            }),
        },
        (ResponseCode::NXRRSet | ResponseCode::YXRRSet, None) => Ok(Outcome::PrerequisiteFailed),
        (ResponseCode::Refused, None) => Err(DnsError::Refused {
            server,
            zone: ctx.rec.zone.to_string(),
            key,
        }),
        (ResponseCode::NotAuth, None) => Err(DnsError::NotAuthoritative {
            server,
            zone: ctx.rec.zone.to_string(),
        }),
        (ResponseCode::ServFail, None) => Err(DnsError::ServerFailure {
            server,
            what: ctx.what.to_owned(),
        }),
        (rcode, None) => Err(DnsError::Rejected {
            server,
            what: ctx.what.to_owned(),
            rcode: mnemonic(rcode),
        }),
    }
}

/// BADTIME replies carry the server's clock as a 48-bit count of seconds (RFC 8945 §5.2.3).
fn server_time(other: &[u8]) -> Option<i64> {
    let bytes: [u8; 6] = other.try_into().ok()?;
    Some(bytes.iter().fold(0i64, |acc, &b| (acc << 8) | i64::from(b)))
}

#[cfg(test)]
mod tests;
