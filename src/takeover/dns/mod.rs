//! DNS takeover: move mailserver1's A/AAAA record to mailserver2's address, and back.
//!
//! - [`swap`]: one RFC 2136 UPDATE signed with TSIG (RFC 8945) that replaces the record's
//!   addresses, with the prerequisite that it still holds the expected ones (compare-and-swap,
//!   RFC 2136 §2.4.2/§2.4.3), so two runs or two backups cannot fight. Failback is the same call
//!   with the roles reversed.
//! - [`verify`]: asks every authoritative server of the zone (NS set → SOA serial and the
//!   record), never a caching resolver, and estimates the worst-case client convergence from the
//!   old record's TTL and the zone's negative TTL (docs/failover.md §2).
//! - [`zonefile::swap`]: the same change for a static BIND zone file, line-preserving, with the
//!   SOA serial bumped; the caller runs the reload command, then [`verify`].
//!
//! Sans-I/O parts (key-file parsing, the UPDATE message, reply interpretation, zone-file editing,
//! the verdict) are pure and unit-tested; [`crate::dns`] owns the sockets.

mod error;
mod key;
mod snapshot;
mod update;
mod verify;
pub mod zonefile;

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::dns::parse_name;

pub use error::DnsError;
pub use key::{FUDGE, TsigKey, parse_key_file, read_key_file};
pub use snapshot::Snapshot;
pub use update::{preview, swap};
pub use verify::{ServerView, Verification, verify};

/// The record a takeover moves: a name inside a zone, and the TTL takeover and failback write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The zone (fully qualified): where the UPDATE goes, whose NS set is verified.
    pub zone: Name,
    /// The record's owner (fully qualified, inside `zone`).
    pub name: Name,
    /// TTL of the written A/AAAA records, from the site file.
    pub ttl: u32,
}

impl Record {
    /// `name` may be absolute (`mail.example.test` or `mail.example.test.`), a single label
    /// relative to the zone (`mail`), or `@` for the apex; it must be inside `zone`. A dotted
    /// name is taken as absolute: `mail.other.test` is refused as outside `example.test`, not
    /// silently turned into `mail.other.test.example.test`.
    pub fn new(zone: &str, name: &str, ttl: u32) -> Result<Record, DnsError> {
        let zone_name = parse_name(zone)?;
        let owner = if name == "@" {
            zone_name.clone()
        } else if name.contains('.') {
            parse_name(name)?
        } else {
            parse_name(&format!("{name}.{}", zone.trim_end_matches('.')))?
        };
        if !zone_name.zone_of(&owner) {
            return Err(DnsError::OutsideZone {
                name: owner.to_string(),
                zone: zone_name.to_string(),
            });
        }
        Ok(Record {
            zone: zone_name,
            name: owner,
            ttl,
        })
    }

    /// The record the site file's `[dns]` section names.
    pub fn from_site(dns: &crate::config::DnsRecord) -> Result<Record, DnsError> {
        Record::new(&dns.zone, &dns.name, dns.ttl)
    }
}

/// What [`swap`] (or [`zonefile::swap`]) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The record held the expected addresses and now holds the new ones. `before` is what
    /// the server (or file) served just before: its serial and the old record's TTL.
    Done { before: Snapshot },
    /// The record already held exactly the new addresses (a repeated takeover): nothing was
    /// changed. `current` is what is served now.
    AlreadyDone { current: Snapshot },
}

impl Swap {
    /// The state clients may still have cached: the one before the change, or, when nothing
    /// changed, the current one (an earlier takeover's own convergence is not known here).
    pub fn before(&self) -> &Snapshot {
        match self {
            Swap::Done { before } => before,
            Swap::AlreadyDone { current } => current,
        }
    }
}

/// Worst-case time until every client sees `want`: a cache that fetched the old record just
/// before the change keeps it for its TTL; a cache that was told "no such record" (an address
/// family `want` adds, or a name that had none) keeps that for the negative TTL (RFC 2308 §5).
/// OS, browser and application caches can add their own floors on top.
pub fn convergence(before: &Snapshot, want: &[IpAddr]) -> Duration {
    let old = before.ttl.unwrap_or(0);
    let family_added = want
        .iter()
        .any(|w| !before.addrs.iter().any(|b| b.is_ipv4() == w.is_ipv4()));
    let negative = if family_added { before.negative_ttl } else { 0 };
    Duration::from_secs(u64::from(old.max(negative)))
}

/// Sorted, without repeats: the form addresses are compared in.
fn normalize(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let mut v = addrs.to_vec();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn record_names_relative_absolute_and_apex() {
        let want = Name::from_ascii("mail.example.test.").unwrap();
        for name in [
            "mail",
            "mail.example.test",
            "mail.example.test.",
            "MAIL.Example.Test",
        ] {
            let r = Record::new("example.test", name, 60).unwrap();
            assert_eq!(r.name, want, "{name}");
            assert_eq!(r.zone, Name::from_ascii("example.test.").unwrap());
        }
        let apex = Record::new("example.test.", "@", 60).unwrap();
        assert_eq!(apex.name, apex.zone);
        // Dotted means absolute, trailing dot or not.
        let e = Record::new("example.test", "mail.other.test", 60).unwrap_err();
        assert!(matches!(e, DnsError::OutsideZone { .. }), "{e}");
    }

    #[test]
    fn names_outside_the_zone_or_invalid_are_refused() {
        let e = Record::new("example.test", "mail.other.test.", 60).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mail.other.test. is not inside zone example.test."
        );
        assert!(matches!(
            Record::new("", "mail", 60),
            Err(DnsError::Name(_))
        ));
        assert!(matches!(
            Record::new("example.test", "a..b", 60),
            Err(DnsError::Name(_))
        ));
    }

    fn snap(addrs: &[&str], ttl: Option<u32>) -> Snapshot {
        Snapshot {
            serial: 1,
            addrs: addrs.iter().map(|a| ip(a)).collect(),
            ttl,
            negative_ttl: 900,
        }
    }

    #[test]
    fn convergence_is_the_old_ttl_when_families_stay() {
        let before = snap(&["10.0.0.25"], Some(3600));
        assert_eq!(
            convergence(&before, &[ip("10.0.0.26")]),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn convergence_counts_negative_caching_for_added_families() {
        let before = snap(&["10.0.0.25"], Some(60));
        let want = [ip("10.0.0.26"), ip("2001:db8::26")];
        assert_eq!(convergence(&before, &want), Duration::from_secs(900));
        let absent = snap(&[], None);
        assert_eq!(
            convergence(&absent, &[ip("10.0.0.26")]),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn normalize_sorts_and_dedups() {
        let v = normalize(&[ip("10.0.0.2"), ip("::1"), ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(v, vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("::1")]);
    }
}
