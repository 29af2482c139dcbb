//! Sans-I/O wire formats: bytes in, typed replies out; commands rendered to bytes. No sockets here,
//! so every parser is tested with byte strings, hostile ones included.
//!
//! - [`LineBuffer`] frames a byte stream into lines with a length limit, and tells the driver
//!   whether bytes are pending (the STARTTLS injection check, CVE-2011-0411).
//! - [`smtp`] reply parsing (RFC 5321 §4.2), EHLO keywords, AUTH PLAIN/LOGIN (RFC 4954, RFC 4616).
//! - [`imap`] the few responses a probe needs (RFC 3501 / RFC 9051), LOGIN quoting and literals.
//! - [`imap_frame`], [`imap_data`], [`imap_fetch`], [`imap_select`], [`imap_cmd`]: the migration
//!   client's IMAP (RFC 3501): responses with literals, LIST/NAMESPACE/SEARCH/FETCH, SELECT codes
//!   and APPENDUID, commands with literals (RFC 7888 LITERAL+) and UID sets.
//! - [`imap_sync`] CONDSTORE/QRESYNC (RFC 7162): mod-sequences and VANISHED UID sets, for
//!   `posta mirror`.
//! - [`mutf7`] modified UTF-7 mailbox names (RFC 3501 §5.1.3).
//! - [`pop3`] status lines, multi-line responses with dot-unstuffing (RFC 1939), CAPA (RFC 2449).
//! - [`pop3_server`] the POP3 server side of `posta mta`: command parsing and the session state
//!   machine (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH PLAIN), replies as bytes.
//! - [`sasl`] SASL PLAIN with an authorization identity (RFC 4616) and Dovecot's `user*admin`
//!   master-user login name: how an admin identity logs in as each mailbox.
//! - [`smtp_server`] the commands an SMTP server receives (RFC 5321 §4.1), strictly parsed.
//! - [`dotstuff`] message data both ways: RETR bodies un-stuffed, SMTP DATA stuffed with CRLF.
//! - [`ether`], [`arp`], [`ndp`]: the link-layer frames of a virtual-IP takeover: RFC 5227 ARP
//!   probes and gratuitous ARP (RFC 826), IPv6 duplicate address detection probes and unsolicited
//!   neighbour advertisements (RFC 4861, RFC 4862).

pub mod arp;
pub mod dotstuff;
pub mod ether;
pub mod imap;
pub mod imap_cmd;
pub mod imap_data;
pub mod imap_fetch;
pub mod imap_frame;
mod imap_lex;
pub mod imap_select;
pub mod imap_sync;
pub mod mutf7;
pub mod ndp;
pub mod pop3;
pub mod pop3_server;
pub mod sasl;
pub mod smtp;
pub mod smtp_server;

/// Longest line accepted from a server, terminator included. RFC 5321 §4.5.3.1.5 allows 512
/// octets for an SMTP reply line and RFC 2449 §4 the same for POP3, but real servers overshoot
/// (long CAPABILITY lines in IMAP), so be lenient up to a point and refuse beyond it.
pub const MAX_LINE: usize = 4096;

/// Most lines accepted in one multi-line reply; a server streaming continuation lines forever must
/// not grow our memory without bound.
pub const MAX_REPLY_LINES: usize = 1000;

/// What was wrong with what the server sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("line longer than {limit} octets")]
    LineTooLong { limit: usize },
    #[error("line not terminated by CRLF")]
    Unterminated,
    #[error("line contains a NUL byte")]
    Nul,
    #[error("line is not valid UTF-8: {0}")]
    NotUtf8(String),
    #[error("more than {limit} lines in one reply")]
    TooManyLines { limit: usize },
    #[error("{0}")]
    Malformed(String),
    /// A command argument that cannot be sent safely (CR/LF would inject a second command).
    #[error("{0}")]
    BadArgument(String),
}

impl ProtoError {
    pub(crate) fn malformed(what: impl Into<String>, line: &str) -> ProtoError {
        ProtoError::Malformed(format!("{}: {}", what.into(), escape(line.as_bytes())))
    }
}

/// Checks one framed line (terminator included) and returns its text without CRLF.
///
/// A bare LF is accepted as a terminator: RFC 5321 §2.3.8 requires CRLF, but refusing a server's
/// health over it would be pedantry that tells the operator nothing useful.
pub fn line_text(line: &[u8]) -> Result<&str, ProtoError> {
    if line.len() > MAX_LINE {
        return Err(ProtoError::LineTooLong { limit: MAX_LINE });
    }
    let body = line.strip_suffix(b"\n").ok_or(ProtoError::Unterminated)?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if body.contains(&0) {
        return Err(ProtoError::Nul);
    }
    std::str::from_utf8(body).map_err(|_| ProtoError::NotUtf8(escape(body)))
}

/// Renders bytes for logs and messages: CR, LF and other control or non-ASCII bytes escaped,
/// long input cut, so one log record is one line and a hostile server cannot forge log lines.
pub fn escape(bytes: &[u8]) -> String {
    const SHOWN: usize = 200;
    let mut out = String::new();
    for &b in bytes.iter().take(SHOWN) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > SHOWN {
        out.push_str(&format!("...({} more bytes)", bytes.len() - SHOWN));
    }
    out
}

