//! The ordered, verified, recorded actions behind `posta takeover` and `posta failback`.
//!
//! Every action has the same frame: take the state lock; find out whether it is already in
//! effect (then it is a no-op that says so); run the `pre` hooks (a failure stops here, nothing
//! changed); do the steps, each under a time limit, undoing what was done when a later step
//! fails; verify from the outside; record the event; run the `post` hooks. `--dry-run` walks
//! the same frame and prints each step instead of doing it.
//!
//! - `vip`  take, reclaim and release a virtual IP.
//! - `dns`  the compare-and-swap of a DNS record, by UPDATE or in a zone file.

mod dns;
mod vip;

pub use dns::{DnsJob, DnsWhere, dns_resource, dns_swap};
pub use vip::{VipJob, vip_release, vip_take};

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::hooks::{EventEnv, Hooks, Moment};
use super::state::{self, Action, Event, Lock, State};
use crate::notify::Summary;

/// What every action shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub hooks: Hooks,
    pub state_file: PathBuf,
    pub dry_run: bool,
    /// Limit for each step (a probe, an update, a verification).
    pub step_timeout: Duration,
    /// This host, for the record.
    pub host: String,
}

/// One step as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub what: String,
    pub ok: bool,
    pub detail: String,
    pub millis: f64,
}

/// The result of an action, printed as lines or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub action: Action,
    pub mode: String,
    pub resource: String,
    pub dry_run: bool,
    /// False when the action was already in effect (or refused) and nothing changed.
    pub changed: bool,
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What went wrong after the change took effect and was recorded (a failed post hook):
    /// the action succeeded, so these never make it fail, but the operator must hear of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// After a failure: what is still in place that the operator must look at.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<String>,
    /// DNS: worst-case time until every client sees the new address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convergence_secs: Option<u64>,
    /// The notices that told users of the change (`[notify]`): how many were sent, skipped by
    /// the rate limit, failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notified: Option<Summary>,
    /// A takeover from a site file: what users find on mailserver2, by the mirror's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorView>,
}

/// What users find on mailserver2 after a takeover, by the mirror (`[mirror]`) and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum MirrorView {
    /// No `[mirror]` in the site file: the users' folders and old mail stayed on mailserver1.
    None,
    /// Every account's last complete pass within `[mirror] max_lag`: users see all their
    /// folders and their mail up to the oldest of those passes.
    Fresh { last_pass: u64, lag_seconds: u64 },
    /// Some accounts' last pass is older than `max_lag`, or they never had one (then
    /// `last_pass` is None): users see their folders and mail only as of then.
    Stale {
        last_pass: Option<u64>,
        lag_seconds: Option<u64>,
        accounts: Vec<String>,
    },
}

impl MirrorView {
    /// One line for the takeover's report.
    pub fn describe(&self) -> String {
        let ago = |s: u64| crate::config::format_duration(Duration::from_secs(s));
        match self {
            MirrorView::None => "none ([mirror] is not in the site file): users see only mail \
                                 that arrives from now on; their folders and old mail stayed on \
                                 mailserver1"
                .into(),
            MirrorView::Fresh { lag_seconds, .. } => format!(
                "fresh: users see all their folders and their mail up to the last pass, {} ago",
                ago(*lag_seconds)
            ),
            MirrorView::Stale {
                lag_seconds,
                accounts,
                ..
            } => format!(
                "STALE: users see their folders and mail only as of {} ({} past max_lag)",
                lag_seconds.map_or("never: no complete pass".into(), |l| format!(
                    "{} ago",
                    ago(l)
                )),
                if accounts.is_empty() {
                    "the accounts could not be listed".into()
                } else {
                    accounts.join(", ")
                }
            ),
        }
    }
}

impl Outcome {
    fn new(action: Action, mode: &str, resource: String, dry_run: bool) -> Outcome {
        Outcome {
            action,
            mode: mode.into(),
            resource,
            dry_run,
            changed: false,
            steps: Vec::new(),
            error: None,
            warnings: Vec::new(),
            remaining: Vec::new(),
            convergence_secs: None,
            notified: None,
            mirror: None,
        }
    }

