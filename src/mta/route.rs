//! Where a queued message for a domain goes next: a fixed smarthost (Postfix's `[host]`, no
//! MX lookup), or the domain's MX hosts in preference order (RFC 5321 §5.1).
//!
//! [`select`] is the policy, a pure function of what the DNS said: it recognises a null MX
//! (RFC 7505), orders the hosts, and applies the backup-MX loop guard (notes §7 item 5): when
//! we are one of the domain's MX hosts we only hand the mail to hosts strictly more preferred
//! (lower preference value) than our own best entry, and if there are none the mail would loop
//! back to us (Postfix: "mail for D loops back to myself", 5.4.6). [`shuffle_ties`] randomizes
//! hosts of equal preference (§5.1 "SHOULD"), and [`dns`] does the lookups that feed both.
//!
//! [`RouteError::is_transient`] is the caller's next question: retry later (SERVFAIL, timeout,
//! unresolvable smarthost) or bounce now with [`RouteError::status`] (NXDOMAIN, null MX, loop).

pub mod dns;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::proto::rr::Name;

use super::dsn::Status;

pub use dns::{LookupOptions, ResolverError, Router};

/// The SMTP port MX delivery uses (RFC 5321 §4.5.4.2 by way of the IANA assignment).
pub const SMTP_PORT: u16 = 25;

/// How mail for a domain leaves this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Always this host and port, whatever the domain's MX records say.
    Smarthost { host: Host, port: u16 },
    /// The domain's MX hosts, or its own address when it has none (implicit MX).
    Mx,
}

/// A mail host: a DNS name, or for a smarthost an address literal (`[192.0.2.1]` in Postfix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(Name),
    Ip(IpAddr),
}

/// The name without its trailing dot, or the address.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n.to_string().trim_end_matches('.')),
            Host::Ip(ip) => ip.fmt(f),
        }
    }
}

/// The names and addresses this host answers to: its MX host names and every address an MX
/// record could lead to (behind NAT, the public one as well; Postfix's `proxy_interfaces`).
/// List the names too: an MX host whose address lookup fails is skipped, so without its name
/// a temporarily unresolvable self would not be recognised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfIdentity {
    pub names: Vec<Name>,
    pub addrs: Vec<IpAddr>,
}

impl SelfIdentity {
    /// A host is us if its name is one of ours (case and trailing dot ignored) or any of its
    /// addresses is.
    pub fn is_me(&self, host: &Name, addrs: &[IpAddr]) -> bool {
        self.names.iter().any(|n| n.eq_ignore_root(host))
            || addrs.iter().any(|a| self.addrs.contains(a))
    }
}

/// One MX record with the addresses its host resolved to (empty when it resolved to none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    pub host: Name,
    pub addrs: Vec<IpAddr>,
}

/// One address to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The MX host or smarthost, for the TLS server name, logs and the DSN's Remote-MTA.
    pub host: Host,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("domain {domain} does not exist (NXDOMAIN)")]
    NoSuchDomain { domain: Name },
    #[error("domain {domain} accepts no mail (null MX, RFC 7505)")]
    NullMx { domain: Name },
    #[error(
        "mail for {domain} loops back to myself: we are its MX with preference {preference} \
         and no MX host is more preferred"
    )]
    LoopsBack { domain: Name, preference: u16 },
    #[error("no address for any mail host of {domain}")]
    NoAddress { domain: Name },
    #[error("temporary DNS failure looking up {name}: {reason}")]
    Dns { name: Name, reason: String },
    /// The configured smarthost cannot be used; the operator's setting, so fixing it must not
    /// have cost the queue: always transient, even for NXDOMAIN or a smarthost that is us.
    #[error("smarthost {host}: {reason}")]
    Smarthost { host: String, reason: String },
}

impl RouteError {
    /// Retrying later may succeed: keep the message queued.
    pub fn is_transient(&self) -> bool {
        matches!(self, RouteError::Dns { .. } | RouteError::Smarthost { .. })
    }

    /// The enhanced status code for the DSN (RFC 3463, RFC 7505 §4.2 for the null MX).
    pub fn status(&self) -> Status {
        match self {
            RouteError::NoSuchDomain { .. } => Status::new(5, 1, 2),
            RouteError::NullMx { .. } => Status::new(5, 1, 10),
            RouteError::LoopsBack { .. } => Status::new(5, 4, 6),
            RouteError::NoAddress { .. } => Status::new(5, 4, 4),
            RouteError::Dns { .. } => Status::new(4, 4, 3),
            RouteError::Smarthost { .. } => Status::new(4, 4, 3),
        }
    }
}

/// Orders the MX hosts of `domain` into addresses to try, applying the null-MX rule and the
/// loop guard (module doc). Hosts of equal preference keep their input order (see
/// [`shuffle_ties`]); an address reached through two hosts is tried once.
pub fn select(
    mut mxs: Vec<Mx>,
    domain: &Name,
    me: &SelfIdentity,
    port: u16,
) -> Result<Vec<Candidate>, RouteError> {
    // RFC 7505 §3: a single MX whose exchange is the root name means "no mail here".
    if let [only] = mxs.as_slice()
        && is_root(&only.host)
    {
        return Err(RouteError::NullMx {
            domain: domain.clone(),
        });
    }
    // A null MX mixed with real ones breaks §3's MUST NOT; the real ones are still usable.
    mxs.retain(|mx| !is_root(&mx.host));
    mxs.sort_by_key(|mx| mx.preference);
    let ours = mxs
        .iter()
        .filter(|mx| me.is_me(&mx.host, &mx.addrs))
        .map(|mx| mx.preference)
        .min();
    if let Some(preference) = ours {
        mxs.retain(|mx| mx.preference < preference);
        if mxs.is_empty() {
            return Err(RouteError::LoopsBack {
                domain: domain.clone(),
                preference,
            });
        }
    }
    let mut out: Vec<Candidate> = Vec::new();
    for mx in mxs {
        for ip in mx.addrs {
            let addr = SocketAddr::new(ip, port);
            if !out.iter().any(|c| c.addr == addr) {
                out.push(Candidate {
                    host: Host::Name(mx.host.clone()),
                    addr,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(RouteError::NoAddress {
            domain: domain.clone(),
        });
    }
    Ok(out)
}

/// Sorts by preference and shuffles each run of equal preference (Fisher–Yates driven by
/// `seed`), so senders spread their load over equal MX hosts (RFC 5321 §5.1).
pub fn shuffle_ties(mxs: &mut [Mx], seed: u64) {
    mxs.sort_by_key(|mx| mx.preference);
    // splitmix64: spreads even small seeds well enough for load sharing, no rand dependency.
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for group in mxs.chunk_by_mut(|a, b| a.preference == b.preference) {
        for i in (1..group.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            group.swap(i, j);
        }
    }
}

/// A fresh random seed for [`shuffle_ties`] from the standard library's per-process keys.
pub fn random_seed() -> u64 {
    RandomState::new().build_hasher().finish()
}

fn is_root(name: &Name) -> bool {
    name.num_labels() == 0
}

#[cfg(test)]
mod tests;
