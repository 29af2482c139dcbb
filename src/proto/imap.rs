//! The slice of IMAP a health probe needs (RFC 3501, RFC 9051): greeting, CAPABILITY (untagged and
//! as a `[CAPABILITY ...]` response code), EXISTS, tagged completion, and a safely quoted LOGIN.
//! Deliberately not a general IMAP parser: anything else untagged is kept as text and ignored.

use super::{MAX_LINE, ProtoError, line_text};

/// Completion and status conditions (RFC 3501 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Ok,
    No,
    Bad,
    PreAuth,
    Bye,
}

impl Cond {
    fn parse(word: &str) -> Option<Cond> {
        match word.to_ascii_uppercase().as_str() {
            "OK" => Some(Cond::Ok),
            "NO" => Some(Cond::No),
            "BAD" => Some(Cond::Bad),
            "PREAUTH" => Some(Cond::PreAuth),
            "BYE" => Some(Cond::Bye),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cond::Ok => "OK",
            Cond::No => "NO",
            Cond::Bad => "BAD",
            Cond::PreAuth => "PREAUTH",
            Cond::Bye => "BYE",
        }
    }
}

/// A bracketed response code such as `[CAPABILITY IMAP4rev1 ...]` or `[AUTHENTICATIONFAILED]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// Uppercased atom.
    pub name: String,
    pub args: String,
}

/// A status response: `* OK [code] text` or `tag NO [code] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResp {
    pub cond: Cond,
    pub code: Option<Code>,
    pub text: String,
}

impl StatusResp {
    /// Capabilities carried in a `[CAPABILITY ...]` code (RFC 3501 §7.1), if any.
    pub fn capabilities(&self) -> Option<Vec<String>> {
        let code = self.code.as_ref().filter(|c| c.name == "CAPABILITY")?;
        Some(
            code.args
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
        )
    }
}

/// "NO [AUTHENTICATIONFAILED] Authentication failed.", as an operator reads it.
impl std::fmt::Display for StatusResp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cond.name())?;
        if let Some(c) = &self.code {
            // Capability lists are long and say nothing about why something failed.
            if c.name == "CAPABILITY" || c.args.is_empty() {
                write!(f, " [{}]", c.name)?;
            } else {
                write!(f, " [{} {}]", c.name, c.args)?;
            }
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

/// One server response line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `+ text`: the server waits for the rest of a command (a literal).
    Continuation(String),
    /// `* CAPABILITY ...`
    Capability(Vec<String>),
    /// `* n EXISTS`
    Exists(u32),
    /// `* OK|NO|BAD|BYE|PREAUTH ...`
    Status(StatusResp),
    /// Any other untagged data; the probe does not need it.
    Other(String),
    Tagged {
        tag: String,
        resp: StatusResp,
    },
}

/// Parses one framed line (CRLF included). Literals must already be spliced out by the driver
/// (see [`literal_at_end`]).
pub fn parse_response(line: &[u8]) -> Result<Response, ProtoError> {
    let text = line_text(line)?;
    if let Some(rest) = text.strip_prefix('+') {
        return Ok(Response::Continuation(rest.trim_start().to_owned()));
    }
    let (head, rest) = text.split_once(' ').unwrap_or((text, ""));
    if head == "*" {
        return parse_untagged(rest, text);
    }
    if head.is_empty() || !head.bytes().all(is_tag_char) {
        return Err(ProtoError::malformed("not an IMAP response", text));
    }
    let resp = parse_status(rest, text)?;
    if matches!(resp.cond, Cond::PreAuth | Cond::Bye) {
        return Err(ProtoError::malformed(
            "tagged response must be OK, NO or BAD",
            text,
        ));
    }
    Ok(Response::Tagged {
        tag: head.to_owned(),
        resp,
    })
}

fn parse_untagged(rest: &str, text: &str) -> Result<Response, ProtoError> {
    let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
    if word.eq_ignore_ascii_case("CAPABILITY") {
        return Ok(Response::Capability(
            args.split_ascii_whitespace().map(str::to_owned).collect(),
        ));
    }
    if Cond::parse(word).is_some() {
        return parse_status(rest, text).map(Response::Status);
    }
    if let (Ok(n), Some(kind)) = (word.parse::<u32>(), args.split(' ').next())
        && kind.eq_ignore_ascii_case("EXISTS")
    {
        return Ok(Response::Exists(n));
    }
    if word.is_empty() {
        return Err(ProtoError::malformed("empty untagged response", text));
    }
    Ok(Response::Other(rest.to_owned()))
}

