//! The POP3 client behind `posta migrate`'s POP3 source: RFC 1939 with CAPA and PIPELINING
//! (RFC 2449) and STLS (RFC 2595). Our own rather than async-pop, which returns RETR bodies still
//! dot-stuffed and has no STLS. Wire meaning lives in `proto::pop3` and
//! `proto::dotstuff`; this file moves bytes and keeps replies matched to commands.
//!
//! Safety rule for the caller: DELE marks, only QUIT deletes (RFC 1939 §6). A session dropped
//! before `+OK` to QUIT deletes nothing, so a message is lost only if the caller sends DELE
//! before its delivery is certain.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::{error::Elapsed, timeout};

use super::{AdminForm, Conn, ConnError, Endpoint, Login, TlsSetup, TlsSetupError};
use crate::proto::dotstuff::{MAX_DATA_LINE, Unstuffer};
use crate::proto::pop3::{
    self, Capability, Command, MAX_LISTING, MultiLine, StatusLine, has_capability,
};
use crate::proto::{ProtoError, sasl};
use crate::service::StartTls;

/// DELEs per write under PIPELINING: about 1 KB of commands and as much of replies, far below
/// what the socket buffers hold, so neither side blocks writing while the other writes.
const DELE_WINDOW: usize = 100;

/// What went wrong, naming the command; [`Pop3Error::is_transient`] says whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum Pop3Error {
    #[error("cannot set up TLS for POP3 server {server}: {source}")]
    TlsSetup {
        server: String,
        source: TlsSetupError,
    },
    #[error("POP3 {during}: {source}")]
    Conn { during: String, source: ConnError },
    #[error("POP3 {during}: no reply within {after:?}")]
    Timeout { during: String, after: Duration },
    #[error("POP3 {during}: malformed reply: {source}")]
    Malformed { during: String, source: ProtoError },
    #[error("POP3 server {server} refused the session: {status}")]
    Greeting { server: String, status: StatusLine },
    #[error("POP3 {command} got {status}")]
    Rejected { command: String, status: StatusLine },
    /// The login was refused. `identity` names the mailbox and any admin identity, so the
    /// operator knows whose password (or master-user setup) to check.
    #[error("POP3 login as {identity} failed: {command} got {status}")]
    Auth {
        command: String,
        identity: String,
        status: StatusLine,
    },
    #[error("POP3 server {server} does not offer STLS, but TLS is required")]
    NoStls { server: String },
    #[error(
        "refusing to send the POP3 password to {server} in clear text: the server offers no \
         STLS (starttls = no allows cleartext)"
    )]
    ClearText { server: String },
    #[error("POP3 server {server} does not offer USER/PASS login (no USER in CAPA)")]
    NoUserLogin { server: String },
    #[error("{0}")]
    Argument(ProtoError),
    #[error("read_retr called with no RETR queued")]
    NothingQueued,
    #[error("POP3 connection is unusable after an earlier error; reconnect")]
    Broken,
    /// The server removes messages marked with DELE only when it answers `+OK` to QUIT; a lost
    /// reply leaves it unknown whether it did, so treat them as still there.
    #[error(
        "{0}; deletions not confirmed (RFC 1939 §6: messages marked with DELE are removed only \
         with +OK to QUIT)"
    )]
    QuitFailed(Box<Pop3Error>),
}

impl Pop3Error {
    /// Whether trying again later may succeed: lost connections, timeouts, a busy server, and
    /// the RFC 2449 §8.1 / RFC 3206 response codes for temporary trouble. A refused password,
    /// a certificate problem or a TLS policy conflict needs the operator instead.
    pub fn is_transient(&self) -> bool {
        match self {
            Pop3Error::Conn { source, .. } => source.is_transient(),
            Pop3Error::Timeout { .. }
            | Pop3Error::Greeting { .. }
            | Pop3Error::Broken
            | Pop3Error::QuitFailed(_) => true,
            Pop3Error::Rejected { status, .. } | Pop3Error::Auth { status, .. } => {
                ["[IN-USE]", "[LOGIN-DELAY]", "[SYS/TEMP]"]
                    .iter()
                    .any(|code| status.text.starts_with(code))
            }
            _ => false,
        }
    }
}

