//! What the SMTP, IMAP and POP3 probes share: the overall deadline, step bookkeeping, connecting
//! (with implicit TLS), the TLS handshake and certificate verdict, the STARTTLS policy and the
//! rule about passwords in clear. Each protocol module only writes its conversation.

use std::time::{Duration, Instant};

use super::{ProbeReport, Status, Step, Target, TlsInfo};
use crate::client::{Conn, ConnError, TlsSetup};
use crate::health::StartTls;

/// A step failed in a way that ends the conversation; its CRITICAL (or UNKNOWN) step is recorded.
#[derive(Debug)]
pub(crate) struct Failure;

/// Collects the steps of one probe and turns them into a [`ProbeReport`].
pub(crate) struct Recorder<'t> {
    pub target: &'t Target,
    started: Instant,
    step: &'static str,
    steps: Vec<Step>,
    highlights: Vec<String>,
    pub capabilities: Vec<String>,
    pub tls: Option<TlsInfo>,
}

/// Runs `session` (borrowing the recorder) under `target.timeout` and reports what it recorded.
/// The deadline covers the whole probe (resolution, connect, every reply), so a tarpit that
/// accepts and never speaks costs at most the timeout and is named by the step that was waiting.
macro_rules! run {
    ($target:expr, $protocol:expr, $session:path) => {{
        use tracing::Instrument as _;
        let target: &$crate::health::Target = $target;
        let protocol: &'static str = $protocol;
        let mut rec = $crate::health::probe::Recorder::new(target);
        let span = tracing::debug_span!("probe", target = %target.label, protocol);
        let outcome = tokio::time::timeout(target.timeout, $session(&mut rec).instrument(span)).await;
        rec.finish(protocol, outcome.is_err())
    }};
}
pub(crate) use run;

impl<'t> Recorder<'t> {
    pub fn new(target: &'t Target) -> Recorder<'t> {
        Recorder {
            target,
            started: Instant::now(),
            step: "connect",
            steps: Vec::new(),
            highlights: Vec::new(),
            capabilities: Vec::new(),
            tls: None,
        }
    }

    /// The report, with a CRITICAL timeout step naming what was awaited if the deadline hit.
    pub fn finish(mut self, protocol: &'static str, timed_out: bool) -> ProbeReport {
        if timed_out {
            let msg = format!(
                "timed out after {} {}",
                human_duration(self.target.timeout),
                waiting_phrase(self.step)
            );
            self.record(Status::Critical, msg);
        }
        self.into_report(protocol)
    }
}

impl Recorder<'_> {
    /// Names the step in progress: timeouts and connection errors are reported against it.
    pub fn begin(&mut self, step: &'static str) {
        self.step = step;
    }

    pub fn record(&mut self, status: Status, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::debug!(step = self.step, status = status.label(), "{detail}");
        self.steps.push(Step {
            name: self.step,
            status,
            detail,
        });
    }

    pub fn ok(&mut self, detail: impl Into<String>) {
        self.record(Status::Ok, detail);
    }

    pub fn warn(&mut self, detail: impl Into<String>) {
        self.record(Status::Warning, detail);
    }

    /// Records a CRITICAL step and ends the conversation.
    pub fn critical(&mut self, detail: impl Into<String>) -> Failure {
        self.record(Status::Critical, detail);
        Failure
    }

    /// Records a problem on our side (a bad CA file, an unsendable password) as UNKNOWN: the
    /// server's health was not determined.
    pub fn unknown(&mut self, detail: impl Into<String>) -> Failure {
        self.record(Status::Unknown, detail);
        Failure
    }

    /// Records a connection error against the step in progress.
    pub fn fail(&mut self, err: ConnError) -> Failure {
        let during = step_label(self.step);
        let msg = match err {
            ConnError::Closed => format!("server closed the connection during {during}"),
            ConnError::Malformed(e) => format!("malformed reply during {during}: {e}"),
            ConnError::Refused { addr } => format!("connection refused ({addr})"),
            ConnError::Tls(msg) => msg,
            e @ (ConnError::Injection(_)
            | ConnError::Resolve { .. }
            | ConnError::Connect { .. }) => e.to_string(),
            e => format!("{e} during {during}"),
        };
        self.critical(msg)
    }

    /// The step in progress.
    pub fn step(&self) -> &'static str {
        self.step
    }

    /// Turns the last recorded step into an OK note: for failures that do not bear on the
    /// server's health, such as a connection dropped right after LOGOUT was sent.
    pub fn demote_last(&mut self) {
        if let Some(last) = self.steps.last_mut() {
            last.status = super::Status::Ok;
            last.detail = format!("note: {}", last.detail);
        }
    }

    /// A fragment for the success summary ("220 greeting", "TLSv1.3", ...).
    pub fn highlight(&mut self, text: impl Into<String>) {
        self.highlights.push(text.into());
    }

    fn into_report(self, protocol: &'static str) -> ProbeReport {
        let status = Status::worst(self.steps.iter().map(|s| s.status));
        let summary = match self.steps.iter().find(|s| s.status == status) {
            Some(step) if status != Status::Ok => step.detail.clone(),
            _ if self.highlights.is_empty() => "ok".to_owned(),
            _ => self.highlights.join(", "),
        };
        ProbeReport {
            probe: self.target.label.clone(),
            protocol,
            status,
            latency: self.started.elapsed(),
            summary,
            steps: self.steps,
            tls: self.tls,
            capabilities: self.capabilities,
        }
    }
}

