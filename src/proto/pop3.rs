//! POP3 client-side wire format: `+OK`/`-ERR` status lines and multi-line responses (RFC 1939
//! §3), CAPA (RFC 2449 §5), STAT, LIST and UIDL listings (RFC 1939 §5, §7) and the commands the
//! probe and the migrate client send. RETR bodies are `dotstuff`'s business.

use std::collections::{HashMap, HashSet};

use super::{MAX_REPLY_LINES, ProtoError, check_arg, line_text};

/// Most entries accepted in one LIST or UIDL listing: one per message, so far more than
/// [`MAX_REPLY_LINES`], but still a bound (about 100 MB of listing) against an endless stream.
pub const MAX_LISTING: usize = 1_000_000;

/// A status line: `+OK text` or `-ERR text` (RFC 1939 §3; RFC 2449 §8 response codes stay in text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub ok: bool,
    pub text: String,
}

impl std::fmt::Display for StatusLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = if self.ok { "+OK" } else { "-ERR" };
        if self.text.is_empty() {
            f.write_str(word)
        } else {
            write!(f, "{word} {}", self.text)
        }
    }
}

/// Parses one framed status line. The keyword is case-sensitive in RFC 1939 §3 ("+OK" and
/// "-ERR"); anything else is malformed.
pub fn parse_status(line: &[u8]) -> Result<StatusLine, ProtoError> {
    let text = line_text(line)?;
    let (ok, rest) = if let Some(rest) = text.strip_prefix("+OK") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("-ERR") {
        (false, rest)
    } else {
        return Err(ProtoError::malformed("expected +OK or -ERR", text));
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Err(ProtoError::malformed("expected +OK or -ERR", text));
    }
    Ok(StatusLine {
        ok,
        text: rest.trim_start().to_owned(),
    })
}

/// Collects the body of a multi-line response after its `+OK` line: lines up to a lone `.`,
/// with one leading dot removed from dot-stuffed lines (RFC 1939 §3).
#[derive(Debug)]
pub struct MultiLine {
    lines: Vec<String>,
    limit: usize,
}

impl Default for MultiLine {
    fn default() -> MultiLine {
        MultiLine::with_limit(MAX_REPLY_LINES)
    }
}

impl MultiLine {
    pub fn new() -> MultiLine {
        MultiLine::default()
    }

    /// A collector for up to `limit` lines: LIST and UIDL have one line per message.
    pub fn with_limit(limit: usize) -> MultiLine {
        MultiLine {
            lines: Vec::new(),
            limit,
        }
    }

    /// Feeds one framed line; returns the body lines once the terminating `.` arrives.
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Vec<String>>, ProtoError> {
        let text = line_text(line)?;
        if text == "." {
            return Ok(Some(std::mem::take(&mut self.lines)));
        }
        if self.lines.len() >= self.limit {
            return Err(ProtoError::TooManyLines { limit: self.limit });
        }
        self.lines
            .push(text.strip_prefix('.').unwrap_or(text).to_owned());
        Ok(None)
    }
}

/// One CAPA line: an uppercased tag and its parameters (`SASL PLAIN LOGIN`, `STLS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub name: String,
    pub params: Vec<String>,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        for p in &self.params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// Reads the body of a CAPA response (RFC 2449 §5); capability names are case-insensitive.
pub fn parse_capa(lines: &[String]) -> Vec<Capability> {
    lines
        .iter()
        .filter_map(|l| {
            let mut words = l.split_ascii_whitespace();
            Some(Capability {
                name: words.next()?.to_ascii_uppercase(),
                params: words.map(str::to_owned).collect(),
            })
        })
        .collect()
}

pub fn has_capability(caps: &[Capability], name: &str) -> bool {
    caps.iter().any(|c| c.name.eq_ignore_ascii_case(name))
}

/// Longest AUTH command line with its initial response (RFC 5034 §4, CRLF included); a longer
/// response goes on its own line after the server's `+`.
pub const MAX_AUTH_LINE: usize = 255;

/// Whether a framed line is a SASL continuation (`+` and an optional base64 challenge, RFC 5034
/// §4) rather than a `+OK`/`-ERR` status.
pub fn is_continuation(line: &[u8]) -> bool {
    line.starts_with(b"+ ") || line == b"+\r\n" || line == b"+\n"
}

