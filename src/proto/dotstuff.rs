//! Message data transparency in both directions: POP3 RETR bodies come dot-stuffed and end with
//! a lone `.` (RFC 1939 §3); SMTP/LMTP DATA goes out the same way with CRLF line ends (RFC 5321
//! §4.5.2, §2.3.8). Both sides stream: no whole-message copy beyond the one being built.

use super::ProtoError;

/// Longest message line accepted from a server, terminator included. RFC 5322 §2.1.1 limits
/// lines to 998 octets, but real mail (generated HTML, base64 without line breaks) is longer;
/// a line beyond a mebibyte is a hostile or broken server.
pub const MAX_DATA_LINE: usize = 1 << 20;

/// Largest message a POP3 RETR may deliver to us. A hostile or broken server could stream a body
/// forever; real limits are far below this (Postfix 10 MB by default, Exchange Online 150 MB).
pub const MAX_MESSAGE: usize = 256 << 20;

/// A message received with RETR, as it is stored on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstuffed {
    /// The message bytes, dot-stuffing removed and the terminating `.` line dropped.
    pub message: Vec<u8>,
    /// Lines that ended in a bare LF instead of CRLF. They are kept exactly as received (the
    /// message stays byte-exact) and counted so the driver can say the server broke RFC 1939 §3.
    pub bare_lf_lines: usize,
}

/// Collects a RETR body line by line after its `+OK` status line (RFC 1939 §3): a line starting
/// with `.` loses that dot, a line of exactly `.` ends the body. Bytes are never interpreted as
/// text, so 8-bit and binary content passes through untouched.
#[derive(Debug)]
pub struct Unstuffer {
    message: Vec<u8>,
    bare_lf_lines: usize,
    limit: usize,
}

impl Default for Unstuffer {
    fn default() -> Unstuffer {
        Unstuffer::with_limit(MAX_MESSAGE)
    }
}

impl Unstuffer {
    pub fn new() -> Unstuffer {
        Unstuffer::default()
    }

    /// An unstuffer that refuses messages longer than `limit` octets.
    pub fn with_limit(limit: usize) -> Unstuffer {
        Unstuffer {
            message: Vec::new(),
            bare_lf_lines: 0,
            limit,
        }
    }

    /// Feeds one framed line (LF included). Returns the message once the terminating `.` line
    /// arrives; fails when the message grows beyond the limit ([`MAX_MESSAGE`] by default).
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Unstuffed>, ProtoError> {
        let Some(body) = line.strip_suffix(b"\n") else {
            return Err(ProtoError::Unterminated);
        };
        let crlf = body.ends_with(b"\r");
        // A server that ends lines with bare LF ends the body with ".\n" as well.
        if body == b".\r" || body == b"." {
            return Ok(Some(Unstuffed {
                message: std::mem::take(&mut self.message),
                bare_lf_lines: std::mem::take(&mut self.bare_lf_lines),
            }));
        }
        let data = line.strip_prefix(b".").unwrap_or(line);
        if self.message.len() + data.len() > self.limit {
            return Err(ProtoError::Malformed(format!(
                "message longer than {} octets",
                self.limit
            )));
        }
        if !crlf {
            self.bare_lf_lines += 1;
        }
        self.message.extend_from_slice(data);
        Ok(None)
    }
}

/// Does the message need an 8-bit transport (RFC 6152 BODY=8BITMIME)?
pub fn is_8bit(message: &[u8]) -> bool {
    !message.is_ascii()
}

/// Turns message bytes into SMTP DATA, chunk by chunk: bare LF becomes CRLF (RFC 5321 §2.3.8),
/// a line starting with `.` gets a second one (§4.5.2), and [`Stuffer::finish`] completes the
/// last line and appends the `.` line that ends the data. State carries across chunks, so a
/// CRLF or a line start split between two chunks is handled as if the message were whole.
///
/// A bare CR is left as it is: rewriting it would change the message, and servers treat it as
/// data (Postfix keeps it).
#[derive(Debug)]
pub struct Stuffer {
    at_line_start: bool,
    after_cr: bool,
}

impl Default for Stuffer {
    fn default() -> Stuffer {
        Stuffer::new()
    }
}

impl Stuffer {
    pub fn new() -> Stuffer {
        Stuffer {
            at_line_start: true,
            after_cr: false,
        }
    }

