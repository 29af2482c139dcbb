//! Runs many probes at once; each enforces its own timeout, so one tarpit never delays the rest.

use tokio::task::JoinSet;

use super::dns::{self, DnsCheck};
use super::{ProbeReport, Scheme, Status, Step, Target, imap, pop3, smtp};

/// One thing to probe.
#[derive(Debug, Clone)]
pub enum Job {
    Service(Target),
    Dns(DnsCheck),
}

/// Probes one service target, dispatching on its protocol.
pub async fn probe(target: &Target) -> ProbeReport {
    match target.scheme {
        Scheme::Smtp | Scheme::Submission | Scheme::Smtps => smtp::probe(target).await,
        Scheme::Imap | Scheme::Imaps => imap::probe(target).await,
        Scheme::Pop3 | Scheme::Pop3s => pop3::probe(target).await,
    }
}

/// Runs every job concurrently; reports come back in the order the jobs were given.
pub async fn all(jobs: Vec<Job>) -> Vec<ProbeReport> {
    let mut set = JoinSet::new();
    let labels: Vec<String> = jobs.iter().map(label).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        set.spawn(async move {
            let report = match &job {
                Job::Service(t) => probe(t).await,
                Job::Dns(c) => dns::probe(c).await,
            };
            (i, report)
        });
    }
    let mut reports: Vec<Option<ProbeReport>> = labels.iter().map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, report)) = joined {
            reports[i] = Some(report);
        }
    }
    // A probe task that panicked is a bug, but the operator still gets a verdict for it.
    reports
        .into_iter()
        .zip(labels)
        .map(|(r, label)| r.unwrap_or_else(|| crashed(label)))
        .collect()
}

fn label(job: &Job) -> String {
    match job {
        Job::Service(t) => t.label.clone(),
        Job::Dns(c) => format!("dns {}", c.domain),
    }
}

fn crashed(label: String) -> ProbeReport {
    let detail = "the probe crashed; this is a bug in posta".to_string();
    ProbeReport {
        probe: label,
        protocol: "unknown",
        status: Status::Unknown,
        latency: std::time::Duration::ZERO,
        summary: detail.clone(),
        steps: vec![Step {
            name: "probe",
            status: Status::Unknown,
            detail,
        }],
        tls: None,
        capabilities: Vec::new(),
    }
}
