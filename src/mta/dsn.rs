//! Delivery status notifications (RFC 3464) for queued mail the relay gave up on (`failed`)
//! or has not delivered yet (`delayed`), sans-I/O: the caller supplies the clock and the queue
//! id and gets the bytes to queue plus the DSN's own envelope.
//!
//! The shape is RFC 6522's multipart/report: a text/plain part for people, a
//! message/delivery-status part for programs (RFC 3464 §2.2 per-message fields, §2.3
//! per-recipient fields) and the returned message. We return the original's headers only
//! (text/rfc822-headers, what RET=HDRS asks for, RFC 3461 §4.3) whatever the sender asked:
//! a backup MX queues mail of any size for days, a full copy would double the bounce's size
//! and hand spam back to forged senders (backscatter, notes §7 item 8), and the headers are
//! enough to tell which message it was.
//!
//! A DSN is never built for the null sender (RFC 5321 §4.5.5: that is how bounce loops are
//! avoided), and it travels with a null reverse-path itself ([`Dsn::mail_from`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF.
const MAX_LINE: usize = 998;
/// Folding target for the header fields we write ourselves (RFC 5322 §2.1.1 "SHOULD").
const FOLD_AT: usize = 78;

/// An RFC 3463 enhanced status code, `class.subject.detail` (e.g. 5.1.1, 4.4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Status {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Status {
        Status {
            class,
            subject,
            detail,
        }
    }

    /// Class 4: the condition may go away; retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        self.class == 4
    }

    /// What the code means, in the words of RFC 3463 §3 (the common ones), for the human part.
    pub fn meaning(&self) -> &'static str {
        match (self.subject, self.detail) {
            (1, 1) => "the mailbox does not exist",
            (1, 2) => "the destination domain does not exist",
            (1, 10) => "the destination domain accepts no mail (null MX, RFC 7505)",
            (2, 1) => "the mailbox is disabled",
            (2, 2) => "the mailbox is full",
            (3, 4) => "the message is too big for the destination",
            (4, 1) => "no destination server answered",
            (4, 3) => "the destination could not be looked up in the DNS",
            (4, 4) => "the destination cannot be routed",
            (4, 6) => "the mail would loop back to this server",
            (4, 7) => "the delivery time expired",
            (7, _) => "delivery was refused by policy",
            _ if self.class == 4 => "a temporary delivery problem",
            _ => "a permanent delivery problem",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl FromStr for Status {
    type Err = DsnError;

    /// RFC 3463 §2: class 2, 4 or 5, subject and detail 1–3 digits each.
    fn from_str(s: &str) -> Result<Status, DsnError> {
        let bad = || DsnError::BadStatus(s.to_string());
        let mut parts = s.split('.');
        let mut next = || {
            parts
                .next()
                .filter(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(bad)
        };
        let (class, subject, detail) = (next()?, next()?, next()?);
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
            return Err(bad());
        }
        Ok(Status::new(class as u8, subject, detail))
    }
}

/// RFC 3464 §2.3.3 Action; only the two a relay reports about mail it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Given up: the message is returned and removed from the queue.
    Failed,
    /// Still queued; delivery will be retried.
    Delayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
        }
    }
}

/// One recipient's outcome (RFC 3464 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The ORCPT the client gave (RFC 3461 §4.2), as an RFC 822 address, if any.
    pub original: Option<String>,
    /// The address delivery was attempted for.
    pub final_recipient: String,
    pub action: Action,
    pub status: Status,
    /// The server that gave the last answer (its host name), when one answered.
    pub remote_mta: Option<String>,
    /// That server's reply as it was received, e.g. `550 5.1.1 no such user`; written as
    /// `Diagnostic-Code: smtp; ...`.
    pub smtp_reply: Option<String>,
    pub last_attempt: Option<OffsetDateTime>,
    /// For `delayed`: when the queue gives up (RFC 3464 §2.3.9).
    pub will_retry_until: Option<OffsetDateTime>,
}

/// Everything a DSN says about one queued message.
#[derive(Debug, Clone)]
pub struct DsnInput<'a> {
    /// Our host name: `Reporting-MTA`, and `MAILER-DAEMON@` it in From.
    pub reporting_mta: &'a str,
    /// The original envelope sender (MAIL FROM), without angle brackets.
    pub sender: &'a str,
    /// The client's ENVID (RFC 3461 §4.4), already xtext-decoded.
    pub envelope_id: Option<&'a str>,
    pub arrival: OffsetDateTime,
    /// The time the DSN is written: Date:, part of Message-ID, and with `arrival` how long the
    /// message was kept.
    pub now: OffsetDateTime,
    /// The message's queue id; makes Message-ID and the MIME boundary unique.
    pub queue_id: &'a str,
    pub recipients: Vec<RecipientReport>,
    /// The original message as queued (headers, empty line, body).
    pub message: &'a [u8],
}

/// A DSN ready to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// RCPT TO for the DSN: the original envelope sender.
    pub rcpt_to: String,
    /// The DSN message, CRLF line endings, no line over 998 octets.
    pub message: Vec<u8>,
}

