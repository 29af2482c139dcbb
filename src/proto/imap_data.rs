//! Parsing of whole IMAP responses (framed by [`super::imap_frame`]) for the migration client:
//! status and continuation lines through [`super::imap::parse_response`], and the untagged data
//! the client asks for (RFC 3501 §7.2-§7.4): LIST, NAMESPACE (RFC 2342), SEARCH, FLAGS, EXISTS,
//! EXPUNGE and FETCH, and for `posta mirror` ENABLED (RFC 5161) and VANISHED (RFC 7162). Anything else untagged is kept as text: servers send unsolicited data at
//! any time (§7), and a client must skip what it does not understand.

use super::imap::{self, Cond, Response, StatusResp};
use super::imap_fetch::{self, Fetch};
use super::imap_lex::Lexer;
use super::imap_sync::{self, UidRanges};
use super::{ProtoError, escape, mutf7};

/// One server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// `+ text`: send the rest of the command.
    Continuation(String),
    /// The completion of the command with this tag.
    Tagged {
        /// The command's tag.
        tag: String,
        /// OK, NO or BAD with code and text.
        resp: StatusResp,
    },
    /// `* OK|NO|BAD|BYE|PREAUTH ...`
    Status(StatusResp),
    /// `* CAPABILITY ...`
    Capability(Vec<String>),
    /// `* LIST (attributes) delimiter name`
    List(MailboxInfo),
    /// `* NAMESPACE personal other shared`
    Namespace(Namespaces),
    /// `* SEARCH n...`: UIDs for UID SEARCH.
    Search(Vec<u32>),
    /// `* FLAGS (...)`: the flags defined in the selected mailbox.
    Flags(Vec<String>),
    /// `* n EXISTS`: the mailbox now holds n messages.
    Exists(u32),
    /// `* n EXPUNGE`: message n is gone; later ones move down by one.
    Expunge(u32),
    /// `* n FETCH (...)`
    Fetch(Fetch),
    /// `* VANISHED [(EARLIER)] uid-set` (RFC 7162 §3.2.10): these UIDs are expunged.
    Vanished {
        /// `(EARLIER)`: an answer about the past (QRESYNC), not a fresh expunge.
        earlier: bool,
        uids: UidRanges,
    },
    /// `* ENABLED ext...` (RFC 5161 §3.2): the extensions ENABLE turned on.
    Enabled(Vec<String>),
    /// `* STATUS mailbox (att value...)` (RFC 3501 §7.2.4): the mailbox's name as the server
    /// spells it. After NOTIFY (RFC 5465 §5.2), news of a mailbox that is not selected.
    MailboxStatus(String),
    /// Untagged data the client does not use, as escaped text for logs.
    Other(String),
}

impl Data {
    /// Whether this untagged response says the selected mailbox changed, what an IDLE waits
    /// for (RFC 2177 §3): a message arrived (EXISTS), left (EXPUNGE, VANISHED without
    /// EARLIER) or had its flags changed (FETCH). `* OK Still here` and the like are not.
    pub fn is_mailbox_change(&self) -> bool {
        match self {
            Data::Exists(_) | Data::Expunge(_) | Data::Fetch(_) => true,
            // Only sent unasked after NOTIFY (RFC 5465 §5.2, §5.4): another mailbox's messages
            // or flags changed, or a mailbox was created, renamed or deleted.
            Data::MailboxStatus(_) | Data::List(_) => true,
            // NOTIFY's end: what changed is not said.
            data if data.is_notify_overflow() => true,
            Data::Vanished { earlier, .. } => !earlier,
            _ => false,
        }
    }

    /// `* OK [NOTIFICATIONOVERFLOW]` (RFC 5465 §5.8): the server has stopped its NOTIFY
    /// notifications.
    pub fn is_notify_overflow(&self) -> bool {
        matches!(self, Data::Status(resp)
            if resp.cond == Cond::Ok
                && resp.code.as_ref().is_some_and(|c| c.name == "NOTIFICATIONOVERFLOW"))
    }
}

/// A mailbox from LIST (RFC 3501 §7.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// The name as the server spells it (modified UTF-7): what commands must send.
    pub raw_name: String,
    /// The name in UTF-8 for people and for mapping to another server. Falls back to
    /// `raw_name` when the server's name is not valid modified UTF-7 (a misbehaving client
    /// created it), so one odd folder does not hide the others.
    pub name: String,
    /// Hierarchy delimiter; `None` for a flat namespace (NIL).
    pub delimiter: Option<char>,
    /// Attributes verbatim (`\HasNoChildren`, `\Noselect`, `\Sent`, ...).
    pub attributes: Vec<String>,
    /// `\Noselect` or `\NonExistent` (RFC 5258 §3): a hierarchy node that holds no messages.
    pub noselect: bool,
}

