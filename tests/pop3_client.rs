//! The migrate POP3 client against a real Dovecot (STLS, POP3S, private CA, pipelined RETR,
//! DELE semantics checked in the Maildir), and against scripted fakes for what Dovecot will not
//! do: no PIPELINING, no STLS, hostile listings and overlong lines.

mod peer;
mod support;

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use posta::client::pop3::{Pop3Client, Pop3Error};
use posta::client::{Admin, AdminForm, ConnError, Endpoint, Login};
use posta::health::{StartTls, TlsPolicy};
use posta::secret::Secret;
use support::{Ca, Dovecot};

fn endpoint(port: u16, implicit_tls: bool, starttls: StartTls, ca: &Ca) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        implicit_tls,
        starttls,
        tls: TlsPolicy {
            ca_file: Some(ca.ca_pem()),
            ..TlsPolicy::default()
        },
        timeout: Duration::from_secs(10),
    }
}

fn login(password: &str) -> Login {
    Login::own("alice", Secret::new(password))
}

async fn session(ep: &Endpoint) -> Pop3Client {
    let mut client = Pop3Client::connect(ep).await.expect("connect");
    client.login(&login("pw")).await.expect("login");
    client
}

fn message(subject: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.org>\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

/// Messages real mail contains and a careless client mangles.
fn awkward_messages() -> Vec<Vec<u8>> {
    let mut big = Vec::new();
    for i in 0..4000 {
        big.extend_from_slice(format!("{i:06} {}\r\n", "b".repeat(68)).as_bytes());
        if i % 500 == 0 {
            big.extend_from_slice(b".dot line inside a big message\r\n");
        }
    }
    assert!(big.len() > 300_000);
    vec![
        message(
            "dots",
            b".leading dot\r\n.\r\n..\r\n. space\r\nend.\r\n.\r\nlast\r\n",
        ),
        message(
            "long-line",
            format!("{}\r\n", "x".repeat(10_000)).as_bytes(),
        ),
        message("big", &big),
        message("eight-bit", b"caf\xc3\xa9 \xe9\xff\r\n"),
    ]
}

/// The messages now in `user`'s Maildir (new/ and cur/).
fn stored(dovecot: &Dovecot, user: &str) -> BTreeSet<Vec<u8>> {
    ["new", "cur"]
        .iter()
        .flat_map(|sub| fs::read_dir(dovecot.maildir(user).join(sub)).expect("read Maildir"))
        .map(|entry| fs::read(entry.expect("Maildir entry").path()).expect("read message"))
        .collect()
}

#[tokio::test]
async fn stls_and_pop3s_with_the_private_ca() {
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "pw")]);
    dovecot.deliver("alice", &message("hello", b"hi\r\n"));
    for ep in [
        endpoint(dovecot.pop3_port(), false, StartTls::Require, ca),
        endpoint(dovecot.pop3s_port(), true, StartTls::Auto, ca),
    ] {
        let mut client = session(&ep).await;
        assert_eq!(client.list().await.expect("LIST").len(), 1);
        client.quit().await.expect("QUIT");
    }
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "pw")]);
    let other = Ca::other();
    for ep in [
        endpoint(dovecot.pop3_port(), false, StartTls::Auto, other),
        endpoint(dovecot.pop3s_port(), true, StartTls::Auto, other),
    ] {
        let err = Pop3Client::connect(&ep).await.err().expect("untrusted CA");
        let text = err.to_string();
        assert!(text.contains("UnknownIssuer"), "{text}");
        assert!(
            text.starts_with("POP3 TLS handshake with 127.0.0.1:"),
            "{text}"
        );
        assert!(!err.is_transient(), "{text}");
    }
}

#[tokio::test]
async fn wrong_password_is_a_permanent_rejection() {
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "pw")]);
    let ep = endpoint(dovecot.pop3_port(), false, StartTls::Require, ca);
    let mut client = Pop3Client::connect(&ep).await.expect("connect");
    let err = client.login(&login("wrong-pw")).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Pop3Error::Auth { command, .. } if command == "PASS <redacted>"),
        "{text}"
    );
    assert!(
        text.starts_with("POP3 login as alice failed: PASS <redacted> got -ERR"),
        "{text}"
    );
    assert!(!text.contains("wrong-pw"));
    assert!(!err.is_transient(), "{text}");
}

