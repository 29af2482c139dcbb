//! The SMTP/LMTP delivery client that relays migrated messages to the primary server: RFC 5321
//! with PIPELINING (RFC 2920), STARTTLS (RFC 3207), SIZE (RFC 1870), 8BITMIME (RFC 6152), AUTH
//! (RFC 4954) and LMTP's reply per recipient (RFC 2033 §4.2). Wire meaning lives in
//! `proto::smtp` and `proto::dotstuff`; this file moves bytes and matches replies to commands.
//!
//! A delivery is split in three so the caller can journal between writing the message and
//! asking for the verdict: [`SmtpClient::begin`] (envelope), [`SmtpClient::write_body`],
//! [`SmtpClient::finish`] (the final dot and its reply). Any error from `finish` other than a
//! reply leaves the outcome unknown: the server may have taken the message.

use std::time::Duration;

use tokio::time::{error::Elapsed, timeout};

use super::{Conn, ConnError, Endpoint, Login, TlsSetup, TlsSetupError};
use crate::proto::ProtoError;
use crate::proto::dotstuff::Stuffer;
use crate::proto::smtp::{Command, Ehlo, Reply, ReplyParser};
use crate::service::StartTls;

/// RFC 5321 §4.5.3.2.5: the client waits at least 3 minutes for each block of data to go out.
const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(3 * 60);

/// RFC 5321 §4.5.3.2.6: at least 10 minutes for the reply to the final dot. The server may be
/// scanning or delivering; giving up sooner leaves a message that was probably delivered looking
/// failed, and fetchmail re-sent big messages forever that way.
const FINAL_REPLY_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How much of the message is stuffed and written at once.
const CHUNK: usize = 64 * 1024;

/// SMTP, or LMTP (RFC 2033) for final delivery into a message store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Smtp,
    Lmtp,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Smtp => "SMTP",
            Dialect::Lmtp => "LMTP",
        }
    }
}

/// What went wrong, naming the command; [`SmtpError::is_transient`] decides retry or bounce.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot set up TLS for {proto} server {server}: {source}")]
    TlsSetup {
        proto: &'static str,
        server: String,
        source: TlsSetupError,
    },
    #[error("{proto} {during}: {source}")]
    Conn {
        proto: &'static str,
        during: String,
        source: ConnError,
    },
    #[error("{proto} {during}: no reply within {after:?}")]
    Timeout {
        proto: &'static str,
        during: String,
        after: Duration,
    },
    #[error("{proto} {during}: malformed reply: {source}")]
    Malformed {
        proto: &'static str,
        during: String,
        source: ProtoError,
    },
    #[error("{proto} {command} got {reply}")]
    Rejected {
        proto: &'static str,
        command: String,
        reply: Reply,
    },
    /// 421 (RFC 5321 §3.8): the server is shutting the connection down, whatever the command.
    #[error("{proto} {command} got {reply}; the server is closing the connection")]
    Closing {
        proto: &'static str,
        command: String,
        reply: Reply,
    },
    #[error("{proto} server {server} does not offer STARTTLS, but TLS is required")]
    NoStartTls { proto: &'static str, server: String },
    #[error(
        "refusing to send the {proto} password to {server} in clear text: the server offers no \
         STARTTLS (starttls = no allows cleartext)"
    )]
    ClearText { proto: &'static str, server: String },
    #[error("{proto} server {server} offers no AUTH PLAIN or LOGIN (it offers: {offered})")]
    NoAuthMechanism {
        proto: &'static str,
        server: String,
        offered: String,
    },
    #[error("{0}")]
    Argument(ProtoError),
    /// A call out of order, such as `finish` without `begin`: a bug in the caller.
    #[error("{0}")]
    Sequence(&'static str),
    #[error("{proto} connection is unusable after an earlier error; reconnect")]
    Broken { proto: &'static str },
    /// LMTP answered for some recipients after the dot, then failed: those in `replies` have
    /// their verdict, those in `missing` have none and may or may not have the message.
    #[error(
        "LMTP end of DATA: replies for {} of {} recipients, then {source}",
        replies.len(),
        replies.len() + missing.len()
    )]
    Incomplete {
        replies: Vec<(String, Reply)>,
        missing: Vec<String>,
        source: Box<SmtpError>,
    },
}

