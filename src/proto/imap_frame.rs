//! Framing of one IMAP server response from lines and literals, without I/O.
//!
//! A response is a line, unless that line ends with a literal announcement `{n}`: then n octets
//! of data follow, then the response continues on the next line (RFC 3501 §4.3, §7). The driver
//! reads what [`Frame::need`] asks for and hands it over; the finished wire bytes go to
//! [`super::imap_data::parse`]. Status responses (`* OK ...`, tagged completions) and `+`
//! continuations end at their first line: their text may legitimately end in `{5}` (§9
//! `resp-text`), and reading five more octets would desynchronize the session.

use super::imap::literal_at_end;
use super::{MAX_REPLY_LINES, ProtoError};

/// What the driver must read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Up to this many more octets of literal data (read in chunks, each under the timeout).
    Literal(usize),
    /// The next line.
    Line,
    /// The response is complete.
    Done,
}

/// One response being assembled.
#[derive(Debug)]
pub struct Frame {
    wire: Vec<u8>,
    need: Need,
    /// Largest literal accepted: a message body for FETCH, far less elsewhere. Bounds memory
    /// against a server that announces `{4000000000}`.
    max_literal: usize,
    literals: usize,
}

impl Frame {
    /// Starts a response with its first line (terminator included).
    pub fn new(first: Vec<u8>, max_literal: usize) -> Result<Frame, ProtoError> {
        let mut frame = Frame {
            wire: Vec::new(),
            need: Need::Line,
            max_literal,
            literals: 0,
        };
        let status = is_status(&first);
        frame.wire = first;
        if status {
            frame.need = Need::Done;
        } else {
            frame.after_line(0)?;
        }
        Ok(frame)
    }

    /// What to read next.
    pub fn need(&self) -> Need {
        self.need
    }

    /// Adds literal data; at most what [`Need::Literal`] asked for is taken.
    pub fn push_literal(&mut self, data: &[u8]) -> Result<(), ProtoError> {
        let Need::Literal(left) = self.need else {
            return Err(ProtoError::Malformed("literal data not expected".into()));
        };
        if data.len() > left {
            return Err(ProtoError::Malformed(
                "more literal data than announced".into(),
            ));
        }
        self.wire.extend_from_slice(data);
        self.need = match left - data.len() {
            0 => Need::Line,
            more => Need::Literal(more),
        };
        Ok(())
    }

    /// Adds the line that follows a literal.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), ProtoError> {
        if self.need != Need::Line {
            return Err(ProtoError::Malformed("response line not expected".into()));
        }
        let start = self.wire.len();
        self.wire.extend_from_slice(line);
        self.after_line(start)
    }

    /// The complete response as it was on the wire.
    pub fn into_wire(self) -> Vec<u8> {
        self.wire
    }

    fn after_line(&mut self, start: usize) -> Result<(), ProtoError> {
        let Some(n) = literal_at_end(&self.wire[start..]) else {
            self.need = Need::Done;
            return Ok(());
        };
        if n > self.max_literal {
            return Err(ProtoError::Malformed(format!(
                "literal of {n} octets is larger than the {} accepted here",
                self.max_literal
            )));
        }
        self.literals += 1;
        if self.literals > MAX_REPLY_LINES {
            return Err(ProtoError::TooManyLines {
                limit: MAX_REPLY_LINES,
            });
        }
        // The literal arrives in chunks: room for all of it and the short line that ends the
        // response, taken at once, so a message held in memory (the body is cut out of this
        // buffer in place) costs its size, not the next power of two. `n` is bounded above.
        self.wire.reserve_exact(n.saturating_add(LINE_ROOM));
        self.need = if n == 0 { Need::Line } else { Need::Literal(n) };
        Ok(())
    }
}

/// Room reserved beyond a literal for the line that follows it (`)` and the CRLF, or a few
/// more FETCH items); a longer line only grows the buffer once more.
const LINE_ROOM: usize = 256;

/// `+ ...`, `tag OK|NO|BAD ...` and `* OK|NO|BAD|BYE|PREAUTH ...`: responses that carry text,
/// never literals.
fn is_status(line: &[u8]) -> bool {
    if line.starts_with(b"+") {
        return true;
    }
    let mut words = line.split(|&b| b == b' ');
    let (Some(first), Some(second)) = (words.next(), words.next()) else {
        return true;
    };
    if first != b"*" {
        return true;
    }
    let second = second.strip_suffix(b"\n").unwrap_or(second);
    let second = second.strip_suffix(b"\r").unwrap_or(second);
    ["OK", "NO", "BAD", "BYE", "PREAUTH"]
        .iter()
        .any(|c| second.eq_ignore_ascii_case(c.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_literals_in_place() {
        let mut f = Frame::new(b"* 1 FETCH (UID 9 BODY[] {5}\r\n".to_vec(), 100).unwrap();
        assert_eq!(f.need(), Need::Literal(5));
        f.push_literal(b"ab").unwrap();
        assert_eq!(f.need(), Need::Literal(3));
        f.push_literal(b"c\r\n").unwrap();
        assert_eq!(f.need(), Need::Line);
        f.push_line(b" FLAGS (\\Seen))\r\n").unwrap();
        assert_eq!(f.need(), Need::Done);
        assert_eq!(
            f.into_wire(),
            b"* 1 FETCH (UID 9 BODY[] {5}\r\nabc\r\n FLAGS (\\Seen))\r\n"
        );
    }

    #[test]
    fn a_literal_read_in_chunks_costs_its_size() {
        let n = 20_000;
        let mut f = Frame::new(
            format!("* 1 FETCH (UID 9 BODY[] {{{n}}}\r\n").into_bytes(),
            100_000,
        )
        .unwrap();
        for chunk in vec![b'x'; n].chunks(1_000) {
            f.push_literal(chunk).unwrap();
        }
        f.push_line(b" FLAGS (\\Seen))\r\n").unwrap();
        assert_eq!(f.need(), Need::Done);
        let wire = f.into_wire();
        assert!(
            wire.capacity() <= wire.len() + LINE_ROOM + 64,
            "{} bytes held for {}",
            wire.capacity(),
            wire.len()
        );
    }

    #[test]
    fn status_text_is_never_a_literal() {
        for line in [
            &b"p4 NO no such mailbox {5}\r\n"[..],
            b"* OK [ALERT] maintenance {3}\r\n",
            b"* BYE {2}\r\n",
            b"+ {10}\r\n",
        ] {
            assert_eq!(Frame::new(line.to_vec(), 100).unwrap().need(), Need::Done);
        }
        let list = Frame::new(b"* LIST () \"/\" {3}\r\n".to_vec(), 100).unwrap();
        assert_eq!(list.need(), Need::Literal(3));
    }

    #[test]
    fn empty_literal_goes_straight_to_the_next_line() {
        let f = Frame::new(b"* 2 FETCH (BODY[] {0}\r\n".to_vec(), 100).unwrap();
        assert_eq!(f.need(), Need::Line);
    }

    #[test]
    fn refuses_oversized_and_excess_data() {
        let big = Frame::new(b"* 1 FETCH (BODY[] {101}\r\n".to_vec(), 100);
        assert!(big.unwrap_err().to_string().contains("101 octets"));
        let mut f = Frame::new(b"* 1 FETCH (BODY[] {2}\r\n".to_vec(), 100).unwrap();
        assert!(f.push_literal(b"abc").is_err());
        assert!(f.push_line(b")\r\n").is_err());
    }
}
