//! The POP3 server of `posta mta` (issue 5 item 4): the maildrops are the delivery Maildirs
//! `ROOT/<user>/`, the users come from a users file ([`crate::mta::users`]), so a backup MX
//! without Dovecot still lets users fetch their mail and `posta migrate --from pop3://` drain it.
//!
//! [`serve`] is a function of (listener, config, shutdown), as in mini-redis: one task per
//! connection, at most `max_connections` at once and `max_per_ip` from one address (the next is
//! told `-ERR [SYS/TEMP]` and closed),
//! and on shutdown no new connections, open sessions told to go and awaited. A session ended by
//! shutdown, timeout or a lost connection deletes nothing (RFC 1939 §6: only QUIT does).
//!
//! Port 110 with STLS and port 995 with implicit TLS are two listeners: call [`serve`] once for
//! each, with `implicit_tls` set for the second; both may share the maildrop locks because they
//! are also flock(2)ed on disk.
//!
//! The protocol is `proto::pop3_server`; [`maildrop`] is the disk; `conn` moves bytes.

mod conn;
pub mod maildrop;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::users::Users;

/// Who may send a password without TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaintextAuth {
    /// Only over TLS (STLS or implicit).
    Never,
    /// Over TLS, or from a loopback address: the default, as Dovecot's `disable_plaintext_auth
    /// = yes` treats localhost as secure (a local `posta migrate`, stunnel, a health check).
    #[default]
    Loopback,
    /// Anywhere: only for networks where eavesdropping is impossible.
    Always,
}

/// How the POP3 server runs. Build with [`Pop3Config::new`] and adjust the public fields; for
/// a POP3S listener next to a STLS one, clone and set `implicit_tls` (the clone shares the
/// users, so [`Pop3Config::set_users`] on either reloads both).
#[derive(Clone)]
pub struct Pop3Config {
    /// The Maildir root, as delivery has it: user U's maildrop is `maildir_root/U/{new,cur}`,
    /// or `%u` in the root replaced by U (`/var/vmail/%u/Maildir`). tmp/ is never read.
    pub maildir_root: PathBuf,
    /// Certificate for STLS (or for every connection with `implicit_tls`); `None`: no STLS.
    pub tls: Option<Arc<crate::mta::tls::Tls>>,
    /// TLS from the first byte (port 995, RFC 8314); requires `tls`.
    pub implicit_tls: bool,
    pub plaintext_auth: PlaintextAuth,
    /// Idle time before the server hangs up: RFC 1939 §3 asks for at least 10 minutes. Also the
    /// bound on a TLS handshake.
    pub timeout: Duration,
    /// Time the client has to take each reply (each piece of a long RETR): a client that sends
    /// commands and never reads fills the socket buffers and would hold its slot for good, so
    /// writes are bounded as Postfix's smtpd_timeout bounds them (`posta mta --timeout`).
    pub write_timeout: Duration,
    /// Sessions at once; more are refused with `-ERR [SYS/TEMP]`.
    pub max_connections: usize,
    /// Sessions at once from one client address (the STLS and POP3S listeners together), so
    /// one address cannot take every slot; more are refused with `-ERR [SYS/TEMP]`.
    pub max_per_ip: usize,
    /// Added to every failed login, against password guessing.
    pub failed_login_delay: Duration,
    /// Shared by clones, so one `set_users` (SIGHUP) reaches the STLS and the POP3S listener.
    users: Arc<RwLock<Arc<Users>>>,
    /// Open sessions per client address, shared by clones like `users`.
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Pop3Config {
    /// RFC 1939's 10-minute autologout, 5 minutes to take a reply, 100 connections (20 per
    /// address), 2 s per failed login, no TLS,
    /// cleartext passwords only from loopback.
    pub fn new(maildir_root: PathBuf, users: Users) -> Pop3Config {
        Pop3Config {
            maildir_root,
            tls: None,
            implicit_tls: false,
            plaintext_auth: PlaintextAuth::default(),
            timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(300),
            max_connections: 100,
            max_per_ip: 20,
            failed_login_delay: Duration::from_secs(2),
            users: Arc::new(RwLock::new(Arc::new(users))),
            per_ip: Arc::default(),
        }
    }

    /// Replaces the users (a reloaded users file); sessions already logged in keep going.
    pub fn set_users(&self, users: Users) {
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(users);
    }

    /// The current users.
    pub fn users(&self) -> Arc<Users> {
        Arc::clone(&self.users.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::fmt::Debug for Pop3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Config")
            .field("maildir_root", &self.maildir_root)
            .field("tls", &self.tls.is_some())
            .field("implicit_tls", &self.implicit_tls)
            .field("plaintext_auth", &self.plaintext_auth)
            .field("timeout", &self.timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_per_ip", &self.max_per_ip)
            .field("failed_login_delay", &self.failed_login_delay)
            .field("users", &self.users().len())
            .finish()
    }
}

/// A session's place in the per-address count, given back on drop.
struct IpSlot {
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpSlot {
    /// A place for one more session from `ip`, or `None` when it has `max_per_ip` already.
    fn take(cfg: &Pop3Config, ip: IpAddr) -> Option<IpSlot> {
        let mut map = cfg.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= cfg.max_per_ip {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: Arc::clone(&cfg.per_ip),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What every connection of one server shares.
struct Shared {
    cfg: Arc<Pop3Config>,
    locks: Arc<maildrop::Locks>,
    sizes: maildrop::SizeCache,
}

/// A configuration [`serve`] cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("POP3 with implicit TLS needs a certificate")]
    NoCertificate,
    #[error("POP3 max_connections and max_per_ip must be at least 1")]
    NoConnections,
}

/// Serves POP3 on `listener` until `shutdown` completes, then waits for open sessions to end
/// (they are told to at their next read). Fails only on a bad configuration; connection errors
/// are logged and end that connection.
pub async fn serve(
    listener: TcpListener,
    cfg: Arc<Pop3Config>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if cfg.implicit_tls && cfg.tls.is_none() {
        return Err(ServeError::NoCertificate);
    }
    if cfg.max_connections == 0 || cfg.max_per_ip == 0 {
        return Err(ServeError::NoConnections);
    }
    let shared = Arc::new(Shared {
        cfg: Arc::clone(&cfg),
        locks: Arc::default(),
        sizes: Default::default(),
    });
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!("POP3 accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let admitted = match Arc::clone(&slots).try_acquire_owned() {
                    Err(_) => Err("too many connections, try again later"),
                    Ok(permit) => IpSlot::take(&cfg, peer.ip().to_canonical())
                        .map(|slot| (permit, slot))
                        .ok_or("too many connections from your address"),
                };
                match admitted {
                    Ok(held) => {
                        let shared = Arc::clone(&shared);
                        let stopped = stopped.clone();
                        tasks.spawn(async move {
                            conn::run(shared, tcp, peer, stopped).await;
                            drop(held);
                        });
                    }
                    Err(why) => {
                        tracing::warn!(%peer, "POP3 connection refused: {why}");
                        let implicit = cfg.implicit_tls;
                        let limit = cfg.write_timeout.min(Duration::from_secs(5));
                        tasks.spawn(async move {
                            // Over implicit TLS a plain reply would be noise: just close.
                            if !implicit {
                                let mut tcp = tcp;
                                let reply = format!("-ERR [SYS/TEMP] {why}\r\n");
                                let _ = tokio::time::timeout(limit, tcp.write_all(reply.as_bytes())).await;
                            }
                        });
                    }
                }
            }
        }
    }
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
