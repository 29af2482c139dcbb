//! SMTP client-side wire format: replies (RFC 5321 §4.2), EHLO keywords (RFC 5321 §4.1.1.1),
//! enhanced status codes (RFC 3463), and the commands the probe and the delivery client send:
//! AUTH (RFC 4954), the mail transaction with SIZE (RFC 1870) and BODY=8BITMIME (RFC 6152),
//! and LHLO for LMTP (RFC 2033 §4.1).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{MAX_REPLY_LINES, ProtoError, check_arg, escape, line_text};

/// A complete SMTP reply: one code and its text lines (without the code prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// RFC 3463 enhanced status code from the first line, e.g. "5.7.8", when the server uses them.
    pub enhanced: Option<String>,
    pub lines: Vec<String>,
}

impl Reply {
    /// First digit of the code: 2 success, 3 intermediate, 4 transient, 5 permanent (§4.2.1).
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// The first text line, for one-line reports.
    pub fn first_line(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }
}

/// "535 5.7.8 authentication failed": code and first line, as an operator reads it in a log.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.first_line();
        if text.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, text)
        }
    }
}

/// Accumulates reply lines until the last one (`250 ...` after any `250-...`).
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Feeds one framed line (CRLF included). Returns the reply once its last line arrived.
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Reply>, ProtoError> {
        let text = line_text(line)?;
        let (code, last, rest) = split_reply_line(text)?;
        if let Some(first) = self.code {
            // §4.2.1: all lines of a multiline reply carry the same code.
            if first != code {
                return Err(ProtoError::malformed(
                    format!("reply code changed from {first} to {code} inside one reply"),
                    text,
                ));
            }
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ProtoError::TooManyLines {
                limit: MAX_REPLY_LINES,
            });
        }
        self.code = Some(code);
        self.lines.push(rest.to_owned());
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        let enhanced = lines.first().and_then(|l| enhanced_code(l, code));
        Ok(Some(Reply {
            code,
            enhanced,
            lines,
        }))
    }
}

/// Splits `250-text` / `250 text` / `250` into (code, is_last, text), per the §4.2 grammar.
fn split_reply_line(text: &str) -> Result<(u16, bool, &str), ProtoError> {
    let bytes = text.as_bytes();
    let digits = bytes.get(..3).filter(|d| {
        // §4.2: first digit 2-5, second 0-5, third 0-9.
        matches!(d[0], b'2'..=b'5') && matches!(d[1], b'0'..=b'5') && d[2].is_ascii_digit()
    });
    let Some(d) = digits else {
        return Err(ProtoError::malformed("not an SMTP reply code", text));
    };
    let code = d.iter().fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match bytes.get(3) {
        None => Ok((code, true, "")),
        Some(b' ') => Ok((code, true, &text[4..])),
        Some(b'-') => Ok((code, false, &text[4..])),
        Some(_) => Err(ProtoError::malformed(
            "reply code not followed by space or hyphen",
            text,
        )),
    }
}

/// RFC 3463 §2: `class.subject.detail`, class matching the reply's first digit (2, 4 or 5).
fn enhanced_code(first_line: &str, code: u16) -> Option<String> {
    let token = first_line.split(' ').next()?;
    let mut parts = token.split('.');
    let class = parts.next()?;
    let ok_num = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    let valid = class.len() == 1
        && class == (code / 100).to_string()
        && matches!(class, "2" | "4" | "5")
        && parts.next().is_some_and(|s| ok_num(s, 3))
        && parts.next().is_some_and(|s| ok_num(s, 3))
        && parts.next().is_none();
    valid.then(|| token.to_owned())
}

/// One EHLO keyword with its parameters, e.g. `SIZE 10240000` or `AUTH PLAIN LOGIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    /// Uppercased: keywords are case-insensitive (§4.1.1.1).
    pub name: String,
    pub params: Vec<String>,
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for p in &self.params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// What a 250 EHLO reply announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ehlo {
    /// The server's name from the first line (informational only; never used for verdicts).
    pub domain: String,
    pub keywords: Vec<Keyword>,
}

