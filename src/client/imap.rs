//! An IMAP4rev1 client session (RFC 3501) for `posta migrate`: the source (mailserver2) is read
//! with LIST, SELECT, UID SEARCH and a streamed UID FETCH; the destination (mailserver1) gets
//! CREATE and APPEND with flags and INTERNALDATE, and APPENDUID (RFC 4315) names the copy.
//! `posta mirror` adds CONDSTORE/QRESYNC (RFC 7162), flag replacement, RENAME and DELETE, and
//! IDLE (RFC 2177) to learn of new mail as it arrives.
//!
//! Our own small client on [`Conn`] rather than a crate: we need message bodies streamed one at
//! a time out of a single FETCH, literals sent without copying the message, STARTTLS with the
//! injection guard, and errors that say whether a retry can help.
//! What the bytes mean is decided in `proto::imap_*`; this module moves them.
//!
//! One session is one connection and one command at a time, except that
//! [`ImapClient::start_fetch`] leaves its FETCH streaming until [`ImapClient::next_message`]
//! has returned `None`; a command issued before that reads (and drops) the rest first.

mod error;
mod fetch;
mod idle;
mod mailbox;
mod sync;
#[cfg(test)]
mod tests;
mod wire;

use std::time::Duration;

pub use self::error::ImapError;
pub use self::fetch::MAX_MESSAGE;
use self::fetch::Streaming;
pub use self::idle::{IdleWake, MAX_IDLE};
pub use self::sync::Resync;
use self::wire::{Limits, timed};
use super::{AdminForm, Conn, ConnError, Endpoint, Login, TlsSetup};
use crate::proto::escape;
use crate::proto::imap::{self, Cond, has_capability};
use crate::proto::imap_cmd::{Command, LiteralMode};
use crate::proto::imap_data::Data;
pub use crate::proto::imap_data::MailboxInfo;
pub use crate::proto::imap_fetch::{FetchedMessage, FlagsOf, MessageMeta};
pub use crate::proto::imap_select::Selected;
pub use crate::proto::imap_sync::UidRanges;
use crate::proto::sasl;
use crate::service::{StartTls, TlsInfo};

/// An authenticated (after [`ImapClient::login`]) IMAP session.
pub struct ImapClient {
    conn: Conn,
    /// `host:port`, for messages.
    server: String,
    timeout: Duration,
    tags: imap::Tags,
    caps: Vec<String>,
    tls: Option<TlsInfo>,
    /// The operator chose `starttls = no`: LOGIN in clear is what they asked for.
    clear_login_ok: bool,
    /// The greeting was PREAUTH (RFC 3501 §7.1.4): already authenticated, LOGIN is not allowed.
    preauth: bool,
    /// A UID FETCH whose messages are still arriving.
    fetch: Option<Streaming>,
    /// A failure left unread data or a dead connection; every further command fails fast.
    broken: bool,
    /// `ENABLE QRESYNC` succeeded (RFC 7162 §3.2.3).
    qresync: bool,
}

