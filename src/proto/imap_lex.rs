//! A cursor over one complete IMAP response as it came off the wire: its lines with their CRLF
//! and every literal's data in place (RFC 3501 §4.3: `{n}` CRLF then n octets). The response
//! parsers read atoms, numbers, strings and lists with it; nothing here allocates for literals,
//! which come back as ranges so a message body is never copied.

use std::ops::Range;

use super::{ProtoError, escape};

/// A string value: quoted strings are unescaped into `Owned`, literals stay where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Str {
    Owned(Vec<u8>),
    At(Range<usize>),
}

pub struct Lexer<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(wire: &'a [u8]) -> Lexer<'a> {
        Lexer { wire, pos: 0 }
    }

    /// A malformed-response error that shows where the cursor stopped.
    pub fn error(&self, what: &str) -> ProtoError {
        let at = self.pos.min(self.wire.len());
        ProtoError::Malformed(format!(
            "{what} at octet {at}: {}",
            escape(&self.wire[at..])
        ))
    }

    pub fn peek(&self) -> Option<u8> {
        self.wire.get(self.pos).copied()
    }

    /// Consumes `b` if it is next.
    pub fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    pub fn expect(&mut self, b: u8) -> Result<(), ProtoError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {:?}", char::from(b))))
        }
    }

    /// Steps over one octet (inside data a parser skips).
    pub fn skip_one(&mut self) {
        self.pos += 1;
    }

    /// True when only the line terminator is left.
    pub fn at_end(&self) -> bool {
        matches!(
            &self.wire[self.pos.min(self.wire.len())..],
            b"\r\n" | b"\n" | b""
        )
    }

    /// Skips whatever is left (extension data a parser does not need).
    pub fn finish(&mut self) {
        self.pos = self.wire.len();
    }

    /// ATOM-CHAR run (RFC 3501 §9): no specials, SP, CTL, `%`, `*`, quote, backslash or `]`.
    pub fn atom(&mut self) -> Result<&'a str, ProtoError> {
        self.run(
            |b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b),
            "expected an atom",
        )
    }

    /// A flag (RFC 3501 §9 `flag`, `flag-perm`): an atom, optionally after `\`; `\*` too.
    pub fn flag(&mut self) -> Result<&'a str, ProtoError> {
        let start = self.pos;
        if self.eat(b'\\') && self.eat(b'*') {
            return Ok("\\*");
        }
        self.atom()?;
        self.text(start)
    }

    /// A parenthesized, space-separated list of flags or attributes.
    pub fn flag_list(&mut self) -> Result<Vec<String>, ProtoError> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        while !self.eat(b')') {
            if !flags.is_empty() {
                self.expect(b' ')?;
            }
            flags.push(self.flag()?.to_owned());
        }
        Ok(flags)
    }

    /// A FETCH item name such as `UID`, `RFC822.SIZE` or `BODY[]<0>`: an atom with an optional
    /// section in brackets (which may hold spaces) and an optional `<origin>`.
    pub fn item_name(&mut self) -> Result<String, ProtoError> {
        let start = self.pos;
        self.run(
            |b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\[]".contains(&b),
            "expected an item name",
        )?;
        if self.eat(b'[') {
            while !self.eat(b']') {
                match self.peek() {
                    Some(b'\r' | b'\n') | None => return Err(self.error("unclosed section")),
                    Some(_) => self.pos += 1,
                }
            }
            if self.eat(b'<') {
                self.run(|b| b.is_ascii_digit(), "expected an origin")?;
                self.expect(b'>')?;
            }
        }
        Ok(self.text(start)?.to_ascii_uppercase())
    }

    pub fn number(&mut self) -> Result<u32, ProtoError> {
        let digits = self.run(|b| b.is_ascii_digit(), "expected a number")?;
        digits
            .parse()
            .map_err(|_| self.error("number out of range"))
    }

    /// RFC 9051 allows 63-bit sizes (`number64`); RFC822.SIZE uses it.
    pub fn number64(&mut self) -> Result<u64, ProtoError> {
        let digits = self.run(|b| b.is_ascii_digit(), "expected a number")?;
        digits
            .parse()
            .map_err(|_| self.error("number out of range"))
    }

    /// `NIL` or a string (RFC 3501 §9 `nstring`).
    pub fn nstring(&mut self) -> Result<Option<Str>, ProtoError> {
        if self.nil() {
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// Consumes `NIL` if it is next.
    pub fn nil(&mut self) -> bool {
        let hit = self.wire[self.pos.min(self.wire.len())..]
            .get(..3)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"NIL"))
            && !self
                .wire
                .get(self.pos + 3)
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if hit {
            self.pos += 3;
        }
        hit
    }

    /// A quoted string or a literal.
    pub fn string(&mut self) -> Result<Str, ProtoError> {
        match self.peek() {
            Some(b'"') => self.quoted().map(Str::Owned),
            Some(b'{') => self.literal().map(Str::At),
            _ => Err(self.error("expected a string")),
        }
    }

    /// A string or an atom (RFC 3501 §9 `astring`), as owned bytes.
    pub fn astring(&mut self) -> Result<Vec<u8>, ProtoError> {
        match self.peek() {
            Some(b'"' | b'{') => {
                let s = self.string()?;
                Ok(self.bytes(&s).to_vec())
            }
            _ => {
                let start = self.pos;
                self.run(
                    |b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\".contains(&b),
                    "",
                )
                .map_err(|_| self.error("expected a string or atom"))?;
                Ok(self.wire[start..self.pos].to_vec())
            }
        }
    }

    /// The octets a string value stands for.
    pub fn bytes<'s>(&'s self, s: &'s Str) -> &'s [u8] {
        match s {
            Str::Owned(v) => v,
            Str::At(r) => &self.wire[r.clone()],
        }
    }

    fn quoted(&mut self) -> Result<Vec<u8>, ProtoError> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err(self.error("bad escape in quoted string")),
                    }
                }
                Some(b'\r' | b'\n') | None => return Err(self.error("unterminated quoted string")),
                Some(c) => out.push(c),
            }
            self.pos += 1;
        }
    }

    fn literal(&mut self) -> Result<Range<usize>, ProtoError> {
        self.expect(b'{')?;
        let n = self.number()? as usize;
        self.eat(b'+');
        self.expect(b'}')?;
        self.eat(b'\r');
        self.expect(b'\n')?;
        let start = self.pos;
        if self.wire.len() - start < n {
            return Err(self.error("literal shorter than announced"));
        }
        self.pos += n;
        Ok(start..start + n)
    }

    fn run(&mut self, ok: impl Fn(u8) -> bool, what: &str) -> Result<&'a str, ProtoError> {
        let start = self.pos;
        while self.peek().is_some_and(&ok) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error(what));
        }
        self.text(start)
    }

    fn text(&self, start: usize) -> Result<&'a str, ProtoError> {
        std::str::from_utf8(&self.wire[start..self.pos]).map_err(|_| self.error("not ASCII"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tokens() {
        let wire =
            b"UID 7 BODY[HEADER.FIELDS (A B)]<0> \\Seen \\* \"a\\\"b\" {3}\r\nx\ny NIL Nile\r\n";
        let mut l = Lexer::new(wire);
        assert_eq!(l.atom().unwrap(), "UID");
        l.expect(b' ').unwrap();
        assert_eq!(l.number().unwrap(), 7);
        l.expect(b' ').unwrap();
        assert_eq!(l.item_name().unwrap(), "BODY[HEADER.FIELDS (A B)]<0>");
        l.expect(b' ').unwrap();
        assert_eq!(l.flag().unwrap(), "\\Seen");
        l.expect(b' ').unwrap();
        assert_eq!(l.flag().unwrap(), "\\*");
        l.expect(b' ').unwrap();
        assert_eq!(l.string().unwrap(), Str::Owned(b"a\"b".to_vec()));
        l.expect(b' ').unwrap();
        let lit = l.string().unwrap();
        assert_eq!(l.bytes(&lit), b"x\ny");
        l.expect(b' ').unwrap();
        assert_eq!(l.nstring().unwrap(), None);
        l.expect(b' ').unwrap();
        assert_eq!(l.astring().unwrap(), b"Nile");
        assert!(l.at_end());
        let mut l = Lexer::new(b"(\\Seen $Junk \\*) ()");
        assert_eq!(l.flag_list().unwrap(), ["\\Seen", "$Junk", "\\*"]);
        l.expect(b' ').unwrap();
        assert!(l.flag_list().unwrap().is_empty());
    }

    #[test]
    fn refuses_broken_tokens() {
        assert!(Lexer::new(b"{5}\r\nab").string().is_err());
        assert!(Lexer::new(b"\"open\r\n").string().is_err());
        assert!(Lexer::new(b"\"bad \\x\"").string().is_err());
        assert!(Lexer::new(b"99999999999").number().is_err());
        assert!(Lexer::new(b"BODY[ \r\n").item_name().is_err());
        assert!(Lexer::new(b"(x)").atom().is_err());
        assert!(Lexer::new(b"(\\Seen  x)").flag_list().is_err());
        assert!(Lexer::new(b"{99999999999}\r\n").string().is_err());
    }
}
