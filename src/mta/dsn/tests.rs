use super::*;
use time::{Date, Month};

fn datetime(y: i32, mo: Month, d: u8, h: u8, mi: u8) -> OffsetDateTime {
    Date::from_calendar_date(y, mo, d)
        .unwrap()
        .with_hms(h, mi, 0)
        .unwrap()
        .assume_utc()
}

const ORIGINAL: &[u8] = b"Received: from client.example (client.example [192.0.2.7])\r\n\
\tby mx2.laorganizacion.org; Fri, 20 Nov 2026 10:00:00 +0000\r\n\
From: Ana <ana@example.com>\r\n\
To: juan@laorganizacion.org\r\n\
Subject: minutes\r\n\
Message-ID: <m1@example.com>\r\n\
\r\n\
BODY-SECRET line one\r\n\
line two\r\n";

fn rcpt(addr: &str, action: Action, status: &str) -> RecipientReport {
    RecipientReport {
        original: Some(addr.to_string()),
        final_recipient: addr.to_string(),
        action,
        status: status.parse().unwrap(),
        remote_mta: Some("mailserver1.laorganizacion.org".into()),
        smtp_reply: Some("550 5.1.1 <juan@laorganizacion.org>: user unknown".into()),
        last_attempt: Some(datetime(2026, Month::November, 25, 9, 30)),
        will_retry_until: None,
    }
}

fn input(recipients: Vec<RecipientReport>) -> DsnInput<'static> {
    DsnInput {
        reporting_mta: "mx2.laorganizacion.org",
        sender: "ana@example.com",
        envelope_id: Some("QQ314159"),
        arrival: datetime(2026, Month::November, 20, 10, 0),
        now: datetime(2026, Month::November, 25, 10, 0),
        queue_id: "4F2a9",
        recipients,
        message: ORIGINAL,
    }
}

fn text(d: &Dsn) -> String {
    String::from_utf8(d.message.clone()).unwrap()
}

/// The boundary from the top-level Content-Type.
fn boundary_of(t: &str) -> String {
    let start = t.find("boundary=\"").unwrap() + "boundary=\"".len();
    let end = start + t[start..].find('"').unwrap();
    t[start..end].to_string()
}

/// The parts between the boundaries: (headers, body) each.
fn parts(t: &str) -> Vec<(String, String)> {
    let b = boundary_of(t);
    let delimiter = format!("\r\n--{b}");
    let close = format!("\r\n--{b}--\r\n");
    assert!(t.ends_with(&close), "no closing delimiter");
    let inner = &t[..t.len() - close.len()];
    inner
        .split(&delimiter)
        .skip(1)
        .map(|p| {
            let p = p.strip_prefix("\r\n").unwrap();
            let (h, b) = p.split_once("\r\n\r\n").unwrap();
            (h.to_string(), b.to_string())
        })
        .collect()
}

