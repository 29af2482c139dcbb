//! The watch loop: probe the primary every interval, feed the [`Policy`], run what it asks
//! for, report. Actions are posta's own commands run as child processes (`posta takeover`,
//! `posta failback`, `posta queue flush`, `posta migrate`): exactly what an operator would
//! run by hand, with their own locks, hooks and records, and a crash in one cannot take the
//! daemon down. A signal never interrupts an action: the loop only looks at `shutdown`
//! between rounds.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::policy::{Action, Event, Policy, State, Tuning};
use super::sdnotify;
use super::snapshot::{ProbeResult, Snapshot, TransitionRecord};
use super::witness;
use crate::config::Witness;
use crate::health::Status;
use crate::health::run::{Job, all};
use crate::mta::spool::unix_now;
use crate::takeover::hooks::{EventEnv, Hooks, Moment};

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
    /// Probe and report only.
    pub witness_only: bool,
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
}

impl Daemon {
    pub fn new(plan: Plan, state_file: PathBuf) -> Daemon {
        let taken = holds(&plan.takeover_state);
        let policy = Policy::new(plan.tuning.clone(), taken);
        let now = unix_now();
        let snapshot = Snapshot {
            pid: std::process::id(),
            witness: plan.witness_only,
            started: now,
            updated: now,
            state: policy.state.name().into(),
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
                _ = crate::mta::server::stopped(&mut shutdown) => break,
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
                    self.plan = plan;
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
        info!("posta watch stopped");
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// One probe round and everything it leads to.
    pub async fn round(&mut self) {
        let reports = all(self.plan.jobs.clone()).await;
        let up = !reports.is_empty() && reports.iter().all(|r| r.status != Status::Critical);
        if let Ok(mut s) = self.snapshot.write() {
            s.primary_up = Some(up);
            s.probes = reports
                .iter()
                .map(|r| ProbeResult {
                    probe: r.probe.clone(),
                    protocol: r.protocol.into(),
                    status: r.status.label().into(),
                    latency_seconds: r.latency.as_secs_f64(),
                    summary: r.summary.clone(),
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
        if !self.plan.witness_only {
            let taken = holds(&self.plan.takeover_state);
            let known = matches!(
                self.policy.state,
                State::TakenOver | State::PrimaryBack { .. }
            );
            if taken != known {
                self.feed(Event::External { taken_over: taken }).await;
            }
            self.feed(Event::Probe { at: self.now(), up }).await;
        } else {
            // A witness only reports what it sees.
            let state = if up { "healthy" } else { "down" };
            if let Ok(mut s) = self.snapshot.write() {
                s.state = state.into();
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let snap = match self.snapshot.write() {
            Ok(mut s) => {
                s.updated = unix_now();
                s.grace_left_seconds = self.policy.grace_left(self.now()).map(|d| d.as_secs_f64());
                s.queue_depth = self.plan.queue.as_ref().and_then(|q| {
                    std::fs::read_dir(q.join("active"))
                        .ok()
                        .map(|d| d.count() as u64)
                });
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
                    at: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
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
    async fn act(&self, action: Action) -> Option<Event> {
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
                    let (ok, detail) = self.posta(&["migrate"]).await;
                    if ok {
                        info!(%detail, "mail brought home");
                    } else {
                        error!(%detail, "posta migrate did not finish; run it by hand");
                    }
                }
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
        info!(command = %args.join(" "), "running");
        let out = Command::new(&self.plan.exe)
            .arg("--config")
            .arg(&self.plan.config)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await;
        match out {
            Ok(o) => (
                o.status.success(),
                child_reason(&o.status, &o.stdout, &o.stderr),
            ),
            Err(e) => (
                false,
                format!("cannot run {}: {e}", self.plan.exe.display()),
            ),
        }
    }
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

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::{child_reason, failed_services};
    use crate::health::{ProbeReport, Status};

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
}
