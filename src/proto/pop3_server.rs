//! POP3 server side, sans-I/O: command lines in, replies out as bytes, plus an [`Action`] for
//! the driver (`mta::pop3`) whenever the session needs the outside world: checking a password,
//! a message's bytes, a TLS handshake, the deletions at QUIT.
//!
//! RFC 1939 (states AUTHORIZATION, TRANSACTION, UPDATE; USER/PASS, STAT, LIST, UIDL, RETR, TOP,
//! DELE, NOOP, RSET, QUIT), RFC 2449 (CAPA, response codes), RFC 2595 (STLS), RFC 5034 (AUTH
//! PLAIN with initial response or continuation). APOP is not offered: it needs the cleartext
//! password on the server, and the users file holds hashes only.
//!
//! Cleartext logins: passwords are accepted only over TLS, unless the driver says the
//! connection is trusted anyway (`SessionOptions::plaintext_auth`: loopback by default, as
//! Dovecot's `disable_plaintext_auth` treats localhost as secure). CAPA then omits USER and
//! SASL, so a careful client (ours) does not even try.
//!
//! `command` parses lines, `message` renders RETR and TOP; this file is the state machine.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::escape;
use crate::secret::Secret;

mod command;
mod message;

use command::line_body;
pub use command::{Command, CommandError, parse_command};
pub use message::{CrlfLen, Render, normalize, normalized_len, render_message, retr_status};

/// Longest command line accepted, CRLF included. RFC 2449 §4 allows 255 octets; be lenient
/// (long user names, sloppy clients) but bounded.
pub const MAX_COMMAND_LINE: usize = 512;

/// Longest AUTH continuation line: RFC 5034 §4 exempts SASL responses from the 255-octet limit.
pub const MAX_AUTH_LINE: usize = 2048;

/// Bad commands (unknown, malformed, refused in this state) before the server hangs up.
pub const MAX_BAD_COMMANDS: u32 = 10;

/// Failed logins before the server hangs up; the driver also delays each failure.
pub const MAX_FAILED_LOGINS: u32 = 3;

/// One message of the maildrop as the driver found it at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Octets RETR sends, before dot-stuffing: the stored bytes with every line ending in CRLF
    /// ([`normalized_len`]). RFC 1939 §5 requires LIST and STAT to count exactly these.
    pub size: u64,
    /// The unique-id (RFC 1939 §7): 1 to 70 characters from 0x21 to 0x7E, stable across sessions.
    pub uid: String,
}

/// What the session needs from the driver after a reply is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    /// Close the connection. Nothing is deleted unless a [`Action::Commit`] came first.
    Close,
    /// The `+OK` to STLS is in the reply: after writing it, refuse if any client bytes are
    /// already buffered (CVE-2011-0411), run the TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// Check the password and lock the maildrop, then call [`Session::authenticated`].
    Authenticate {
        user: String,
        password: Secret,
    },
    /// Send message `index` (0-based): [`render_message`] of its bytes, or [`MESSAGE_GONE`].
    Retrieve {
        index: usize,
        top: Option<u64>,
    },
    /// QUIT in TRANSACTION (RFC 1939 §6 UPDATE): remove these messages (0-based) durably, then
    /// call [`Session::committed`] for the reply, and close.
    Commit {
        deleted: Vec<usize>,
    },
}

/// A reply to write and what to do after writing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub reply: Vec<u8>,
    pub action: Action,
}

impl Step {
    fn reply(text: impl AsRef<str>) -> Step {
        Step {
            reply: line(text.as_ref()),
            action: Action::None,
        }
    }

    fn then(mut self, action: Action) -> Step {
        self.action = action;
        self
    }
}

pub(super) fn line(text: &str) -> Vec<u8> {
    format!("{text}\r\n").into_bytes()
}

/// The reply to RETR or TOP for a message whose file vanished after the login snapshot.
pub const MESSAGE_GONE: &[u8] = b"-ERR message removed\r\n";

/// What the driver found when it checked a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginResult {
    /// Password right, maildrop locked and scanned.
    Ok(Vec<MessageInfo>),
    /// Unknown user or wrong password: the same answer for both.
    Failed,
    /// Another session holds the maildrop (RFC 1939 §8, RFC 2449 §8.1.1 IN-USE).
    InUse,
    /// The maildrop could not be read; try again later (RFC 3206 SYS/TEMP).
    TempFail,
}

