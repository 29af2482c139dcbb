//! What migrate needs from a message's bytes, without parsing MIME: the envelope it carried on
//! mailserver2 (Delivered-To / X-Original-To, Return-Path), its Message-ID, a body hash for the
//! reconciliation, and the one trace header posta adds. The message itself is never rewritten.

use ring::digest;

/// Where the header ends: the offset of the body (after the empty line), or the message's
/// length when it has no body.
pub fn body_offset(message: &[u8]) -> usize {
    let mut i = 0;
    while i < message.len() {
        let rest = &message[i..];
        if rest.starts_with(b"\r\n") {
            return i + 2;
        }
        if rest.starts_with(b"\n") {
            return i + 1;
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => i += n + 1,
            None => return message.len(),
        }
    }
    message.len()
}

/// The unfolded values of every `name:` field in the header, in order (top first).
pub fn header_values(message: &[u8], name: &str) -> Vec<String> {
    let header = &message[..body_offset(message)];
    let mut values = Vec::new();
    let mut current: Option<String> = None;
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some(v) = current.as_mut() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(String::from_utf8_lossy(line).trim());
            }
            continue;
        }
        if let Some(v) = current.take() {
            values.push(v);
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let (field, value) = line.split_at(colon);
            if field.eq_ignore_ascii_case(name.as_bytes()) {
                current = Some(String::from_utf8_lossy(&value[1..]).trim().to_owned());
            }
        }
    }
    values.extend(current);
    values
}

/// The envelope recipient mailserver2 recorded when it delivered the message: the topmost
/// Delivered-To (written by the final delivery), else X-Original-To. Never To/Cc: fetchmail's
/// man page says guessing from those "usually fails for mailing list messages and Bcc:d mail".
pub fn envelope_recipient(message: &[u8]) -> Option<String> {
    ["Delivered-To", "X-Original-To"]
        .iter()
        .find_map(|name| header_values(message, name).into_iter().next())
        .and_then(|v| address(&v))
}

/// The envelope sender from the topmost Return-Path; `None` for `<>` or no Return-Path, which
/// becomes the null sender (bounces of a migrated message must not loop).
pub fn envelope_sender(message: &[u8]) -> Option<String> {
    header_values(message, "Return-Path")
        .into_iter()
        .next()
        .and_then(|v| address(&v))
}

/// The Message-ID, angle brackets kept, as the reconciliation compares it.
pub fn message_id(message: &[u8]) -> Option<String> {
    header_values(message, "Message-ID")
        .into_iter()
        .next()
        .filter(|v| !v.is_empty())
}

/// SHA-256 of the whole message as stored, in hex: the mirror's content identity.
pub fn whole_hash(message: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, message).as_ref())
}

/// SHA-256 of the body with line ends made CRLF (SMTP makes them so), in hex.
pub fn body_hash(message: &[u8]) -> String {
    let body = &message[body_offset(message)..];
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut start = 0;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' && (i == 0 || body[i - 1] != b'\r') {
            ctx.update(&body[start..i]);
            ctx.update(b"\r\n");
            start = i + 1;
        }
    }
    ctx.update(&body[start..]);
    hex(ctx.finish().as_ref())
}

/// A short, stable hex digest of `parts`, for tracking ids and file names.
pub fn short_hash(parts: &[&str]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p.as_bytes());
        ctx.update(&[0]);
    }
    hex(&ctx.finish().as_ref()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `user@domain` from `<user@domain>`, `user@domain` or `Name <user@domain>`; `None` for `<>`
/// and anything that is not one address.
fn address(value: &str) -> Option<String> {
    let inner = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value,
    };
    let inner = inner.trim();
    let (local, domain) = inner.rsplit_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !inner.contains(|c: char| c.is_whitespace() || c.is_control() || c == ',');
    ok.then(|| inner.to_owned())
}

/// The trace header in fetchmail's Received form, naming
/// the source host, account, folder and UID, plus the tracking id a resumed run searches for.
pub struct Trace<'a> {
    pub source_host: &'a str,
    pub source_ip: Option<&'a str>,
    pub by: &'a str,
    pub protocol: &'a str,
    pub user: &'a str,
    /// The folder's name on the wire (modified UTF-7 is ASCII, as a header must be).
    pub folder: &'a str,
    /// `validity/uid` or the UIDL.
    pub uid: &'a str,
    pub tracking_id: &'a str,
    pub rcpt: Option<&'a str>,
    /// RFC 5322 date-time.
    pub date: &'a str,
}

impl Trace<'_> {
    pub fn render(&self) -> Vec<u8> {
        let ip = self
            .source_ip
            .map(|ip| format!(" [{ip}]"))
            .unwrap_or_default();
        let mut h = format!(
            "Received: from {}{ip}\r\n\tby {} with {} (posta-{} account {} folder {} uid {} id {})\r\n",
            self.source_host,
            self.by,
            self.protocol,
            env!("CARGO_PKG_VERSION"),
            comment_safe(self.user),
            comment_safe(self.folder),
            comment_safe(self.uid),
            self.tracking_id,
        );
        match self.rcpt {
            Some(rcpt) => h.push_str(&format!("\tfor <{rcpt}> (single-drop); {}\r\n", self.date)),
            None => h.push_str(&format!("\t; {}\r\n", self.date)),
        }
        h.into_bytes()
    }
}

/// Text safe inside a header comment: no parentheses, backslashes or control characters.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '(' | ')' | '\\') || !c.is_ascii() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Where the trace header goes: before the first Received field, as fetchmail does, so a
/// Return-Path above it stays on top; at the very top when there is none.
pub fn trace_offset(message: &[u8]) -> usize {
    let header = &message[..body_offset(message)];
    let mut at = 0;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
            return at;
        }
        at += line.len();
    }
    0
}

