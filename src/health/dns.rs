//! The domain's DNS as the seed lays it out: `MX 10 mailserver1`, `MX 20 mailserver2`,
//! `MX 30` the friendly relay; every MX host resolves; and mailserver1's A record TTL is short
//! enough that a DNS takeover reaches clients within the takeover grace.
//!
//! [`judge`] is the policy, a pure function of what the lookups saw; [`probe`] does the lookups.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use super::{ProbeReport, Status, Step};
use crate::config::{TakeoverMode, format_duration};
use crate::dns::in_zone;

/// What `posta check dns` expects, from the site file.
#[derive(Debug, Clone)]
pub struct DnsCheck {
    pub domain: String,
    pub primary: (String, IpAddr),
    pub backup: (String, IpAddr),
    pub relay: Option<String>,
    pub takeover: TakeoverMode,
    pub grace: Duration,
    /// The zone's authoritative server (asked directly, so TTLs are the zone's, not a
    /// cache's countdown); `None` uses the system resolver.
    pub server: Option<SocketAddr>,
    /// The zone the server is authoritative for; names outside it go to the system resolver.
    pub zone: Option<String>,
    pub timeout: Duration,
}

/// What the lookups returned; errors are the resolver's words.
#[derive(Debug, Clone)]
pub struct Observed {
    /// (preference, host) pairs, host names lowercase without the trailing dot.
    pub mx: Result<Vec<(u16, String)>, LookupError>,
    /// Each MX host and its addresses.
    pub hosts: Vec<(String, Result<Vec<IpAddr>, LookupError>)>,
    /// mailserver1's A/AAAA addresses and the smallest TTL among them.
    pub primary: Result<(Vec<IpAddr>, u32), LookupError>,
}

/// Why a name could not be looked up, or the resolver not set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The resolver's own message (NXDOMAIN, timeouts, refused...).
    #[error("{0}")]
    Resolve(String),
    #[error("no A or AAAA record")]
    NoAddress,
    #[error("cannot set up a resolver for {server}: {reason}")]
    Setup { server: SocketAddr, reason: String },
    #[error("cannot read the system resolver configuration: {0}")]
    SystemConfig(String),
    #[error("cannot set up the system resolver: {0}")]
    System(String),
}

/// Judges the observations against the site's layout.
pub fn judge(check: &DnsCheck, seen: &Observed) -> (Status, Vec<Step>) {
    let mut steps = Vec::new();
    let step = |name, status, detail: String| Step {
        name,
        status,
        detail,
    };
    match &seen.mx {
        Err(e) => steps.push(step(
            "mx",
            Status::Critical,
            format!("no MX records for {}: {e}", check.domain),
        )),
        Ok(mx) => steps.push(judge_mx(check, mx)),
    }
    for (host, addrs) in &seen.hosts {
        steps.push(match addrs {
            Ok(a) if !a.is_empty() => step("mx-host", Status::Ok, format!("{host} → {}", join(a))),
            Ok(_) => step(
                "mx-host",
                Status::Critical,
                format!("MX host {host} has no address: senders skip it"),
            ),
            Err(e) => step(
                "mx-host",
                Status::Critical,
                format!("MX host {host} does not resolve ({e}): senders skip it"),
            ),
        });
    }
    let name = &check.primary.0;
    steps.push(match &seen.primary {
        Err(e) => step(
            "a-record",
            Status::Critical,
            format!("{name} does not resolve: {e}"),
        ),
        Ok((addrs, ttl)) => judge_primary(check, addrs, *ttl),
    });
    let status = Status::worst(steps.iter().map(|s| s.status));
    (status, steps)
}