/// How the driver sees this connection when the session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// The connection is TLS already (implicit TLS, port 995).
    pub tls: bool,
    /// STLS can be offered: the driver has a certificate.
    pub stls_available: bool,
    /// Passwords may be sent without TLS on this connection (loopback, or configured so).
    pub plaintext_auth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Authorization,
    /// Waiting for the driver's [`Session::authenticated`].
    Authenticating,
    Transaction,
    /// QUIT seen in TRANSACTION; waiting for [`Session::committed`].
    Update,
    Closed,
}

/// One POP3 session's state machine.
#[derive(Debug)]
pub struct Session {
    opts: SessionOptions,
    state: State,
    /// The name given with USER, waiting for PASS.
    user: Option<String>,
    /// AUTH PLAIN sent without initial response: the next line is the SASL response.
    sasl_pending: bool,
    bad_commands: u32,
    failed_logins: u32,
    messages: Vec<MessageInfo>,
    deleted: Vec<bool>,
}

impl Session {
    pub fn new(opts: SessionOptions) -> Session {
        Session {
            opts,
            state: State::Authorization,
            user: None,
            sasl_pending: false,
            bad_commands: 0,
            failed_logins: 0,
            messages: Vec::new(),
            deleted: Vec::new(),
        }
    }

    /// The greeting, written once on connect (and not again after STLS: RFC 2595 §4).
    pub fn greeting(&self) -> Vec<u8> {
        line("+OK posta POP3 server ready")
    }

    /// The longest line the driver should frame next, terminator included.
    pub fn line_limit(&self) -> usize {
        if self.sasl_pending {
            MAX_AUTH_LINE
        } else {
            MAX_COMMAND_LINE
        }
    }

    /// A line safe to log: passwords and SASL responses redacted, control bytes escaped.
    pub fn redact(&self, line: &[u8]) -> String {
        let upper: Vec<u8> = line.iter().take(5).map(u8::to_ascii_uppercase).collect();
        if self.sasl_pending {
            "<SASL response redacted>".into()
        } else if upper.starts_with(b"PASS") {
            "PASS <redacted>".into()
        } else if upper.starts_with(b"AUTH ") {
            let mech = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
            format!(
                "AUTH {} <redacted>",
                escape(mech).trim_end_matches("\\r\\n")
            )
        } else {
            escape(line)
        }
    }