impl SmtpError {
    /// Whether a later attempt may succeed: lost connections, timeouts, 421 and other 4xx
    /// replies (RFC 5321 §4.2.1). 5xx replies, TLS and policy problems are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            SmtpError::Conn { source, .. } => source.is_transient(),
            SmtpError::Timeout { .. }
            | SmtpError::Closing { .. }
            | SmtpError::Broken { .. }
            | SmtpError::Incomplete { .. } => true,
            SmtpError::Rejected { reply, .. } => reply.class() == 4,
            _ => false,
        }
    }

    /// The server's reply behind the error, for callers that act on codes (552 vs 553...).
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            SmtpError::Rejected { reply, .. } | SmtpError::Closing { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

/// The server's answers to one envelope, in command order. With PIPELINING every recipient got
/// a RCPT and DATA was sent; without, the client stopped at the first step that failed (no RCPT
/// after a refused MAIL, no DATA without an accepted recipient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub dialect: Dialect,
    pub mail: Reply,
    pub rcpts: Vec<(String, Reply)>,
    pub data: Option<Reply>,
}

impl Envelope {
    /// Recipients the server accepted (2xx to RCPT).
    pub fn accepted(&self) -> Vec<&str> {
        self.rcpts
            .iter()
            .filter(|(_, reply)| reply.class() == 2)
            .map(|(rcpt, _)| rcpt.as_str())
            .collect()
    }

    /// Whether the server waits for the message: MAIL and at least one RCPT accepted and 354
    /// to DATA. Otherwise `begin` already reset the transaction.
    pub fn is_ready_for_data(&self) -> bool {
        self.mail.class() == 2
            && !self.accepted().is_empty()
            && self.data.as_ref().is_some_and(|d| d.code == 354)
    }

    /// Why the message cannot be sent, as the error naming the refusing command: MAIL FROM's
    /// reply, else (no recipient accepted) the first 4xx RCPT reply or failing that the first
    /// one, else DATA's. `None` when ready for data. Per-recipient verdicts stay in `rcpts`.
    pub fn refusal(&self) -> Option<SmtpError> {
        let proto = self.dialect.name();
        let rejected = |command: String, reply: &Reply| SmtpError::Rejected {
            proto,
            command,
            reply: reply.clone(),
        };
        if self.mail.class() != 2 {
            return Some(rejected("MAIL FROM".into(), &self.mail));
        }
        if self.accepted().is_empty() {
            let (rcpt, reply) = self
                .rcpts
                .iter()
                .find(|(_, reply)| reply.class() == 4)
                .or(self.rcpts.first())?;
            return Some(rejected(Command::RcptTo(rcpt).redacted(), reply));
        }
        match &self.data {
            Some(data) if data.code != 354 => Some(rejected("DATA".into(), data)),
            _ => None,
        }
    }
}

/// Reads one reply, all its lines, off `conn`: the one SMTP reply reader, which [`SmtpClient`]
/// and the health probe share. A reply that does not parse is [`ConnError::Malformed`].
pub async fn read_reply(conn: &mut Conn) -> Result<Reply, ConnError> {
    let mut parser = ReplyParser::new();
    loop {
        let line = conn.read_line().await?;
        if let Some(reply) = parser.feed(&line).map_err(ConnError::Malformed)? {
            return Ok(reply);
        }
    }
}

/// Sends one command's encoded bytes (`shown` is what the log may show) and reads its reply.
pub async fn exchange(conn: &mut Conn, bytes: &[u8], shown: &str) -> Result<Reply, ConnError> {
    conn.send(bytes, shown).await?;
    read_reply(conn).await
}

/// An AUTH mechanism the clients speak (RFC 4954).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMech {
    /// RFC 4616: user and password in one initial response.
    Plain,
    /// The user, then the password, each an answer to a 334 challenge.
    Login,
}

impl AuthMech {
    pub fn name(self) -> &'static str {
        match self {
            AuthMech::Plain => "PLAIN",
            AuthMech::Login => "LOGIN",
        }
    }

    /// The command that starts the mechanism, and the answers that follow, each only after a
    /// 334 (RFC 4954 §4: each 334 is a challenge; LOGIN asks for the user, then the password).
    pub fn commands<'a>(self, user: &'a str, password: &'a str) -> (Command<'a>, Vec<Command<'a>>) {
        match self {
            AuthMech::Plain => (Command::AuthPlain { user, password }, Vec::new()),
            AuthMech::Login => (
                Command::AuthLogin,
                vec![Command::AuthResponse(user), Command::AuthResponse(password)],
            ),
        }
    }
}

enum State {
    Idle,
    /// Between a 354 and the final dot: every byte written is message.
    Data {
        accepted: Vec<String>,
        stuffer: Stuffer,
    },
}

