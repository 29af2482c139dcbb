//! The SMTP/LMTP delivery client against a real Postfix (STARTTLS with the private CA, AUTH
//! through Dovecot, byte-exact delivery into the Maildir, per-recipient refusals, null sender)
//! and against scripted fakes for what Postfix will not do on demand: 421 mid-transaction, 452
//! on RCPT, LMTP verdicts per recipient, hanging up after the dot, garbage replies.

mod peer;
mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use posta::client::smtp::{Dialect, SmtpClient, SmtpError};
use posta::client::{ConnError, Endpoint, Login};
use posta::health::{StartTls, TlsPolicy};
use posta::proto::dotstuff::is_8bit;
use posta::secret::Secret;
use support::{Ca, Dovecot, Postfix};

const DOMAIN: &str = "example.org";

fn endpoint(port: u16, starttls: StartTls) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        implicit_tls: false,
        starttls,
        tls: TlsPolicy {
            ca_file: Some(Ca::get().ca_pem()),
            ..TlsPolicy::default()
        },
        timeout: Duration::from_secs(10),
    }
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|r| (*r).to_owned()).collect()
}

/// Waits for virtual(8) to deliver one message into `maildir`/new and returns it.
fn delivered(maildir: &Path) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files: Vec<_> = fs::read_dir(maildir.join("new"))
            .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if let [file] = files.as_slice() {
            return fs::read(file).expect("read delivered message");
        }
        assert!(files.len() < 2, "more than one message in {maildir:?}");
        assert!(
            Instant::now() < deadline,
            "nothing delivered into {maildir:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Dot lines, a bare LF, 8-bit text, and no line end at the very end.
const AWKWARD: &[u8] = b"From: bob@example.net\r\n\
To: alice@example.org\r\n\
Subject: dots and 8-bit\r\n\
Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n\
Message-ID: <awkward@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
.leading dot\r\n\
.\r\n\
..\r\n\
a bare LF line\n\
caf\xc3\xa9 \xe2\x82\xac\r\n\
last line without a line end";

#[tokio::test]
async fn delivers_byte_exact_over_starttls_with_auth() {
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "pw")]);
    let postfix = Postfix::start(ca, DOMAIN, &["alice", "bob"], Some(&dovecot.auth_socket()));
    let login = Login::own("alice", Secret::new("pw"));
    let ep = endpoint(postfix.submission_port(), StartTls::Require);
    let mut client = SmtpClient::connect(&ep, Dialect::Smtp, "relay.example.net", Some(&login))
        .await
        .expect("connect, STARTTLS, AUTH");
    assert!(client.ehlo().has("PIPELINING") && client.ehlo().has("8BITMIME"));
    let envelope = client
        .begin(
            Some("bob@example.net"),
            &rcpts(&["alice@example.org"]),
            AWKWARD.len(),
            is_8bit(AWKWARD),
        )
        .await
        .expect("envelope");
    assert!(envelope.is_ready_for_data(), "{envelope:?}");
    // Two pieces, split inside a CRLF, as a caller streaming from disk would write them.
    let split = AWKWARD
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a CRLF")
        + 1;
    client.write_body(&AWKWARD[..split]).await.expect("body");
    client.write_body(&AWKWARD[split..]).await.expect("body");
    let verdict = client.finish().await.expect("final reply");
    assert_eq!(verdict.len(), 1);
    assert_eq!(verdict[0].0, "alice@example.org");
    assert_eq!(verdict[0].1.code, 250, "{verdict:?}");
    client.quit().await.expect("QUIT");

    let stored = delivered(&postfix.maildir("alice"));
    // virtual(8) stores LF line ends; the message is otherwise what was sent, after the
    // headers Postfix prepends.
    let mut expected = String::from_utf8_lossy(AWKWARD).replace("\r\n", "\n");
    expected.push('\n');
    let text = String::from_utf8_lossy(&stored);
    assert!(text.ends_with(&expected), "stored:\n{text}");
    let prepended = &text[..text.len() - expected.len()];
    for header in [
        "Return-Path: <bob@example.net>",
        "Delivered-To:",
        "Received:",
    ] {
        assert!(prepended.contains(header), "{header} in:\n{prepended}");
    }
}

