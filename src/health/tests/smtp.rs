//! SMTP probe against scripted servers.

use super::Act::{Hang, Hear, Say};
use super::*;
use crate::health::smtp::probe;

const EHLO_NO_TLS: &str = "250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
                           250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n";

#[tokio::test]
async fn tarpit_is_critical_within_the_timeout() {
    let (port, _srv) = serve(vec![Hang]).await;
    let started = std::time::Instant::now();
    let r = probe(&target(Scheme::Smtp, port, StartTls::Auto, false)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.summary, "timed out after 500ms waiting for the greeting");
    assert_eq!(r.steps.last().map(|s| s.name), Some("greeting"));
}

#[tokio::test]
async fn connection_refused_is_critical() {
    let port = closed_port().await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.starts_with("connection refused"), "{}", r.summary);
}

#[tokio::test]
async fn drop_after_greeting_is_critical() {
    let (port, _srv) = serve(vec![Say("220 mx.test ESMTP\r\n")]).await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.summary, "server closed the connection during EHLO");
}

#[tokio::test]
async fn greeting_554_is_critical() {
    let (port, _srv) = serve(vec![Say("554 5.7.1 no service for you\r\n"), Hang]).await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.summary,
        "server refused the session: greeting 554 5.7.1 no service for you"
    );
}

#[tokio::test]
async fn a_greeting_naming_another_host_of_the_site_is_critical() {
    // mailserver2 answering at an address it took over must never read as mailserver1 up.
    let (port, _srv) = serve(vec![Say("220 MX2.test ESMTP posta\r\n"), Hang]).await;
    let mut t = target(Scheme::Smtp, port, StartTls::No, false);
    t.foreign_names = vec!["mx2.test".into()];
    let r = probe(&t).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.summary,
        "the greeting names mx2.test, not this server: another host of the site answered \
         (220 MX2.test ESMTP posta)"
    );
    // The same name later in the text is not the server's domain.
    let (port, _srv) = serve(vec![Say("220 mx1.test ESMTP mx2.test\r\n"), Hang]).await;
    let mut t = target(Scheme::Smtp, port, StartTls::No, false);
    t.foreign_names = vec!["mx2.test".into()];
    let r = probe(&t).await;
    let greeting = r.steps.iter().find(|s| s.name == "greeting").unwrap();
    assert_eq!(greeting.status, Status::Ok, "{:?}", r.steps);
}

#[tokio::test]
async fn garbage_is_critical() {
    let (port, _srv) = serve(vec![Say("HTTP/1.1 400 Bad Request\r\n"), Hang]).await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .starts_with("malformed reply during the greeting: not an SMTP reply code"),
        "{}",
        r.summary
    );
}

#[tokio::test]
async fn happy_path_without_tls_when_operator_says_no() {
    let (port, srv) = serve(vec![
        Say("220 mx.test ESMTP\r\n"),
        Hear,
        Say(EHLO_NO_TLS),
        Hear,
        Say("235 2.7.0 Authentication successful\r\n"),
        Hear,
        Say("221 2.0.0 Bye\r\n"),
    ])
    .await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::No, true)).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.summary, "220 greeting, ESMTP 4 keywords, AUTH PLAIN ok");
    assert_eq!(r.capabilities[2], "AUTH PLAIN LOGIN");
    let heard = srv.await.expect("server");
    assert_eq!(
        heard,
        ["EHLO probe.test", "AUTH PLAIN AHByb2JlAHMzY3JldA==", "QUIT"]
    );
}

#[tokio::test]
async fn no_starttls_offered_skips_cleartext_login() {
    let (port, srv) = serve(vec![
        Say("220 mx.test ESMTP\r\n"),
        Hear,
        Say(EHLO_NO_TLS),
        Hear,
        Say("221 bye\r\n"),
    ])
    .await;
    let r = probe(&target(Scheme::Submission, port, StartTls::Auto, true)).await;
    assert_eq!(r.status, Status::Warning);
    assert_eq!(
        r.summary,
        "STARTTLS not offered; the session stays in clear text"
    );
    assert!(
        r.steps
            .iter()
            .any(|s| s.detail.starts_with("not logging in over cleartext"))
    );
    assert_eq!(srv.await.expect("server"), ["EHLO probe.test", "QUIT"]);
}

#[tokio::test]
async fn starttls_required_but_absent_is_critical() {
    let (port, _srv) = serve(vec![Say("220 mx.test\r\n"), Hear, Say(EHLO_NO_TLS), Hang]).await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::Require, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.summary, "STARTTLS not offered, but TLS is required");
}

#[tokio::test]
async fn bytes_after_starttls_reply_are_refused() {
    let (port, _srv) = serve(vec![
        Say("220 mx.test\r\n"),
        Hear,
        Say("250-mx.test\r\n250 STARTTLS\r\n"),
        Hear,
        Say("220 go ahead\r\n250 injected\r\n"),
        Hang,
    ])
    .await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::Auto, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("CVE-2011-0411"), "{}", r.summary);
}

#[tokio::test]
async fn wrong_password_is_critical_with_the_reply() {
    let (port, _srv) = serve(vec![
        Say("220 mx.test\r\n"),
        Hear,
        Say(EHLO_NO_TLS),
        Hear,
        Say("535 5.7.8 Error: authentication failed\r\n"),
        Hang,
    ])
    .await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::No, true)).await;
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.summary,
        "authentication failed (535 5.7.8 Error: authentication failed)"
    );
    assert!(!format!("{r:?}").contains("s3cret"));
}

#[tokio::test]
async fn helo_fallback_is_a_warning() {
    let (port, _srv) = serve(vec![
        Say("220 old.test\r\n"),
        Hear,
        Say("502 command not recognized\r\n"),
        Hear,
        Say("250 old.test\r\n"),
        Hear,
        Say("221 bye\r\n"),
    ])
    .await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::No, false)).await;
    assert_eq!(r.status, Status::Warning);
    assert!(
        r.summary.starts_with("server does not speak ESMTP"),
        "{}",
        r.summary
    );
}

#[tokio::test]
async fn inconsistent_multiline_is_malformed() {
    let (port, _srv) = serve(vec![
        Say("220 mx.test\r\n"),
        Hear,
        Say("250-mx.test\r\n251 odd\r\n"),
        Hang,
    ])
    .await;
    let r = probe(&target(Scheme::Smtp, port, StartTls::No, false)).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.starts_with("malformed reply during EHLO"),
        "{}",
        r.summary
    );
}
