//! The watch loop: probe the primary every interval, feed the [`Policy`], run what it asks
//! for, report. Actions are posta's own commands run as child processes (`posta takeover`,
//! `posta failback`, `posta queue flush`, `posta migrate`): exactly what an operator would
//! run by hand, with their own locks, hooks and records, and a crash in one cannot take the
//! daemon down. A signal never interrupts an action: the loop only looks at `shutdown`
//! between rounds.
//!
//! While healthy, a sweep (`posta migrate`, the failback's own run, so the same journals)
//! brings home what mailserver2 accepted anyway every sweep interval, and after a failback
//! the same `posta migrate` brings the outage's mail home. Either runs beside the probe
//! rounds, so a long migration never delays detection of a second outage; one at a time; and
//! every other action that runs a child (takeover, failback, bringing mail home) first waits
//! for it to end: killing it would leave messages whose outcome is unknown (`posta migrate`
//! has no graceful stop), and after a takeover its deliveries would come back to this host.
//! The wait is bounded: both runs pass `--retry-for`, so one that cannot reach a server ends
//! within that window instead of migrate's default ten minutes.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Interval;
use tracing::{error, info, warn};

use super::holder::{self, Level};
use super::policy::{Action, Event, Policy, State, Tuning};
use super::primary::{self, Phase, Side};
use super::sdnotify;
use super::snapshot::{ProbeResult, Snapshot, SweepRecord, TransitionRecord};
use super::waiting;
use super::witness;
use crate::clock::unix_now;
use crate::config::Witness;
use crate::health::Status;
use crate::health::run::{Job, all};
use crate::takeover::hooks::{EventEnv, Hooks, Moment};
use crate::takeover::vip::{
    self, AnnounceSettings, Holders, ProbeOutcome, ProbeSettings, Vip, VipError,
};

/// Everything one round needs; rebuilt from the site file on SIGHUP.
#[derive(Debug, Clone)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub interval: Duration,
    pub tuning: Tuning,
    pub witnesses: Vec<Witness>,
    pub hooks: Hooks,
    /// The takeover state file: who holds the primary's address.
    pub takeover_state: PathBuf,
    /// This binary and the site file, for the child commands.
    pub exe: PathBuf,
    pub config: PathBuf,
    /// The local mta's queue, flushed after failback.
    pub queue: Option<PathBuf>,
    /// Whether the site file names accounts for `posta migrate` (or `accounts = "all"`).
    pub migrate: bool,
    /// How often to sweep while healthy (`[watch] sweep_interval`); `None`: never.
    pub sweep_interval: Option<Duration>,
    /// Where the local mta delivers (`[mta] maildir`): what waits there is reported.
    pub maildir: Option<PathBuf>,
    /// Probe and report only.
    pub witness_only: bool,
    /// Mode "vip": whose answers for the address to count each round.
    pub vip: Option<VipWatch>,
    /// With `[mirror]` (and accounts): a mirror pass every interval while healthy.
    pub mirror: Option<MirrorDuty>,
}

/// The watch's mirror duty on mailserver2: `posta mirror --once` every interval while
/// mailserver1 is healthy and nothing is taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorDuty {
    pub interval: Duration,
    /// Where `posta mirror` keeps its state: each account's lag is read there after a pass.
    pub state_dir: PathBuf,
    pub accounts: Vec<String>,
}

/// What the watch needs to find who answers for the VIP.
#[derive(Debug, Clone)]
pub struct VipWatch {
    pub vip: Vip,
    /// mailserver1's own address: its answer there gives its MAC.
    pub mailserver1: IpAddr,
    /// This host is mailserver1, the address's rightful owner by the site file: it keeps the
    /// address in a duplicate instead of yielding it.
    pub rightful: bool,
}

/// The retry window of a migration when the watch never sweeps ([`Daemon::retry_for`]): the
/// default sweep interval.
const HOME_RETRY: Duration = Duration::from_secs(60);

/// Which `posta migrate` runs beside the probe rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// While healthy, every sweep interval.
    Sweep,
    /// After a failback: the outage's mail.
    BringHome,
}

impl Run {
    fn name(self) -> &'static str {
        match self {
            Run::Sweep => "the sweep",
            Run::BringHome => "bringing the mail home",
        }
    }
}

/// Whether this host holds the primary's address or record now.
pub fn holds(takeover_state: &std::path::Path) -> bool {
    crate::takeover::state::State::load(takeover_state)
        .map(|s| s.holdings.iter().any(|h| h.holder == "backup"))
        .unwrap_or(false)
}

pub struct Daemon {
    pub plan: Plan,
    pub policy: Policy,
    pub snapshot: Arc<RwLock<Snapshot>>,
    pub state_file: PathBuf,
    started: Instant,
    /// The failed services of the last round ([`failed_services`]), empty when all answered:
    /// the reason a move to suspect or down gives.
    last_failure: String,
    /// The last probe round's verdict: a sweep needs the primary seen up, not only a
    /// `healthy` assumed at start.
    last_up: Option<bool>,
    /// The migration in flight (a sweep, or bringing the mail home after a failback), if any.
    sweep: Option<(Run, JoinHandle<SweepRecord>)>,
    /// The mirror pass in flight, if any. A sweep and a mirror pass never run at once (the
    /// sweep reads the mirror's map under its lock): one that comes due meanwhile is owed, and
    /// starts when the other ends.
    mirror: Option<JoinHandle<SweepRecord>>,
    sweep_owed: bool,
    mirror_owed: bool,
    /// What was last said about who answers for the VIP ([`holder::Verdict::key`], or the
    /// probe's error): said again only when it changes.
    holders_said: Option<String>,
    /// On mailserver1 (mode "vip", the VIP's rightful owner): its own side, which releases and
    /// reclaims the VIP instead of taking over ([`primary`]); the policy is not used there.
    primary: Option<(Side, Phase)>,
}

