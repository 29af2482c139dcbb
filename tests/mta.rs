//! `posta mta` as a process, against real peers: swaks and a raw SMTP client as senders,
//! Dovecot serving the Maildirs it writes, Postfix (the primary) receiving what it relays.
//!
//! What is asserted is what a mail administrator cares about: nothing relayed that should
//! not be, every 250 stored exactly once (also across SIGKILL), queued mail delivered
//! byte-exact when the primary returns, a DSN after the lifetime.

mod support;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::maildir::{count, messages};
use support::posta_mta::{PostaMta, Smtp, message, path, s, send_one, wait_mta};
use support::run::{Run, posta_command};
use support::sys::require_tool;
use support::{Ca, Dovecot, Postfix, Primary};

const BIN: &str = env!("CARGO_BIN_EXE_posta");

fn posta(args: &[String]) -> Run {
    Run::from_output(posta_command(BIN).args(args).output().expect("run posta"))
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn queue_len(queue: &Path) -> usize {
    fs::read_dir(queue.join("active")).map_or(0, |d| d.count())
}

/// Every trick that has turned a mail server into an open relay, each asserted refused, over
/// SMTP from an outside client, for a server that is both a Maildir backup (example.org) and
/// a relay (relayed.org, and laorganizacion.org through the seed's untagged access line).
#[test]
fn open_relay_battery() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access");
    fs::write(
        &access,
        "laorganizacion.org RELAY\nConnect:198.51.100 RELAY\nTo:user@ RELAY\n",
    )
    .unwrap();
    let (mail, queue) = (dir.path().join("mail"), dir.path().join("queue"));
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--hostname",
            "mx2.example.org",
            "--domain",
            "example.org",
            "--maildir",
            &path(&mail),
            "--queue",
            &path(&queue),
            "--relay-domain",
            "relayed.org",
            "--access",
            &path(&access),
            "--relay-to",
            "127.0.0.1:9",
            "--retry-min",
            "1h",
        ]),
    );
    let log = fs::read_to_string(&mta.log).unwrap();
    assert!(
        log.contains("untagged `laorganizacion.org RELAY`"),
        "lint warning missing:\n{log}"
    );
    let tricks = [
        "user%other.com@example.org",
        "other.com!user@example.org",
        "@example.org:user@other.com",
        "@example.org,@relayed.org:user@other.com",
        "\"user@other.com\"@example.org",
        "\"user%other.com\"@example.org",
        "user@other.com",
        "user@OTHER.com",
        "user@other.com.",
        "user@[192.0.2.1]",
        "postmaster@[127.0.0.1]",
        "user@example.org.other.com",
        "user@relayed.org.evil.com",
        "user@laorganizacion.org.evil.com",
        "user@example.org@other.com",
        "user",
        "user@",
        "@other.com",
    ];
    // A session per sender: a refused recipient is an error, and at 20 errors the session
    // ends with 421, as Postfix's smtpd_hard_error_limit ends an open-relay probe.
    let session = || {
        let mut c = Smtp::connect(mta.port).unwrap();
        assert!(c.cmd("EHLO outside.test").unwrap().starts_with("250"));
        c
    };
    for from in ["", "ana@example.org", "a@b.net", "x@laorganizacion.org"] {
        let mut c = session();
        for rcpt in tricks {
            assert!(
                c.cmd(&format!("MAIL FROM:<{from}>"))
                    .unwrap()
                    .starts_with("250")
            );
            let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).unwrap();
            assert!(
                r.starts_with('5'),
                "{rcpt} from <{from}> was not refused: {r}"
            );
            let d = c.cmd("DATA").unwrap();
            assert!(
                d.starts_with("554") || d.starts_with("503"),
                "{rcpt}: DATA got {d}"
            );
            c.cmd("RSET").unwrap();
        }
        let _ = c.cmd("QUIT");
    }
    let mut c = session();
    // Without brackets, with a source route in MAIL, with junk: syntax errors, no relay.
    for raw in [
        "RCPT TO:user@other.com",
        "RCPT TO:<user@other.com> NOTIFY=NEVER",
    ] {
        c.cmd("MAIL FROM:<a@b.net>").unwrap();
        let r = c.cmd(raw).unwrap();
        assert!(r.starts_with('5'), "{raw}: {r}");
        c.cmd("RSET").unwrap();
    }
    // The controls: our domains in any case, with a trailing dot, and the relay domains.
    let ok = [
        ("ana@EXAMPLE.ORG.", "local"),
        ("x@Relayed.Org", "relay"),
        ("x@sub.relayed.org", "relay"),
        ("amigo@laorganizacion.org", "relay"),
    ];
    for (i, (rcpt, _)) in ok.iter().enumerate() {
        let r = c
            .send(
                "a@b.net",
                &[rcpt],
                &message(&format!("ok{i}"), "a@b.net", rcpt, "hi"),
            )
            .unwrap();
        assert!(r.starts_with("250"), "{rcpt}: {r}");
    }
    let _ = c.cmd("QUIT");
    assert_eq!(
        count(&mail.join("ana"), None),
        1,
        "only the control was stored locally"
    );
    assert_eq!(
        queue_len(&queue),
        3,
        "only the three relay controls were queued"
    );
    assert!(!mail.join("user").exists() && !mail.join("postmaster").exists());
}