/// One POP3 session.
pub struct Pop3Client {
    conn: Conn,
    server: String,
    timeout: Duration,
    starttls: StartTls,
    /// CAPA's answer; `None` for an RFC 1939-only server that refuses CAPA.
    caps: Option<Vec<Capability>>,
    /// RETRs sent, replies not yet read, in order.
    in_flight: VecDeque<u32>,
    /// RETRs queued but not sent: without PIPELINING one command at a time (RFC 2449 §6.6).
    unsent: VecDeque<u32>,
    /// Replies to RETRs read early because another command had to wait behind them.
    ready: VecDeque<Result<Vec<u8>, Pop3Error>>,
    /// Set when a reply may be half read: the next line could belong to anything, and taking a
    /// message line for `+OK` to DELE would be a lie, so every later call fails.
    broken: bool,
}

impl Pop3Client {
    /// Connects to `ep`: implicit TLS or STLS per `ep.starttls`, greeting, CAPA (again after
    /// STLS: RFC 2595 §4 says pre-TLS capabilities must be forgotten). Under `Auto` a server
    /// without STLS is accepted here, and [`Pop3Client::login`] then refuses to send a password.
    pub async fn connect(ep: &Endpoint) -> Result<Pop3Client, Pop3Error> {
        let server = ep.display();
        let during = || format!("connect to {server}");
        let conn = match timeout(ep.timeout, Conn::connect(&ep.host, ep.port)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => {
                return Err(Pop3Error::Conn {
                    during: during(),
                    source,
                });
            }
            Err(_) => {
                return Err(Pop3Error::Timeout {
                    during: during(),
                    after: ep.timeout,
                });
            }
        };
        let mut client = Pop3Client {
            conn,
            server,
            timeout: ep.timeout,
            starttls: ep.starttls,
            caps: None,
            in_flight: VecDeque::new(),
            unsent: VecDeque::new(),
            ready: VecDeque::new(),
            broken: false,
        };
        if ep.implicit_tls {
            client.handshake(ep).await?;
        }
        let greeting = client.status("greeting").await?;
        if !greeting.ok {
            return Err(Pop3Error::Greeting {
                server: client.server,
                status: greeting,
            });
        }
        client.caps = client.capa().await?;
        if !ep.implicit_tls && ep.starttls != StartTls::No {
            client.stls(ep).await?;
        }
        Ok(client)
    }

    /// Logs in as `login.user`, only over TLS unless the endpoint says `starttls = no`. Its own
    /// password goes by USER/PASS (RFC 1939 §7). An admin identity goes by AUTH PLAIN with
    /// `user` as the authorization identity (RFC 5034, RFC 4616) or by `USER user*admin`, as
    /// [`AdminForm`] says. Capabilities are read again afterwards: RFC 2449 §5 lets them change
    /// after login, and PIPELINING may only be announced then.
    pub async fn login(&mut self, login: &Login) -> Result<(), Pop3Error> {
        self.usable()?;
        if !self.conn.is_tls() && self.starttls != StartTls::No {
            return Err(Pop3Error::ClearText {
                server: self.server.clone(),
            });
        }
        let plain = login.admin.as_ref().is_some_and(|a| match a.form {
            AdminForm::Plain => true,
            AdminForm::Separator => false,
            // RFC 2449 §6.3: `SASL PLAIN ...` lists the mechanisms AUTH accepts.
            AdminForm::Auto => self.caps.as_ref().is_some_and(|c| {
                c.iter().any(|cap| {
                    cap.name == "SASL" && cap.params.iter().any(|m| m.eq_ignore_ascii_case("PLAIN"))
                })
            }),
        });
        let result = match &login.admin {
            Some(admin) if plain => self.auth_plain(login, &admin.user).await,
            _ => self.user_pass(login).await,
        };
        result.map_err(|e| match e {
            Pop3Error::Rejected { command, status } => Pop3Error::Auth {
                command,
                identity: login.identity(),
                status,
            },
            other => other,
        })?;
        if self.caps.is_some() {
            self.caps = self.capa().await?;
        }
        Ok(())
    }

    /// USER/PASS, with `user*admin` as the name for an admin identity (Dovecot's
    /// `auth_master_user_separator`).
    async fn user_pass(&mut self, login: &Login) -> Result<(), Pop3Error> {
        // RFC 2449 §6.3: a server that answers CAPA lists USER when it accepts USER/PASS.
        if self
            .caps
            .as_ref()
            .is_some_and(|c| !has_capability(c, "USER"))
        {
            return Err(Pop3Error::NoUserLogin {
                server: self.server.clone(),
            });
        }
        let user = match &login.admin {
            Some(admin) => {
                sasl::master_login(&login.user, &admin.user).map_err(Pop3Error::Argument)?
            }
            None => login.user.clone(),
        };
        self.command_ok(Command::User(&user)).await?;
        self.command_ok(Command::Pass(login.password.expose()))
            .await?;
        Ok(())
    }

