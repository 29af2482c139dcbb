//! Health probes and their verdicts.
//!
//! A probe speaks one protocol to one server the way an operator would (greeting, capabilities,
//! TLS, optional login, polite goodbye) and turns what it saw into a [`Status`]. Verdicts come from
//! reply codes and capabilities, never from banner text (banners vary between servers and versions).
//! Probes never fail with an error: every failure is a verdict with a message saying what broke.

pub mod dns;
pub mod imap;
pub mod pop3;
mod probe;
pub mod report;
pub mod run;
pub mod smtp;
pub mod target;
#[cfg(test)]
mod tests;
pub mod url;

use std::time::Duration;

use serde::Serialize;

pub use crate::service::TlsInfo;
pub use target::{Account, Scheme, StartTls, Target, TlsPolicy};

/// Nagios-style verdict. Order is severity: the worst status of a run decides its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Unknown,
    Critical,
}

impl Status {
    /// The Nagios plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// The worst of several statuses; `Ok` for none.
    pub fn worst(all: impl IntoIterator<Item = Status>) -> Status {
        all.into_iter().max().unwrap_or(Status::Ok)
    }
}

/// One step of a probe's conversation ("greeting", "ehlo", "starttls", "auth", ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub status: Status,
    /// What the step saw, for people: reply code and text, capabilities, errors.
    pub detail: String,
}

/// The outcome of one probe against one target.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The target as the operator named it: a URL, or `primary smtp` etc. from the site file.
    pub probe: String,
    /// Protocol name for metrics and perfdata labels: smtp, submission, smtps, imap, ...
    pub protocol: &'static str,
    pub status: Status,
    /// Wall time of the whole probe.
    #[serde(serialize_with = "serialize_secs")]
    pub latency: Duration,
    /// One line: the reason for the status (the first problem, or a summary when all is well).
    pub summary: String,
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// Capabilities the server announced (EHLO keywords, IMAP CAPABILITY, POP3 CAPA).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// Durations in JSON are seconds as a float, as Prometheus and Nagios perfdata use.
fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