/// SIGHUP reloads the tables; a broken file keeps the old ones and the log says why.
#[test]
fn sighup_reloads_and_keeps_old_tables_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access");
    fs::write(&access, "To:blocked@example.org REJECT\n").unwrap();
    let mail = dir.path().join("mail");
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--domain",
            "example.org",
            "--maildir",
            &path(&mail),
            "--access",
            &path(&access),
        ]),
    );
    let rcpt = |who: &str| {
        let mut c = Smtp::connect(mta.port).unwrap();
        c.cmd("EHLO c").unwrap();
        c.cmd("MAIL FROM:<a@b.net>").unwrap();
        c.cmd(&format!("RCPT TO:<{who}>")).unwrap()
    };
    assert!(rcpt("blocked@example.org").starts_with("550"));
    assert!(rcpt("ana@example.org").starts_with("250"));
    fs::write(&access, "To:ana@example.org ERROR:5.7.1:550 go away\n").unwrap();
    mta.hup();
    wait_for("reload", Duration::from_secs(10), || {
        rcpt("ana@example.org").starts_with("550 5.7.1 go away")
    });
    assert!(rcpt("blocked@example.org").starts_with("250"));
    fs::write(&access, "To:ana@example.org FROBNICATE\n").unwrap();
    mta.hup();
    wait_for(
        "the reload error in the log",
        Duration::from_secs(10),
        || {
            fs::read_to_string(&mta.log)
                .unwrap()
                .contains("reload failed, keeping the old tables")
        },
    );
    assert!(rcpt("ana@example.org").starts_with("550 5.7.1 go away"));
    let log = fs::read_to_string(&mta.log).unwrap();
    assert!(log.contains(&format!("{}:1:", access.display())), "{log}");
}