    /// AUTH PLAIN as `admin` for `login.user`: the response on the command line when the line
    /// stays within 255 octets (RFC 5034 §4), else after the server's `+`.
    async fn auth_plain(&mut self, login: &Login, admin: &str) -> Result<(), Pop3Error> {
        let response = sasl::plain(&login.user, admin, login.password.expose())
            .map_err(Pop3Error::Argument)?;
        if "AUTH PLAIN \r\n".len() + response.len() <= pop3::MAX_AUTH_LINE {
            self.command_ok(Command::AuthPlain(Some(&response))).await?;
            return Ok(());
        }
        let cmd = Command::AuthPlain(None);
        self.send(cmd).await?;
        let during = cmd.redacted();
        let result = timeout(self.timeout, self.conn.read_line()).await;
        let line = self.settle(result, &during)?;
        if !pop3::is_continuation(&line) {
            let status = pop3::parse_status(&line).map_err(|e| self.malformed(&during, e))?;
            return Err(Pop3Error::Rejected {
                command: during,
                status,
            });
        }
        match self.command_ok(Command::SaslResponse(&response)).await {
            Err(Pop3Error::Rejected { status, .. }) => Err(Pop3Error::Rejected {
                command: during,
                status,
            }),
            other => other.map(drop),
        }
    }

    /// UIDL (RFC 1939 §7): message numbers and their unique ids, validated and free of
    /// duplicates.
    pub async fn uidl(&mut self) -> Result<Vec<(u32, String)>, Pop3Error> {
        let lines = self.listing(Command::Uidl).await?;
        pop3::parse_uidl(&lines).map_err(|source| Pop3Error::Malformed {
            during: "UIDL".into(),
            source,
        })
    }

    /// LIST (RFC 1939 §5): message numbers and sizes in octets.
    pub async fn list(&mut self) -> Result<Vec<(u32, u64)>, Pop3Error> {
        let lines = self.listing(Command::List).await?;
        pop3::parse_list(&lines).map_err(|source| Pop3Error::Malformed {
            during: "LIST".into(),
            source,
        })
    }

    /// Queues RETR `msgno`. With PIPELINING (RFC 2449 §6.6) it is sent now, so the server
    /// streams the next message while the caller delivers this one; without, it is sent when
    /// [`Pop3Client::read_retr`] gets to it. Keep the window small (a few messages): replies
    /// queue up in the kernel and then here.
    pub async fn send_retr(&mut self, msgno: u32) -> Result<(), Pop3Error> {
        self.usable()?;
        if self.pipelining() {
            self.send(Command::Retr(msgno)).await?;
            self.in_flight.push_back(msgno);
        } else {
            self.unsent.push_back(msgno);
        }
        Ok(())
    }

    /// The next queued message, in the order queued: un-dot-stuffed, line ends as the server
    /// sent them, the terminating `.` line removed, so byte-exact with the stored message. A
    /// `-ERR` for one message (`Rejected`) leaves the session usable for the next.
    pub async fn read_retr(&mut self) -> Result<Vec<u8>, Pop3Error> {
        self.usable()?;
        if let Some(early) = self.ready.pop_front() {
            return early;
        }
        if self.in_flight.is_empty() {
            let Some(msgno) = self.unsent.pop_front() else {
                return Err(Pop3Error::NothingQueued);
            };
            self.send(Command::Retr(msgno)).await?;
            self.in_flight.push_back(msgno);
        }
        self.receive_retr().await?
    }

    /// DELE (RFC 1939 §5): marks the message; only `+OK` to QUIT deletes it.
    pub async fn dele(&mut self, msgno: u32) -> Result<(), Pop3Error> {
        self.usable()?;
        self.drain().await?;
        self.command_ok(Command::Dele(msgno)).await.map(drop)
    }