impl ImapClient {
    /// Connects to `ep`: TCP, TLS at once for imaps, the greeting, CAPABILITY, then STARTTLS as
    /// `ep.starttls` says (RFC 3501 §6.2.1; bytes sent before the handshake are refused, see
    /// `Conn::start_tls`) and CAPABILITY again, since what was learned in clear text may have
    /// been forged. With `StartTls::Auto` and no STARTTLS offered the session stays in clear and
    /// [`ImapClient::login`] refuses to send the password.
    pub async fn connect(ep: &Endpoint) -> Result<ImapClient, ImapError> {
        let server = ep.display();
        let waiting = format!("a TCP connection to {server}");
        let conn = timed(
            ep.timeout,
            &waiting,
            "connect",
            Conn::connect(&ep.host, ep.port),
        )
        .await
        .map_err(|e| match e {
            ImapError::Conn { source, .. } => ImapError::Connect {
                server: server.clone(),
                source,
            },
            other => other,
        })?;
        let mut client = ImapClient {
            conn,
            server,
            timeout: ep.timeout,
            tags: imap::Tags::default(),
            caps: Vec::new(),
            tls: None,
            clear_login_ok: ep.starttls == StartTls::No,
            preauth: false,
            fetch: None,
            broken: false,
            qresync: false,
        };
        if ep.implicit_tls {
            client.start_tls(ep).await?;
        }
        let greeting = match client.read("the greeting", Limits::SMALL).await? {
            Data::Status(s) if matches!(s.cond, Cond::Ok | Cond::PreAuth) => s,
            Data::Status(resp) if resp.cond == Cond::Bye => {
                let server = client.server.clone();
                return Err(ImapError::Bye { server, resp });
            }
            other => {
                let reason =
                    crate::proto::ProtoError::Malformed(format!("not an IMAP greeting: {other:?}"));
                return Err(client.malformed("the greeting", reason));
            }
        };
        client.preauth = greeting.cond == Cond::PreAuth;
        client.caps = match greeting.capabilities() {
            Some(caps) => caps,
            None => client.capability().await?,
        };
        if client.tls.is_none() && ep.starttls != StartTls::No {
            // STARTTLS is only valid before authentication, so not after PREAUTH (§6.2.1).
            if !client.preauth && client.has_capability("STARTTLS") {
                client.starttls(ep).await?;
            } else if ep.starttls == StartTls::Require {
                return Err(ImapError::NoStartTls {
                    server: client.server,
                });
            }
        }
        Ok(client)
    }

    /// Whether the server announced `name` (case-insensitive, RFC 3501 §7.2.1), e.g. `UIDPLUS`.
    pub fn has_capability(&self, name: &str) -> bool {
        has_capability(&self.caps, name)
    }

    /// The TLS session, if the connection is encrypted.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Logs in as `login.user`. Its own password goes by LOGIN (RFC 3501 §6.2.3), quoted or,
    /// with CR, LF or non-ASCII, as a literal. An admin identity goes by AUTHENTICATE PLAIN
    /// with `user` as the authorization identity (RFC 4616, with SASL-IR when offered) or by
    /// `LOGIN user*admin`, as [`AdminForm`] says. Capabilities are refreshed afterwards:
    /// servers announce more once authenticated (Dovecot adds them in the `[CAPABILITY ...]`
    /// code of its OK).
    pub async fn login(&mut self, login: &Login) -> Result<(), ImapError> {
        if self.preauth {
            return Ok(());
        }
        if self.tls.is_none() && !self.clear_login_ok {
            return Err(ImapError::Cleartext {
                server: self.server.clone(),
                user: login.identity(),
            });
        }
        let plain = login.admin.as_ref().is_some_and(|a| match a.form {
            AdminForm::Plain => true,
            AdminForm::Separator => false,
            AdminForm::Auto => self.has_capability("AUTH=PLAIN"),
        });
        let tag = self.tags.next_tag();
        let argument = |command: &str, reason| ImapError::Argument {
            command: command.into(),
            reason,
        };
        let (cmd, command) = match &login.admin {
            Some(admin) if plain => {
                let command = "AUTHENTICATE PLAIN";
                let password = login.password.expose();
                let response = sasl::plain(&login.user, &admin.user, password)
                    .map_err(|e| argument(command, e))?;
                let sasl_ir = self.has_capability("SASL-IR");
                let cmd = Command::authenticate_plain(&tag, &response, sasl_ir);
                (cmd, command)
            }
            _ => {
                if self.has_capability("LOGINDISABLED") {
                    return Err(ImapError::LoginDisabled {
                        server: self.server.clone(),
                    });
                }
                let user = match &login.admin {
                    Some(admin) => sasl::master_login(&login.user, &admin.user)
                        .map_err(|e| argument("LOGIN", e))?,
                    None => login.user.clone(),
                };
                let non_sync = self.has_capability("LITERAL+");
                let rendered = imap::login(&tag, &user, login.password.expose(), non_sync)
                    .map_err(|e| argument("LOGIN", e))?;
                let shown = format!("{tag} LOGIN {} <redacted>", escape(user.as_bytes()));
                (Command::from_login(&tag, rendered, shown), "LOGIN")
            }
        };
        let mut caps = None;
        let done = self
            .run(cmd, command, Limits::SMALL, |d| {
                if let Data::Capability(c) = d {
                    caps = Some(c);
                }
                Ok(())
            })
            .await?;
        if done.cond != Cond::Ok {
            return Err(ImapError::Auth {
                command,
                identity: login.identity(),
                resp: done,
            });
        }
        self.caps = match done.capabilities().or(caps) {
            Some(caps) => caps,
            None => self.capability().await?,
        };
        Ok(())
    }