/// mailserver2's role (MX 20): swaks delivers into the user's Maildir, the Dovecot that owns
/// those Maildirs serves it over IMAP, and `posta migrate` moves it home to the primary.
#[test]
fn mx20_maildir_served_by_dovecot_and_migrated_home() {
    let ca = Ca::get();
    let users = [("ana", "pw-ana-1"), ("bo", "pw-bo-1")];
    let backup = Dovecot::start(ca, &users);
    let primary = Primary::start(ca, &users);
    let dir = tempfile::tempdir().unwrap();
    let root = backup.path().join("mail").join("%u").join("Maildir");
    let rcpts = dir.path().join("recipients");
    fs::write(&rcpts, "ana@example.org\nbo@example.org\n").unwrap();
    let pop3_users = dir.path().join("pop3-users");
    fs::write(
        &pop3_users,
        format!("bo:{}\n", posta::mta::users::hash_password("pw-bo-1")),
    )
    .unwrap();
    fs::set_permissions(&pop3_users, fs::Permissions::from_mode(0o600)).unwrap();
    let pop3_port = support::ports::free_port();
    let mut mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--hostname",
            "mailserver2.example.org",
            "--domain",
            "example.org",
            "--maildir",
            &path(&root),
            // Dovecot runs mail as posta-vmail: the Maildirs must be that user's.
            "--maildir-owner",
            support::sys::VMAIL_USER,
            "--recipients",
            &path(&rcpts),
            "--tls-cert",
            &path(&ca.cert_pem()),
            "--tls-key",
            &path(&ca.key_pem()),
            "--pop3-listen",
            &format!("127.0.0.1:{pop3_port}"),
            "--pop3-users",
            &path(&pop3_users),
        ]),
    );
    let swaks = require_tool("swaks");
    for i in 0..3 {
        let out = Command::new(&swaks)
            .args(["--server", &format!("127.0.0.1:{}", mta.port), "--tls"])
            .args(["--tls-verify", "--tls-ca-path", &path(&ca.ca_pem())])
            .args([
                "--from",
                "carlos@laorganizacion.org",
                "--to",
                "ana@example.org",
            ])
            .args(["--header", &format!("Message-Id: <mx20-{i}@posta.test>")])
            .args([
                "--body",
                &format!("while mailserver1 is down, message {i}\n.leading dot"),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "swaks failed:\n{text}{}",
            mta.log_tail()
        );
        assert!(text.contains("250 2.0.0 ok: queued as"), "{text}");
        assert!(
            text.contains("with ESMTPS") || text.contains("TLS started"),
            "{text}"
        );
    }
    // Unknown users are refused at RCPT, never accepted and bounced.
    let r = send_one(mta.port, "a@b.net", &["nobody@example.org"], b"x\r\n").unwrap_err();
    assert!(r.starts_with("550 5.1.1"), "{r}");
    let stored = backup.messages("ana", None);
    assert_eq!(stored.len(), 3);
    for m in &stored {
        let text = String::from_utf8_lossy(&m.body);
        // The envelope on top, as Postfix's virtual(8) and Dovecot's LMTP leave it.
        assert!(
            text.starts_with(
                "Return-Path: <carlos@laorganizacion.org>\r\nDelivered-To: ana@example.org\r\nReceived: from "
            ),
            "{text}"
        );
        assert!(
            text.contains("by mailserver2.example.org (posta) with ESMTPS"),
            "{text}"
        );
        assert!(
            text.contains("\r\n.leading dot"),
            "dot-unstuffed once: {text}"
        );
    }
    // Dovecot serves them over IMAP: migrate reads them there and delivers to the primary.
    let pw = dir.path().join("pw");
    fs::write(&pw, "pw-ana-1").unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let run = posta(&s(&[
        "migrate",
        "--from",
        &format!("imaps://ana@127.0.0.1:{}", backup.imaps_port()),
        "--password-file",
        &path(&pw),
        "--to",
        &format!("smtp://127.0.0.1:{}", primary.postfix.smtp_port()),
        "--to-imap",
        &format!("imaps://ana@127.0.0.1:{}", primary.dovecot.imaps_port()),
        "--ca-file",
        &path(&ca.ca_pem()),
        "--state-dir",
        &path(&dir.path().join("state")),
        "--settle",
        "45s",
        "--json",
    ]));
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let inbox = &report["accounts"][0]["folders"][0];
    assert_eq!(inbox["delivered"], 3, "{run:?}");
    assert_eq!(inbox["verified"], 3, "{run:?}");
    wait_for("3 messages at the primary", Duration::from_secs(60), || {
        primary.dovecot.messages("ana", None).len() >= 3
    });
    let home = primary.dovecot.messages("ana", None);
    assert_eq!(home.len(), 3);
    for i in 0..3 {
        let id = format!("<mx20-{i}@posta.test>");
        let n = home
            .iter()
            .filter(|m| String::from_utf8_lossy(&m.body).contains(&id))
            .count();
        assert_eq!(n, 1, "{id} arrived {n} times");
    }
    assert_eq!(
        backup.messages("ana", None).len(),
        0,
        "mailserver2 is drained"
    );

    // Without Dovecot: posta's own POP3 serves bo's mail, with UIDLs that survive a restart,
    // and `posta migrate --from pop3://` drains it to the primary.
    for i in 0..2 {
        let m = message(
            &format!("mx20-pop-{i}"),
            "x@y.test",
            "bo@example.org",
            "for bo",
        );
        let r = send_one(mta.port, "x@y.test", &["bo@example.org"], &m).unwrap();
        assert!(r.starts_with("250"), "{r}");
    }
    let uidl = |port: u16| -> Vec<String> {
        let mut c = Smtp::connect_pop3(port).unwrap();
        assert!(c.cmd("USER bo").unwrap().starts_with("+OK"));
        assert!(c.cmd("PASS pw-bo-1").unwrap().starts_with("+OK"));
        let list = c.multiline("UIDL").unwrap();
        let _ = c.cmd("QUIT");
        list
    };
    let before = uidl(pop3_port);
    assert_eq!(before.len(), 2, "{before:?}");
    mta.kill_and_restart(dir.path());
    wait_for("POP3 after the restart", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", pop3_port)).is_ok()
    });
    assert_eq!(uidl(pop3_port), before, "UIDLs are stable across restarts");
    fs::write(&pw, "pw-bo-1").unwrap();
    let run = posta(&s(&[
        "migrate",
        "--from",
        &format!("pop3://bo@127.0.0.1:{pop3_port}"),
        "--password-file",
        &path(&pw),
        "--to",
        &format!("smtp://127.0.0.1:{}", primary.postfix.smtp_port()),
        "--ca-file",
        &path(&ca.ca_pem()),
        "--state-dir",
        &path(&dir.path().join("state-pop3")),
        "--json",
    ]));
    assert_eq!(run.code, 0, "{run:?}");
    wait_for("bo's mail at the primary", Duration::from_secs(60), || {
        primary.dovecot.messages("bo", None).len() >= 2
    });
    thread::sleep(Duration::from_millis(500));
    assert_eq!(primary.dovecot.messages("bo", None).len(), 2);
    assert_eq!(
        backup.messages("bo", None).len(),
        0,
        "the POP3 maildrop is drained"
    );
}

