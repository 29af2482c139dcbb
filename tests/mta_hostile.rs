//! A hostile client against the real `posta mta` process, with a real Postfix given the same
//! bytes as the yardstick where it helps.
//!
//! SMTP smuggling (CVE-2023-51764 and its sendmail/Exim siblings; Postfix's defence is
//! `smtpd_forbid_bare_newline = normalize`, its default from 3.9). The attack: the outer message's data contains `<LF>.<CR><LF>` (or a bare CR before the dot)
//! followed by a second, attacker-written transaction. A receiver that takes that as the end
//! of the data stores two messages, the second with a forged envelope sender.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use support::maildir::messages;
use support::posta_mta::PostaMta;
use support::postfix::Options;
use support::{Ca, Postfix};

const BIN: &str = env!("CARGO_BIN_EXE_posta");

/// Every way of putting a bare LF or bare CR before the dot of a would-be end of data.
const VARIANTS: [&[u8]; 8] = [
    b"body\n.\r\n",
    b"body\r\n.\n",
    b"body\n.\n",
    b"body\r.\r\n",
    b"body\r\n.\r",
    b"body\r.\r",
    b"body\n\r.\r\n",
    b"body\r\n\n.\r\n",
];

/// The issue's repro, one variant: the outer transaction to ana, a smuggled one to bo.
fn attack(domain: &str, variant: &[u8], n: usize) -> Vec<u8> {
    let mut s = format!(
        "EHLO a\r\nMAIL FROM:<x@evil.test>\r\nRCPT TO:<ana@{domain}>\r\nDATA\r\n\
         Subject: outer {n}\r\n\r\n"
    )
    .into_bytes();
    s.extend_from_slice(variant);
    s.extend_from_slice(
        format!(
            "MAIL FROM:<ceo@{domain}>\r\nRCPT TO:<bo@{domain}>\r\nDATA\r\n\
             Subject: SMUGGLED {n}\r\n\r\nx\r\n.\r\nQUIT\r\n"
        )
        .as_bytes(),
    );
    s
}

/// Sends the whole attack pipelined (as the exploit does) and returns everything the server
/// said until it closed.
fn run(port: u16, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn bodies(maildir: &Path) -> Vec<String> {
    messages(maildir, None)
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

/// Each variant: exactly one 250 after DATA and one stored message (ana's), holding the
/// smuggled commands as text; bo gets nothing. Fixed by ending DATA only at a dot line that
/// follows CRLF, and storing bare LF/CR as CRLF (Postfix's `normalize`).
#[test]
fn no_second_message_from_a_bare_line_ending_posta() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &[
            "--domain".into(),
            "example.test".into(),
            "--maildir".into(),
            mail.display().to_string(),
        ],
    );
    for (n, v) in VARIANTS.iter().enumerate() {
        let said = run(mta.port, &attack("example.test", v, n));
        assert_eq!(
            said.matches("queued as").count(),
            1,
            "variant {v:?}: one 250 after DATA, not two:\n{said}"
        );
    }
    let ana = bodies(&mail.join("ana"));
    assert_eq!(ana.len(), VARIANTS.len(), "one message per attack");
    for b in &ana {
        assert!(b.contains("MAIL FROM:<ceo@example.test>"), "{b}");
        assert!(!b.contains("\n.\r\n") || b.contains("\r\n.\r\n"), "{b:?}");
        assert!(
            !b.replace("\r\n", "").contains(['\r', '\n']),
            "only CRLF line endings are stored: {b:?}"
        );
    }
    assert!(
        !mail.join("bo").exists() || bodies(&mail.join("bo")).is_empty(),
        "the smuggled message to bo was stored"
    );
    assert!(
        !std::fs::read_to_string(&mta.log)
            .unwrap()
            .contains("SMUGGLED"),
        "no transaction for the smuggled message was logged"
    );
}

