//! The drill's client: SMTP from inside the client's namespace, on a thread that joined it,
//! spoken by the same client (`client::smtp`) that migrate and the relay use.

use std::fs::File;
use std::future::Future;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use super::DrillError;
use crate::client::endpoint::Endpoint;
use crate::client::smtp::{Dialect, SmtpClient, SmtpError};
use crate::service::{StartTls, TlsPolicy};

/// How long a greeting may take: the drill polls for a server to come up, so a host that does
/// not answer is asked again soon rather than waited for.
const GREETING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long any reply may take while sending.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `f` on a thread inside network namespace `ns`, on a runtime of its own there (sockets
/// belong to the namespace of the thread that opens them).
fn in_ns<T: Send + 'static, F: Future<Output = Result<T, DrillError>>>(
    ns: &str,
    f: impl FnOnce() -> F + Send + 'static,
) -> Result<T, DrillError> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).map_err(DrillError::file(&path))?;
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|source| DrillError::Namespace { path, source })?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DrillError::Runtime)?
            .block_on(f())
    })
    .join()
    .map_err(|_| DrillError::Panicked)?
}

/// Port 25 at `ip`, in plain text as the drill's servers speak it.
fn endpoint(ip: &str, timeout: Duration) -> Endpoint {
    Endpoint {
        host: ip.to_string(),
        port: 25,
        implicit_tls: false,
        starttls: StartTls::No,
        tls: TlsPolicy::default(),
        timeout,
    }
}

/// The server's greeting at `ip`:25, from inside `ns`.
pub fn greeting(ns: &str, ip: &str) -> Result<(), DrillError> {
    let ep = endpoint(ip, GREETING_TIMEOUT);
    in_ns(ns, move || async move {
        SmtpClient::greet(&ep, Dialect::Smtp).await?;
        Ok(())
    })
}

/// Sends `n` messages to ana@example.org through `ip`; returns the Message-IDs that got 250.
pub fn batch(ns: &str, ip: &str, phase: &str, n: usize) -> Result<Vec<String>, DrillError> {
    let (ep, phase) = (endpoint(ip, REPLY_TIMEOUT), phase.to_string());
    in_ns(ns, move || async move {
        let mut c = SmtpClient::connect(&ep, Dialect::Smtp, "client.drill", None).await?;
        let rcpts = ["ana@example.org".to_string()];
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("<drill-{phase}-{i}@posta.drill>");
            let body = format!(
                "From: carlos@laorganizacion.org\r\nTo: ana@example.org\r\n\
                 Subject: drill {phase} {i}\r\nMessage-ID: {id}\r\n\r\n\
                 Sent during the drill's {phase} phase.\r\n"
            );
            let envelope = c
                .begin(Some("carlos@laorganizacion.org"), &rcpts, body.len(), false)
                .await?;
            if let Some(refused) = envelope.refusal() {
                return Err(refused.into());
            }
            c.write_body(body.as_bytes()).await?;
            for (_, reply) in c.finish().await? {
                if reply.code != 250 {
                    return Err(SmtpError::Rejected {
                        proto: Dialect::Smtp.name(),
                        command: "end of DATA".into(),
                        reply,
                    }
                    .into());
                }
            }
            ids.push(id);
        }
        let _ = c.quit().await;
        Ok(ids)
    })
}
