//! What SELECT / EXAMINE tell about a mailbox (RFC 3501 §6.3.1-§6.3.2, §7.1 response codes),
//! and the APPENDUID code of UIDPLUS (RFC 4315 §3). A migration keys its state by
//! (UIDVALIDITY, UID), so a mailbox that does not say its UIDVALIDITY cannot be migrated safely.
//! With CONDSTORE (RFC 7162) SELECT also says `[HIGHESTMODSEQ n]` or `[NOMODSEQ]`.

use super::ProtoError;
use super::imap::{Cond, StatusResp};
use super::imap_data::Data;
use super::imap_lex::Lexer;

/// A selected mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// UIDs are only meaningful together with this value (RFC 3501 §2.3.1.1).
    pub uidvalidity: u32,
    /// Number of messages.
    pub exists: u32,
    /// The UID the next message will get, when the server says (it SHOULD).
    pub uidnext: Option<u32>,
    /// Flags defined in the mailbox (`* FLAGS`).
    pub flags: Vec<String>,
    /// Flags that can be stored permanently; `\*` means new keywords may be created.
    pub permanent_flags: Vec<String>,
    /// EXAMINE, or the server's `[READ-ONLY]`.
    pub read_only: bool,
    /// `[HIGHESTMODSEQ n]` (RFC 7162 §3.1.2.1): None when the server keeps no mod-sequences
    /// for the mailbox (`[NOMODSEQ]`) or has no CONDSTORE.
    pub highest_modseq: Option<u64>,
}

/// Collects the untagged responses of a SELECT until its completion.
#[derive(Debug, Default)]
pub struct SelectState {
    uidvalidity: Option<u32>,
    exists: Option<u32>,
    uidnext: Option<u32>,
    flags: Vec<String>,
    permanent_flags: Vec<String>,
    highest_modseq: Option<u64>,
    nomodseq: bool,
}

