use super::*;
use crate::mta::tables::Reply;

fn session() -> Session {
    let limits = Limits {
        hostname: "mx2.example.org".into(),
        max_message_size: 100,
        max_recipients: 2,
        max_hops: 3,
        max_errors: 3,
        max_junk: 5,
    };
    Session::new(limits, "192.0.2.7".parse().unwrap(), true, || {
        "Q1".to_string()
    })
}

fn text(step: Step) -> String {
    match step {
        Step::Reply(b) | Step::Close(b) | Step::StartTls(b) => String::from_utf8(b).unwrap(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn accept_local() -> Verdict {
    Verdict::Accept(Accept::Local("ana".into()))
}

/// EHLO, MAIL, one accepted RCPT: the session is ready for DATA.
fn transaction(s: &mut Session) {
    text(s.line(b"EHLO client.example\r\n"));
    assert!(text(s.line(b"MAIL FROM:<a@b.example>\r\n")).starts_with("250 2.1.0"));
    let Step::CheckRcpt { from, rcpt } = s.line(b"RCPT TO:<ana@example.org>\r\n") else {
        panic!("rcpt check")
    };
    assert_eq!(
        (from.as_str(), rcpt.as_str()),
        ("a@b.example", "ana@example.org")
    );
    assert!(
        String::from_utf8(s.rcpt_checked(accept_local()))
            .unwrap()
            .starts_with("250")
    );
}

#[test]
fn ehlo_offers_extensions() {
    let mut s = session();
    assert!(
        String::from_utf8(s.greeting())
            .unwrap()
            .starts_with("220 mx2.example.org")
    );
    let r = text(s.line(b"EHLO client.example\r\n"));
    for ext in [
        "PIPELINING",
        "SIZE 100",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
    ] {
        assert!(r.contains(ext), "{r}");
    }
    assert!(r.ends_with("250 STARTTLS\r\n"), "{r}");
    assert_eq!(r.matches("250 ").count(), 1);
}

#[test]
fn full_transaction_adds_received_and_unstuffs() {
    let mut s = session();
    transaction(&mut s);
    assert!(text(s.line(b"DATA\r\n")).starts_with("354"));
    for l in [
        &b"Subject: x\r\n"[..],
        b"\r\n",
        b"..leading dot\r\n",
        b"bare lf\n",
        b".\r\n",
        b"bare\rcr\r\n",
        b".\n",
        b"end\r\n",
    ] {
        assert_eq!(text(s.line(l)), "");
    }
    let Step::Store(t) = s.line(b".\r\n") else {
        panic!("store")
    };
    let m = String::from_utf8(t.message.clone()).unwrap();
    assert!(m.starts_with("Received: from client.example ([192.0.2.7])\r\n\tby mx2.example.org (posta) with ESMTP id Q1\r\n\tfor <ana@example.org>; "), "{m}");
    // A "." line after a bare LF is data, not the end (smuggling); bare LF and bare CR are
    // stored as CRLF (Postfix's normalize); a dot-stuffed line after CRLF is unstuffed.
    assert!(
        m.ends_with("Subject: x\r\n\r\n.leading dot\r\nbare lf\r\n.\r\nbare\r\ncr\r\n\r\nend\r\n"),
        "{m}"
    );
    assert_eq!(t.recipients.len(), 1);
    assert_eq!(t.from, "a@b.example");
    let r = String::from_utf8(s.stored(Ok(()), &t.id)).unwrap();
    assert_eq!(r, "250 2.0.0 ok: queued as Q1\r\n");
    // The transaction is over: a new one needs MAIL again.
    assert!(text(s.line(b"RCPT TO:<x@example.org>\r\n")).starts_with("503"));
}

#[test]
fn store_failures_are_temporary() {
    let mut s = session();
    transaction(&mut s);
    text(s.line(b"DATA\r\n"));
    let Step::Store(t) = s.line(b".\r\n") else {
        panic!("store")
    };
    let full = String::from_utf8(s.stored(Err(StoreError::DiskFull), &t.id)).unwrap();
    assert!(full.starts_with("452 4.3.1"), "{full}");
    transaction(&mut s);
    text(s.line(b"DATA\r\n"));
    let Step::Store(t) = s.line(b".\r\n") else {
        panic!("store")
    };
    let failed = String::from_utf8(s.stored(Err(StoreError::Failed), &t.id)).unwrap();
    assert!(failed.starts_with("451 4.3.0"), "{failed}");
}

#[test]
fn sequence_errors_and_limits() {
    let mut s = session();
    assert!(text(s.line(b"MAIL FROM:<a@b>\r\n")).starts_with("503"));
    text(s.line(b"HELO c\r\n"));
    assert!(text(s.line(b"RCPT TO:<a@b>\r\n")).starts_with("503"));
    let big = text(s.line(b"MAIL FROM:<a@b> SIZE=101\r\n"));
    assert!(big.starts_with("552 5.3.4"), "{big}");
    text(s.line(b"MAIL FROM:<a@b>\r\n"));
    // Two recipients allowed, the third is deferred.
    for _ in 0..2 {
        assert!(matches!(
            s.line(b"RCPT TO:<a@example.org>\r\n"),
            Step::CheckRcpt { .. }
        ));
        s.rcpt_checked(accept_local());
    }
    assert!(text(s.line(b"RCPT TO:<c@example.org>\r\n")).starts_with("452 4.5.3"));
}

#[test]
fn rejected_recipients_and_data_without_any() {
    let mut s = session();
    text(s.line(b"EHLO c\r\n"));
    text(s.line(b"MAIL FROM:<>\r\n"));
    assert!(matches!(
        s.line(b"RCPT TO:<x@other.example>\r\n"),
        Step::CheckRcpt { .. }
    ));
    let r = s.rcpt_checked(Verdict::Reject(Reply {
        code: 550,
        dsn: Some("5.7.1".into()),
        text: "relaying denied".into(),
    }));
    assert_eq!(r, b"550 5.7.1 relaying denied\r\n");
    assert!(matches!(
        s.line(b"RCPT TO:<y@example.org>\r\n"),
        Step::CheckRcpt { .. }
    ));
    let r = s.rcpt_checked(Verdict::Reject(Reply {
        code: 450,
        dsn: None,
        text: "later".into(),
    }));
    assert_eq!(r, b"450 4.0.0 later\r\n");
    assert!(text(s.line(b"DATA\r\n")).starts_with("554 5.5.1"));
}

#[test]
fn oversized_message_and_loops() {
    let mut s = session();
    transaction(&mut s);
    text(s.line(b"DATA\r\n"));
    for _ in 0..20 {
        text(s.line(b"0123456789\r\n"));
    }
    assert!(text(s.line(b".\r\n")).starts_with("552 5.3.4"));
    transaction(&mut s);
    text(s.line(b"DATA\r\n"));
    for _ in 0..4 {
        text(s.line(b"Received: x\r\n"));
    }
    assert!(text(s.line(b".\r\n")).starts_with("554 5.4.6"));
}

#[test]
fn starttls_resets_and_hostile_input_closes() {
    let mut s = session();
    text(s.line(b"EHLO c\r\n"));
    assert!(matches!(s.line(b"STARTTLS\r\n"), Step::StartTls(_)));
    s.tls_started();
    assert!(text(s.line(b"MAIL FROM:<a@b>\r\n")).starts_with("503"));
    let r = text(s.line(b"EHLO c\r\n"));
    assert!(!r.contains("STARTTLS"), "{r}");
    transaction(&mut s);
    text(s.line(b"DATA\r\n"));
    let Step::Store(t) = s.line(b".\r\n") else {
        panic!("store")
    };
    assert!(String::from_utf8_lossy(&t.message).contains("with ESMTPS id"));

    let mut s = session();
    assert!(matches!(s.line(b"\x00\x01\r\n"), Step::Reply(_)));
    assert!(matches!(s.line(b"GET / HTTP/1.1\r\n"), Step::Reply(_)));
    let Step::Close(last) = s.line(b"junk\r\n") else {
        panic!("close")
    };
    assert!(String::from_utf8(last).unwrap().contains("421 4.7.0"));
}

#[test]
fn discard_accepts_and_drops() {
    let mut s = session();
    text(s.line(b"EHLO c\r\n"));
    text(s.line(b"MAIL FROM:<spam@spammer.example>\r\n"));
    assert!(matches!(
        s.line(b"RCPT TO:<a@example.org>\r\n"),
        Step::CheckRcpt { .. }
    ));
    assert!(s.rcpt_checked(Verdict::Discard).starts_with(b"250"));
    text(s.line(b"DATA\r\n"));
    let Step::Store(t) = s.line(b".\r\n") else {
        panic!("store")
    };
    assert_eq!((t.recipients.len(), t.discarded), (0, 1));
}

#[test]
fn etrn_and_odd_commands() {
    let mut s = session();
    assert!(text(s.line(b"ETRN example.org\r\n")).starts_with("503"));
    text(s.line(b"EHLO c\r\n"));
    let Step::Etrn { domain, reply } = s.line(b"ETRN @Example.ORG\r\n") else {
        panic!("etrn")
    };
    assert_eq!(domain, "example.org");
    assert!(reply.starts_with(b"250"));
    assert!(text(s.line(b"VRFY root\r\n")).starts_with("252"));
    assert!(text(s.line(b"AUTH PLAIN\r\n")).starts_with("502"));
    assert!(matches!(s.line(b"QUIT\r\n"), Step::Close(_)));
}

/// Found by `fuzz/fuzz_targets/smtp_session.rs`: the policy quotes an invalid recipient domain
/// in its 553, and a UTF-8 domain came back to the client as non-ASCII reply text.
#[test]
fn replies_quoting_the_client_stay_ascii() {
    use crate::mta::policy::{Domains, decide};
    use crate::mta::tables::Tables;
    let mut s = session();
    text(s.line(b"EHLO client.example\r\n"));
    text(s.line(b"MAIL FROM:<a@b.example>\r\n"));
    let Step::CheckRcpt { from, rcpt } = s.line("RCPT TO:<x@a\u{492}rg>\r\n".as_bytes()) else {
        panic!("rcpt check")
    };
    let ip = s.client();
    let d = decide(
        &Tables::default(),
        ip,
        None,
        &from,
        &rcpt,
        &Domains::default(),
    );
    let r = String::from_utf8(s.rcpt_checked(d.verdict)).unwrap();
    assert!(
        r.starts_with("553 5.1.3 recipient has an invalid domain"),
        "{r}"
    );
    assert!(
        r.is_ascii() && !r.trim_end_matches("\r\n").contains(['\r', '\n']),
        "{r:?}"
    );
    assert!(r.contains("\"a?rg\""), "{r:?}");
}

/// CVE-2023-51764 and its siblings: every way a client can put a bare LF or bare CR before the
/// dot. Each must end in exactly one stored message whose data holds the would-be second
/// transaction as text; only the final CRLF.CRLF ends it.
#[test]
fn no_smuggling_past_a_bare_line_ending() {
    let variants: [&[u8]; 7] = [
        b"body\n.\r\n",
        b"body\r\n.\n",
        b"body\n.\n",
        b"body\r.\r\n",
        b"body\r\n.\r",
        b"body\r.\r",
        b"body\n\r.\r\n",
    ];
    for v in variants {
        let mut s = session();
        transaction(&mut s);
        text(s.line(b"DATA\r\n"));
        let mut stream = b"Subject: outer\r\n\r\n".to_vec();
        stream.extend_from_slice(v);
        stream.extend_from_slice(
            b"MAIL FROM:<ceo@example.org>\r\nRCPT TO:<bo@example.org>\r\nDATA\r\nx\r\n.\r\n",
        );
        let mut buf = crate::proto::LineBuffer::new();
        buf.extend(&stream);
        let mut stored = Vec::new();
        while let Ok(Some(line)) = buf.next_line_limited(1000) {
            match s.line(&line) {
                Step::Store(t) => stored.push(t),
                Step::Reply(r) => assert!(r.is_empty(), "{v:?}: a reply inside DATA: {r:?}"),
                other => panic!("{v:?}: {other:?}"),
            }
        }
        assert_eq!(stored.len(), 1, "{v:?}: one message, not two");
        let m = &stored[0].message;
        assert!(
            m.windows(17).any(|w| w == b"MAIL FROM:<ceo@ex"),
            "{v:?}: the smuggled commands are data"
        );
        assert!(
            !m.windows(2).enumerate().any(|(i, w)| {
                (w[0] == b'\r' && w[1] != b'\n') || (w[1] == b'\n' && w[0] != b'\r' && i > 0)
            }),
            "{v:?}: only CRLF line endings are stored: {:?}",
            String::from_utf8_lossy(m)
        );
    }
}

/// Postfix's smtpd_junk_command_limit: NOOP, VRFY, ETRN and RSET are free up to the limit,
/// errors after it, and the session ends at the error limit.
#[test]
fn junk_commands_past_the_limit_close_the_session() {
    let mut s = session();
    text(s.line(b"EHLO c\r\n"));
    for _ in 0..5 {
        assert!(text(s.line(b"NOOP\r\n")).starts_with("250"));
    }
    assert!(text(s.line(b"VRFY x\r\n")).starts_with("252"));
    assert!(text(s.line(b"RSET\r\n")).starts_with("250"));
    let Step::Close(r) = s.line(b"NOOP\r\n") else {
        panic!("the third junk command past the limit reaches the error limit")
    };
    let r = String::from_utf8(r).unwrap();
    assert!(
        r.ends_with("421 4.7.0 too many errors, closing connection\r\n"),
        "{r}"
    );
}

/// A dictionary attack (refused recipients) and excess recipients count as errors; the next
/// command after the limit gets 421 and the connection closes. A delivered message resets it.
#[test]
fn refused_and_excess_recipients_are_errors() {
    let refuse = || {
        Verdict::Reject(Reply {
            code: 550,
            dsn: Some("5.1.1".into()),
            text: "user unknown".into(),
        })
    };
    let mut s = session();
    transaction(&mut s);
    assert!(matches!(
        s.line(b"RCPT TO:<x@example.org>\r\n"),
        Step::CheckRcpt { .. }
    ));
    assert!(s.rcpt_checked(refuse()).starts_with(b"550"));
    assert!(matches!(
        s.line(b"RCPT TO:<y@example.org>\r\n"),
        Step::CheckRcpt { .. }
    ));
    assert!(s.rcpt_checked(refuse()).starts_with(b"550"));
    // Two errors so far; a delivered message forgives them.
    text(s.line(b"DATA\r\n"));
    let Step::Store(t) = s.line(b".\r\n") else {
        panic!("store")
    };
    assert!(s.stored(Ok(()), &t.id).starts_with(b"250"));
    transaction(&mut s);
    assert!(matches!(
        s.line(b"RCPT TO:<b@example.org>\r\n"),
        Step::CheckRcpt { .. }
    ));
    s.rcpt_checked(accept_local());
    assert!(text(s.line(b"RCPT TO:<c@example.org>\r\n")).starts_with("452 4.5.3"));
    assert!(text(s.line(b"RCPT TO:<d@example.org>\r\n")).starts_with("452 4.5.3"));
    let Step::Close(r) = s.line(b"RCPT TO:<e@example.org>\r\n") else {
        panic!("the third excess recipient reaches the error limit")
    };
    assert!(String::from_utf8(r).unwrap().contains("421 4.7.0"));
    // Refused recipients alone: the command after the limit is answered 421.
    let mut s = session();
    transaction(&mut s);
    for _ in 0..3 {
        let Step::CheckRcpt { .. } = s.line(b"RCPT TO:<x@example.org>\r\n") else {
            panic!("rcpt")
        };
        s.rcpt_checked(refuse());
    }
    let Step::Close(r) = s.line(b"RCPT TO:<x@example.org>\r\n") else {
        panic!("closed at the limit")
    };
    assert_eq!(r, b"421 4.7.0 too many errors, closing connection\r\n");
}

#[test]
fn a_taken_body_leaves_the_received_header_and_the_rest() {
    let mut s = session();
    transaction(&mut s);
    assert_eq!(s.buffered_body(), 0);
    assert!(text(s.line(b"DATA\r\n")).starts_with("354"));
    s.line(b"Subject: big\r\n");
    s.line(b"\r\n");
    assert_eq!(s.take_body(), b"Subject: big\r\n\r\n".to_vec());
    assert_eq!(s.buffered_body(), 0);
    s.line(b"\tlast line\r\n");
    assert_eq!(s.buffered_body(), 12);
    let Step::Store(t) = s.line(b".\r\n") else {
        panic!("no store step")
    };
    let head = t.message.len() - 12;
    assert!(t.message.starts_with(b"Received: "));
    assert_eq!(trace_len(&t.message[..head]), head);
    assert_eq!(&t.message[head..], b"\tlast line\r\n");
    assert_eq!(s.take_body(), Vec::<u8>::new());
}
