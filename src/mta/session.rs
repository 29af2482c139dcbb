//! One SMTP server session as a state machine with no I/O (RFC 5321 §4.1, §4.3.2): the driver
//! hands it each received line and does what the returned [`Step`] says. Questions that need
//! the world (is this recipient ours? is the message safely on disk?) go out as steps and come
//! back through [`Session::rcpt_checked`] and [`Session::stored`], so every reply the server
//! can give is tested here with byte strings.
//!
//! Message data ends only at `<CR><LF>.<CR><LF>`: the dot line must follow a line that ended in
//! CRLF, so `<LF>.<CR><LF>` and `<CR>.<CR><LF>` are data, never the end, and a client cannot
//! smuggle a second transaction past us or a downstream server (CVE-2023-51764 and its
//! siblings). Bare LF and bare CR in the data are normalised to CRLF, as Postfix's default
//! `smtpd_forbid_bare_newline = normalize` does, so what we store and relay has no line ending
//! another server could read differently. The Received header is ours to add (§4.4), with a
//! hop count as the loop guard.
//!
//! Abuse limits follow Postfix's: commands that cost us and deliver nothing (NOOP, VRFY, ETRN,
//! RSET, Postfix's `smtpd_junk_command_limit` of 100) start counting as errors past the junk
//! limit; bad commands, refused and excess recipients are errors; at the error limit
//! (`smtpd_hard_error_limit`, 20) the session is closed with 421. A delivered message clears
//! the error count, as Postfix's does.

use std::net::IpAddr;
use std::time::SystemTime;

use super::policy::{Accept, Verdict};
use crate::proto::smtp_server::{Body, Command, parse};

/// What a session may accept; set by the server from its configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The name in the greeting, EHLO reply and Received header.
    pub hostname: String,
    /// Largest message in octets (SIZE, RFC 1870); larger ones get 552 after DATA.
    pub max_message_size: u64,
    /// Recipients per message; more get 452 4.5.3 (RFC 5321 §4.5.3.1.8: at least 100).
    pub max_recipients: usize,
    /// Received headers beyond this mean a loop: 554 5.4.6 (sendmail's MaxHopCount is 25,
    /// Postfix's hopcount_limit 50).
    pub max_hops: usize,
    /// Errors (bad commands, refused or excess recipients, junk past `max_junk`) before the
    /// session is closed with 421 (Postfix's `smtpd_hard_error_limit`, 20).
    pub max_errors: usize,
    /// NOOP, VRFY, ETRN and RSET allowed before each one counts as an error (Postfix's
    /// `smtpd_junk_command_limit`, 100).
    pub max_junk: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            hostname: "localhost".into(),
            max_message_size: 50 << 20,
            max_recipients: 100,
            max_hops: 50,
            max_errors: 20,
            max_junk: 100,
        }
    }
}

/// A recipient the policy accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// As the client wrote it (without brackets).
    pub address: String,
    pub accept: Accept,
}

/// A complete, accepted message, ready to be made durable.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub id: String,
    /// Envelope sender without brackets; empty for the null sender.
    pub from: String,
    pub recipients: Vec<Recipient>,
    /// Recipients accepted and then dropped by a DISCARD entry: counted, never delivered.
    pub discarded: usize,
    /// The message with our Received header on top.
    pub message: Vec<u8>,
    pub client: IpAddr,
    pub helo: String,
    pub arrival: SystemTime,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes (may be empty: a data line was consumed) and read on.
    Reply(Vec<u8>),
    /// Send these bytes and close the connection.
    Close(Vec<u8>),
    /// Send this 220, then run the TLS handshake and call [`Session::tls_started`].
    StartTls(Vec<u8>),
    /// Decide this recipient and answer with [`Session::rcpt_checked`].
    CheckRcpt { from: String, rcpt: String },
    /// Make this message durable, then answer with [`Session::stored`].
    Store(Transaction),
    /// The client asked for the queue for this domain to be run (RFC 1985); send the reply.
    Etrn { domain: String, reply: Vec<u8> },
}