/// Refuses command arguments that would end the command early or smuggle a NUL.
pub(crate) fn check_arg<'a>(what: &str, value: &'a str) -> Result<&'a str, ProtoError> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(ProtoError::BadArgument(format!(
            "{what} contains CR, LF or NUL and cannot be sent"
        )));
    }
    Ok(value)
}

/// Frames received bytes into lines. The driver appends what it reads and takes whole lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// How many leading bytes of `buf` are known to hold no LF, so a long line arriving in many
    /// reads is scanned once rather than once per read.
    scanned: usize,
}

impl LineBuffer {
    pub fn new() -> LineBuffer {
        LineBuffer::default()
    }

    /// Appends freshly received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next complete line, terminator included; `Ok(None)` means more bytes are needed.
    /// Fails as soon as the pending line is longer than [`MAX_LINE`], before reading the rest.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        self.next_line_limited(MAX_LINE)
    }

    /// [`LineBuffer::next_line`] with another bound: message data (a POP3 RETR body) has lines
    /// far longer than any reply line, but a hostile server must still not grow memory forever.
    pub fn next_line_limited(&mut self, limit: usize) -> Result<Option<Vec<u8>>, ProtoError> {
        let start = self.scanned;
        match self.buf[start..].iter().position(|&b| b == b'\n') {
            Some(i) if start + i < limit => {
                self.scanned = 0;
                Ok(Some(self.buf.drain(..=start + i).collect()))
            }
            Some(_) => Err(ProtoError::LineTooLong { limit }),
            None if self.buf.len() >= limit => Err(ProtoError::LineTooLong { limit }),
            None => {
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }

    /// Takes exactly `n` bytes (an IMAP literal) if that many are buffered.
    pub fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        let data = (self.buf.len() >= n).then(|| self.buf.drain(..n).collect())?;
        self.scanned = 0;
        Some(data)
    }

    /// Bytes received but not yet consumed. After a STARTTLS reply this must be zero: anything
    /// else was sent before the handshake and must not be trusted (CVE-2011-0411).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines_across_reads() {
        let mut b = LineBuffer::new();
        b.extend(b"220 hel");
        assert_eq!(b.next_line().unwrap(), None);
        b.extend(b"lo\r\n250 x\r\n25");
        assert_eq!(b.next_line().unwrap().unwrap(), b"220 hello\r\n");
        assert_eq!(b.next_line().unwrap().unwrap(), b"250 x\r\n");
        assert_eq!(b.next_line().unwrap(), None);
        assert_eq!(b.pending(), 2);
    }

    #[test]
    fn overlong_line_fails_without_terminator() {
        let mut b = LineBuffer::new();
        b.extend(&vec![b'a'; MAX_LINE + 10]);
        assert_eq!(
            b.next_line(),
            Err(ProtoError::LineTooLong { limit: MAX_LINE })
        );
    }

    #[test]
    fn limited_lines_across_many_reads() {
        let mut b = LineBuffer::new();
        for _ in 0..10 {
            b.extend(&[b'x'; 1000]);
            assert_eq!(b.next_line_limited(20_000).unwrap(), None);
        }
        b.extend(b"\r\nnext\r\n");
        assert_eq!(b.next_line_limited(20_000).unwrap().unwrap().len(), 10_002);
        assert_eq!(b.next_line_limited(20_000).unwrap().unwrap(), b"next\r\n");
        // The default limit still applies to ordinary reads.
        b.extend(&[b'y'; MAX_LINE]);
        assert_eq!(
            b.next_line(),
            Err(ProtoError::LineTooLong { limit: MAX_LINE })
        );
    }

    #[test]
    fn limited_line_fails_at_its_bound() {
        let mut b = LineBuffer::new();
        b.extend(&[b'x'; 99]);
        assert_eq!(b.next_line_limited(100).unwrap(), None);
        b.extend(b"x\n");
        assert_eq!(
            b.next_line_limited(100),
            Err(ProtoError::LineTooLong { limit: 100 })
        );
        let mut b = LineBuffer::new();
        b.extend(b"abc\n");
        assert_eq!(b.take(2).unwrap(), b"ab");
        assert_eq!(b.next_line_limited(100).unwrap().unwrap(), b"c\n");
    }

    #[test]
    fn line_text_checks() {
        assert_eq!(line_text(b"ok\r\n").unwrap(), "ok");
        assert_eq!(line_text(b"ok\n").unwrap(), "ok");
        assert_eq!(line_text(b"ok"), Err(ProtoError::Unterminated));
        assert_eq!(line_text(b"o\0k\r\n"), Err(ProtoError::Nul));
        assert!(matches!(
            line_text(b"\xff\xfe\r\n"),
            Err(ProtoError::NotUtf8(_))
        ));
    }

    #[test]
    fn escape_makes_one_line() {
        assert_eq!(escape(b"a\r\nb\x01\xff"), "a\\r\\nb\\x01\\xff");
        assert!(escape(&[b'x'; 300]).ends_with("...(100 more bytes)"));
    }

    #[test]
    fn check_arg_refuses_injection() {
        assert!(check_arg("helo name", "a\r\nQUIT").is_err());
        assert_eq!(check_arg("helo name", "mx.example").unwrap(), "mx.example");
    }
}