/// Namespace prefixes (RFC 2342 §5): personal, other users', shared. Each entry is a prefix
/// and its delimiter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// The user's own mailboxes (usually one prefix, `""` or `"INBOX."`).
    pub personal: Vec<(String, Option<char>)>,
    /// Other users' mailboxes shared with this user.
    pub other_users: Vec<(String, Option<char>)>,
    /// Public folders.
    pub shared: Vec<(String, Option<char>)>,
}

impl Namespaces {
    /// Whether a mailbox belongs to the user: INBOX always; otherwise it must not lie under
    /// another user's or a shared prefix (nor be that prefix's node), and must lie under a
    /// personal prefix. Names are compared as sent (RFC 2342 §3: prefixes are wire names).
    pub fn is_personal(&self, mailbox: &MailboxInfo) -> bool {
        let name = mailbox.raw_name.as_str();
        if name.eq_ignore_ascii_case("INBOX") {
            return true;
        }
        let under = |(prefix, delim): &(String, Option<char>)| {
            !prefix.is_empty()
                && (name.starts_with(prefix.as_str())
                    || delim.is_some_and(|d| prefix.strip_suffix(d) == Some(name)))
        };
        if self.other_users.iter().chain(&self.shared).any(under) {
            return false;
        }
        self.personal.is_empty() || self.personal.iter().any(|ns| ns.0.is_empty() || under(ns))
    }
}

/// Parses one complete response (lines and literal data as received).
pub fn parse(wire: Vec<u8>) -> Result<Data, ProtoError> {
    let Some(rest) = wire.strip_prefix(b"* ") else {
        return from_line(&wire);
    };
    let word_end = rest.iter().position(|&b| matches!(b, b' ' | b'\r' | b'\n'));
    let word = &rest[..word_end.unwrap_or(rest.len())];
    let known = ["OK", "NO", "BAD", "BYE", "PREAUTH", "CAPABILITY"];
    if known
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k.as_bytes()))
    {
        return from_line(&wire);
    }
    if word.first().is_some_and(u8::is_ascii_digit) {
        return numbered(wire);
    }
    let mut lex = Lexer::new(&wire);
    lex.expect(b'*')?;
    lex.expect(b' ')?;
    let word = lex.atom()?.to_ascii_uppercase();
    let data = match word.as_str() {
        "LIST" => Data::List(list(&mut lex)?),
        "STATUS" => Data::MailboxStatus(status(&mut lex)?),
        "NAMESPACE" => Data::Namespace(namespace(&mut lex)?),
        "SEARCH" => Data::Search(search(&mut lex)?),
        "FLAGS" => {
            lex.expect(b' ')?;
            Data::Flags(lex.flag_list()?)
        }
        "VANISHED" => {
            let (earlier, uids) = imap_sync::vanished(&mut lex)?;
            Data::Vanished { earlier, uids }
        }
        "ENABLED" => {
            let mut names = Vec::new();
            while lex.eat(b' ') {
                names.push(lex.atom()?.to_owned());
            }
            Data::Enabled(names)
        }
        _ => return Ok(other(&wire)),
    };
    if !lex.at_end() {
        return Err(lex.error(&format!("unexpected data after {word}")));
    }
    Ok(data)
}

fn from_line(wire: &[u8]) -> Result<Data, ProtoError> {
    Ok(match imap::parse_response(wire)? {
        Response::Continuation(text) => Data::Continuation(text),
        Response::Tagged { tag, resp } => Data::Tagged { tag, resp },
        Response::Status(resp) => Data::Status(resp),
        Response::Capability(caps) => Data::Capability(caps),
        Response::Exists(n) => Data::Exists(n),
        Response::Other(text) => Data::Other(text),
    })
}

/// `* n EXISTS`, `* n EXPUNGE`, `* n FETCH (...)`, `* n RECENT` (kept as text).
fn numbered(wire: Vec<u8>) -> Result<Data, ProtoError> {
    let mut lex = Lexer::new(&wire);
    lex.expect(b'*')?;
    lex.expect(b' ')?;
    let n = lex.number()?;
    lex.expect(b' ')?;
    let word = lex.atom()?.to_ascii_uppercase();
    match word.as_str() {
        "EXISTS" | "EXPUNGE" => {
            if !lex.at_end() {
                return Err(lex.error(&format!("unexpected data after {word}")));
            }
            Ok(if word == "EXISTS" {
                Data::Exists(n)
            } else {
                Data::Expunge(n)
            })
        }
        "FETCH" => {
            lex.expect(b' ')?;
            let pos = imap_fetch::parse_items(&mut lex, n)?;
            if !lex.at_end() {
                return Err(lex.error("unexpected data after FETCH"));
            }
            Ok(Data::Fetch(pos.resolve(wire)))
        }
        _ => Ok(other(&wire)),
    }
}