#[tokio::test]
async fn pipelined_retr_is_byte_exact() {
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "pw")]);
    let seeded = awkward_messages();
    for m in &seeded {
        dovecot.deliver("alice", m);
    }
    let mut client = session(&endpoint(dovecot.pop3s_port(), true, StartTls::Auto, ca)).await;
    let uidl = client.uidl().await.expect("UIDL");
    let list = client.list().await.expect("LIST");
    assert_eq!(uidl.len(), seeded.len());
    let numbers: Vec<u32> = list.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, uidl.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    let ids: BTreeSet<&String> = uidl.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), seeded.len(), "unique ids: {uidl:?}");

    assert!(client.pipelining(), "Dovecot announces PIPELINING");
    for (n, _) in &list {
        client.send_retr(*n).await.expect("send RETR");
    }
    let mut got = BTreeSet::new();
    for (n, size) in &list {
        let m = client.read_retr().await.expect("RETR");
        // In order: the Nth reply is message N, whose size LIST gave.
        assert_eq!(m.len() as u64, *size, "message {n}");
        got.insert(m);
    }
    assert_eq!(got, seeded.into_iter().collect::<BTreeSet<_>>());
    assert!(matches!(
        client.read_retr().await,
        Err(Pop3Error::NothingQueued)
    ));
    client.quit().await.expect("QUIT");
    // Reading is not deleting.
    assert_eq!(stored(&dovecot, "alice").len(), 4);
}

#[tokio::test]
async fn dele_then_quit_removes_exactly_those() {
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "pw")]);
    let seeded = awkward_messages();
    for m in &seeded {
        dovecot.deliver("alice", m);
    }
    let ep = endpoint(dovecot.pop3_port(), false, StartTls::Require, ca);
    let mut client = session(&ep).await;
    let mut kept = BTreeSet::new();
    for (n, _) in client.list().await.expect("LIST") {
        client.send_retr(n).await.expect("send RETR");
        let m = client.read_retr().await.expect("RETR");
        if n % 2 == 0 {
            kept.insert(m);
        } else {
            client.dele(n).await.expect("DELE");
        }
    }
    client.quit().await.expect("QUIT");
    assert_eq!(stored(&dovecot, "alice"), kept);
    let mut again = session(&ep).await;
    assert_eq!(again.uidl().await.expect("UIDL").len(), kept.len());
}

/// Pipelined DELE over more than one window (Dovecot announces PIPELINING): every other one of
/// 250 messages marked, plus one that does not exist; the -ERR for it names it, the session
/// stays in step (QUIT still works), and QUIT removes exactly the marked ones.
#[tokio::test]
async fn pipelined_dele_marks_exactly_those_and_names_a_refusal() {
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "pw")]);
    let seeded: Vec<Vec<u8>> = (0..250)
        .map(|i| message(&format!("m{i}"), format!("body {i}\r\n").as_bytes()))
        .collect();
    for m in &seeded {
        dovecot.deliver("alice", m);
    }
    let ep = endpoint(dovecot.pop3s_port(), true, StartTls::Auto, ca);
    let mut client = session(&ep).await;
    assert!(client.pipelining(), "Dovecot announces PIPELINING");
    let listed = client.list().await.expect("LIST");
    assert_eq!(listed.len(), 250);
    let mut by_number = std::collections::HashMap::new();
    for (n, _) in &listed {
        client.send_retr(*n).await.expect("send RETR");
        by_number.insert(*n, client.read_retr().await.expect("RETR"));
    }
    let odd: Vec<u32> = listed
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n % 2 == 1)
        .collect();
    client.dele_many(&odd).await.expect("DELE");
    let err = client
        .dele_many(&[2, 9999, 4])
        .await
        .expect_err("no message 9999");
    assert!(err.to_string().contains("DELE 9999"), "{err}");
    client.quit().await.expect("QUIT");
    let mut again = session(&ep).await;
    // 125 odd ones and 2 and 4 went; the rest stays.
    assert_eq!(again.uidl().await.expect("UIDL").len(), 250 - 125 - 2);
    again.quit().await.expect("QUIT");
    let left = stored(&dovecot, "alice");
    assert_eq!(left.len(), 123);
    for (n, m) in &by_number {
        let gone = n % 2 == 1 || *n == 2 || *n == 4;
        assert_eq!(left.contains(m), !gone, "message {n}");
    }
    assert_eq!(
        by_number.values().collect::<BTreeSet<_>>().len(),
        seeded.len()
    );
}

