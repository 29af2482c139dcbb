//! The queue runner of the store-and-forward role: delivers queued messages to their next hop,
//! retries with exponential backoff and jitter, keeps a per-destination down state so that
//! ten thousand messages for a dead primary cost one connection attempt per interval, and
//! flushes everything at once when asked (ETRN, `posta queue flush`, the watch daemon).
//!
//! No loss, no duplicates: a recipient's outcome is fsync'd in the message's state before
//! anything else happens to it, so a restarted runner never sends a delivered recipient again;
//! the queue file goes only when every recipient is delivered or returned to its sender.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::dsn::{self, Action, DsnInput, RecipientReport, Status};
use super::route::{Candidate, Route, Router};
use super::server::Wake;
use super::settings::{NextHop, RelayTls, Retry};
use super::spool::{self, Envelope, Outcome, Place, QueuedRcpt, Spool, State, unix_now};
use crate::client::endpoint::Endpoint;
use crate::client::smtp::{Dialect, SmtpClient, SmtpError};
use crate::health::{StartTls, TlsPolicy};
use crate::proto::dotstuff::is_8bit;

/// How the runner reaches next hops.
pub struct RelayConfig {
    /// Resolves MX hosts and the smarthost.
    pub router: Router,
    pub hostname: String,
    pub next_hop: NextHop,
    pub tls: RelayTls,
    pub ca_file: Option<std::path::PathBuf>,
    pub retry: Retry,
    pub connections: usize,
    /// The longest wait for one reply from a next hop.
    pub timeout: Duration,
}

/// A next hop's address and the name its certificate must carry.
#[derive(Debug, Clone)]
struct Hop {
    name: String,
    addr: SocketAddr,
}

/// Why a destination could not be reached at all.
#[derive(Debug)]
struct HopError {
    reason: String,
    /// Permanent (no such domain, null MX, loops to us): recipients fail with this status.
    permanent: Option<Status>,
}

#[derive(Debug, Clone, Copy)]
struct Down {
    until: Instant,
    failures: u32,
}

/// The runner's memory of a queued message: when to try next and, once read, the
/// destinations it still has, so messages for a down destination cost nothing per pass.
#[derive(Debug, Default, Clone)]
struct Entry {
    next: u64,
    dests: Vec<String>,
}

#[derive(Debug, Default)]
struct Index {
    next: BTreeMap<String, Entry>,
}

pub struct Runner {
    spool: Spool,
    cfg: RelayConfig,
    down: Mutex<HashMap<String, Down>>,
    index: Mutex<Index>,
    /// Connections kept open between the messages of one pass, by next-hop address.
    idle: Mutex<HashMap<SocketAddr, Vec<SmtpClient>>>,
}

/// Exponential backoff: `min · 2^(attempts-1)`, capped at `max`, ±25 % jitter so a queue
/// filled in one burst does not retry in one burst.
pub fn backoff(retry: &Retry, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let base = retry
        .min_backoff
        .saturating_mul(1u32 << exp)
        .min(retry.max_backoff);
    let jitter = (rand_u32() % 501) as f64 / 1000.0 + 0.75;
    base.mul_f64(jitter)
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_le_bytes(b)
}

fn domain_of(addr: &str) -> String {
    addr.rsplit_once('@')
        .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
}

