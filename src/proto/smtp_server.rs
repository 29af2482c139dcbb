//! SMTP server-side commands (RFC 5321 §4.1): one received line in, one typed command out.
//! Parsing is strict where laxness would let a hostile client smuggle something (paths must
//! be bracketed, no CR/NUL inside a line, unknown MAIL/RCPT parameters refused with 555, RFC
//! 5321 §4.1.1.11) and lenient where real clients differ harmlessly (`MAIL FROM: <a@b>` with a
//! space after the colon, lowercase verbs).

use std::fmt;

/// Longest command line accepted, CRLF included. RFC 5321 §4.5.3.1.4 says 512; extensions
/// (SIZE, BODY) lengthen MAIL, and Postfix accepts 2048 (`line_length_limit`). Ours is the same.
pub const MAX_COMMAND_LINE: usize = 2048;

/// The body type a client declared with MAIL FROM BODY= (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

/// A command as the client sent it. Paths are the text between `<` and `>`, unchanged: the
/// policy, not the parser, decides what an address may look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: String,
        size: Option<u64>,
        body: Option<Body>,
    },
    Rcpt {
        to: String,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    /// ETRN (RFC 1985): the argument names a domain (or `@domain`, `#queue`).
    Etrn(String),
    /// A command we know and do not offer (AUTH, BDAT, TURN, ...): 502.
    NotImplemented(String),
}

/// Why a line is not a command we accept; each maps to one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// 500 5.5.2: unrecognized verb.
    Unknown(String),
    /// 501 5.5.4 (or 5.5.2): bad arguments.
    Syntax(&'static str),
    /// 555 5.5.4: a MAIL/RCPT parameter we do not support (RFC 5321 §4.1.1.11).
    Parameter(String),
    /// 500 5.5.2: bytes that have no place in a command line.
    Binary,
}

impl CommandError {
    /// The reply code and enhanced status code (RFC 3463) for this error.
    pub fn reply(&self) -> (u16, &'static str, String) {
        match self {
            CommandError::Unknown(v) => (500, "5.5.2", format!("command not recognized: {v}")),
            CommandError::Syntax(why) => (501, "5.5.4", format!("syntax error: {why}")),
            CommandError::Parameter(p) => (555, "5.5.4", format!("unsupported parameter {p}")),
            CommandError::Binary => (500, "5.5.2", "unexpected bytes in command".into()),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, dsn, text) = self.reply();
        write!(f, "{code} {dsn} {text}")
    }
}

/// Parses one command line (terminator included or not).
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(CommandError::Binary);
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(CommandError::Binary);
    };
    let (verb, rest) = match text.find(' ') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let arg = rest.trim();
    let no_arg = |cmd: Command| {
        if arg.is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::Syntax("this command takes no argument"))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => domain_arg(arg).map(Command::Ehlo),
        "HELO" => domain_arg(arg).map(Command::Helo),
        "MAIL" => mail(rest),
        "RCPT" => rcpt(rest),
        "DATA" => no_arg(Command::Data),
        "RSET" => no_arg(Command::Rset),
        "QUIT" => no_arg(Command::Quit),
        "STARTTLS" => no_arg(Command::StartTls),
        // §4.1.1.9: NOOP may carry a string, which is ignored.
        "NOOP" => Ok(Command::Noop),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "HELP" => Ok(Command::Help),
        "ETRN" if arg.is_empty() => Err(CommandError::Syntax("ETRN needs a domain")),
        "ETRN" => Ok(Command::Etrn(arg.to_string())),
        v @ ("AUTH" | "BDAT" | "TURN" | "ATRN" | "SEND" | "SOML" | "SAML" | "LHLO") => {
            Ok(Command::NotImplemented(v.to_string()))
        }
        _ => Err(CommandError::Unknown(printable(verb))),
    }
}

fn domain_arg(arg: &str) -> Result<String, CommandError> {
    // The greeting name is only recorded (Received), never trusted; it just has to be one token.
    match arg.split_whitespace().next() {
        Some(name) if name.len() <= 255 => Ok(name.to_string()),
        Some(_) => Err(CommandError::Syntax("name too long")),
        None => Err(CommandError::Syntax(
            "a domain name or address literal is required",
        )),
    }
}

fn mail(rest: &str) -> Result<Command, CommandError> {
    let Some(after) = strip_prefix_ci(rest, "FROM:") else {
        return Err(CommandError::Syntax("expected MAIL FROM:<address>"));
    };
    let (from, params) = path(after)?;
    let (mut size, mut body) = (None, None);
    for p in params.split_whitespace() {
        let (key, value) = p.split_once('=').unwrap_or((p, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" if size.is_none() => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CommandError::Syntax("SIZE needs a number"));
                }
                // A size too large for 64 bits is simply too large: the session answers
                // 552 5.3.4 as for any size over the limit (Postfix does the same), not 501.
                size = Some(value.parse::<u64>().unwrap_or(u64::MAX));
            }
            "BODY" if body.is_none() => {
                body = Some(match value.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    _ => return Err(CommandError::Parameter(printable(p))),
                });
            }
            _ => return Err(CommandError::Parameter(printable(p))),
        }
    }
    Ok(Command::Mail { from, size, body })
}

fn rcpt(rest: &str) -> Result<Command, CommandError> {
    let Some(after) = strip_prefix_ci(rest, "TO:") else {
        return Err(CommandError::Syntax("expected RCPT TO:<address>"));
    };
    let (to, params) = path(after)?;
    if let Some(p) = params.split_whitespace().next() {
        return Err(CommandError::Parameter(printable(p)));
    }
    if to.is_empty() {
        return Err(CommandError::Syntax("the recipient may not be empty"));
    }
    Ok(Command::Rcpt { to })
}