    /// Adds the notices' summary; notices that failed are a warning, never a failure (the
    /// change is in effect).
    pub fn add_notices(&mut self, summary: Summary) {
        if !summary.failed.is_empty() {
            let shown: Vec<String> = summary
                .failed
                .iter()
                .take(3)
                .map(|f| format!("{}: {}", f.recipient, f.error))
                .collect();
            let more = summary.failed.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            self.warnings.push(format!(
                "the change is in effect, but {} {} notices failed ({}{more})",
                summary.failed.len(),
                summary.event.name(),
                shown.join("; ")
            ));
        }
        self.notified = Some(summary);
    }

    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Runs one step under `limit`, recording it; `Err` carries the step's failure, as the
    /// report shows it.
    async fn step<T, E: std::fmt::Display>(
        &mut self,
        what: impl Into<String>,
        limit: Duration,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, StepFailed> {
        let what = what.into();
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StepFailed(e.to_string())),
            Err(_) => Err(StepFailed(format!("no result within {limit:?}"))),
        };
        self.steps.push(Step {
            what: what.clone(),
            ok: result.is_ok(),
            detail: result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
            millis: started.elapsed().as_secs_f64() * 1000.0,
        });
        result
    }

    /// Notes a step that needs no work (or a dry run's "would").
    fn note(&mut self, what: impl Into<String>, detail: impl Into<String>) {
        self.steps.push(Step {
            what: what.into(),
            ok: true,
            detail: detail.into(),
            millis: 0.0,
        });
    }

    fn fail(mut self, error: impl Into<String>) -> Outcome {
        self.error = Some(error.into());
        self
    }

    /// The human report: one line per step, then the verdict.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        let verb = match self.action {
            Action::Takeover => "takeover",
            Action::Failback => "failback",
            Action::Reclaim => "reclaim",
        };
        if self.dry_run {
            out.push_str(&format!("dry run: {verb} {} would\n", self.resource));
        }
        for s in &self.steps {
            let mark = if self.dry_run {
                "-"
            } else if s.ok {
                "ok"
            } else {
                "FAILED"
            };
            out.push_str(&format!("{mark:>6}  {}", s.what));
            if !s.detail.is_empty() {
                out.push_str(&format!(": {}", s.detail));
            }
            if s.millis > 0.0 {
                out.push_str(&format!(" ({:.0} ms)", s.millis));
            }
            out.push('\n');
        }
        if let Some(n) = &self.notified {
            out.push_str(&format!(
                "{:>6}  {}\n",
                if n.failed.is_empty() { "ok" } else { "FAILED" },
                n.line()
            ));
        }
        if let Some(m) = &self.mirror {
            out.push_str(&format!("{:>6}  {}\n", "mirror", m.describe()));
        }
        // A DNS change is not over when it is made: caches keep the old address for its TTL.
        // Said on the verdict line, the last one, which is what `posta watch` logs of a child.
        let cached = match (self.convergence_secs, self.changed) {
            (Some(c), true) => Some(resolvers_may_hold(c)),
            _ => None,
        };
        match (&self.error, self.changed, self.dry_run) {
            (_, _, true) => {}
            (Some(e), _, _) => {
                if let Some(c) = &cached {
                    out.push_str(&format!("{c}\n"));
                }
                out.push_str(&format!("{verb} of {} FAILED: {e}\n", self.resource));
                for r in &self.remaining {
                    out.push_str(&format!("  still in place: {r}\n"));
                }
            }
            (None, true, _) => {
                out.push_str(&format!("{verb} of {} done", self.resource));
                if let Some(c) = &cached {
                    out.push_str(&format!(": {c}"));
                }
                // On the verdict line too, so `posta watch`'s log of the child carries it.
                if !self.warnings.is_empty() {
                    out.push_str(&format!(", with a warning: {}", self.warnings.join("; ")));
                }
                out.push('\n');
            }
            (None, false, _) => out.push_str(&format!(
                "{verb} of {} was already in effect; nothing changed\n",
                self.resource
            )),
        }
        out
    }
}

/// How long after a DNS change resolvers may still hand out the address it replaced: the
/// sentence the failback report and `posta status` share.
pub fn resolvers_may_hold(secs: u64) -> String {
    format!("resolvers may hand out the old address for up to {secs} s (the record's TTL)")
}

