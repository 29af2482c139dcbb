//! `client::imap` against a real Dovecot (tests/support), and against in-process fakes for what
//! Dovecot never does (no STARTTLS, BYE greeting, silence). Every test asserts what the server
//! ends up holding or saying, not just that calls return Ok.

mod support;

use std::path::Path;
use std::time::Duration;

use posta::client::imap::{ImapClient, ImapError, MAX_MESSAGE};
use posta::client::{Endpoint, Login};
use posta::health::{StartTls, TlsPolicy};
use posta::proto::{imap_cmd, mutf7};
use posta::secret::Secret;
use support::{Ca, Dovecot, Dropper, Tarpit};

fn endpoint(port: u16, implicit_tls: bool, starttls: StartTls, ca: &Path) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        implicit_tls,
        starttls,
        tls: TlsPolicy {
            ca_file: Some(ca.to_owned()),
            ..TlsPolicy::default()
        },
        timeout: Duration::from_secs(10),
    }
}

fn alice(password: &str) -> Login {
    Login::own("alice", Secret::new(password))
}

/// A logged-in STARTTLS session.
async fn session(dovecot: &Dovecot) -> ImapClient {
    let ep = endpoint(
        dovecot.imap_port(),
        false,
        StartTls::Require,
        &Ca::get().ca_pem(),
    );
    let mut client = ImapClient::connect(&ep).await.expect("connect");
    client.login(&alice("pw")).await.expect("login");
    client
}

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\r\n{body}")
        .into_bytes()
}

#[tokio::test]
async fn starttls_and_implicit_tls_trust_only_the_private_ca() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "pw")]);
    let client = session(&dovecot).await;
    assert!(client.tls().is_some_and(|t| t.verified), "STARTTLS");
    assert!(client.has_capability("uidplus"), "post-login capabilities");
    client.logout().await.expect("logout");

    let ep = endpoint(
        dovecot.imaps_port(),
        true,
        StartTls::No,
        &Ca::get().ca_pem(),
    );
    let mut client = ImapClient::connect(&ep).await.expect("connect imaps");
    assert!(client.tls().is_some());
    client.login(&alice("pw")).await.expect("login over imaps");
    client.logout().await.expect("logout");

    let untrusted = endpoint(
        dovecot.imaps_port(),
        true,
        StartTls::No,
        &Ca::other().ca_pem(),
    );
    let err = ImapClient::connect(&untrusted)
        .await
        .err()
        .expect("untrusted CA");
    assert!(matches!(err, ImapError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn login_failure_is_not_transient_and_clear_text_is_a_choice() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "pw")]);
    let ep = endpoint(
        dovecot.imap_port(),
        false,
        StartTls::Require,
        &Ca::get().ca_pem(),
    );
    let mut client = ImapClient::connect(&ep).await.expect("connect");
    let err = client
        .login(&alice("wrong"))
        .await
        .expect_err("bad password");
    assert_eq!(err.code(), Some("AUTHENTICATIONFAILED"), "{err}");
    assert!(
        err.to_string()
            .starts_with("IMAP LOGIN as alice failed: NO"),
        "{err}"
    );
    assert!(!err.is_transient());

    let clear = endpoint(
        dovecot.imap_port(),
        false,
        StartTls::No,
        &Ca::get().ca_pem(),
    );
    let mut client = ImapClient::connect(&clear).await.expect("connect in clear");
    assert!(client.tls().is_none());
    client
        .login(&alice("pw"))
        .await
        .expect("operator chose clear text");
    client.logout().await.expect("logout");
}

