//! IMAP probe against scripted servers.

use super::Act::{Hang, Hear, Say};
use super::*;
use crate::health::imap::probe;

#[tokio::test]
async fn tarpit_is_critical_within_the_timeout() {
    let (port, _srv) = serve(vec![Hang]).await;
    let r = probe(&target(Scheme::Imap, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.summary, "timed out after 500ms waiting for the greeting");
}

#[tokio::test]
async fn bye_greeting_is_critical() {
    let (port, _srv) = serve(vec![Say("* BYE too many connections\r\n"), Hang]).await;
    let r = probe(&target(Scheme::Imap, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.summary,
        "server refused the session: * BYE too many connections"
    );
}

#[tokio::test]
async fn smtp_banner_on_imap_port_is_malformed() {
    let (port, _srv) = serve(vec![Say("220 mx.test ESMTP\r\n"), Hang]).await;
    let r = probe(&target(Scheme::Imap, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.starts_with("malformed reply during the greeting"),
        "{}",
        r.summary
    );
}

#[tokio::test]
async fn happy_path_login_and_select_in_clear_when_operator_says_no() {
    let (port, srv) = serve(vec![
        Say("* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] ready\r\n"),
        Hear,
        Say("p1 OK [CAPABILITY IMAP4rev1 LITERAL+] Logged in\r\n"),
        Hear,
        Say("* FLAGS (\\Seen)\r\n* 3 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1] x\r\n"),
        Say("p2 OK [READ-WRITE] Select completed\r\n"),
        Hear,
        Say("* BYE Logging out\r\np3 OK Logout completed\r\n"),
    ])
    .await;
    let r = probe(&target(Scheme::Imap, port, StartTls::No, true)).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(
        r.summary,
        "OK greeting, 3 capabilities, LOGIN ok, INBOX 3 messages"
    );
    let heard = srv.await.expect("server");
    assert_eq!(
        heard,
        [
            "p1 LOGIN \"probe\" \"s3cret\"",
            "p2 SELECT INBOX",
            "p3 LOGOUT"
        ]
    );
}

#[tokio::test]
async fn failed_login_is_critical() {
    let (port, _srv) = serve(vec![
        Say("* OK ready\r\n"),
        Hear,
        Say("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\np1 OK done\r\n"),
        Hear,
        Say("p2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
        Hang,
    ])
    .await;
    let r = probe(&target(Scheme::Imap, port, StartTls::No, true)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.summary,
        "authentication failed (NO [AUTHENTICATIONFAILED] Authentication failed.)"
    );
}

#[tokio::test]
async fn missing_imap4rev1_is_critical() {
    let (port, _srv) = serve(vec![Say("* OK [CAPABILITY FOO] ready\r\n"), Hang]).await;
    let r = probe(&target(Scheme::Imap, port, StartTls::No, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("IMAP4rev1"), "{}", r.summary);
}

#[tokio::test]
async fn literal_in_a_response_is_skipped() {
    let (port, _srv) = serve(vec![
        Say("* OK ready\r\n"),
        Hear,
        Say("* CAPABILITY IMAP4rev1\r\n* ID (\"name\" {5}\r\nab\r\nc)\r\np1 OK done\r\n"),
        Hear,
        Say("p2 OK bye\r\n"),
    ])
    .await;
    let r = probe(&target(Scheme::Imap, port, StartTls::No, false)).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
}
