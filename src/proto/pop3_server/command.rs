//! POP3 command lines as a server reads them (RFC 1939 §4–§7, RFC 2449 §5, RFC 2595 §4,
//! RFC 5034 §4): keyword, arguments, message numbers. No state: the session decides what a
//! command means now.

use crate::secret::Secret;

/// A parsed client command (RFC 1939 §4–§7, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(Secret),
    Apop,
    /// AUTH with a mechanism and an optional initial response; bare AUTH lists mechanisms.
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Capa,
    Stls,
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u64),
    Dele(u32),
    Noop,
    Rset,
    Quit,
}

/// Why a command line was refused before it reached the state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("line is not terminated by CRLF")]
    Unterminated,
    #[error("line contains NUL or is not UTF-8")]
    Binary,
    #[error("unknown command")]
    Unknown,
    #[error("{0}")]
    Syntax(&'static str),
}

/// Parses one framed command line (terminator included; a bare LF is tolerated). Keywords are
/// case-insensitive (RFC 1939 §3); arguments are separated by single spaces, leniently by runs.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let text = line_body(line)?;
    let (keyword, rest) = text.split_once(' ').unwrap_or((text, ""));
    let args: Vec<&str> = rest.split_ascii_whitespace().collect();
    let none = |cmd: Command| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::Syntax("this command takes no arguments"))
        }
    };
    match keyword.to_ascii_uppercase().as_str() {
        "USER" => match args.as_slice() {
            [name] => Ok(Command::User((*name).to_owned())),
            _ => Err(CommandError::Syntax("usage: USER name")),
        },
        // The password is the rest of the line: RFC 1939 §7 lets it contain spaces.
        "PASS" if !rest.is_empty() => Ok(Command::Pass(Secret::new(rest))),
        "PASS" => Err(CommandError::Syntax("usage: PASS password")),
        "APOP" => Ok(Command::Apop),
        "AUTH" => match args.as_slice() {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial: None,
            }),
            [mech] => Ok(Command::Auth {
                mechanism: Some(mech.to_ascii_uppercase()),
                initial: None,
            }),
            [mech, initial] => Ok(Command::Auth {
                mechanism: Some(mech.to_ascii_uppercase()),
                initial: Some((*initial).to_owned()),
            }),
            _ => Err(CommandError::Syntax(
                "usage: AUTH mechanism [initial-response]",
            )),
        },
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        "STAT" => none(Command::Stat),
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "QUIT" => none(Command::Quit),
        "LIST" | "UIDL" => {
            let n = match args.as_slice() {
                [] => None,
                [n] => Some(message_number(n)?),
                _ => return Err(CommandError::Syntax("usage: LIST|UIDL [msg]")),
            };
            Ok(if keyword.eq_ignore_ascii_case("LIST") {
                Command::List(n)
            } else {
                Command::Uidl(n)
            })
        }
        "RETR" | "DELE" => match args.as_slice() {
            [n] => {
                let n = message_number(n)?;
                Ok(if keyword.eq_ignore_ascii_case("RETR") {
                    Command::Retr(n)
                } else {
                    Command::Dele(n)
                })
            }
            _ => Err(CommandError::Syntax("usage: RETR|DELE msg")),
        },
        "TOP" => match args.as_slice() {
            [n, lines] => {
                let lines = digits(lines)
                    .and_then(|l| l.parse().ok())
                    .ok_or(CommandError::Syntax("TOP line count must be a number"))?;
                Ok(Command::Top(message_number(n)?, lines))
            }
            _ => Err(CommandError::Syntax("usage: TOP msg lines")),
        },
        _ => Err(CommandError::Unknown),
    }
}

/// The text of a line without its terminator; refuses NUL and non-UTF-8.
pub(super) fn line_body(line: &[u8]) -> Result<&str, CommandError> {
    let body = line.strip_suffix(b"\n").ok_or(CommandError::Unterminated)?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if body.contains(&0) {
        return Err(CommandError::Binary);
    }
    std::str::from_utf8(body).map_err(|_| CommandError::Binary)
}

fn digits(word: &str) -> Option<&str> {
    (!word.is_empty() && word.len() <= 20 && word.bytes().all(|b| b.is_ascii_digit()))
        .then_some(word)
}

/// A message number: decimal, from 1 (RFC 1939 §3).
fn message_number(word: &str) -> Result<u32, CommandError> {
    digits(word)
        .and_then(|w| w.parse::<u32>().ok())
        .filter(|&n| n > 0)
        .ok_or(CommandError::Syntax("invalid message number"))
}