impl Dsn {
    /// MAIL FROM for the DSN: always the null reverse-path `<>` (RFC 5321 §4.5.5), so a DSN
    /// about a DSN is never sent. Returned without brackets, as `DsnInput::sender` takes it.
    pub fn mail_from(&self) -> &'static str {
        ""
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("no DSN for the null sender <> (RFC 5321 §4.5.5)")]
    NullSender,
    #[error("a DSN needs at least one recipient")]
    NoRecipients,
    #[error("invalid enhanced status code {0:?}: expected class.subject.detail (RFC 3463)")]
    BadStatus(String),
    /// Control characters, spaces or angle brackets where an address, host or id belongs
    /// (they would break the header), or non-ASCII (needs RFC 6533, not supported yet).
    #[error("unusable {field} {value:?} for a DSN")]
    BadField { field: &'static str, value: String },
}

/// Builds the DSN, or refuses when it must not exist (null sender) or cannot be written.
pub fn build(input: &DsnInput) -> Result<Dsn, DsnError> {
    let sender = input.sender.trim();
    if sender.is_empty() || sender == "<>" {
        return Err(DsnError::NullSender);
    }
    if input.recipients.is_empty() {
        return Err(DsnError::NoRecipients);
    }
    token("sender", sender)?;
    token("reporting MTA", input.reporting_mta)?;
    if let Some(id) = input.envelope_id {
        printable("envelope id", id)?;
    }
    for r in &input.recipients {
        token("recipient", &r.final_recipient)?;
        if let Some(o) = &r.original {
            token("original recipient", o)?;
        }
        if let Some(m) = &r.remote_mta {
            token("remote MTA", m)?;
        }
    }

    let failed = input.recipients.iter().any(|r| r.action == Action::Failed);
    let parts = [
        (
            "Notification",
            "text/plain; charset=us-ascii",
            human(input, failed),
        ),
        (
            "Delivery report",
            "message/delivery-status",
            delivery_status(input),
        ),
        (
            if failed {
                "Undelivered Message Headers"
            } else {
                "Delayed Message Headers"
            },
            "text/rfc822-headers",
            original_headers(input.message),
        ),
    ];
    let boundary = boundary(input.queue_id, parts.iter().map(|p| p.2.as_slice()));

    let mut out = Vec::new();
    field(
        &mut out,
        "From",
        &format!("MAILER-DAEMON@{}", input.reporting_mta),
    );
    field(&mut out, "To", &format!("<{sender}>"));
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else {
        "Delayed Mail (still being retried)"
    };
    field(&mut out, "Subject", subject);
    field(&mut out, "Date", &date(input.now));
    field(
        &mut out,
        "Message-ID",
        &format!(
            "<{}.{}.dsn@{}>",
            input.now.unix_timestamp(),
            safe_id(input.queue_id),
            input.reporting_mta
        ),
    );
    // RFC 3834 §5: marks the DSN as automatic, so responders do not answer it.
    field(&mut out, "Auto-Submitted", "auto-replied");
    field(&mut out, "MIME-Version", "1.0");
    field(
        &mut out,
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\""),
    );
    let eight_bit = parts.iter().any(|p| !p.2.is_ascii());
    field(
        &mut out,
        "Content-Transfer-Encoding",
        if eight_bit { "8bit" } else { "7bit" },
    );
    out.extend_from_slice(b"\r\nThis is a MIME-encapsulated message.\r\n");
    for (description, content_type, body) in &parts {
        out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        field(&mut out, "Content-Description", description);
        field(&mut out, "Content-Type", content_type);
        if !body.is_ascii() {
            field(&mut out, "Content-Transfer-Encoding", "8bit");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(Dsn {
        rcpt_to: sender.to_string(),
        message: out,
    })
}

/// The text/plain part: what happened, to whom, why, and how long the message was kept.
fn human(input: &DsnInput, failed: bool) -> Vec<u8> {
    let mut t = format!(
        "This is the mail system at {}.\r\n\r\n",
        input.reporting_mta
    );
    // How long it was queued: from arrival to now (a clock stepped back counts as zero).
    let kept = span((input.now - input.arrival).try_into().unwrap_or_default());
    if failed {
        t.push_str(&format!(
            "Your message could not be delivered to one or more recipients.\r\n\
             It arrived here on {}\r\n\
             and was kept {kept} while delivery was retried; it has now been\r\n\
             removed from the queue.\r\n",
            date(input.arrival)
        ));
    } else {
        t.push_str(&format!(
            "Your message has not been delivered yet to one or more recipients.\r\n\
             It arrived here on {}\r\n\
             and has been kept {kept} so far. Delivery will be retried; you do\r\n\
             not need to send it again.\r\n",
            date(input.arrival)
        ));
    }
    for r in &input.recipients {
        t.push_str(&format!(
            "\r\n<{}>: {} ({}, status {})\r\n",
            r.final_recipient,
            r.action.as_str(),
            r.status.meaning(),
            r.status
        ));
        if let Some(reply) = &r.smtp_reply {
            let by = r.remote_mta.as_deref().unwrap_or("the remote server");
            t.push_str(&format!("    {by} said: {}\r\n", one_line(reply)));
        }
    }
    t.push_str("\r\nThe headers of your message are attached; its body is not included.\r\n");
    wrap_long(t.as_bytes())
}

/// The message/delivery-status part (RFC 3464 §2.1: per-message fields, then one block per
/// recipient, blocks separated by an empty line).
fn delivery_status(input: &DsnInput) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(id) = input.envelope_id {
        field(&mut out, "Original-Envelope-Id", id);
    }
    field(
        &mut out,
        "Reporting-MTA",
        &format!("dns; {}", input.reporting_mta),
    );
    field(&mut out, "Arrival-Date", &date(input.arrival));
    for r in &input.recipients {
        out.extend_from_slice(b"\r\n");
        if let Some(o) = &r.original {
            field(&mut out, "Original-Recipient", &format!("rfc822; {o}"));
        }
        field(
            &mut out,
            "Final-Recipient",
            &format!("rfc822; {}", r.final_recipient),
        );
        field(&mut out, "Action", r.action.as_str());
        field(&mut out, "Status", &r.status.to_string());
        if let Some(m) = &r.remote_mta {
            field(&mut out, "Remote-MTA", &format!("dns; {m}"));
        }
        if let Some(reply) = &r.smtp_reply {
            field(
                &mut out,
                "Diagnostic-Code",
                &format!("smtp; {}", one_line(reply)),
            );
        }
        if let Some(at) = r.last_attempt {
            field(&mut out, "Last-Attempt-Date", &date(at));
        }
        if let (Action::Delayed, Some(until)) = (r.action, r.will_retry_until) {
            field(&mut out, "Will-Retry-Until", &date(until));
        }
    }
    out
}