impl Runner {
    pub fn new(spool: Spool, cfg: RelayConfig) -> Runner {
        Runner {
            spool,
            cfg,
            down: Mutex::new(HashMap::new()),
            index: Mutex::new(Index::default()),
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The destination key a recipient is grouped and marked down by.
    fn destination(&self, rcpt: &str) -> String {
        match &self.cfg.next_hop {
            NextHop::Smarthost { host, port } => format!("[{host}]:{port}"),
            NextHop::Mx { .. } => domain_of(rcpt),
        }
    }

    fn is_down(&self, dest: &str) -> bool {
        let down = self
            .down
            .lock()
            .map(|d| d.get(dest).copied())
            .ok()
            .flatten();
        down.is_some_and(|d| d.until > Instant::now())
    }

    fn mark_down(&self, dest: &str, reason: &str) {
        if let Ok(mut map) = self.down.lock() {
            let failures = map.get(dest).map_or(0, |d| d.failures) + 1;
            let wait = backoff(&self.cfg.retry, failures);
            info!(%dest, ?wait, %reason, "destination down; not trying it again before the wait");
            map.insert(
                dest.to_string(),
                Down {
                    until: Instant::now() + wait,
                    failures,
                },
            );
        }
    }

    fn mark_up(&self, dest: &str) {
        if let Ok(mut map) = self.down.lock() {
            map.remove(dest);
        }
    }

    /// Forgets every down state and retry time for `domain` (all when empty): the next pass
    /// tries everything.
    fn flush(&self, domain: &str) {
        if let Ok(mut map) = self.down.lock() {
            if domain.is_empty() {
                map.clear();
            } else {
                map.retain(|k, _| !k.eq_ignore_ascii_case(domain));
            }
        }
        if let Ok(mut idx) = self.index.lock() {
            // A domain flush cannot tell which messages are for the domain without reading
            // them; resetting all retry times is cheap and errs on the side of delivering.
            for e in idx.next.values_mut() {
                e.next = 0;
            }
        }
    }

    /// Reads the queue directory into the index (at start and after new mail arrives).
    fn rescan(&self) {
        let ids = match self.spool.ids(Place::Active) {
            Ok(ids) => ids,
            Err(e) => {
                warn!(error = %e, "cannot read the queue");
                return;
            }
        };
        if let Ok(mut idx) = self.index.lock() {
            let mut next = BTreeMap::new();
            for id in ids {
                let e = idx.next.remove(&id).unwrap_or_else(|| Entry {
                    next: self.spool.state(&id).next_attempt,
                    dests: Vec::new(),
                });
                next.insert(id, e);
            }
            idx.next = next;
        }
    }

    fn due(&self) -> Vec<String> {
        let now = unix_now();
        self.index
            .lock()
            .map(|idx| {
                idx.next
                    .iter()
                    .filter(|(_, e)| {
                        e.next <= now
                            && (e.dests.is_empty() || e.dests.iter().any(|d| !self.is_down(d)))
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs until `shutdown`; `flush` brings requests from ETRN, the control socket and
    /// new mail (an empty domain means "new mail arrived, look again").
    pub async fn run(
        self: Arc<Self>,
        mut wake: mpsc::UnboundedReceiver<Wake>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        match self.spool.sweep_tmp() {
            Ok(0) => {}
            Ok(n) => info!(files = n, "removed unfinished queue files left by a crash"),
            Err(e) => warn!(error = %e, "cannot sweep the queue's tmp directory"),
        }
        self.rescan();
        let mut tick = tokio::time::interval(self.cfg.retry.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan = Instant::now();
        loop {
            tokio::select! {
                _ = super::server::stopped(&mut shutdown) => return,
                _ = tick.tick() => {}
                w = wake.recv() => {
                    let Some(w) = w else { return };
                    self.woken(w);
                    while let Ok(more) = wake.try_recv() {
                        self.woken(more);
                    }
                }
            }
            // `posta queue hold/release/delete` change the directory behind our back; a
            // minute is soon enough to notice (a flush rescans at once).
            if last_scan.elapsed() >= Duration::from_secs(60) {
                self.rescan();
                last_scan = Instant::now();
            }
            let due = self.due();
            if due.is_empty() {
                continue;
            }
            let pass = self.clone().pass(due);
            tokio::select! {
                _ = pass => {}
                _ = super::server::stopped(&mut shutdown) => return,
            }
        }
    }

    fn woken(&self, w: Wake) {
        match w {
            Wake::Queued(id) => {
                if let Ok(mut idx) = self.index.lock() {
                    idx.next.entry(id).or_default();
                }
            }
            Wake::Flush(domain) => {
                info!(domain = domain.as_deref().unwrap_or("all"), "flush");
                self.rescan();
                self.flush(domain.as_deref().unwrap_or(""));
            }
        }
    }

    /// One delivery pass over the due messages, `connections` at a time.
    async fn pass(self: Arc<Self>, due: Vec<String>) {
        let n = self.cfg.connections.max(1);
        futures::stream::iter(due)
            .map(|id| {
                let me = Arc::clone(&self);
                async move {
                    if let Err(e) = me.attempt(&id).await {
                        warn!(%id, error = %e, "queue entry skipped");
                    }
                }
            })
            .buffer_unordered(n)
            .collect::<Vec<()>>()
            .await;
        self.close_idle().await;
    }

    /// One delivery attempt for one message, every destination it still has.
    async fn attempt(&self, id: &str) -> std::io::Result<()> {
        let (env, message) = match self.spool.load(Place::Active, id, true) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget(id);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                warn!(%id, error = %e, "moving a corrupt queue file to corrupt/");
                self.spool.quarantine(Place::Active, id)?;
                self.forget(id);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut state = self.spool.state(id);
        let mut by_dest: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in state.pending(&env) {
            by_dest
                .entry(self.destination(&env.rcpts[i].to))
                .or_default()
                .push(i);
        }
        if let Ok(mut idx) = self.index.lock()
            && let Some(e) = idx.next.get_mut(id)
        {
            e.dests = by_dest.keys().cloned().collect();
        }
        let mut tried = false;
        for (dest, rcpts) in by_dest {
            if self.is_down(&dest) {
                debug!(%id, %dest, "destination down, skipped");
                continue;
            }
            tried = true;
            let outcomes = self.deliver(&dest, &env, &message, &rcpts).await;
            match outcomes {
                Ok(o) => {
                    self.mark_up(&dest);
                    if !o.is_empty() {
                        state.outcomes.extend(o);
                        // Durable before anything else: a delivered recipient is never resent.
                        self.spool.save_state(id, &state, true)?;
                    }
                }
                Err(e) => {
                    if let Some(status) = e.permanent {
                        let failed = rcpts.iter().map(|&i| Outcome {
                            rcpt: i,
                            delivered: false,
                            reply: e.reason.clone(),
                            remote: None,
                            status: status.to_string(),
                        });
                        state.outcomes.extend(failed);
                        self.spool.save_state(id, &state, true)?;
                    } else {
                        state.last_error = Some(e.reason.clone());
                        self.mark_down(&dest, &e.reason);
                    }
                }
            }
        }
        self.settle(id, &env, &message, state, tried)
    }

    fn forget(&self, id: &str) {
        if let Ok(mut idx) = self.index.lock() {
            idx.next.remove(id);
        }
    }

    /// After an attempt: finished messages leave the queue (with a DSN when something
    /// failed), expired ones are returned, the others get their next retry time.
    fn settle(
        &self,
        id: &str,
        env: &Envelope,
        message: &[u8],
        mut state: State,
        tried: bool,
    ) -> std::io::Result<()> {
        let pending = state.pending(env);
        let expired = Spool::age(env) >= self.cfg.retry.lifetime;
        if !pending.is_empty() && expired {
            let reason = state
                .last_error
                .clone()
                .unwrap_or_else(|| "delivery time expired".into());
            for i in pending.iter().copied() {
                state.outcomes.push(Outcome {
                    rcpt: i,
                    delivered: false,
                    reply: format!("delivery time expired; last error: {reason}"),
                    remote: None,
                    status: "4.4.7".into(),
                });
            }
            self.spool.save_state(id, &state, true)?;
        } else if !pending.is_empty() {
            if tried {
                state.attempts += 1;
                let wait = backoff(&self.cfg.retry, state.attempts);
                state.next_attempt = unix_now() + wait.as_secs().max(1);
                self.spool.save_state(id, &state, false)?;
            }
            if let Ok(mut idx) = self.index.lock() {
                idx.next.entry(id.to_string()).or_default().next = state.next_attempt;
            }
            return Ok(());
        }
        let failed: Vec<&Outcome> = state.outcomes.iter().filter(|o| !o.delivered).collect();
        if !failed.is_empty() {
            self.bounce(env, message, &failed)?;
        }
        self.spool.remove(Place::Active, id)?;
        self.forget(id);
        info!(%id, delivered = state.outcomes.len() - failed.len(), failed = failed.len(), "done");
        Ok(())
    }

    /// Delivers to one destination; Ok carries an outcome per recipient that has one now
    /// (delivered or refused for good); recipients without one stay pending.
    async fn deliver(
        &self,
        dest: &str,
        env: &Envelope,
        message: &[u8],
        rcpts: &[usize],
    ) -> Result<Vec<Outcome>, HopError> {
        let hops = self.hops(dest).await?;
        let mut last = String::from("no next hop");
        for hop in hops {
            match self.send(&hop, env, message, rcpts).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(e) => {
                    info!(dest = %dest, hop = %hop.addr, error = %e, "next hop failed");
                    last = e.to_string();
                }
            }
        }
        Err(HopError {
            reason: last,
            permanent: None,
        })
    }

    async fn hops(&self, dest: &str) -> Result<Vec<Hop>, HopError> {
        let route = match &self.cfg.next_hop {
            NextHop::Smarthost { host, port } => Route::Smarthost {
                host: match host.parse() {
                    Ok(ip) => super::route::Host::Ip(ip),
                    Err(_) => super::route::Host::Name(parse_name(host)?),
                },
                port: *port,
            },
            NextHop::Mx { .. } => Route::Mx,
        };
        let domain = match &route {
            Route::Smarthost { .. } => parse_name("smarthost.invalid")?,
            Route::Mx => parse_name(dest)?,
        };
        match self.cfg.router.route(&route, &domain).await {
            Ok(c) => Ok(c
                .into_iter()
                .map(|Candidate { host, addr }| Hop {
                    name: host.to_string(),
                    addr,
                })
                .collect()),
            Err(e) => Err(HopError {
                reason: e.to_string(),
                permanent: (!e.is_transient()).then(|| e.status()),
            }),
        }
    }

    /// An SMTP session with a next hop, TLS as configured.
    async fn connect(&self, hop: &Hop, timeout: Duration) -> Result<SmtpClient, SmtpError> {
        let ep = Endpoint {
            host: hop.addr.ip().to_string(),
            port: hop.addr.port(),
            implicit_tls: false,
            starttls: match self.cfg.tls {
                RelayTls::Require => StartTls::Require,
                RelayTls::May => StartTls::Auto,
                RelayTls::None => StartTls::No,
            },
            tls: TlsPolicy {
                ca_file: self.cfg.ca_file.clone(),
                server_name: Some(hop.name.clone()),
                ..TlsPolicy::default()
            },
            timeout,
        };
        SmtpClient::connect(&ep, Dialect::Smtp, &self.cfg.hostname, None).await
    }

    /// Asks the next hop for `rcpt` (the primary, for a backup MX): `Ok(reply)` when a server
    /// answered RCPT, `Err(reason)` when none could be asked (down, DNS trouble).
    pub async fn probe_rcpt(
        &self,
        rcpt: &str,
        timeout: Duration,
    ) -> Result<crate::proto::smtp::Reply, String> {
        let hops = self
            .hops(&self.destination(rcpt))
            .await
            .map_err(|e| e.reason)?;
        let mut last = "no next hop".to_string();
        for hop in hops {
            let attempt = async {
                let mut c = self.connect(&hop, timeout).await?;
                let reply = c.verify_rcpt(rcpt).await?;
                let _ = c.quit().await;
                Ok::<_, SmtpError>(reply)
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(reply)) if reply.class() != 4 => return Ok(reply),
                Ok(Ok(reply)) => last = reply.to_string(),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("{} did not answer within {timeout:?}", hop.addr),
            }
        }
        Err(last)
    }

    /// One SMTP transaction with one next hop. Connection-level failures are errors (try the
    /// next hop); per-recipient replies are outcomes.
    async fn send(
        &self,
        hop: &Hop,
        env: &Envelope,
        message: &[u8],
        rcpts: &[usize],
    ) -> Result<Vec<Outcome>, SmtpError> {
        let to: Vec<String> = rcpts.iter().map(|&i| env.rcpts[i].to.clone()).collect();
        let from = (!env.from.is_empty()).then_some(env.from.as_str());
        let (size, eight_bit) = (message.len(), is_8bit(message));
        // A connection left open by an earlier message of this pass saves a handshake; if the
        // server closed it meanwhile, nothing was sent yet, so a fresh one is safe.
        let (mut client, envelope) = match self.take_idle(hop) {
            Some(mut c) => match c.begin(from, &to, size, eight_bit).await {
                Ok(e) => (c, e),
                Err(_) => {
                    let mut c = self.connect(hop, self.cfg.timeout).await?;
                    let e = c.begin(from, &to, size, eight_bit).await?;
                    (c, e)
                }
            },
            None => {
                let mut c = self.connect(hop, self.cfg.timeout).await?;
                let e = c.begin(from, &to, size, eight_bit).await?;
                (c, e)
            }
        };
        let remote = Some(format!("{} ({})", hop.name, hop.addr));
        let mut outcomes = Vec::new();
        let refused = |i: usize, reply: &crate::proto::smtp::Reply| Outcome {
            rcpt: i,
            delivered: false,
            reply: reply.to_string(),
            remote: remote.clone(),
            status: status_of(reply),
        };
        if envelope.mail.class() == 5 {
            // The sender is refused for every recipient.
            self.put_idle(hop, client);
            return Ok(rcpts.iter().map(|&i| refused(i, &envelope.mail)).collect());
        }
        for (k, (_, reply)) in envelope.rcpts.iter().enumerate() {
            if reply.class() == 5 {
                outcomes.push(refused(rcpts[k], reply));
            }
        }
        if envelope.is_ready_for_data() {
            client.write_body(message).await?;
            let replies = client.finish().await?;
            for (rcpt, reply) in replies {
                let Some(k) = to.iter().position(|t| *t == rcpt) else {
                    continue;
                };
                match reply.class() {
                    2 => outcomes.push(Outcome {
                        rcpt: rcpts[k],
                        delivered: true,
                        reply: reply.to_string(),
                        remote: remote.clone(),
                        status: status_of(&reply),
                    }),
                    5 => outcomes.push(refused(rcpts[k], &reply)),
                    _ => {}
                }
            }
        }
        self.put_idle(hop, client);
        Ok(outcomes)
    }

    fn take_idle(&self, hop: &Hop) -> Option<SmtpClient> {
        self.idle.lock().ok()?.get_mut(&hop.addr)?.pop()
    }

    fn put_idle(&self, hop: &Hop, client: SmtpClient) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(hop.addr).or_default().push(client);
        }
    }

    /// QUIT for the connections kept open during a pass.
    async fn close_idle(&self) {
        let clients: Vec<SmtpClient> = match self.idle.lock() {
            Ok(mut idle) => idle.drain().flat_map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        for c in clients {
            let _ = c.quit().await;
        }
    }

    /// Returns failed recipients to the sender with a DSN, queued like any message; never to
    /// the null sender (RFC 5321 §4.5.5: that would loop).
    fn bounce(&self, env: &Envelope, message: &[u8], failed: &[&Outcome]) -> std::io::Result<()> {
        if env.from.is_empty() {
            info!(id = %env.id, "failed recipients of a null-sender message: no DSN (RFC 5321 §4.5.5)");
            return Ok(());
        }
        let now = time::OffsetDateTime::now_utc();
        let arrival = time::OffsetDateTime::from_unix_timestamp(env.arrival as i64).unwrap_or(now);
        let recipients = failed
            .iter()
            .map(|o| {
                let r = &env.rcpts[o.rcpt];
                RecipientReport {
                    original: (r.original != r.to).then(|| r.original.clone()),
                    final_recipient: r.to.clone(),
                    action: Action::Failed,
                    status: o.status.parse().unwrap_or(Status::new(5, 0, 0)),
                    remote_mta: o
                        .remote
                        .as_ref()
                        .map(|m| m.split_once(' ').map_or(m.as_str(), |(h, _)| h).to_string()),
                    smtp_reply: o.remote.is_some().then(|| o.reply.clone()),
                    last_attempt: Some(now),
                    will_retry_until: None,
                }
            })
            .collect();
        let input = DsnInput {
            reporting_mta: &self.cfg.hostname,
            sender: &env.from,
            envelope_id: None,
            arrival,
            now,
            queue_id: &env.id,
            recipients,
            message,
        };
        let dsn = match dsn::build(&input) {
            Ok(d) => d,
            Err(e) => {
                warn!(id = %env.id, error = %e, "cannot write a DSN; the failure is only logged");
                return Ok(());
            }
        };
        let id = spool::new_id();
        let denv = Envelope {
            id: id.clone(),
            from: dsn.mail_from().to_string(),
            rcpts: vec![QueuedRcpt {
                to: dsn.rcpt_to.clone(),
                original: dsn.rcpt_to.clone(),
            }],
            arrival: unix_now(),
            client: "127.0.0.1".into(),
            helo: self.cfg.hostname.clone(),
            size: dsn.message.len() as u64,
        };
        self.spool.insert(&denv, &dsn.message)?;
        info!(id = %env.id, dsn = %id, to = %dsn.rcpt_to, "DSN queued for the sender");
        if let Ok(mut idx) = self.index.lock() {
            idx.next.insert(id, Entry::default());
        }
        Ok(())
    }
}

fn parse_name(s: &str) -> Result<hickory_resolver::proto::rr::Name, HopError> {
    hickory_resolver::proto::rr::Name::from_ascii(s).map_err(|e| HopError {
        reason: format!("{s} is not a domain name: {e}"),
        permanent: Some(Status::new(5, 1, 2)),
    })
}

/// The reply's enhanced code, else one derived from its class (RFC 3463 §3.1 x.0.0).
fn status_of(reply: &crate::proto::smtp::Reply) -> String {
    reply
        .enhanced
        .clone()
        .unwrap_or_else(|| format!("{}.0.0", reply.class()))
}
