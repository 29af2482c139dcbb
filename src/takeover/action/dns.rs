//! A DNS record moved by compare-and-swap: an RFC 2136 UPDATE, or an edit of a zone file and
//! the server's reload, then verified at every authoritative server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Blocking, Common, Outcome, env, event, lock, post_hooks, pre_hooks, record_with_ttl};
use crate::takeover::dns::{self, Record, Swap, TsigKey};
use crate::takeover::hooks::Moment;
use crate::takeover::state::{self, Action};

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
    let done = if common.dry_run {
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
            Ok(Swap::AlreadyDone { .. }) => true,
            Ok(Swap::Done { before }) => {
                outcome.note(
                    format!("{} holds {old}", job.record.name),
                    before.ttl.map_or(String::new(), |t| {
                        format!("TTL {t}, serial {}", before.serial)
                    }),
                );
                false
            }
        }
    } else {
        // Cheap first look: a repeated action is a no-op without running hooks.
        let current = outcome
            .step(
                format!("read {} at {}", job.record.name, job.server),
                limit,
                dns::verify(job.server, &job.record, &job.to, &unknown_before(), limit),
            )
            .await;
        matches!(&current, Ok(v) if v.servers.iter().any(|s| s.serves(&job.to)) && v.consistent)
    };
    if done {
        outcome.note(format!("{} already holds {new}", job.record.name), "");
        return outcome;
    }
    if !pre_hooks(common, &mut outcome, pre, &ev).await {
        return outcome;
    }
    let mut swapped = None;
    let mut before = None;
    for step in DnsStep::plan(job) {
        if common.dry_run {
            let (what, detail) = step.planned(job, common, &change_what);
            outcome.note(what, detail);
            continue;
        }
        match step {
            DnsStep::Change => {
                let result = match &job.how {
                    DnsWhere::Update { key } => {
                        outcome
                            .step(
                                change_what.clone(),
                                limit,
                                dns::swap(
                                    job.server,
                                    key,
                                    &job.record,
                                    &job.expect,
                                    &job.to,
                                    limit,
                                ),
                            )
                            .await
                    }
                    DnsWhere::ZoneFile { path, .. } => {
                        outcome
                            .step(change_what.clone(), limit, {
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
                            .await
                    }
                };
                match result {
                    Ok(s) => swapped = Some(s),
                    Err(e) => return outcome.fail(e),
                }
            }
            DnsStep::Reload => {
                let DnsWhere::ZoneFile { path, reload } = &job.how else {
                    continue;
                };
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
            DnsStep::Verify => {
                let replaced = match swapped.take() {
                    Some(Swap::AlreadyDone { current }) => {
                        outcome.note(format!("{} already holds {new}", job.record.name), "");
                        current
                    }
                    Some(Swap::Done { before }) => {
                        outcome.changed = true;
                        before
                    }
                    None => unknown_before(),
                };
                verify_and_report(&mut outcome, job, &replaced, limit, &new).await;
                before = Some(replaced);
            }
            DnsStep::Record => {
                if let (true, Some(before)) = (outcome.changed, &before) {
                    let ev_rec = event(common, &outcome, &old, &new);
                    // The TTL the owner gave the record, kept so failback can put it back; and
                    // how long resolvers may still hand out the replaced address, for `posta
                    // status`. Taken from what the swap replaced, so a failed verification does
                    // not lose it.
                    let old = dns::convergence(before, &job.to).as_secs();
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
                }
            }
        }
    }
    // A run that found the change already made has nothing to announce to the hooks.
    if common.dry_run || outcome.changed {
        post_hooks(common, &mut outcome, post, &ev).await;
    }
    outcome
}

/// Verifies the change at every authoritative server, a line per server in the report.
async fn verify_and_report(
    outcome: &mut Outcome,
    job: &DnsJob,
    before: &dns::Snapshot,
    limit: Duration,
    new: &str,
) {
    let verified = outcome
        .step(
            format!(
                "verify at every authoritative server of {}",
                job.record.zone
            ),
            limit,
            verify_until_consistent(job, before, limit),
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
}

/// The steps of moving the record, after the hooks: a dry run prints them, a real run does
/// them in this order.
#[derive(Debug, Clone, Copy)]
enum DnsStep {
    Change,
    Reload,
    Verify,
    Record,
}

impl DnsStep {
    /// A zone file is reloaded after the edit; an UPDATE needs no reload.
    fn plan(job: &DnsJob) -> Vec<DnsStep> {
        let mut steps = vec![DnsStep::Change];
        if let DnsWhere::ZoneFile { .. } = job.how {
            steps.push(DnsStep::Reload);
        }
        steps.extend([DnsStep::Verify, DnsStep::Record]);
        steps
    }

    /// What a dry run says the step would do.
    fn planned(self, job: &DnsJob, common: &Common, change_what: &str) -> (String, String) {
        let what = match (self, &job.how) {
            (DnsStep::Change, _) => change_what.to_string(),
            (DnsStep::Reload, DnsWhere::ZoneFile { reload, .. }) => {
                format!("run {}", reload.join(" "))
            }
            (DnsStep::Reload, DnsWhere::Update { .. }) => String::new(),
            (DnsStep::Verify, _) => format!(
                "verify at every authoritative server of {}",
                job.record.zone
            ),
            (DnsStep::Record, _) => {
                return (
                    "record in state file".into(),
                    common.state_file.display().to_string(),
                );
            }
        };
        (what, String::new())
    }
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
