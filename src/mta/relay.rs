//! The queue runner of the store-and-forward role: delivers queued messages to their next hop,
//! retries with exponential backoff and jitter, keeps a per-destination down state so that
//! ten thousand messages for a dead primary cost one connection attempt per interval, and
//! flushes everything at once when asked (ETRN, `posta queue flush`, the watch daemon).
//!
//! No loss, no duplicates: a recipient's outcome is written durably in the message's state
//! before anything else happens to the message, so a restarted runner never sends a delivered
//! recipient again; the queue file goes only when every recipient is delivered or returned to
//! its sender. When that write fails (a full disk), the outcome is kept in memory, the message
//! stops with a logged error and waits with backoff, and the write is retried before anything
//! else: this process never sends those recipients again (before the fix, a full queue file
//! system delivered each message 36 times). A state file that cannot be read stops its message
//! the same way: it may record deliveries.
//!
//! Down states are kept per next hop as a flush names it: the recipient domain for MX
//! delivery, the smarthost for `--relay-to`, so `ETRN example.org` and `posta queue flush
//! example.org` reach the smarthost that serves the domain. A down state's backoff rises once
//! per attempt round, not once per failed connection: eight deliveries in flight when the next
//! hop went away are one failure, not eight. Flushes are coalesced per next hop (at most one
//! per [`FLUSH_INTERVAL`]), and a domain flush touches only the runner's memory, never the
//! queue directory, so pipelined ETRNs cost nothing per command.
//!
//! All file I/O runs on tokio's blocking pool, never on the runtime's worker threads.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::dsn::{self, Action, DsnInput, RecipientReport, Status};
use super::route::{Candidate, Route, Router};
use super::settings::{NextHop, RelayTls, Retry};
use super::spool::{self, Envelope, Outcome, Place, QueuedRcpt, Spool, State};
use super::wake::Wake;
use crate::client::endpoint::Endpoint;
use crate::client::smtp::{Dialect, SmtpClient, SmtpError};
use crate::clock::unix_now;
use crate::health::{StartTls, TlsPolicy};
use crate::proto::dotstuff::is_8bit;
use crate::retry::Backoff;

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

/// Why a recipient could not be checked with the next hop: nobody could be asked.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The destination has no usable route (DNS trouble, no MX, loops to us).
    #[error("{0}")]
    Route(String),
    #[error("no next hop")]
    NoHop,
    /// The last hop answered RCPT with a 4xx.
    #[error("{0}")]
    Deferred(crate::proto::smtp::Reply),
    #[error(transparent)]
    Smtp(SmtpError),
    #[error("{addr} did not answer within {limit:?}")]
    Timeout { addr: SocketAddr, limit: Duration },
}

/// Why a destination could not be reached at all.
#[derive(Debug)]
struct HopError {
    reason: String,
    /// Permanent (no such domain, null MX, loops to us): recipients fail with this status.
    permanent: Option<Status>,
}

/// At most one flush per next hop in this interval; requests within it are coalesced into
/// one flush when it ends. RFC 1985 says when a queue run may start, not how often; a flush
/// costs memory only here, but the pass it triggers opens connections, and anyone may ETRN.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Down {
    until: Instant,
    failures: u32,
    /// The attempt round that counted the last failure.
    round: u64,
}

/// Next hops known to be down, counted in attempt rounds: time is an input, so the rules are
/// unit tests.
#[derive(Debug, Default)]
pub struct DownTable {
    map: HashMap<String, Down>,
}

impl DownTable {
    /// Records a failed connection to `dest` in attempt round `round`; the wait when this
    /// counted as a new failure, `None` when the round already counted one (the other
    /// deliveries that were in flight when the next hop went away).
    pub fn failed(
        &mut self,
        dest: &str,
        round: u64,
        now: Instant,
        retry: &Retry,
    ) -> Option<(u32, Duration)> {
        let old = self.map.get(dest).copied();
        if old.is_some_and(|d| d.round == round) {
            return None;
        }
        let failures = old.map_or(0, |d| d.failures) + 1;
        let wait = backoff(retry, failures);
        self.map.insert(
            dest.to_string(),
            Down {
                until: now + wait,
                failures,
                round,
            },
        );
        Some((failures, wait))
    }

