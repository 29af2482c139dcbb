//! One POP3 connection: frames lines, feeds the session, carries out its actions (password
//! check, maildrop lock and snapshot, message reads, deletions) and writes the replies, over
//! plain TCP and then, after STLS, over TLS (or TLS from the start).

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tracing::Instrument;

use super::maildrop::{self, Entry, MaildropLock, OpenError};
use super::{PlaintextAuth, Shared};
use crate::proto::pop3_server::{
    Action, LoginResult, MESSAGE_GONE, Render, Session, SessionOptions, Step, retr_status,
};
use crate::proto::{LineBuffer, escape};
use crate::secret::Secret;

const CANNOT_READ: &[u8] = b"-ERR [SYS/TEMP] cannot read the message\r\n";

/// Serves one connection to its end; errors are logged, never returned: one client's trouble
/// is not the server's.
pub(super) async fn run(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    stopped: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("pop3", %peer, user = tracing::field::Empty);
    async move {
        tracing::debug!("connected");
        let mut conn = Conn::new(shared, peer, stopped);
        match conn.serve(tcp).await {
            Ok(()) => tracing::debug!("closed"),
            Err(e) => tracing::info!("connection ended: {e:#}"),
        }
    }
    .instrument(span)
    .await;
}

/// Ends a connection gently: shut down our side, then read and discard what the client still
/// sends for a moment. Closing a socket with unread input makes the kernel send a RST, which
/// can destroy our last reply (`-ERR line too long`) before the client reads it.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    let _ = timeout(Duration::from_secs(1), io.shutdown()).await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while let Ok(n @ 1..) = io.read(&mut sink).await {
            total += n;
            if total > 1 << 20 {
                break;
            }
        }
    };
    let _ = timeout(Duration::from_secs(2), drain).await;
}

/// Why a connection ended early; logged, never sent on (the client has its reply already, or
/// cannot be answered).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("no TLS certificate")]
    NoCertificate,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    #[error("client sent {0} bytes after STLS before the TLS handshake; closing")]
    BytesBeforeHandshake(usize),
    #[error("client did not read a reply within {0:?}")]
    WriteTimeout(Duration),
    #[error("idle for {0:?}, autologout")]
    Idle(Duration),
    #[error("message {index} unreadable after +OK: {source}")]
    Unreadable {
        index: usize,
        source: std::io::Error,
    },
    #[error("message read task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why the deletions of QUIT could not be made durable.
#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error("{0}")]
    Delete(std::io::Error),
    #[error("{0}")]
    Task(tokio::task::JoinError),
}

/// Why `drive` returned.
enum Next {
    Closed,
    StartTls,
}

struct Conn {
    shared: Arc<Shared>,
    session: Session,
    buf: LineBuffer,
    stopped: watch::Receiver<bool>,
    /// Held from login to the end of the connection.
    lock: Option<MaildropLock>,
    /// The logged-in user's Maildir.
    dir: PathBuf,
    entries: Vec<Entry>,
}

impl Conn {
    fn new(shared: Arc<Shared>, peer: SocketAddr, stopped: watch::Receiver<bool>) -> Conn {
        let cfg = &shared.cfg;
        let opts = SessionOptions {
            tls: cfg.implicit_tls,
            stls_available: cfg.tls.is_some() && !cfg.implicit_tls,
            plaintext_auth: match cfg.plaintext_auth {
                PlaintextAuth::Never => false,
                PlaintextAuth::Loopback => peer.ip().to_canonical().is_loopback(),
                PlaintextAuth::Always => true,
            },
        };
        Conn {
            shared,
            session: Session::new(opts),
            buf: LineBuffer::new(),
            stopped,
            lock: None,
            dir: PathBuf::new(),
            entries: Vec::new(),
        }
    }

