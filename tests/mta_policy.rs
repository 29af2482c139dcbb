//! `posta mta`'s recipient policy and MAIL/RCPT parsing against a real Postfix in the same
//! role: the same dialogue goes to both over a raw SMTP socket, and both must give the same
//! reply code and enhanced status code (RFC 3463). Postfix is the yardstick because it is
//! what the world's mail servers already know how to talk to.
//!
//! Roles: a relay (backup MX for example.test: Postfix's `relay_domains` with
//! `relay_recipient_maps`; posta's `--relay-domain` with `--recipients`) and a Maildir store
//! (Postfix's `virtual_mailbox_domains` with `virtual_mailbox_maps`; posta's `--domain` with
//! `--maildir` and `--recipients`).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use support::maildir::{count, messages};
use support::posta_mta::{PostaMta, Smtp, path, s, send_one};
use support::postfix::Options;
use support::run::{Run, posta_command};
use support::{Ca, Postfix};

const BIN: &str = env!("CARGO_BIN_EXE_posta");

/// The reply code and enhanced status code of a reply line: `554 5.7.1`.
fn code(reply: &str) -> String {
    reply.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

/// `MAIL` then `RCPT TO:<rcpt>` on a fresh session: the code of the MAIL reply if it was not
/// 250, else of the RCPT reply.
fn dialogue(port: u16, mail: &str, rcpt: &str) -> String {
    let mut c = Smtp::connect(port).expect("connect");
    let ehlo = c.cmd("EHLO client.outside.test").expect("EHLO");
    assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
    let m = c.cmd(mail).expect("MAIL");
    let r = if m.starts_with("250") {
        c.cmd(&format!("RCPT TO:<{rcpt}>")).expect("RCPT")
    } else {
        m
    };
    let _ = c.cmd("QUIT");
    r
}

/// Runs every case against both servers and asserts the expected code from each.
fn same_as_postfix(postfix: u16, posta: &PostaMta, cases: &[(&str, &str, &str)]) {
    for (mail, rcpt, want) in cases {
        let p = dialogue(postfix, mail, rcpt);
        assert_eq!(code(&p), *want, "postfix, {mail} / {rcpt}: {p}");
        let ours = dialogue(posta.port, mail, rcpt);
        assert_eq!(
            code(&ours),
            *want,
            "posta, {mail} / {rcpt}: {ours}\n{}",
            posta.log_tail()
        );
    }
}

/// A directory Postfix's unprivileged daemons can read maps from.
fn readable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

const FROM: &str = "MAIL FROM:<a@b.example>";

/// The backup MX for example.test with a list of its users.
///
/// Item 4: `x@localhost` got 451 here (local delivery not configured); localhost is now ours
/// only when configured, so it is a foreign domain: 554 5.7.1, as reject_unauth_destination.
/// Item 5: `ana@sub.example.test` and `root@mx2.example.test` got 250 and bounced later; the
/// recipient list now covers the relay domain's subdomains too, as relay_recipient_maps does
/// for everything relay_domains matches (parent_domain_matches_subdomains): 550 5.1.1.
/// Item 9: bare `postmaster` got 553: it is accepted (RFC 5321 §4.5.1) and sent to the
/// primary's postmaster; quoted and address-literal senders got 553 at RCPT: accepted; an
/// overflowing SIZE got 501: it is simply too big, 552 5.3.4.
#[test]
fn relay_role_answers_as_postfix() {
    let ca = Ca::get();
    let maps = readable_dir();
    let list = maps.path().join("relay_recipients");
    fs::write(&list, "ana@example.test x\nbo@example.test x\n").unwrap();
    fs::set_permissions(&list, fs::Permissions::from_mode(0o644)).unwrap();
    let cf = format!(
        "virtual_mailbox_domains =\nrelay_domains = example.test\n\
         relay_recipient_maps = texthash:{}\nrelay_transport = relay:[127.0.0.1]:9\n",
        list.display()
    );
    let postfix = Postfix::start_with(
        ca,
        "example.test",
        &[],
        Options {
            main_cf: Some(&cf),
            ..Options::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--hostname",
            "mx2.example.test",
            "--relay-domain",
            "example.test",
            "--recipients",
            &path(&list),
            "--queue",
            &path(&queue),
            "--relay-to",
            "127.0.0.1:9",
            "--retry-min",
            "1h",
        ]),
    );
    same_as_postfix(
        postfix.smtp_port(),
        &mta,
        &[
            (FROM, "ana@example.test", "250 2.1.5"),
            (FROM, "nobody@example.test", "550 5.1.1"),
            (FROM, "ana@sub.example.test", "550 5.1.1"),
            (FROM, "root@mx2.example.test", "550 5.1.1"),
            (FROM, "anything@localhost", "554 5.7.1"),
            (FROM, "postmaster@localhost", "554 5.7.1"),
            (FROM, "ana@other.test", "554 5.7.1"),
            (FROM, "postmaster", "250 2.1.5"),
            (FROM, "PostMaster", "250 2.1.5"),
            (
                "MAIL FROM:<\"john smith\"@x.example>",
                "ana@example.test",
                "250 2.1.5",
            ),
            ("MAIL FROM:<u@[192.0.2.1]>", "ana@example.test", "250 2.1.5"),
            (
                "MAIL FROM:<a@b.example> SIZE=99999999999999999999",
                "ana@example.test",
                "552 5.3.4",
            ),
        ],
    );
}