/// The original header section with CRLF endings; the body is left out (module doc).
fn original_headers(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines(message) {
        if line.is_empty() {
            break;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    wrap_long(&out)
}

/// Lines of `bytes` without their CRLF, LF or CR ending.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = match rest.get(end..end + 2) {
            Some(b"\r\n") => 2,
            Some(_) => 1,
            None => rest.len() - end,
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

/// Re-ends every line with CRLF and folds any line over 998 octets (continuations start with
/// a space, so a folded header stays one field).
fn wrap_long(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in lines(bytes) {
        let mut chunk = line;
        let mut first = true;
        loop {
            let room = if first { MAX_LINE } else { MAX_LINE - 1 };
            if !first {
                out.push(b' ');
            }
            let take = chunk.len().min(room);
            out.extend_from_slice(&chunk[..take]);
            out.extend_from_slice(b"\r\n");
            chunk = &chunk[take..];
            first = false;
            if chunk.is_empty() {
                break;
            }
        }
    }
    out
}

/// Writes `Name: value` CRLF, folded at spaces near 78 columns when the value allows.
fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    let mut line = format!("{name}:");
    let mut lines = Vec::new();
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if line.len() + 1 + word.len() > FOLD_AT && line.trim_start().contains(' ') {
            lines.push(std::mem::take(&mut line));
        }
        line.push(' ');
        line.push_str(word);
    }
    lines.push(line);
    let text = lines.join("\r\n");
    out.extend_from_slice(&wrap_long(text.as_bytes()));
}

/// A boundary (RFC 2046 §5.1.1 bchars) that occurs in none of the parts.
fn boundary<'p>(queue_id: &str, parts: impl Iterator<Item = &'p [u8]> + Clone) -> String {
    let id = safe_id(queue_id);
    (0u32..)
        .map(|n| format!("=_posta-dsn-{id}-{n}"))
        .find(|b| {
            !parts
                .clone()
                .any(|p| p.windows(b.len()).any(|w| w == b.as_bytes()))
        })
        .unwrap_or_default()
}

/// The queue id reduced to characters safe in a Message-ID and a MIME boundary.
fn safe_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn date(t: OffsetDateTime) -> String {
    // Rfc2822 formatting fails only for years outside 1900..=9999, which no clock gives.
    t.format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

/// "5 days", "1 day", "3 hours", "12 minutes".
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        86_400.. => (s / 86_400, "day"),
        3_600.. => (s / 3_600, "hour"),
        _ => (s / 60, "minute"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A server reply, possibly multi-line, on one line of printable ASCII: it goes into a header
/// and a us-ascii text part, and replies are kept as received.
fn one_line(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| match c {
            '\r' | '\n' | '\t' => ' ',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An address, host or id that goes into a header as one word.
fn token(field: &'static str, value: &str) -> Result<(), DsnError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    ok.then_some(()).ok_or_else(|| DsnError::BadField {
        field,
        value: value.to_string(),
    })
}

fn printable(field: &'static str, value: &str) -> Result<(), DsnError> {
    let ok = value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    ok.then_some(()).ok_or_else(|| DsnError::BadField {
        field,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests;