    /// Whether the maildrop is held (TRANSACTION or UPDATE): the driver releases its lock when
    /// the connection ends either way.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Transaction | State::Update)
    }

    /// The driver could not frame a line within [`Session::line_limit`]: the rest of the
    /// stream cannot be trusted to start a command, so hang up.
    pub fn line_too_long(&mut self) -> Step {
        self.state = State::Closed;
        Step::reply("-ERR line too long").then(Action::Close)
    }

    /// Feeds one framed line from the client.
    pub fn feed(&mut self, line: &[u8]) -> Step {
        match self.state {
            State::Closed | State::Update | State::Authenticating => {
                return Step::reply("-ERR [SYS/PERM] session is ending").then(Action::Close);
            }
            State::Authorization | State::Transaction => {}
        }
        if self.sasl_pending {
            self.sasl_pending = false;
            return self.sasl_response(line);
        }
        match parse_command(line) {
            Ok(cmd) => self.command(cmd),
            Err(CommandError::Unknown) => self.bad("-ERR unknown command"),
            Err(e) => self.bad(&format!("-ERR {e}")),
        }
    }

    /// The TLS handshake after STLS succeeded. Capabilities change (no STLS, USER appears).
    pub fn tls_started(&mut self) {
        self.opts.tls = true;
        self.user = None;
    }

    /// The driver's answer to [`Action::Authenticate`].
    pub fn authenticated(&mut self, result: LoginResult) -> Step {
        self.user = None;
        match result {
            LoginResult::Ok(messages) => {
                self.state = State::Transaction;
                self.deleted = vec![false; messages.len()];
                self.messages = messages;
                let octets: u64 = self.messages.iter().map(|m| m.size).sum();
                Step::reply(format!(
                    "+OK maildrop has {} messages ({octets} octets)",
                    self.messages.len()
                ))
            }
            LoginResult::Failed => {
                self.state = State::Authorization;
                self.failed_logins += 1;
                let step = Step::reply("-ERR [AUTH] authentication failed");
                if self.failed_logins >= MAX_FAILED_LOGINS {
                    self.state = State::Closed;
                    return step.then(Action::Close);
                }
                step
            }
            LoginResult::InUse => {
                self.state = State::Authorization;
                Step::reply("-ERR [IN-USE] maildrop is locked by another session")
            }
            LoginResult::TempFail => {
                self.state = State::Authorization;
                Step::reply("-ERR [SYS/TEMP] maildrop is unavailable, try again later")
            }
        }
    }

    /// The driver's answer to [`Action::Commit`]: `Ok` only when every marked message is gone
    /// and the directories are synced. The connection closes either way.
    pub fn committed<E: std::fmt::Display>(&mut self, result: Result<(), E>) -> Step {
        self.state = State::Closed;
        let step = match result {
            Ok(()) => Step::reply("+OK posta POP3 server signing off"),
            Err(why) => Step::reply(format!(
                "-ERR [SYS/TEMP] some deleted messages not removed: {}",
                escape(why.to_string().as_bytes())
            )),
        };
        step.then(Action::Close)
    }

    fn bad(&mut self, reply: &str) -> Step {
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.state = State::Closed;
            return Step::reply("-ERR too many bad commands, closing").then(Action::Close);
        }
        Step::reply(reply)
    }

    fn auth_allowed(&self) -> bool {
        self.opts.tls || self.opts.plaintext_auth
    }

    fn command(&mut self, cmd: Command) -> Step {
        // A USER is only good for the PASS right after it (RFC 1939 §7).
        let user = self.user.take();
        match (self.state, cmd) {
            (_, Command::Capa) => self.capa(),
            (_, Command::Noop) if self.state == State::Transaction => Step::reply("+OK"),
            (_, Command::Quit) => self.quit(),
            (State::Authorization, cmd) => self.authorization(cmd, user),
            (_, cmd) => self.transaction(cmd),
        }
    }

    fn capa(&self) -> Step {
        let mut caps = vec!["CAPA", "TOP", "UIDL", "PIPELINING", "RESP-CODES"];
        caps.push("AUTH-RESP-CODE");
        if self.state == State::Authorization {
            if self.auth_allowed() {
                caps.extend(["USER", "SASL PLAIN"]);
            }
            if self.opts.stls_available && !self.opts.tls {
                caps.push("STLS");
            }
        }
        caps.push("IMPLEMENTATION posta");
        let mut reply = line("+OK capability list follows");
        for cap in caps {
            reply.extend(line(cap));
        }
        reply.extend(line("."));
        Step {
            reply,
            action: Action::None,
        }
    }

    fn quit(&mut self) -> Step {
        if self.state == State::Transaction {
            self.state = State::Update;
            let deleted = (0..self.deleted.len())
                .filter(|&i| self.deleted[i])
                .collect();
            return Step {
                reply: Vec::new(),
                action: Action::Commit { deleted },
            };
        }
        self.state = State::Closed;
        Step::reply("+OK posta POP3 server signing off").then(Action::Close)
    }

    fn authorization(&mut self, cmd: Command, user: Option<String>) -> Step {
        let login_cmd = matches!(
            cmd,
            Command::User(_) | Command::Pass(_) | Command::Auth { .. }
        );
        if login_cmd && !self.auth_allowed() {
            return self.bad(
                "-ERR [AUTH] cleartext login is disabled on this connection, use STLS or port 995",
            );
        }
        match cmd {
            Command::Stls if self.opts.tls => self.bad("-ERR already using TLS"),
            Command::Stls if !self.opts.stls_available => self.bad("-ERR STLS not available"),
            Command::Stls => Step::reply("+OK begin TLS negotiation").then(Action::StartTls),
            Command::User(name) => {
                self.user = Some(name);
                Step::reply("+OK send PASS")
            }
            Command::Pass(password) => match user {
                Some(user) => self.authenticate(user, password),
                None => self.bad("-ERR send USER first"),
            },
            Command::Apop => self.bad("-ERR APOP is not supported, use USER/PASS or AUTH PLAIN"),
            Command::Auth {
                mechanism: None, ..
            } => Step {
                reply: [line("+OK"), line("PLAIN"), line(".")].concat(),
                action: Action::None,
            },
            Command::Auth {
                mechanism: Some(mech),
                initial,
            } if mech == "PLAIN" => match initial {
                None => {
                    self.sasl_pending = true;
                    Step::reply("+ ")
                }
                Some(initial) => self.sasl_plain(&initial),
            },
            Command::Auth { .. } => self.bad("-ERR unsupported SASL mechanism"),
            _ => self.bad("-ERR not allowed before login"),
        }
    }

    fn sasl_response(&mut self, line: &[u8]) -> Step {
        match line_body(line) {
            Ok("*") => self.bad("-ERR authentication cancelled"),
            Ok(text) => self.sasl_plain(text),
            Err(_) => self.bad("-ERR [AUTH] malformed SASL response"),
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`, base64; `=` is an empty response (RFC
    /// 5034 §4). Acting as another user (authzid differing from authcid) is refused.
    fn sasl_plain(&mut self, b64: &str) -> Step {
        let decoded = if b64 == "=" {
            Ok(Vec::new())
        } else {
            B64.decode(b64.trim())
        };
        let Ok(decoded) = decoded else {
            return self.bad("-ERR [AUTH] malformed SASL response");
        };
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [authzid, authcid, passwd] = parts.as_slice() else {
            return self.bad("-ERR [AUTH] malformed SASL PLAIN response");
        };
        let (Ok(authzid), Ok(user), Ok(pass)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(passwd),
        ) else {
            return self.bad("-ERR [AUTH] malformed SASL PLAIN response");
        };
        if !authzid.is_empty() && authzid != user {
            return self.bad("-ERR [AUTH] authorization identity differs from user");
        }
        self.authenticate(user.to_owned(), Secret::new(pass))
    }

    fn authenticate(&mut self, user: String, password: Secret) -> Step {
        self.state = State::Authenticating;
        Step {
            reply: Vec::new(),
            action: Action::Authenticate { user, password },
        }
    }

    /// Index of a live message, or the `-ERR` reply for the client.
    fn live(&self, n: u32) -> Result<usize, Step> {
        let i = usize::try_from(n - 1).unwrap_or(usize::MAX);
        match self.deleted.get(i) {
            None => Err(Step::reply(format!(
                "-ERR no such message, only {}",
                self.messages.len()
            ))),
            Some(true) => Err(Step::reply(format!("-ERR message {n} already deleted"))),
            Some(false) => Ok(i),
        }
    }

    fn transaction(&mut self, cmd: Command) -> Step {
        let listing = |this: &Session, render: &dyn Fn(usize, &MessageInfo) -> String| {
            let mut reply = line("+OK");
            for (i, m) in this.messages.iter().enumerate() {
                if !this.deleted[i] {
                    reply.extend(line(&render(i + 1, m)));
                }
            }
            reply.extend(line("."));
            Step {
                reply,
                action: Action::None,
            }
        };
        match cmd {
            Command::Stat => {
                let (count, octets) = self
                    .live_messages()
                    .fold((0, 0), |(c, o), m| (c + 1, o + m.size));
                Step::reply(format!("+OK {count} {octets}"))
            }
            Command::List(None) => listing(self, &|n, m| format!("{n} {}", m.size)),
            Command::Uidl(None) => listing(self, &|n, m| format!("{n} {}", m.uid)),
            Command::List(Some(n)) | Command::Uidl(Some(n)) | Command::Dele(n) => {
                let i = match self.live(n) {
                    Ok(i) => i,
                    Err(refused) => return refused,
                };
                match cmd {
                    Command::List(_) => Step::reply(format!("+OK {n} {}", self.messages[i].size)),
                    Command::Uidl(_) => Step::reply(format!("+OK {n} {}", self.messages[i].uid)),
                    _ => {
                        self.deleted[i] = true;
                        Step::reply(format!("+OK message {n} deleted"))
                    }
                }
            }
            Command::Retr(n) | Command::Top(n, _) => match self.live(n) {
                Ok(index) => Step {
                    reply: Vec::new(),
                    action: Action::Retrieve {
                        index,
                        top: match cmd {
                            Command::Top(_, k) => Some(k),
                            _ => None,
                        },
                    },
                },
                Err(refused) => refused,
            },
            Command::Rset => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                let (count, octets) = (
                    self.messages.len(),
                    self.messages.iter().map(|m| m.size).sum::<u64>(),
                );
                Step::reply(format!(
                    "+OK maildrop has {count} messages ({octets} octets)"
                ))
            }
            _ => self.bad("-ERR not allowed after login"),
        }
    }

    fn live_messages(&self) -> impl Iterator<Item = &MessageInfo> {
        self.messages
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| !**d)
            .map(|(m, _)| m)
    }
}

#[cfg(test)]
mod tests;
