//! FETCH responses (RFC 3501 §7.4.2): `* n FETCH (UID u RFC822.SIZE s FLAGS (...) INTERNALDATE
//! "..." BODY[] {len} ...)`, items in any order, unknown items skipped. A server may split one
//! message's items over several FETCH responses and sends flag updates for other sessions'
//! changes unasked (§7), so a [`Fetch`] is a partial record that the client merges by
//! sequence number and only turns into a [`MessageMeta`] or [`FetchedMessage`] when complete.

use std::collections::BTreeMap;

use super::ProtoError;
use super::imap_lex::{Lexer, Str};

/// The items of one FETCH response; absent items are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetch {
    /// Message sequence number (changes as messages are expunged; UIDs do not).
    pub seq: u32,
    /// UID (RFC 3501 §2.3.1.1); UID FETCH responses always carry it (§6.4.8).
    pub uid: Option<u32>,
    /// RFC822.SIZE: the message's size in octets.
    pub size: Option<u64>,
    /// Flags with `\Recent` removed: it is session state that APPEND cannot set (§2.3.2).
    pub flags: Option<Vec<String>>,
    /// INTERNALDATE without its quotes, verbatim (`17-Jul-1996 02:44:25 -0700`), so APPEND
    /// gets back exactly what the source said.
    pub internal_date: Option<String>,
    /// `BODY[]` exactly as sent: the whole message, octet for octet (or `BODY[HEADER]`, the
    /// header and its blank line, when only that was asked for).
    pub body: Option<Vec<u8>>,
    /// `MODSEQ (n)` (RFC 7162 §3.1.4.1): the message's mod-sequence, with CONDSTORE.
    pub modseq: Option<u64>,
}

/// A message's UID and flags, as a flag scan or a QRESYNC SELECT reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagsOf {
    pub uid: u32,
    /// System flags and keywords verbatim, without `\Recent`.
    pub flags: Vec<String>,
    /// Its mod-sequence, when the server keeps them.
    pub modseq: Option<u64>,
}

/// What a plan or dry run needs to know about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// UID in the selected mailbox, valid with the mailbox's UIDVALIDITY.
    pub uid: u32,
    /// RFC822.SIZE in octets.
    pub size: u64,
    /// System flags and keywords verbatim, without `\Recent`.
    pub flags: Vec<String>,
    /// INTERNALDATE verbatim, without quotes: what APPEND takes back.
    pub internal_date: String,
}

/// One message with its content, as copied from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    /// UID in the selected mailbox, valid with the mailbox's UIDVALIDITY.
    pub uid: u32,
    /// RFC822.SIZE in octets; equals `body.len()` on a consistent server.
    pub size: u64,
    /// System flags and keywords verbatim, without `\Recent`.
    pub flags: Vec<String>,
    /// INTERNALDATE verbatim, without quotes: what APPEND takes back.
    pub internal_date: String,
    /// The whole message (`BODY[]`), byte for byte.
    pub body: Vec<u8>,
}

impl Fetch {
    /// Fills what this response lacks from an earlier one for the same message; values in
    /// `self` are newer and win.
    pub fn merge_earlier(&mut self, earlier: Fetch) {
        self.uid = self.uid.or(earlier.uid);
        self.size = self.size.or(earlier.size);
        self.flags = self.flags.take().or(earlier.flags);
        self.internal_date = self.internal_date.take().or(earlier.internal_date);
        self.body = self.body.take().or(earlier.body);
        self.modseq = self.modseq.or(earlier.modseq);
    }

    /// UID and flags, if both arrived.
    pub fn into_flags(self) -> Result<FlagsOf, ProtoError> {
        let seq = self.seq;
        let missing = move |what: &str| {
            ProtoError::Malformed(format!("FETCH for message {seq} lacks {what}"))
        };
        Ok(FlagsOf {
            uid: self.uid.ok_or_else(|| missing("UID"))?,
            flags: self.flags.ok_or_else(|| missing("FLAGS"))?,
            modseq: self.modseq,
        })
    }

