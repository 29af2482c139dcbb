//! A deliberately small HTTP/1.0 server for two read-only resources: `GET /metrics`
//! (Prometheus) and `GET /status` (the daemon's snapshot as JSON, which other hosts'
//! witnesses read). One request per connection, bounded request size and time, no other
//! methods: nothing here can change what the daemon does.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::snapshot::Snapshot;

pub async fn serve(
    listener: TcpListener,
    snapshot: Arc<RwLock<Snapshot>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    loop {
        tokio::select! {
            _ = crate::shutdown::stopped(&mut shutdown) => return Ok(()),
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let snapshot = Arc::clone(&snapshot);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream, snapshot)).await;
                });
            }
        }
    }
}

async fn answer(mut stream: TcpStream, snapshot: Arc<RwLock<Snapshot>>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 8192 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let snap = snapshot.read().map(|s| s.clone()).unwrap_or_default();
    let (status, kind, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", snap.metrics()),
        ("GET", "/status") => (
            "200 OK",
            "application/json",
            serde_json::to_string(&snap).unwrap_or_default() + "\n",
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /status\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Why a peer's `/status` could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("not an HTTP response")]
    NotHttp,
    /// The status line of an answer other than 200.
    #[error("{0}")]
    Refused(String),
    #[error("not a posta status: {0}")]
    NotPosta(serde_json::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Fetches a peer's `/status` (for witnesses).
pub async fn get_status(
    addr: std::net::SocketAddr,
    limit: Duration,
) -> Result<Snapshot, StatusError> {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /status HTTP/1.0\r\nHost: posta\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        (&mut s).take(1 << 20).read_to_end(&mut body).await?;
        let text = String::from_utf8_lossy(&body);
        let (head, json) = text.split_once("\r\n\r\n").ok_or(StatusError::NotHttp)?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return Err(StatusError::Refused(
                head.lines().next().unwrap_or("").to_string(),
            ));
        }
        serde_json::from_str(json).map_err(StatusError::NotPosta)
    };
    tokio::time::timeout(limit, fetch)
        .await
        .map_err(|_| StatusError::Timeout(limit))?
}