/// Untagged data kept as text for logs, without `* ` and the terminator.
fn other(wire: &[u8]) -> Data {
    let text = wire.strip_prefix(b"* ").unwrap_or(wire);
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    Data::Other(escape(text.strip_suffix(b"\r").unwrap_or(text)))
}

/// `mailbox SP "(" [status-att-list] ")"` (RFC 3501 §9, RFC 7162 §7 for HIGHESTMODSEQ's
/// 64 bits): the mailbox's wire name.
fn status(lex: &mut Lexer<'_>) -> Result<String, ProtoError> {
    lex.expect(b' ')?;
    let mailbox = wire_name(lex.astring()?)?;
    lex.expect(b' ')?;
    lex.expect(b'(')?;
    if !lex.eat(b')') {
        loop {
            lex.atom()?;
            lex.expect(b' ')?;
            lex.number64()?;
            if lex.eat(b')') {
                break;
            }
            lex.expect(b' ')?;
        }
    }
    Ok(mailbox)
}

fn wire_name(raw: Vec<u8>) -> Result<String, ProtoError> {
    String::from_utf8(raw).map_err(|e| {
        ProtoError::Malformed(format!(
            "mailbox name is not UTF-8: {}",
            escape(e.as_bytes())
        ))
    })
}

/// `mailbox-list` (RFC 3501 §9): `(attributes) delimiter name`, then LIST-EXTENDED data.
fn list(lex: &mut Lexer<'_>) -> Result<MailboxInfo, ProtoError> {
    lex.expect(b' ')?;
    let attributes = lex.flag_list()?;
    lex.expect(b' ')?;
    let delimiter = delimiter(lex)?;
    lex.expect(b' ')?;
    let raw_name = wire_name(lex.astring()?)?;
    // RFC 5258 §3.5 extended data (CHILDINFO, OLDNAME) is not needed.
    lex.finish();
    let noselect = attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
    let name = mutf7::decode(&raw_name).unwrap_or_else(|e| {
        tracing::debug!("showing mailbox name {raw_name:?} undecoded: {e}");
        raw_name.clone()
    });
    Ok(MailboxInfo {
        raw_name,
        name,
        delimiter,
        attributes,
        noselect,
    })
}

/// `"/"`, `"\\"` or NIL.
fn delimiter(lex: &mut Lexer<'_>) -> Result<Option<char>, ProtoError> {
    if lex.nil() {
        return Ok(None);
    }
    let s = lex.string()?;
    match lex.bytes(&s) {
        [c] if c.is_ascii() => Ok(Some(char::from(*c))),
        _ => Err(lex.error("hierarchy delimiter is not one character")),
    }
}

/// `* SEARCH 3 5 9` (RFC 3501 §7.2.5); with CONDSTORE a trailing `(MODSEQ n)` is ignored.
fn search(lex: &mut Lexer<'_>) -> Result<Vec<u32>, ProtoError> {
    let mut found = Vec::new();
    while lex.eat(b' ') {
        if lex.peek() == Some(b'(') {
            lex.finish();
            break;
        }
        let n = lex.number()?;
        if n == 0 {
            return Err(lex.error("UID 0 in SEARCH results"));
        }
        found.push(n);
    }
    Ok(found)
}

/// `* NAMESPACE personal other shared`, each NIL or `(("prefix" "delim")...)`.
fn namespace(lex: &mut Lexer<'_>) -> Result<Namespaces, ProtoError> {
    let mut all = [Vec::new(), Vec::new(), Vec::new()];
    for group in &mut all {
        lex.expect(b' ')?;
        if lex.nil() {
            continue;
        }
        lex.expect(b'(')?;
        while lex.eat(b'(') {
            let prefix = lex.string()?;
            let prefix = String::from_utf8(lex.bytes(&prefix).to_vec())
                .map_err(|_| lex.error("namespace prefix is not UTF-8"))?;
            lex.expect(b' ')?;
            let delim = delimiter(lex)?;
            skip_to_close(lex)?;
            group.push((prefix, delim));
        }
        lex.expect(b')')?;
    }
    let [personal, other_users, shared] = all;
    Ok(Namespaces {
        personal,
        other_users,
        shared,
    })
}

/// Skips namespace extension data (RFC 2342 §5 `Namespace_Response_Extension`) to the `)` that
/// closes the current entry.
fn skip_to_close(lex: &mut Lexer<'_>) -> Result<(), ProtoError> {
    let mut depth = 1;
    while depth > 0 {
        match lex.peek() {
            Some(b'(') => depth += 1,
            Some(b')') => depth -= 1,
            Some(b'"' | b'{') => {
                lex.string()?;
                continue;
            }
            Some(b'\r' | b'\n') | None => return Err(lex.error("unclosed namespace entry")),
            Some(_) => {}
        }
        lex.skip_one();
    }
    Ok(())
}

#[cfg(test)]
#[path = "imap_data_tests.rs"]
mod tests;