/// The header name a `Delivered-To:` field is renamed to before the message is delivered again.
pub const ORIGINAL_DELIVERED_TO: &str = "X-Original-Delivered-To:";

/// Renames every `Delivered-To:` field of the header to `X-Original-Delivered-To:`.
///
/// mailserver2's delivery wrote `Delivered-To: alice@...`; Postfix's local(8) on mailserver1
/// takes a Delivered-To naming the recipient it delivers to as a forwarding loop and bounces
/// the message after its 250 (`mail forwarding loop for alice@...`): a loss the SMTP dialogue
/// never shows. fetchmail's `dropdelivered` drops these fields; renaming keeps what they said.
/// Every Delivered-To goes, not only the recipient's: the name local(8) compares with is the
/// address after mailserver1's own aliasing, which posta cannot know.
pub fn rename_delivered_to(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let header = &message[..body_offset(message)];
    let is_field =
        |line: &[u8]| line.len() >= 13 && line[..13].eq_ignore_ascii_case(b"delivered-to:");
    if !header.split_inclusive(|&b| b == b'\n').any(is_field) {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + 64);
    for line in header.split_inclusive(|&b| b == b'\n') {
        if is_field(line) {
            out.extend_from_slice(ORIGINAL_DELIVERED_TO.as_bytes());
            out.extend_from_slice(&line[13..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&message[header.len()..]);
    std::borrow::Cow::Owned(out)
}

/// The current time as an RFC 5322 date-time in UTC.
pub fn now_rfc5322() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"Return-Path: <bob@example.net>\r\nDelivered-To: alice@example.org\r\n\
Received: from mx.example.net\r\n\tby mailserver2; Thu, 1 Jan 2026 00:00:00 +0000\r\n\
Message-ID: <1@example.net>\r\nTo: list@example.com\r\nSubject: hi\r\n\r\nbody\r\n.dot\r\n";

    #[test]
    fn envelope_comes_from_delivery_headers_never_from_to() {
        assert_eq!(
            envelope_recipient(MSG).as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(envelope_sender(MSG).as_deref(), Some("bob@example.net"));
        let no_rcpt = b"To: alice@example.org\r\n\r\nx\r\n";
        assert_eq!(envelope_recipient(no_rcpt), None);
        let orig = b"X-Original-To: <carol@example.org>\r\n\r\nx";
        assert_eq!(
            envelope_recipient(orig).as_deref(),
            Some("carol@example.org")
        );
        assert_eq!(envelope_sender(b"Return-Path: <>\r\n\r\n"), None);
        assert_eq!(envelope_recipient(b"Delivered-To: a@b, c@d\r\n\r\n"), None);
    }

    #[test]
    fn folded_headers_and_bare_lf_are_read() {
        let m = b"Message-ID:\n <x@y>\nSubject: s\n\nbody\n";
        assert_eq!(message_id(m).as_deref(), Some("<x@y>"));
        assert_eq!(body_offset(m), m.len() - 5);
        assert_eq!(
            body_hash(m),
            body_hash(b"Message-ID: <x@y>\r\n\r\nbody\r\n")
        );
        assert_eq!(body_offset(b"no body"), 7);
        assert_eq!(message_id(b""), None);
    }

    #[test]
    fn trace_goes_before_the_first_received() {
        let at = trace_offset(MSG);
        assert!(MSG[at..].starts_with(b"Received: from mx"));
        assert_eq!(trace_offset(b"Subject: x\r\n\r\nReceived: in body\r\n"), 0);
    }

    #[test]
    fn trace_renders_in_fetchmail_form() {
        let t = Trace {
            source_host: "mailserver2",
            source_ip: Some("192.0.2.2"),
            by: "mailserver1",
            protocol: "IMAP",
            user: "alice",
            folder: "Entw&APw-rfe",
            uid: "7/42",
            tracking_id: "posta.0011.2233",
            rcpt: Some("alice@example.org"),
            date: "Fri, 27 Nov 2026 12:00:00 +0000",
        };
        let h = String::from_utf8(t.render()).unwrap();
        assert_eq!(
            h,
            format!(
                "Received: from mailserver2 [192.0.2.2]\r\n\tby mailserver1 with IMAP (posta-{} \
account alice folder Entw&APw-rfe uid 7/42 id posta.0011.2233)\r\n\tfor <alice@example.org> \
(single-drop); Fri, 27 Nov 2026 12:00:00 +0000\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(now_rfc5322().ends_with("+0000"));
    }

    #[test]
    fn hashes_are_stable_and_distinct() {
        assert_eq!(short_hash(&["a", "b"]), short_hash(&["a", "b"]));
        assert_ne!(short_hash(&["a", "b"]), short_hash(&["ab"]));
        assert_eq!(short_hash(&["x"]).len(), 16);
    }

    #[test]
    fn delivered_to_is_renamed_in_the_header_only() {
        let m = b"Return-Path: <b@x>\r\nDelivered-To: alice@example.org\r\ndelivered-to: \r\n\tfolded@example.org\r\n\
Subject: hi\r\n\r\nDelivered-To: in the body stays\r\n";
        let r = rename_delivered_to(m);
        assert_eq!(
            String::from_utf8_lossy(&r),
            "Return-Path: <b@x>\r\nX-Original-Delivered-To: alice@example.org\r\n\
X-Original-Delivered-To: \r\n\tfolded@example.org\r\nSubject: hi\r\n\r\n\
Delivered-To: in the body stays\r\n"
        );
        let plain = b"Subject: x\r\n\r\nbody\r\n";
        assert!(matches!(
            rename_delivered_to(plain),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
