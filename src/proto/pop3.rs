//! POP3 client-side wire format: `+OK`/`-ERR` status lines and multi-line responses (RFC 1939
//! §3), CAPA (RFC 2449 §5), STAT (RFC 1939 §5) and the commands a probe sends.

use super::{MAX_REPLY_LINES, ProtoError, check_arg, line_text};

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
#[derive(Debug, Default)]
pub struct MultiLine {
    lines: Vec<String>,
}

impl MultiLine {
    pub fn new() -> MultiLine {
        MultiLine::default()
    }

    /// Feeds one framed line; returns the body lines once the terminating `.` arrives.
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Vec<String>>, ProtoError> {
        let text = line_text(line)?;
        if text == "." {
            return Ok(Some(std::mem::take(&mut self.lines)));
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ProtoError::TooManyLines {
                limit: MAX_REPLY_LINES,
            });
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

/// A command the probe sends; renders itself, and a redacted form for logs.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    Capa,
    Stls,
    User(&'a str),
    Pass(&'a str),
    Stat,
    Quit,
}

impl Command<'_> {
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let line = match *self {
            Command::Capa => "CAPA".to_owned(),
            Command::Stls => "STLS".to_owned(),
            Command::User(u) => format!("USER {}", check_arg("user name", u)?),
            Command::Pass(p) => format!("PASS {}", check_arg("password", p)?),
            Command::Stat => "STAT".to_owned(),
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
            Command::Stat => "STAT".into(),
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

    #[test]
    fn commands() {
        assert_eq!(Command::User("probe").encode().unwrap(), b"USER probe\r\n");
        assert_eq!(Command::Pass("s3cret").redacted(), "PASS <redacted>");
        assert!(Command::Pass("a\r\nDELE 1").encode().is_err());
    }
}