impl Ehlo {
    /// Reads the keywords of a 250 reply; lines that are not `ehlo-keyword *(SP ehlo-param)`
    /// (such as the obsolete `AUTH=PLAIN`) are skipped rather than failing the probe.
    pub fn from_reply(reply: &Reply) -> Result<Ehlo, ProtoError> {
        if reply.code != 250 {
            return Err(ProtoError::Malformed(format!(
                "EHLO answered {reply}, not 250"
            )));
        }
        let domain = reply
            .first_line()
            .split(' ')
            .next()
            .unwrap_or("")
            .to_owned();
        let keywords = reply.lines[1..]
            .iter()
            .filter_map(|line| {
                let mut words = line.split_ascii_whitespace();
                let name = words.next()?;
                let valid = name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                valid.then(|| Keyword {
                    name: name.to_ascii_uppercase(),
                    params: words.map(str::to_owned).collect(),
                })
            })
            .collect();
        Ok(Ehlo { domain, keywords })
    }

    pub fn get(&self, name: &str) -> Option<&Keyword> {
        self.keywords
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(name))
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// SASL mechanisms from the AUTH keyword, uppercased (RFC 4954 §3).
    pub fn auth_mechanisms(&self) -> Vec<String> {
        self.get("AUTH")
            .map(|k| k.params.iter().map(|p| p.to_ascii_uppercase()).collect())
            .unwrap_or_default()
    }
}

/// Checks a reverse-path or forward-path before it goes between angle brackets: CR, LF or NUL
/// would inject a command, and a bracket would end the path early (RFC 5321 §4.1.2).
fn check_path<'a>(what: &str, path: &'a str) -> Result<&'a str, ProtoError> {
    check_arg(what, path)?;
    if path.contains(['<', '>']) {
        return Err(ProtoError::BadArgument(format!(
            "{what} {} contains an angle bracket and cannot be sent",
            escape(path.as_bytes())
        )));
    }
    Ok(path)
}

