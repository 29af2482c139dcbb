//! IMAP commands rendered to bytes (RFC 3501 §6, §9): arguments quoted or sent as literals,
//! literals split where a synchronizing literal makes the client wait for `+` (§7.5), or inline
//! with LITERAL+ / LITERAL- (RFC 7888). Plus the argument checks that keep a hostile or odd
//! value (a folder name with CRLF, a flag with a space) from becoming a second command.

use std::borrow::Cow;

use super::imap::has_capability;
use super::{ProtoError, check_arg};

/// What ends an IDLE (RFC 2177 §3): a line of its own, untagged; the IDLE's tagged completion
/// follows.
pub const IDLE_DONE: &[u8] = b"DONE\r\n";

/// How literals may be sent on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralMode {
    /// `{n}`: wait for the server's `+` before the data.
    Sync,
    /// LITERAL+ (RFC 7888 §3): `{n+}` and the data at once.
    Plus,
    /// LITERAL- (RFC 7888 §4): non-synchronizing only up to 4096 octets.
    Minus,
}

impl LiteralMode {
    /// The best mode the server announced.
    pub fn from_capabilities(caps: &[String]) -> LiteralMode {
        if has_capability(caps, "LITERAL+") {
            LiteralMode::Plus
        } else if has_capability(caps, "LITERAL-") {
            LiteralMode::Minus
        } else {
            LiteralMode::Sync
        }
    }

    fn non_sync(self, len: usize) -> bool {
        match self {
            LiteralMode::Sync => false,
            LiteralMode::Plus => true,
            LiteralMode::Minus => len <= 4096,
        }
    }
}

/// A piece of a command: sent after the server's `+` when `wait` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// Wait for `+` first: the previous part announced a synchronizing literal.
    pub wait: bool,
    /// Command text, or literal data borrowed from the caller.
    pub bytes: Cow<'a, [u8]>,
}

/// A rendered command. `shown` is the log form: literal data and passwords left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The tag its completion will carry.
    pub tag: String,
    /// What to send, in order.
    pub parts: Vec<Part<'a>>,
    /// The command for logs.
    pub shown: String,
}

impl<'a> Command<'a> {
    /// `tag verb`, to which arguments are added.
    pub fn build(tag: &str, verb: &str, mode: LiteralMode) -> Builder<'a> {
        let text = format!("{tag} {verb}");
        Builder {
            cmd: Command {
                tag: tag.to_owned(),
                parts: vec![Part {
                    wait: false,
                    bytes: Cow::Owned(text.clone().into_bytes()),
                }],
                shown: text,
            },
            mode,
        }
    }

    /// A LOGIN from [`super::imap::login`], whose chunks after the first follow a `+`.
    pub fn from_login(tag: &str, login: super::imap::Login, shown: String) -> Command<'static> {
        let parts = login.chunks.into_iter().enumerate();
        Command {
            tag: tag.to_owned(),
            parts: parts
                .map(|(i, bytes)| Part {
                    wait: i > 0,
                    bytes: Cow::Owned(bytes),
                })
                .collect(),
            shown,
        }
    }
}

impl Command<'static> {
    /// `AUTHENTICATE PLAIN` (RFC 3501 §6.2.2) with the base64 `response` from
    /// [`super::sasl::plain`]: on the command line with SASL-IR (RFC 4959 §3), else as the
    /// answer to the server's empty `+` challenge. The log shows neither.
    pub fn authenticate_plain(tag: &str, response: &str, sasl_ir: bool) -> Command<'static> {
        let head = format!("{tag} AUTHENTICATE PLAIN");
        let line = |text: String| Cow::Owned(format!("{text}\r\n").into_bytes());
        let parts = if sasl_ir {
            vec![Part {
                wait: false,
                bytes: line(format!("{head} {response}")),
            }]
        } else {
            vec![
                Part {
                    wait: false,
                    bytes: line(head.clone()),
                },
                Part {
                    wait: true,
                    bytes: line(response.to_owned()),
                },
            ]
        };
        Command {
            tag: tag.to_owned(),
            parts,
            shown: format!("{head} <redacted>"),
        }
    }
}

/// Adds arguments to a command; each starts with a space.
pub struct Builder<'a> {
    cmd: Command<'a>,
    mode: LiteralMode,
}