fn event(common: &Common, outcome: &Outcome, old: &str, new: &str) -> Event {
    Event {
        time: state::now(),
        action: outcome.action,
        mode: outcome.mode.clone(),
        resource: outcome.resource.clone(),
        old: old.into(),
        new: new.into(),
        host: common.host.clone(),
        changed: true,
    }
}

fn env(outcome: &Outcome, old: &str, new: &str) -> EventEnv {
    EventEnv {
        mode: outcome.mode.clone(),
        resource: outcome.resource.clone(),
        old: old.into(),
        new: new.into(),
        changed: true,
    }
}

/// Records the event; a failure to record is reported, not undone (the change is real).
fn record(common: &Common, outcome: &mut Outcome, event: Event, holder: &str) {
    record_with_ttl(common, outcome, event, holder, state::DnsTtls::default());
}

fn record_with_ttl(
    common: &Common,
    outcome: &mut Outcome,
    event: Event,
    holder: &str,
    ttls: state::DnsTtls,
) {
    let result = State::load(&common.state_file).and_then(|mut s| {
        s.record_with_ttl(event, holder, ttls);
        s.save(&common.state_file)
    });
    match result {
        Ok(()) => outcome.note(
            "record in state file",
            common.state_file.display().to_string(),
        ),
        Err(e) => {
            outcome.steps.push(Step {
                what: "record in state file".into(),
                ok: false,
                detail: e.to_string(),
                millis: 0.0,
            });
            outcome.error = Some(format!("the change is in effect but was not recorded: {e}"));
        }
    }
}

async fn pre_hooks(common: &Common, outcome: &mut Outcome, moment: Moment, ev: &EventEnv) -> bool {
    if common.dry_run {
        for line in common.hooks.describe(moment) {
            outcome.note(line, "");
        }
        return true;
    }
    let n = common.hooks.run(moment, ev).await;
    match n {
        Ok(0) => true,
        Ok(n) => {
            outcome.note(format!("{} hooks", moment.name()), format!("{n} ran"));
            true
        }
        Err(e) => {
            outcome.error = Some(format!("{e}; nothing was changed"));
            false
        }
    }
}

async fn post_hooks(common: &Common, outcome: &mut Outcome, moment: Moment, ev: &EventEnv) {
    if common.dry_run {
        for line in common.hooks.describe(moment) {
            outcome.note(line, "");
        }
        return;
    }
    let started = Instant::now();
    match common.hooks.run(moment, ev).await {
        Ok(0) => {}
        Ok(n) => outcome.note(format!("{} hooks", moment.name()), format!("{n} ran")),
        // The change is in effect and recorded by now: the action succeeded, and calling it
        // failed would have `posta watch` retry a takeover that is done. A warning instead, in
        // the steps, the verdict, `--json` and on stderr.
        Err(e) => {
            outcome.steps.push(Step {
                what: format!("{} hooks", moment.name()),
                ok: false,
                detail: e.to_string(),
                millis: started.elapsed().as_secs_f64() * 1000.0,
            });
            outcome
                .warnings
                .push(format!("the change is in effect, but {e}"));
        }
    }
}

/// The state file's lock. Waiting for it polls with sleeps, so it runs on the blocking pool,
/// never on the runtime's worker threads.
async fn lock(common: &Common) -> Result<Option<Lock>, LockError> {
    if common.dry_run {
        return Ok(None);
    }
    let (path, wait) = (common.state_file.clone(), common.step_timeout);
    let acquired = tokio::task::spawn_blocking(move || Lock::acquire(&path, wait))
        .await
        .map_err(LockError::Task)??;
    Ok(Some(acquired))
}

