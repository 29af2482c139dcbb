//! The ordered, verified, recorded actions behind `posta takeover` and `posta failback`.
//!
//! Every action has the same frame: take the state lock; find out whether it is already in
//! effect (then it is a no-op that says so); run the `pre` hooks (a failure stops here, nothing
//! changed); do the steps, each under a time limit, undoing what was done when a later step
//! fails; verify from the outside; record the event; run the `post` hooks. `--dry-run` walks
//! the same frame and prints each step instead of doing it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::dns::{self, Record, Swap, TsigKey};
use super::hooks::{EventEnv, Hooks, Moment};
use super::state::{self, Action, Event, Lock, State};
use super::vip::{self, AnnounceSettings, Announcement, ProbeOutcome, ProbeSettings, Vip};

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
        }
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
enum Blocking<E> {
    #[error(transparent)]
    Work(E),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// A VIP action's parameters.
#[derive(Debug, Clone)]
pub struct VipJob {
    pub vip: Vip,
    pub probe: ProbeSettings,
    pub announce: AnnounceSettings,
    /// Take the address even when someone answers the ARP probe.
    pub force: bool,
    /// Where SMTP must answer through the address after it is up.
    pub smtp_port: u16,
    /// mailserver1's own address (the site's `probe_address`), not the VIP: failback on
    /// mailserver2 learns mailserver1's MAC there to announce the VIP on its behalf.
    pub mailserver1: Option<IpAddr>,
}

/// How long failback on mailserver2 waits, after removing the address, for mailserver1 to
/// answer for it. mailserver1 normally has it configured all along (its kernel answers at
/// once); a watch on mailserver1 that gave it up reclaims it within a few hundred ms of
/// seeing nobody hold it. Past this, nobody holding it is an error to report.
const HANDOVER_WAIT: Duration = Duration::from_secs(3);

/// Takes the virtual IP (on mailserver2), or reclaims it (on mailserver1, `action` =
/// [`Action::Reclaim`]). Returns the announcement whose second burst the caller should await.
pub async fn vip_take(
    job: &VipJob,
    common: &Common,
    action: Action,
) -> (Outcome, Option<Announcement>) {
    let resource = job.vip.to_string();
    let mut outcome = Outcome::new(action, "vip", resource, common.dry_run);
    let (old, new) = match action {
        Action::Reclaim => ("on mailserver2 or nowhere", "on mailserver1 (this host)"),
        _ => ("on mailserver1", "on mailserver2 (this host)"),
    };
    let _lock = match lock(common).await {
        Ok(l) => l,
        Err(e) => return (outcome.fail(e), None),
    };
    let limit = common.step_timeout;
    let address = job.vip.address;
    let present = outcome
        .step(
            format!("is {address} on {} already", job.vip.interface),
            limit,
            vip::present(&job.vip),
        )
        .await;
    let already = match present {
        Err(e) => return (outcome.fail(e), None),
        // mailserver1 back from a crash usually has its address configured at boot, while
        // clients' caches still point at mailserver2: reclaim must still probe and announce.
        Ok(true) if action == Action::Reclaim => {
            outcome.note("the address is configured here; announcing it", "");
            true
        }
        Ok(true) => {
            outcome.note("already holds the address", "");
            // Holding it is not enough: if another host answers too, the LAN has two holders
            // and this takeover is not in effect; it says so instead of "nothing changed".
            if job.probe.count > 0 && !common.dry_run && !job.force {
                let others = outcome
                    .step(
                        format!("ARP probe: does another host answer for {address} too"),
                        limit + job.probe.duration(),
                        vip::answering(&job.vip, &job.probe),
                    )
                    .await;
                match others {
                    Err(e) => return (outcome.fail(e), None),
                    Ok(macs) if !macs.is_empty() => {
                        let macs: Vec<String> = macs.iter().map(ToString::to_string).collect();
                        let e = format!(
                            "{address} is on this host and {} answer for it too: a duplicate \
                             address. This host is not its rightful owner (RFC 5227 §2.4): give \
                             it up with posta failback",
                            macs.join(", ")
                        );
                        return (outcome.fail(e), None);
                    }
                    Ok(_) => {}
                }
            }
            let v = verify_smtp(&mut outcome, address, job.smtp_port, limit).await;
            if let Err(e) = v {
                outcome.error = Some(e.into());
            }
            return (outcome, None);
        }
        Ok(false) => false,
    };
    let ev = env(&outcome, old, new);
    let (pre, post) = match action {
        Action::Reclaim => (Moment::PreFailback, Moment::PostFailback),
        _ => (Moment::PreTakeover, Moment::PostTakeover),
    };
    if !pre_hooks(common, &mut outcome, pre, &ev).await {
        return (outcome, None);
    }
    let probe_what = format!(
        "ARP probe for {address} ({} probes {:?} apart, then {:?})",
        job.probe.count, job.probe.interval, job.probe.wait
    );
    if common.dry_run {
        outcome.note(probe_what, "");
        if !already {
            outcome.note(format!("add {}", job.vip), "");
        }
        outcome.note(
            format!(
                "announce: {} gratuitous ARP {:?} {:?} apart{}",
                job.announce.count,
                job.announce.mode,
                job.announce.interval,
                job.announce
                    .second_burst_after
                    .map(|d| format!(", again after {d:?}"))
                    .unwrap_or_default()
            ),
            "",
        );
        outcome.note(
            format!("check SMTP answers at {address}:{}", job.smtp_port),
            "",
        );
        outcome.note(
            "record in state file",
            common.state_file.display().to_string(),
        );
        post_hooks(common, &mut outcome, post, &ev).await;
        return (outcome, None);
    }
    let probe_limit = limit + job.probe.duration();
    let probed = if job.probe.count == 0 {
        outcome.note("ARP probe skipped (--probe-count 0)", "");
        Ok(ProbeOutcome::Free)
    } else {
        outcome
            .step(probe_what, probe_limit, vip::probe(&job.vip, &job.probe))
            .await
    };
    match probed {
        Err(e) => return (outcome.fail(e), None),
        Ok(ProbeOutcome::Held { mac }) if !job.force => {
            let who = if action == Action::Reclaim {
                "mailserver2 (run posta failback there first)"
            } else {
                "mailserver1 (or another host)"
            };
            let e = format!(
                "{address} is still held: {mac} answered the ARP probe. Taking it would give two \
                 hosts one address; {who}. Use --force only if you know that host is not a mail server"
            );
            return (outcome.fail(e), None);
        }
        Ok(ProbeOutcome::Held { mac }) => outcome.note(
            "--force: taking the address anyway",
            format!("{mac} answered"),
        ),
        Ok(ProbeOutcome::Free) if job.probe.count > 0 => outcome.note("nobody answered", ""),
        Ok(ProbeOutcome::Free) => {}
    }
    if !already
        && let Err(e) = outcome
            .step(format!("add {}", job.vip), limit, vip::add(&job.vip))
            .await
    {
        return (outcome.fail(e), None);
    }
    let announcement = match outcome
        .step(
            "announce (gratuitous ARP / unsolicited NA)",
            limit,
            vip::announce(&job.vip, &job.announce),
        )
        .await
    {
        Ok(a) => a,
        Err(e) => {
            if !already {
                rollback_vip(&mut outcome, &job.vip, limit).await;
            }
            return (outcome.fail(e), None);
        }
    };
    outcome.changed = true;
    if let Err(e) = verify_smtp(&mut outcome, address, job.smtp_port, limit).await {
        // The address stays: clients reach this host for IMAP/POP3 and the next probe; the
        // operator fixes the MTA. Said plainly instead of undone silently.
        outcome
            .remaining
            .push(format!("{} is up on this host", job.vip));
        outcome.error = Some(format!(
            "{e}; check that the MTA listens on all addresses (Postfix: inet_interfaces = all)"
        ));
    }
    let holder = if action == Action::Reclaim {
        "primary"
    } else {
        "backup"
    };
    let mut ev_rec = event(common, &outcome, old, new);
    ev_rec.changed = true;
    record(common, &mut outcome, ev_rec, holder);
    post_hooks(common, &mut outcome, post, &ev).await;
    (outcome, Some(announcement))
}

async fn rollback_vip(outcome: &mut Outcome, v: &Vip, limit: Duration) {
    if outcome
        .step(format!("undo: remove {v}"), limit, vip::remove(v))
        .await
        .is_err()
    {
        outcome
            .remaining
            .push(format!("{v} may still be on this host"));
    }
}

/// Why the SMTP check through the moved address failed.
#[derive(Debug, thiserror::Error)]
enum GreetingError {
    #[error(transparent)]
    Conn(#[from] crate::client::ConnError),
    #[error("greeting is not 220: {0}")]
    Not220(String),
}

/// Connects to `address:port` and waits for the 220 greeting.
async fn verify_smtp(
    outcome: &mut Outcome,
    address: IpAddr,
    port: u16,
    limit: Duration,
) -> Result<(), StepFailed> {
    let fut = async move {
        let mut conn = crate::client::Conn::connect(&address.to_string(), port).await?;
        let line = conn.read_line().await?;
        if line.starts_with(b"220") {
            Ok(())
        } else {
            Err(GreetingError::Not220(crate::proto::escape(&line)))
        }
    };
    outcome
        .step(
            format!("SMTP answers at {}", SocketAddr::new(address, port)),
            limit,
            fut,
        )
        .await
}

/// Gives the virtual IP back (on mailserver2): removes it, then hands clients over to
/// mailserver1 at once: once mailserver1's MAC (learned at its own address, now) answers for
/// the address, a gratuitous ARP / unsolicited NA burst on its behalf moves clients' caches
/// from this host's MAC to it. Nobody answering is said loudly, with the command that fixes
/// it. Returns the announcement whose second burst the caller should await.
pub async fn vip_release(job: &VipJob, common: &Common) -> (Outcome, Option<Announcement>) {
    let mut outcome = Outcome::new(Action::Failback, "vip", job.vip.to_string(), common.dry_run);
    let _lock = match lock(common).await {
        Ok(l) => l,
        Err(e) => return (outcome.fail(e), None),
    };
    let limit = common.step_timeout;
    match outcome
        .step(
            format!("is {} on {}", job.vip.address, job.vip.interface),
            limit,
            vip::present(&job.vip),
        )
        .await
    {
        Err(e) => return (outcome.fail(e), None),
        Ok(false) => {
            outcome.note("this host does not hold the address", "");
            return (outcome, None);
        }
        Ok(true) => {}
    }
    let (old, new) = ("on mailserver2 (this host)", "off mailserver2");
    let ev = env(&outcome, old, new);
    if !pre_hooks(common, &mut outcome, Moment::PreFailback, &ev).await {
        return (outcome, None);
    }
    if common.dry_run {
        outcome.note(format!("remove {}", job.vip), "");
        outcome.note(
            format!(
                "wait up to {HANDOVER_WAIT:?} for mailserver1 to answer for {}, then announce \
                 it at mailserver1's MAC",
                job.vip.address
            ),
            "",
        );
        outcome.note(
            "record in state file",
            common.state_file.display().to_string(),
        );
        post_hooks(common, &mut outcome, Moment::PostFailback, &ev).await;
        return (outcome, None);
    }
    if let Err(e) = outcome
        .step(format!("remove {}", job.vip), limit, vip::remove(&job.vip))
        .await
    {
        outcome
            .remaining
            .push(format!("{} is still on this host", job.vip));
        return (outcome.fail(e), None);
    }
    outcome.changed = true;
    let announcement = hand_over(&mut outcome, job, limit).await;
    let ev_rec = event(common, &outcome, old, new);
    record(common, &mut outcome, ev_rec, "primary");
    post_hooks(common, &mut outcome, Moment::PostFailback, &ev).await;
    (outcome, announcement)
}

/// After the release: waits for mailserver1 alone to answer for the address and announces it
/// at mailserver1's MAC. Anything else (nobody, another host, two hosts) is reported in the
/// outcome's steps and `remaining`, and logged as an error: the failback itself is done and is
/// not undone, since this host taking the address back would not make mailserver1 answer.
async fn hand_over(outcome: &mut Outcome, job: &VipJob, limit: Duration) -> Option<Announcement> {
    let address = job.vip.address;
    let started = Instant::now();
    let seen = loop {
        let found = vip::holders(&job.vip, &ProbeSettings::default(), job.mailserver1).await;
        match found {
            Ok(h) if h.who == vip::Who::Nobody && started.elapsed() < HANDOVER_WAIT => {
                // mailserver1's watch may be about to reclaim it.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let fix = format!(
        "on mailserver1 run: posta failback vip --reclaim (or ip addr add {}/{} dev IF there)",
        address, job.vip.prefix
    );
    let trouble = match seen {
        Err(e) => format!("cannot tell who answers for {address} now: {e}; {fix}"),
        Ok(h) => match h.mailserver1_alone() {
            Some(mac) => {
                outcome.steps.push(Step {
                    what: format!("mailserver1 answers for {address}"),
                    ok: true,
                    detail: mac.to_string(),
                    millis,
                });
                let what = format!(
                    "announce {address} at mailserver1's MAC {mac} (gratuitous ARP / \
                     unsolicited NA on its behalf)"
                );
                return match outcome
                    .step(what, limit, vip::announce_for(&job.vip, mac, &job.announce))
                    .await
                {
                    Ok(a) => Some(a),
                    Err(e) => {
                        let e = format!(
                            "clients may keep this host's MAC for {address} until their ARP \
                             entries expire: {e}; {fix}"
                        );
                        tracing::error!("{e}");
                        outcome.remaining.push(e);
                        None
                    }
                };
            }
            None if h.who == vip::Who::Nobody => format!(
                "{} after {HANDOVER_WAIT:?}: mail to {address} goes nowhere; {fix}",
                h.describe()
            ),
            None => format!(
                "{}: clients were not told to move; if mailserver1 is not the one answering, \
                 remove the address from that host, then {fix}",
                h.describe()
            ),
        },
    };
    tracing::error!("{trouble}");
    outcome.steps.push(Step {
        what: format!("mailserver1 answers for {address}"),
        ok: false,
        detail: trouble.clone(),
        millis,
    });
    outcome.remaining.push(trouble);
    None
}

/// Where a DNS change is made.
#[derive(Debug, Clone)]
pub enum DnsWhere {
    /// An RFC 2136 UPDATE to the zone's primary, signed with the key.
    Update { key: TsigKey },
    /// A static zone file, then the reload command (argv, no shell).
    ZoneFile { path: PathBuf, reload: Vec<String> },
}

/// A DNS action's parameters.
#[derive(Debug, Clone)]
pub struct DnsJob {
    /// The zone's primary authoritative server: updated (or reloaded) and verified.
    pub server: SocketAddr,
    pub record: Record,
    pub how: DnsWhere,
    /// What the record must hold now (compare-and-swap).
    pub expect: Vec<IpAddr>,
    /// What it will hold.
    pub to: Vec<IpAddr>,
}

fn addrs(a: &[IpAddr]) -> String {
    a.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The state file's name for a DNS record.
pub fn dns_resource(record: &Record) -> String {
    format!("{} A/AAAA", record.name)
}

/// Moves the record from `expect` to `to` (takeover) or back (failback, roles reversed by the
/// caller), then verifies at every authoritative server.
pub async fn dns_swap(job: &DnsJob, common: &Common, action: Action) -> Outcome {
    let resource = dns_resource(&job.record);
    let mut outcome = Outcome::new(action, "dns", resource, common.dry_run);
    let _lock = match lock(common).await {
        Ok(l) => l,
        Err(e) => return outcome.fail(e),
    };
    let (old, new) = (addrs(&job.expect), addrs(&job.to));
    let ev = env(&outcome, &old, &new);
    let (pre, post) = match action {
        Action::Takeover => (Moment::PreTakeover, Moment::PostTakeover),
        _ => (Moment::PreFailback, Moment::PostFailback),
    };
    let limit = common.step_timeout;
    let change_what = match &job.how {
        DnsWhere::Update { key } => format!(
            "UPDATE {} at {} signed with {}: if it holds {old}, replace with {new} (TTL {})",
            job.record.name,
            job.server,
            key.display_name(),
            job.record.ttl
        ),
        DnsWhere::ZoneFile { path, .. } => format!(
            "edit {}: if {} holds {old}, replace with {new} (TTL {}) and bump the SOA serial",
            path.display(),
            job.record.name,
            job.record.ttl
        ),
    };
    if common.dry_run {
        // Read what the compare-and-swap would compare, so the rehearsal fails where the
        // real run would (someone else's address, a lame server, a refused query).
        let read = outcome
            .step(
                format!("read {} at {}", job.record.name, job.server),
                limit,
                dns::preview(job.server, &job.record, &job.expect, &job.to, limit),
            )
            .await;
        match read {
            Err(e) => return outcome.fail(e),
            Ok(Swap::AlreadyDone { .. }) => {
                outcome.note(format!("{} already holds {new}", job.record.name), "");
                return outcome;
            }
            Ok(Swap::Done { before }) => outcome.note(
                format!("{} holds {old}", job.record.name),
                before.ttl.map_or(String::new(), |t| {
                    format!("TTL {t}, serial {}", before.serial)
                }),
            ),
        }
        let _ = pre_hooks(common, &mut outcome, pre, &ev).await;
        outcome.note(change_what, "");
        if let DnsWhere::ZoneFile { reload, .. } = &job.how {
            outcome.note(format!("run {}", reload.join(" ")), "");
        }
        outcome.note(
            format!(
                "verify at every authoritative server of {}",
                job.record.zone
            ),
            "",
        );
        outcome.note(
            "record in state file",
            common.state_file.display().to_string(),
        );
        post_hooks(common, &mut outcome, post, &ev).await;
        return outcome;
    }
    // Cheap first look: a repeated action is a no-op without running hooks.
    let current = outcome
        .step(
            format!("read {} at {}", job.record.name, job.server),
            limit,
            dns::verify(job.server, &job.record, &job.to, &unknown_before(), limit),
        )
        .await;
    if let Ok(v) = &current
        && v.servers.iter().any(|s| s.serves(&job.to))
        && v.consistent
    {
        outcome.note(format!("{} already holds {new}", job.record.name), "");
        return outcome;
    }
    if !pre_hooks(common, &mut outcome, pre, &ev).await {
        return outcome;
    }
    let swapped = match &job.how {
        DnsWhere::Update { key } => {
            outcome
                .step(
                    change_what,
                    limit,
                    dns::swap(job.server, key, &job.record, &job.expect, &job.to, limit),
                )
                .await
        }
        DnsWhere::ZoneFile { path, reload } => {
            let edited = outcome
                .step(change_what, limit, {
                    let (path, rec) = (path.clone(), job.record.clone());
                    let (expect, to) = (job.expect.clone(), job.to.clone());
                    // File I/O with fsync: off the async workers.
                    async move {
                        tokio::task::spawn_blocking(move || {
                            dns::zonefile::swap(&path, &rec, &expect, &to)
                        })
                        .await?
                        .map_err(Blocking::Work)
                    }
                })
                .await;
            if edited.is_ok() {
                let r = outcome
                    .step(
                        format!("run {}", reload.join(" ")),
                        limit,
                        run_reload(reload),
                    )
                    .await;
                if let Err(e) = r {
                    outcome.remaining.push(format!(
                        "{} is edited but the server may not have loaded it",
                        path.display()
                    ));
                    return outcome.fail(e);
                }
            }
            edited
        }
    };
    let before = match swapped {
        Err(e) => return outcome.fail(e),
        Ok(Swap::AlreadyDone { current }) => {
            outcome.note(format!("{} already holds {new}", job.record.name), "");
            current
        }
        Ok(Swap::Done { before }) => {
            outcome.changed = true;
            before
        }
    };
    let verified = outcome
        .step(
            format!(
                "verify at every authoritative server of {}",
                job.record.zone
            ),
            limit,
            verify_until_consistent(job, &before, limit),
        )
        .await;
    match verified {
        Ok(v) => {
            for s in &v.servers {
                let detail = match (&s.seen, &s.problem) {
                    (_, Some(p)) => p.clone(),
                    (Some(seen), None) => format!("serial {}, {}", seen.serial, addrs(&seen.addrs)),
                    (None, None) => "no answer".into(),
                };
                outcome.note(format!("  {} serves", s.ns), detail);
            }
            outcome.convergence_secs = Some(v.convergence.as_secs());
            if !v.consistent {
                outcome.error = Some(format!(
                    "not every authoritative server serves {new} yet: {}",
                    v.problems().join("; ")
                ));
            }
        }
        Err(e) => outcome.error = Some(format!("the change was made but verification failed: {e}")),
    }
    if outcome.changed {
        let ev_rec = event(common, &outcome, &old, &new);
        // The TTL the owner gave the record, kept so failback can put it back; and how long
        // resolvers may still hand out the replaced address, for `posta status`. Taken from
        // what the swap replaced, so a failed verification does not lose it.
        let old = dns::convergence(&before, &job.to).as_secs();
        outcome.convergence_secs.get_or_insert(old);
        let (holder, original) = if action == Action::Takeover {
            ("backup", before.ttl)
        } else {
            ("primary", None)
        };
        let ttls = state::DnsTtls {
            original,
            old: Some(old),
        };
        record_with_ttl(common, &mut outcome, ev_rec, holder, ttls);
        post_hooks(common, &mut outcome, post, &ev).await;
    }
    outcome
}

/// Asks every authoritative server until all serve the new record or `limit` passes: a
/// reloaded zone file and a secondary's zone transfer both take a moment. The last view is
/// returned either way; the caller reports what is still inconsistent.
async fn verify_until_consistent(
    job: &DnsJob,
    before: &dns::Snapshot,
    limit: Duration,
) -> Result<dns::Verification, dns::DnsError> {
    // Inside the step's own limit, so the last view is reported rather than a bare timeout.
    let deadline = Instant::now() + limit.saturating_sub(Duration::from_millis(200));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = dns::verify(job.server, &job.record, &job.to, before, left).await?;
        if v.consistent || Instant::now() + Duration::from_millis(100) >= deadline {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A "before" for a read-only look, when no change is being made.
fn unknown_before() -> dns::Snapshot {
    dns::Snapshot {
        serial: 0,
        addrs: Vec::new(),
        ttl: None,
        negative_ttl: 0,
    }
}

/// Why a zone's reload command failed; its stderr is part of the message.
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error("empty reload command")]
    Empty,
    #[error("cannot run {exe}: {source}")]
    Start { exe: String, source: std::io::Error },
    #[error("{exe} failed ({status}): {stderr}")]
    Failed {
        exe: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

async fn run_reload(argv: &[String]) -> Result<(), ReloadError> {
    let (exe, args) = argv.split_first().ok_or(ReloadError::Empty)?;
    let out = tokio::process::Command::new(exe)
        .args(args)
        .output()
        .await
        .map_err(|source| ReloadError::Start {
            exe: exe.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ReloadError::Failed {
            exe: exe.clone(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
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
    use super::{Action, Outcome};

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
}
