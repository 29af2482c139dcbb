//! Sending one event's notices: each recipient in turn, skipped when the rate limit says it
//! was told recently, recorded once the server accepted its notice.

use std::future::Future;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use super::ledger::Ledger;
use super::message::{Notice, compose, message_id};
use super::text::template;
use crate::client::endpoint::Endpoint;
use crate::client::smtp::{Dialect, SmtpClient, SmtpError};
use crate::config::{NotifyEvent, NotifySettings};

/// Why one notice was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undelivered {
    /// This recipient's notice was refused or its transaction failed; the next may go.
    #[error("{0}")]
    Refused(String),
    /// The server cannot be reached: no notice will go, so the rest are not tried.
    #[error("{0}")]
    Unreachable(String),
}

/// Where notices go.
pub trait Transport {
    /// Hands `message` for `to` to the server; `Ok` once it accepted it.
    fn deliver(
        &mut self,
        from: &str,
        to: &str,
        message: &[u8],
    ) -> impl Future<Output = Result<(), Undelivered>>;
}

/// One event's notices.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub settings: &'a NotifySettings,
    pub notice: Notice,
    /// The From address.
    pub from: String,
    pub recipients: Vec<String>,
    /// The record of notices sent ([`super::ledger::FILE_NAME`] in the state directory).
    pub ledger: PathBuf,
}

/// A notice that did not go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub recipient: String,
    pub error: String,
}

/// What happened to one event's notices, for the takeover's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub event: NotifyEvent,
    /// The server the notices went through.
    pub via: String,
    pub notified: usize,
    /// Told of this event within the rate limit already.
    pub rate_limited: usize,
    pub failed: Vec<Failure>,
}

impl Summary {
    /// One line for the report.
    pub fn line(&self) -> String {
        format!(
            "{} notice via {}: {} notified, {} skipped by the rate limit, {} failed",
            self.event.name(),
            self.via,
            self.notified,
            self.rate_limited,
            self.failed.len()
        )
    }
}

/// The message `job` sends `to`, dated `date`.
pub fn message_for(job: &Job<'_>, to: &str, date: OffsetDateTime) -> Vec<u8> {
    let (subject, body) = job.notice.render(&template(job.settings, job.notice.event));
    let id = message_id(job.notice.event, job.notice.since, to, &job.from);
    compose(&job.from, to, &subject, &body, date, &id)
}

/// Sends `job`'s notices through `transport` (named `via` in the summary).
pub async fn send(job: &Job<'_>, transport: &mut impl Transport, via: String) -> Summary {
    let event = job.notice.event;
    let mut summary = Summary {
        event,
        via,
        notified: 0,
        rate_limited: 0,
        failed: Vec::new(),
    };
    let fail_rest = |summary: &mut Summary, rest: &[String], error: &str| {
        summary.failed.extend(rest.iter().map(|r| Failure {
            recipient: r.clone(),
            error: error.to_string(),
        }));
    };
    let mut ledger = match Ledger::open(&job.ledger) {
        Ok(l) => l,
        Err(e) => {
            fail_rest(&mut summary, &job.recipients, &e.to_string());
            return summary;
        }
    };
    for (i, to) in job.recipients.iter().enumerate() {
        let now = crate::clock::unix_now();
        if ledger.recently_sent(event, to, now, job.settings.rate_limit) {
            summary.rate_limited += 1;
            continue;
        }
        let message = message_for(job, to, OffsetDateTime::now_utc());
        match transport.deliver(&job.from, to, &message).await {
            Ok(()) => {}
            Err(Undelivered::Refused(e)) => {
                fail_rest(&mut summary, std::slice::from_ref(to), &e);
                continue;
            }
            Err(Undelivered::Unreachable(e)) => {
                fail_rest(&mut summary, &job.recipients[i..], &e);
                return summary;
            }
        }
        if let Err(e) = ledger.record(event, to, now) {
            // Sent but not recorded: a later run would send it again, and so every other.
            let e = format!("sent, but not recorded: {e}");
            fail_rest(&mut summary, &job.recipients[i..], &e);
            return summary;
        }
        summary.notified += 1;
    }
    summary
}