/// The maildrop's size from a STAT reply text (`+OK nn mm`, RFC 1939 §5): (messages, octets).
pub fn parse_stat(status: &StatusLine) -> Result<(u64, u64), ProtoError> {
    let mut words = status.text.split(' ');
    let mut num = || words.next().and_then(|w| w.parse::<u64>().ok());
    match (status.ok, num(), num()) {
        (true, Some(n), Some(size)) => Ok((n, size)),
        _ => Err(ProtoError::malformed(
            "STAT reply is not '+OK messages octets'",
            &status.to_string(),
        )),
    }
}

/// A message number as RFC 1939 §3 defines it: decimal, from 1, no sign.
fn message_number(word: &str) -> Option<u32> {
    let valid = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    word.parse().ok().filter(|&n| valid && n > 0)
}

/// Refuses a listing that names one message twice: every later step (RETR, DELE, the journal)
/// addresses messages by these numbers.
fn check_unique_number(seen: &mut HashSet<u32>, n: u32, line: &str) -> Result<(), ProtoError> {
    if seen.insert(n) {
        Ok(())
    } else {
        Err(ProtoError::malformed(
            format!("message {n} listed twice"),
            line,
        ))
    }
}

/// Reads a UIDL listing (RFC 1939 §7): `msgno SP unique-id` per line. A unique-id is 1 to 70
/// characters from 0x21 to 0x7E. Duplicate ids are refused rather than passed on: migration
/// keys its journal on them, so two messages sharing one id would let the second be taken for
/// already delivered and deleted unseen.
pub fn parse_uidl(lines: &[String]) -> Result<Vec<(u32, String)>, ProtoError> {
    let mut numbers = HashSet::new();
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let parsed = line
            .split_once(' ')
            .and_then(|(n, id)| Some((message_number(n)?, id)));
        let Some((n, id)) = parsed else {
            return Err(ProtoError::malformed(
                "UIDL line is not 'msgno unique-id'",
                line,
            ));
        };
        if id.is_empty() || id.len() > 70 || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ProtoError::malformed(
                "unique-id must be 1 to 70 printable ASCII characters (RFC 1939 §7)",
                line,
            ));
        }
        check_unique_number(&mut numbers, n, line)?;
        if let Some(first) = ids.insert(id, n) {
            return Err(ProtoError::malformed(
                format!("unique-id shared by messages {first} and {n}"),
                line,
            ));
        }
        out.push((n, id.to_owned()));
    }
    Ok(out)
}

/// Reads a LIST scan listing (RFC 1939 §5): `msgno SP octets`, where RFC 1939 allows servers to
/// add more after the size.
pub fn parse_list(lines: &[String]) -> Result<Vec<(u32, u64)>, ProtoError> {
    let mut numbers = HashSet::new();
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let mut words = line.split(' ');
        let n = words.next().and_then(message_number);
        let size = words
            .next()
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|w| w.parse::<u64>().ok());
        let (Some(n), Some(size)) = (n, size) else {
            return Err(ProtoError::malformed(
                "LIST line is not 'msgno octets'",
                line,
            ));
        };
        check_unique_number(&mut numbers, n, line)?;
        out.push((n, size));
    }
    Ok(out)
}