/// Connects, and for implicit-TLS schemes (RFC 8314) runs the handshake before any protocol byte.
pub(crate) async fn connect(rec: &mut Recorder<'_>) -> Result<Conn, Failure> {
    let target = rec.target;
    rec.begin("connect");
    let mut conn = Conn::connect(&target.host, target.port)
        .await
        .map_err(|e| rec.fail(e))?;
    rec.ok(format!("connected to {}:{}", target.host, target.port));
    if target.scheme.implicit_tls() {
        handshake(rec, &mut conn).await?;
    }
    Ok(conn)
}

/// Runs the TLS handshake and records the TLS facts and the certificate-expiry verdict.
pub(crate) async fn handshake(rec: &mut Recorder<'_>, conn: &mut Conn) -> Result<(), Failure> {
    let target = rec.target;
    rec.begin("tls");
    let setup =
        TlsSetup::new(&target.tls, target.tls_name()).map_err(|e| rec.unknown(e.to_string()))?;
    let info = conn.start_tls(&setup).await.map_err(|e| rec.fail(e))?;
    let verified = if info.verified {
        "verified"
    } else {
        "NOT verified (insecure)"
    };
    rec.ok(format!("{}, certificate {verified}", info.version));
    rec.highlight(info.version.clone());
    rec.begin("certificate");
    let subject = info
        .cert_subject
        .clone()
        .unwrap_or_else(|| "unknown subject".into());
    match info.cert_days_left {
        Some(days) if days < 0 => {
            rec.record(
                Status::Critical,
                format!("certificate expired {} days ago ({subject})", -days),
            );
        }
        Some(days) if days < target.tls.crit_days => rec.record(
            Status::Critical,
            format!(
                "certificate expires in {days} days (critical below {}; {subject})",
                target.tls.crit_days
            ),
        ),
        Some(days) if days < target.tls.warn_days => rec.warn(format!(
            "certificate expires in {days} days (warning below {}; {subject})",
            target.tls.warn_days
        )),
        Some(days) => {
            rec.ok(format!("certificate valid {days} more days ({subject})"));
            rec.highlight(format!("certificate valid {days} days"));
        }
        None => rec.warn("cannot read the certificate's expiry date"),
    }
    rec.tls = Some(info);
    Ok(())
}

/// Applies the STARTTLS policy to whether the server offers it (`what` is STARTTLS or STLS).
/// Returns whether to upgrade.
pub(crate) fn want_starttls(
    rec: &mut Recorder<'_>,
    offered: bool,
    what: &str,
) -> Result<bool, Failure> {
    rec.begin("starttls");
    match (rec.target.starttls, offered) {
        (StartTls::No, _) => Ok(false),
        (_, true) => Ok(true),
        (StartTls::Require, false) => {
            Err(rec.critical(format!("{what} not offered, but TLS is required")))
        }
        (StartTls::Auto, false) => {
            rec.warn(format!(
                "{what} not offered; the session stays in clear text"
            ));
            Ok(false)
        }
    }
}

/// Whether the probe may send the account's password now. Never in clear unless the operator
/// chose `starttls = no`; with Auto and no TLS the login is skipped with a WARNING.
pub(crate) fn may_send_password(rec: &mut Recorder<'_>, conn: &Conn) -> bool {
    if conn.is_tls() || rec.target.starttls == StartTls::No {
        return true;
    }
    rec.warn("not logging in over cleartext (no TLS on this connection)");
    false
}

fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// How a step reads in "server closed the connection during ...".
fn step_label(step: &str) -> String {
    match step {
        "greeting" => "the greeting".to_owned(),
        "tls" => "the TLS handshake".to_owned(),
        "connect" => "connect".to_owned(),
        other => other.to_ascii_uppercase(),
    }
}

/// How a step reads in "timed out after 3s ...".
fn waiting_phrase(step: &str) -> String {
    match step {
        "connect" => "connecting".to_owned(),
        "tls" => "during the TLS handshake".to_owned(),
        "greeting" => "waiting for the greeting".to_owned(),
        other => format!("waiting for the {} reply", other.to_ascii_uppercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases() {
        assert_eq!(human_duration(Duration::from_secs(3)), "3s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(waiting_phrase("greeting"), "waiting for the greeting");
        assert_eq!(waiting_phrase("ehlo"), "waiting for the EHLO reply");
        assert_eq!(step_label("auth"), "AUTH");
    }
}