/// One SMTP or LMTP session.
pub struct SmtpClient {
    conn: Conn,
    dialect: Dialect,
    server: String,
    timeout: Duration,
    ehlo: Ehlo,
    state: State,
    /// Set when the session may be out of step (half-read reply, lost connection, 421): a
    /// stray reply taken for the next command's could report a delivery that did not happen.
    broken: bool,
}

impl SmtpClient {
    /// Greeting, EHLO (LHLO for LMTP) as `helo`, STARTTLS per `ep.starttls` and EHLO again
    /// (RFC 3207 §4.2: what was learned in clear is forgotten), then AUTH with `login` when
    /// given: PLAIN, else LOGIN, and only over TLS unless `ep.starttls` is `No`.
    pub async fn connect(
        ep: &Endpoint,
        dialect: Dialect,
        helo: &str,
        login: Option<&Login>,
    ) -> Result<SmtpClient, SmtpError> {
        let mut client = SmtpClient::greet(ep, dialect).await?;
        client.ehlo = client.hello(helo).await?;
        if !ep.implicit_tls && ep.starttls != StartTls::No {
            client.starttls(ep, helo).await?;
        }
        if let Some(login) = login {
            client.auth(ep, login).await?;
        }
        Ok(client)
    }

    /// The first step of [`SmtpClient::connect`] alone: the connection (TLS first when
    /// `ep.implicit_tls`) and a 220 greeting, nothing sent yet. Enough to know a server
    /// accepts mail; use `connect` for a session that sends any.
    pub async fn greet(ep: &Endpoint, dialect: Dialect) -> Result<SmtpClient, SmtpError> {
        let server = ep.display();
        let proto = dialect.name();
        let during = || format!("connect to {server}");
        let conn = match timeout(ep.timeout, Conn::connect(&ep.host, ep.port)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => {
                return Err(SmtpError::Conn {
                    proto,
                    during: during(),
                    source,
                });
            }
            Err(_) => {
                return Err(SmtpError::Timeout {
                    proto,
                    during: during(),
                    after: ep.timeout,
                });
            }
        };
        let mut client = SmtpClient {
            conn,
            dialect,
            server,
            timeout: ep.timeout,
            ehlo: Ehlo {
                domain: String::new(),
                keywords: Vec::new(),
            },
            state: State::Idle,
            broken: false,
        };
        if ep.implicit_tls {
            client.handshake(ep).await?;
        }
        let greeting = client.read_reply("greeting", ep.timeout).await?;
        if greeting.code != 220 {
            return Err(client.rejected("greeting".into(), greeting));
        }
        Ok(client)
    }

    /// What the server announced in its last EHLO/LHLO reply (after TLS when upgraded).
    pub fn ehlo(&self) -> &Ehlo {
        &self.ehlo
    }

    /// Starts a transaction: `MAIL FROM:<from>` (`None` or empty is the null sender) with
    /// `SIZE=size` and `BODY=8BITMIME` when announced and `eight_bit`, a RCPT per recipient,
    /// DATA. With PIPELINING all of it goes out in one write and the replies are read in
    /// command order (RFC 2920 §3.1); without, one command at a time. Refusals are in the
    /// returned [`Envelope`], not errors; unless it is ready for data, the transaction has
    /// already been reset. A 421 anywhere is an error: the server is going away.
    ///
    /// 8-bit data goes out even when the server does not announce 8BITMIME, as Postfix's
    /// client does: converting it would break the byte-exact copy (and any DKIM signature),
    /// and a server that cannot take it says so with a 5xx to the dot.
    pub async fn begin(
        &mut self,
        from: Option<&str>,
        rcpts: &[String],
        size: usize,
        eight_bit: bool,
    ) -> Result<Envelope, SmtpError> {
        self.usable()?;
        if !matches!(self.state, State::Idle) {
            return Err(SmtpError::Sequence(
                "begin called while a message is being sent; call finish first",
            ));
        }
        if rcpts.is_empty() {
            return Err(SmtpError::Argument(ProtoError::BadArgument(
                "a message needs at least one recipient".into(),
            )));
        }
        let mail = Command::MailFrom {
            from: from.unwrap_or(""),
            size: self.ehlo.has("SIZE").then_some(size),
            eight_bit: eight_bit && self.ehlo.has("8BITMIME"),
        };
        // Encode everything first: a bad address must not leave half an envelope on the wire.
        let mut wire = mail.encode().map_err(SmtpError::Argument)?;
        for rcpt in rcpts {
            let bytes = Command::RcptTo(rcpt)
                .encode()
                .map_err(SmtpError::Argument)?;
            wire.extend_from_slice(&bytes);
        }
        let envelope = if self.ehlo.has("PIPELINING") {
            self.envelope_pipelined(mail, rcpts, wire).await?
        } else {
            self.envelope_stepwise(mail, rcpts).await?
        };
        if envelope.is_ready_for_data() {
            self.state = State::Data {
                accepted: envelope.accepted().into_iter().map(str::to_owned).collect(),
                stuffer: Stuffer::new(),
            };
        } else {
            if envelope.data.as_ref().is_some_and(|d| d.code == 354) {
                // RFC 2920 §3.1: DATA was accepted although nothing else was; an empty message
                // ends it, and with no recipient it goes nowhere.
                self.send_data(b".\r\n", ".").await?;
                self.read_reply("end of empty DATA", self.timeout).await?;
            }
            self.reset().await?;
        }
        Ok(envelope)
    }

