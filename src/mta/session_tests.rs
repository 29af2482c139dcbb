use super::*;
use crate::mta::tables::Reply;

fn session() -> Session {
    let limits = Limits {
        hostname: "mx2.example.org".into(),
        max_message_size: 100,
        max_recipients: 2,
        max_hops: 3,
        max_errors: 3,
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
        b".\n",
    ] {
        assert_eq!(text(s.line(l)), "");
    }
    let Step::Store(t) = s.line(b".\r\n") else {
        panic!("store")
    };
    let m = String::from_utf8(t.message.clone()).unwrap();
    assert!(m.starts_with("Received: from client.example ([192.0.2.7])\r\n\tby mx2.example.org (posta) with ESMTP id Q1\r\n\tfor <ana@example.org>; "), "{m}");
    // A bare-LF "." line is data (never the end), unstuffed like any other line.
    assert!(
        m.ends_with("Subject: x\r\n\r\n.leading dot\r\nbare lf\n\n"),
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