    /// The session is over: give the maildrop back at once (RFC 1939 §6 releases it with the
    /// UPDATE state; a client reconnecting right after QUIT must not see IN-USE), then close.
    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S) {
        self.lock = None;
        linger(io).await;
    }

    fn timeout(&self) -> Duration {
        self.shared.cfg.timeout
    }

    async fn serve(&mut self, mut tcp: TcpStream) -> Result<(), ConnError> {
        // The address the client connected to picks the certificate (the VIP gets
        // mailserver1's, like Dovecot's `local` blocks).
        let acceptor = match (&self.shared.cfg.tls, tcp.local_addr()) {
            (Some(t), Ok(local)) => Some(t.acceptor(local.ip())),
            _ => None,
        };
        if self.shared.cfg.implicit_tls {
            let acceptor = acceptor.ok_or(ConnError::NoCertificate)?;
            let mut tls = self.handshake(&acceptor, tcp).await?;
            let result = async {
                self.write(&mut tls, &self.session.greeting()).await?;
                self.drive(&mut tls).await
            }
            .await;
            self.finish(&mut tls).await;
            return result.map(drop);
        }
        let result = async {
            self.write(&mut tcp, &self.session.greeting()).await?;
            self.drive(&mut tcp).await
        }
        .await;
        match result {
            // Bytes that came before the handshake were not protected by it: a client (or an
            // attacker in the middle) must not get them run as commands (CVE-2011-0411).
            Ok(Next::StartTls) if self.buf.pending() > 0 => {
                self.finish(&mut tcp).await;
                Err(ConnError::BytesBeforeHandshake(self.buf.pending()))
            }
            Ok(Next::StartTls) => {
                let acceptor = acceptor.ok_or(ConnError::NoCertificate)?;
                let mut tls = self.handshake(&acceptor, tcp).await?;
                self.session.tls_started();
                let result = self.drive(&mut tls).await;
                self.finish(&mut tls).await;
                result.map(drop)
            }
            other => {
                self.finish(&mut tcp).await;
                other.map(drop)
            }
        }
    }

    async fn handshake(
        &self,
        acceptor: &tokio_rustls::TlsAcceptor,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::server::TlsStream<TcpStream>, ConnError> {
        match timeout(self.timeout(), acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(ConnError::Handshake(e)),
            Err(_) => Err(ConnError::HandshakeTimeout),
        }
    }

    async fn write<S: AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        bytes: &[u8],
    ) -> Result<(), ConnError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if tracing::enabled!(tracing::Level::TRACE) {
            tracing::trace!("S: {}", escape(bytes));
        }
        let write = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        let limit = self.shared.cfg.write_timeout;
        match timeout(limit, write).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ConnError::WriteTimeout(limit)),
        }
    }

    /// Reads commands and answers them until the session ends or asks for TLS.
    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
    ) -> Result<Next, ConnError> {
        let mut chunk = vec![0u8; 4096];
        loop {
            let step = match self.buf.next_line_limited(self.session.line_limit()) {
                Ok(Some(line)) => {
                    tracing::debug!("C: {}", self.session.redact(&line));
                    self.session.feed(&line)
                }
                Err(_) => self.session.line_too_long(),
                Ok(None) => {
                    let mut stopped = self.stopped.clone();
                    let read = tokio::select! {
                        read = timeout(self.timeout(), io.read(&mut chunk)) => Some(read),
                        _ = stopped.wait_for(|&stop| stop) => None,
                    };
                    let Some(read) = read else {
                        let bye = b"-ERR [SYS/TEMP] server shutting down\r\n";
                        let _ = self.write(io, bye).await;
                        return Ok(Next::Closed);
                    };
                    match read {
                        Ok(Ok(0)) => return Ok(Next::Closed),
                        Ok(Ok(n)) => {
                            self.buf.extend(&chunk[..n]);
                            continue;
                        }
                        Ok(Err(e)) => return Err(e.into()),
                        Err(_) => {
                            // RFC 1939 §3 autologout: no UPDATE state, nothing deleted.
                            let _ = self.write(io, b"-ERR autologout timer expired\r\n").await;
                            return Err(ConnError::Idle(self.timeout()));
                        }
                    }
                }
            };
            if let Some(next) = self.act(io, step).await? {
                return Ok(next);
            }
        }
    }

    /// Writes a step's reply and carries out its action, which may produce further steps.
    async fn act<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        mut step: Step,
    ) -> Result<Option<Next>, ConnError> {
        loop {
            self.write(io, &step.reply).await?;
            step = match step.action {
                Action::None => return Ok(None),
                Action::Close => return Ok(Some(Next::Closed)),
                Action::StartTls => return Ok(Some(Next::StartTls)),
                Action::Authenticate { user, password } => {
                    let result = self.login(user, password).await;
                    self.session.authenticated(result)
                }
                Action::Retrieve { index, top } => {
                    self.retrieve(io, index, top).await?;
                    return Ok(None);
                }
                Action::Commit { deleted } => {
                    let result = self.commit(&deleted).await;
                    // Released before the reply, so a client that reconnects as soon as it
                    // reads +OK finds the maildrop free.
                    self.lock = None;
                    self.session.committed(result)
                }
            };
        }
    }

    async fn login(&mut self, user: String, password: Secret) -> LoginResult {
        let users = self.shared.cfg.users();
        let check = tokio::task::spawn_blocking(move || {
            let ok = users.verify(&user, &password);
            (ok, users.canonical(&user), user)
        })
        .await;
        let Ok((ok, canonical, given)) = check else {
            return LoginResult::TempFail;
        };
        let user = match (ok, canonical) {
            (true, Some(user)) => user,
            _ => {
                tracing::info!(user = %escape(given.as_bytes()), "POP3 login failed");
                tokio::time::sleep(self.shared.cfg.failed_login_delay).await;
                return LoginResult::Failed;
            }
        };
        let shared = Arc::clone(&self.shared);
        let name = user.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let root = &shared.cfg.maildir_root;
            let dir = maildrop::maildir(root, &name).ok_or_else(|| OpenError::Io {
                path: root.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("user name {name:?} cannot name a Maildir"),
                ),
            })?;
            let lock = maildrop::lock(&shared.locks, &dir, &name)?;
            // Taken out of the shared map for the scan, so other users' logins do not wait on
            // this one's disk reads; the maildrop lock keeps this user's entry to us.
            let mut cache = shared
                .sizes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name)
                .unwrap_or_default();
            let scanned = maildrop::scan(&dir, &mut cache);
            shared
                .sizes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name, cache);
            let entries = scanned.map_err(|source| OpenError::Io {
                path: dir.clone(),
                source,
            })?;
            Ok::<_, OpenError>((lock, dir, entries))
        })
        .await;
        match opened {
            Ok(Ok((lock, dir, entries))) => {
                tracing::Span::current().record("user", user.as_str());
                tracing::info!(messages = entries.len(), "POP3 login");
                let infos = entries.iter().map(|e| e.info.clone()).collect();
                self.lock = Some(lock);
                self.dir = dir;
                self.entries = entries;
                LoginResult::Ok(infos)
            }
            Ok(Err(OpenError::InUse(_))) => {
                tracing::info!(%user, "POP3 maildrop in use");
                LoginResult::InUse
            }
            Ok(Err(e)) => {
                tracing::error!("{e}");
                LoginResult::TempFail
            }
            Err(e) => {
                tracing::error!("maildrop scan failed: {e}");
                LoginResult::TempFail
            }
        }
    }

    /// Streams message `index` (RETR, or TOP with `top`) a piece at a time, each piece under
    /// the write deadline, so neither a big message nor a slow reader costs its size in memory.
    /// An error once `+OK` is out cannot be told to the client: the connection is dropped.
    async fn retrieve<S: AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        index: usize,
        top: Option<u64>,
    ) -> Result<(), ConnError> {
        let Some(entry) = self.entries.get(index).cloned() else {
            return self.write(io, b"-ERR no such message\r\n").await;
        };
        let dir = self.dir.clone();
        let size = entry.info.size;
        let opened = tokio::task::spawn_blocking(move || maildrop::open(&dir, &entry)).await;
        let mut file = match opened {
            Ok(Ok(Some(file))) => file,
            Ok(Ok(None)) => return self.write(io, MESSAGE_GONE).await,
            Ok(Err(e)) => {
                tracing::error!("cannot read message {}: {e}", index + 1);
                return self.write(io, CANNOT_READ).await;
            }
            Err(e) => {
                tracing::error!("message read failed: {e}");
                return self.write(io, CANNOT_READ).await;
            }
        };
        let mut render = Render::new(top);
        let mut out = retr_status(size, top);
        let mut buf = vec![0u8; maildrop::READ_PIECE];
        loop {
            let (back, piece) = tokio::task::spawn_blocking(move || {
                let n = file.read(&mut buf);
                (file, n.map(|n| (n, buf)))
            })
            .await?;
            file = back;
            let (n, piece) = piece.map_err(|source| ConnError::Unreadable {
                index: index + 1,
                source,
            })?;
            if n == 0 {
                render.finish(&mut out);
                return self.write(io, &out).await;
            }
            render.feed(&piece[..n], &mut out);
            buf = piece;
            self.write(io, &out).await?;
            out.clear();
        }
    }

    async fn commit(&self, deleted: &[usize]) -> Result<(), CommitError> {
        let entries: Vec<Entry> = deleted
            .iter()
            .filter_map(|&i| self.entries.get(i).cloned())
            .collect();
        let dir = self.dir.clone();
        let count = entries.len();
        let result = tokio::task::spawn_blocking(move || {
            let refs: Vec<&Entry> = entries.iter().collect();
            maildrop::delete(&dir, &refs)
        })
        .await;
        match result {
            Ok(Ok(())) => {
                tracing::info!(deleted = count, "POP3 QUIT");
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!("POP3 deletions failed: {e}");
                Err(CommitError::Delete(e))
            }
            Err(e) => Err(CommitError::Task(e)),
        }
    }
}
