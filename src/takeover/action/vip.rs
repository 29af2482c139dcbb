//! A virtual IP moved: taken by mailserver2, reclaimed by mailserver1, released by mailserver2.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{Common, Outcome, Step, StepFailed, env, event, lock, post_hooks, pre_hooks, record};
use crate::takeover::hooks::Moment;
use crate::takeover::state::Action;
use crate::takeover::vip::{
    self, AnnounceSettings, Announcement, ProbeOutcome, ProbeSettings, Vip,
};

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

/// The steps of taking the address, after the hooks: a dry run prints them, a real run does
/// them in this order.
#[derive(Debug, Clone, Copy)]
enum TakeStep {
    Probe,
    Add,
    Announce,
    CheckSmtp,
    Record,
}

impl TakeStep {
    /// An address configured here already is not added again.
    fn plan(already: bool) -> Vec<TakeStep> {
        let mut steps = vec![TakeStep::Probe];
        if !already {
            steps.push(TakeStep::Add);
        }
        steps.extend([TakeStep::Announce, TakeStep::CheckSmtp, TakeStep::Record]);
        steps
    }

    /// What a dry run says the step would do.
    fn planned(self, job: &VipJob, common: &Common) -> (String, String) {
        let what = match self {
            TakeStep::Probe => probe_what(job),
            TakeStep::Add => format!("add {}", job.vip),
            TakeStep::Announce => format!(
                "announce: {} gratuitous ARP {:?} {:?} apart{}",
                job.announce.count,
                job.announce.mode,
                job.announce.interval,
                job.announce
                    .second_burst_after
                    .map(|d| format!(", again after {d:?}"))
                    .unwrap_or_default()
            ),
            TakeStep::CheckSmtp => {
                format!(
                    "check SMTP answers at {}:{}",
                    job.vip.address, job.smtp_port
                )
            }
            TakeStep::Record => return planned_record(common),
        };
        (what, String::new())
    }
}

/// The steps of giving the address back, after the hooks.
#[derive(Debug, Clone, Copy)]
enum ReleaseStep {
    Remove,
    HandOver,
    Record,
}

impl ReleaseStep {
    const PLAN: [ReleaseStep; 3] = [
        ReleaseStep::Remove,
        ReleaseStep::HandOver,
        ReleaseStep::Record,
    ];

    /// What a dry run says the step would do.
    fn planned(self, job: &VipJob, common: &Common) -> (String, String) {
        let what = match self {
            ReleaseStep::Remove => format!("remove {}", job.vip),
            ReleaseStep::HandOver => format!(
                "wait up to {HANDOVER_WAIT:?} for mailserver1 to answer for {}, then announce \
                 it at mailserver1's MAC",
                job.vip.address
            ),
            ReleaseStep::Record => return planned_record(common),
        };
        (what, String::new())
    }
}

fn planned_record(common: &Common) -> (String, String) {
    (
        "record in state file".into(),
        common.state_file.display().to_string(),
    )
}

fn probe_what(job: &VipJob) -> String {
    format!(
        "ARP probe for {} ({} probes {:?} apart, then {:?})",
        job.vip.address, job.probe.count, job.probe.interval, job.probe.wait
    )
}

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
    let mut announcement = None;
    for step in TakeStep::plan(already) {
        if common.dry_run {
            let (what, detail) = step.planned(job, common);
            outcome.note(what, detail);
            continue;
        }
        match step {
            TakeStep::Probe => {
                let probed = if job.probe.count == 0 {
                    outcome.note("ARP probe skipped (--probe-count 0)", "");
                    Ok(ProbeOutcome::Free)
                } else {
                    let probe_limit = limit + job.probe.duration();
                    outcome
                        .step(
                            probe_what(job),
                            probe_limit,
                            vip::probe(&job.vip, &job.probe),
                        )
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
                    Ok(ProbeOutcome::Free) if job.probe.count > 0 => {
                        outcome.note("nobody answered", "")
                    }
                    Ok(ProbeOutcome::Free) => {}
                }
            }
            TakeStep::Add => {
                let added = outcome
                    .step(format!("add {}", job.vip), limit, vip::add(&job.vip))
                    .await;
                if let Err(e) = added {
                    return (outcome.fail(e), None);
                }
            }
            TakeStep::Announce => {
                let announced = outcome
                    .step(
                        "announce (gratuitous ARP / unsolicited NA)",
                        limit,
                        vip::announce(&job.vip, &job.announce),
                    )
                    .await;
                match announced {
                    Ok(a) => announcement = Some(a),
                    Err(e) => {
                        if !already {
                            rollback_vip(&mut outcome, &job.vip, limit).await;
                        }
                        return (outcome.fail(e), None);
                    }
                }
                outcome.changed = true;
            }
            TakeStep::CheckSmtp => {
                if let Err(e) = verify_smtp(&mut outcome, address, job.smtp_port, limit).await {
                    // The address stays: clients reach this host for IMAP/POP3 and the next
                    // probe; the operator fixes the MTA. Said plainly instead of undone silently.
                    outcome
                        .remaining
                        .push(format!("{} is up on this host", job.vip));
                    outcome.error = Some(format!(
                        "{e}; check that the MTA listens on all addresses (Postfix: inet_interfaces = all)"
                    ));
                }
            }
            TakeStep::Record => {
                let holder = if action == Action::Reclaim {
                    "primary"
                } else {
                    "backup"
                };
                let mut ev_rec = event(common, &outcome, old, new);
                ev_rec.changed = true;
                record(common, &mut outcome, ev_rec, holder);
            }
        }
    }
    post_hooks(common, &mut outcome, post, &ev).await;
    (outcome, announcement)
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
    let mut announcement = None;
    for step in ReleaseStep::PLAN {
        if common.dry_run {
            let (what, detail) = step.planned(job, common);
            outcome.note(what, detail);
            continue;
        }
        match step {
            ReleaseStep::Remove => {
                let removed = outcome
                    .step(format!("remove {}", job.vip), limit, vip::remove(&job.vip))
                    .await;
                if let Err(e) = removed {
                    outcome
                        .remaining
                        .push(format!("{} is still on this host", job.vip));
                    return (outcome.fail(e), None);
                }
                outcome.changed = true;
            }
            ReleaseStep::HandOver => announcement = hand_over(&mut outcome, job, limit).await,
            ReleaseStep::Record => {
                let ev_rec = event(common, &outcome, old, new);
                record(common, &mut outcome, ev_rec, "primary");
            }
        }
    }
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