/// mailserver2's Maildir role for example.test (item 4): `anything@localhost` got 250 and a
/// Maildir per invented name; localhost is now ours only when configured: 554 5.7.1, and no
/// Maildir. Bare `postmaster` (item 9) goes to the local postmaster's Maildir.
#[test]
fn maildir_role_answers_as_postfix_and_invents_no_maildir() {
    let ca = Ca::get();
    let postfix = Postfix::start(ca, "example.test", &["ana", "bo"], None);
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let list = dir.path().join("recipients");
    fs::write(&list, "ana@example.test\nbo@example.test\n").unwrap();
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--hostname",
            "mailserver2.example.test",
            "--domain",
            "example.test",
            "--maildir",
            &path(&mail),
            "--recipients",
            &path(&list),
        ]),
    );
    same_as_postfix(
        postfix.smtp_port(),
        &mta,
        &[
            (FROM, "ana@example.test", "250 2.1.5"),
            (FROM, "nobody@example.test", "550 5.1.1"),
            (FROM, "anything@localhost", "554 5.7.1"),
            (FROM, "ana@sub.example.test", "554 5.7.1"),
            (FROM, "postmaster", "250 2.1.5"),
            (
                "MAIL FROM:<\"john smith\"@x.example>",
                "ana@example.test",
                "250 2.1.5",
            ),
            ("MAIL FROM:<u@[192.0.2.1]>", "ana@example.test", "250 2.1.5"),
        ],
    );
    let mut c = Smtp::connect(mta.port).unwrap();
    assert!(
        c.cmd("EHLO client.outside.test")
            .unwrap()
            .starts_with("250")
    );
    let body = b"Subject: hello\r\n\r\nto whoever\r\n";
    let r = c.send("a@b.example", &["invented@localhost"], body);
    assert!(matches!(&r, Err(e) if e.starts_with("554 5.7.1")), "{r:?}");
    let r = c.send("\"john smith\"@x.example", &["postmaster"], body);
    assert!(matches!(&r, Ok(ok) if ok.starts_with("250")), "{r:?}");
    let _ = c.cmd("QUIT");
    let made: Vec<String> = fs::read_dir(&mail)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        made,
        ["postmaster"],
        "only the postmaster's Maildir is made"
    );
    let new: Vec<_> = fs::read_dir(mail.join("postmaster").join("new"))
        .unwrap()
        .collect();
    assert_eq!(new.len(), 1);
}