/// The friend's server (MX 30): with the primary down, mail is accepted and queued; when the
/// primary is back and the queue is flushed, it arrives byte-exact plus our Received line.
#[test]
fn mx30_store_and_forward_when_the_primary_returns() {
    let ca = Ca::get();
    let mut primary = Postfix::start(ca, "example.org", &["ana", "bo"], None);
    primary.stop();
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let rcpts = dir.path().join("recipients");
    fs::write(&rcpts, "ana@example.org\nbo@example.org\n").unwrap();
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--hostname",
            "mx30.laorganizacion.org",
            "--relay-domain",
            "example.org",
            "--recipients",
            &path(&rcpts),
            "--queue",
            &path(&queue),
            "--relay-to",
            &format!("127.0.0.1:{}", primary.smtp_port()),
            "--ca-file",
            &path(&ca.ca_pem()),
            "--retry-min",
            "1h",
        ]),
    );
    let mut sent = Vec::new();
    for i in 0..10 {
        let to = if i % 2 == 0 {
            "ana@example.org"
        } else {
            "bo@example.org"
        };
        let body = format!("queued while the primary is down {i}\r\n.dot line\r\nend");
        let m = message(&format!("mx30-{i}"), "carlos@laorganizacion.org", to, &body);
        let r = send_one(mta.port, "carlos@laorganizacion.org", &[to], &m).unwrap();
        assert!(r.starts_with("250"), "{r}");
        sent.push((to, m));
    }
    let r = send_one(mta.port, "a@b.net", &["nobody@example.org"], b"x\r\n").unwrap_err();
    assert!(r.starts_with("550 5.1.1"), "unknown relay recipient: {r}");
    wait_for("a failed attempt", Duration::from_secs(20), || {
        fs::read_to_string(&mta.log)
            .unwrap()
            .contains("destination down")
    });
    assert_eq!(queue_len(&queue), 10);
    let list = posta(&s(&["queue", "list", "--json", "--queue", &path(&queue)]));
    assert_eq!(list.code, 0, "{list:?}");
    let listed = list.json()["messages"].as_array().unwrap().len();
    assert_eq!(listed, 10);

    primary.start_again();
    let flush = posta(&s(&[
        "queue",
        "flush",
        "--queue",
        &path(&queue),
        "--control-socket",
        &path(&mta.control),
    ]));
    assert_eq!(flush.code, 0, "{flush:?}");
    wait_mta(&mta, "the queue to drain", Duration::from_secs(60), || {
        queue_len(&queue) == 0
    });
    wait_for(
        "10 messages at the primary",
        Duration::from_secs(60),
        || count(&primary.maildir("ana"), None) + count(&primary.maildir("bo"), None) >= 10,
    );
    thread::sleep(Duration::from_millis(500));
    let mut got: Vec<Vec<u8>> = messages(&primary.maildir("ana"), None)
        .into_iter()
        .chain(messages(&primary.maildir("bo"), None))
        .map(|m| m.body)
        .collect();
    assert_eq!(got.len(), 10, "exactly once");
    for (_, m) in &sent {
        // Postfix's virtual(8) stores LF line ends.
        let lf: Vec<u8> = String::from_utf8_lossy(m)
            .replace("\r\n", "\n")
            .into_bytes();
        let pos = got
            .iter()
            .position(|g| g.ends_with(&lf))
            .unwrap_or_else(|| {
                panic!(
                    "not delivered byte-exact:\n{}\ngot:\n{}",
                    String::from_utf8_lossy(m),
                    String::from_utf8_lossy(&got[0])
                )
            });
        let g = got.remove(pos);
        let head = String::from_utf8_lossy(&g[..g.len() - lf.len()]).into_owned();
        assert_eq!(
            head.matches("(posta)").count(),
            1,
            "one Received by posta:\n{head}"
        );
        assert!(
            head.contains("by mx30.laorganizacion.org (posta)"),
            "{head}"
        );
    }
}