#[tokio::test]
async fn dele_without_quit_removes_nothing() {
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "pw")]);
    let seeded = awkward_messages();
    for m in &seeded {
        dovecot.deliver("alice", m);
    }
    let ep = endpoint(dovecot.pop3s_port(), true, StartTls::Auto, ca);
    let mut client = session(&ep).await;
    for (n, _) in client.uidl().await.expect("UIDL") {
        client.dele(n).await.expect("DELE");
    }
    // A connection lost before QUIT: RFC 1939 §6, no UPDATE state.
    drop(client);
    let mut again = session(&ep).await;
    assert_eq!(again.uidl().await.expect("UIDL").len(), seeded.len());
    again.quit().await.expect("QUIT");
    assert_eq!(stored(&dovecot, "alice"), seeded.into_iter().collect());
}

const GREETING: &str = "+OK fake ready\r\n";

/// Greeting and CAPA as a server without PIPELINING or STLS announces them.
async fn plain_start(p: &mut peer::Peer) {
    p.send(GREETING).await;
    p.expect("CAPA").await;
    p.send("+OK\r\nUSER\r\nUIDL\r\n.\r\n").await;
}

#[tokio::test]
async fn without_pipelining_commands_go_one_at_a_time() {
    let (port, server) = peer::serve(|mut p| async move {
        plain_start(&mut p).await;
        for (cmd, reply) in [
            ("USER alice", "+OK\r\n"),
            ("PASS pw", "+OK\r\n"),
            ("CAPA", "+OK\r\nUSER\r\n.\r\n"),
            ("RETR 1", "+OK\r\n..one\r\n.\r\n"),
            ("DELE 1", "+OK\r\n"),
            ("RETR 2", "-ERR no such message\r\n"),
            ("RETR 3", "+OK\r\nthree\r\n.\r\n"),
            ("QUIT", "+OK bye\r\n"),
        ] {
            p.expect(cmd).await;
            assert_eq!(p.pending(), 0, "client pipelined after {cmd}");
            p.send(reply).await;
        }
    })
    .await;
    let ca = Ca::get();
    let mut client = Pop3Client::connect(&endpoint(port, false, StartTls::No, ca))
        .await
        .expect("connect");
    client.login(&login("pw")).await.expect("login in clear");
    for n in 1..=3 {
        client.send_retr(n).await.expect("queue RETR");
    }
    assert_eq!(client.read_retr().await.expect("RETR 1"), b".one\r\n");
    client.dele(1).await.expect("DELE");
    let err = client.read_retr().await.unwrap_err();
    assert_eq!(err.to_string(), "POP3 RETR 2 got -ERR no such message");
    assert_eq!(client.read_retr().await.expect("RETR 3"), b"three\r\n");
    client.quit().await.expect("QUIT");
    server.await.expect("fake server");
}

#[tokio::test]
async fn no_password_in_clear_without_stls() {
    let (port, server) = peer::serve(|mut p| async move {
        plain_start(&mut p).await;
        // The client must hang up without USER or PASS.
        assert_eq!(p.line().await, None);
    })
    .await;
    let ca = Ca::get();
    let mut client = Pop3Client::connect(&endpoint(port, false, StartTls::Auto, ca))
        .await
        .expect("connect");
    let err = client.login(&login("pw")).await.unwrap_err();
    assert!(matches!(err, Pop3Error::ClearText { .. }), "{err}");
    drop(client);
    server.await.expect("fake server");

    let (port, server) = peer::serve(|mut p| async move {
        plain_start(&mut p).await;
    })
    .await;
    let err = Pop3Client::connect(&endpoint(port, false, StartTls::Require, ca))
        .await
        .err()
        .expect("STLS required");
    assert!(
        err.to_string()
            .ends_with("does not offer STLS, but TLS is required"),
        "{err}"
    );
    server.await.expect("fake server");
}