    /// DELE for each of `msgnos`. With PIPELINING (RFC 2449 §6.6) a window of them goes out in
    /// one write and the replies are read after, one round trip per window instead of one per
    /// message: a maildrop's removal is otherwise a thousand round trips. Stops at the first
    /// `-ERR` (the rest of its window's replies are read, so the session stays in step); what
    /// was marked stays marked, and only QUIT makes it final.
    pub async fn dele_many(&mut self, msgnos: &[u32]) -> Result<(), Pop3Error> {
        self.usable()?;
        self.drain().await?;
        if !self.pipelining() {
            for n in msgnos {
                self.command_ok(Command::Dele(*n)).await?;
            }
            return Ok(());
        }
        for window in msgnos.chunks(DELE_WINDOW) {
            let mut bytes = Vec::new();
            for n in window {
                bytes.extend(Command::Dele(*n).encode().map_err(Pop3Error::Argument)?);
            }
            let shown = format!("DELE x {}", window.len());
            let result = timeout(self.timeout, self.conn.send(&bytes, &shown)).await;
            self.settle(result, &shown)?;
            let mut refused = None;
            for n in window {
                let during = format!("DELE {n}");
                let status = self.status(&during).await?;
                if !status.ok && refused.is_none() {
                    refused = Some(Pop3Error::Rejected {
                        command: during,
                        status,
                    });
                }
            }
            if let Some(e) = refused {
                return Err(e);
            }
        }
        Ok(())
    }

    /// QUIT: the server enters the UPDATE state, removes the messages marked with DELE, and says
    /// `+OK` only if it did (RFC 1939 §6). On any error the deletions are unconfirmed: the
    /// messages may still be there and will be listed again next session.
    pub async fn quit(mut self) -> Result<(), Pop3Error> {
        let result = async {
            self.usable()?;
            self.drain().await?;
            self.command_ok(Command::Quit).await
        }
        .await;
        result
            .map(drop)
            .map_err(|e| Pop3Error::QuitFailed(Box::new(e)))
    }

    /// Whether the server announced PIPELINING (RFC 2449 §6.6), so queued RETRs go out at once.
    pub fn pipelining(&self) -> bool {
        self.caps
            .as_ref()
            .is_some_and(|c| has_capability(c, "PIPELINING"))
    }

    fn usable(&self) -> Result<(), Pop3Error> {
        if self.broken {
            Err(Pop3Error::Broken)
        } else {
            Ok(())
        }
    }

