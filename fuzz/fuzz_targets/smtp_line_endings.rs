//! Whole SMTP sessions with arbitrary line endings, against the smuggling class of bugs
//! (CVE-2023-51764): the session (`mta::session`) is driven as `mta::server` drives it, every
//! recipient accepted and every message stored.
//!
//! Input: the client's byte stream, with a few bytes standing for the pieces an attacker
//! combines, so the fuzzer reaches DATA and plays with line endings quickly:
//! 0xF0 CRLF, 0xF1 bare LF, 0xF2 bare CR, 0xF3 `MAIL FROM:<a@b.example>` CRLF,
//! 0xF4 `RCPT TO:<ana@ours.example>` CRLF, 0xF5 `DATA` CRLF, 0xF6 `.` CRLF, 0xF7 `EHLO c` CRLF.
//!
//! Invariants:
//! - the number of 250 replies after DATA equals the number of messages stored;
//! - data ends exactly where an independent scan of the raw bytes finds the first
//!   `<CR><LF>.<CR><LF>` after the DATA command (its CRLF counts), never earlier or later;
//! - a stored message has CRLF line endings only (bare CR and LF normalised).

#![no_main]

use libfuzzer_sys::fuzz_target;
use posta::mta::policy::{Accept, Verdict};
use posta::mta::session::{Limits, Session, Step};
use posta::proto::LineBuffer;
use posta::proto::dotstuff::MAX_DATA_LINE;
use posta::proto::smtp_server::MAX_COMMAND_LINE;

fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4);
    for &b in data {
        match b {
            0xF0 => out.extend_from_slice(b"\r\n"),
            0xF1 => out.push(b'\n'),
            0xF2 => out.push(b'\r'),
            0xF3 => out.extend_from_slice(b"MAIL FROM:<a@b.example>\r\n"),
            0xF4 => out.extend_from_slice(b"RCPT TO:<ana@ours.example>\r\n"),
            0xF5 => out.extend_from_slice(b"DATA\r\n"),
            0xF6 => out.extend_from_slice(b".\r\n"),
            0xF7 => out.extend_from_slice(b"EHLO c\r\n"),
            b => out.push(b),
        }
    }
    out
}

/// Where the data that starts at `start` ends (just past the terminating CRLF.CRLF), by a scan
/// that knows nothing of lines: the DATA command's line ending (whatever it was) counts as the
/// first CRLF.
fn reference_end(stream: &[u8], start: usize) -> Option<usize> {
    if stream[start..].starts_with(b".\r\n") {
        return Some(start + 3);
    }
    stream[start..]
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|i| start + i + 5)
}

fn only_crlf(m: &[u8]) -> bool {
    m.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => m.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && m[i - 1] == b'\r',
        _ => true,
    })
}

fuzz_target!(|data: &[u8]| {
    let stream = expand(data);
    let limits = Limits {
        hostname: "mx.fuzz.example".into(),
        ..Limits::default()
    };
    let mut session = Session::new(limits, "203.0.113.9".parse().expect("ip"), false, || {
        "FUZZ0002".into()
    });
    let mut input = LineBuffer::new();
    input.extend(&stream);
    let mut consumed = 0usize;
    let mut data_ends: Option<usize> = None;
    let (mut stored, mut queued_replies) = (0usize, 0usize);
    loop {
        let in_data = session.in_data();
        let limit = if in_data {
            MAX_DATA_LINE
        } else {
            MAX_COMMAND_LINE
        };
        let line = match input.next_line_limited(limit) {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => break,
        };
        consumed += line.len();
        let step = session.line(&line);
        if let Some(end) = data_ends {
            let ended = !session.in_data();
            assert_eq!(
                ended,
                consumed == end,
                "data ended at {consumed}, the raw scan says {end}: {stream:?}"
            );
            assert!(consumed <= end, "data ran past its end");
            if ended {
                data_ends = None;
            }
        }
        match step {
            Step::Reply(r) => {
                if !in_data && r.starts_with(b"354") {
                    data_ends = reference_end(&stream, consumed);
                    if data_ends.is_none() {
                        // The data never ends: nothing may be stored from here on.
                        data_ends = Some(usize::MAX);
                    }
                }
            }
            Step::Close(_) => break,
            Step::StartTls(_) => break,
            Step::CheckRcpt { .. } => {
                let r = session.rcpt_checked(Verdict::Accept(Accept::Local("ana".into())));
                assert!(r.starts_with(b"2") || r.starts_with(b"4") || r.starts_with(b"5"));
            }
            Step::Store(t) => {
                let header_end = t
                    .message
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(0, |i| i + 4);
                assert!(
                    only_crlf(&t.message),
                    "bare CR or LF stored: {:?}",
                    t.message
                );
                assert!(header_end <= t.message.len());
                stored += 1;
                let r = session.stored(Ok(()), &t.id);
                if r.starts_with(b"250 ") {
                    queued_replies += 1;
                }
            }
            Step::Etrn { .. } => {}
        }
    }
    assert_eq!(
        queued_replies, stored,
        "a 250 after DATA for each stored message"
    );
});