    /// The metadata, if every item arrived.
    pub fn into_meta(self) -> Result<MessageMeta, ProtoError> {
        let seq = self.seq;
        let missing = move |what: &str| {
            ProtoError::Malformed(format!("FETCH for message {seq} lacks {what}"))
        };
        Ok(MessageMeta {
            uid: self.uid.ok_or_else(|| missing("UID"))?,
            size: self.size.ok_or_else(|| missing("RFC822.SIZE"))?,
            flags: self.flags.ok_or_else(|| missing("FLAGS"))?,
            internal_date: self.internal_date.ok_or_else(|| missing("INTERNALDATE"))?,
        })
    }

    /// The message with its body, if every item arrived.
    pub fn into_message(mut self) -> Result<FetchedMessage, ProtoError> {
        let body = self.body.take();
        let seq = self.seq;
        let meta = self.into_meta()?;
        let body = body.ok_or_else(|| {
            ProtoError::Malformed(format!("FETCH for message {seq} lacks BODY[]"))
        })?;
        Ok(FetchedMessage {
            uid: meta.uid,
            size: meta.size,
            flags: meta.flags,
            internal_date: meta.internal_date,
            body,
        })
    }
}

/// The FETCH records of one command by sequence number, merged as they arrive. An EXPUNGE
/// renumbers them: UID commands may see EXPUNGE responses (RFC 3501 §7.4.1).
#[derive(Debug, Default)]
pub struct Partials(BTreeMap<u32, Fetch>);

impl Partials {
    /// Merges `fetch` with what came earlier for the same message; returns the whole record,
    /// which is no longer held here.
    pub fn merge(&mut self, mut fetch: Fetch) -> Fetch {
        if let Some(earlier) = self.0.remove(&fetch.seq) {
            fetch.merge_earlier(earlier);
        }
        fetch
    }

    /// Holds an incomplete record until more of it arrives.
    pub fn keep(&mut self, fetch: Fetch) {
        self.0.insert(fetch.seq, fetch);
    }

    /// `* seq EXPUNGE`: that message is gone and every later one moves down by one.
    pub fn expunged(&mut self, seq: u32) {
        let all = std::mem::take(&mut self.0);
        self.0 = all
            .into_iter()
            .filter(|(s, _)| *s != seq)
            .map(|(s, mut f)| {
                if s > seq {
                    f.seq = s - 1;
                }
                (f.seq, f)
            })
            .collect();
    }

    /// Every record held, complete or not, in sequence order.
    pub fn into_records(self) -> impl Iterator<Item = Fetch> {
        self.0.into_values()
    }
}

/// Items parsed with the body still a position in the wire bytes.
pub(super) struct Parsed {
    fetch: Fetch,
    body: Option<Str>,
}

impl Parsed {
    /// Takes the body out of the wire buffer in place: the buffer becomes the body, so a large
    /// message exists once in memory, not twice.
    pub(super) fn resolve(mut self, mut wire: Vec<u8>) -> Fetch {
        self.fetch.body = match self.body {
            Some(Str::At(range)) => {
                wire.truncate(range.end);
                wire.drain(..range.start);
                Some(wire)
            }
            Some(Str::Owned(v)) => Some(v),
            None => None,
        };
        self.fetch
    }
}