fn judge_mx(check: &DnsCheck, mx: &[(u16, String)]) -> Step {
    let pref = |name: &str| mx.iter().filter(|(_, h)| h == name).map(|(p, _)| *p).min();
    let listing = mx
        .iter()
        .map(|(p, h)| format!("{p} {h}"))
        .collect::<Vec<_>>()
        .join(", ");
    let primary = pref(&check.primary.0);
    let backup = pref(&check.backup.0);
    let relay = check.relay.as_deref().map(|r| (r, pref(r)));
    let mut problems: Vec<(Status, String)> = Vec::new();
    match primary {
        None => problems.push((
            Status::Critical,
            format!(
                "primary {} is not an MX of {}",
                check.primary.0, check.domain
            ),
        )),
        Some(p) => {
            if let Some((lower, host)) = mx.iter().find(|(q, h)| *q <= p && *h != check.primary.0) {
                problems.push((
                    Status::Warning,
                    format!(
                        "{host} (MX {lower}) is preferred to or equal with the primary (MX {p})"
                    ),
                ));
            }
        }
    }
    match (primary, backup) {
        (_, None) => problems.push((
            Status::Critical,
            format!(
                "backup {} is not an MX: it cannot receive mail while the primary is down",
                check.backup.0
            ),
        )),
        (Some(p), Some(b)) if b <= p => problems.push((
            Status::Warning,
            format!("backup MX {b} should be above primary MX {p}"),
        )),
        _ => {}
    }
    if let Some((name, r)) = relay {
        match (r, backup) {
            (None, _) => problems.push((Status::Warning, format!("relay {name} is not an MX"))),
            (Some(r), Some(b)) if r <= b => problems.push((
                Status::Warning,
                format!("relay MX {r} should be above backup MX {b}"),
            )),
            _ => {}
        }
    }
    let known = [
        Some(check.primary.0.as_str()),
        Some(check.backup.0.as_str()),
        check.relay.as_deref(),
    ];
    for (p, host) in mx {
        if !known.contains(&Some(host.as_str())) {
            problems.push((
                Status::Warning,
                format!("MX {p} {host} is not in the site file"),
            ));
        }
    }
    let status = Status::worst(problems.iter().map(|(s, _)| *s));
    let detail = if problems.is_empty() {
        format!("{}: {listing}", check.domain)
    } else {
        let texts: Vec<&str> = problems.iter().map(|(_, t)| t.as_str()).collect();
        format!("{} (MX set: {listing})", texts.join("; "))
    };
    Step {
        name: "mx",
        status,
        detail,
    }
}

fn judge_primary(check: &DnsCheck, addrs: &[IpAddr], ttl: u32) -> Step {
    let (name, address) = &check.primary;
    let mut status = Status::Ok;
    let mut notes = vec![format!("{name} → {} (TTL {ttl}s)", join(addrs))];
    if addrs.contains(&check.backup.1) && !addrs.contains(address) {
        status = Status::Warning;
        notes.push(format!(
            "it points at the backup's address {}: a DNS takeover is in effect",
            check.backup.1
        ));
    } else if !addrs.contains(address) {
        status = Status::Warning;
        notes.push(format!("the site file says {address}"));
    }
    let grace = check.grace.as_secs();
    if check.takeover == TakeoverMode::Dns && u64::from(ttl) > grace {
        status = Status::Warning;
        notes.push(format!(
            "TTL {ttl}s exceeds the takeover grace {}: clients would keep the old address for up to {ttl}s after a takeover; lower the TTL",
            format_duration(check.grace)
        ));
    }
    Step {
        name: "a-record",
        status,
        detail: notes.join("; "),
    }
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the lookups and judges them, all within `check.timeout`.
pub async fn probe(check: &DnsCheck) -> ProbeReport {
    let started = Instant::now();
    let label = match check.server {
        Some(s) => format!("dns {} @{s}", check.domain),
        None => format!("dns {}", check.domain),
    };
    let seen = tokio::time::timeout(check.timeout, observe(check)).await;
    let (status, steps) = match seen {
        Ok(Ok(seen)) => judge(check, &seen),
        Ok(Err(e)) => (
            Status::Unknown,
            vec![Step {
                name: "resolver",
                status: Status::Unknown,
                detail: e.to_string(),
            }],
        ),
        Err(_) => (
            Status::Critical,
            vec![Step {
                name: "resolver",
                status: Status::Critical,
                detail: format!(
                    "DNS lookups timed out after {}",
                    format_duration(check.timeout)
                ),
            }],
        ),
    };
    let summary = steps
        .iter()
        .find(|s| s.status == status && status != Status::Ok)
        .map(|s| s.detail.clone())
        .unwrap_or_else(|| {
            let hosts = steps.iter().filter(|s| s.name == "mx-host").count();
            format!(
                "MX layout as configured, {hosts} MX hosts resolve, A record TTL fits the grace"
            )
        });
    ProbeReport {
        probe: label,
        protocol: "dns",
        status,
        latency: started.elapsed(),
        summary,
        steps,
        tls: None,
        capabilities: Vec::new(),
    }
}

/// Names inside the zone are asked of its authoritative server, others of the system's
/// resolver, which is set up only when such a name comes along.
struct Resolvers<'a> {
    check: &'a DnsCheck,
    zone: Option<TokioResolver>,
    system: Option<TokioResolver>,
}