#[tokio::test]
async fn servers_that_misbehave() {
    let ca = Ca::get().ca_pem();
    let no_tls = Dropper::start(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
    let ep = endpoint(no_tls.port(), false, StartTls::Auto, &ca);
    let mut client = ImapClient::connect(&ep)
        .await
        .expect("auto without STARTTLS");
    let err = client
        .login(&alice("pw"))
        .await
        .expect_err("no password in clear");
    assert!(matches!(err, ImapError::Cleartext { .. }), "{err}");
    assert!(!err.is_transient());
    let required = endpoint(no_tls.port(), false, StartTls::Require, &ca);
    let err = ImapClient::connect(&required)
        .await
        .err()
        .expect("TLS required");
    assert!(matches!(err, ImapError::NoStartTls { .. }), "{err}");

    let bye = Dropper::start(b"* BYE [UNAVAILABLE] too many connections\r\n");
    let err = ImapClient::connect(&endpoint(bye.port(), false, StartTls::Auto, &ca))
        .await
        .err()
        .expect("BYE greeting");
    assert!(
        matches!(err, ImapError::Bye { .. }) && err.is_transient(),
        "{err}"
    );

    let tarpit = Tarpit::start();
    let mut silent = endpoint(tarpit.port(), false, StartTls::Auto, &ca);
    silent.timeout = Duration::from_millis(300);
    let err = ImapClient::connect(&silent).await.err().expect("silence");
    assert!(
        matches!(err, ImapError::Timeout { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(err.to_string().contains("the greeting"), "{err}");
}

#[tokio::test]
async fn create_and_list_round_trip_utf8_names() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "pw")]);
    let mut client = session(&dovecot).await;
    let raw = mutf7::encode("Entwürfe");
    assert_eq!(raw, "Entw&APw-rfe");
    client.create(&raw).await.expect("create");
    client.create(&raw).await.expect("create again is fine");
    assert!(dovecot.maildir("alice").join(".Entw&APw-rfe").is_dir());

    let boxes = client.list().await.expect("list");
    let drafts = boxes.iter().find(|m| m.name == "Entwürfe").expect("listed");
    assert_eq!(drafts.raw_name, raw);
    assert_eq!(drafts.delimiter, Some('.'));
    assert!(!drafts.noselect);
    assert!(boxes.iter().any(|m| m.raw_name == "INBOX"));

    let first = client
        .select(&drafts.raw_name, false)
        .await
        .expect("select");
    let again = client
        .select(&drafts.raw_name, true)
        .await
        .expect("examine");
    assert!(first.uidvalidity > 0 && first.uidvalidity == again.uidvalidity);
    assert_eq!((first.exists, again.read_only), (0, true));
    let err = client
        .select("Missing", false)
        .await
        .expect_err("no such mailbox");
    assert!(
        err.to_string()
            .starts_with("IMAP SELECT \"Missing\" failed: NO"),
        "{err}"
    );
    client.logout().await.expect("logout");
}

#[tokio::test]
async fn fetch_streams_exact_bodies_and_expunge_removes_only_given_uids() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "pw")]);
    let big: String = (0..4000)
        .map(|i| format!("line {i:05} {}\r\n", "x".repeat(64)))
        .collect();
    let mut sent = vec![
        message("plain", "hello\r\n"),
        message("dots", ".\r\n..leading dots\r\n.\r\nend\r\n"),
        message("big", &big),
    ];
    assert!(sent[2].len() > 300_000);
    for m in &sent {
        dovecot.deliver("alice", m);
    }
    let mut client = session(&dovecot).await;
    let inbox = client.select("INBOX", false).await.expect("select");
    assert_eq!(inbox.exists, 3);
    let uids = client.uid_search("ALL").await.expect("search");
    assert_eq!(uids.len(), 3);

    let metas = client.fetch_meta(&uids).await.expect("fetch_meta");
    let mut sizes: Vec<u64> = metas.iter().map(|m| m.size).collect();
    sizes.sort_unstable();
    let mut lens: Vec<u64> = sent.iter().map(|m| m.len() as u64).collect();
    lens.sort_unstable();
    assert_eq!(sizes, lens);
    assert!(metas.iter().all(|m| (m.size as usize) < MAX_MESSAGE));

    client.start_fetch(&uids).await.expect("start_fetch");
    let mut got = Vec::new();
    while let Some(m) = client.next_message().await.expect("next_message") {
        assert!(
            m.flags.is_empty(),
            "\\Recent must not be reported: {:?}",
            m.flags
        );
        assert_eq!(m.size, m.body.len() as u64);
        got.push(m.body);
    }
    got.sort();
    sent.sort();
    assert!(got == sent, "bodies differ from what was delivered");

    // A command while a fetch still streams reads the rest of it first.
    client.start_fetch(&uids).await.expect("start_fetch");
    assert!(client.next_message().await.expect("first").is_some());
    assert_eq!(client.uid_search("ALL").await.expect("search"), uids);

    client.store_deleted(&uids[..2]).await.expect("store");
    client.expunge(&uids[..1]).await.expect("uid expunge");
    assert_eq!(client.uid_search("ALL").await.expect("search"), uids[1..]);
    assert_eq!(
        client.uid_search("DELETED").await.expect("search"),
        [uids[1]]
    );
    client.logout().await.expect("logout");
}