    /// Turns a timed network result into ours; any failure leaves the session broken.
    fn settle<T>(
        &mut self,
        result: Result<Result<T, ConnError>, Elapsed>,
        during: &str,
    ) -> Result<T, Pop3Error> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => {
                self.broken = true;
                Err(Pop3Error::Conn {
                    during: during.to_owned(),
                    source,
                })
            }
            Err(_) => {
                self.broken = true;
                Err(Pop3Error::Timeout {
                    during: during.to_owned(),
                    after: self.timeout,
                })
            }
        }
    }

    fn malformed(&mut self, during: &str, source: ProtoError) -> Pop3Error {
        self.broken = true;
        Pop3Error::Malformed {
            during: during.to_owned(),
            source,
        }
    }

    async fn handshake(&mut self, ep: &Endpoint) -> Result<(), Pop3Error> {
        let setup =
            TlsSetup::new(&ep.tls, ep.tls_name()).map_err(|source| Pop3Error::TlsSetup {
                server: self.server.clone(),
                source,
            })?;
        let result = timeout(self.timeout, self.conn.start_tls(&setup)).await;
        let during = format!("TLS handshake with {}", self.server);
        let info = self.settle(result, &during)?;
        tracing::debug!(version = %info.version, server = %self.server, "POP3 over TLS");
        Ok(())
    }

    /// STLS per policy (RFC 2595 §4). `Conn::start_tls` refuses bytes sent before the handshake.
    async fn stls(&mut self, ep: &Endpoint) -> Result<(), Pop3Error> {
        let offered = self
            .caps
            .as_ref()
            .is_some_and(|c| has_capability(c, "STLS"));
        if !offered {
            if ep.starttls == StartTls::Require {
                return Err(Pop3Error::NoStls {
                    server: self.server.clone(),
                });
            }
            tracing::warn!(server = %self.server, "POP3 server offers no STLS; staying in clear text");
            return Ok(());
        }
        let reply = self.command(Command::Stls).await?;
        if !reply.ok {
            if ep.starttls == StartTls::Require {
                return Err(Pop3Error::Rejected {
                    command: "STLS".into(),
                    status: reply,
                });
            }
            tracing::warn!(server = %self.server, "POP3 STLS refused ({reply}); staying in clear text");
            return Ok(());
        }
        self.handshake(ep).await?;
        self.caps = self.capa().await?;
        Ok(())
    }

    async fn send(&mut self, cmd: Command<'_>) -> Result<(), Pop3Error> {
        let bytes = cmd.encode().map_err(Pop3Error::Argument)?;
        let shown = cmd.redacted();
        let result = timeout(self.timeout, self.conn.send(&bytes, &shown)).await;
        self.settle(result, &shown)
    }

    async fn status(&mut self, during: &str) -> Result<StatusLine, Pop3Error> {
        let result = timeout(self.timeout, self.conn.read_line()).await;
        let line = self.settle(result, during)?;
        pop3::parse_status(&line).map_err(|e| self.malformed(during, e))
    }

    async fn command(&mut self, cmd: Command<'_>) -> Result<StatusLine, Pop3Error> {
        self.send(cmd).await?;
        self.status(&cmd.redacted()).await
    }

    /// A command whose `-ERR` is an error.
    async fn command_ok(&mut self, cmd: Command<'_>) -> Result<StatusLine, Pop3Error> {
        let status = self.command(cmd).await?;
        if status.ok {
            Ok(status)
        } else {
            Err(Pop3Error::Rejected {
                command: cmd.redacted(),
                status,
            })
        }
    }

    async fn multiline(&mut self, during: &str, limit: usize) -> Result<Vec<String>, Pop3Error> {
        let mut body = MultiLine::with_limit(limit);
        loop {
            let result = timeout(self.timeout, self.conn.read_line()).await;
            let line = self.settle(result, during)?;
            match body.feed(&line) {
                Ok(Some(lines)) => return Ok(lines),
                Ok(None) => {}
                Err(e) => return Err(self.malformed(during, e)),
            }
        }
    }

    /// CAPA (RFC 2449 §5); `None` when refused, as RFC 1939-only servers do.
    async fn capa(&mut self) -> Result<Option<Vec<Capability>>, Pop3Error> {
        if !self.command(Command::Capa).await?.ok {
            return Ok(None);
        }
        let lines = self
            .multiline("CAPA", crate::proto::MAX_REPLY_LINES)
            .await?;
        Ok(Some(pop3::parse_capa(&lines)))
    }

    async fn listing(&mut self, cmd: Command<'_>) -> Result<Vec<String>, Pop3Error> {
        self.usable()?;
        self.drain().await?;
        self.command_ok(cmd).await?;
        self.multiline(&cmd.redacted(), MAX_LISTING).await
    }

    /// Reads the replies to every RETR already sent, keeping them for `read_retr`: replies come
    /// in command order, so another command's reply is behind them.
    async fn drain(&mut self) -> Result<(), Pop3Error> {
        while !self.in_flight.is_empty() {
            let reply = self.receive_retr().await?;
            self.ready.push_back(reply);
        }
        Ok(())
    }

    /// Reads the reply to the oldest RETR in flight. The outer error breaks the session; the
    /// inner one is this message's `-ERR`.
    async fn receive_retr(&mut self) -> Result<Result<Vec<u8>, Pop3Error>, Pop3Error> {
        let Some(&msgno) = self.in_flight.front() else {
            return Err(Pop3Error::NothingQueued);
        };
        let during = format!("RETR {msgno}");
        let status = self.status(&during).await?;
        if !status.ok {
            self.in_flight.pop_front();
            return Ok(Err(Pop3Error::Rejected {
                command: during,
                status,
            }));
        }
        let mut body = Unstuffer::new();
        let done = loop {
            let result = timeout(self.timeout, self.conn.read_line_limited(MAX_DATA_LINE)).await;
            let line = self.settle(result, &during)?;
            match body.feed(&line) {
                Ok(Some(done)) => break done,
                Ok(None) => {}
                Err(e) => return Err(self.malformed(&during, e)),
            }
        };
        self.in_flight.pop_front();
        tracing::debug!("S: <message {msgno}, {} octets>", done.message.len());
        if done.bare_lf_lines > 0 {
            tracing::warn!(
                server = %self.server,
                "POP3 {during}: {} lines ended in a bare LF, not CRLF (RFC 1939 §3); kept as sent",
                done.bare_lf_lines
            );
        }
        Ok(Ok(done.message))
    }
}
