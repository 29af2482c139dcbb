//! What can go wrong moving a DNS record, worded for the operator and sorted for the caller:
//! [`DnsError::is_transient`] says whether retrying the same takeover later may succeed
//! (STYLE.md §5). Messages name the zone, record, server or file, and never a TSIG secret.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::dns::{NameError, WireError};
use crate::secret::SecretError;

/// A DNS takeover failure.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The key file is missing, unreadable or readable by group/others.
    #[error(transparent)]
    KeyFileAccess(#[from] SecretError),
    /// The key file is not a BIND `key "name" { algorithm ...; secret "..."; };` statement.
    #[error("{path}:{line}: {message}")]
    KeyFile {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A zone or record name that is not a valid DNS name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The record's name is not inside the zone the update is sent for.
    #[error("{name} is not inside zone {zone}")]
    OutsideZone { name: String, zone: String },
    /// A request that makes no sense (no new address, nothing to compare against).
    #[error("{0}")]
    Invalid(String),
    /// No reply, or none that parses: timeout, socket error, garbled message.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// NOTAUTH with TSIG error BADSIG (RFC 8945 §5.2.2): the key name is known, the secret is not.
    #[error(
        "DNS server {server} rejects the update's signature (NOTAUTH/BADSIG): the TSIG secret in \
         {file} does not match the server's key {key}"
    )]
    BadSignature {
        server: SocketAddr,
        key: String,
        file: PathBuf,
    },
    /// NOTAUTH with TSIG error BADKEY (RFC 8945 §5.2.1): no key of that name and algorithm.
    #[error(
        "DNS server {server} does not know TSIG key {key} with algorithm {algorithm} \
         (NOTAUTH/BADKEY): the key statement in {file} must match one in the server's \
         configuration"
    )]
    UnknownKey {
        server: SocketAddr,
        key: String,
        algorithm: String,
        file: PathBuf,
    },
    /// NOTAUTH with TSIG error BADTIME (RFC 8945 §5.2.3).
    #[error(
        "DNS server {server} rejects the update's time (NOTAUTH/BADTIME): {skew}; TSIG allows \
         {fudge}s, fix the clocks (NTP)",
        skew = skew_text(*.skew)
    )]
    ClockSkew {
        server: SocketAddr,
        /// The server's clock minus ours, in seconds, when the server said its time.
        skew: Option<i64>,
        fudge: u16,
    },
    /// A success reply to a signed update that does not carry a valid signature by our key:
    /// something other than the server may have answered.
    #[error(
        "DNS server {server} answered the update signed with key {key} without a valid \
         signature ({reason}): not trusting it"
    )]
    Unverified {
        server: SocketAddr,
        key: String,
        reason: String,
    },
    /// REFUSED: the key is valid but not allowed to change the zone (or the address is not).
    #[error(
        "DNS server {server} refuses updates to zone {zone} from key {key} or this address \
         (REFUSED): check allow-update / update-policy for the zone"
    )]
    Refused {
        server: SocketAddr,
        zone: String,
        key: String,
    },
    /// NOTAUTH without a TSIG error (RFC 2136 §2.2): the server is not the zone's primary.
    #[error(
        "DNS server {server} is not authoritative for zone {zone} (NOTAUTH): send the update \
         to the zone's primary server"
    )]
    NotAuthoritative { server: SocketAddr, zone: String },
    /// A server that should be authoritative for the zone but answers without the AA bit, or
    /// refuses: a lame delegation, or the wrong server.
    #[error("DNS server {server} does not answer authoritatively for zone {zone}")]
    Lame { server: SocketAddr, zone: String },
    /// SERVFAIL: the server could not do it now.
    #[error("DNS server {server} failed the {what} (SERVFAIL)")]
    ServerFailure { server: SocketAddr, what: String },
    /// Any other error code (FORMERR, NOTIMP, NOTZONE, ...).
    #[error("DNS server {server} answered {rcode} to the {what}")]
    Rejected {
        server: SocketAddr,
        what: String,
        rcode: String,
    },
    /// The compare-and-swap prerequisite failed: the record holds neither the expected
    /// addresses nor the new ones. Nothing was changed.
    #[error(
        "{name} holds {found} at {at}, not the expected {expected}: nothing was changed",
        found = list_or_none(.found),
        expected = list_or_none(.expected)
    )]
    NotExpected {
        name: String,
        /// The server or zone file that was read.
        at: String,
        expected: Vec<IpAddr>,
        found: Vec<IpAddr>,
    },
    /// The zone's primary lists no NS records for it.
    #[error("DNS server {server} lists no NS records for zone {zone}")]
    NoNameServers { server: SocketAddr, zone: String },
    /// Reading the zone file failed.
    #[error("cannot read zone file {path}: {source}")]
    ZoneRead { path: PathBuf, source: io::Error },
    /// The zone file has a construct the editor does not handle, or a syntax error.
    #[error("{path}:{line}: {message}")]
    ZoneSyntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The edit would change more than the record and the serial (see `zonefile`).
    #[error("cannot edit zone file {path} safely: {message}")]
    ZoneUnsafe { path: PathBuf, message: String },
    /// Writing the new zone file (temporary file, fsync, rename) failed; the old file is intact.
    #[error("cannot write zone file {path}: {source}")]
    ZoneWrite { path: PathBuf, source: io::Error },
    /// A dynamic zone: named owns the file and replays its journal over hand edits.
    #[error(
        "zone file {path} has a journal {journal}: the zone takes dynamic updates, so use DNS \
         mode (or `rndc freeze` the zone, edit, `rndc thaw`)"
    )]
    ZoneJournal { path: PathBuf, journal: PathBuf },
}

