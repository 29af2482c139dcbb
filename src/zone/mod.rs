//! The zone for a routes layout (issue 7, item 5): `plan` turns the layout into the records
//! the domain's zone must hold and renders them as a BIND zone file; `verify` reads the live
//! zone from its authoritative server (AXFR, else one query per planned name and type) and
//! `diff` lists every difference with the plan.
//!
//! Records are compared in presentation form: absolute lowercase names with the trailing dot,
//! so a planned record and one read off the wire are equal exactly when the zone says the same.

pub mod diff;
pub mod plan;
pub mod verify;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{RData, Record};

use crate::dns::{absolute, relative};

pub use diff::{Drift, DriftKind, diff};
pub use plan::{Plan, PlanError, plan, render};
pub use verify::{Fetched, Method, VerifyError, fetch, planned_names};

/// One resource record: owner (absolute, lowercase, trailing dot), TTL and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

/// The record data posta plans; anything else read from a live zone is kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Soa(Soa),
    Ns(String),
    Mx(u16, String),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// A type the plan never writes: its mnemonic and its data as the server presents it.
    Other(String, String),
}

/// SOA data; names absolute. The serial is ignored when comparing with the live zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

impl Data {
    /// The type's mnemonic (`MX`, `AAAA`).
    pub fn rtype(&self) -> &str {
        match self {
            Data::Soa(_) => "SOA",
            Data::Ns(_) => "NS",
            Data::Mx(..) => "MX",
            Data::A(_) => "A",
            Data::Aaaa(_) => "AAAA",
            Data::Other(t, _) => t,
        }
    }

    /// The data with names written relative to `origin` when inside it (zone-file style).
    pub fn relative_to(&self, origin: &str) -> String {
        let rel = |n: &str| relative(n, origin);
        match self {
            Data::Soa(s) => format!(
                "{} {} {} {} {} {} {}",
                rel(&s.mname),
                rel(&s.rname),
                s.serial,
                s.refresh,
                s.retry,
                s.expire,
                s.minimum
            ),
            Data::Ns(n) => rel(n),
            Data::Mx(p, n) => format!("{p} {}", rel(n)),
            Data::A(a) => a.to_string(),
            Data::Aaaa(a) => a.to_string(),
            Data::Other(_, text) => text.clone(),
        }
    }

    /// What a comparison with the live zone looks at: the SOA serial changes with every edit
    /// and says nothing about the zone's content, so it is left out.
    fn comparable(&self) -> Data {
        match self {
            Data::Soa(s) => Data::Soa(Soa {
                serial: 0,
                ..s.clone()
            }),
            other => other.clone(),
        }
    }

    /// Names this data points at that need an address (NS and MX targets).
    fn target(&self) -> Option<&str> {
        match self {
            Data::Ns(n) | Data::Mx(_, n) => Some(n),
            _ => None,
        }
    }
}

/// Absolute names, as dig prints them.
impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.relative_to(""))
    }
}

impl Rr {
    /// A record read from the wire, in the same form as a planned one.
    pub fn from_wire(r: &Record) -> Rr {
        let name = |n: &hickory_proto::rr::Name| absolute(&n.to_lowercase().to_ascii());
        let data = match &r.data {
            RData::SOA(s) => Data::Soa(Soa {
                mname: name(&s.mname),
                rname: name(&s.rname),
                serial: s.serial,
                refresh: wire_u32(s.refresh),
                retry: wire_u32(s.retry),
                expire: wire_u32(s.expire),
                minimum: s.minimum,
            }),
            RData::NS(ns) => Data::Ns(name(&ns.0)),
            RData::MX(mx) => Data::Mx(mx.preference, name(&mx.exchange)),
            RData::A(a) => Data::A(a.0),
            RData::AAAA(a) => Data::Aaaa(a.0),
            RData::TXT(t) => Data::Other("TXT".to_string(), quoted(&t.txt_data)),
            other => Data::Other(other.record_type().to_string(), other.to_string()),
        };
        Rr {
            name: name(&r.name),
            ttl: r.ttl,
            data,
        }
    }
}

/// TXT strings as a zone file writes them (RFC 1035 §5.1): quoted, `"` and `\\` escaped,
/// other bytes outside printable ASCII as `\\DDD`.
fn quoted(strings: &[Box<[u8]>]) -> String {
    let one = |s: &[u8]| {
        let mut out = String::from("\"");
        for &b in s {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x20..=0x7e => out.push(char::from(b)),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('"');
        out
    };
    strings.iter().map(|s| one(s)).collect::<Vec<_>>().join(" ")
}

/// hickory keeps the SOA timers as i32; on the wire they are 32-bit unsigned (RFC 1035 §3.3.13).
fn wire_u32(v: i32) -> u32 {
    u32::from_ne_bytes(v.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_records_take_the_planned_form() {
        use hickory_proto::rr::Name;
        use hickory_proto::rr::rdata::MX;
        let r = Record::from_rdata(
            Name::from_ascii("Inkacoca.ORG.").unwrap(),
            60,
            RData::MX(MX::new(
                10,
                Name::from_ascii("Switch.inkacoca.org.").unwrap(),
            )),
        );
        let rr = Rr::from_wire(&r);
        assert_eq!(rr.name, "inkacoca.org.");
        assert_eq!(rr.data, Data::Mx(10, "switch.inkacoca.org.".into()));
        assert_eq!(rr.data.to_string(), "10 switch.inkacoca.org.");
        let txt = hickory_proto::rr::rdata::TXT::from_bytes(vec![&b"say \"hi\""[..], &[1u8][..]]);
        let rr = Rr::from_wire(&Record::from_rdata(Name::root(), 60, RData::TXT(txt)));
        assert_eq!(rr.data.to_string(), r#""say \"hi\"" "\001""#);
    }
}
