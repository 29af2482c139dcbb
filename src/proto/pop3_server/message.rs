//! Message data as RETR and TOP send it (RFC 1939 §7): CRLF line ends whatever the Maildir
//! file used, octet counts that match, dot-stuffing by `dotstuff::Stuffer`. [`Render`] works on
//! pieces of the file, so a big message is streamed, never held whole.
//!
//! Every line end becomes CRLF: a bare LF (Postfix and Dovecot store LF) and a bare CR too. A
//! bare CR left as data would let a client that ends lines at CR see `.` alone on a line, a
//! premature end of the message (the POP3 side of SMTP smuggling); with only CRLF on the wire,
//! every line that begins with `.` is stuffed and the only `CRLF.CRLF` is the terminator.

use super::super::dotstuff::Stuffer;
use super::line;

/// The stored bytes as RETR sends them before dot-stuffing: every bare LF and bare CR becomes
/// CRLF and a last line without a line end gets one (the `.` terminator must start a line).
/// Maildir files from Postfix or Dovecot end lines with LF, posta's own deliveries with CRLF:
/// both come out the same.
pub fn normalize(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 2);
    let mut crlf = Crlf::default();
    crlf.feed(data, |b| out.push(b));
    crlf.finish(|b| out.push(b));
    out
}

/// `normalize(data).len()` without the copy: the octet count LIST and STAT report.
pub fn normalized_len(data: &[u8]) -> u64 {
    let mut len = CrlfLen::default();
    len.feed(data);
    len.finish()
}

/// [`normalized_len`] of a message read in pieces (a file streamed at login, or spooled while
/// it arrives): feed every piece in order, then [`CrlfLen::finish`].
#[derive(Debug, Clone, Default)]
pub struct CrlfLen {
    crlf: Crlf,
    len: u64,
}

impl CrlfLen {
    pub fn feed(&mut self, data: &[u8]) {
        let mut n = 0u64;
        self.crlf.feed(data, |_| n += 1);
        self.len += n;
    }

    /// The normalized length of everything fed.
    pub fn finish(mut self) -> u64 {
        let mut n = 0u64;
        self.crlf.finish(|_| n += 1);
        self.len + n
    }
}

/// Line-end normalisation as a byte stream: the state is the previous byte (a CR may still
/// be followed by its LF) and whether a line is open.
#[derive(Debug, Clone)]
struct Crlf {
    after_cr: bool,
    at_line_start: bool,
}

impl Default for Crlf {
    fn default() -> Crlf {
        Crlf {
            after_cr: false,
            at_line_start: true,
        }
    }
}

impl Crlf {
    fn feed(&mut self, data: &[u8], mut emit: impl FnMut(u8)) {
        for &b in data {
            if self.after_cr {
                // CR then anything but LF: the CR ended a line by itself.
                emit(b'\n');
                self.after_cr = false;
                self.at_line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    emit(b'\r');
                    self.after_cr = true;
                }
                b'\n' => {
                    emit(b'\r');
                    emit(b'\n');
                    self.at_line_start = true;
                }
                _ => {
                    emit(b);
                    self.at_line_start = false;
                }
            }
        }
    }

    fn finish(&mut self, mut emit: impl FnMut(u8)) {
        if self.after_cr {
            emit(b'\n');
        } else if !self.at_line_start {
            emit(b'\r');
            emit(b'\n');
        }
        *self = Crlf::default();
    }
}

/// The first line of the reply to RETR (with the message's normalized size) or TOP.
pub fn retr_status(size: u64, top: Option<u64>) -> Vec<u8> {
    match top {
        None => line(&format!("+OK {size} octets")),
        Some(_) => line("+OK top of message follows"),
    }
}

/// RETR's (`top: None`) or TOP n k's data, from the stored bytes fed in pieces: normalized,
/// cut after the header, the blank line and k body lines for TOP (RFC 1939 §7), dot-stuffed,
/// then the `.` terminator from [`Render::finish`].
#[derive(Debug)]
pub struct Render {
    crlf: Crlf,
    stuffer: Stuffer,
    top: Option<u64>,
    /// Of the normalized output: at the start of a line, its length so far, whether the
    /// header has ended, body lines started, and whether TOP's cut was reached.
    at_line_start: bool,
    line_len: usize,
    in_body: bool,
    body_lines: u64,
    done: bool,
    normalized: Vec<u8>,
}

impl Render {
    pub fn new(top: Option<u64>) -> Render {
        Render {
            crlf: Crlf::default(),
            stuffer: Stuffer::new(),
            top,
            at_line_start: true,
            line_len: 0,
            in_body: false,
            body_lines: 0,
            done: false,
            normalized: Vec::new(),
        }
    }

    /// Appends the wire form of the next piece of the stored message to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut normalized = std::mem::take(&mut self.normalized);
        normalized.clear();
        self.crlf.feed(data, |b| normalized.push(b));
        self.cut_and_stuff(&normalized, out);
        self.normalized = normalized;
    }

    /// Ends the data: the last line's CRLF if it had none, and `.` CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let mut rest = Vec::with_capacity(2);
        self.crlf.finish(|b| rest.push(b));
        self.cut_and_stuff(&rest, out);
        self.stuffer.finish(out);
    }

    fn cut_and_stuff(&mut self, normalized: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let mut end = normalized.len();
        for (i, &b) in normalized.iter().enumerate() {
            if self.at_line_start && self.in_body {
                if self.top == Some(self.body_lines) {
                    self.done = true;
                    end = i;
                    break;
                }
                self.body_lines += 1;
            }
            match b {
                b'\n' => {
                    if !self.in_body && self.line_len == 0 {
                        self.in_body = true;
                    }
                    self.at_line_start = true;
                    self.line_len = 0;
                }
                b'\r' => self.at_line_start = false,
                _ => {
                    self.at_line_start = false;
                    self.line_len += 1;
                }
            }
        }
        self.stuffer.encode(&normalized[..end], out);
    }
}

/// The whole reply to RETR (`top: None`) or TOP n k: `+OK`, the normalized message (or its
/// header, the blank line and the first k body lines, RFC 1939 §7), dot-stuffed, then `.`.
pub fn render_message(data: &[u8], top: Option<u64>) -> Vec<u8> {
    let mut out = retr_status(normalized_len(data), top);
    let mut render = Render::new(top);
    render.feed(data, &mut out);
    render.finish(&mut out);
    out
}