/// A command the probe or the migrate client sends; renders itself, and a redacted form for
/// logs.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    Capa,
    Stls,
    User(&'a str),
    Pass(&'a str),
    /// `AUTH PLAIN` (RFC 5034 §4) with the base64 initial response from `sasl::plain`, or
    /// without one (`None`) when the line would pass 255 octets; the response then follows
    /// the server's `+` as [`Command::SaslResponse`].
    AuthPlain(Option<&'a str>),
    SaslResponse(&'a str),
    Stat,
    Uidl,
    List,
    Retr(u32),
    Dele(u32),
    Quit,
}

impl Command<'_> {
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let line = match *self {
            Command::Capa => "CAPA".to_owned(),
            Command::Stls => "STLS".to_owned(),
            Command::User(u) => format!("USER {}", check_arg("user name", u)?),
            Command::Pass(p) => format!("PASS {}", check_arg("password", p)?),
            Command::AuthPlain(None) => "AUTH PLAIN".to_owned(),
            Command::AuthPlain(Some(r)) => format!("AUTH PLAIN {}", check_arg("response", r)?),
            Command::SaslResponse(r) => check_arg("response", r)?.to_owned(),
            Command::Stat => "STAT".to_owned(),
            Command::Uidl => "UIDL".to_owned(),
            Command::List => "LIST".to_owned(),
            Command::Retr(n) => format!("RETR {n}"),
            Command::Dele(n) => format!("DELE {n}"),
            Command::Quit => "QUIT".to_owned(),
        };
        Ok(format!("{line}\r\n").into_bytes())
    }

    pub fn redacted(&self) -> String {
        match *self {
            Command::Capa => "CAPA".into(),
            Command::Stls => "STLS".into(),
            Command::User(u) => format!("USER {}", super::escape(u.as_bytes())),
            Command::Pass(_) => "PASS <redacted>".into(),
            Command::AuthPlain(None) => "AUTH PLAIN".into(),
            Command::AuthPlain(Some(_)) => "AUTH PLAIN <redacted>".into(),
            Command::SaslResponse(_) => "<redacted>".into(),
            Command::Stat => "STAT".into(),
            Command::Uidl => "UIDL".into(),
            Command::List => "LIST".into(),
            Command::Retr(n) => format!("RETR {n}"),
            Command::Dele(n) => format!("DELE {n}"),
            Command::Quit => "QUIT".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let s = parse_status(b"+OK Dovecot ready.\r\n").unwrap();
        assert!(s.ok);
        assert_eq!(s.text, "Dovecot ready.");
        let s = parse_status(b"-ERR [AUTH] Authentication failed.\r\n").unwrap();
        assert!(!s.ok);
        assert_eq!(s.to_string(), "-ERR [AUTH] Authentication failed.");
        assert!(parse_status(b"+OK\r\n").unwrap().ok);
    }

    #[test]
    fn hostile_status_lines_fail() {
        let bad: &[&[u8]] = &[
            b"OK ready\r\n",
            b"+OKAY\r\n",
            b"+ok ready\r\n",
            b"220 smtp\r\n",
            b"+OK no crlf",
            b"+OK \0\r\n",
            b"+OK \xff\r\n",
            b"\r\n",
        ];
        for line in bad {
            assert!(
                parse_status(line).is_err(),
                "{}",
                super::super::escape(line)
            );
        }
    }

    #[test]
    fn multiline_unstuffs_and_terminates() {
        let mut m = MultiLine::new();
        assert_eq!(m.feed(b"STLS\r\n").unwrap(), None);
        assert_eq!(m.feed(b"..leading dot\r\n").unwrap(), None);
        assert_eq!(m.feed(b".x\r\n").unwrap(), None);
        let body = m.feed(b".\r\n").unwrap().unwrap();
        assert_eq!(body, ["STLS", ".leading dot", "x"]);
    }

    #[test]
    fn endless_multiline_is_bounded() {
        let mut m = MultiLine::new();
        let mut last = Ok(None);
        for _ in 0..=MAX_REPLY_LINES {
            last = m.feed(b"x\r\n");
            if last.is_err() {
                break;
            }
        }
        assert!(matches!(last, Err(ProtoError::TooManyLines { .. })));
    }

    #[test]
    fn auth_plain_is_redacted_and_continuations_are_told_apart() {
        let c = Command::AuthPlain(Some("YWxpY2UA"));
        assert_eq!(c.encode().unwrap(), b"AUTH PLAIN YWxpY2UA\r\n");
        assert_eq!(c.redacted(), "AUTH PLAIN <redacted>");
        assert_eq!(
            Command::AuthPlain(None).encode().unwrap(),
            b"AUTH PLAIN\r\n"
        );
        assert_eq!(Command::SaslResponse("YWxp").redacted(), "<redacted>");
        assert!(Command::SaslResponse("a\r\nQUIT").encode().is_err());
        assert!(is_continuation(b"+ \r\n") && is_continuation(b"+\r\n"));
        assert!(!is_continuation(b"+OK\r\n") && !is_continuation(b"-ERR x\r\n"));
    }

    #[test]
    fn capa_parsing() {
        let caps = parse_capa(&[
            "CAPA".into(),
            "sasl PLAIN LOGIN".into(),
            "STLS".into(),
            "".into(),
        ]);
        assert_eq!(caps.len(), 3);
        assert_eq!(caps[1].to_string(), "SASL PLAIN LOGIN");
        assert!(has_capability(&caps, "stls"));
        assert!(!has_capability(&caps, "USER"));
    }

    #[test]
    fn stat_parsing() {
        let ok = |t: &str| StatusLine {
            ok: true,
            text: t.into(),
        };
        assert_eq!(parse_stat(&ok("2 320")).unwrap(), (2, 320));
        assert!(parse_stat(&ok("two 320")).is_err());
        assert!(parse_stat(&ok("2")).is_err());
        assert!(parse_stat(&ok("-1 5")).is_err());
        assert!(
            parse_stat(&StatusLine {
                ok: false,
                text: "2 3".into()
            })
            .is_err()
        );
    }

    fn strings(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn uidl_listing() {
        let got = parse_uidl(&strings(&["1 000000017a1b2c3d", "3 whq!~x"])).unwrap();
        assert_eq!(got, [(1, "000000017a1b2c3d".into()), (3, "whq!~x".into())]);
        let longest = format!("2 {}", "u".repeat(70));
        assert_eq!(parse_uidl(&strings(&[&longest])).unwrap()[0].1.len(), 70);
    }

    #[test]
    fn hostile_uidl_listings_fail() {
        let too_long = format!("1 {}", "u".repeat(71));
        let bad: &[&[&str]] = &[
            &["1"],
            &["1 "],
            &["x abc"],
            &["0 abc"],
            &["+1 abc"],
            &["-1 abc"],
            &["99999999999 abc"],
            &["1 two words"],
            &["1 tab\there"],
            &["1 caf\u{e9}"],
            &[&too_long],
            &["1 a", "1 b"],
            &["1 same", "2 same"],
        ];
        for lines in bad {
            let err = parse_uidl(&strings(lines));
            assert!(err.is_err(), "{lines:?}");
        }
        let dup = parse_uidl(&strings(&["1 same", "2 same"])).unwrap_err();
        assert!(
            dup.to_string().contains("shared by messages 1 and 2"),
            "{dup}"
        );
    }

    #[test]
    fn list_listing() {
        let got = parse_list(&strings(&["1 120", "2 300000 extra info"])).unwrap();
        assert_eq!(got, [(1, 120), (2, 300_000)]);
        for bad in ["1", "1 -5", "1 x", "0 5", "1  5"] {
            assert!(parse_list(&strings(&[bad])).is_err(), "{bad}");
        }
        assert!(parse_list(&strings(&["1 5", "1 6"])).is_err());
    }

    #[test]
    fn listings_may_exceed_the_reply_line_limit() {
        let mut m = MultiLine::with_limit(MAX_LISTING);
        for i in 1..=MAX_REPLY_LINES + 5 {
            assert_eq!(m.feed(format!("{i} u{i}\r\n").as_bytes()).unwrap(), None);
        }
        let lines = m.feed(b".\r\n").unwrap().unwrap();
        assert_eq!(parse_uidl(&lines).unwrap().len(), MAX_REPLY_LINES + 5);
        let mut small = MultiLine::with_limit(1);
        small.feed(b"1 a\r\n").unwrap();
        assert_eq!(
            small.feed(b"2 b\r\n"),
            Err(ProtoError::TooManyLines { limit: 1 })
        );
    }

    #[test]
    fn commands() {
        assert_eq!(Command::Retr(7).encode().unwrap(), b"RETR 7\r\n");
        assert_eq!(Command::Dele(7).redacted(), "DELE 7");
        assert_eq!(Command::User("probe").encode().unwrap(), b"USER probe\r\n");
        assert_eq!(Command::Pass("s3cret").redacted(), "PASS <redacted>");
        assert!(Command::Pass("a\r\nDELE 1").encode().is_err());
    }
}