#[tokio::test]
async fn append_keeps_flags_date_and_is_found_by_header() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "pw")]);
    let mut client = session(&dovecot).await;
    client.create("Archive").await.expect("create");
    let body = [
        b"X-Posta-Id: 5f3a-77\r\n".as_slice(),
        &message("appended", ".\r\nbody\r\n"),
    ]
    .concat();
    let flags = ["\\Seen", "\\Flagged", "$Important"].map(String::from);
    let date = "17-Jul-1996 02:44:25 -0700";
    let (validity, uid) = client
        .append("Archive", &flags, Some(date), &body)
        .await
        .expect("append")
        .expect("APPENDUID with UIDPLUS");

    let selected = client.select("Archive", false).await.expect("select");
    assert_eq!(selected.uidvalidity, validity);
    let meta = client.fetch_meta(&[uid]).await.expect("fetch_meta");
    assert_eq!(meta.len(), 1);
    let mut got = meta[0].flags.clone();
    got.sort();
    assert_eq!(got, ["$Important", "\\Flagged", "\\Seen"]);
    assert_eq!(
        epoch(&meta[0].internal_date),
        epoch(date),
        "{}",
        meta[0].internal_date
    );
    assert_eq!(meta[0].size, body.len() as u64);

    let criteria = imap_cmd::search_header("X-Posta-Id", "5f3a-77").expect("criteria");
    assert_eq!(client.uid_search(&criteria).await.expect("search"), [uid]);
    let none = imap_cmd::search_header("X-Posta-Id", "other").expect("criteria");
    assert!(client.uid_search(&none).await.expect("search").is_empty());

    client.start_fetch(&[uid]).await.expect("start_fetch");
    let copy = client
        .next_message()
        .await
        .expect("fetch")
        .expect("message");
    assert_eq!(copy.body, body);
    assert!(client.next_message().await.expect("end").is_none());

    let err = client
        .append("Nowhere", &[], None, &body)
        .await
        .expect_err("no such mailbox");
    assert_eq!(err.code(), Some("TRYCREATE"), "{err}");
    assert!(!err.is_transient());
    client.logout().await.expect("logout");
}

/// Seconds since 1970 of an IMAP date-time: Maildir keeps the instant (file mtime), not the
/// zone, so Dovecot answers in its own zone.
fn epoch(date: &str) -> i64 {
    let months = "JanFebMarAprMayJunJulAugSepOctNovDec";
    let n = |r: std::ops::Range<usize>| date[r].trim().parse::<i64>().expect("number");
    let month = months.find(&date[3..6]).expect("month") as i64 / 3 + 1;
    let (y, m) = if month <= 2 {
        (n(7..11) - 1, month + 9)
    } else {
        (n(7..11), month - 3)
    };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + n(0..2) - 1 - 719_468;
    let zone = (n(22..24) * 60 + n(24..26)) * if &date[21..22] == "-" { -1 } else { 1 };
    days * 86_400 + n(12..14) * 3600 + n(15..17) * 60 + n(18..20) - zone * 60
}