/// `msg-att` (RFC 3501 §9): `(` item SP value *(SP item SP value) `)`.
pub(super) fn parse_items(lex: &mut Lexer<'_>, seq: u32) -> Result<Parsed, ProtoError> {
    let mut p = Parsed {
        fetch: Fetch {
            seq,
            ..Fetch::default()
        },
        body: None,
    };
    lex.expect(b'(')?;
    let mut first = true;
    while !lex.eat(b')') {
        if !first {
            lex.expect(b' ')?;
        }
        first = false;
        let name = lex.item_name()?;
        lex.expect(b' ')?;
        match name.as_str() {
            "UID" => p.fetch.uid = Some(nonzero(lex)?),
            "RFC822.SIZE" => p.fetch.size = Some(lex.number64()?),
            "MODSEQ" => p.fetch.modseq = Some(super::imap_sync::fetch_modseq(lex)?),
            "FLAGS" => {
                let mut flags = lex.flag_list()?;
                flags.retain(|f| !f.eq_ignore_ascii_case("\\Recent"));
                p.fetch.flags = Some(flags);
            }
            "INTERNALDATE" => {
                let s = lex.string()?;
                let date = std::str::from_utf8(lex.bytes(&s))
                    .map_err(|_| lex.error("INTERNALDATE is not ASCII"))?;
                p.fetch.internal_date = Some(date.to_owned());
            }
            // BODY[HEADER] answers a header-only fetch (a read-back by tracking id).
            "BODY[]" | "BODY[HEADER]" => match lex.nstring()? {
                Some(s) => p.body = Some(s),
                // NIL would read as "no body"; a copy tool must not take that for an empty message.
                None => return Err(lex.error(&format!("{name} is NIL"))),
            },
            _ => skip_value(lex, 0)?,
        }
    }
    Ok(p)
}

fn nonzero(lex: &mut Lexer<'_>) -> Result<u32, ProtoError> {
    match lex.number()? {
        0 => Err(lex.error("UID 0")),
        n => Ok(n),
    }
}