/// `cond SP [ "[" code "]" SP ] text` (RFC 3501 §7.1, `resp-cond-state`).
fn parse_status(rest: &str, text: &str) -> Result<StatusResp, ProtoError> {
    let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
    let Some(cond) = Cond::parse(word) else {
        return Err(ProtoError::malformed(
            "expected OK, NO, BAD, PREAUTH or BYE",
            text,
        ));
    };
    let (code, text_part) = match after.strip_prefix('[') {
        Some(inner) => {
            let Some((code, tail)) = inner.split_once(']') else {
                return Err(ProtoError::malformed("response code without ']'", text));
            };
            let (name, args) = code.split_once(' ').unwrap_or((code, ""));
            if name.is_empty() {
                return Err(ProtoError::malformed("empty response code", text));
            }
            let code = Code {
                name: name.to_ascii_uppercase(),
                args: args.to_owned(),
            };
            (Some(code), tail.trim_start())
        }
        None => (None, after),
    };
    Ok(StatusResp {
        cond,
        code,
        text: text_part.to_owned(),
    })
}

/// `tag` characters: ASTRING-CHAR except "+" (RFC 3501 §9).
fn is_tag_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b"(){%*\"\\+]".contains(&b)
}

/// The greeting (RFC 3501 §7.1): `* OK`, `* PREAUTH` or `* BYE`.
pub fn parse_greeting(line: &[u8]) -> Result<StatusResp, ProtoError> {
    match parse_response(line)? {
        Response::Status(s) if matches!(s.cond, Cond::Ok | Cond::PreAuth | Cond::Bye) => Ok(s),
        _ => Err(ProtoError::malformed(
            "not an IMAP greeting",
            &String::from_utf8_lossy(line),
        )),
    }
}

/// If a server line ends with a literal announcement `{n}` (or `{n+}`), its size: the next `n`
/// octets are data, not lines, and the response continues on the line after them.
pub fn literal_at_end(line: &[u8]) -> Option<usize> {
    let body = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let inner = body.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Capability names are case-insensitive atoms (RFC 3501 §7.2.1).
pub fn has_capability(caps: &[String], name: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(name))
}

/// Tags `p1`, `p2`, ... for one session.
#[derive(Debug, Default)]
pub struct Tags(u32);

impl Tags {
    pub fn next_tag(&mut self) -> String {
        self.0 += 1;
        format!("p{}", self.0)
    }
}

/// A simple command without arguments a user could influence: CAPABILITY, STARTTLS, LOGOUT, or
/// SELECT of a fixed mailbox name.
pub fn command(tag: &str, cmd: &str) -> Vec<u8> {
    format!("{tag} {cmd}\r\n").into_bytes()
}

/// A LOGIN command split where a synchronizing literal makes the client wait for a `+`
/// continuation (RFC 3501 §7.5): send `chunks[0]`, then each further chunk after a `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub chunks: Vec<Vec<u8>>,
}