/// A message past its lifetime goes back to its sender as one DSN; the null sender never
/// gets one.
#[test]
fn mx30_lifetime_expiry_returns_one_dsn() {
    let ca = Ca::get();
    let primary = Postfix::start(ca, "example.org", &["ana", "bo"], None);
    // The primary is up but defers ana: her mail waits in the queue until the lifetime ends.
    primary.set_recipient_access("ana@example.org 451 4.2.0 try again later\n");
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let _mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--hostname",
            "mx30.laorganizacion.org",
            "--relay-domain",
            "example.org",
            "--queue",
            &path(&queue),
            "--relay-to",
            &format!("127.0.0.1:{}", primary.smtp_port()),
            "--ca-file",
            &path(&ca.ca_pem()),
            "--retry-min",
            "1s",
            "--retry-max",
            "2s",
            "--lifetime",
            "4s",
        ]),
    );
    let port = _mta.port;
    let m = message(
        "expire-1",
        "bo@example.org",
        "ana@example.org",
        "never delivered",
    );
    assert!(
        send_one(port, "bo@example.org", &["ana@example.org"], &m)
            .unwrap()
            .starts_with("250")
    );
    let m2 = message("expire-null", "", "ana@example.org", "a bounce itself");
    assert!(
        send_one(port, "", &["ana@example.org"], &m2)
            .unwrap()
            .starts_with("250")
    );
    wait_mta(
        &_mta,
        "a DSN in bo's mailbox",
        Duration::from_secs(60),
        || count(&primary.maildir("bo"), None) >= 1,
    );
    wait_mta(&_mta, "the queue to empty", Duration::from_secs(30), || {
        queue_len(&queue) == 0
    });
    thread::sleep(Duration::from_secs(2));
    let dsns = messages(&primary.maildir("bo"), None);
    assert_eq!(dsns.len(), 1, "one DSN, none for the null sender");
    let text = String::from_utf8_lossy(&dsns[0].body);
    assert!(text.contains("multipart/report"), "{text}");
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; ana@example.org"),
        "{text}"
    );
    assert!(text.contains("Status: 4.4.7"), "{text}");
    assert!(
        text.contains("Message-ID: <expire-1@posta.test>"),
        "original headers: {text}"
    );
    assert!(
        text.contains("Return-Path: <>"),
        "sent with a null sender: {text}"
    );
    assert_eq!(count(&primary.maildir("ana"), None), 0);
}

