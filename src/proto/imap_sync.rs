//! Quick mailbox resynchronization (RFC 7162): CONDSTORE's mod-sequences and QRESYNC's
//! `VANISHED` responses, for `posta mirror`.
//!
//! - CONDSTORE (§3.1): every message has a MODSEQ that grows with each change; SELECT reports
//!   the mailbox's `[HIGHESTMODSEQ n]` (or `[NOMODSEQ]` when the mailbox keeps none), and
//!   `UID FETCH set (FLAGS) (CHANGEDSINCE n)` returns only the messages changed since `n`.
//! - QRESYNC (§3.2): after `ENABLE QRESYNC`, `SELECT box (QRESYNC (uidvalidity modseq))`
//!   answers with `* VANISHED (EARLIER) uid-set` for the messages expunged since `modseq` and a
//!   FETCH (UID, FLAGS, MODSEQ) for each message changed or added since: one round trip for a
//!   mailbox that did not change.
//!
//! A VANISHED set is kept as ranges, never expanded: `1:4294967295` is two numbers, not four
//! billion.

use super::ProtoError;
use super::imap_lex::Lexer;

/// The largest mod-sequence (RFC 7162 §7: `mod-sequence-value` is 63-bit).
pub const MAX_MODSEQ: u64 = (1 << 63) - 1;

/// A set of UIDs as sorted, disjoint, inclusive ranges (`1:3,7` is `[(1, 3), (7, 7)]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UidRanges(Vec<(u32, u32)>);

impl UidRanges {
    /// Whether `uid` is in the set.
    pub fn contains(&self, uid: u32) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < uid);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= uid)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the ranges of `other`.
    pub fn extend(&mut self, other: &UidRanges) {
        self.0.extend_from_slice(&other.0);
        self.normalize();
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }

    fn normalize(&mut self) {
        self.0.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(self.0.len());
        for &(lo, hi) in &self.0 {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        self.0 = out;
    }

    /// `uid-set` (RFC 4315 §4, used by VANISHED and APPENDUID): `n` or `n:m` separated by
    /// commas, no `*`, no 0. `m:n` with `m > n` is the same range (RFC 3501 §9 `seq-range`).
    pub(super) fn parse_set(lex: &mut Lexer<'_>) -> Result<UidRanges, ProtoError> {
        let mut ranges = Vec::new();
        loop {
            let a = uid(lex)?;
            let b = if lex.eat(b':') { uid(lex)? } else { a };
            ranges.push((a.min(b), a.max(b)));
            if !lex.eat(b',') {
                break;
            }
        }
        let mut set = UidRanges(ranges);
        set.normalize();
        Ok(set)
    }
}

fn uid(lex: &mut Lexer<'_>) -> Result<u32, ProtoError> {
    if lex.peek() == Some(b'*') {
        return Err(lex.error("`*` in a VANISHED UID set"));
    }
    match lex.number()? {
        0 => Err(lex.error("UID 0 in a UID set")),
        n => Ok(n),
    }
}

/// `* VANISHED [(EARLIER)] uid-set` (RFC 7162 §3.2.10), after the word VANISHED: whether it
/// was EARLIER (an answer to QRESYNC or CHANGEDSINCE VANISHED) and the UIDs.
pub(super) fn vanished(lex: &mut Lexer<'_>) -> Result<(bool, UidRanges), ProtoError> {
    lex.expect(b' ')?;
    let earlier = if lex.eat(b'(') {
        let word = lex.atom()?;
        if !word.eq_ignore_ascii_case("EARLIER") {
            return Err(lex.error("VANISHED tag other than EARLIER"));
        }
        lex.expect(b')')?;
        lex.expect(b' ')?;
        true
    } else {
        false
    };
    Ok((earlier, UidRanges::parse_set(lex)?))
}

/// `MODSEQ (n)` in a FETCH response (RFC 7162 §3.1.4.1), after the item name: a positive
/// 63-bit number in parentheses.
pub(super) fn fetch_modseq(lex: &mut Lexer<'_>) -> Result<u64, ProtoError> {
    lex.expect(b'(')?;
    let n = lex.number64()?;
    lex.expect(b')')?;
    check_modseq(n).map_err(|_| lex.error("MODSEQ out of range"))
}

/// A mod-sequence from a response code (`[HIGHESTMODSEQ n]`): 1..=2^63-1.
pub fn parse_modseq(text: &str) -> Result<u64, ProtoError> {
    let bad = || ProtoError::Malformed(format!("bad mod-sequence {text:?}"));
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = trimmed.parse().map_err(|_| bad())?;
    check_modseq(n).map_err(|_| bad())
}

fn check_modseq(n: u64) -> Result<u64, ()> {
    if (1..=MAX_MODSEQ).contains(&n) {
        Ok(n)
    } else {
        Err(())
    }
}

/// The parameter of `SELECT box (QRESYNC (uidvalidity modseq))` (RFC 7162 §3.2.5).
pub fn qresync_param(uidvalidity: u32, modseq: u64) -> String {
    format!("(QRESYNC ({uidvalidity} {modseq}))")
}

/// The modifier of `UID FETCH set (...) (CHANGEDSINCE modseq)` (RFC 7162 §3.1.4.1).
pub fn changedsince(modseq: u64) -> String {
    format!("(CHANGEDSINCE {modseq})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(text: &str) -> Result<UidRanges, ProtoError> {
        let wire = format!("{text}\r\n");
        let mut lex = Lexer::new(wire.as_bytes());
        let set = UidRanges::parse_set(&mut lex)?;
        if !lex.at_end() {
            return Err(lex.error("trailing data"));
        }
        Ok(set)
    }

    #[test]
    fn uid_sets_become_sorted_merged_ranges() {
        let set = ranges("7,1:3,4,10:9,2").unwrap();
        assert_eq!(set.ranges(), [(1, 4), (7, 7), (9, 10)]);
        assert!(set.contains(1) && set.contains(4) && set.contains(9));
        assert!(!set.contains(5) && !set.contains(11) && !set.contains(0));
    }

    #[test]
    fn a_huge_range_stays_two_numbers() {
        let set = ranges("1:4294967295").unwrap();
        assert_eq!(set.ranges(), [(1, u32::MAX)]);
        assert!(set.contains(u32::MAX) && set.contains(123_456_789));
    }

    #[test]
    fn hostile_uid_sets_fail() {
        for bad in [
            "",
            "0",
            "1:0",
            "1:*",
            "*",
            "1,",
            ",1",
            "1::2",
            "4294967296",
            "a",
            "1:-2",
        ] {
            assert!(ranges(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn modseqs() {
        assert_eq!(parse_modseq("715194045007").unwrap(), 715_194_045_007);
        assert_eq!(parse_modseq(&MAX_MODSEQ.to_string()).unwrap(), MAX_MODSEQ);
        for bad in [
            "0",
            "",
            "-1",
            "12a",
            "9223372036854775808",
            "99999999999999999999999",
            "1 2",
        ] {
            assert!(parse_modseq(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            qresync_param(67890007, 90060115194045000),
            "(QRESYNC (67890007 90060115194045000))"
        );
        assert_eq!(changedsince(12), "(CHANGEDSINCE 12)");
    }
}