impl Daemon {
    pub fn new(plan: Plan, state_file: PathBuf) -> Daemon {
        let taken = holds(&plan.takeover_state);
        let policy = Policy::new(plan.tuning.clone(), taken);
        let primary =
            (!plan.witness_only && plan.vip.as_ref().is_some_and(|w| w.rightful)).then(|| {
                (
                    Side::new(plan.tuning.fall, plan.tuning.grace),
                    Phase::Serving,
                )
            });
        let now = unix_now();
        let snapshot = Snapshot {
            pid: std::process::id(),
            witness: plan.witness_only,
            started: now,
            updated: now,
            state: match &primary {
                Some((_, phase)) => phase.name().into(),
                None => policy.state.name().into(),
            },
            state_since: now,
            ..Snapshot::default()
        };
        Daemon {
            plan,
            policy,
            snapshot: Arc::new(RwLock::new(snapshot)),
            state_file,
            started: Instant::now(),
            last_failure: String::new(),
            last_up: None,
            sweep: None,
            mirror: None,
            sweep_owed: false,
            mirror_owed: false,
            holders_said: None,
            primary,
        }
    }

    /// Runs rounds until `shutdown`; `reload` gives a new plan on SIGHUP.
    pub async fn run(
        &mut self,
        mut shutdown: watch::Receiver<bool>,
        mut reload: tokio::sync::mpsc::UnboundedReceiver<Plan>,
    ) {
        sdnotify::notify(&format!("READY=1\nSTATUS={}", self.policy.state.name()));
        let watchdog = sdnotify::watchdog_interval();
        let mut tick = tokio::time::interval(self.plan.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_dog = Instant::now();
        let mut sweeps = self.sweep_timer();
        let mut mirrors = self.mirror_timer();
        loop {
            // While down, wake exactly when the grace ends rather than at the next round.
            let grace = self
                .policy
                .grace_left(self.now())
                .filter(|g| !g.is_zero() && *g < self.plan.interval);
            let grace_end = async {
                match grace {
                    Some(g) => tokio::time::sleep(g).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = crate::shutdown::stopped(&mut shutdown) => break,
                _ = grace_end => {
                    self.feed(Event::Tick { at: self.now() }).await;
                    self.publish();
                    continue;
                }
                Some(plan) = reload.recv() => {
                    info!("site file reloaded");
                    self.policy.tuning = plan.tuning.clone();
                    if plan.interval != self.plan.interval {
                        tick = tokio::time::interval(plan.interval);
                    }
                    let resweep = (plan.sweep_interval, plan.migrate)
                        != (self.plan.sweep_interval, self.plan.migrate);
                    let remirror = plan.mirror != self.plan.mirror;
                    self.plan = plan;
                    if resweep {
                        sweeps = self.sweep_timer();
                    }
                    if remirror {
                        mirrors = self.mirror_timer();
                    }
                    continue;
                }
                _ = async { mirrors.as_mut()?.tick().await; Some(()) }, if mirrors.is_some() => {
                    self.mirror_due();
                    continue;
                }
                ended = async { self.mirror.as_mut()?.await.ok() }, if self.mirror.is_some() => {
                    self.mirror = None;
                    match ended {
                        Some(record) => self.mirrored(record).await,
                        None => error!("the mirror task failed"),
                    }
                    continue;
                }
                _ = async { sweeps.as_mut()?.tick().await; Some(()) }, if sweeps.is_some() => {
                    if self.last_up == Some(true) {
                        self.feed(Event::SweepDue).await;
                    }
                    continue;
                }
                ended = async { (&mut self.sweep.as_mut()?.1).await.ok() }, if self.sweep.is_some() => {
                    if let Some((run, _)) = self.sweep.take() {
                        match ended {
                            Some(record) => self.swept(run, record).await,
                            None => error!("the {} task failed", run.name()),
                        }
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            self.round().await;
            if let Some(every) = watchdog
                && last_dog.elapsed() >= every
            {
                sdnotify::notify("WATCHDOG=1");
                last_dog = Instant::now();
            }
        }
        sdnotify::notify("STOPPING=1");
        self.stop_mirror("stopping").await;
        self.finish_sweep("stopping").await;
        info!("posta watch stopped");
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The sweep's timer, the first tick one interval from now; `None` (said once, here) when
    /// the watch never sweeps.
    fn sweep_timer(&self) -> Option<Interval> {
        if self.plan.witness_only {
            return None;
        }
        let Some(every) = self.plan.sweep_interval else {
            info!("no sweep while healthy: [watch] sweep_interval is off");
            return None;
        };
        if !self.plan.migrate {
            info!("no sweep while healthy: the site file names no accounts for posta migrate");
            return None;
        }
        info!(every = ?every, "sweeping mail home while healthy");
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // A sweep longer than the interval is followed by the next one an interval later,
        // not by a burst.
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(t)
    }

    /// The mirror's timer, the first tick one interval from now; `None` (said once, here)
    /// without `[mirror]`, on mailserver1 and for a witness.
    fn mirror_timer(&self) -> Option<Interval> {
        if self.plan.witness_only || self.primary.is_some() {
            return None;
        }
        let duty = self.plan.mirror.as_ref()?;
        info!(every = ?duty.interval, "mirroring mailserver1 while healthy");
        let mut t =
            tokio::time::interval_at(tokio::time::Instant::now() + duty.interval, duty.interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(t)
    }

    /// Whether a mirror pass may run: mailserver1 seen up in the last round, nothing taken
    /// over (after a takeover mailserver1's address may answer here), and no return pending
    /// since the last takeover ([`crate::mirror::hold`]).
    fn may_mirror(&self) -> bool {
        self.last_up == Some(true) && self.policy.state == State::Healthy && !self.mirror_held()
    }

    /// Whether a takeover put the mirror on hold that no complete return lifted yet. A hold
    /// that cannot be read holds.
    fn mirror_held(&self) -> bool {
        self.plan
            .mirror
            .as_ref()
            .is_some_and(|d| !matches!(crate::mirror::hold::held(&d.state_dir), Ok(None)))
    }

    /// A mirror pass is due: started now, owed while a sweep runs, skipped unless healthy.
    fn mirror_due(&mut self) {
        if !self.may_mirror() || self.mirror.is_some() {
            return;
        }
        if self.sweep.is_some() {
            self.mirror_owed = true;
            return;
        }
        self.start_mirror();
    }

    fn start_mirror(&mut self) {
        self.mirror_owed = false;
        let (exe, config) = (self.plan.exe.clone(), self.plan.config.clone());
        self.mirror = Some(tokio::spawn(async move {
            let started = Instant::now();
            let (ok, detail) = posta(&exe, &config, &["mirror", "--once"]).await;
            SweepRecord {
                at: epoch_now(),
                seconds: started.elapsed().as_secs_f64(),
                ok,
                detail,
            }
        }));
    }

    /// Stops the mirror pass in flight before `why` (a takeover, a failback, bringing the
    /// mail home, stopping): a pass is safe to kill at any moment (the next one adopts what
    /// it copied), and one running while mailserver1's address moves could read this host.
    async fn stop_mirror(&mut self, why: &str) {
        self.mirror_owed = false;
        let Some(handle) = self.mirror.take() else {
            return;
        };
        handle.abort();
        let _ = handle.await;
        info!("mirror pass stopped before {why}; the next pass resumes where it was");
    }

    /// Records a finished mirror pass: its outcome, each account's lag, and a sweep owed.
    /// A failed pass is a warning, never a reason for takeover: the next interval tries again.
    async fn mirrored(&mut self, record: SweepRecord) {
        if record.ok {
            info!(seconds = record.seconds, "mirror pass done");
        } else {
            warn!(
                seconds = record.seconds,
                why = %record.detail,
                "mirror pass failed; the next interval tries again"
            );
        }
        let lags = match self.plan.mirror.clone() {
            Some(d) => tokio::task::spawn_blocking(move || {
                crate::mirror::status::lags(&d.state_dir, &d.accounts, unix_now())
            })
            .await
            .unwrap_or_default(),
            None => Vec::new(),
        };
        if let Ok(mut s) = self.snapshot.write() {
            s.mirrors_total += 1;
            s.mirrors_failed_total += u64::from(!record.ok);
            s.last_mirror = Some(record);
            s.mirror_accounts = lags;
        }
        self.publish();
        if self.sweep_owed && self.last_up == Some(true) && self.policy.state == State::Healthy {
            self.sweep_owed = false;
            self.start_sweep(Run::Sweep);
        }
    }

    /// How long a sweep or bringing the mail home retries temporary failures: one sweep
    /// interval (or [`HOME_RETRY`] when the watch never sweeps), not migrate's default ten
    /// minutes. The next sweep retries anyway, and a migration caught by the primary's failure
    /// must end long before a takeover, which waits for it: this is that wait's bound.
    pub fn retry_for(&self) -> Duration {
        self.plan.sweep_interval.unwrap_or(HOME_RETRY)
    }

    /// Starts `posta migrate` beside the probe rounds unless a migration runs already.
    fn start_sweep(&mut self, run: Run) {
        if let Some((running, _)) = &self.sweep {
            // Only a sweep can come here: bringing the mail home waits for the sweep first.
            info!("{} still runs: this one is skipped", running.name());
            return;
        }
        if self.mirror.is_some() {
            // Only a sweep can come here: bringing the mail home stops the mirror first.
            info!("a mirror pass runs: the sweep starts when it ends");
            self.sweep_owed = true;
            return;
        }
        self.sweep_owed = false;
        let (exe, config) = (self.plan.exe.clone(), self.plan.config.clone());
        let retry_for = crate::config::format_duration(self.retry_for());
        // After a takeover with a mirror: the return first, then the outage's mail; a sweep
        // after a return that did not complete tries it again.
        let carry_back = self.mirror_held();
        let handle = tokio::spawn(async move {
            let started = Instant::now();
            let mut args = vec!["migrate", "--retry-for", &retry_for];
            if carry_back {
                args.push("--return");
            }
            let (ok, detail) = posta(&exe, &config, &args).await;
            SweepRecord {
                at: epoch_now(),
                seconds: started.elapsed().as_secs_f64(),
                ok,
                detail,
            }
        });
        self.sweep = Some((run, handle));
    }

    /// Waits for the migration in flight, if any, before `why`.
    async fn finish_sweep(&mut self, why: &str) {
        let Some((run, handle)) = self.sweep.take() else {
            return;
        };
        info!("waiting for {} to end before {why}", run.name());
        match handle.await {
            Ok(record) => self.swept(run, record).await,
            Err(e) => error!(error = %e, "the {} task failed", run.name()),
        }
    }

    /// Records a finished sweep (or bringing the mail home), counts what still waits and
    /// publishes both. A failed one changes no state: the next interval tries again.
    async fn swept(&mut self, run: Run, record: SweepRecord) {
        if run == Run::BringHome {
            if record.ok {
                info!(seconds = record.seconds, detail = %record.detail, "mail brought home");
            } else {
                error!(
                    seconds = record.seconds,
                    why = %record.detail,
                    "posta migrate did not finish; the next sweep, or posta migrate by hand, \
                     brings the rest home"
                );
            }
            if let Some(w) = self.count_waiting().await
                && let Ok(mut s) = self.snapshot.write()
            {
                s.queue_depth = w.queue.as_ref().map(|q| q.messages);
                s.waiting = Some(w);
            }
            self.publish();
            return;
        }
        if record.ok {
            info!(seconds = record.seconds, detail = %record.detail, "sweep done");
        } else {
            warn!(
                seconds = record.seconds,
                why = %record.detail,
                "sweep failed; the next interval tries again"
            );
        }
        let waiting = self.count_waiting().await;
        if let Ok(mut s) = self.snapshot.write() {
            s.sweeps_total += 1;
            s.sweeps_failed_total += u64::from(!record.ok);
            s.last_sweep = Some(record);
            if let Some(w) = waiting {
                s.queue_depth = w.queue.as_ref().map(|q| q.messages);
                s.waiting = Some(w);
            }
        }
        self.publish();
        if self.mirror_owed {
            self.mirror_due();
        }
    }

    /// What waits on this host, counted off the runtime; `None` without Maildirs or queue.
    async fn count_waiting(&self) -> Option<waiting::Waiting> {
        count_waiting(self.plan.maildir.clone(), self.plan.queue.clone()).await
    }

    /// Awaits a round's probes. When the grace ends before they come back (on a dead host
    /// they wait out their timeout), the takeover starts then, on the last round's verdict,
    /// and this round's verdict follows when the probes do.
    async fn while_grace_runs<T>(&mut self, work: impl Future<Output = T>) -> T {
        let Some(grace) = self.policy.grace_left(self.now()).filter(|g| !g.is_zero()) else {
            return work.await;
        };
        tokio::pin!(work);
        tokio::select! {
            done = &mut work => done,
            () = tokio::time::sleep(grace) => {
                self.feed(Event::Tick { at: self.now() }).await;
                self.publish();
                work.await
            }
        }
    }

    /// One probe round and everything it leads to.
    pub async fn round(&mut self) {
        // Whether someone should answer for the VIP while the holder probe runs: judged on
        // the state now, not on a takeover this round may start.
        let held = matches!(
            self.policy.state,
            State::TakenOver | State::PrimaryBack { .. }
        );
        // The count runs on a blocking thread while the probes wait on the network, and so
        // does the VIP's holder probe. The round owns what it needs, so the grace can end
        // while it waits.
        let (maildir, queue) = (self.plan.maildir.clone(), self.plan.queue.clone());
        let vip = self
            .plan
            .vip
            .as_ref()
            .map(|w| (w.vip.clone(), w.mailserver1));
        let jobs = self.plan.jobs.clone();
        let work = async move {
            tokio::join!(all(jobs), count_waiting(maildir, queue), async move {
                let (vip, mailserver1) = vip?;
                Some(vip::holders(&vip, &ProbeSettings::default(), Some(mailserver1)).await)
            })
        };
        let (reports, waiting, holders) = self.while_grace_runs(work).await;
        let up = !reports.is_empty() && reports.iter().all(|r| r.status != Status::Critical);
        self.last_up = Some(up);
        let should_be_held = up || held;
        if let Ok(mut s) = self.snapshot.write() {
            s.primary_up = Some(up);
            if let Some(w) = waiting {
                s.queue_depth = w.queue.as_ref().map(|q| q.messages);
                s.waiting = Some(w);
            }
            let sweeping = self.plan.migrate && !self.plan.witness_only;
            s.sweep_interval_seconds = self
                .plan
                .sweep_interval
                .filter(|_| sweeping)
                .map(|d| d.as_secs_f64());
            let mirroring = !self.plan.witness_only && self.primary.is_none();
            s.mirror_interval_seconds = self
                .plan
                .mirror
                .as_ref()
                .filter(|_| mirroring)
                .map(|d| d.interval.as_secs_f64());
            s.probes = reports
                .iter()
                .map(|r| ProbeResult {
                    probe: r.probe.clone(),
                    protocol: r.protocol.into(),
                    status: r.status.label().into(),
                    latency_seconds: r.latency.as_secs_f64(),
                    summary: r.summary.clone(),
                    cert_expiry: r.tls.as_ref().and_then(|t| t.cert_not_after),
                })
                .collect();
        }
        self.last_failure = if up {
            String::new()
        } else {
            failed_services(&reports)
        };
        if !up {
            info!(state = self.policy.state.name(), why = %self.last_failure, "primary probe failed");
        }
        if self.primary.is_some() {
            let duplicate = matches!(&holders, Some(Ok(h)) if h.who == vip::Who::Both);
            self.primary_round(up, duplicate).await;
        } else if !self.plan.witness_only {
            let taken = holds(&self.plan.takeover_state);
            let known = matches!(
                self.policy.state,
                State::TakenOver | State::PrimaryBack { .. }
            );
            if taken != known {
                self.feed(Event::External { taken_over: taken }).await;
            }
            self.feed(Event::Probe { at: self.now(), up }).await;
        }
        if let Some(found) = holders {
            self.holders_seen(found, should_be_held).await;
        }
        if self.plan.witness_only {
            // A witness only reports what it sees.
            let state = if up { "healthy" } else { "down" };
            if let Ok(mut s) = self.snapshot.write() {
                s.state = state.into();
            }
        }
        self.publish();
    }

    /// mailserver1's side of a round: release the VIP when every service here has been down
    /// long enough, reclaim it as soon as they answer and nobody holds it, defend it in a
    /// duplicate ([`primary`]).
    async fn primary_round(&mut self, up: bool, duplicate: bool) {
        let (Some(w), Some((side, before))) = (self.plan.vip.clone(), self.primary.clone()) else {
            return;
        };
        let mut side = side;
        let here = match vip::present(&w.vip).await {
            Ok(h) => h,
            Err(e) => {
                error!(error = %e, "cannot tell whether the VIP is on this host");
                return;
            }
        };
        let (step, mut phase) = side.step(self.now(), up, here);
        let mut reason = String::new();
        match step {
            primary::Step::Stay => {}
            primary::Step::Release => match vip::remove(&w.vip).await {
                Ok(_) => {
                    reason = format!(
                        "every mail service here has been down for {:?}: gave {} up so that \
                         mailserver2 may take over ({})",
                        side.release_after(),
                        w.vip,
                        self.last_failure
                    );
                    warn!("{reason}");
                }
                Err(e) => {
                    error!(error = %e, "cannot give the VIP up; mailserver2 cannot take over");
                    phase = Phase::Failing;
                }
            },
            primary::Step::Reclaim => match self.reclaim(&w.vip).await {
                Ok(true) => {
                    phase = Phase::Serving;
                    reason = format!(
                        "the mail services answer: reclaimed and announced {}",
                        w.vip
                    );
                    info!("{reason}");
                }
                Ok(false) => {}
                Err(e) => error!(error = %e, "cannot reclaim the VIP"),
            },
        }
        if duplicate && here {
            // RFC 5227 §2.4: the rightful owner defends; mailserver2's watch yields.
            match vip::announce(&w.vip, &AnnounceSettings::default()).await {
                Ok(a) => a.cancel(),
                Err(e) => error!(error = %e, "cannot announce the VIP to defend it"),
            }
        }
        self.primary = Some((side, phase));
        if phase != before {
            let rec = TransitionRecord {
                at: epoch_now(),
                from: before.name().into(),
                to: phase.name().into(),
                reason: if reason.is_empty() {
                    if up {
                        "the mail services answer".into()
                    } else {
                        format!("mail services down: {}", self.last_failure)
                    }
                } else {
                    reason
                },
            };
            info!(from = %rec.from, to = %rec.to, reason = %rec.reason, "transition");
            sdnotify::notify(&format!("STATUS={}: {}", rec.to, rec.reason));
            if let Ok(mut s) = self.snapshot.write() {
                s.state = rec.to.clone();
                s.record(rec.clone());
            }
            self.publish();
            self.transition_hooks(&rec).await;
        }
    }

    /// Waits, for at most one interval, for nobody to answer for the VIP (mailserver2 gives
    /// it up at its failback), asking every ~100 ms, then probes, adds and announces it.
    /// `Ok(false)`: still held by another host when the interval ended.
    async fn reclaim(&self, v: &Vip) -> Result<bool, VipError> {
        // One request and 100 ms of listening: a LAN answers in well under a millisecond.
        let ask = ProbeSettings {
            count: 1,
            interval: Duration::ZERO,
            wait: Duration::from_millis(100),
        };
        let deadline = Instant::now() + self.plan.interval;
        loop {
            if vip::answering(v, &ask).await?.is_empty()
                && vip::probe(v, &ProbeSettings::default()).await? == ProbeOutcome::Free
            {
                vip::add(v).await?;
                // The second burst runs on in the daemon's runtime.
                drop(vip::announce(v, &AnnounceSettings::default()).await?);
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Who answers for the VIP now (mode "vip" only).
    /// Records who answers for the VIP, says so once per change, and gives the address up
    /// when this host holds it beside its rightful owner.
    async fn holders_seen(&mut self, found: Result<Holders, VipError>, should_be_held: bool) {
        let rightful = self.plan.vip.as_ref().is_some_and(|w| w.rightful);
        let h = match found {
            Ok(h) => h,
            Err(e) => {
                let said = format!("error: {e}");
                if self.holders_said.as_ref() != Some(&said) {
                    warn!(error = %e, "cannot tell who answers for the VIP");
                    self.holders_said = Some(said);
                }
                if let Ok(mut s) = self.snapshot.write() {
                    s.vip_holders = None;
                    s.vip_holders_error = Some(e.to_string());
                }
                return;
            }
        };
        let verdict = holder::judge(&h, should_be_held, rightful);
        if self.holders_said.as_ref() != Some(&verdict.key) {
            let who = h.who.name();
            match verdict.level {
                Level::Error => error!(who, "{}", verdict.message),
                Level::Warn => warn!(who, "{}", verdict.message),
                Level::Info => info!(who, "{}", verdict.message),
            }
            self.holders_said = Some(verdict.key);
        }
        let must_yield = holder::must_yield(&h, rightful) && !self.plan.witness_only;
        if let Ok(mut s) = self.snapshot.write() {
            s.vip_holders = Some(h);
            s.vip_holders_error = None;
        }
        if must_yield {
            self.finish_sweep("giving the address up").await;
            let (ok, detail) = self.posta(&["failback"]).await;
            if ok {
                warn!(%detail, "gave the address up to its rightful owner");
                self.feed(Event::Yielded { detail }).await;
            } else {
                error!(%detail, "cannot give the address up; two hosts still hold it");
            }
        }
    }

    fn publish(&self) {
        let snap = match self.snapshot.write() {
            Ok(mut s) => {
                s.updated = unix_now();
                s.grace_left_seconds = self.policy.grace_left(self.now()).map(|d| d.as_secs_f64());
                s.clone()
            }
            Err(_) => return,
        };
        if let Err(e) = snap.save(&self.state_file) {
            warn!(error = %e, file = %self.state_file.display(), "cannot write the watch state");
        }
    }

    /// Applies an event and every action that follows from it, in order.
    async fn feed(&mut self, event: Event) {
        let mut queue = std::collections::VecDeque::from([event]);
        while let Some(ev) = queue.pop_front() {
            let (t, actions) = self.policy.step(ev);
            if let Some(t) = t {
                let rec = TransitionRecord {
                    at: epoch_now(),
                    from: t.from.name().into(),
                    to: t.to.name().into(),
                    reason: match t.to {
                        State::Suspect { .. } | State::Down { .. }
                            if !self.last_failure.is_empty() =>
                        {
                            format!("{}: {}", t.reason, self.last_failure)
                        }
                        _ => t.reason.clone(),
                    },
                };
                info!(from = %rec.from, to = %rec.to, reason = %rec.reason, "transition");
                sdnotify::notify(&format!("STATUS={}: {}", rec.to, rec.reason));
                if let Ok(mut s) = self.snapshot.write() {
                    s.state = rec.to.clone();
                    if rec.to == "taken_over" && rec.from == "down" {
                        s.last_takeover = Some(rec.at);
                    }
                    s.record(rec.clone());
                }
                self.publish();
                self.transition_hooks(&rec).await;
            }
            for a in actions {
                if let Some(next) = self.act(a).await {
                    queue.push_back(next);
                }
            }
        }
    }

    async fn transition_hooks(&self, rec: &TransitionRecord) {
        let env = EventEnv {
            mode: "watch".into(),
            resource: rec.reason.clone(),
            old: rec.from.clone(),
            new: rec.to.clone(),
            changed: true,
        };
        if let Err(e) = self.plan.hooks.run(Moment::Transition, &env).await {
            warn!(error = %e, "transition hook failed");
        }
    }

    /// Runs one action; its outcome, if the policy needs it, comes back as an event.
    async fn act(&mut self, action: Action) -> Option<Event> {
        if matches!(
            action,
            Action::Takeover | Action::Failback | Action::BringMailHome
        ) {
            let why = match action {
                Action::Takeover => "the takeover",
                Action::Failback => "the failback",
                _ => "bringing the mail home",
            };
            self.stop_mirror(why).await;
            self.finish_sweep(why).await;
        }
        match action {
            Action::AskWitnesses => {
                let limit = Duration::from_secs(10);
                let asks = self
                    .plan
                    .witnesses
                    .iter()
                    .map(|w| async move { (w.to_string(), witness::ask(w, limit).await) });
                let views = futures::future::join_all(asks).await;
                let (agree, detail) = witness::verdict(&views);
                info!(%agree, %detail, "witnesses asked");
                Some(Event::Witnesses { agree, detail })
            }
            Action::Takeover => {
                let (ok, detail) = self.posta(&["takeover"]).await;
                Some(Event::TakeoverDone { ok, detail })
            }
            Action::Failback => {
                let (ok, detail) = self.posta(&["failback"]).await;
                Some(Event::FailbackDone { ok, detail })
            }
            Action::BringMailHome => {
                if let Some(q) = &self.plan.queue {
                    let q = q.display().to_string();
                    let (ok, detail) = self.posta(&["queue", "flush", "--queue", &q]).await;
                    info!(%ok, %detail, "mta queue flushed after failback");
                }
                if self.plan.migrate {
                    // Beside the probe rounds, like a sweep: a second outage while it runs is
                    // detected, and its takeover waits for it (bounded by `--retry-for`).
                    self.start_sweep(Run::BringHome);
                }
                None
            }
            Action::Sweep => {
                self.start_sweep(Run::Sweep);
                None
            }
            Action::Notify(message) => {
                warn!(state = self.policy.state.name(), "{message}");
                sdnotify::notify(&format!("STATUS={message}"));
                None
            }
        }
    }

    /// Runs `posta ARGS` with this site file; (success, what it said: [`child_reason`]).
    async fn posta(&self, args: &[&str]) -> (bool, String) {
        posta(&self.plan.exe, &self.plan.config, args).await
    }
}

/// Runs `EXE --config CONFIG ARGS`; (success, what it said: [`child_reason`]).
async fn posta(exe: &std::path::Path, config: &std::path::Path, args: &[&str]) -> (bool, String) {
    info!(command = %args.join(" "), "running");
    let out = Command::new(exe)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) => {
            // A child that succeeded may still have something to say: `posta takeover` whose
            // post hook failed after the change took effect exits 0 with a warning.
            for w in child_warnings(&o.stderr) {
                warn!(command = %args.join(" "), "{w}");
            }
            (
                o.status.success(),
                child_reason(&o.status, &o.stdout, &o.stderr),
            )
        }
        Err(e) => (false, format!("cannot run {}: {e}", exe.display())),
    }
}

/// Seconds since the epoch, with milliseconds.
fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The services that failed and why, each cause once: `primary smtp, primary imap: timed out
/// after 1s connecting; primary pop3: connection refused`. No reports at all is said as such.
fn failed_services(reports: &[crate::health::ProbeReport]) -> String {
    if reports.is_empty() {
        return "no service to probe".into();
    }
    let mut causes: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in reports.iter().filter(|r| r.status == Status::Critical) {
        match causes.iter_mut().find(|(why, _)| *why == r.summary) {
            Some((_, names)) => names.push(&r.probe),
            None => causes.push((&r.summary, vec![&r.probe])),
        }
    }
    causes
        .iter()
        .map(|(why, names)| format!("{}: {why}", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The warnings a child printed on stderr (`posta: warning: WHAT`), each as WHAT.
fn child_warnings(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("posta: warning: "))
        .map(str::to_owned)
        .collect()
}

/// What a child said, for the log: the last non-empty line of stderr and of stdout (a failed
/// `posta takeover` reports on stdout, a refused site file on stderr), and the exit status
/// when it said nothing, so a reason is never empty.
fn child_reason(status: &std::process::ExitStatus, stdout: &[u8], stderr: &[u8]) -> String {
    let last = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .map(str::to_owned)
    };
    let said: Vec<String> = [last(stderr), last(stdout)].into_iter().flatten().collect();
    if said.is_empty() {
        format!("posta {status} and printed nothing")
    } else {
        said.join(" / ")
    }
}

/// What waits under the Maildirs and the queue, counted on a blocking thread; `None` without
/// either.
async fn count_waiting(
    maildir: Option<PathBuf>,
    queue: Option<PathBuf>,
) -> Option<waiting::Waiting> {
    if maildir.is_none() && queue.is_none() {
        return None;
    }
    Some(waiting::count_blocking(maildir, queue).await)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::{Daemon, Plan, child_reason, child_warnings, failed_services};
    use crate::health::{ProbeReport, Status};
    use crate::watch::policy::{Action, Event, Tuning};

    fn report(probe: &str, status: Status, summary: &str) -> ProbeReport {
        ProbeReport {
            probe: probe.into(),
            protocol: "smtp",
            status,
            latency: std::time::Duration::ZERO,
            summary: summary.into(),
            steps: Vec::new(),
            tls: None,
            capabilities: Vec::new(),
        }
    }

    #[test]
    fn probe_failures_name_the_services() {
        let t = "timed out after 1s connecting";
        let reports = [
            report("primary smtp", Status::Critical, t),
            report("primary imap", Status::Critical, t),
            report("primary pop3", Status::Critical, "connection refused"),
            report("primary submission", Status::Ok, "250 ok"),
        ];
        assert_eq!(
            failed_services(&reports),
            "primary smtp, primary imap: timed out after 1s connecting; \
             primary pop3: connection refused"
        );
        assert_eq!(failed_services(&[]), "no service to probe");
    }

    #[test]
    fn a_child_reason_is_never_empty() {
        let failed = ExitStatus::from_raw(1 << 8);
        // A failed takeover prints its failure on stdout; only stderr used to be kept.
        let stdout = b"  ok read mail A\nfailed: mail.example.test. holds 10.0.0.9\n\n";
        assert_eq!(
            child_reason(&failed, stdout, b""),
            "failed: mail.example.test. holds 10.0.0.9"
        );
        assert_eq!(
            child_reason(&failed, b"plan\n", b"posta: bad site file\n"),
            "posta: bad site file / plan"
        );
        assert_eq!(
            child_reason(&failed, b"", b" \n"),
            "posta exit status: 1 and printed nothing"
        );
    }

    /// A daemon whose `posta` is a script that logs its arguments to `dir/calls`; `migrate`
    /// takes a second, and fails saying why when `dir/fail` exists; `takeover` succeeds with a
    /// failed post hook's warning when `dir/hookfail` exists.
    fn scripted(dir: &std::path::Path) -> Daemon {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join("posta");
        let script = format!(
            "#!/bin/sh\nshift 2\n[ \"$1\" = migrate ] && sleep 1\necho \"$*\" >> {d}/calls\n\
             if [ \"$1\" = migrate ] && [ -e {d}/fail ]; then echo 'journal in use' >&2; exit 1; fi\n\
             if [ \"$1\" = takeover ] && [ -e {d}/hookfail ]; then \
             echo 'posta: warning: the change is in effect, but post-takeover hook /bin/false \
             failed (exit status: 1)' >&2; echo 'takeover of 10.0.0.25 done, with a warning'; fi\n",
            d = dir.display()
        );
        std::fs::write(&exe, script).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plan = Plan {
            jobs: Vec::new(),
            interval: std::time::Duration::from_secs(1),
            tuning: Tuning {
                fall: 1,
                rise: 1,
                grace: std::time::Duration::ZERO,
                auto_takeover: true,
                auto_failback: true,
            },
            witnesses: Vec::new(),
            hooks: crate::takeover::hooks::Hooks::default(),
            takeover_state: dir.join("takeover.json"),
            exe,
            config: dir.join("site.toml"),
            queue: None,
            migrate: true,
            sweep_interval: Some(std::time::Duration::from_secs(2)),
            maildir: None,
            witness_only: false,
            vip: None,
            mirror: None,
        };
        Daemon::new(plan, dir.join("watch.json"))
    }

    fn calls(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// One sweep at a time: a sweep due while one runs is skipped; the takeover waits for the
    /// running one to end instead of overlapping it or killing it.
    #[tokio::test]
    async fn one_sweep_at_a_time_and_a_takeover_waits_for_it() {
        let t = tempfile::tempdir().unwrap();
        let mut d = scripted(t.path());
        d.feed(Event::SweepDue).await;
        d.feed(Event::SweepDue).await;
        let done = d.act(Action::Takeover).await;
        assert!(
            matches!(done, Some(Event::TakeoverDone { ok: true, .. })),
            "{done:?}"
        );
        assert_eq!(calls(t.path()), ["migrate --retry-for 2s", "takeover"]);
        let s = d.snapshot.read().unwrap().clone();
        assert_eq!((s.sweeps_total, s.sweeps_failed_total), (1, 0));
        assert!(s.last_sweep.is_some_and(|l| l.ok));
    }

    /// A failed sweep is recorded with the child's reason and changes no state.
    #[tokio::test]
    async fn a_failed_sweep_keeps_its_reason_and_the_state() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("fail"), b"").unwrap();
        let mut d = scripted(t.path());
        d.feed(Event::SweepDue).await;
        d.finish_sweep("the test's end").await;
        assert_eq!(d.policy.state.name(), "healthy");
        let s = d.snapshot.read().unwrap().clone();
        assert_eq!((s.sweeps_total, s.sweeps_failed_total), (1, 1));
        let last = s.last_sweep.unwrap();
        assert!(!last.ok);
        assert_eq!(last.detail, "journal in use");
        // The state file carries it for `posta status`.
        let saved = crate::watch::snapshot::Snapshot::load(&t.path().join("watch.json")).unwrap();
        assert_eq!(
            saved.last_sweep.map(|l| l.detail),
            Some("journal in use".into())
        );
    }

    /// After a failback the mail comes home beside the probe rounds: the round that sees the
    /// primary fail again is not held up by the migration, and the takeover it leads to waits
    /// for the migration to end instead of overlapping or killing it. The migration's retries
    /// are bounded by the sweep interval.
    #[tokio::test]
    async fn bringing_mail_home_runs_beside_the_probes_and_a_takeover_waits_for_it() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("fail"), b"").unwrap();
        let mut d = scripted(t.path());
        assert!(d.act(Action::BringMailHome).await.is_none());
        // Started, not awaited: `migrate` sleeps a second before it logs its call.
        assert!(matches!(d.sweep, Some((super::Run::BringHome, _))));
        assert!(calls(t.path()).is_empty());
        // A sweep due meanwhile is skipped rather than run beside it.
        d.feed(Event::SweepDue).await;
        // mailserver1 fails again: fall 1, grace 0, no witnesses: the takeover follows at once
        // and waits for the migration.
        d.feed(Event::Probe {
            at: std::time::Duration::from_secs(1),
            up: false,
        })
        .await;
        assert_eq!(d.policy.state.name(), "taken_over");
        assert_eq!(calls(t.path()), ["migrate --retry-for 2s", "takeover"]);
        assert!(d.sweep.is_none());
        // Bringing mail home is not a sweep: the sweep counters stay as they were.
        let s = d.snapshot.read().unwrap().clone();
        assert_eq!((s.sweeps_total, s.sweeps_failed_total), (0, 0));
    }

    /// After a takeover with a mirror, the hold keeps mirror passes from running, and the
    /// migration after the failback (and any sweep until a return completed) is the return.
    #[tokio::test]
    async fn a_held_mirror_is_not_run_and_the_migration_carries_back() {
        let t = tempfile::tempdir().unwrap();
        let mut d = scripted(t.path());
        let state_dir = t.path().join("mirror");
        d.plan.mirror = Some(super::MirrorDuty {
            interval: std::time::Duration::from_secs(60),
            state_dir: state_dir.clone(),
            accounts: vec!["alice".into()],
        });
        d.last_up = Some(true);
        assert!(d.may_mirror());
        crate::mirror::hold::hold(&state_dir, 1).unwrap();
        assert!(!d.may_mirror());
        assert!(d.act(Action::BringMailHome).await.is_none());
        d.finish_sweep("the test's end").await;
        crate::mirror::hold::release(&state_dir).unwrap();
        d.feed(Event::SweepDue).await;
        d.finish_sweep("the test's end").await;
        assert_eq!(
            calls(t.path()),
            ["migrate --retry-for 2s --return", "migrate --retry-for 2s"]
        );
        assert!(d.may_mirror());
    }

    /// Without sweeps the migration after a failback still retries for a bounded time.
    #[test]
    fn bringing_mail_home_retries_for_a_bounded_time_without_sweeps() {
        let t = tempfile::tempdir().unwrap();
        let mut d = scripted(t.path());
        assert_eq!(d.retry_for(), std::time::Duration::from_secs(2));
        d.plan.sweep_interval = None;
        assert_eq!(d.retry_for(), super::HOME_RETRY);
    }

    /// A takeover whose post hook failed is done: the watch moves to taken_over (no retry,
    /// no "takeover failed"), and the warning is picked out of the child's stderr for the log.
    #[tokio::test]
    async fn a_takeover_with_a_failed_post_hook_is_taken_over() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("hookfail"), b"").unwrap();
        let mut d = scripted(t.path());
        d.feed(Event::Probe {
            at: std::time::Duration::ZERO,
            up: false,
        })
        .await;
        assert_eq!(d.policy.state.name(), "taken_over");
        assert_eq!(calls(t.path()), ["takeover"]);
        let s = d.snapshot.read().unwrap().clone();
        let last = s.transitions.last().unwrap();
        assert!(last.reason.contains("done, with a warning"), "{last:?}");
        assert_eq!(
            child_warnings(
                b"posta: warning: the change is in effect, but post-takeover hook /bin/false \
                  failed\nposta: second announcement burst failed: x\n"
            ),
            ["the change is in effect, but post-takeover hook /bin/false failed"]
        );
    }

    /// The grace ends while a round's probes still wait on a host that accepts and never
    /// answers (they give up only at their timeout): the takeover starts at the grace's end,
    /// not when the probes come back. The tarpit looks, when the probe hangs up, whether the
    /// takeover has run yet.
    #[tokio::test]
    async fn the_takeover_starts_when_the_grace_ends_not_when_a_hanging_probe_gives_up() {
        use crate::health::run::Job;
        use crate::health::{Scheme, StartTls, Target, TlsPolicy};
        use tokio::io::AsyncReadExt;

        let t = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls_at = t.path().to_path_buf();
        let tarpit = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut sink = Vec::new();
            // Never greets; reads until the probe gives up and closes.
            let _ = stream.read_to_end(&mut sink).await;
            calls(&calls_at)
        });
        let mut d = scripted(t.path());
        d.policy.tuning.grace = std::time::Duration::from_secs(1);
        d.plan.jobs = vec![Job::Service(Target {
            label: "primary smtp".into(),
            scheme: Scheme::Smtp,
            host: "127.0.0.1".into(),
            port,
            starttls: StartTls::No,
            tls: TlsPolicy::default(),
            account: None,
            timeout: std::time::Duration::from_secs(4),
            helo: "probe.test".into(),
            foreign_names: Vec::new(),
        })];
        d.feed(Event::Probe {
            at: d.now(),
            up: false,
        })
        .await;
        assert_eq!(d.policy.state.name(), "down");
        d.round().await;
        // (The scripted posta writes no takeover state, so the round's own verdict afterwards
        // reads the takeover as undone by an operator: what this test looks at is when it ran.)
        let s = d.snapshot.read().unwrap().clone();
        assert!(
            s.transitions
                .iter()
                .any(|t| (t.from.as_str(), t.to.as_str()) == ("down", "taken_over")),
            "{:?}",
            s.transitions
        );
        assert_eq!(
            tarpit.await.unwrap(),
            ["takeover"],
            "the takeover waited for the hanging probe's timeout"
        );
    }
}