fn header<'t>(head: &'t str, name: &str) -> Option<&'t str> {
    head.split("\r\n")
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn failed_dsn_has_the_rfc_3464_structure() {
    let d = build(&input(vec![rcpt(
        "juan@laorganizacion.org",
        Action::Failed,
        "5.1.1",
    )]))
    .unwrap();
    let t = text(&d);
    let (head, _) = t.split_once("\r\n\r\n").unwrap();
    assert_eq!(
        header(head, "From"),
        Some("MAILER-DAEMON@mx2.laorganizacion.org")
    );
    assert_eq!(header(head, "To"), Some("<ana@example.com>"));
    assert_eq!(
        header(head, "Subject"),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(
        header(head, "Date"),
        Some("Wed, 25 Nov 2026 10:00:00 +0000")
    );
    assert_eq!(header(head, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(header(head, "MIME-Version"), Some("1.0"));
    assert!(
        header(head, "Message-ID")
            .unwrap()
            .ends_with("@mx2.laorganizacion.org>")
    );
    assert!(head.contains("multipart/report; report-type=delivery-status;"));

    let p = parts(&t);
    assert_eq!(p.len(), 3);
    assert_eq!(
        header(&p[0].0, "Content-Type"),
        Some("text/plain; charset=us-ascii")
    );
    assert!(p[0].1.contains("<juan@laorganizacion.org>: failed"));
    assert!(p[0].1.contains("the mailbox does not exist"));
    assert!(p[0].1.contains("kept 5 days"));
    assert!(p[0].1.contains("user unknown"));

    assert_eq!(
        header(&p[1].0, "Content-Type"),
        Some("message/delivery-status")
    );
    let blocks: Vec<&str> = p[1].1.trim_end().split("\r\n\r\n").collect();
    assert_eq!(blocks.len(), 2, "per-message block and one recipient block");
    assert_eq!(
        header(blocks[0], "Reporting-MTA"),
        Some("dns; mx2.laorganizacion.org")
    );
    assert_eq!(header(blocks[0], "Original-Envelope-Id"), Some("QQ314159"));
    assert_eq!(
        header(blocks[0], "Arrival-Date"),
        Some("Fri, 20 Nov 2026 10:00:00 +0000")
    );
    let r = blocks[1];
    assert_eq!(
        header(r, "Original-Recipient"),
        Some("rfc822; juan@laorganizacion.org")
    );
    assert_eq!(
        header(r, "Final-Recipient"),
        Some("rfc822; juan@laorganizacion.org")
    );
    assert_eq!(header(r, "Action"), Some("failed"));
    assert_eq!(header(r, "Status"), Some("5.1.1"));
    assert_eq!(
        header(r, "Remote-MTA"),
        Some("dns; mailserver1.laorganizacion.org")
    );
    assert_eq!(
        header(r, "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 <juan@laorganizacion.org>: user unknown")
    );
    assert_eq!(
        header(r, "Last-Attempt-Date"),
        Some("Wed, 25 Nov 2026 09:30:00 +0000")
    );
    assert_eq!(header(r, "Will-Retry-Until"), None);

    assert_eq!(header(&p[2].0, "Content-Type"), Some("text/rfc822-headers"));
}

#[test]
fn returns_the_original_headers_without_the_body() {
    let d = build(&input(vec![rcpt(
        "juan@laorganizacion.org",
        Action::Failed,
        "5.1.1",
    )]))
    .unwrap();
    let t = text(&d);
    let p = parts(&t);
    let returned = &p[2].1;
    assert!(returned.starts_with("Received: from client.example"));
    assert!(returned.contains("\tby mx2.laorganizacion.org;"));
    assert!(returned.contains("Message-ID: <m1@example.com>\r\n"));
    assert!(!t.contains("BODY-SECRET"));
    assert!(!t.contains("line two"));
}

#[test]
fn only_crlf_line_endings_and_no_line_over_998() {
    let long_subject = format!("Subject: {}\n", "x".repeat(3000));
    let original = format!("From: a@example.com\n{long_subject}To: b@example.org\r\n\r\nbody\n");
    let mut i = input(vec![rcpt(
        "juan@laorganizacion.org",
        Action::Failed,
        "5.1.1",
    )]);
    i.message = original.as_bytes();
    let d = build(&i).unwrap();
    let m = &d.message;
    for (n, &b) in m.iter().enumerate() {
        if b == b'\n' {
            assert_eq!(m[n - 1], b'\r', "bare LF at {n}");
        }
        if b == b'\r' {
            assert_eq!(m.get(n + 1), Some(&b'\n'), "bare CR at {n}");
        }
    }
    for line in m.split(|&b| b == b'\n') {
        assert!(line.len() <= MAX_LINE + 1, "line of {} octets", line.len());
    }
    let t = text(&d);
    assert!(
        t.contains("\r\nTo: b@example.org\r\n"),
        "headers after the long one kept"
    );
    let unfolded = t.replace("\r\n ", "");
    assert!(unfolded.contains(&format!("Subject: {}\r\n", "x".repeat(3000))));
}

#[test]
fn boundary_does_not_occur_in_the_original() {
    let taken = "X-Trap: =_posta-dsn-4F2a9-0 =_posta-dsn-4F2a9-1\r\n\r\nbody\r\n";
    let mut i = input(vec![rcpt(
        "juan@laorganizacion.org",
        Action::Failed,
        "5.1.1",
    )]);
    i.message = taken.as_bytes();
    let d = build(&i).unwrap();
    let t = text(&d);
    let b = boundary_of(&t);
    assert_eq!(b, "=_posta-dsn-4F2a9-2");
    assert_eq!(parts(&t).len(), 3);
    assert!(parts(&t)[2].1.contains("X-Trap: =_posta-dsn-4F2a9-0"));
}

#[test]
fn null_sender_is_refused() {
    for sender in ["", "<>", "  "] {
        let mut i = input(vec![rcpt(
            "juan@laorganizacion.org",
            Action::Failed,
            "5.1.1",
        )]);
        i.sender = sender;
        assert_eq!(build(&i), Err(DsnError::NullSender), "{sender:?}");
    }
}

#[test]
fn the_dsn_envelope_has_a_null_reverse_path_and_goes_to_the_sender() {
    let d = build(&input(vec![rcpt(
        "juan@laorganizacion.org",
        Action::Failed,
        "5.1.1",
    )]))
    .unwrap();
    assert_eq!(d.mail_from(), "");
    assert_eq!(d.rcpt_to, "ana@example.com");
}

#[test]
fn one_block_per_recipient() {
    let mut second = rcpt("pedro@laorganizacion.org", Action::Failed, "4.4.7");
    second.original = None;
    second.remote_mta = None;
    second.smtp_reply = None;
    let d = build(&input(vec![
        rcpt("juan@laorganizacion.org", Action::Failed, "5.1.1"),
        second,
    ]))
    .unwrap();
    let t = text(&d);
    let p = parts(&t);
    let blocks: Vec<&str> = p[1].1.trim_end().split("\r\n\r\n").collect();
    assert_eq!(blocks.len(), 3);
    assert_eq!(
        header(blocks[2], "Final-Recipient"),
        Some("rfc822; pedro@laorganizacion.org")
    );
    assert_eq!(header(blocks[2], "Status"), Some("4.4.7"));
    assert_eq!(header(blocks[2], "Original-Recipient"), None);
    assert_eq!(header(blocks[2], "Diagnostic-Code"), None);
    assert!(
        p[0].1
            .contains("<pedro@laorganizacion.org>: failed (the delivery time expired")
    );
    assert!(p[0].1.contains("<juan@laorganizacion.org>: failed"));
}

#[test]
fn delayed_dsn_says_it_is_still_trying() {
    let mut r = rcpt("juan@laorganizacion.org", Action::Delayed, "4.4.1");
    r.smtp_reply = None;
    r.will_retry_until = Some(datetime(2026, Month::November, 25, 10, 0));
    let mut i = input(vec![r]);
    i.arrival = datetime(2026, Month::November, 25, 6, 0);
    let d = build(&i).unwrap();
    let t = text(&d);
    assert!(t.contains("\r\nSubject: Delayed Mail (still being retried)\r\n"));
    let p = parts(&t);
    assert!(p[0].1.contains("kept 4 hours so far"));
    assert!(
        p[1].1
            .contains("\r\nArrival-Date: Wed, 25 Nov 2026 06:00:00 +0000\r\n")
    );
    assert!(p[1].1.contains("\r\nAction: delayed\r\n"));
    assert!(
        p[1].1
            .contains("\r\nWill-Retry-Until: Wed, 25 Nov 2026 10:00:00 +0000\r\n")
    );
}

#[test]
fn header_injection_is_refused() {
    let mut i = input(vec![rcpt(
        "juan@laorganizacion.org",
        Action::Failed,
        "5.1.1",
    )]);
    i.sender = "ana@example.com\r\nBcc: victim@example.net";
    assert!(matches!(
        build(&i),
        Err(DsnError::BadField {
            field: "sender",
            ..
        })
    ));
    let i = input(vec![rcpt("x>@evil", Action::Failed, "5.1.1")]);
    assert!(matches!(
        build(&i),
        Err(DsnError::BadField {
            field: "recipient",
            ..
        })
    ));
    assert_eq!(build(&input(Vec::new())), Err(DsnError::NoRecipients));
}

#[test]
fn multi_line_and_8bit_replies_become_one_ascii_line() {
    let mut r = rcpt("juan@laorganizacion.org", Action::Failed, "5.2.2");
    r.smtp_reply = Some("552-5.2.2 mailbox full\r\n552 5.2.2 buzón lleno".into());
    let d = build(&input(vec![r])).unwrap();
    let t = text(&d);
    let unfolded = t.replace("\r\n ", " ");
    assert!(
        unfolded
            .contains("Diagnostic-Code: smtp; 552-5.2.2 mailbox full 552 5.2.2 buz?n lleno\r\n")
    );
    assert!(t.is_ascii());
}

#[test]
fn status_codes_parse_per_rfc_3463() {
    assert_eq!("5.1.10".parse::<Status>(), Ok(Status::new(5, 1, 10)));
    assert!("4.4.7".parse::<Status>().unwrap().is_transient());
    for bad in ["5.1", "3.1.1", "5.1.1.1", "5..1", "5.1.1000", "x.1.1"] {
        assert!(bad.parse::<Status>().is_err(), "{bad}");
    }
    assert_eq!(Status::new(5, 4, 6).to_string(), "5.4.6");
}
