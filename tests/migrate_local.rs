//! `posta migrate` into a mailserver1 whose Postfix delivers with local(8), the delivery agent
//! of a plain Debian install (`mydestination`, Unix accounts): local(8) bounces, after its
//! 250, any message whose Delivered-To already names the recipient (`mail forwarding loop`).
//! mailserver2's delivery wrote exactly such a header, so a migration that passed it on lost
//! every message while reporting success.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use support::postfix::Options;
use support::run::{Run, posta_command};
use support::{Ca, Dovecot, Postfix};

const PASSWORD: &str = "s3cret-pw";

/// The local user that receives: the test Maildir owner (a real Unix account, as local(8)
/// requires).
const LOCAL_USER: &str = "posta-vmail";

/// Three messages whose Delivered-To names the recipient reach its mailbox through local(8),
/// none bounced; the source is emptied only after that. Fixed by renaming Delivered-To to
/// X-Original-Delivered-To before SMTP/LMTP delivery (fetchmail's `dropdelivered`).
#[test]
fn delivered_to_the_recipient_does_not_bounce_at_local8() {
    let ca = Ca::get();
    let source = Dovecot::start(ca, &[("alice", PASSWORD)]);
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // local(8) writes as the recipient: its spool directory must let that user create a Maildir.
    let spool = dir.path().join("localmail");
    fs::create_dir(&spool).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o1777)).unwrap();
    let main_cf = format!(
        "mydestination = local.example\nlocal_transport = local\nalias_maps =\n\
         alias_database =\nlocal_recipient_maps =\nmail_spool_directory = {}/\n",
        spool.display()
    );
    let primary = Postfix::start_with(
        ca,
        "example.org",
        &[],
        Options {
            main_cf: Some(&main_cf),
            ..Options::default()
        },
    );
    let rcpt = format!("{LOCAL_USER}@local.example");
    for i in 0..3 {
        let m = format!(
            "Return-Path: <sender{i}@example.net>\nDelivered-To: {rcpt}\n\
             From: <sender{i}@example.net>\nTo: <{rcpt}>\nSubject: loop {i}\n\
             Message-ID: <loop-{i}@posta.test>\n\nbody {i}\n"
        );
        source.deliver("alice", m.as_bytes());
    }
    let pw = dir.path().join("password");
    fs::write(&pw, PASSWORD).unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let run = Run::from_output(
        posta_command(env!("CARGO_BIN_EXE_posta"))
            .args(["migrate", "--from"])
            .arg(format!("imaps://alice@127.0.0.1:{}", source.imaps_port()))
            .arg("--password-file")
            .arg(&pw)
            .arg("--to")
            .arg(format!("smtp://127.0.0.1:{}", primary.smtp_port()))
            .arg("--ca-file")
            .arg(ca.ca_pem())
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let mailbox = spool.join(LOCAL_USER);
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let got = support::maildir::messages(&mailbox, None);
        if got.len() >= 3 || Instant::now() > deadline {
            break got;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let log = fs::read_to_string(primary.log()).unwrap_or_default();
    assert!(
        !log.contains("forwarding loop") && !log.contains("status=bounced"),
        "local(8) bounced:\n{log}"
    );
    assert_eq!(
        delivered.len(),
        3,
        "all three in the mailbox; postfix log:\n{log}"
    );
    for m in &delivered {
        let text = String::from_utf8_lossy(&m.body);
        assert!(
            text.contains(&format!("X-Original-Delivered-To: {rcpt}")),
            "{text}"
        );
        // local(8)'s own Delivered-To is the only one left.
        assert_eq!(
            text.matches("\nDelivered-To:").count()
                + usize::from(text.starts_with("Delivered-To:")),
            1,
            "{text}"
        );
    }
    assert!(
        source.messages("alice", None).is_empty(),
        "the source is empty"
    );
}