    /// LOGOUT (RFC 3501 §6.1.3): the server says BYE, then OK. A session already broken by an
    /// earlier error is just closed. An unfinished fetch is read to its end first; to abandon
    /// one, drop the client instead.
    pub async fn logout(mut self) -> Result<(), ImapError> {
        if self.broken {
            return Ok(());
        }
        let cmd = self.simple("LOGOUT");
        match self.run(cmd, "LOGOUT", Limits::SMALL, |_| Ok(())).await {
            // Some servers close right after their BYE.
            Ok(_)
            | Err(ImapError::Conn {
                source: ConnError::Closed,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// CAPABILITY (RFC 3501 §6.1.1).
    async fn capability(&mut self) -> Result<Vec<String>, ImapError> {
        let cmd = self.simple("CAPABILITY");
        let mut caps = Vec::new();
        let done = self
            .run(cmd, "CAPABILITY", Limits::SMALL, |d| {
                if let Data::Capability(c) = d {
                    caps.extend(c);
                }
                Ok(())
            })
            .await?;
        self.check(done, "CAPABILITY")?;
        Ok(caps)
    }

    async fn starttls(&mut self, ep: &Endpoint) -> Result<(), ImapError> {
        let cmd = self.simple("STARTTLS");
        let done = self.run(cmd, "STARTTLS", Limits::SMALL, |_| Ok(())).await?;
        self.check(done, "STARTTLS")?;
        self.start_tls(ep).await?;
        self.caps = self.capability().await?;
        Ok(())
    }

    async fn start_tls(&mut self, ep: &Endpoint) -> Result<(), ImapError> {
        let tls_error = |server: &str, reason: String| ImapError::Tls {
            server: server.to_owned(),
            reason,
        };
        let setup = TlsSetup::new(&ep.tls, ep.tls_name())
            .map_err(|e| tls_error(&self.server, e.to_string()))?;
        let handshake = self.conn.start_tls(&setup);
        let info = timed(self.timeout, "the TLS handshake", "TLS", handshake)
            .await
            .map_err(|e| match e {
                ImapError::Conn {
                    source: ConnError::Tls(reason),
                    ..
                } => tls_error(&self.server, reason),
                other => other,
            })
            .map_err(|e| self.broke(e))?;
        self.tls = Some(info);
        Ok(())
    }

    /// A command without arguments.
    fn simple(&mut self, verb: &str) -> Command<'static> {
        let tag = self.tags.next_tag();
        Command::build(&tag, verb, self.literal_mode()).finish()
    }

    fn literal_mode(&self) -> LiteralMode {
        LiteralMode::from_capabilities(&self.caps)
    }

    /// Turns a NO or BAD completion into [`ImapError::Rejected`].
    fn check(&self, done: imap::StatusResp, command: &str) -> Result<(), ImapError> {
        if done.cond == Cond::Ok {
            Ok(())
        } else {
            Err(ImapError::Rejected {
                command: command.to_owned(),
                resp: done,
            })
        }
    }
}