/// The yardstick: Postfix with `smtpd_forbid_bare_newline = normalize` stores one message per
/// attack too, so posta answers these bytes the way the most common MTA now does.
#[test]
fn no_second_message_from_a_bare_line_ending_postfix() {
    let postfix = Postfix::start_with(
        Ca::get(),
        "example.test",
        &["ana", "bo"],
        Options {
            main_cf: Some(
                "smtpd_forbid_bare_newline = normalize\nsmtpd_forbid_bare_newline_exclusions =\n",
            ),
            ..Options::default()
        },
    );
    for (n, v) in VARIANTS.iter().enumerate() {
        let said = run(postfix.smtp_port(), &attack("example.test", v, n));
        assert!(
            said.matches("\r\n250 2.0.0 Ok: queued").count() <= 1,
            "variant {v:?}: Postfix said:\n{said}"
        );
    }
    let delivered = |user: &str| {
        support::sys::wait_until(Duration::from_secs(20), || {
            messages(&postfix.maildir("ana"), None).len() >= VARIANTS.len()
        })
        .ok();
        messages(&postfix.maildir(user), None).len()
    };
    assert_eq!(delivered("ana"), VARIANTS.len());
    assert_eq!(delivered("bo"), 0, "Postfix stored a smuggled message");
}

/// Runs `lines` pipelined in one connection after EHLO and returns how many replies came back
/// before the server closed, and the last one. The floods are a few KB, so the server has read
/// all of them when it closes (unread input would make the close a reset, losing replies).
fn flood(port: u16, lines: &[String]) -> (usize, String) {
    let mut bytes = b"EHLO flood.test\r\n".to_vec();
    for l in lines {
        bytes.extend_from_slice(l.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    let said = run(port, &bytes);
    let replies: Vec<&str> = said
        .split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .collect();
    (replies.len(), replies.last().unwrap_or(&"").to_string())
}

/// 20,000 NOOPs, 5,000 VRFYs and 200 excess RCPTs in one session were all served. Fixed as
/// Postfix does: NOOP/VRFY/ETRN/RSET past `smtpd_junk_command_limit` (100) count as errors,
/// refused and excess recipients are errors, and at `smtpd_hard_error_limit` (20) the session
/// ends with `421 4.7.0 ... too many errors`.
#[test]
fn junk_and_errors_end_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &[
            "--domain".into(),
            "example.test".into(),
            "--maildir".into(),
            mail.display().to_string(),
            "--max-recipients".into(),
            "100".into(),
        ],
    );
    let noops: Vec<String> = (0..300).map(|_| "NOOP".to_string()).collect();
    let (n, last) = flood(mta.port, &noops);
    // 220 + EHLO + 100 free NOOPs + 20 counted as errors, the last with the 421.
    assert_eq!(n, 1 + 1 + 100 + 20 + 1, "last: {last}");
    assert!(last.starts_with("421 4.7.0"), "{last}");
    let vrfys: Vec<String> = (0..300).map(|i| format!("VRFY u{i}")).collect();
    let (n, last) = flood(mta.port, &vrfys);
    assert_eq!(n, 1 + 1 + 100 + 20 + 1, "last: {last}");
    assert!(last.starts_with("421 4.7.0"), "{last}");
    let mut rcpts = vec!["MAIL FROM:<a@b.test>".to_string()];
    rcpts.extend((0..150).map(|i| format!("RCPT TO:<u{i}@example.test>")));
    let (n, last) = flood(mta.port, &rcpts);
    // MAIL, 100 accepted, then 452 for the excess: 20 of them reach the error limit.
    assert_eq!(n, 1 + 1 + 1 + 100 + 20 + 1, "last: {last}");
    assert!(last.starts_with("421 4.7.0"), "{last}");
    let bad: Vec<String> = (0..50).map(|i| format!("XYZZY{i}")).collect();
    let (n, last) = flood(mta.port, &bad);
    assert_eq!(n, 1 + 1 + 20 + 1, "last: {last}");
    assert!(last.starts_with("421 4.7.0"), "{last}");
    // A client that behaves is still served.
    let (_, last) = flood(mta.port, &["NOOP".into(), "QUIT".into()]);
    assert!(last.starts_with("221"), "{last}");
}