/// SIGKILL in the middle of 20 concurrent sessions, then a restart: every message that got
/// 250 is in its Maildir exactly once (Maildir mode) or, once the primary is back, delivered
/// exactly once from the queue (queue mode).
///
/// The primary is down during the load on purpose: what is tested is the intake. A kill that
/// lands between the primary's 250 and the fsync of that outcome makes the restarted mta send
/// the message again: SMTP has no way to ask whether a message arrived (RFC 1047), and every
/// MTA, Postfix included, resends in that window rather than risk losing mail.
#[test]
fn sigkill_under_load_loses_nothing_that_got_250() {
    let ca = Ca::get();
    let mut primary = Postfix::start(ca, "example.org", &["ana"], None);
    primary.stop();
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let queue = dir.path().join("queue");
    let args = s(&[
        "--domain",
        "local.test",
        "--maildir",
        &path(&mail),
        "--relay-domain",
        "example.org",
        "--queue",
        &path(&queue),
        "--relay-to",
        &format!("127.0.0.1:{}", primary.smtp_port()),
        "--ca-file",
        &path(&ca.ca_pem()),
        "--retry-min",
        "1s",
        "--retry-max",
        "2s",
    ]);
    let mut mta = PostaMta::start(BIN, dir.path(), &args);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = mta.port;
    let senders: Vec<_> = (0..20)
        .map(|t| {
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            thread::spawn(move || {
                let mut n = 0;
                'outer: while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut c) = Smtp::connect(port) else {
                        break;
                    };
                    if c.cmd("EHLO load.test").is_err() {
                        break;
                    }
                    loop {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break 'outer;
                        }
                        n += 1;
                        let id = format!("k{t}-{n}");
                        let to = if n % 2 == 0 {
                            "ana@local.test"
                        } else {
                            "ana@example.org"
                        };
                        let m = message(&id, "load@sender.test", to, &"x".repeat(4000));
                        match c.send("load@sender.test", &[to], &m) {
                            Ok(r) if r.starts_with("250") => acked.lock().unwrap().push(id),
                            Ok(_) | Err(_) => continue 'outer,
                        }
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    mta.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in senders {
        h.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "the load ran ({} acknowledged)",
        acked.len()
    );
    mta.kill_and_restart(dir.path());
    primary.start_again();
    let flush = posta(&s(&[
        "queue",
        "flush",
        "--queue",
        &path(&queue),
        "--control-socket",
        &path(&mta.control),
    ]));
    assert_eq!(flush.code, 0, "{flush:?}");
    let local: Vec<&String> = acked
        .iter()
        .filter(|id| id.split('-').nth(1).unwrap().parse::<u32>().unwrap() % 2 == 0)
        .collect();
    let relayed = acked.len() - local.len();
    wait_mta(
        &mta,
        "relayed mail at the primary",
        Duration::from_secs(120),
        || count(&primary.maildir("ana"), None) >= relayed && queue_len(&queue) == 0,
    );
    thread::sleep(Duration::from_secs(1));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in messages(&mail.join("ana"), None)
        .into_iter()
        .chain(messages(&primary.maildir("ana"), None))
    {
        let text = String::from_utf8_lossy(&m.body).into_owned();
        let id = text
            .split("Message-ID: <")
            .nth(1)
            .and_then(|r| r.split('@').next())
            .unwrap_or_default()
            .to_string();
        *seen.entry(id).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "{id} got 250 and was stored {:?} times",
            seen.get(id)
        );
    }
    for (id, n) in &seen {
        assert_eq!(*n, 1, "{id} stored {n} times");
    }
    let _ = mta;
}

/// `posta queue` administration: hold, release, show, export, delete.
#[test]
fn queue_administration() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--relay-domain",
            "example.org",
            "--queue",
            &path(&queue),
            "--relay-to",
            "127.0.0.1:9",
            "--relay-tls",
            "none",
            "--retry-min",
            "1h",
        ]),
    );
    for i in 0..3 {
        let m = message(
            &format!("adm{i}"),
            "a@b.net",
            "x@example.org",
            "From me\r\nbody",
        );
        assert!(
            send_one(mta.port, "a@b.net", &["x@example.org"], &m)
                .unwrap()
                .starts_with("250")
        );
    }
    let q = |args: &[&str]| {
        let mut a = s(&[
            "queue",
            "--queue",
            &path(&queue),
            "--control-socket",
            &path(&mta.control),
        ]);
        a.extend(s(args));
        posta(&a)
    };
    let list = q(&["list", "--json"]);
    let ids: Vec<String> = list.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let held = q(&["hold", &ids[0]]);
    assert_eq!(held.code, 0, "{held:?}");
    assert!(q(&["list"]).stdout.contains(&format!("{} (held)", ids[0])));
    let show = q(&["show", &ids[0]]);
    assert!(
        show.stdout.contains("Message-ID: <adm0@posta.test>"),
        "{show:?}"
    );
    assert_eq!(q(&["release", &ids[0]]).code, 0);
    let mbox = dir.path().join("out.mbox");
    let export = q(&["export", "--to", &path(&mbox)]);
    assert_eq!(export.code, 0, "{export:?}");
    let text = fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        text.matches("\nFrom a@b.net ").count() + usize::from(text.starts_with("From a@b.net ")),
        3
    );
    assert!(text.contains("\n>From me\n"), "mboxrd quoting: {text}");
    let md = dir.path().join("out-maildir");
    assert_eq!(
        q(&["export", "--format", "maildir", "--to", &path(&md), &ids[1]]).code,
        0
    );
    assert_eq!(count(&md, None), 1);
    assert_eq!(q(&["delete", &ids[2]]).code, 0);
    assert_eq!(
        q(&["delete", &ids[2]]).code,
        1,
        "a second delete says it is gone"
    );
    assert_eq!(queue_len(&queue), 2);
    let flush = q(&["flush"]);
    assert_eq!(flush.code, 0, "{flush:?}");
}

