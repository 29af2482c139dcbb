//! The queue's control socket (`/run/posta/mta.sock` unless `--control-socket` says
//! otherwise): how `posta queue flush` (and keepalived's notify after a failback) reaches the
//! running `posta mta`. One request line, one answer: `flush` or `flush DOMAIN` → `ok`. The
//! socket is owner-only. It lives outside the queue directory, so the queue holds only mail
//! and state (and can sit on a file system that cannot hold sockets, such as LazyFS).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::wake::Wake;

/// Binds the socket, creating its directory. A stale socket file (its owner died) is replaced;
/// one a live mta answers on is not: two mtas on different queues must not share a path (the
/// second would silently take the first one's flushes).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another posta mta serves the control socket {}: give this one its own \
                 --control-socket",
                path.display()
            ),
        ));
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot serve the control socket {}: {e}", path.display()),
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the socket until `shutdown`, then removes it.
pub async fn serve(
    listener: UnixListener,
    path: &Path,
    flush: mpsc::UnboundedSender<Wake>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    loop {
        tokio::select! {
            _ = crate::shutdown::stopped(&mut shutdown) => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let flush = flush.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, flush).await {
                        debug!(error = %e, "control request failed");
                    }
                });
            }
        }
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

async fn answer(stream: UnixStream, flush: mpsc::UnboundedSender<Wake>) -> io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(r.take(1024));
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request"))??;
    let mut words = line.split_whitespace();
    let answer = match (words.next(), words.next(), words.next()) {
        (Some("flush"), None, None) => {
            let _ = flush.send(Wake::Flush(None));
            "ok\n"
        }
        (Some("flush"), Some(d), None) => {
            let _ = flush.send(Wake::Flush(Some(d.to_ascii_lowercase())));
            "ok\n"
        }
        _ => {
            warn!(request = %crate::proto::escape(line.as_bytes()), "unknown control request");
            "error unknown request\n"
        }
    };
    w.write_all(answer.as_bytes()).await
}

/// Asks the mta serving the control socket `socket` to flush.
pub async fn request_flush(socket: &Path, domain: Option<&str>) -> io::Result<()> {
    let mut s = UnixStream::connect(socket).await?;
    let req = match domain {
        Some(d) => format!("flush {d}\n"),
        None => "flush\n".to_string(),
    };
    s.write_all(req.as_bytes()).await?;
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(s).read_line(&mut answer),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the mta did not answer"))??;
    if answer.trim() == "ok" {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the mta answered {:?}",
            answer.trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_mta_per_socket_and_a_flush_reaches_the_runner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("mta.sock");
        let listener = bind(&path).unwrap();
        let e = bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, stop) = watch::channel(false);
        let served = {
            let path = path.clone();
            tokio::spawn(async move { serve(listener, &path, tx, stop).await })
        };
        request_flush(&path, Some("Example.ORG")).await.unwrap();
        assert_eq!(
            rx.recv().await,
            Some(Wake::Flush(Some("example.org".into())))
        );
        stop_tx.send(true).unwrap();
        served.await.unwrap().unwrap();
        assert!(!path.exists(), "removed at shutdown");
        // A socket file its owner left behind (kill -9) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        bind(&path).unwrap();
    }
}
