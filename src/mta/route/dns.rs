//! The lookups behind [`super::select`]: MX for the domain, A and AAAA for each host, with
//! hickory-resolver, either through the system's resolvers or one given name server (tests,
//! split-horizon sites).
//!
//! Failures are sorted by what they mean for the queue: NXDOMAIN for the domain is permanent
//! (5.1.2); an empty MX answer means the implicit MX, the domain's own address (RFC 5321
//! §5.1); anything else (SERVFAIL, REFUSED, timeouts, no server reachable) is temporary.
//! An MX host whose address lookup fails is skipped, as Postfix does; only if that leaves
//! nothing to try does its failure decide between "retry" and "bounce".

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::future::join_all;
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use super::{
    Candidate, Host, Mx, Route, RouteError, SMTP_PORT, SelfIdentity, random_seed, select,
    shuffle_ties,
};

/// How lookups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupOptions {
    /// The port MX candidates get: 25, or a test server's port.
    pub port: u16,
    /// Ask only this name server (UDP, TCP for truncated answers); `None` uses the system's.
    pub nameserver: Option<SocketAddr>,
    /// Per query, per attempt.
    pub timeout: Duration,
}

impl Default for LookupOptions {
    fn default() -> LookupOptions {
        LookupOptions {
            port: SMTP_PORT,
            nameserver: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why the resolver the queue runner routes with could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("failed to read the system resolver configuration: {0}")]
    SystemConfig(#[source] NetError),
    #[error("failed to set up the resolver: {0}")]
    Build(#[source] NetError),
}

/// Answers "where does mail for this domain go now" for the queue runner.
pub struct Router {
    resolver: TokioResolver,
    me: SelfIdentity,
    port: u16,
}

impl Router {
    pub fn new(me: SelfIdentity, opts: &LookupOptions) -> Result<Router, ResolverError> {
        let mut builder = match opts.nameserver {
            Some(server) => Resolver::builder_with_config(
                crate::health::dns::single_server(server),
                TokioRuntimeProvider::default(),
            ),
            None => Resolver::builder_tokio().map_err(ResolverError::SystemConfig)?,
        };
        let o = builder.options_mut();
        o.timeout = opts.timeout;
        o.attempts = 2;
        // Names we look up are fully qualified: no search list.
        o.ndots = 0;
        let resolver = builder.build().map_err(ResolverError::Build)?;
        Ok(Router {
            resolver,
            me,
            port: opts.port,
        })
    }

    /// The addresses to try for mail to `domain`, best first.
    pub async fn route(&self, route: &Route, domain: &Name) -> Result<Vec<Candidate>, RouteError> {
        match route {
            Route::Smarthost { host, port } => self.smarthost(host, *port).await,
            Route::Mx => self.mx(&fqdn(domain)).await,
        }
    }

    async fn mx(&self, domain: &Name) -> Result<Vec<Candidate>, RouteError> {
        let records = match self.resolver.lookup(domain.clone(), RecordType::MX).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => {
                return Err(RouteError::NoSuchDomain {
                    domain: domain.clone(),
                });
            }
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(temporary(domain, &e)),
        };
        // No MX records: the domain itself is the implicit MX with preference 0 (§5.1).
        let records = if records.is_empty() {
            vec![(0, domain.clone())]
        } else {
            records
        };
        let resolved = join_all(records.iter().map(|(_, host)| async move {
            if host.num_labels() == 0 {
                // The null MX's "." is never looked up (RFC 7505 §3).
                return Ok(Vec::new());
            }
            self.addresses(host).await
        }))
        .await;
        let mut failure = None;
        let mut mxs: Vec<Mx> = records
            .into_iter()
            .zip(resolved)
            .map(|((preference, host), addrs)| Mx {
                preference,
                addrs: addrs.unwrap_or_else(|e| {
                    failure.get_or_insert(e);
                    Vec::new()
                }),
                host,
            })
            .collect();
        shuffle_ties(&mut mxs, random_seed());
        match (select(mxs, domain, &self.me, self.port), failure) {
            (Err(RouteError::NoAddress { .. }), Some(e)) => Err(e),
            (result, _) => result,
        }
    }

    async fn smarthost(&self, host: &Host, port: u16) -> Result<Vec<Candidate>, RouteError> {
        let unusable = |reason: String| RouteError::Smarthost {
            host: host.to_string(),
            reason,
        };
        let (name, addrs) = match host {
            Host::Ip(ip) => (None, vec![*ip]),
            Host::Name(name) => {
                let name = fqdn(name);
                let addrs = self
                    .addresses(&name)
                    .await
                    .map_err(|e| unusable(e.to_string()))?;
                (Some(name), addrs)
            }
        };
        if addrs.is_empty() {
            return Err(unusable("no A or AAAA record".into()));
        }
        let named_me = name.as_ref().is_some_and(|n| self.me.is_me(n, &[]));
        if named_me || addrs.iter().any(|a| self.me.addrs.contains(a)) {
            return Err(unusable(
                "is this host itself: mail would loop back to myself".into(),
            ));
        }
        Ok(addrs
            .into_iter()
            .map(|ip| Candidate {
                host: host.clone(),
                addr: SocketAddr::new(ip, port),
            })
            .collect())
    }

    /// A then AAAA addresses of `host` (IPv4 first: a backup MX often has no IPv6 route).
    /// No records of a type is no addresses; NXDOMAIN is an empty answer too, so the caller
    /// sees "no address" rather than a retry.
    async fn addresses(&self, host: &Name) -> Result<Vec<IpAddr>, RouteError> {
        let mut addrs = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            match self.resolver.lookup(host.clone(), rtype).await {
                Ok(lookup) => {
                    addrs.extend(lookup.answers().iter().filter_map(|rec| match &rec.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    }))
                }
                Err(e) if e.is_no_records_found() => {}
                Err(e) => return Err(temporary(host, &e)),
            }
        }
        Ok(addrs)
    }
}

fn temporary(name: &Name, e: &NetError) -> RouteError {
    RouteError::Dns {
        name: name.clone(),
        reason: e.to_string(),
    }
}

fn fqdn(name: &Name) -> Name {
    let mut name = name.clone();
    name.set_fqdn(true);
    name
}