#[tokio::test]
async fn unknown_recipient_is_refused_alone_and_null_sender_works() {
    let postfix = Postfix::start(Ca::get(), DOMAIN, &["alice", "bob"], None);
    let ep = endpoint(postfix.smtp_port(), StartTls::Auto);
    let mut client = SmtpClient::connect(&ep, Dialect::Smtp, "relay.example.net", None)
        .await
        .expect("connect");
    // Date and Message-ID present, or Postfix's cleanup adds them.
    let message = b"From: MAILER-DAEMON@example.net\r\nSubject: bounce\r\n\
        Date: Mon, 1 Dec 2025 10:00:00 +0000\r\nMessage-ID: <bounce@example.net>\r\n\r\nbody\r\n";
    let envelope = client
        .begin(
            None,
            &rcpts(&["nobody@example.org", "bob@example.org"]),
            message.len(),
            false,
        )
        .await
        .expect("envelope");
    let (rcpt, refused) = &envelope.rcpts[0];
    assert_eq!(rcpt, "nobody@example.org");
    assert_eq!(refused.code, 550, "{envelope:?}");
    assert_eq!(refused.enhanced.as_deref(), Some("5.1.1"));
    assert_eq!(envelope.accepted(), ["bob@example.org"]);
    assert!(envelope.is_ready_for_data() && envelope.refusal().is_none());
    client.write_body(message).await.expect("body");
    let verdict = client.finish().await.expect("final reply");
    assert_eq!(verdict.len(), 1);
    assert_eq!(verdict[0].0, "bob@example.org");
    assert_eq!(verdict[0].1.class(), 2);

    // The session goes on: a second transaction where nobody is accepted is reset, not sent.
    let envelope = client
        .begin(None, &rcpts(&["nobody@example.org"]), 10, false)
        .await
        .expect("envelope");
    assert!(!envelope.is_ready_for_data());
    let refusal = envelope.refusal().expect("refused");
    assert!(!refusal.is_transient(), "{refusal}");
    assert!(
        refusal
            .to_string()
            .starts_with("SMTP RCPT TO:<nobody@example.org> got 550 5.1.1"),
        "{refusal}"
    );
    client.quit().await.expect("QUIT");

    let stored = String::from_utf8_lossy(&delivered(&postfix.maildir("bob"))).into_owned();
    assert!(stored.contains("Return-Path: <>\n"), "{stored}");
    let expected = String::from_utf8_lossy(message).replace("\r\n", "\n");
    assert!(stored.ends_with(&format!("\n{expected}")), "{stored}");
}

/// Greeting and an EHLO/LHLO reply with these keywords.
async fn hello(p: &mut peer::Peer, verb: &str, keywords: &[&str]) {
    p.send("220 fake ESMTP\r\n").await;
    p.expect(verb).await;
    let lines: Vec<&str> = std::iter::once("fake")
        .chain(keywords.iter().copied())
        .collect();
    let mut reply = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        reply.push_str(&format!("250{sep}{line}\r\n"));
    }
    p.send(&reply).await;
}

fn plain(port: u16) -> Endpoint {
    endpoint(port, StartTls::No)
}

#[tokio::test]
async fn pipelining_sends_the_envelope_in_one_write() {
    let (port, server) = peer::serve(|mut p| async move {
        hello(&mut p, "EHLO", &["PIPELINING", "SIZE 1000000", "8BITMIME"]).await;
        let first = p.read_once().await;
        assert_eq!(
            String::from_utf8_lossy(&first),
            "MAIL FROM:<a@example.net> SIZE=10 BODY=8BITMIME\r\n\
             RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
            "one read holds the whole pipelined envelope"
        );
        for _ in 0..4 {
            p.line().await;
        }
        p.send("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n")
            .await;
        assert_eq!(p.data().await, b"..dot\r\ncaf\xc3\xa9\r\n.\r\n");
        p.send("250 2.0.0 queued as X\r\n").await;
        p.expect("QUIT").await;
        p.send("221 bye\r\n").await;
    })
    .await;
    let mut client = SmtpClient::connect(&plain(port), Dialect::Smtp, "relay", None)
        .await
        .expect("connect");
    let message = b".dot\ncaf\xc3\xa9";
    let envelope = client
        .begin(
            Some("a@example.net"),
            &rcpts(&["b@example.org", "c@example.org"]),
            message.len(),
            true,
        )
        .await
        .expect("envelope");
    assert!(envelope.is_ready_for_data());
    client.write_body(message).await.expect("body");
    let verdict = client.finish().await.expect("final reply");
    assert_eq!(verdict.len(), 2, "one entry per accepted recipient");
    assert!(verdict.iter().all(|(_, r)| r.code == 250));
    client.quit().await.expect("QUIT");
    server.await.expect("fake server");
}

#[tokio::test]
async fn closing_421_after_mail_is_transient() {
    let (port, server) = peer::serve(|mut p| async move {
        hello(&mut p, "EHLO", &["8BITMIME"]).await;
        p.expect("MAIL FROM:<a@example.net>").await;
        p.send("421 4.3.2 shutting down\r\n").await;
        assert_eq!(p.line().await, None, "nothing after 421");
    })
    .await;
    let mut client = SmtpClient::connect(&plain(port), Dialect::Smtp, "relay", None)
        .await
        .expect("connect");
    let err = client
        .begin(Some("a@example.net"), &rcpts(&["b@example.org"]), 5, false)
        .await
        .unwrap_err();
    assert!(matches!(err, SmtpError::Closing { .. }), "{err}");
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        "SMTP MAIL FROM:<a@example.net> got 421 4.3.2 shutting down; the server is closing \
         the connection"
    );
    assert!(matches!(client.rset().await, Err(SmtpError::Broken { .. })));
    drop(client);
    server.await.expect("fake server");
}

