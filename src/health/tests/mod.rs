//! In-process misbehaviour tests: scripted servers on 127.0.0.1:0 that stall, hang up, refuse or
//! talk nonsense, and the verdicts the probes must reach. No real mail server needed.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::target::AuthMechanism;
use super::{Account, Scheme, StartTls, Status, Target, TlsPolicy};
use crate::secret::Secret;

/// One move of a scripted server.
pub(super) enum Act {
    /// Write these bytes in one write.
    Say(&'static str),
    /// Read one line from the client and keep it for assertions.
    Hear,
    /// Keep the connection open and silent.
    Hang,
}

/// Serves one connection following `script`, then closes. Returns the port and, when the
/// script ends, the lines the client sent.
pub(super) async fn serve(script: Vec<Act>) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut heard = Vec::new();
        let Ok((sock, _)) = listener.accept().await else {
            return heard;
        };
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        for act in script {
            match act {
                Act::Say(text) => {
                    if w.write_all(text.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Act::Hear => {
                    let mut line = String::new();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => heard.push(line.trim_end().to_owned()),
                    }
                }
                Act::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
            }
        }
        heard
    });
    (port, task)
}

pub(super) fn target(scheme: Scheme, port: u16, starttls: StartTls, account: bool) -> Target {
    Target {
        label: format!("test {scheme}"),
        scheme,
        host: "127.0.0.1".into(),
        port,
        starttls,
        tls: TlsPolicy {
            warn_days: 21,
            crit_days: 7,
            ..TlsPolicy::default()
        },
        account: account.then(|| Account {
            user: "probe".into(),
            password: Secret::new("s3cret"),
            mechanism: AuthMechanism::Auto,
        }),
        timeout: Duration::from_millis(500),
        helo: "probe.test".into(),
        foreign_names: Vec::new(),
    }
}

/// A port nobody listens on: bind, note the port, close.
pub(super) async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

mod imap;
mod pop3;
mod smtp;