/// Without a recipient list, `--verify-recipients` asks the primary and caches its answers:
/// known users stay accepted while the primary is down (also after a restart), unknown ones
/// get 550 while it is up and 450 while it is down, never accept-then-bounce.
#[test]
fn recipients_verified_with_the_primary_and_cached() {
    let ca = Ca::get();
    let mut primary = Postfix::start(ca, "example.org", &["ana", "bo"], None);
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let mut mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--relay-domain",
            "example.org",
            "--queue",
            &path(&queue),
            "--verify-recipients",
            "--relay-to",
            &format!("127.0.0.1:{}", primary.smtp_port()),
            "--ca-file",
            &path(&ca.ca_pem()),
            "--retry-min",
            "1h",
        ]),
    );
    let rcpt = |port: u16, who: &str| {
        let mut c = Smtp::connect(port).unwrap();
        c.cmd("EHLO c").unwrap();
        c.cmd("MAIL FROM:<a@b.net>").unwrap();
        c.cmd(&format!("RCPT TO:<{who}>")).unwrap()
    };
    assert!(rcpt(mta.port, "ana@example.org").starts_with("250"));
    let unknown = rcpt(mta.port, "nobody@example.org");
    assert!(unknown.starts_with("550 5.1.1"), "{unknown}");
    primary.stop();
    assert!(
        rcpt(mta.port, "ana@example.org").starts_with("250"),
        "cached while down"
    );
    let unverified = rcpt(mta.port, "bo@example.org");
    assert!(unverified.starts_with("450 4.1.1"), "{unverified}");
    mta.kill_and_restart(dir.path());
    assert!(
        rcpt(mta.port, "ana@example.org").starts_with("250"),
        "the cache survives a restart; log:\n{}",
        mta.log_tail()
    );
    assert!(rcpt(mta.port, "bo@example.org").starts_with("450"));
}

/// `posta mta passwd` reads the password from stdin and prints a users-file line that the
/// POP3 server's loader accepts and verifies.
#[test]
fn passwd_prints_a_users_line_that_verifies() {
    use std::io::Write as _;
    let mut child = posta_command(BIN)
        .args(["mta", "passwd", "ana"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"pw with spaces\n")
        .unwrap();
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("ana:{SHA512-CRYPT}$6$"), "{run:?}");
    assert!(!run.stdout.contains("pw with spaces"));
    let users = posta::mta::users::Users::parse(Path::new("users"), &run.stdout).unwrap();
    let good = posta::secret::Secret::new("pw with spaces");
    assert!(users.verify("ana", &good));
    assert!(!users.verify("ana", &posta::secret::Secret::new("pw")));
    let empty = posta(&s(&["mta", "passwd", "ana"]));
    assert_eq!(empty.code, 2, "an empty stdin is refused: {empty:?}");
}