    pub fn is_down(&self, dest: &str, now: Instant) -> bool {
        self.map.get(dest).is_some_and(|d| d.until > now)
    }

    /// Failures counted for `dest` since it was last up.
    pub fn failures(&self, dest: &str) -> u32 {
        self.map.get(dest).map_or(0, |d| d.failures)
    }

    pub fn up(&mut self, dest: &str) {
        self.map.remove(dest);
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// Flush requests per next hop (`None`: everything), coalesced: the first runs at once, later
/// ones within [`FLUSH_INTERVAL`] become one flush when the interval ends.
#[derive(Debug, Default)]
pub struct FlushLimiter {
    last: HashMap<Option<String>, Instant>,
    pending: BTreeMap<Option<String>, Instant>,
}

impl FlushLimiter {
    /// Whether to flush `key` now; otherwise it is pending.
    pub fn request(&mut self, key: Option<String>, now: Instant) -> bool {
        match self.last.get(&key) {
            Some(at) if now.duration_since(*at) < FLUSH_INTERVAL => {
                let when = *at + FLUSH_INTERVAL;
                self.pending.insert(key, when);
                false
            }
            _ => {
                self.pending.remove(&key);
                self.last.insert(key, now);
                true
            }
        }
    }

    /// Pending flushes whose interval has ended; they count as run now.
    pub fn due(&mut self, now: Instant) -> Vec<Option<String>> {
        let due: Vec<Option<String>> = self
            .pending
            .iter()
            .filter(|(_, when)| **when <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &due {
            self.pending.remove(k);
            self.last.insert(k.clone(), now);
        }
        // Keys an attacker names (subdomains in ETRN) are forgotten once they cannot matter.
        self.last
            .retain(|_, at| now.duration_since(*at) < FLUSH_INTERVAL);
        due
    }
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

/// What reading a message for an attempt found.
enum Loaded {
    /// Removed meanwhile (delivered, deleted by an administrator) or quarantined.
    Gone,
    /// Its state cannot be read or written: the error is logged, the message waits.
    Stopped,
    Ready(Box<(Envelope, Vec<u8>, State)>),
}

pub struct Runner {
    spool: Spool,
    cfg: RelayConfig,
    down: Mutex<DownTable>,
    index: Mutex<Index>,
    /// States that could not be written (a full disk): they hold outcomes this process must
    /// never undo by sending those recipients again, and are written before anything else
    /// happens to their message.
    unsaved: Mutex<HashMap<String, State>>,
    flushes: Mutex<FlushLimiter>,
    /// The attempt round (one per pass): a down state rises once per round.
    round: AtomicU64,
    /// Connections kept open between the messages of one pass, by next-hop address.
    idle: Mutex<HashMap<SocketAddr, Vec<SmtpClient>>>,
}

/// Exponential backoff: `min · 2^(attempts-1)`, capped at `max`, ±25 % jitter so a queue
/// filled in one burst does not retry in one burst.
pub fn backoff(retry: &Retry, attempts: u32) -> Duration {
    Backoff::new(retry.min_backoff, retry.max_backoff)
        .with_jitter(0.25)
        .delay(attempts)
}

fn domain_of(addr: &str) -> String {
    addr.rsplit_once('@')
        .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("file task failed: {e}"))))
}

impl Runner {
    pub fn new(spool: Spool, cfg: RelayConfig) -> Runner {
        Runner {
            spool,
            cfg,
            down: Mutex::new(DownTable::default()),
            index: Mutex::new(Index::default()),
            unsaved: Mutex::new(HashMap::new()),
            flushes: Mutex::new(FlushLimiter::default()),
            round: AtomicU64::new(0),
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The destination key a recipient is grouped and marked down by.
    fn destination(&self, rcpt: &str) -> String {
        self.destination_of_domain(&domain_of(rcpt))
    }

    /// The next hop that serves `domain`: the smarthost when there is one, else the domain
    /// (its MX hosts). What ETRN and `posta queue flush DOMAIN` flush.
    fn destination_of_domain(&self, domain: &str) -> String {
        match &self.cfg.next_hop {
            NextHop::Smarthost { host, port } => format!("[{host}]:{port}"),
            NextHop::Mx { .. } => domain.to_ascii_lowercase(),
        }
    }

    fn is_down(&self, dest: &str) -> bool {
        self.down
            .lock()
            .is_ok_and(|d| d.is_down(dest, Instant::now()))
    }

    fn mark_down(&self, dest: &str, round: u64, reason: &str) {
        if let Ok(mut table) = self.down.lock()
            && let Some((failures, wait)) =
                table.failed(dest, round, Instant::now(), &self.cfg.retry)
        {
            info!(%dest, failures, ?wait, %reason, "destination down; not trying it again before the wait");
        }
    }

    fn mark_up(&self, dest: &str) {
        if let Ok(mut table) = self.down.lock() {
            table.up(dest);
        }
    }

    /// Forgets the down state and retry times of one next hop (`None`: all, after reading the
    /// queue directory again, which `posta queue hold/release` change behind our back). A
    /// next hop's flush reads nothing: messages whose destinations are not known yet are
    /// tried too, which errs on the side of delivering.
    fn flush(&self, dest: Option<&str>) {
        info!(destination = dest.unwrap_or("all"), "flush");
        match dest {
            None => {
                self.rescan();
                if let Ok(mut table) = self.down.lock() {
                    table.clear();
                }
            }
            Some(d) => {
                if let Ok(mut table) = self.down.lock() {
                    table.up(d);
                }
            }
        }
        if let Ok(mut idx) = self.index.lock() {
            for e in idx.next.values_mut() {
                if dest.is_none_or(|d| e.dests.is_empty() || e.dests.iter().any(|x| x == d)) {
                    e.next = 0;
                }
            }
        }
    }

    /// Reads the queue directory into the index (at start, on a full flush and every minute).
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
                // An unreadable state is reported by the attempt, which stops the message.
                let e = idx.next.remove(&id).unwrap_or_else(|| Entry {
                    next: self.spool.state(&id).map_or(0, |s| s.next_attempt),
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
    /// new mail. The caller sweeps the queue's leftovers ([`Spool::sweep_tmp`]) before any
    /// session can write to it.
    pub async fn run(
        self: Arc<Self>,
        mut wake: mpsc::UnboundedReceiver<Wake>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let me = Arc::clone(&self);
        let _ = tokio::task::spawn_blocking(move || me.rescan()).await;
        let mut tick = tokio::time::interval(self.cfg.retry.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan = Instant::now();
        loop {
            tokio::select! {
                _ = crate::shutdown::stopped(&mut shutdown) => return,
                _ = tick.tick() => {}
                w = wake.recv() => {
                    let Some(w) = w else { return };
                    let mut all = vec![w];
                    while let Ok(more) = wake.try_recv() {
                        all.push(more);
                    }
                    // New mail and domain flushes touch memory only; a full flush reads the
                    // queue directory, off the runtime.
                    if all.contains(&Wake::Flush(None)) {
                        let me = Arc::clone(&self);
                        let _ = tokio::task::spawn_blocking(move || {
                            for w in all {
                                me.woken(w);
                            }
                        })
                        .await;
                    } else {
                        for w in all {
                            self.woken(w);
                        }
                    }
                }
            }
            let pending = self
                .flushes
                .lock()
                .map(|mut f| f.due(Instant::now()))
                .unwrap_or_default();
            // `posta queue hold/release/delete` change the directory behind our back; a
            // minute is soon enough to notice (a full flush rescans at once).
            let rescan = last_scan.elapsed() >= Duration::from_secs(60);
            if rescan || !pending.is_empty() {
                let me = Arc::clone(&self);
                let _ = tokio::task::spawn_blocking(move || {
                    for key in pending {
                        me.flush(key.as_deref());
                    }
                    if rescan {
                        me.rescan();
                    }
                })
                .await;
                if rescan {
                    last_scan = Instant::now();
                }
            }
            let due = self.due();
            if due.is_empty() {
                continue;
            }
            let pass = self.clone().pass(due);
            tokio::select! {
                _ = pass => {}
                _ = crate::shutdown::stopped(&mut shutdown) => return,
            }
        }
    }

    /// A full flush reads the queue directory: call it on the blocking pool then.
    fn woken(&self, w: Wake) {
        match w {
            Wake::Queued(id) => {
                if let Ok(mut idx) = self.index.lock() {
                    idx.next.entry(id).or_default();
                }
            }
            Wake::Flush(domain) => {
                let key = domain.map(|d| self.destination_of_domain(&d));
                let now = self
                    .flushes
                    .lock()
                    .is_ok_and(|mut f| f.request(key.clone(), Instant::now()));
                if now {
                    self.flush(key.as_deref());
                } else {
                    debug!(
                        destination = key.as_deref().unwrap_or("all"),
                        "flush coalesced"
                    );
                }
            }
        }
    }

    /// One delivery pass (attempt round) over the due messages, `connections` at a time.
    async fn pass(self: Arc<Self>, due: Vec<String>) {
        let round = self.round.fetch_add(1, Ordering::Relaxed) + 1;
        let n = self.cfg.connections.max(1);
        futures::stream::iter(due)
            .map(|id| {
                let me = Arc::clone(&self);
                async move {
                    if let Err(e) = me.attempt(&id, round).await {
                        // Not delivered, nothing lost: the message waits like a deferred one.
                        warn!(%id, error = %e, "queue entry skipped");
                        me.defer(&id, 1);
                    }
                }
            })
            .buffer_unordered(n)
            .collect::<Vec<()>>()
            .await;
        self.close_idle().await;
    }

    /// Sets the next try of a message the runner could not work on, with backoff.
    fn defer(&self, id: &str, attempts: u32) {
        let wait = backoff(&self.cfg.retry, attempts.max(1));
        if let Ok(mut idx) = self.index.lock() {
            idx.next.entry(id.to_string()).or_default().next = unix_now() + wait.as_secs().max(1);
        }
    }

    /// Writes a message's state on the blocking pool. On failure the state is kept in memory
    /// (its outcomes must hold for the rest of this process's life) and the message stops
    /// with a logged error; Ok(false) then.
    async fn persist(&self, id: &str, state: &State) -> bool {
        let (spool, sid, st) = (self.spool.clone(), id.to_string(), state.clone());
        match blocking(move || spool.save_state(&sid, &st)).await {
            Ok(()) => {
                if let Ok(mut u) = self.unsaved.lock() {
                    u.remove(id);
                }
                true
            }
            Err(e) => {
                error!(%id, error = %e, "cannot write the message's state; it stops until the \
                       write succeeds, and recipients already delivered are not sent again");
                if let Ok(mut u) = self.unsaved.lock() {
                    u.insert(id.to_string(), state.clone());
                }
                self.defer(id, state.attempts + 1);
                false
            }
        }
    }

    /// Reads the message and what happened to it so far: the state this process could not
    /// write yet wins over the file, and is written first.
    async fn load(&self, id: &str) -> std::io::Result<Loaded> {
        let (spool, sid) = (self.spool.clone(), id.to_string());
        let read = blocking(move || match spool.load(Place::Active, &sid, true) {
            Ok((env, msg)) => Ok(Some((env, msg))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                warn!(id = %sid, error = %e, "moving a corrupt queue file to corrupt/");
                spool.quarantine(Place::Active, &sid)?;
                Ok(None)
            }
            Err(e) => Err(e),
        })
        .await?;
        let Some((env, message)) = read else {
            return Ok(Loaded::Gone);
        };
        let unsaved = self.unsaved.lock().ok().and_then(|u| u.get(id).cloned());
        let state = match unsaved {
            Some(state) => {
                if !self.persist(id, &state).await {
                    return Ok(Loaded::Stopped);
                }
                state
            }
            None => {
                let (spool, sid) = (self.spool.clone(), id.to_string());
                match blocking(move || spool.state(&sid)).await {
                    Ok(s) => s,
                    Err(e) => {
                        error!(%id, error = %e, "message stopped");
                        self.defer(id, 32);
                        return Ok(Loaded::Stopped);
                    }
                }
            }
        };
        Ok(Loaded::Ready(Box::new((env, message, state))))
    }

    /// One delivery attempt for one message, every destination it still has.
    async fn attempt(&self, id: &str, round: u64) -> std::io::Result<()> {
        let (env, message, mut state) = match self.load(id).await? {
            Loaded::Stopped => return Ok(()),
            Loaded::Gone => {
                if let Ok(mut u) = self.unsaved.lock() {
                    u.remove(id);
                }
                self.forget(id);
                return Ok(());
            }
            Loaded::Ready(m) => *m,
        };
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
            let before = state.outcomes.len();
            match outcomes {
                Ok(o) => {
                    self.mark_up(&dest);
                    state.outcomes.extend(o);
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
                    } else {
                        state.last_error = Some(e.reason.clone());
                        self.mark_down(&dest, round, &e.reason);
                    }
                }
            }
            // Durable before anything else: a delivered recipient is never resent.
            if state.outcomes.len() > before && !self.persist(id, &state).await {
                return self.remove_if_delivered(id, &env, &state).await;
            }
        }
        self.settle(id, &env, message, state, tried).await
    }

    /// When the state cannot be written but every recipient is delivered, removing the
    /// message records that as well (an unlink needs no space, and it frees some).
    async fn remove_if_delivered(
        &self,
        id: &str,
        env: &Envelope,
        state: &State,
    ) -> std::io::Result<()> {
        if !state.pending(env).is_empty() || state.outcomes.iter().any(|o| !o.delivered) {
            return Ok(());
        }
        let (spool, sid) = (self.spool.clone(), id.to_string());
        blocking(move || spool.remove(Place::Active, &sid)).await?;
        if let Ok(mut u) = self.unsaved.lock() {
            u.remove(id);
        }
        self.forget(id);
        info!(%id, delivered = state.outcomes.len(), failed = 0, "done");
        Ok(())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut idx) = self.index.lock() {
            idx.next.remove(id);
        }
    }

    /// After an attempt: finished messages leave the queue (with a DSN when something
    /// failed), expired ones are returned, the others get their next retry time.
    async fn settle(
        &self,
        id: &str,
        env: &Envelope,
        message: Vec<u8>,
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
            if !self.persist(id, &state).await {
                return Ok(());
            }
        } else if !pending.is_empty() {
            if tried {
                state.attempts += 1;
                let wait = backoff(&self.cfg.retry, state.attempts);
                state.next_attempt = unix_now() + wait.as_secs().max(1);
                if !self.persist(id, &state).await {
                    return Ok(());
                }
            }
            if let Ok(mut idx) = self.index.lock() {
                idx.next.entry(id.to_string()).or_default().next = state.next_attempt;
            }
            return Ok(());
        }
        let failed: Vec<Outcome> = state
            .outcomes
            .iter()
            .filter(|o| !o.delivered)
            .cloned()
            .collect();
        let dsn = if failed.is_empty() {
            None
        } else {
            self.bounce(env, &message, &failed)
        };
        let (spool, sid) = (self.spool.clone(), id.to_string());
        let queued_dsn = blocking(move || {
            if let Some((denv, bytes)) = &dsn {
                spool.insert(denv, bytes)?;
            }
            spool.remove(Place::Active, &sid)?;
            Ok(dsn.map(|(denv, _)| denv))
        })
        .await?;
        if let Some(denv) = queued_dsn {
            info!(id = %env.id, dsn = %denv.id, to = %denv.rcpts[0].to, "DSN queued for the sender");
            if let Ok(mut idx) = self.index.lock() {
                idx.next.insert(denv.id, Entry::default());
            }
        }
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
    /// answered RCPT, `Err` when none could be asked (down, DNS trouble), with the last hop's
    /// failure.
    pub async fn probe_rcpt(
        &self,
        rcpt: &str,
        timeout: Duration,
    ) -> Result<crate::proto::smtp::Reply, ProbeError> {
        let hops = self
            .hops(&self.destination(rcpt))
            .await
            .map_err(|e| ProbeError::Route(e.reason))?;
        let mut last = ProbeError::NoHop;
        for hop in hops {
            let attempt = async {
                let mut c = self.connect(&hop, timeout).await?;
                let reply = c.verify_rcpt(rcpt).await?;
                let _ = c.quit().await;
                Ok::<_, SmtpError>(reply)
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(reply)) if reply.class() != 4 => return Ok(reply),
                Ok(Ok(reply)) => last = ProbeError::Deferred(reply),
                Ok(Err(e)) => last = ProbeError::Smtp(e),
                Err(_) => {
                    last = ProbeError::Timeout {
                        addr: hop.addr,
                        limit: timeout,
                    }
                }
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

    /// The DSN returning failed recipients to the sender, to be queued like any message;
    /// never to the null sender (RFC 5321 §4.5.5: that would loop).
    fn bounce(
        &self,
        env: &Envelope,
        message: &[u8],
        failed: &[Outcome],
    ) -> Option<(Envelope, Vec<u8>)> {
        if env.from.is_empty() {
            info!(id = %env.id, "failed recipients of a null-sender message: no DSN (RFC 5321 §4.5.5)");
            return None;
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
                return None;
            }
        };
        let denv = Envelope {
            id: spool::new_id(),
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
        Some((denv, dsn.message))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Retry {
        Retry {
            min_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(4000),
            ..Retry::default()
        }
    }

    /// Issue 13 item 6: eight deliveries in flight when the next hop restarted took its
    /// backoff from 1.9 s to 262 s; the count now rises once per attempt round.
    #[test]
    fn a_down_state_rises_once_per_round_not_per_connection() {
        let (mut t, r, now) = (DownTable::default(), retry(), Instant::now());
        let first = t.failed("[mx]:25", 1, now, &r);
        assert_eq!(first.map(|(n, _)| n), Some(1));
        for _ in 0..7 {
            assert_eq!(t.failed("[mx]:25", 1, now, &r), None, "same round");
        }
        assert_eq!(t.failures("[mx]:25"), 1);
        let (n, wait) = t.failed("[mx]:25", 2, now, &r).unwrap();
        assert_eq!(n, 2);
        // 2 s · 2, ±25 %.
        assert!(
            wait >= Duration::from_secs(3) && wait <= Duration::from_secs(5),
            "{wait:?}"
        );
        assert!(t.is_down("[mx]:25", now));
        assert!(!t.is_down("[mx]:25", now + Duration::from_secs(6)));
        assert!(!t.is_down("other.example", now));
        t.up("[mx]:25");
        assert_eq!(t.failures("[mx]:25"), 0);
    }

    /// Issue 13 item 7: pipelined ETRNs for one next hop make one flush now and at most one
    /// more when the interval ends, however many arrive.
    #[test]
    fn flushes_are_coalesced_per_next_hop() {
        let (mut f, now) = (FlushLimiter::default(), Instant::now());
        let hop = Some("[mx]:25".to_string());
        assert!(f.request(hop.clone(), now));
        for i in 0..2000 {
            assert!(!f.request(hop.clone(), now + Duration::from_millis(i)));
        }
        assert!(f.request(None, now), "a full flush is its own key");
        assert!(f.due(now + Duration::from_secs(1)).is_empty());
        assert_eq!(f.due(now + FLUSH_INTERVAL), vec![hop.clone()]);
        assert!(f.due(now + FLUSH_INTERVAL * 3).is_empty(), "ran once");
        assert!(f.request(hop.clone(), now + FLUSH_INTERVAL * 3));
        // A request that runs at once replaces one pending from before.
        let later = now + FLUSH_INTERVAL * 5;
        assert!(!f.request(hop.clone(), now + FLUSH_INTERVAL * 3 + FLUSH_INTERVAL / 2));
        assert!(f.request(hop, later));
        assert!(f.due(later + FLUSH_INTERVAL).is_empty());
    }
}