#[tokio::test]
async fn rcpt_452_is_transient_and_resets() {
    let (port, server) = peer::serve(|mut p| async move {
        hello(&mut p, "EHLO", &[]).await;
        p.expect("MAIL FROM:<a@example.net>").await;
        p.send("250 ok\r\n").await;
        p.expect("RCPT TO:<b@example.org>").await;
        p.send("452 4.3.1 Insufficient system storage\r\n").await;
        p.expect("RSET").await;
        p.send("250 ok\r\n").await;
        p.expect("QUIT").await;
    })
    .await;
    let mut client = SmtpClient::connect(&plain(port), Dialect::Smtp, "relay", None)
        .await
        .expect("connect");
    let envelope = client
        .begin(Some("a@example.net"), &rcpts(&["b@example.org"]), 5, false)
        .await
        .expect("envelope");
    assert!(!envelope.is_ready_for_data());
    assert_eq!(envelope.data, None, "no DATA without a recipient");
    let refusal = envelope.refusal().expect("refused");
    assert!(refusal.is_transient());
    assert_eq!(
        refusal.to_string(),
        "SMTP RCPT TO:<b@example.org> got 452 4.3.1 Insufficient system storage"
    );
    assert!(matches!(
        client.write_body(b"x").await,
        Err(SmtpError::Sequence(_))
    ));
    // The server hangs up without 221; that is fine.
    client.quit().await.expect("QUIT");
    server.await.expect("fake server");
}

/// An LMTP server with PIPELINING that answers the envelope for `rcpts` with 250s and 354.
async fn lmtp_envelope(p: &mut peer::Peer, rcpts: usize) -> Vec<u8> {
    hello(p, "LHLO", &["PIPELINING", "ENHANCEDSTATUSCODES"]).await;
    p.expect("MAIL FROM:<>").await;
    for _ in 0..rcpts {
        p.expect("RCPT TO:").await;
    }
    p.expect("DATA").await;
    let mut replies = "250 2.1.0 ok\r\n".to_owned();
    replies.push_str(&"250 2.1.5 ok\r\n".repeat(rcpts));
    replies.push_str("354 go\r\n");
    p.send(&replies).await;
    p.data().await
}

#[tokio::test]
async fn lmtp_gives_a_verdict_per_recipient() {
    let (port, server) = peer::serve(|mut p| async move {
        assert_eq!(lmtp_envelope(&mut p, 2).await, b"hi\r\n.\r\n");
        p.send("250 2.0.0 <a@example.org> saved\r\n550 5.1.1 <b@example.org> unknown\r\n")
            .await;
    })
    .await;
    let mut client = SmtpClient::connect(&plain(port), Dialect::Lmtp, "relay", None)
        .await
        .expect("connect");
    let envelope = client
        .begin(None, &rcpts(&["a@example.org", "b@example.org"]), 4, false)
        .await
        .expect("envelope");
    assert!(envelope.is_ready_for_data());
    client.write_body(b"hi\r\n").await.expect("body");
    let verdict = client.finish().await.expect("replies");
    let codes: Vec<_> = verdict
        .iter()
        .map(|(r, reply)| (r.as_str(), reply.code))
        .collect();
    assert_eq!(codes, [("a@example.org", 250), ("b@example.org", 550)]);
    server.await.expect("fake server");

    // A server that answers for one recipient and hangs up.
    let (port, server) = peer::serve(|mut p| async move {
        lmtp_envelope(&mut p, 2).await;
        p.send("250 2.0.0 saved\r\n").await;
    })
    .await;
    let mut client = SmtpClient::connect(&plain(port), Dialect::Lmtp, "relay", None)
        .await
        .expect("connect");
    client
        .begin(None, &rcpts(&["a@example.org", "b@example.org"]), 4, false)
        .await
        .expect("envelope");
    client.write_body(b"hi\r\n").await.expect("body");
    let err = client.finish().await.unwrap_err();
    let SmtpError::Incomplete {
        replies, missing, ..
    } = &err
    else {
        panic!("expected Incomplete, got {err}");
    };
    assert_eq!(replies[0].0, "a@example.org");
    assert_eq!(missing, &["b@example.org"]);
    assert!(err.is_transient());
    assert!(
        err.to_string()
            .starts_with("LMTP end of DATA: replies for 1 of 2 recipients, then LMTP"),
        "{err}"
    );
    server.await.expect("fake server");
}