/// Notices over SMTP: one session, opened at the first notice and again after a failed one.
pub struct SmtpTransport {
    endpoint: Endpoint,
    helo: String,
    client: Option<SmtpClient>,
}

impl SmtpTransport {
    pub fn new(endpoint: Endpoint, helo: String) -> SmtpTransport {
        SmtpTransport {
            endpoint,
            helo,
            client: None,
        }
    }

    /// Ends the session politely.
    pub async fn close(self) {
        if let Some(c) = self.client {
            // The notices are delivered or not by now; QUIT's answer changes nothing.
            let _ = c.quit().await;
        }
    }

    async fn transaction(
        client: &mut SmtpClient,
        from: &str,
        to: &str,
        message: &[u8],
    ) -> Result<(), Undelivered> {
        let rcpts = [to.to_string()];
        let envelope = client
            .begin(Some(from), &rcpts, message.len(), false)
            .await
            .map_err(undelivered)?;
        if let Some(refused) = envelope.refusal() {
            return Err(Undelivered::Refused(refused.to_string()));
        }
        client.write_body(message).await.map_err(undelivered)?;
        for (_, reply) in client.finish().await.map_err(undelivered)? {
            if !(200..300).contains(&reply.code) {
                return Err(Undelivered::Refused(format!("end of DATA: {reply}")));
            }
        }
        Ok(())
    }
}

/// A server that stops answering or closes is not asked again for every other user (each
/// would wait out the timeout); any other failure is this notice's alone.
fn undelivered(e: SmtpError) -> Undelivered {
    match e {
        SmtpError::Timeout { .. } | SmtpError::Closing { .. } => {
            Undelivered::Unreachable(e.to_string())
        }
        _ => Undelivered::Refused(e.to_string()),
    }
}

impl Transport for SmtpTransport {
    async fn deliver(&mut self, from: &str, to: &str, message: &[u8]) -> Result<(), Undelivered> {
        let mut client = match self.client.take() {
            Some(c) => c,
            None => SmtpClient::connect(&self.endpoint, Dialect::Smtp, &self.helo, None)
                .await
                .map_err(|e| Undelivered::Unreachable(e.to_string()))?,
        };
        let result = Self::transaction(&mut client, from, to, message).await;
        if result.is_ok() {
            self.client = Some(client);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Language;
    use crate::notify::text::View;

    /// Accepts every notice, recording who got one; never answers for `hang_at`'s recipient,
    /// as a server that is killed mid-send (or a kill of posta) leaves it.
    #[derive(Default)]
    struct Fake {
        got: Vec<String>,
        hang_at: Option<String>,
        refuse: Option<String>,
    }

    impl Transport for Fake {
        async fn deliver(&mut self, _: &str, to: &str, _: &[u8]) -> Result<(), Undelivered> {
            if self.hang_at.as_deref() == Some(to) {
                std::future::pending::<()>().await;
            }
            if self.refuse.as_deref() == Some(to) {
                return Err(Undelivered::Refused("550 no such user".into()));
            }
            self.got.push(to.to_string());
            Ok(())
        }
    }

    fn job<'a>(settings: &'a NotifySettings, ledger: PathBuf) -> Job<'a> {
        Job {
            settings,
            notice: Notice {
                event: NotifyEvent::MirrorMissing,
                language: Language::Es,
                view: View::NoMirror,
                since: OffsetDateTime::from_unix_timestamp(1_796_276_682).unwrap(),
            },
            from: "postmaster@x.org".into(),
            recipients: ["a", "b", "c", "d"].map(|u| format!("{u}@x.org")).to_vec(),
            ledger,
        }
    }

