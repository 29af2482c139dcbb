//! The POP3 server session (`proto::pop3_server`) driven as `mta::pop3` drives it, with
//! hostile client bytes. Input: one flag byte, 16 bytes the driver's answers are chosen from
//! (cycled), then the client's byte stream framed with the session's own line limits.
//!
//! Checked beyond "no panic": replies are CRLF lines starting `+OK`, `-ERR` or `+ ` (a SASL
//! continuation); a RETR or TOP names a message that exists; a commit names each message at
//! most once; a password is only handed over when the connection allows it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use posta::proto::LineBuffer;
use posta::proto::pop3_server::{
    Action, LoginResult, MessageInfo, Session, SessionOptions, normalize, normalized_len,
    parse_command, render_message,
};

const MESSAGES: [&[u8]; 3] = [
    b"Subject: one\r\n\r\nbody\r\n.dotted\r\n",
    b"Subject: two\n\nbare LF\nlines\n",
    b"",
];

fn check_reply(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    assert!(
        bytes.ends_with(b"\r\n"),
        "reply not CRLF-terminated: {bytes:?}"
    );
    assert!(
        bytes.starts_with(b"+OK") || bytes.starts_with(b"-ERR") || bytes.starts_with(b"+ "),
        "bad status: {bytes:?}"
    );
    for l in bytes[..bytes.len() - 2].split(|&b| b == b'\n') {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        assert!(!l.contains(&b'\r'), "bare CR in reply: {bytes:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let (flags, pool, stream) = (data[0], &data[1..17], &data[17..]);
    let mut next = 0usize;
    let mut choice = || {
        let b = pool[next % pool.len()];
        next += 1;
        b
    };
    let opts = SessionOptions {
        tls: flags & 1 != 0,
        stls_available: flags & 2 != 0,
        plaintext_auth: flags & 4 != 0,
    };
    let mut tls = opts.tls;
    let mut session = Session::new(opts);
    check_reply(&session.greeting());
    let mut messages: Vec<MessageInfo> = Vec::new();
    let mut input = LineBuffer::new();
    input.extend(stream);
    loop {
        let line = match input.next_line_limited(session.line_limit()) {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(_) => {
                let step = session.line_too_long();
                check_reply(&step.reply);
                assert_eq!(step.action, Action::Close);
                return;
            }
        };
        let _ = parse_command(&line);
        assert_eq!(normalize(&line).len() as u64, normalized_len(&line));
        assert!(render_message(&line, Some(u64::from(line[0]))).ends_with(b"\r\n.\r\n"));
        let _ = session.redact(&line);
        let mut step = session.feed(&line);
        loop {
            check_reply(&step.reply);
            match step.action {
                Action::None => break,
                Action::Close => return,
                Action::StartTls => {
                    assert!(opts.stls_available && !tls, "STLS when not offered");
                    session.tls_started();
                    tls = true;
                    break;
                }
                Action::Authenticate { .. } => {
                    assert!(tls || opts.plaintext_auth, "password taken in clear");
                    let result = match choice() % 4 {
                        0 => {
                            messages = MESSAGES
                                .iter()
                                .take(usize::from(choice() % 4))
                                .enumerate()
                                .map(|(i, m)| MessageInfo {
                                    size: normalized_len(m),
                                    uid: format!("uid{i}"),
                                })
                                .collect();
                            LoginResult::Ok(messages.clone())
                        }
                        1 => LoginResult::Failed,
                        2 => LoginResult::InUse,
                        _ => LoginResult::TempFail,
                    };
                    step = session.authenticated(result);
                }
                Action::Retrieve { index, top } => {
                    assert!(
                        index < messages.len(),
                        "RETR of a message that does not exist"
                    );
                    let m = MESSAGES[index];
                    assert_eq!(normalize(m).len() as u64, messages[index].size);
                    let out = render_message(m, top);
                    assert!(out.ends_with(b"\r\n.\r\n"), "message not terminated");
                    break;
                }
                Action::Commit { deleted } => {
                    assert!(
                        deleted.windows(2).all(|w| w[0] < w[1]),
                        "commit: {deleted:?}"
                    );
                    assert!(deleted.iter().all(|&i| i < messages.len()));
                    let result = if choice() % 2 == 0 {
                        Ok(())
                    } else {
                        Err("fuzz: disk \r\n error".to_string())
                    };
                    step = session.committed(result);
                }
            }
        }
    }
});