#[tokio::test]
async fn hangup_after_the_dot_is_transient() {
    let (port, server) = peer::serve(|mut p| async move {
        hello(&mut p, "EHLO", &["PIPELINING"]).await;
        for _ in 0..3 {
            p.line().await;
        }
        p.send("250 ok\r\n250 ok\r\n354 go\r\n").await;
        p.data().await;
    })
    .await;
    let mut client = SmtpClient::connect(&plain(port), Dialect::Smtp, "relay", None)
        .await
        .expect("connect");
    client
        .begin(Some("a@example.net"), &rcpts(&["b@example.org"]), 4, false)
        .await
        .expect("envelope");
    client.write_body(b"hi\r\n").await.expect("body");
    let err = client.finish().await.unwrap_err();
    server.await.expect("fake server");
    assert!(
        matches!(
            &err,
            SmtpError::Conn {
                source: ConnError::Closed,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        "SMTP end of DATA: server closed the connection"
    );
}

#[tokio::test]
async fn garbage_reply_is_malformed() {
    let (port, server) = peer::serve(|mut p| async move {
        hello(&mut p, "EHLO", &[]).await;
        p.expect("MAIL FROM:").await;
        p.send("hello, I am not an SMTP server\r\n").await;
    })
    .await;
    let mut client = SmtpClient::connect(&plain(port), Dialect::Smtp, "relay", None)
        .await
        .expect("connect");
    let err = client
        .begin(Some("a@example.net"), &rcpts(&["b@example.org"]), 4, false)
        .await
        .unwrap_err();
    assert!(matches!(err, SmtpError::Malformed { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("SMTP MAIL FROM:<a@example.net>: malformed reply: not an SMTP reply code"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert!(matches!(
        client
            .begin(None, &rcpts(&["b@example.org"]), 4, false)
            .await,
        Err(SmtpError::Broken { .. })
    ));
    server.await.expect("fake server");
}

#[tokio::test]
async fn auth_login_and_no_password_in_clear() {
    let (port, server) = peer::serve(|mut p| async move {
        hello(&mut p, "EHLO", &["AUTH LOGIN"]).await;
        p.expect("AUTH LOGIN").await;
        p.send("334 VXNlcm5hbWU6\r\n").await;
        assert_eq!(p.line().await.as_deref(), Some("YWxpY2U="));
        p.send("334 UGFzc3dvcmQ6\r\n").await;
        assert_eq!(p.line().await.as_deref(), Some("cHc="));
        p.send("235 2.7.0 ok\r\n").await;
    })
    .await;
    let login = Login::own("alice", Secret::new("pw"));
    SmtpClient::connect(&plain(port), Dialect::Smtp, "relay", Some(&login))
        .await
        .expect("AUTH LOGIN in clear, as starttls = no allows");
    server.await.expect("fake server");

    let (port, server) = peer::serve(|mut p| async move {
        hello(&mut p, "EHLO", &["AUTH PLAIN"]).await;
        assert_eq!(p.line().await, None, "no AUTH without TLS");
    })
    .await;
    let err = SmtpClient::connect(
        &endpoint(port, StartTls::Auto),
        Dialect::Smtp,
        "relay",
        Some(&login),
    )
    .await
    .err()
    .expect("refused");
    assert!(matches!(err, SmtpError::ClearText { .. }), "{err}");
    server.await.expect("fake server");
}

/// RFC 5321 §4.5.3.2.6: the verdict on the dot may take 10 minutes, whatever `ep.timeout`
/// says. Paused time: the wait costs nothing, and the clock shows how long the client waited.
#[tokio::test(start_paused = true)]
async fn final_reply_waits_ten_minutes() {
    let (port, server) = peer::serve(|mut p| async move {
        hello(&mut p, "EHLO", &["PIPELINING"]).await;
        for _ in 0..3 {
            p.line().await;
        }
        p.send("250 ok\r\n250 ok\r\n354 go\r\n").await;
        p.data().await;
        // Never answers; returns when the client gives up and closes.
        assert_eq!(p.line().await, None);
    })
    .await;
    let mut ep = plain(port);
    ep.timeout = Duration::from_secs(5);
    let mut client = SmtpClient::connect(&ep, Dialect::Smtp, "relay", None)
        .await
        .expect("connect");
    client
        .begin(Some("a@example.net"), &rcpts(&["b@example.org"]), 4, false)
        .await
        .expect("envelope");
    client.write_body(b"hi\r\n").await.expect("body");
    let started = tokio::time::Instant::now();
    let err = client.finish().await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(600), "{err}");
    assert!(
        matches!(err, SmtpError::Timeout { after, .. } if after == Duration::from_secs(600)),
        "{err}"
    );
    assert_eq!(err.to_string(), "SMTP end of DATA: no reply within 600s");
    assert!(err.is_transient());
    drop(client);
    server.await.expect("fake server");
}