impl Resolvers<'_> {
    fn for_name(&mut self, name: &str) -> Result<&TokioResolver, LookupError> {
        let in_zone = self.check.zone.as_deref().is_none_or(|z| in_zone(name, z));
        if let (Some(r), true) = (&self.zone, in_zone) {
            return Ok(r);
        }
        let system = match self.system.take() {
            Some(r) => r,
            None => system_resolver(self.check.timeout)?,
        };
        Ok(self.system.insert(system))
    }
}

async fn observe(check: &DnsCheck) -> Result<Observed, LookupError> {
    let mut resolvers = Resolvers {
        check,
        zone: check
            .server
            .map(|server| direct(server, check.timeout))
            .transpose()?,
        system: None,
    };
    let mx = resolvers
        .for_name(&check.domain)?
        .lookup(fqdn(&check.domain), RecordType::MX)
        .await
        .map_err(|e| LookupError::Resolve(e.to_string()))
        .map(|lookup| {
            let mut mx: Vec<(u16, String)> = lookup
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::MX(mx) => Some((mx.preference, host_name(&mx.exchange.to_string()))),
                    _ => None,
                })
                .collect();
            mx.sort();
            mx
        });
    let mut hosts = Vec::new();
    for (_, host) in mx.iter().flatten() {
        let addrs = addresses(resolvers.for_name(host)?, host)
            .await
            .map(|(a, _)| a);
        hosts.push((host.clone(), addrs));
    }
    let name = &check.primary.0;
    let primary = addresses(resolvers.for_name(name)?, name).await;
    Ok(Observed { mx, hosts, primary })
}

/// A and AAAA addresses of `host` with the smallest TTL; no records of either type is an error.
async fn addresses(r: &TokioResolver, host: &str) -> Result<(Vec<IpAddr>, u32), LookupError> {
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    let mut errors = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        match r.lookup(fqdn(host), rtype).await {
            Ok(lookup) => {
                for rec in lookup.answers() {
                    let ip = match &rec.data {
                        RData::A(a) => IpAddr::V4(a.0),
                        RData::AAAA(a) => IpAddr::V6(a.0),
                        _ => continue,
                    };
                    addrs.push(ip);
                    ttl = ttl.min(rec.ttl);
                }
            }
            Err(e) if e.is_no_records_found() => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    match (addrs.is_empty(), errors.first()) {
        (false, _) => Ok((addrs, ttl)),
        (true, Some(e)) => Err(LookupError::Resolve(e.clone())),
        (true, None) => Err(LookupError::NoAddress),
    }
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn host_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A configuration that asks only `server`: UDP, then TCP for truncated answers.
pub(crate) fn single_server(server: SocketAddr) -> ResolverConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut c| {
            c.port = server.port();
            c
        })
        .collect();
    ResolverConfig::from_parts(
        None,
        Vec::new(),
        vec![NameServerConfig::new(server.ip(), true, connections)],
    )
}

/// A resolver that asks only `server`, without caching.
fn direct(server: SocketAddr, timeout: Duration) -> Result<TokioResolver, LookupError> {
    let config = single_server(server);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    tune(builder.options_mut(), timeout);
    builder.build().map_err(|e| LookupError::Setup {
        server,
        reason: e.to_string(),
    })
}

fn system_resolver(timeout: Duration) -> Result<TokioResolver, LookupError> {
    let mut builder =
        Resolver::builder_tokio().map_err(|e| LookupError::SystemConfig(e.to_string()))?;
    tune(builder.options_mut(), timeout);
    builder
        .build()
        .map_err(|e| LookupError::System(e.to_string()))
}