/// Why a message could not be made durable: always a temporary failure towards the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Free space below the watermark or ENOSPC: 452 4.3.1.
    DiskFull,
    /// Anything else: 451 4.3.0.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greeted {
    No,
    Helo,
    Ehlo,
}

#[derive(Debug)]
struct Mail {
    from: String,
    recipients: Vec<Recipient>,
    discarded: usize,
}

#[derive(Debug, Default)]
struct Data {
    message: Vec<u8>,
    size: u64,
    too_big: bool,
    in_header: bool,
    hops: usize,
    /// The previous line ended in CRLF (or this is the first line): only then may a `.` line
    /// end the data or be dot-unstuffed.
    at_line_start: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Waiting {
    Nothing,
    Rcpt(String),
    Store,
}

/// One connection's SMTP state.
#[derive(Debug)]
pub struct Session {
    limits: Limits,
    client: IpAddr,
    tls: bool,
    starttls_offered: bool,
    greeted: Greeted,
    helo: String,
    mail: Option<Mail>,
    data: Option<Data>,
    waiting: Waiting,
    errors: usize,
    junk: usize,
    next_id: fn() -> String,
}

/// Renders a one-line reply with its enhanced status code (RFC 2034). Reply text is printable
/// ASCII (RFC 5321 §4.2.1 `textstring`; SMTPUTF8 is not offered), but texts quote what the
/// client sent (the policy's "invalid domain" names it), so anything else becomes `?`.
pub fn reply(code: u16, dsn: &str, text: &str) -> Vec<u8> {
    let text: String = text
        .chars()
        .map(|c| {
            if c == '\t' || c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    format!("{code} {dsn} {text}\r\n").into_bytes()
}

impl Session {
    /// A session for a client at `client`. `starttls` says whether a certificate is
    /// configured; `next_id` makes queue ids.
    pub fn new(limits: Limits, client: IpAddr, starttls: bool, next_id: fn() -> String) -> Session {
        Session {
            limits,
            client,
            tls: false,
            starttls_offered: starttls,
            greeted: Greeted::No,
            helo: String::new(),
            mail: None,
            data: None,
            waiting: Waiting::Nothing,
            errors: 0,
            junk: 0,
            next_id,
        }
    }

    /// A session whose connection is TLS from the start (implicit TLS, RFC 8314).
    pub fn with_tls(mut self) -> Session {
        self.tls = true;
        self.starttls_offered = false;
        self
    }

    pub fn greeting(&self) -> Vec<u8> {
        format!("220 {} ESMTP posta\r\n", self.limits.hostname).into_bytes()
    }

    /// Is the session inside DATA (the driver reads longer lines then)?
    pub fn in_data(&self) -> bool {
        self.data.is_some()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn client(&self) -> IpAddr {
        self.client
    }

    /// The HELO/EHLO name as given (recorded, never trusted).
    pub fn helo(&self) -> &str {
        &self.helo
    }

    /// The handshake after STARTTLS succeeded: forget everything (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.starttls_offered = false;
        self.greeted = Greeted::No;
        self.helo.clear();
        self.mail = None;
    }

    /// Feeds one received line, terminator included.
    pub fn line(&mut self, line: &[u8]) -> Step {
        debug_assert_eq!(self.waiting, Waiting::Nothing, "line while waiting");
        if self.data.is_some() {
            return self.data_line(line);
        }
        if self.errors >= self.limits.max_errors {
            return Step::Close(reply(421, "4.7.0", "too many errors, closing connection"));
        }
        match parse(line) {
            Ok(cmd) => self.command(cmd),
            Err(e) => {
                let (code, dsn, text) = e.reply();
                self.error(reply(code, dsn, &text))
            }
        }
    }

    /// A line longer than the driver accepts: 500, and the rest of it is discarded.
    pub fn line_too_long(&mut self) -> Step {
        if self.data.is_some() {
            self.data = None;
            self.mail = None;
            return Step::Close(reply(500, "5.5.6", "message line too long"));
        }
        self.error(reply(500, "5.5.2", "line too long"))
    }

    fn error(&mut self, r: Vec<u8>) -> Step {
        self.errors += 1;
        if self.errors >= self.limits.max_errors {
            let mut out = r;
            out.extend(reply(421, "4.7.0", "too many errors, closing connection"));
            return Step::Close(out);
        }
        Step::Reply(r)
    }

    /// A command that delivers nothing: free up to the junk limit, an error past it.
    fn junk(&mut self, r: Vec<u8>) -> Step {
        self.junk += 1;
        if self.junk > self.limits.max_junk {
            return self.error(r);
        }
        Step::Reply(r)
    }

    fn command(&mut self, cmd: Command) -> Step {
        match cmd {
            Command::Ehlo(name) => {
                self.greet(name, Greeted::Ehlo);
                let mut lines = vec![
                    format!("250-{}", self.limits.hostname),
                    "250-PIPELINING".into(),
                    format!("250-SIZE {}", self.limits.max_message_size),
                    "250-8BITMIME".into(),
                    "250-ENHANCEDSTATUSCODES".into(),
                    "250-ETRN".into(),
                ];
                if self.starttls_offered {
                    lines.push("250-STARTTLS".into());
                }
                // SMTPUTF8 is not offered: addresses stay ASCII (the tables are ASCII too).
                if let Some(last) = lines.last_mut() {
                    last.replace_range(..4, "250 ");
                }
                Step::Reply((lines.join("\r\n") + "\r\n").into_bytes())
            }
            Command::Helo(name) => {
                self.greet(name, Greeted::Helo);
                Step::Reply(format!("250 {}\r\n", self.limits.hostname).into_bytes())
            }
            Command::Mail { from, size, body } => self.mail(from, size, body),
            Command::Rcpt { to } => self.rcpt(to),
            Command::Data => self.start_data(),
            Command::Rset => {
                self.mail = None;
                self.junk(reply(250, "2.0.0", "ok"))
            }
            Command::Noop => self.junk(reply(250, "2.0.0", "ok")),
            Command::Quit => Step::Close(reply(221, "2.0.0", "bye")),
            // §3.5.3: 252 is the honest answer when we will not verify (harvesting).
            Command::Vrfy => self.junk(reply(252, "2.5.2", "cannot verify, send some mail")),
            Command::Expn => Step::Reply(reply(502, "5.5.1", "EXPN not available")),
            Command::Help => Step::Reply(reply(214, "2.0.0", "see RFC 5321")),
            Command::StartTls if !self.starttls_offered => {
                self.error(reply(502, "5.5.1", "STARTTLS not available"))
            }
            Command::StartTls if self.mail.is_some() => {
                self.error(reply(503, "5.5.1", "STARTTLS inside a mail transaction"))
            }
            Command::StartTls => Step::StartTls(reply(220, "2.0.0", "ready to start TLS")),
            Command::Etrn(arg) => {
                if self.greeted == Greeted::No {
                    return self.error(reply(503, "5.5.1", "send EHLO first"));
                }
                let domain = arg.trim_start_matches(['@', '#']).to_ascii_lowercase();
                if let Step::Close(r) = self.junk(Vec::new()) {
                    return Step::Close(r);
                }
                Step::Etrn {
                    domain,
                    reply: reply(250, "2.0.0", "Queuing started"),
                }
            }
            Command::NotImplemented(v) => {
                self.error(reply(502, "5.5.1", &format!("{v} not implemented")))
            }
        }
    }

    fn greet(&mut self, name: String, how: Greeted) {
        self.greeted = how;
        self.helo = name;
        self.mail = None;
    }

    fn mail(&mut self, from: String, size: Option<u64>, _body: Option<Body>) -> Step {
        if self.greeted == Greeted::No {
            return self.error(reply(503, "5.5.1", "send HELO or EHLO first"));
        }
        if self.mail.is_some() {
            return self.error(reply(503, "5.5.1", "nested MAIL command"));
        }
        if size.is_some_and(|s| s > self.limits.max_message_size) {
            return Step::Reply(reply(552, "5.3.4", "message size exceeds fixed limit"));
        }
        self.mail = Some(Mail {
            from,
            recipients: Vec::new(),
            discarded: 0,
        });
        Step::Reply(reply(250, "2.1.0", "ok"))
    }

    fn rcpt(&mut self, to: String) -> Step {
        let Some(mail) = &self.mail else {
            return self.error(reply(503, "5.5.1", "need MAIL before RCPT"));
        };
        if mail.recipients.len() + mail.discarded >= self.limits.max_recipients {
            return self.error(reply(452, "4.5.3", "too many recipients"));
        }
        let from = mail.from.clone();
        self.waiting = Waiting::Rcpt(to.clone());
        Step::CheckRcpt { from, rcpt: to }
    }

    /// The policy's answer for the recipient of the last [`Step::CheckRcpt`].
    pub fn rcpt_checked(&mut self, verdict: Verdict) -> Vec<u8> {
        let Waiting::Rcpt(address) = std::mem::replace(&mut self.waiting, Waiting::Nothing) else {
            return reply(451, "4.3.0", "internal error: no recipient pending");
        };
        let Some(mail) = self.mail.as_mut() else {
            return reply(451, "4.3.0", "internal error: no transaction");
        };
        match verdict {
            Verdict::Accept(accept) => {
                mail.recipients.push(Recipient { address, accept });
                reply(250, "2.1.5", "ok")
            }
            Verdict::Discard => {
                mail.discarded += 1;
                reply(250, "2.1.5", "ok")
            }
            Verdict::Reject(r) => {
                let dsn = r
                    .dsn
                    .clone()
                    .unwrap_or_else(|| if r.code >= 500 { "5.0.0" } else { "4.0.0" }.to_string());
                // A refused recipient is an error, as in Postfix: a dictionary attack ends
                // at the error limit (the next command gets the 421).
                self.errors += 1;
                reply(r.code, &dsn, &r.text)
            }
        }
    }

    fn start_data(&mut self) -> Step {
        match &self.mail {
            None => self.error(reply(503, "5.5.1", "need MAIL before DATA")),
            Some(m) if m.recipients.is_empty() && m.discarded == 0 => {
                // §3.3: no valid recipients; the client may be pipelining, so do not count it.
                Step::Reply(reply(554, "5.5.1", "no valid recipients"))
            }
            Some(_) => {
                self.data = Some(Data {
                    in_header: true,
                    at_line_start: true,
                    ..Data::default()
                });
                Step::Reply(b"354 end data with <CR><LF>.<CR><LF>\r\n".to_vec())
            }
        }
    }

    fn data_line(&mut self, line: &[u8]) -> Step {
        let Some(data) = self.data.as_mut() else {
            return Step::Reply(Vec::new());
        };
        // Only a dot line that follows CRLF ends the data; after a bare LF it is content.
        if data.at_line_start && line == b".\r\n" {
            return self.end_data();
        }
        let content = if data.at_line_start {
            line.strip_prefix(b".").unwrap_or(line)
        } else {
            line
        };
        let content = normalize_line(content);
        data.at_line_start = line.ends_with(b"\r\n");
        if data.in_header {
            if content.as_ref() == b"\r\n" {
                data.in_header = false;
            } else if content.len() >= 9 && content[..9].eq_ignore_ascii_case(b"received:") {
                data.hops += 1;
            }
        }
        data.size += content.len() as u64;
        if data.size > self.limits.max_message_size {
            data.too_big = true;
            data.message = Vec::new();
        } else {
            data.message.extend_from_slice(&content);
        }
        Step::Reply(Vec::new())
    }

    fn end_data(&mut self) -> Step {
        let data = self.data.take().unwrap_or_default();
        let Some(mail) = self.mail.take() else {
            return Step::Reply(reply(503, "5.5.1", "no transaction"));
        };
        if data.too_big {
            return Step::Reply(reply(552, "5.3.4", "message size exceeds fixed limit"));
        }
        if data.hops > self.limits.max_hops {
            return Step::Reply(reply(554, "5.4.6", "too many hops, mail loop?"));
        }
        let id = (self.next_id)();
        let arrival = SystemTime::now();
        let mut message = self.received(&id, &mail, arrival).into_bytes();
        message.extend_from_slice(&data.message);
        self.waiting = Waiting::Store;
        Step::Store(Transaction {
            id,
            from: mail.from,
            recipients: mail.recipients,
            discarded: mail.discarded,
            message,
            client: self.client,
            helo: self.helo.clone(),
            arrival,
        })
    }

    /// RFC 5321 §4.4 trace line; `for <rcpt>` only for a single recipient, as Postfix does,
    /// so one copy does not reveal the others.
    fn received(&self, id: &str, mail: &Mail, at: SystemTime) -> String {
        let with = match (self.greeted, self.tls) {
            (Greeted::Ehlo, true) => "ESMTPS",
            (Greeted::Ehlo, false) => "ESMTP",
            (_, true) => "SMTPS",
            (_, false) => "SMTP",
        };
        let ip = match self.client {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("IPv6:{v6}"),
        };
        let helo: String = self
            .helo
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != ';' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let mut out = format!(
            "Received: from {helo} ([{ip}])\r\n\tby {} (posta) with {with} id {id}",
            self.limits.hostname
        );
        if let [r] = mail.recipients.as_slice() {
            out.push_str(&format!("\r\n\tfor <{}>", r.address));
        }
        let date = time::OffsetDateTime::from(at)
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        out.push_str(&format!("; {date}\r\n"));
        out
    }

    /// The store's answer for the last [`Step::Store`]: 250 only once the message is durable.
    pub fn stored(&mut self, result: Result<(), StoreError>, id: &str) -> Vec<u8> {
        self.waiting = Waiting::Nothing;
        match result {
            Ok(()) => {
                self.errors = 0;
                reply(250, "2.0.0", &format!("ok: queued as {id}"))
            }
            Err(StoreError::DiskFull) => reply(452, "4.3.1", "insufficient system storage"),
            Err(StoreError::Failed) => reply(451, "4.3.0", "local error, try again later"),
        }
    }
}

/// One data line with every bare CR and bare LF made a CRLF (Postfix's `normalize`), so the
/// stored message has one kind of line ending only. Borrowed when there is nothing to change.
fn normalize_line(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = line.strip_suffix(b"\r\n").unwrap_or(line);
    let clean = !body.contains(&b'\r') && !body.contains(&b'\n') && line.ends_with(b"\r\n");
    if clean {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len() + 2);
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'\r' if line.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Spooling a big message while it arrives: the driver takes the body buffered so far and
/// writes it to disk, so a session never holds a whole big message (issue 13 item 8). Kept
/// apart from `data_line`/`end_data`, which only ever see the part not yet taken.
impl Session {
    /// Octets of message body buffered and not yet taken (0 outside DATA).
    pub fn buffered_body(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.message.len())
    }

    /// Takes the body buffered so far; the transaction's message then holds our Received
    /// header and only what was buffered after the last take.
    pub fn take_body(&mut self) -> Vec<u8> {
        self.data
            .as_mut()
            .map(|d| std::mem::take(&mut d.message))
            .unwrap_or_default()
    }
}

/// The length of the Received header a transaction's message starts with: up to the first
/// CRLF not followed by the TAB of a continuation line (`received` folds only that way, and
/// nothing in it carries a CR or LF of the client's). Body bytes right after it may begin
/// with a TAB too, so the driver checks a split it computed rather than finding one here.
pub fn trace_len(message: &[u8]) -> usize {
    message
        .windows(3)
        .position(|w| w[0] == b'\r' && w[1] == b'\n' && w[2] != b'\t')
        .map_or(message.len(), |i| i + 2)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