impl DnsError {
    /// Whether trying again later may succeed: no answer, a network error, a garbled reply or
    /// SERVFAIL. Key, permission, prerequisite and syntax problems need a person.
    pub fn is_transient(&self) -> bool {
        match self {
            DnsError::Wire(e) => e.is_transient(),
            DnsError::ServerFailure { .. } => true,
            _ => false,
        }
    }
}

fn skew_text(skew: Option<i64>) -> String {
    match skew {
        Some(s) if s >= 0 => format!("its clock is {s}s ahead of this host's"),
        Some(s) => format!("its clock is {}s behind this host's", s.unsigned_abs()),
        None => "the clocks differ".to_owned(),
    }
}

/// `10.0.0.25, 2001:db8::25`, or `no address`.
pub(crate) fn list_or_none(addrs: &[IpAddr]) -> String {
    if addrs.is_empty() {
        return "no address".to_owned();
    }
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn server() -> SocketAddr {
        "127.0.0.1:5353".parse().unwrap()
    }

    #[test]
    fn transient_only_for_retryable_failures() {
        let timeout = DnsError::Wire(WireError::Timeout {
            server: server(),
            what: "update".into(),
            after: Duration::from_secs(2),
        });
        assert!(timeout.is_transient());
        let servfail = DnsError::ServerFailure {
            server: server(),
            what: "update".into(),
        };
        assert!(servfail.is_transient());
        let refused = DnsError::Refused {
            server: server(),
            zone: "example.test.".into(),
            key: "k".into(),
        };
        assert!(!refused.is_transient());
        let not_expected = DnsError::NotExpected {
            name: "mail.example.test.".into(),
            at: "127.0.0.1:5353".into(),
            expected: vec!["10.0.0.25".parse().unwrap()],
            found: vec![],
        };
        assert!(!not_expected.is_transient());
        assert_eq!(
            not_expected.to_string(),
            "mail.example.test. holds no address at 127.0.0.1:5353, not the expected \
             10.0.0.25: nothing was changed"
        );
    }

    #[test]
    fn clock_skew_says_which_way() {
        let e = DnsError::ClockSkew {
            server: server(),
            skew: Some(-400),
            fudge: 300,
        };
        assert!(e.to_string().contains("400s behind"), "{e}");
        assert!(e.to_string().contains("allows 300s"), "{e}");
    }
}