impl<'a> Builder<'a> {
    /// Text already known to be safe: numbers, UID sets, atoms, checked criteria.
    pub fn raw(mut self, text: &str) -> Builder<'a> {
        self.push(format!(" {text}").as_bytes());
        self.cmd.shown.push(' ');
        self.cmd.shown.push_str(text);
        self
    }

    /// An `astring` (RFC 3501 §9): quoted when it is printable ASCII, else a literal.
    pub fn astring(self, value: &'a str) -> Builder<'a> {
        if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            let quoted = quote(value);
            self.raw(&quoted)
        } else {
            self.literal(value.as_bytes())
        }
    }

    /// A literal; the data is borrowed, not copied, so a message is never held twice.
    pub fn literal(mut self, data: &'a [u8]) -> Builder<'a> {
        let non_sync = self.mode.non_sync(data.len());
        let head = format!(" {{{}{}}}\r\n", data.len(), if non_sync { "+" } else { "" });
        self.push(head.as_bytes());
        self.cmd.shown.push_str(head.trim_end());
        self.cmd
            .shown
            .push_str(&format!(" <{} octets>", data.len()));
        self.cmd.parts.push(Part {
            wait: !non_sync,
            bytes: Cow::Borrowed(data),
        });
        self
    }

    /// Ends the command with CRLF.
    pub fn finish(mut self) -> Command<'a> {
        self.push(b"\r\n");
        self.cmd
    }

    fn push(&mut self, bytes: &[u8]) {
        match self.cmd.parts.last_mut() {
            Some(Part {
                bytes: Cow::Owned(v),
                ..
            }) => v.extend_from_slice(bytes),
            _ => self.cmd.parts.push(Part {
                wait: false,
                bytes: Cow::Owned(bytes.to_vec()),
            }),
        }
    }
}

/// `"..."` with `"` and `\` escaped (RFC 3501 §9 `quoted`).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A UID set for commands (RFC 3501 §9 `sequence-set`): sorted, duplicates and 0 dropped,
/// runs compressed (`1:5,9`). `None` when nothing is left.
pub fn uid_set(uids: &[u32]) -> Option<String> {
    let mut sorted: Vec<u32> = uids.iter().copied().filter(|&u| u != 0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if sorted[i] == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{}", sorted[i]));
        }
        i += 1;
    }
    (!out.is_empty()).then_some(out)
}

/// An APPEND flag list `(\Seen $Important)`. `\Recent` is left out: servers refuse to set it
/// (RFC 3501 §2.3.2). Anything that is not `\atom` or `atom` is refused.
pub fn flag_list(flags: &[String]) -> Result<String, ProtoError> {
    let mut kept = Vec::new();
    for flag in flags {
        let atom = flag.strip_prefix('\\').unwrap_or(flag);
        let valid = !atom.is_empty()
            && atom
                .bytes()
                .all(|b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b));
        if !valid {
            return Err(ProtoError::BadArgument(format!(
                "flag {flag:?} is not an IMAP atom"
            )));
        }
        if !flag.eq_ignore_ascii_case("\\Recent") {
            kept.push(flag.as_str());
        }
    }
    Ok(format!("({})", kept.join(" ")))
}

/// Checks an INTERNALDATE for APPEND: `dd-Mon-yyyy hh:mm:ss +zzzz`, the day possibly
/// space-padded (RFC 3501 §9 `date-time`). A wrong one would make the server refuse the APPEND
/// with BAD, which is better caught before the message is sent.
pub fn check_date_time(date: &str) -> Result<&str, ProtoError> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = date.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let ok = b.len() == 26
        && (b[0] == b' ' || b[0].is_ascii_digit())
        && b[1].is_ascii_digit()
        && b[2] == b'-'
        && MONTHS.iter().any(|m| date.get(3..6) == Some(*m))
        && b[6] == b'-'
        && digits(7..11)
        && b[11] == b' '
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && matches!(b[21], b'+' | b'-')
        && digits(22..26);
    if ok {
        Ok(date)
    } else {
        Err(ProtoError::BadArgument(format!(
            "{date:?} is not an IMAP date-time (dd-Mon-yyyy hh:mm:ss +zzzz)"
        )))
    }
}

/// `HEADER "name" "value"` for UID SEARCH (RFC 3501 §6.4.4), for finding a message by a
/// tracking header such as `X-Posta-Id`. Both must be printable ASCII (a literal cannot ride
/// in a criteria string); the name must be a header field name (RFC 5322 §3.6.8).
pub fn search_header(name: &str, value: &str) -> Result<String, ProtoError> {
    let name_ok = !name.is_empty() && name.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b':');
    if !name_ok {
        return Err(ProtoError::BadArgument(format!(
            "{name:?} is not a header field name"
        )));
    }
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ProtoError::BadArgument(format!(
            "header value {value:?} is not printable ASCII"
        )));
    }
    Ok(format!("HEADER {} {}", quote(name), quote(value)))
}

/// Search criteria go into the command as they are; only CR, LF and NUL, which would end the
/// command, are refused.
pub fn check_criteria(criteria: &str) -> Result<&str, ProtoError> {
    check_arg("search criteria", criteria)
}

#[cfg(test)]
#[path = "imap_cmd_tests.rs"]
mod tests;
