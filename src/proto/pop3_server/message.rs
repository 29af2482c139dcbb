//! Message data as RETR and TOP send it (RFC 1939 §7): CRLF line ends whatever the Maildir
//! file used, octet counts that match, dot-stuffing by `dotstuff::Stuffer`.

use super::super::dotstuff::Stuffer;
use super::line;

/// The stored bytes as RETR sends them before dot-stuffing: every bare LF becomes CRLF and a
/// last line without a line end gets one (the `.` terminator must start a line). Maildir files
/// from Postfix or Dovecot end lines with LF, posta's own deliveries with CRLF: both come out
/// the same. A bare CR is data and stays (as `dotstuff::Stuffer` keeps it).
pub fn normalize(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 2);
    let mut prev = b'\n';
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    match prev {
        b'\n' => {}
        b'\r' => out.push(b'\n'),
        _ => out.extend_from_slice(b"\r\n"),
    }
    out
}

/// `normalize(data).len()` without the copy: the octet count LIST and STAT report.
pub fn normalized_len(data: &[u8]) -> u64 {
    let mut len = data.len() as u64;
    let mut prev = b'\n';
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            len += 1;
        }
        prev = b;
    }
    len + match prev {
        b'\n' => 0,
        b'\r' => 1,
        _ => 2,
    }
}

/// The whole reply to RETR (`top: None`) or TOP n k: `+OK`, the normalized message (or its
/// header, the blank line and the first k body lines, RFC 1939 §7), dot-stuffed, then `.`.
pub fn render_message(data: &[u8], top: Option<u64>) -> Vec<u8> {
    let message = normalize(data);
    let part = match top {
        None => &message[..],
        Some(k) => top_part(&message, k),
    };
    let status = match top {
        None => format!("+OK {} octets", message.len()),
        Some(_) => "+OK top of message follows".to_owned(),
    };
    let mut out = line(&status);
    let mut stuffer = Stuffer::new();
    stuffer.encode(part, &mut out);
    stuffer.finish(&mut out);
    out
}

/// The header, the empty line after it and up to `k` body lines of a normalized message; all
/// of it when there is no body.
fn top_part(message: &[u8], k: u64) -> &[u8] {
    let mut end = 0;
    let mut in_body = false;
    let mut body_lines = 0;
    for l in message.split_inclusive(|&b| b == b'\n') {
        if in_body {
            if body_lines == k {
                break;
            }
            body_lines += 1;
        } else if l == b"\r\n" {
            in_body = true;
        }
        end += l.len();
    }
    &message[..end]
}