    #[tokio::test]
    async fn a_second_run_within_the_rate_limit_sends_none() {
        let dir = tempfile::tempdir().unwrap();
        let settings = NotifySettings::default();
        let job = job(&settings, dir.path().join("notify.json"));
        let mut fake = Fake {
            refuse: Some("c@x.org".into()),
            ..Fake::default()
        };
        let first = send(&job, &mut fake, "test".into()).await;
        assert_eq!((first.notified, first.rate_limited), (3, 0));
        assert_eq!(first.failed.len(), 1);
        assert_eq!(first.failed[0].recipient, "c@x.org");
        assert_eq!(fake.got, ["a@x.org", "b@x.org", "d@x.org"]);
        // The refused one was not recorded: the next run tries it, and only it.
        let mut again = Fake::default();
        let second = send(&job, &mut again, "test".into()).await;
        assert_eq!((second.notified, second.rate_limited), (1, 3));
        assert_eq!(again.got, ["c@x.org"]);
        let mut third = Fake::default();
        let s = send(&job, &mut third, "test".into()).await;
        assert_eq!((s.notified, s.rate_limited), (0, 4));
        assert!(third.got.is_empty());
    }

    /// A kill between recipients: what was accepted before it stays recorded, the run after it
    /// sends the rest and no one twice.
    #[tokio::test]
    async fn a_kill_mid_send_loses_no_record_and_the_next_run_sends_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let settings = NotifySettings::default();
        let job = job(&settings, dir.path().join("notify.json"));
        let mut fake = Fake {
            hang_at: Some("c@x.org".into()),
            ..Fake::default()
        };
        let killed = tokio::time::timeout(
            Duration::from_millis(200),
            send(&job, &mut fake, "t".into()),
        )
        .await;
        assert!(killed.is_err(), "the send hangs at c and is dropped there");
        assert_eq!(fake.got, ["a@x.org", "b@x.org"]);
        let mut after = Fake::default();
        let s = send(&job, &mut after, "t".into()).await;
        assert_eq!(after.got, ["c@x.org", "d@x.org"]);
        assert_eq!((s.notified, s.rate_limited, s.failed.len()), (2, 2, 0));
    }

    /// A server that greets and then stops answering costs one timeout, not one per user.
    #[tokio::test]
    async fn a_server_that_stalls_mid_session_is_unreachable_for_the_rest() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 stalls ESMTP\r\n").await.unwrap();
            lines.next_line().await.unwrap();
            write.write_all(b"250 stalls\r\n").await.unwrap();
            // MAIL FROM gets no answer, ever.
            while lines.next_line().await.unwrap().is_some() {}
        });
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port,
            implicit_tls: false,
            starttls: crate::service::StartTls::No,
            tls: crate::service::TlsPolicy::default(),
            timeout: Duration::from_millis(300),
        };
        let dir = tempfile::tempdir().unwrap();
        let settings = NotifySettings::default();
        let job = job(&settings, dir.path().join("notify.json"));
        let mut smtp = SmtpTransport::new(endpoint, "posta.test".into());
        let started = std::time::Instant::now();
        let s = send(&job, &mut smtp, "t".into()).await;
        assert_eq!((s.notified, s.failed.len()), (0, 4));
        assert!(s.failed[3].error.contains("no reply"), "{:?}", s.failed);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        server.abort();
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_the_rest_without_trying_them() {
        struct Down(usize);
        impl Transport for Down {
            async fn deliver(&mut self, _: &str, _: &str, _: &[u8]) -> Result<(), Undelivered> {
                self.0 += 1;
                Err(Undelivered::Unreachable("connection refused".into()))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let settings = NotifySettings::default();
        let job = job(&settings, dir.path().join("notify.json"));
        let mut down = Down(0);
        let s = send(&job, &mut down, "t".into()).await;
        assert_eq!(down.0, 1);
        assert_eq!((s.notified, s.failed.len()), (0, 4));
        assert!(
            s.line()
                .contains("0 notified, 0 skipped by the rate limit, 4 failed")
        );
    }
}