    /// Appends the wire form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 32 + 2);
        for &b in input {
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            if b == b'\n' && !self.after_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.at_line_start = b == b'\n';
            self.after_cr = b == b'\r';
        }
    }

    /// Appends what ends the data: CRLF if the message did not end with a line end (a trailing
    /// CR only needs its LF), then `.` CRLF. An empty message is just the `.` line.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.after_cr {
            out.push(b'\n');
        } else if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = Stuffer::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unstuff(lines: &[&[u8]]) -> Result<Option<Unstuffed>, ProtoError> {
        let mut u = Unstuffer::new();
        for line in lines {
            if let Some(done) = u.feed(line)? {
                return Ok(Some(done));
            }
        }
        Ok(None)
    }

    #[test]
    fn unstuffing_is_byte_exact() {
        let got = unstuff(&[
            b"Subject: x\r\n",
            b"\r\n",
            b"..leading dot\r\n",
            b"..\r\n",
            b"...\r\n",
            b".x not stuffed by a sloppy server\r\n",
            b"8-bit \xe9\xff and NUL \0 kept\r\n",
            b"bare CR\r inside\r\n",
            b".\r\n",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            got.message,
            b"Subject: x\r\n\r\n.leading dot\r\n.\r\n..\r\nx not stuffed by a sloppy server\r\n\
              8-bit \xe9\xff and NUL \0 kept\r\nbare CR\r inside\r\n"
        );
        assert_eq!(got.bare_lf_lines, 0);
    }

    #[test]
    fn terminator_ends_the_body_and_resets() {
        let mut u = Unstuffer::new();
        assert_eq!(u.feed(b"a\r\n").unwrap(), None);
        assert_eq!(u.feed(b".\r\n").unwrap().unwrap().message, b"a\r\n");
        // The next body starts empty.
        assert_eq!(u.feed(b".\r\n").unwrap().unwrap().message, b"");
        // Only a line of exactly "." ends the body.
        assert_eq!(u.feed(b". \r\n").unwrap(), None);
        assert_eq!(u.feed(b".\r\r\n").unwrap(), None);
        assert_eq!(u.feed(b".\r\n").unwrap().unwrap().message, b" \r\n\r\r\n");
    }

    #[test]
    fn bare_lf_lines_are_kept_and_counted() {
        let got = unstuff(&[b"a\n", b"b\r\n", b"..c\n", b".\n"])
            .unwrap()
            .unwrap();
        assert_eq!(got.message, b"a\nb\r\n.c\n");
        assert_eq!(got.bare_lf_lines, 2);
    }

    #[test]
    fn unterminated_line_and_endless_body_fail() {
        assert_eq!(Unstuffer::new().feed(b"abc"), Err(ProtoError::Unterminated));
        let mut u = Unstuffer::with_limit(10);
        assert_eq!(u.feed(b"12345678\r\n").unwrap(), None);
        let result = u.feed(b"x\n");
        assert!(
            matches!(&result, Err(ProtoError::Malformed(m)) if m == "message longer than 10 octets"),
            "{result:?}"
        );
    }

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = Stuffer::new();
        let mut out = Vec::new();
        for c in chunks {
            s.encode(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn stuffing_dots_and_line_ends() {
        assert_eq!(
            stuff(&[b".a\r\nb\n.\n..\r\nx.y\r\n"]),
            b"..a\r\nb\r\n..\r\n...\r\nx.y\r\n.\r\n"
        );
        // Missing final line end added; empty message is only the terminator.
        assert_eq!(stuff(&[b"no end"]), b"no end\r\n.\r\n");
        assert_eq!(stuff(&[b""]), b".\r\n");
        assert_eq!(stuff(&[b"cr end\r"]), b"cr end\r\n.\r\n");
        // Bare CR and 8-bit bytes pass through.
        assert_eq!(stuff(&[b"a\rb\xff\r\n"]), b"a\rb\xff\r\n.\r\n");
    }

    #[test]
    fn stuffing_state_crosses_chunks() {
        let whole = b"x\r\n.dot\r\nlf\n.\nend".as_slice();
        for split in 0..=whole.len() {
            let (a, b) = whole.split_at(split);
            assert_eq!(stuff(&[a, b]), stuff(&[whole]), "split at {split}");
        }
        assert_eq!(
            stuff(&[whole]),
            b"x\r\n..dot\r\nlf\r\n..\r\nend\r\n.\r\n".as_slice()
        );
    }

    #[test]
    fn stuffing_round_trips_through_unstuffing() {
        let message = b"From: a\r\n\r\n.\r\n..two\r\n\xe9t\xe9\r\n".as_slice();
        let wire = stuff(&[message]);
        let mut u = Unstuffer::new();
        let mut got = None;
        for line in wire.split_inclusive(|&b| b == b'\n') {
            got = u.feed(line).unwrap();
        }
        assert_eq!(got.unwrap().message, message);
    }

    #[test]
    fn eight_bit_detection() {
        assert!(!is_8bit(b"plain ascii\r\n"));
        assert!(is_8bit(b"caf\xc3\xa9"));
    }
}