/// Builds `tag LOGIN user password` with each argument as a quoted string when it can be one,
/// else as a literal. `non_sync` says the server announced LITERAL+ (RFC 7888), so literals need no
/// round trip. NUL cannot be sent in either form and is refused.
pub fn login(tag: &str, user: &str, password: &str, non_sync: bool) -> Result<Login, ProtoError> {
    let mut chunks = vec![format!("{tag} LOGIN ").into_bytes()];
    for (i, (what, value)) in [("user name", user), ("password", password)]
        .into_iter()
        .enumerate()
    {
        if value.contains('\0') {
            return Err(ProtoError::BadArgument(format!(
                "{what} contains NUL, which IMAP LOGIN cannot carry"
            )));
        }
        if value.len() > MAX_LINE {
            return Err(ProtoError::BadArgument(format!("{what} is too long")));
        }
        let last = chunks
            .last_mut()
            .ok_or(ProtoError::BadArgument("empty".into()))?;
        if i == 1 {
            last.push(b' ');
        }
        if value
            .bytes()
            .all(|b| b.is_ascii() && b != b'\r' && b != b'\n')
        {
            // quoted = DQUOTE *QUOTED-CHAR DQUOTE; only `"` and `\` need escaping.
            last.push(b'"');
            for b in value.bytes() {
                if b == b'"' || b == b'\\' {
                    last.push(b'\\');
                }
                last.push(b);
            }
            last.push(b'"');
        } else if non_sync {
            last.extend_from_slice(format!("{{{}+}}\r\n", value.len()).as_bytes());
            last.extend_from_slice(value.as_bytes());
        } else {
            last.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
            chunks.push(value.as_bytes().to_vec());
        }
    }
    chunks
        .last_mut()
        .ok_or(ProtoError::BadArgument("empty".into()))?
        .extend_from_slice(b"\r\n");
    Ok(Login { chunks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_with_capabilities() {
        let g = parse_greeting(
            b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Dovecot ready.\r\n",
        )
        .unwrap();
        assert_eq!(g.cond, Cond::Ok);
        assert_eq!(
            g.capabilities().unwrap(),
            ["IMAP4rev1", "STARTTLS", "LOGINDISABLED"]
        );
        assert_eq!(g.text, "Dovecot ready.");
        assert_eq!(
            parse_greeting(b"* PREAUTH hi\r\n").unwrap().cond,
            Cond::PreAuth
        );
        assert_eq!(parse_greeting(b"* BYE busy\r\n").unwrap().cond, Cond::Bye);
        assert!(parse_greeting(b"a1 OK hi\r\n").is_err());
        assert!(parse_greeting(b"* CAPABILITY IMAP4rev1\r\n").is_err());
        assert!(parse_greeting(b"+OK pop3 server\r\n").is_err());
    }

    #[test]
    fn responses() {
        assert_eq!(
            parse_response(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n").unwrap(),
            Response::Capability(vec!["IMAP4rev1".into(), "AUTH=PLAIN".into()])
        );
        assert_eq!(
            parse_response(b"* 17 EXISTS\r\n").unwrap(),
            Response::Exists(17)
        );
        assert_eq!(
            parse_response(b"* 0 RECENT\r\n").unwrap(),
            Response::Other("0 RECENT".into())
        );
        assert_eq!(
            parse_response(b"+ Ready for literal\r\n").unwrap(),
            Response::Continuation("Ready for literal".into())
        );
        let Response::Tagged { tag, resp } =
            parse_response(b"p2 no [AUTHENTICATIONFAILED] Authentication failed.\r\n").unwrap()
        else {
            panic!("not tagged");
        };
        assert_eq!(tag, "p2");
        assert_eq!(resp.cond, Cond::No);
        assert_eq!(
            resp.to_string(),
            "NO [AUTHENTICATIONFAILED] Authentication failed."
        );
    }

    #[test]
    fn hostile_responses_fail() {
        let bad: &[&[u8]] = &[
            b"\r\n",
            b"p1 MAYBE later\r\n",
            b"p1 PREAUTH x\r\n",
            b"* OK [CAPABILITY IMAP4rev1 no bracket\r\n",
            b"* OK []\r\n",
            b"(weird) OK\r\n",
            b"* OK no crlf",
            b"* OK \0\r\n",
            b"* OK \xe9t\xe9\r\n",
            b"* \r\n",
        ];
        for line in bad {
            assert!(
                parse_response(line).is_err(),
                "{}",
                super::super::escape(line)
            );
        }
    }

    #[test]
    fn literal_detection() {
        assert_eq!(literal_at_end(b"* 1 FETCH (BODY[] {42}\r\n"), Some(42));
        assert_eq!(literal_at_end(b"* X {7+}\r\n"), Some(7));
        assert_eq!(literal_at_end(b"* OK {}\r\n"), None);
        assert_eq!(literal_at_end(b"* OK {x}\r\n"), None);
        assert_eq!(literal_at_end(b"* OK {99999999999}\r\n"), None);
        assert_eq!(literal_at_end(b"* OK done\r\n"), None);
    }

    #[test]
    fn login_quotes_specials() {
        let l = login("p3", "probe", r#"pa"ss\word"#, false).unwrap();
        let expected = br#"p3 LOGIN "probe" "pa\"ss\\word""#;
        assert_eq!(l.chunks, vec![[expected.as_slice(), b"\r\n"].concat()]);
    }

    #[test]
    fn login_uses_literal_for_crlf_and_non_ascii() {
        let l = login("p3", "probe", "p\u{e4}ss", false).unwrap();
        assert_eq!(
            l.chunks,
            vec![
                b"p3 LOGIN \"probe\" {5}\r\n".to_vec(),
                b"p\xc3\xa4ss\r\n".to_vec()
            ]
        );
        let l = login("p3", "probe", "a\r\nb", true).unwrap();
        assert_eq!(
            l.chunks,
            vec![b"p3 LOGIN \"probe\" {4+}\r\na\r\nb\r\n".to_vec()]
        );
        assert!(login("p3", "probe", "a\0b", false).is_err());
    }

    #[test]
    fn capability_lookup_ignores_case() {
        let caps = vec!["imap4rev1".to_owned(), "STARTTLS".to_owned()];
        assert!(has_capability(&caps, "IMAP4rev1"));
        assert!(!has_capability(&caps, "IMAP4rev2"));
    }
}