/// Why the state file's lock was not taken: the report's error.
#[derive(Debug, thiserror::Error)]
enum LockError {
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("the lock task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl From<LockError> for String {
    fn from(e: LockError) -> String {
        e.to_string()
    }
}

/// Work on the blocking pool: its own error, or the task's (a panic).
#[derive(Debug, thiserror::Error)]
pub(super) enum Blocking<E> {
    #[error(transparent)]
    Work(E),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// A recorded step that failed: its text is the step's detail in the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct StepFailed(String);

impl From<StepFailed> for String {
    fn from(e: StepFailed) -> String {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::{Action, MirrorView, Outcome};

    #[test]
    fn a_takeover_says_what_users_see_by_the_mirror_and_json_tells_the_three_apart() {
        let mut o = dns(Action::Takeover, true, None);
        o.mirror = Some(MirrorView::Stale {
            last_pass: Some(1000),
            lag_seconds: Some(3720),
            accounts: vec!["alice".into(), "bob".into()],
        });
        let text = o.lines();
        assert!(
            text.contains(
                "mirror  STALE: users see their folders and mail only as of 1h2m ago (alice, bob \
                 past max_lag)\n"
            ),
            "{text}"
        );
        assert!(
            text.lines().last().is_some_and(|l| l.contains("done")),
            "{text}"
        );
        let json = serde_json::to_value(&o).expect("json");
        assert_eq!(json["mirror"]["state"], "stale", "{json}");
        assert_eq!(json["mirror"]["lag_seconds"], 3720, "{json}");
        o.mirror = Some(MirrorView::Fresh {
            last_pass: 1000,
            lag_seconds: 40,
        });
        assert!(
            o.lines().contains(
                "fresh: users see all their folders and their mail up to the last pass, 40s ago"
            ),
            "{}",
            o.lines()
        );
        o.mirror = Some(MirrorView::None);
        assert!(
            o.lines()
                .contains("their folders and old mail stayed on mailserver1")
        );
        assert_eq!(
            serde_json::to_value(&o).expect("json")["mirror"]["state"],
            "none"
        );
        let never = MirrorView::Stale {
            last_pass: None,
            lag_seconds: None,
            accounts: vec!["carol".into()],
        };
        assert!(
            never
                .describe()
                .contains("never: no complete pass (carol past max_lag)")
        );
    }

    fn dns(action: Action, changed: bool, error: Option<&str>) -> Outcome {
        let mut o = Outcome::new(action, "dns", "mail.example.org. A/AAAA".into(), false);
        o.changed = changed;
        o.convergence_secs = Some(60);
        o.error = error.map(Into::into);
        o
    }

    #[test]
    fn a_dns_change_ends_with_how_long_resolvers_may_hand_out_the_old_address() {
        // The last line is what `posta watch` keeps of its child: the TTL must be on it.
        let text = dns(Action::Failback, true, None).lines();
        assert_eq!(
            text.lines().last(),
            Some(
                "failback of mail.example.org. A/AAAA done: resolvers may hand out the old \
                 address for up to 60 s (the record's TTL)"
            )
        );
        let failed = dns(Action::Takeover, true, Some("ns2 serves 10.0.0.25")).lines();
        assert_eq!(
            failed.lines().collect::<Vec<_>>(),
            [
                "resolvers may hand out the old address for up to 60 s (the record's TTL)",
                "takeover of mail.example.org. A/AAAA FAILED: ns2 serves 10.0.0.25",
            ]
        );
        // Nothing changed: nothing to wait for.
        let noop = dns(Action::Takeover, false, None).lines();
        assert!(!noop.contains("resolvers"), "{noop}");
    }

    /// Notices that failed are a warning on a takeover that is done, and the report's notice
    /// line comes before the verdict, which stays last (what `posta watch` keeps of a child).
    #[test]
    fn failed_notices_are_a_warning_and_the_verdict_stays_last() {
        use crate::config::NotifyEvent;
        use crate::notify::send::Failure;
        let mut o = dns(Action::Takeover, true, None);
        o.add_notices(crate::notify::Summary {
            event: NotifyEvent::MirrorMissing,
            via: "192.0.2.20:25".into(),
            notified: 3,
            rate_limited: 1,
            failed: vec![Failure {
                recipient: "bob@example.org".into(),
                error: "550 no such user".into(),
            }],
        });
        assert!(o.ok());
        assert_eq!(
            o.warnings,
            [
                "the change is in effect, but 1 mirror_missing notices failed \
                 (bob@example.org: 550 no such user)"
            ]
        );
        let text = o.lines();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[lines.len() - 2],
            "FAILED  mirror_missing notice via 192.0.2.20:25: 3 notified, 1 skipped by the rate \
             limit, 1 failed"
        );
        assert!(lines[lines.len() - 1].contains("done"), "{text}");
        assert!(lines[lines.len() - 1].contains("with a warning"), "{text}");
    }
}