/// A relay-only server whose local-host-names lists localhost has no local mailboxes: every
/// user there is unknown. It said 451 (senders retry for days); with no Maildirs a local user is
/// now unknown: 550 5.1.1, as Postfix with localhost in mydestination and a
/// local_recipient_maps that lists nobody ("User unknown in local recipient table").
#[test]
fn relay_only_server_refuses_local_users_with_550() {
    let ca = Ca::get();
    let maps = readable_dir();
    let nobody = maps.path().join("local_recipients");
    fs::write(&nobody, "").unwrap();
    fs::set_permissions(&nobody, fs::Permissions::from_mode(0o644)).unwrap();
    // Only what this role needs: every overridden main.cf line is a warning logged by every
    // Postfix process, and with four overrides here the instance never greeted (its smtpd sat
    // blocked writing to the postlog socket).
    let cf = format!(
        "mydestination = localhost\nlocal_recipient_maps = texthash:{}\n",
        nobody.display()
    );
    let postfix = Postfix::start_with(
        ca,
        "example.test",
        &[],
        Options {
            main_cf: Some(&cf),
            ..Options::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("local-host-names");
    fs::write(&hosts, "localhost\n").unwrap();
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--relay-domain",
            "example.test",
            "--local-host-names",
            &path(&hosts),
            "--queue",
            &path(&dir.path().join("queue")),
            "--relay-to",
            "127.0.0.1:9",
        ]),
    );
    same_as_postfix(
        postfix.smtp_port(),
        &mta,
        &[
            (FROM, "anything@localhost", "550 5.1.1"),
            (FROM, "ana@other.test", "554 5.7.1"),
        ],
    );
}

/// Item 9: a bare `postmaster` at a relay-only server goes to the primary's postmaster
/// through the queue (there is no local mailbox to read it): it arrives there once.
#[test]
fn bare_postmaster_reaches_the_primarys_postmaster() {
    let ca = Ca::get();
    let primary = Postfix::start(ca, "example.test", &["postmaster"], None);
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--hostname",
            "mx2.example.test",
            "--relay-domain",
            "example.test",
            "--queue",
            &path(&queue),
            "--relay-to",
            &format!("127.0.0.1:{}", primary.smtp_port()),
            "--ca-file",
            &path(&ca.ca_pem()),
        ]),
    );
    let body = b"Subject: abuse report\r\n\r\nfor the postmaster\r\n";
    let r = send_one(mta.port, "\"john smith\"@x.example", &["PostMaster"], body);
    assert!(matches!(&r, Ok(ok) if ok.starts_with("250")), "{r:?}");
    let inbox = primary.maildir("postmaster");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&inbox, None) == 0 {
        assert!(
            Instant::now() < deadline,
            "not delivered to the primary's postmaster; mta log:\n{}",
            mta.log_tail()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let got = messages(&inbox, None);
    assert_eq!(got.len(), 1);
    let text = String::from_utf8_lossy(&got[0].body).into_owned();
    assert!(text.contains("for the postmaster"), "{text}");
}

fn refused(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut all = s(&["mta", "--listen", "127.0.0.1:0", "--queue"]);
    all.push(path(&dir.path().join("queue")));
    all.extend(s(args));
    let child = posta_command(BIN).args(&all).spawn().expect("run posta");
    // A setting taken would leave the server running: Run::wait fails the test then.
    Run::wait(child, Duration::from_secs(20))
}

/// Item 9: limits of 0 and a relay domain that is a whole top-level domain were taken
/// silently (0 became 1, or refused every message; `com` relayed a TLD's mail). Each is now
/// refused at startup with exit 2 and an error naming the flag.
#[test]
fn impossible_settings_are_refused_at_startup() {
    for (args, flag) in [
        (
            vec!["--relay-domain", "example.test", "--max-connections", "0"],
            "--max-connections",
        ),
        (
            vec!["--relay-domain", "example.test", "--max-per-ip", "0"],
            "--max-per-ip",
        ),
        (
            vec!["--relay-domain", "example.test", "--max-message-size", "0"],
            "--max-message-size",
        ),
        (
            vec!["--relay-domain", "example.test", "--max-recipients", "0"],
            "--max-recipients",
        ),
        (vec!["--relay-domain", "com"], "--relay-domain"),
        (vec!["--relay-domain", "COM."], "--relay-domain"),
        (vec!["--domain", "org"], "--domain"),
        (vec!["--relay-domain", "exa mple.test"], "--relay-domain"),
    ] {
        let r = refused(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(flag), "{args:?}: {}", r.stderr);
    }
}
