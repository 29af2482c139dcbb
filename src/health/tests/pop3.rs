//! POP3 probe against scripted servers.

use super::Act::{Hang, Hear, Say};
use super::*;
use crate::health::pop3::probe;

#[tokio::test]
async fn drop_after_greeting_is_critical() {
    let (port, _srv) = serve(vec![Say("+OK ready\r\n")]).await;
    let r = probe(&target(Scheme::Pop3, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.summary, "server closed the connection during CAPA");
}

#[tokio::test]
async fn tarpit_after_greeting_names_the_step() {
    let (port, _srv) = serve(vec![Say("+OK ready\r\n"), Hang]).await;
    let r = probe(&target(Scheme::Pop3, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.summary,
        "timed out after 500ms waiting for the CAPA reply"
    );
}

#[tokio::test]
async fn err_greeting_is_critical() {
    let (port, _srv) = serve(vec![Say("-ERR maintenance\r\n"), Hang]).await;
    let r = probe(&target(Scheme::Pop3, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.summary,
        "server refused the session: greeting -ERR maintenance"
    );
}

#[tokio::test]
async fn happy_path_without_capa() {
    let (port, srv) = serve(vec![
        Say("+OK ready\r\n"),
        Hear,
        Say("-ERR unknown command\r\n"),
        Hear,
        Say("+OK user\r\n"),
        Hear,
        Say("+OK logged in\r\n"),
        Hear,
        Say("+OK 2 320\r\n"),
        Hear,
        Say("+OK bye\r\n"),
    ])
    .await;
    let r = probe(&target(Scheme::Pop3, port, StartTls::No, true)).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.summary, "+OK greeting, USER/PASS ok, 2 messages");
    assert!(r.steps.iter().any(|s| s.detail.contains("no CAPA support")));
    let heard = srv.await.expect("server");
    assert_eq!(heard, ["CAPA", "USER probe", "PASS s3cret", "STAT", "QUIT"]);
}

#[tokio::test]
async fn wrong_password_is_critical() {
    let (port, _srv) = serve(vec![
        Say("+OK ready\r\n"),
        Hear,
        Say("+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"),
        Hear,
        Say("+OK\r\n"),
        Hear,
        Say("-ERR [AUTH] Authentication failed.\r\n"),
        Hang,
    ])
    .await;
    let r = probe(&target(Scheme::Pop3, port, StartTls::No, true)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.summary,
        "authentication failed (-ERR [AUTH] Authentication failed.)"
    );
    assert_eq!(r.capabilities, ["USER", "SASL PLAIN"]);
}

#[tokio::test]
async fn stls_injection_is_refused() {
    let (port, _srv) = serve(vec![
        Say("+OK ready\r\n"),
        Hear,
        Say("+OK\r\nSTLS\r\n.\r\n"),
        Hear,
        Say("+OK begin TLS\r\n+OK injected\r\n"),
        Hang,
    ])
    .await;
    let r = probe(&target(Scheme::Pop3, port, StartTls::Require, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("CVE-2011-0411"), "{}", r.summary);
}