impl SelectState {
    /// Takes in one untagged response; fails on a malformed UIDVALIDITY, UIDNEXT or
    /// PERMANENTFLAGS code.
    pub fn observe(&mut self, data: &Data) -> Result<(), ProtoError> {
        match data {
            Data::Exists(n) => self.exists = Some(*n),
            Data::Flags(f) => self.flags.clone_from(f),
            Data::Status(s) if s.cond == Cond::Ok => {
                let Some(code) = &s.code else { return Ok(()) };
                match code.name.as_str() {
                    "UIDVALIDITY" => self.uidvalidity = Some(nonzero(&code.args, "UIDVALIDITY")?),
                    "UIDNEXT" => self.uidnext = Some(nonzero(&code.args, "UIDNEXT")?),
                    "HIGHESTMODSEQ" => {
                        self.highest_modseq = Some(super::imap_sync::parse_modseq(&code.args)?)
                    }
                    "NOMODSEQ" => self.nomodseq = true,
                    "PERMANENTFLAGS" => {
                        let mut lex = Lexer::new(code.args.as_bytes());
                        self.permanent_flags = lex.flag_list()?;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The mailbox, given the command's successful completion.
    pub fn finish(self, done: &StatusResp, read_only: bool) -> Result<Selected, ProtoError> {
        let code = done.code.as_ref().map(|c| c.name.as_str());
        Ok(Selected {
            uidvalidity: self.uidvalidity.ok_or_else(|| {
                ProtoError::Malformed("no [UIDVALIDITY] in the SELECT response".into())
            })?,
            exists: self
                .exists
                .ok_or_else(|| ProtoError::Malformed("no EXISTS in the SELECT response".into()))?,
            uidnext: self.uidnext,
            flags: self.flags,
            permanent_flags: self.permanent_flags,
            read_only: read_only || code == Some("READ-ONLY"),
            highest_modseq: self.highest_modseq.filter(|_| !self.nomodseq),
        })
    }
}

fn nonzero(args: &str, what: &str) -> Result<u32, ProtoError> {
    match args.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ProtoError::Malformed(format!("bad [{what} {args}]"))),
    }
}

/// `[APPENDUID uidvalidity uid]` from an APPEND's tagged OK, when present (RFC 4315 §3).
pub fn append_uid(done: &StatusResp) -> Result<Option<(u32, u32)>, ProtoError> {
    let Some(code) = done.code.as_ref().filter(|c| c.name == "APPENDUID") else {
        return Ok(None);
    };
    let bad = || ProtoError::Malformed(format!("bad [APPENDUID {}]", code.args));
    let (validity, uid) = code.args.split_once(' ').ok_or_else(bad)?;
    Ok(Some((
        nonzero(validity, "APPENDUID").map_err(|_| bad())?,
        nonzero(uid, "APPENDUID").map_err(|_| bad())?,
    )))
}

/// `[APPENDUID uidvalidity uid-set]` from a MULTIAPPEND's tagged OK (RFC 4315 §3, RFC 3502):
/// the new UIDs in the order the messages were sent (UIDs are assigned in that order, so the
/// set's ascending order is theirs). The set must hold exactly `count` UIDs: it is refused,
/// not expanded, when it holds more (a hostile `1:4294967295`).
pub fn append_uids(done: &StatusResp, count: usize) -> Result<Option<(u32, Vec<u32>)>, ProtoError> {
    let Some(code) = done.code.as_ref().filter(|c| c.name == "APPENDUID") else {
        return Ok(None);
    };
    let bad = || ProtoError::Malformed(format!("bad [APPENDUID {}]", code.args));
    let (validity, set) = code.args.split_once(' ').ok_or_else(bad)?;
    let validity = nonzero(validity, "APPENDUID").map_err(|_| bad())?;
    let wire = format!("{set}\r\n");
    let mut lex = Lexer::new(wire.as_bytes());
    let ranges = super::imap_sync::UidRanges::parse_set(&mut lex).map_err(|_| bad())?;
    if !lex.at_end() {
        return Err(bad());
    }
    let held: u64 = ranges
        .ranges()
        .iter()
        .map(|&(lo, hi)| u64::from(hi - lo) + 1)
        .sum();
    if held != count as u64 {
        return Err(ProtoError::Malformed(format!(
            "[APPENDUID {}] names {held} UIDs for {count} messages",
            code.args
        )));
    }
    let uids = ranges
        .ranges()
        .iter()
        .flat_map(|&(lo, hi)| lo..=hi)
        .collect();
    Ok(Some((validity, uids)))
}

#[cfg(test)]
mod tests {
    use super::super::imap_data::parse;
    use super::*;

    fn feed(state: &mut SelectState, lines: &[&[u8]]) {
        for line in lines {
            state.observe(&parse(line.to_vec()).unwrap()).unwrap();
        }
    }

    fn tagged(line: &[u8]) -> StatusResp {
        match parse(line.to_vec()).unwrap() {
            Data::Tagged { resp, .. } => resp,
            other => panic!("not tagged: {other:?}"),
        }
    }

    #[test]
    fn dovecot_select() {
        let mut s = SelectState::default();
        feed(
            &mut s,
            &[
                b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)\r\n",
                b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] Flags permitted.\r\n",
                b"* 3 EXISTS\r\n",
                b"* 0 RECENT\r\n",
                b"* OK [UNSEEN 1] First unseen.\r\n",
                b"* OK [UIDVALIDITY 1700000000] UIDs valid\r\n",
                b"* OK [UIDNEXT 4] Predicted next UID\r\n",
            ],
        );
        let sel = s
            .finish(&tagged(b"p5 OK [READ-WRITE] Select completed.\r\n"), false)
            .unwrap();
        assert_eq!(sel.uidvalidity, 1_700_000_000);
        assert_eq!((sel.exists, sel.uidnext), (3, Some(4)));
        assert_eq!(sel.flags.len(), 6);
        assert_eq!(sel.permanent_flags.last().map(String::as_str), Some("\\*"));
        assert!(!sel.read_only);
    }

    #[test]
    fn read_only_and_missing_uidvalidity() {
        let mut s = SelectState::default();
        feed(&mut s, &[b"* 0 EXISTS\r\n", b"* OK [UIDVALIDITY 7] x\r\n"]);
        let sel = s.finish(&tagged(b"p1 OK [READ-ONLY] done\r\n"), false);
        assert!(sel.unwrap().read_only);
        let mut s = SelectState::default();
        feed(&mut s, &[b"* 0 EXISTS\r\n"]);
        assert!(s.finish(&tagged(b"p1 OK done\r\n"), false).is_err());
        let mut s = SelectState::default();
        let bad = parse(b"* OK [UIDVALIDITY 0] x\r\n".to_vec()).unwrap();
        assert!(s.observe(&bad).is_err());
    }

    #[test]
    fn condstore_codes() {
        let mut s = SelectState::default();
        feed(
            &mut s,
            &[
                b"* 0 EXISTS\r\n",
                b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
                b"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
            ],
        );
        let sel = s.finish(&tagged(b"p1 OK done\r\n"), false).unwrap();
        assert_eq!(sel.highest_modseq, Some(715_194_045_007));
        let mut s = SelectState::default();
        feed(
            &mut s,
            &[
                b"* 0 EXISTS\r\n",
                b"* OK [UIDVALIDITY 1] x\r\n",
                b"* OK [NOMODSEQ] No permanent modsequences\r\n",
            ],
        );
        let sel = s.finish(&tagged(b"p1 OK done\r\n"), false).unwrap();
        assert_eq!(sel.highest_modseq, None);
        for bad in [
            &b"* OK [HIGHESTMODSEQ 0] x\r\n"[..],
            b"* OK [HIGHESTMODSEQ x] x\r\n",
            b"* OK [HIGHESTMODSEQ 9223372036854775808] x\r\n",
            b"* OK [HIGHESTMODSEQ] x\r\n",
        ] {
            let mut s = SelectState::default();
            assert!(s.observe(&parse(bad.to_vec()).unwrap()).is_err());
        }
    }

    #[test]
    fn appenduid_of_a_multiappend() {
        let ok = tagged(b"p9 OK [APPENDUID 38505 3955:3957,3960] done\r\n");
        assert_eq!(
            append_uids(&ok, 4).unwrap(),
            Some((38505, vec![3955, 3956, 3957, 3960]))
        );
        assert_eq!(append_uids(&tagged(b"p9 OK done\r\n"), 2).unwrap(), None);
        for (bad, n) in [
            (&b"p9 OK [APPENDUID 1 1:4294967295] x\r\n"[..], 3),
            (b"p9 OK [APPENDUID 1 1:3] x\r\n", 2),
            (b"p9 OK [APPENDUID 1 1:*] x\r\n", 1),
            (b"p9 OK [APPENDUID 1 0] x\r\n", 1),
            (b"p9 OK [APPENDUID 0 5] x\r\n", 1),
            (b"p9 OK [APPENDUID 1] x\r\n", 1),
            (b"p9 OK [APPENDUID 1 2 3] x\r\n", 1),
        ] {
            assert!(append_uids(&tagged(bad), n).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn appenduid() {
        let ok = tagged(b"p9 OK [APPENDUID 1700000000 12] Append completed.\r\n");
        assert_eq!(append_uid(&ok).unwrap(), Some((1_700_000_000, 12)));
        assert_eq!(append_uid(&tagged(b"p9 OK done\r\n")).unwrap(), None);
        for bad in [
            &b"p9 OK [APPENDUID 5] x\r\n"[..],
            b"p9 OK [APPENDUID 5 1:3] x\r\n",
        ] {
            assert!(append_uid(&tagged(bad)).is_err());
        }
    }
}