    /// Writes message bytes as DATA: bare LF becomes CRLF, leading dots are doubled (RFC 5321
    /// §4.5.2), in chunks of 64 KiB, so the message is never copied whole. May be called more
    /// than once with consecutive pieces of one message; `finish` completes the last line.
    pub async fn write_body(&mut self, message: &[u8]) -> Result<(), SmtpError> {
        self.usable()?;
        let State::Data {
            accepted,
            mut stuffer,
        } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return Err(SmtpError::Sequence(
                "write_body called without a transaction ready for data",
            ));
        };
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 8);
        for chunk in message.chunks(CHUNK) {
            out.clear();
            stuffer.encode(chunk, &mut out);
            let shown = format!("<{} octets of message data>", out.len());
            self.send_data(&out, &shown).await?;
        }
        self.state = State::Data { accepted, stuffer };
        Ok(())
    }

    /// Ends the data with the final dot and reads the verdict, waiting at least 10 minutes
    /// whatever `ep.timeout` says (RFC 5321 §4.5.3.2.6). One entry per accepted recipient: for
    /// SMTP each carries the single reply, for LMTP its own (RFC 2033 §4.2), so one recipient
    /// may be delivered while another is refused.
    pub async fn finish(&mut self) -> Result<Vec<(String, Reply)>, SmtpError> {
        self.usable()?;
        let State::Data {
            accepted,
            mut stuffer,
        } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return Err(SmtpError::Sequence(
                "finish called without a transaction ready for data",
            ));
        };
        let mut end = Vec::new();
        stuffer.finish(&mut end);
        self.send_data(&end, ".").await?;
        let wait = self.timeout.max(FINAL_REPLY_TIMEOUT);
        if self.dialect == Dialect::Smtp {
            let reply = self.read_reply("end of DATA", wait).await?;
            return Ok(accepted.into_iter().map(|r| (r, reply.clone())).collect());
        }
        let mut replies = Vec::with_capacity(accepted.len());
        for (i, rcpt) in accepted.iter().enumerate() {
            let during = format!("end of DATA for <{rcpt}>");
            match self.read_reply(&during, wait).await {
                Ok(reply) => replies.push((rcpt.clone(), reply)),
                Err(e) if replies.is_empty() => return Err(e),
                Err(e) => {
                    return Err(SmtpError::Incomplete {
                        replies,
                        missing: accepted[i..].to_vec(),
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(replies)
    }

    /// Asks whether `rcpt` exists without sending mail, as Postfix's address verification
    /// does: `MAIL FROM:<>`, `RCPT TO:<rcpt>`, `RSET`. Returns the RCPT reply (or the MAIL
    /// reply when the sender is refused).
    pub async fn verify_rcpt(&mut self, rcpt: &str) -> Result<Reply, SmtpError> {
        self.usable()?;
        let mail = self
            .command(Command::MailFrom {
                from: "",
                size: None,
                eight_bit: false,
            })
            .await?;
        if mail.class() != 2 {
            return Ok(mail);
        }
        let reply = self.command(Command::RcptTo(rcpt)).await?;
        self.reset().await?;
        Ok(reply)
    }

    /// RSET: abandons the transaction begun but not yet in DATA. After a 354 only the final dot
    /// (which delivers) or closing the connection (which does not) ends it, so RSET then fails
    /// and leaves the client unusable: drop it.
    pub async fn rset(&mut self) -> Result<(), SmtpError> {
        self.usable()?;
        if matches!(self.state, State::Data { .. }) {
            self.broken = true;
            return Err(SmtpError::Sequence(
                "RSET cannot abort a message in DATA (RFC 5321 §4.1.1.4); drop the connection, \
                 and the message is not delivered",
            ));
        }
        self.reset().await
    }

    /// QUIT (RFC 5321 §4.1.1.10). A server that hangs up instead of answering is fine.
    pub async fn quit(mut self) -> Result<(), SmtpError> {
        self.usable()?;
        if matches!(self.state, State::Data { .. }) {
            return Err(SmtpError::Sequence(
                "quit called in DATA; the connection is closed and the message is not delivered",
            ));
        }
        match self.command(Command::Quit).await {
            Ok(_)
            | Err(SmtpError::Closing { .. })
            | Err(SmtpError::Conn {
                source: ConnError::Closed,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn envelope_pipelined(
        &mut self,
        mail: Command<'_>,
        rcpts: &[String],
        mut wire: Vec<u8>,
    ) -> Result<Envelope, SmtpError> {
        wire.extend_from_slice(b"DATA\r\n");
        let mut shown = vec![mail.redacted()];
        shown.extend(rcpts.iter().map(|r| Command::RcptTo(r).redacted()));
        shown.push("DATA".into());
        let result = timeout(self.timeout, self.conn.send(&wire, &shown.join("\r\n"))).await;
        self.settle(result, "MAIL FROM", self.timeout)?;
        let mail_reply = self.read_reply(&mail.redacted(), self.timeout).await?;
        let mut replies = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            let during = Command::RcptTo(rcpt).redacted();
            replies.push((rcpt.clone(), self.read_reply(&during, self.timeout).await?));
        }
        let data = self.read_reply("DATA", self.timeout).await?;
        Ok(Envelope {
            dialect: self.dialect,
            mail: mail_reply,
            rcpts: replies,
            data: Some(data),
        })
    }

    async fn envelope_stepwise(
        &mut self,
        mail: Command<'_>,
        rcpts: &[String],
    ) -> Result<Envelope, SmtpError> {
        let mut envelope = Envelope {
            dialect: self.dialect,
            mail: self.command(mail).await?,
            rcpts: Vec::with_capacity(rcpts.len()),
            data: None,
        };
        if envelope.mail.class() != 2 {
            return Ok(envelope);
        }
        for rcpt in rcpts {
            let reply = self.command(Command::RcptTo(rcpt)).await?;
            envelope.rcpts.push((rcpt.clone(), reply));
        }
        if !envelope.accepted().is_empty() {
            envelope.data = Some(self.command(Command::Data).await?);
        }
        Ok(envelope)
    }

    async fn hello(&mut self, name: &str) -> Result<Ehlo, SmtpError> {
        let cmd = match self.dialect {
            Dialect::Smtp => Command::Ehlo(name),
            Dialect::Lmtp => Command::Lhlo(name),
        };
        let reply = self.command(cmd).await?;
        if reply.code != 250 {
            return Err(self.rejected(cmd.redacted(), reply));
        }
        Ehlo::from_reply(&reply).map_err(|e| self.malformed(&cmd.redacted(), e))
    }

    /// STARTTLS per policy (RFC 3207). `Conn::start_tls` refuses bytes sent before the
    /// handshake (CVE-2011-0411).
    async fn starttls(&mut self, ep: &Endpoint, helo: &str) -> Result<(), SmtpError> {
        let proto = self.dialect.name();
        if !self.ehlo.has("STARTTLS") {
            if ep.starttls == StartTls::Require {
                return Err(SmtpError::NoStartTls {
                    proto,
                    server: self.server.clone(),
                });
            }
            tracing::warn!(server = %self.server, "{proto} server offers no STARTTLS; staying in clear text");
            return Ok(());
        }
        let reply = self.command(Command::StartTls).await?;
        if reply.code != 220 {
            if ep.starttls == StartTls::Require {
                return Err(self.rejected("STARTTLS".into(), reply));
            }
            tracing::warn!(server = %self.server, "{proto} STARTTLS refused ({reply}); staying in clear text");
            return Ok(());
        }
        self.handshake(ep).await?;
        self.ehlo = self.hello(helo).await?;
        Ok(())
    }

    /// AUTH PLAIN (RFC 4616) or LOGIN, never in clear unless the operator chose `starttls = no`.
    async fn auth(&mut self, ep: &Endpoint, login: &Login) -> Result<(), SmtpError> {
        let proto = self.dialect.name();
        if !self.conn.is_tls() && ep.starttls != StartTls::No {
            return Err(SmtpError::ClearText {
                proto,
                server: self.server.clone(),
            });
        }
        let offered = self.ehlo.auth_mechanisms();
        let Some(mech) = [AuthMech::Plain, AuthMech::Login]
            .into_iter()
            .find(|m| offered.iter().any(|o| o == m.name()))
        else {
            return Err(SmtpError::NoAuthMechanism {
                proto,
                server: self.server.clone(),
                offered: offered.join(" "),
            });
        };
        let (start, answers) = mech.commands(&login.user, login.password.expose());
        let mut reply = self.command(start).await?;
        for answer in answers {
            if reply.code != 334 {
                break;
            }
            reply = self.command(answer).await?;
        }
        if reply.code != 235 {
            return Err(self.rejected(format!("AUTH {}", mech.name()), reply));
        }
        Ok(())
    }

    async fn handshake(&mut self, ep: &Endpoint) -> Result<(), SmtpError> {
        let proto = self.dialect.name();
        let setup =
            TlsSetup::new(&ep.tls, ep.tls_name()).map_err(|source| SmtpError::TlsSetup {
                proto,
                server: self.server.clone(),
                source,
            })?;
        let result = timeout(self.timeout, self.conn.start_tls(&setup)).await;
        let during = format!("TLS handshake with {}", self.server);
        let info = self.settle(result, &during, self.timeout)?;
        tracing::debug!(version = %info.version, server = %self.server, "{proto} over TLS");
        Ok(())
    }

    fn usable(&self) -> Result<(), SmtpError> {
        if self.broken {
            Err(SmtpError::Broken {
                proto: self.dialect.name(),
            })
        } else {
            Ok(())
        }
    }

    fn rejected(&self, command: String, reply: Reply) -> SmtpError {
        SmtpError::Rejected {
            proto: self.dialect.name(),
            command,
            reply,
        }
    }

    fn malformed(&mut self, during: &str, source: ProtoError) -> SmtpError {
        self.broken = true;
        SmtpError::Malformed {
            proto: self.dialect.name(),
            during: during.to_owned(),
            source,
        }
    }

    /// Turns a timed network result into ours; any failure leaves the session broken.
    fn settle<T>(
        &mut self,
        result: Result<Result<T, ConnError>, Elapsed>,
        during: &str,
        after: Duration,
    ) -> Result<T, SmtpError> {
        let proto = self.dialect.name();
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => {
                self.broken = true;
                Err(SmtpError::Conn {
                    proto,
                    during: during.to_owned(),
                    source,
                })
            }
            Err(_) => {
                self.broken = true;
                Err(SmtpError::Timeout {
                    proto,
                    during: during.to_owned(),
                    after,
                })
            }
        }
    }

    /// Reads one reply (all its lines) waiting up to `wait` for it. A 421 becomes
    /// [`SmtpError::Closing`] whatever was asked (RFC 5321 §3.8).
    async fn read_reply(&mut self, during: &str, wait: Duration) -> Result<Reply, SmtpError> {
        let result = match timeout(wait, read_reply(&mut self.conn)).await {
            Ok(Err(ConnError::Malformed(e))) => return Err(self.malformed(during, e)),
            other => other,
        };
        let reply = self.settle(result, during, wait)?;
        if reply.code == 421 {
            self.broken = true;
            return Err(SmtpError::Closing {
                proto: self.dialect.name(),
                command: during.to_owned(),
                reply,
            });
        }
        Ok(reply)
    }

    async fn command(&mut self, cmd: Command<'_>) -> Result<Reply, SmtpError> {
        let bytes = cmd.encode().map_err(SmtpError::Argument)?;
        let shown = cmd.redacted();
        let result = timeout(self.timeout, self.conn.send(&bytes, &shown)).await;
        self.settle(result, &shown, self.timeout)?;
        self.read_reply(&shown, self.timeout).await
    }

    /// Writes message data, allowing the RFC 5321 §4.5.3.2.5 minimum for each block.
    async fn send_data(&mut self, bytes: &[u8], shown: &str) -> Result<(), SmtpError> {
        let wait = self.timeout.max(DATA_BLOCK_TIMEOUT);
        let result = timeout(wait, self.conn.send(bytes, shown)).await;
        self.settle(result, "DATA", wait)
    }

    async fn reset(&mut self) -> Result<(), SmtpError> {
        let reply = self.command(Command::Rset).await?;
        if reply.class() != 2 {
            return Err(self.rejected("RSET".into(), reply));
        }
        Ok(())
    }
}