/// Skips one value of an item this client did not ask for (BODYSTRUCTURE, X-GM-LABELS, ...).
fn skip_value(lex: &mut Lexer<'_>, depth: usize) -> Result<(), ProtoError> {
    if depth > 50 {
        return Err(lex.error("nesting too deep"));
    }
    match lex.peek() {
        Some(b'(') => {
            lex.skip_one();
            let mut first = true;
            while !lex.eat(b')') {
                if !first {
                    lex.expect(b' ')?;
                }
                first = false;
                skip_value(lex, depth + 1)?;
            }
            Ok(())
        }
        Some(b'"' | b'{') => lex.string().map(drop),
        Some(b'\\') => lex.flag().map(drop),
        _ => lex.item_name().map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::super::imap_data::{Data, parse};
    use super::*;

    fn fetch(wire: &[u8]) -> Fetch {
        match parse(wire.to_vec()).unwrap() {
            Data::Fetch(f) => f,
            other => panic!("not a FETCH: {other:?}"),
        }
    }

    #[test]
    fn full_message() {
        let f = fetch(
            b"* 3 FETCH (UID 42 RFC822.SIZE 10 FLAGS (\\Seen \\Recent $Important) \
              INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" BODY[] {10}\r\n.dot\r\nbody)\r\n",
        );
        let m = f.into_message().unwrap();
        assert_eq!(m.uid, 42);
        assert_eq!(m.size, 10);
        assert_eq!(m.flags, ["\\Seen", "$Important"]);
        assert_eq!(m.internal_date, "17-Jul-1996 02:44:25 -0700");
        assert_eq!(m.body, b".dot\r\nbody");
    }

    #[test]
    fn a_header_only_fetch_fills_the_body_with_the_header() {
        let f = fetch(
            b"* 4 FETCH (UID 43 RFC822.SIZE 900 FLAGS () INTERNALDATE \"17-Jul-1996 02:44:25 \
              -0700\" BODY[HEADER] {12}\r\nA: b\r\nC: d\r\n)\r\n",
        );
        let m = f.into_message().unwrap();
        assert_eq!((m.uid, m.size), (43, 900));
        assert_eq!(m.body, b"A: b\r\nC: d\r\n");
    }

    #[test]
    fn any_order_unknown_items_and_quoted_body() {
        let f = fetch(
            b"* 1 FETCH (MODSEQ (12) BODY[] \"hi\" X-GM-LABELS (\"a b\" \\Inbox) \
              FLAGS () UID 7 INTERNALDATE \" 1-Jan-2024 00:00:00 +0000\" RFC822.SIZE 2)\r\n",
        );
        let m = f.into_message().unwrap();
        assert_eq!((m.uid, m.size, m.body), (7, 2, b"hi".to_vec()));
        assert!(m.flags.is_empty());
        assert_eq!(m.internal_date, " 1-Jan-2024 00:00:00 +0000");
    }

    #[test]
    fn flag_update_merges_into_earlier_items() {
        let mut update = fetch(b"* 5 FETCH (FLAGS (\\Deleted))\r\n");
        assert_eq!(update.uid, None);
        assert!(update.clone().into_meta().is_err());
        let earlier = fetch(b"* 5 FETCH (UID 9 RFC822.SIZE 3 INTERNALDATE \"x\")\r\n");
        update.merge_earlier(earlier);
        let meta = update.into_meta().unwrap();
        assert_eq!((meta.uid, meta.flags), (9, vec!["\\Deleted".to_owned()]));
    }

    #[test]
    fn partials_follow_expunges() {
        let mut p = Partials::default();
        for wire in [
            &b"* 2 FETCH (UID 20 FLAGS ())\r\n"[..],
            b"* 3 FETCH (UID 30 FLAGS (\\Seen))\r\n",
            b"* 4 FETCH (UID 40 FLAGS ())\r\n",
        ] {
            let f = p.merge(fetch(wire));
            p.keep(f);
        }
        p.expunged(2);
        let late = p.merge(fetch(b"* 2 FETCH (RFC822.SIZE 5 INTERNALDATE \"d\")\r\n"));
        assert_eq!(late.uid, Some(30), "old 3 is now 2");
        p.keep(late);
        let uids: Vec<_> = p.into_records().map(|f| (f.seq, f.uid)).collect();
        assert_eq!(uids, [(2, Some(30)), (3, Some(40))]);
    }

    #[test]
    fn modseq_and_flags() {
        let f = fetch(b"* 2 FETCH (UID 8 MODSEQ (65402) FLAGS (\\Seen $Work))\r\n");
        assert_eq!(f.modseq, Some(65402));
        let flags = f.into_flags().unwrap();
        assert_eq!((flags.uid, flags.modseq), (8, Some(65402)));
        assert_eq!(flags.flags, ["\\Seen", "$Work"]);
        assert!(fetch(b"* 2 FETCH (FLAGS ())\r\n").into_flags().is_err());
        for wire in [
            &b"* 1 FETCH (UID 1 MODSEQ 5)\r\n"[..],
            b"* 1 FETCH (UID 1 MODSEQ (0))\r\n",
            b"* 1 FETCH (UID 1 MODSEQ (9223372036854775808))\r\n",
            b"* 1 FETCH (UID 1 MODSEQ (99999999999999999999999))\r\n",
            b"* 1 FETCH (UID 1 MODSEQ (-1))\r\n",
            b"* 1 FETCH (UID 1 MODSEQ (1 2))\r\n",
            b"* 1 FETCH (UID 1 MODSEQ ())\r\n",
        ] {
            assert!(
                parse(wire.to_vec()).is_err(),
                "{}",
                super::super::escape(wire)
            );
        }
    }

    #[test]
    fn hostile_fetches_fail() {
        for wire in [
            &b"* 1 FETCH (UID 0)\r\n"[..],
            b"* 1 FETCH (UID 1 BODY[] NIL)\r\n",
            b"* 1 FETCH (UID 1 BODY[] {9}\r\nshort)\r\n",
            b"* 1 FETCH (UID)\r\n",
            b"* 1 FETCH (UID 1\r\n",
            b"* 1 FETCH UID 1\r\n",
            b"* 1 FETCH (FLAGS (\\Seen)) trailing\r\n",
            b"* 1 FETCH (X ((((((((((((((((((((((((((((((((((((((((((((((((((((((((x\r\n",
        ] {
            assert!(
                parse(wire.to_vec()).is_err(),
                "{}",
                super::super::escape(wire)
            );
        }
    }
}