/// A command the probe or the delivery client sends. Renders itself to bytes, and to a redacted
/// form for logs.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    Ehlo(&'a str),
    Helo(&'a str),
    /// LMTP's EHLO (RFC 2033 §4.1).
    Lhlo(&'a str),
    StartTls,
    /// AUTH PLAIN with the initial response (RFC 4954 §4, RFC 4616 §2): authzid empty.
    AuthPlain {
        user: &'a str,
        password: &'a str,
    },
    AuthLogin,
    /// A base64 answer to a 334 challenge (the LOGIN user name or password).
    AuthResponse(&'a str),
    /// `MAIL FROM:<path>`; an empty path is the null sender of bounces (RFC 5321 §4.5.5).
    MailFrom {
        from: &'a str,
        /// RFC 1870 `SIZE=`, sent only when the server announced SIZE.
        size: Option<usize>,
        /// RFC 6152 `BODY=8BITMIME`, sent only when the server announced 8BITMIME.
        eight_bit: bool,
    },
    RcptTo(&'a str),
    Data,
    Rset,
    Quit,
}

impl Command<'_> {
    /// The bytes to write, CRLF included. Fails when an argument would break the command line.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let line = match *self {
            Command::Ehlo(d) => format!("EHLO {}", check_arg("EHLO name", d)?),
            Command::Helo(d) => format!("HELO {}", check_arg("HELO name", d)?),
            Command::Lhlo(d) => format!("LHLO {}", check_arg("LHLO name", d)?),
            Command::StartTls => "STARTTLS".to_owned(),
            Command::AuthPlain { user, password } => {
                format!("AUTH PLAIN {}", super::sasl::plain("", user, password)?)
            }
            Command::AuthLogin => "AUTH LOGIN".to_owned(),
            Command::AuthResponse(s) => B64.encode(s),
            Command::MailFrom {
                from,
                size,
                eight_bit,
            } => {
                let mut line = format!("MAIL FROM:<{}>", check_path("sender", from)?);
                if let Some(size) = size {
                    line.push_str(&format!(" SIZE={size}"));
                }
                if eight_bit {
                    line.push_str(" BODY=8BITMIME");
                }
                line
            }
            Command::RcptTo(to) => format!("RCPT TO:<{}>", check_path("recipient", to)?),
            Command::Data => "DATA".to_owned(),
            Command::Rset => "RSET".to_owned(),
            Command::Quit => "QUIT".to_owned(),
        };
        Ok(format!("{line}\r\n").into_bytes())
    }

    /// What logs may show: credentials replaced.
    pub fn redacted(&self) -> String {
        match *self {
            Command::Ehlo(d) => format!("EHLO {}", escape(d.as_bytes())),
            Command::Helo(d) => format!("HELO {}", escape(d.as_bytes())),
            Command::Lhlo(d) => format!("LHLO {}", escape(d.as_bytes())),
            Command::StartTls => "STARTTLS".into(),
            Command::AuthPlain { .. } => "AUTH PLAIN <redacted>".into(),
            Command::AuthLogin => "AUTH LOGIN".into(),
            Command::AuthResponse(_) => "<redacted>".into(),
            Command::MailFrom { .. } | Command::RcptTo(_) => match self.encode() {
                Ok(bytes) => escape(bytes.strip_suffix(b"\r\n").unwrap_or(&bytes)),
                Err(_) => "<unsendable address>".into(),
            },
            Command::Data => "DATA".into(),
            Command::Rset => "RSET".into(),
            Command::Quit => "QUIT".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[&[u8]]) -> Result<Option<Reply>, ProtoError> {
        let mut p = ReplyParser::new();
        let mut out = None;
        for line in input {
            out = p.feed(line)?;
        }
        Ok(out)
    }

    #[test]
    fn single_line_reply() {
        let r = parse_all(&[b"220 mx.example ESMTP ready\r\n"])
            .unwrap()
            .unwrap();
        assert_eq!(r.code, 220);
        assert_eq!(r.lines, ["mx.example ESMTP ready"]);
        assert_eq!(r.to_string(), "220 mx.example ESMTP ready");
    }

    #[test]
    fn multiline_reply_and_ehlo_keywords() {
        let mut p = ReplyParser::new();
        assert_eq!(p.feed(b"250-mx.example Hello\r\n").unwrap(), None);
        assert_eq!(p.feed(b"250-size 10240000\r\n").unwrap(), None);
        assert_eq!(p.feed(b"250-AUTH PLAIN login\r\n").unwrap(), None);
        assert_eq!(p.feed(b"250-AUTH=PLAIN LOGIN\r\n").unwrap(), None);
        assert_eq!(p.feed(b"250-STARTTLS\r\n").unwrap(), None);
        let r = p.feed(b"250 8BITMIME\r\n").unwrap().unwrap();
        let e = Ehlo::from_reply(&r).unwrap();
        assert_eq!(e.domain, "mx.example");
        let names: Vec<_> = e.keywords.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            names,
            ["SIZE 10240000", "AUTH PLAIN login", "STARTTLS", "8BITMIME"]
        );
        assert_eq!(e.auth_mechanisms(), ["PLAIN", "LOGIN"]);
        assert!(e.has("starttls"));
        assert!(!e.has("PIPELINING"));
    }

    #[test]
    fn bare_code_is_a_last_line() {
        let r = parse_all(&[b"250-x\r\n", b"250\r\n"]).unwrap().unwrap();
        assert_eq!(r.lines, ["x", ""]);
    }

    #[test]
    fn enhanced_status_codes() {
        let r = parse_all(&[b"535 5.7.8 Authentication credentials invalid\r\n"])
            .unwrap()
            .unwrap();
        assert_eq!(r.enhanced.as_deref(), Some("5.7.8"));
        let r = parse_all(&[b"250 2.0.0 Ok\r\n"]).unwrap().unwrap();
        assert_eq!(r.enhanced.as_deref(), Some("2.0.0"));
        // Class must match the reply code; a version number is not a status code.
        let r = parse_all(&[b"250 5.7.8 odd\r\n"]).unwrap().unwrap();
        assert_eq!(r.enhanced, None);
        let r = parse_all(&[b"220 2.1 ready\r\n"]).unwrap().unwrap();
        assert_eq!(r.enhanced, None);
    }

    #[test]
    fn inconsistent_multiline_codes_fail() {
        let err = parse_all(&[b"250-a\r\n", b"251 b\r\n"]).unwrap_err();
        assert!(err.to_string().contains("changed from 250 to 251"), "{err}");
    }

    #[test]
    fn hostile_lines_fail_without_panic() {
        let bad: &[&[u8]] = &[
            b"abc hello\r\n",
            b"25\r\n",
            b"\r\n",
            b"2x0 hi\r\n",
            b"650 out of range\r\n",
            b"290 out of range\r\n",
            b"250_underscore\r\n",
            b"250 no crlf",
            b"250 nul\0byte\r\n",
            b"250 \xc3\x28 bad utf8\r\n",
            b"\xff\xff\xff\r\n",
        ];
        for line in bad {
            assert!(ReplyParser::new().feed(line).is_err(), "{}", escape(line));
        }
        let long = [b"250 ".as_slice(), &vec![b'x'; 5000], b"\r\n"].concat();
        assert!(matches!(
            ReplyParser::new().feed(&long),
            Err(ProtoError::LineTooLong { .. })
        ));
    }

    #[test]
    fn endless_multiline_reply_is_bounded() {
        let mut p = ReplyParser::new();
        let mut result = Ok(None);
        for _ in 0..=MAX_REPLY_LINES {
            result = p.feed(b"250-more\r\n");
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(ProtoError::TooManyLines { .. })));
    }

    #[test]
    fn ehlo_needs_250() {
        let r = parse_all(&[b"502 5.5.2 no\r\n"]).unwrap().unwrap();
        assert!(Ehlo::from_reply(&r).is_err());
    }

    #[test]
    fn commands_encode_and_redact() {
        let c = Command::AuthPlain {
            user: "probe",
            password: "s3cret",
        };
        // base64("\0probe\0s3cret")
        assert_eq!(c.encode().unwrap(), b"AUTH PLAIN AHByb2JlAHMzY3JldA==\r\n");
        assert!(!c.redacted().contains("AHByb2Jl"));
        assert_eq!(
            Command::AuthResponse("probe").encode().unwrap(),
            b"cHJvYmU=\r\n"
        );
        assert_eq!(Command::AuthResponse("x").redacted(), "<redacted>");
        assert_eq!(
            Command::Ehlo("probe.example").encode().unwrap(),
            b"EHLO probe.example\r\n"
        );
        assert!(Command::Ehlo("a\r\nRSET").encode().is_err());
        let nul = Command::AuthPlain {
            user: "a\0b",
            password: "x",
        };
        assert!(nul.encode().is_err());
    }

    #[test]
    fn transaction_commands() {
        let mail = |from, size, eight_bit| Command::MailFrom {
            from,
            size,
            eight_bit,
        };
        assert_eq!(mail("", None, false).encode().unwrap(), b"MAIL FROM:<>\r\n");
        assert_eq!(
            mail("a@example.org", Some(1234), true).encode().unwrap(),
            b"MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME\r\n"
        );
        assert_eq!(
            mail("a@example.org", Some(9), false).redacted(),
            "MAIL FROM:<a@example.org> SIZE=9"
        );
        assert_eq!(
            Command::RcptTo("\"x y\"@example.org").encode().unwrap(),
            b"RCPT TO:<\"x y\"@example.org>\r\n"
        );
        assert_eq!(Command::Lhlo("relay").encode().unwrap(), b"LHLO relay\r\n");
        assert_eq!(Command::Data.encode().unwrap(), b"DATA\r\n");
        assert_eq!(Command::Rset.encode().unwrap(), b"RSET\r\n");
        for hostile in ["a>\r\nRCPT TO:<b", "a\nb", "a>b", "<a", "a\0"] {
            assert!(Command::RcptTo(hostile).encode().is_err(), "{hostile:?}");
            assert!(mail(hostile, None, false).encode().is_err(), "{hostile:?}");
        }
        assert_eq!(Command::RcptTo("a>b").redacted(), "<unsendable address>");
    }
}