fn tune(opts: &mut hickory_resolver::config::ResolverOpts, timeout: Duration) {
    opts.timeout = timeout.min(Duration::from_secs(2));
    opts.attempts = 2;
    opts.cache_size = 0;
    opts.ndots = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> DnsCheck {
        DnsCheck {
            domain: "laorganizacion.org".into(),
            primary: (
                "mailserver1.laorganizacion.org".into(),
                "192.0.2.10".parse().unwrap(),
            ),
            backup: (
                "mailserver2.laorganizacion.org".into(),
                "192.0.2.20".parse().unwrap(),
            ),
            relay: Some("email-friend-store.com".into()),
            takeover: TakeoverMode::Dns,
            grace: Duration::from_secs(300),
            server: None,
            zone: None,
            timeout: Duration::from_secs(2),
        }
    }

    fn seen(mx: &[(u16, &str)], ttl: u32, primary: &str) -> Observed {
        Observed {
            mx: Ok(mx.iter().map(|(p, h)| (*p, h.to_string())).collect()),
            hosts: mx
                .iter()
                .map(|(_, h)| (h.to_string(), Ok(vec!["192.0.2.99".parse().unwrap()])))
                .collect(),
            primary: Ok((vec![primary.parse().unwrap()], ttl)),
        }
    }

    const SEED: [(u16, &str); 3] = [
        (10, "mailserver1.laorganizacion.org"),
        (20, "mailserver2.laorganizacion.org"),
        (30, "email-friend-store.com"),
    ];

    #[test]
    fn the_seed_layout_is_ok() {
        let (status, steps) = judge(&check(), &seen(&SEED, 60, "192.0.2.10"));
        assert_eq!(status, Status::Ok, "{steps:?}");
    }

    #[test]
    fn ttl_above_grace_warns_in_dns_mode_only() {
        let (status, steps) = judge(&check(), &seen(&SEED, 3600, "192.0.2.10"));
        assert_eq!(status, Status::Warning);
        assert!(
            steps
                .last()
                .unwrap()
                .detail
                .contains("TTL 3600s exceeds the takeover grace 5m")
        );
        let mut vip = check();
        vip.takeover = TakeoverMode::Vip;
        assert_eq!(judge(&vip, &seen(&SEED, 3600, "192.0.2.10")).0, Status::Ok);
    }

    #[test]
    fn missing_backup_mx_is_critical() {
        let mx = [(10, SEED[0].1), (30, SEED[2].1)];
        let (status, steps) = judge(&check(), &seen(&mx, 60, "192.0.2.10"));
        assert_eq!(status, Status::Critical);
        assert!(
            steps[0]
                .detail
                .contains("backup mailserver2.laorganizacion.org is not an MX")
        );
    }

    #[test]
    fn inverted_preferences_warn() {
        let mx = [(20, SEED[0].1), (10, SEED[1].1), (30, SEED[2].1)];
        let (status, steps) = judge(&check(), &seen(&mx, 60, "192.0.2.10"));
        assert_eq!(status, Status::Warning);
        assert!(
            steps[0].detail.contains("should be above primary"),
            "{steps:?}"
        );
    }

    #[test]
    fn unresolvable_mx_host_is_critical() {
        let mut s = seen(&SEED, 60, "192.0.2.10");
        s.hosts[2].1 = Err(LookupError::Resolve("NXDOMAIN".into()));
        let (status, steps) = judge(&check(), &s);
        assert_eq!(status, Status::Critical);
        assert!(
            steps
                .iter()
                .any(|st| st.detail.contains("does not resolve"))
        );
    }

    #[test]
    fn a_record_at_backup_means_takeover_in_effect() {
        let (status, steps) = judge(&check(), &seen(&SEED, 60, "192.0.2.20"));
        assert_eq!(status, Status::Warning);
        assert!(
            steps
                .last()
                .unwrap()
                .detail
                .contains("takeover is in effect")
        );
    }

    #[test]
    fn no_mx_is_critical() {
        let mut s = seen(&SEED, 60, "192.0.2.10");
        s.mx = Err(LookupError::Resolve("no records found".into()));
        assert_eq!(judge(&check(), &s).0, Status::Critical);
    }
}