#[tokio::test]
async fn hostile_listings_and_lines_fail_clearly() {
    let (port, server) = peer::serve(|mut p| async move {
        plain_start(&mut p).await;
        p.expect("UIDL").await;
        p.send("+OK\r\n1 same\r\n2 same\r\n.\r\n").await;
        p.expect("RETR 1").await;
        p.send("+OK\r\n").await;
        let line = vec![b'x'; (1 << 20) + 10];
        p.send_bytes(&line).await;
        // The client gives up; whatever it does next must not reach the server.
        assert_eq!(p.line().await, None);
    })
    .await;
    let ca = Ca::get();
    let mut client = Pop3Client::connect(&endpoint(port, false, StartTls::No, ca))
        .await
        .expect("connect");
    let err = client.uidl().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "POP3 UIDL: malformed reply: unique-id shared by messages 1 and 2: 2 same"
    );
    client.send_retr(1).await.expect("queue RETR");
    let err = client.read_retr().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Pop3Error::Conn {
                source: ConnError::Malformed(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "POP3 RETR 1: line longer than 1048576 octets"
    );
    assert!(matches!(client.dele(1).await, Err(Pop3Error::Broken)));
    let err = client.quit().await.unwrap_err();
    assert!(err.to_string().contains("deletions not confirmed"), "{err}");
    server.await.expect("fake server");
}

fn admin_login(user: &str, form: AdminForm) -> Login {
    Login {
        user: user.into(),
        password: Secret::new("admin-pw"),
        admin: Some(Admin {
            user: "admin".into(),
            form,
        }),
    }
}

/// An admin identity sends AUTH PLAIN with the user as authorization identity (RFC 5034 §4):
/// the response on the command line, or after `+` when the line would pass 255 octets.
#[tokio::test]
async fn an_admin_authenticates_with_auth_plain() {
    let long_user = "a".repeat(200);
    let short = format!("AUTH PLAIN {}", B64.encode("alice\0admin\0admin-pw"));
    let (port, server) = peer::serve(move |mut p| async move {
        p.send(GREETING).await;
        p.expect("CAPA").await;
        p.send("+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n").await;
        assert_eq!(p.line().await, Some(short));
        p.send("+OK logged in\r\n").await;
        p.expect("CAPA").await;
        p.send("+OK\r\nUSER\r\n.\r\n").await;
    })
    .await;
    let ca = Ca::get();
    let ep = endpoint(port, false, StartTls::No, ca);
    let mut client = Pop3Client::connect(&ep).await.expect("connect");
    client
        .login(&admin_login("alice", AdminForm::Auto))
        .await
        .expect("AUTH PLAIN");
    drop(client);
    server.await.expect("fake server");

    let response = B64.encode(format!("{long_user}\0admin\0admin-pw"));
    let (port, server) = peer::serve(move |mut p| async move {
        p.send(GREETING).await;
        p.expect("CAPA").await;
        p.send("+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n").await;
        assert_eq!(p.line().await.as_deref(), Some("AUTH PLAIN"));
        p.send("+ \r\n").await;
        assert_eq!(p.line().await, Some(response));
        p.send("-ERR [AUTH] Authentication failed.\r\n").await;
    })
    .await;
    let mut client = Pop3Client::connect(&endpoint(port, false, StartTls::No, ca))
        .await
        .expect("connect");
    let err = client
        .login(&admin_login(&long_user, AdminForm::Plain))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "POP3 login as {long_user} with admin identity admin failed: AUTH PLAIN got -ERR [AUTH]"
        )),
        "{text}"
    );
    server.await.expect("fake server");
}

/// Without `SASL PLAIN` in CAPA (or when told so) an admin logs in as `alice*admin`.
#[tokio::test]
async fn an_admin_falls_back_to_user_star_admin() {
    let (port, server) = peer::serve(|mut p| async move {
        plain_start(&mut p).await;
        for (cmd, reply) in [
            ("USER alice*admin", "+OK\r\n"),
            ("PASS admin-pw", "+OK\r\n"),
            ("CAPA", "+OK\r\nUSER\r\n.\r\n"),
        ] {
            assert_eq!(p.line().await.as_deref(), Some(cmd));
            p.send(reply).await;
        }
    })
    .await;
    let ca = Ca::get();
    let mut client = Pop3Client::connect(&endpoint(port, false, StartTls::No, ca))
        .await
        .expect("connect");
    client
        .login(&admin_login("alice", AdminForm::Auto))
        .await
        .expect("USER alice*admin");
    server.await.expect("fake server");
}