/// `<path> params` → (path without brackets, params). A quoted local part may hold `>`.
fn path(s: &str) -> Result<(String, &str), CommandError> {
    // Clients commonly put one space after the colon; Postfix and sendmail accept it.
    let s = s.strip_prefix(' ').unwrap_or(s);
    let Some(inner) = s.strip_prefix('<') else {
        return Err(CommandError::Syntax("the address must be enclosed in <>"));
    };
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let rest = &inner[i + 1..];
                if !rest.is_empty() && !rest.starts_with(' ') {
                    return Err(CommandError::Syntax("junk after the address"));
                }
                let addr = &inner[..i];
                if addr.len() > 256 {
                    return Err(CommandError::Syntax("address too long"));
                }
                return Ok((addr.to_string(), rest.trim()));
            }
            _ => {}
        }
    }
    Err(CommandError::Syntax("the address must be enclosed in <>"))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A client-supplied token fit for a reply or a log: printable ASCII, bounded.
fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_arguments() {
        assert_eq!(
            parse(b"ehlo client.example\r\n"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            parse(b"HELO [192.0.2.1]\r\n"),
            Ok(Command::Helo("[192.0.2.1]".into()))
        );
        assert_eq!(parse(b"DATA\r\n"), Ok(Command::Data));
        assert_eq!(parse(b"NOOP anything\r\n"), Ok(Command::Noop));
        assert_eq!(parse(b"QUIT"), Ok(Command::Quit));
        assert_eq!(
            parse(b"ETRN example.org\r\n"),
            Ok(Command::Etrn("example.org".into()))
        );
        assert_eq!(
            parse(b"AUTH PLAIN x\r\n"),
            Ok(Command::NotImplemented("AUTH".into()))
        );
        assert!(matches!(parse(b"EHLO\r\n"), Err(CommandError::Syntax(_))));
        assert!(matches!(
            parse(b"DATA now\r\n"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.0\r\n"),
            Err(CommandError::Unknown(_))
        ));
    }

    #[test]
    fn mail_and_rcpt() {
        assert_eq!(
            parse(b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME\r\n"),
            Ok(Command::Mail {
                from: "a@b.example".into(),
                size: Some(1000),
                body: Some(Body::EightBitMime)
            })
        );
        assert_eq!(
            parse(b"mail from: <>\r\n"),
            Ok(Command::Mail {
                from: String::new(),
                size: None,
                body: None
            })
        );
        assert_eq!(
            parse(b"RCPT TO:<\"a>b\"@c.example>\r\n"),
            Ok(Command::Rcpt {
                to: "\"a>b\"@c.example".into()
            })
        );
        assert_eq!(
            parse(b"RCPT TO:<@relay.example:u@c.example>\r\n"),
            Ok(Command::Rcpt {
                to: "@relay.example:u@c.example".into()
            })
        );
        assert!(matches!(
            parse(b"MAIL FROM:a@b\r\n"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"MAIL FROM:<a@b\r\n"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"MAIL FROM:<a@b>x\r\n"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"MAIL FROM:<a@b> SIZE=x\r\n"),
            Err(CommandError::Syntax(_))
        ));
        assert_eq!(
            parse(b"MAIL FROM:<a@b> SIZE=99999999999999999999\r\n"),
            Ok(Command::Mail {
                from: "a@b".into(),
                size: Some(u64::MAX),
                body: None
            })
        );
        for bad in ["SIZE=", "SIZE=-1", "SIZE=+5", "SIZE=1e9", "SIZE=12 SIZE=13"] {
            let line = format!("MAIL FROM:<a@b> {bad}\r\n");
            assert!(parse(line.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            parse(b"MAIL FROM:<\"john smith\"@x.example>\r\n"),
            Ok(Command::Mail {
                from: "\"john smith\"@x.example".into(),
                size: None,
                body: None
            })
        );
        assert_eq!(
            parse(b"RCPT TO:<Postmaster>\r\n"),
            Ok(Command::Rcpt {
                to: "Postmaster".into()
            })
        );
        assert!(matches!(
            parse(b"MAIL FROM:<a@b> RET=FULL\r\n"),
            Err(CommandError::Parameter(_))
        ));
        assert!(matches!(
            parse(b"RCPT TO:<a@b> NOTIFY=NEVER\r\n"),
            Err(CommandError::Parameter(_))
        ));
        assert!(matches!(
            parse(b"RCPT TO:<>\r\n"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse(b"RCPT <a@b>\r\n"),
            Err(CommandError::Syntax(_))
        ));
    }

    #[test]
    fn hostile_bytes() {
        assert_eq!(parse(b"MAIL FROM:<a\0@b>\r\n"), Err(CommandError::Binary));
        assert_eq!(parse(b"RCPT TO:<a@b>\rDATA\r\n"), Err(CommandError::Binary));
        assert_eq!(parse(b"\xff\xfe\r\n"), Err(CommandError::Binary));
        let long = format!("RCPT TO:<{}@b>\r\n", "a".repeat(300));
        assert!(matches!(
            parse(long.as_bytes()),
            Err(CommandError::Syntax(_))
        ));
        let (code, _, text) = parse(b"X\x01Y\r\n").unwrap_err().reply();
        assert_eq!(code, 500);
        assert!(!text.contains('\x01'));
    }
}
