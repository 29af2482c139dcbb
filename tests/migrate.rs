//! `posta migrate` against real servers: a Dovecot as mailserver2, and Postfix delivering over
//! LMTP into a Dovecot as mailserver1 (tests/support's `Primary`). Every test checks the
//! outcome by Message-ID and body hash on disk: each source message exactly once at the
//! destination, and the source emptied only of what arrived.

mod support;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use posta::migrate::message::{body_hash, message_id};
use support::example_site::MigrateSite;
use support::run::{Run, posta_command};
use support::{Ca, Dovecot, Primary, StoredMessage};

const PASSWORD: &str = "s3cret-pw";

fn spawn(args: &[String]) -> Child {
    posta_command(env!("CARGO_BIN_EXE_posta"))
        .args(args)
        .spawn()
        .expect("run posta")
}

/// Runs posta to completion (killed and failed after five minutes).
fn posta(args: &[String]) -> Run {
    Run::wait(spawn(args), Duration::from_secs(300))
}

/// The scene: mailserver2 (a Dovecot with alice's mail) and mailserver1 (Postfix + Dovecot).
struct Scene {
    source: Dovecot,
    primary: Primary,
    dir: tempfile::TempDir,
}

impl Scene {
    fn start() -> Scene {
        let ca = Ca::get();
        let users = [("alice", PASSWORD), ("bob", PASSWORD)];
        let source = Dovecot::start(ca, &users);
        let primary = Primary::start(ca, &users);
        let dir = tempfile::tempdir().expect("temp dir");
        let pw = dir.path().join("password");
        fs::write(&pw, PASSWORD).expect("write password file");
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).expect("chmod password");
        Scene {
            source,
            primary,
            dir,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The common arguments: alice from mailserver2 over `from` to mailserver1.
    fn args(&self, from: &str, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "migrate".into(),
            "--from".into(),
            from.into(),
            "--password-file".into(),
            self.dir.path().join("password").display().to_string(),
            "--to".into(),
            format!("smtp://127.0.0.1:{}", self.primary.postfix.smtp_port()),
            "--to-imap".into(),
            format!(
                "imaps://alice@127.0.0.1:{}",
                self.primary.dovecot.imaps_port()
            ),
            "--ca-file".into(),
            Ca::get().ca_pem().display().to_string(),
            "--state-dir".into(),
            self.state().display().to_string(),
            // Longer than Postfix's queue can lag on a loaded 2-core machine: an accepted message
            // that shows up after the settle time would be sent again (and then reported).
            "--settle".into(),
            "45s".into(),
            "--json".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    fn imaps(&self) -> String {
        format!("imaps://alice@127.0.0.1:{}", self.source.imaps_port())
    }

    fn pop3s(&self) -> String {
        format!("pop3s://alice@127.0.0.1:{}", self.source.pop3s_port())
    }

    /// Waits until mailserver1's INBOX for alice holds `n` messages (Postfix delivers after
    /// it accepts), failing after a minute with what is there.
    fn await_inbox(&self, n: usize) -> Vec<StoredMessage> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.primary.dovecot.messages("alice", None);
            if got.len() >= n || Instant::now() > deadline {
                // A moment more, to see duplicates arriving late.
                thread::sleep(Duration::from_millis(500));
                return self.primary.dovecot.messages("alice", None);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A realistic message as mailserver2 stored it (LF line ends), `size` bytes of body with
/// lines that start with a dot, addressed by its delivery headers.
fn message(i: usize, rcpt: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <sender{i}@example.net>\nDelivered-To: {rcpt}\n\
Received: from mx.example.net by mailserver2; Fri, 27 Nov 2026 10:00:00 +0000\n\
Message-ID: <m{i}.{nonce}@example.net>\nFrom: sender{i}@example.net\nTo: {rcpt}\n\
Subject: message {i}\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n",
        nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut line = 0;
    while m.len() < size {
        line += 1;
        if line % 7 == 0 {
            m.push_str(".a line that starts with a dot\n");
        } else {
            m.push_str(&format!(
                "line {line} of message {i}: lorem ipsum dolor sit amet consectetur\n"
            ));
        }
    }
    m.into_bytes()
}

/// Message-ID → (count, body hashes) of what is stored.
fn index(messages: &[StoredMessage]) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for m in messages {
        let id = message_id(&m.body).expect("stored message without Message-ID");
        map.entry(id).or_default().push(body_hash(&m.body));
    }
    map
}

/// Every seeded message is at the destination exactly once with the same body.
fn assert_exactly_once(seeded: &[Vec<u8>], stored: &[StoredMessage]) {
    let got = index(stored);
    let mut missing = Vec::new();
    let mut duplicated = Vec::new();
    for m in seeded {
        let id = message_id(m).unwrap();
        match got.get(&id).map(Vec::as_slice) {
            None => missing.push(id),
            Some([h]) => assert_eq!(h, &body_hash(m), "body of {id} changed"),
            Some(_) => duplicated.push(id),
        }
    }
    assert!(
        missing.is_empty() && duplicated.is_empty(),
        "missing {missing:?}, duplicated {duplicated:?}"
    );
    assert_eq!(
        stored.len(),
        seeded.len(),
        "unexpected extra messages at the destination"
    );
}

fn seed_inbox(scene: &Scene, n: usize, size: usize) -> Vec<Vec<u8>> {
    let t = SystemTime::now();
    (0..n)
        .map(|i| {
            let m = message(i, "alice@example.org", size);
            let flags = if i % 3 == 0 { "S" } else { "" };
            scene.source.seed("alice", None, &m, flags, &[], t);
            m
        })
        .collect()
}

/// A seeded folder message: its bytes, maildir flag letters and keywords.
type Seeded = (Vec<u8>, &'static str, Vec<&'static str>);

#[test]
fn imap_inbox_and_folders_arrive_exactly_once_with_flags_and_dates() {
    let scene = Scene::start();
    let inbox = seed_inbox(&scene, 1000, 2_000);
    let date = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut folders: Vec<(&str, Vec<Seeded>)> = Vec::new();
    for (folder, count) in [("Projects", 30), ("Archive.2026", 20)] {
        let mut msgs = Vec::new();
        for i in 0..count {
            let m = message(10_000 + i, "alice@example.org", 1_500);
            let (flags, keywords) = match i % 4 {
                0 => ("S", vec![]),
                1 => ("FS", vec!["$Important"]),
                2 => ("RS", vec![]),
                _ => ("", vec![]),
            };
            scene
                .source
                .seed("alice", Some(folder), &m, flags, &keywords, date);
            msgs.push((m, flags, keywords));
        }
        folders.push((folder, msgs));
    }

    let run = posta(&scene.args(&scene.imaps(), &[]));
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["ok"], true, "{run:?}");

    assert_exactly_once(&inbox, &scene.await_inbox(inbox.len()));
    for (folder, msgs) in &folders {
        let stored = scene.primary.dovecot.messages("alice", Some(folder));
        let seeded: Vec<Vec<u8>> = msgs.iter().map(|m| m.0.clone()).collect();
        assert_exactly_once(&seeded, &stored);
        for (m, flags, keywords) in msgs {
            let id = message_id(m).unwrap();
            let s = stored
                .iter()
                .find(|s| message_id(&s.body).as_deref() == Some(&id))
                .unwrap();
            assert_eq!(&s.flags, flags, "flags of {id} in {folder}");
            assert_eq!(&s.keywords, keywords, "keywords of {id} in {folder}");
            let mtime = fs::metadata(&s.path).unwrap().modified().unwrap();
            assert_eq!(mtime, date, "INTERNALDATE of {id} in {folder}");
        }
        assert!(
            scene.source.messages("alice", Some(folder)).is_empty(),
            "{folder} not emptied"
        );
    }
    assert!(
        scene.source.messages("alice", None).is_empty(),
        "source INBOX not emptied"
    );

    // The trace header names the source, the account and the UID, in fetchmail's form.
    let one = &scene.primary.dovecot.messages("alice", None)[0].body;
    let text = String::from_utf8_lossy(one);
    assert!(text.contains("with IMAP (posta-"), "{text}");
    assert!(text.contains("account alice folder INBOX uid "), "{text}");

    // The reconciliation read mailserver1 back.
    let inbox_report = report["accounts"][0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "INBOX")
        .unwrap();
    assert_eq!(inbox_report["delivered"], 1000);
    assert_eq!(inbox_report["verified"], 1000);
    assert_eq!(inbox_report["removed"], 1000);
}

#[test]
fn keep_leaves_the_source_untouched_and_a_second_run_moves_nothing() {
    let scene = Scene::start();
    let inbox = seed_inbox(&scene, 50, 3_000);
    let before: Vec<_> = scene
        .source
        .messages("alice", None)
        .into_iter()
        .map(|m| (m.path, m.body))
        .collect();

    let run = posta(&scene.args(&scene.imaps(), &["--keep"]));
    assert_eq!(run.code, 0, "{run:?}");
    assert_exactly_once(&inbox, &scene.await_inbox(inbox.len()));
    let after: Vec<_> = scene
        .source
        .messages("alice", None)
        .into_iter()
        .map(|m| (m.path, m.body))
        .collect();
    assert_eq!(
        before, after,
        "--keep changed the source (files, names or flags)"
    );

    // The journal as posta named it before names were made unique (every character outside
    // letters, digits and `.-_@` made `_`): the second run must carry it on, not start afresh.
    let journals = scene.dir.path().join("state/journal");
    let [journal] = <[PathBuf; 1]>::try_from(files_in(&journals))
        .unwrap_or_else(|f| panic!("one journal expected in {journals:?}: {f:?}"));
    let source = run.json()["accounts"][0]["source"]
        .as_str()
        .unwrap()
        .to_owned();
    let legacy: String = source
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '@' => c,
            _ => '_',
        })
        .collect();
    let legacy = journals.join(format!("{legacy}.journal"));
    assert_ne!(journal, legacy, "the journal still has its old name");
    fs::rename(&journal, &legacy).unwrap();

    let again = posta(&scene.args(&scene.imaps(), &["--keep"]));
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        files_in(&journals),
        [journal],
        "the old journal was not adopted"
    );
    let folder = &again.json()["accounts"][0]["folders"][0];
    assert_eq!(folder["delivered"], 0, "{again:?}");
    assert_eq!(folder["earlier"], 50, "{again:?}");
    assert_exactly_once(&inbox, &scene.await_inbox(inbox.len()));
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    let scene = Scene::start();
    seed_inbox(&scene, 12, 1_000);
    scene.source.seed(
        "alice",
        Some("Projects"),
        &message(99, "alice@example.org", 500),
        "S",
        &[],
        SystemTime::now(),
    );
    let run = posta(&scene.args(&scene.imaps(), &["--dry-run"]));
    assert_eq!(run.code, 0, "{run:?}");
    let folders = run.json()["accounts"][0]["folders"].clone();
    let count = |name: &str| {
        folders
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["folder"] == name)
            .unwrap()["source_messages"]
            .clone()
    };
    assert_eq!(count("INBOX"), 12);
    assert_eq!(count("Projects"), 1);
    assert_eq!(scene.source.messages("alice", None).len(), 12);
    thread::sleep(Duration::from_millis(500));
    assert!(scene.primary.dovecot.messages("alice", None).is_empty());
}

#[test]
fn pop3_source_arrives_exactly_once_and_the_maildrop_is_emptied() {
    let scene = Scene::start();
    let inbox = seed_inbox(&scene, 300, 4_000);
    let run = posta(&scene.args(&scene.pop3s(), &[]));
    assert_eq!(run.code, 0, "{run:?}");
    assert_exactly_once(&inbox, &scene.await_inbox(inbox.len()));
    assert!(scene.source.messages("alice", None).is_empty());
    let again = posta(&scene.args(&scene.pop3s(), &[]));
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.json()["accounts"][0]["folders"][0]["source_messages"],
        0
    );
}

/// kill -9 at random moments, at least 20 times, then runs to completion: zero lost, zero
/// duplicated. Run over IMAP with folders and over POP3.
fn crash_and_resume(from_pop3: bool) {
    let scene = Scene::start();
    let inbox = seed_inbox(&scene, 1500, 2_500);
    let from = if from_pop3 {
        scene.pop3s()
    } else {
        scene.imaps()
    };
    let args = scene.args(&from, &["--connections", "4"]);
    // A cheap pseudo-random sequence (no rand crate): delays between 50 and 650 ms.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(from_pop3);
    let mut kills = 0;
    let mut completed_early = 0;
    while kills < 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(50 + x % 600);
        let mut child = spawn(&args);
        thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            completed_early += 1;
            assert!(
                completed_early < 3,
                "runs finish before they can be killed; seed more mail"
            );
            continue;
        }
        child.kill().expect("SIGKILL posta");
        child.wait().unwrap();
        kills += 1;
    }
    let run = posta(&args);
    assert_eq!(run.code, 0, "after {kills} kills: {run:?}");
    assert_exactly_once(&inbox, &scene.await_inbox(inbox.len()));
    assert!(
        scene.source.messages("alice", None).is_empty(),
        "source not emptied after {kills} kills"
    );
}

#[test]
fn killed_at_random_moments_over_imap_loses_and_duplicates_nothing() {
    crash_and_resume(false);
}

#[test]
fn killed_at_random_moments_over_pop3_loses_and_duplicates_nothing() {
    crash_and_resume(true);
}

#[test]
fn a_452_until_the_primary_recovers_loses_nothing() {
    let scene = Scene::start();
    let inbox = seed_inbox(&scene, 200, 2_000);
    // mailserver1 answers 452 for alice until the test clears it.
    scene
        .primary
        .postfix
        .set_recipient_access("alice@example.org 452 4.2.2 mailbox busy, try later");
    let mut child = spawn(&scene.args(&scene.imaps(), &["--retry-for", "3m"]));
    thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "posta gave up on a 452"
    );
    assert!(scene.primary.dovecot.messages("alice", None).is_empty());
    scene.primary.postfix.set_recipient_access("");
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("452"),
        "the 452 was not logged: {run:?}"
    );
    assert_exactly_once(&inbox, &scene.await_inbox(inbox.len()));
    assert!(scene.source.messages("alice", None).is_empty());
}

/// mailserver1 closing mid-run: Postfix answers 421 and its smtpd processes are killed under
/// open transactions (some right after the final dot), then it recovers. Postfix's queue and
/// LMTP delivery keep running: a `postfix stop` would also kill LMTP deliveries that Dovecot
/// already saved, and Postfix then delivers those again itself (seen in its log while writing
/// this test), which is Postfix's duplicate, not the migration's.
#[test]
fn a_primary_closing_connections_mid_run_loses_nothing() {
    let scene = Scene::start();
    let inbox = seed_inbox(&scene, 1500, 2_000);
    let pid_file = scene.primary.postfix.path().join("spool/pid/master.pid");
    // 421 from the first RCPT on, so the run meets it however fast or slow the machine is.
    scene
        .primary
        .postfix
        .set_recipient_access("alice@example.org 421 4.3.2 service shutting down");
    // A connection to a killed smtpd can wait out the 60 s greeting timeout more than once on
    // a loaded machine: the retry budget leaves room for that.
    let child = spawn(&scene.args(&scene.imaps(), &["--retry-for", "6m"]));
    let log = scene.primary.postfix.log();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&log).is_ok_and(|l| l.contains("421 4.3.2")) {
        assert!(Instant::now() < deadline, "postfix never answered 421");
        thread::sleep(Duration::from_millis(100));
    }
    kill_smtpd(&pid_file);
    scene.primary.postfix.set_recipient_access("");
    // Once the run is under way again, its smtpd processes die under open transactions.
    thread::sleep(Duration::from_millis(1500));
    kill_smtpd(&pid_file);
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("421"),
        "the 421 was not logged: {run:?}"
    );
    assert_exactly_once(&inbox, &scene.await_inbox(inbox.len()));
    assert!(scene.source.messages("alice", None).is_empty());
}

/// SIGKILLs every smtpd child of the Postfix master whose pid file is `pid_file`.
fn kill_smtpd(pid_file: &Path) {
    let master = fs::read_to_string(pid_file).expect("postfix master pid");
    let status = Command::new("pkill")
        .args(["-KILL", "-P", master.trim(), "smtpd"])
        .status()
        .expect("run pkill");
    // 1: no smtpd was running at that instant, which is fine.
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "pkill failed: {status}"
    );
}

#[test]
fn a_permanent_refusal_quarantines_that_message_and_keeps_it_on_the_source() {
    let scene = Scene::start();
    let mut good = Vec::new();
    for i in 0..5 {
        let m = message(i, "alice@example.org", 1_000);
        scene
            .source
            .seed("alice", None, &m, "", &[], SystemTime::now());
        good.push(m);
    }
    // Delivered-To names a user mailserver1 does not have: Postfix answers 550 5.1.1.
    let bad = message(77, "nobody@example.org", 1_000);
    scene
        .source
        .seed("alice", None, &bad, "", &[], SystemTime::now());
    let no_rcpt =
        b"From: x@example.net\nMessage-ID: <norcpt@example.net>\n\nno envelope\n".to_vec();
    scene
        .source
        .seed("alice", None, &no_rcpt, "", &[], SystemTime::now());

    let args = scene.args(&scene.imaps(), &[]);
    // Recipients come from each message's own Delivered-To.
    assert!(!args.contains(&"--rcpt".to_string()));
    let run = posta(&args);
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    let inbox = &report["accounts"][0]["folders"][0];
    let quarantined = inbox["quarantined"].as_array().unwrap();
    assert_eq!(quarantined.len(), 2, "{run:?}");
    let bad_id = message_id(&bad).unwrap();
    let q = quarantined
        .iter()
        .find(|q| q["message_id"] == bad_id.as_str())
        .expect("550 message named");
    assert!(q["reason"].as_str().unwrap().contains("550"), "{q}");
    let copy = PathBuf::from(q["quarantine"].as_str().unwrap());
    assert_eq!(
        fs::read(&copy).unwrap(),
        String::from_utf8_lossy(&bad)
            .replace('\n', "\r\n")
            .as_bytes()
    );
    assert!(quarantined.iter().any(|q| {
        q["message_id"] == "<norcpt@example.net>"
            && q["reason"]
                .as_str()
                .unwrap()
                .contains("no envelope recipient")
    }));

    assert_exactly_once(&good, &scene.await_inbox(good.len()));
    let left: Vec<_> = scene
        .source
        .messages("alice", None)
        .iter()
        .filter_map(|m| message_id(&m.body))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&bad_id));
}

#[test]
fn bad_arguments_are_usage_errors_with_a_reason() {
    let scene = Scene::start();
    let run = posta(&scene.args("ftp://alice@127.0.0.1:21", &[]));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("unknown scheme"), "{run:?}");
    let run = posta(&scene.args(&scene.pop3s(), &["--unseen"]));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("POP3 has no unread flag"), "{run:?}");
    let run = posta(&scene.args("imaps://alice:pw@127.0.0.1:993", &[]));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains(":pw@"), "password echoed: {run:?}");
}

#[test]
fn site_file_accounts_migrate_by_name_and_all_together() {
    let scene = Scene::start();
    let t = SystemTime::now();
    let alice: Vec<_> = (0..20)
        .map(|i| message(i, "alice@example.org", 1_000))
        .collect();
    let bob: Vec<_> = (100..110)
        .map(|i| message(i, "bob@example.org", 1_000))
        .collect();
    for m in &alice {
        scene.source.seed("alice", None, m, "", &[], t);
    }
    for m in &bob {
        scene.source.seed("bob", None, m, "S", &[], t);
    }
    scene
        .source
        .seed("bob", Some("Projects"), &bob[0], "F", &[], t);
    let site = MigrateSite {
        primary: &[
            format!("smtp:{}", scene.primary.postfix.smtp_port()),
            format!("imaps:{}", scene.primary.dovecot.imaps_port()),
        ],
        backup: &[format!("imaps:{}", scene.source.imaps_port())],
        maildir: None,
        migrate: "",
        accounts: "[[migrate.accounts]]
user = \"alice\"
password_file = \"password\"
deliver_to = \"alice@example.org\"
dest_user = \"alice\"
[[migrate.accounts]]
user = \"bob\"
password_file = \"password\"
deliver_to = \"bob@example.org\"
dest_user = \"bob\"
",
    }
    .write(scene.dir.path());
    let config = site.display().to_string();
    let run = posta(&[
        "--config".into(),
        config.clone(),
        "migrate".into(),
        "alice".into(),
        "--settle".into(),
        "15s".into(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("everything selected arrived"),
        "{run:?}"
    );
    assert_exactly_once(&alice, &scene.await_inbox(alice.len()));
    assert_eq!(
        scene.source.messages("bob", None).len(),
        bob.len(),
        "bob was not asked for"
    );

    let run = posta(&[
        "--config".into(),
        config,
        "migrate".into(),
        "--json".into(),
        "--settle".into(),
        "15s".into(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let accounts = run.json()["accounts"].as_array().unwrap().clone();
    assert_eq!(accounts.len(), 2);
    assert!(
        scene.dir.path().join("state/journal").is_dir(),
        "[migrate] state_dir not used"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while scene.primary.dovecot.messages("bob", None).len() < bob.len() && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(100));
    }
    assert_exactly_once(&bob, &scene.primary.dovecot.messages("bob", None));
    let projects = scene.primary.dovecot.messages("bob", Some("Projects"));
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].flags, "F");
    assert!(scene.source.messages("alice", None).is_empty());
    assert!(scene.source.messages("bob", None).is_empty());
}

#[test]
fn lmtp_delivery_straight_into_the_primary_store_arrives_exactly_once() {
    let scene = Scene::start();
    let inbox = seed_inbox(&scene, 40, 3_000);
    let mut args = scene.args(&scene.pop3s(), &[]);
    let to = args.iter().position(|a| a == "--to").unwrap() + 1;
    args[to] = format!("lmtp://127.0.0.1:{}", scene.primary.dovecot.lmtp_port());
    let run = posta(&args);
    assert_eq!(run.code, 0, "{run:?}");
    let folder = &run.json()["accounts"][0]["folders"][0];
    assert_eq!(folder["destination"], "lmtp", "{run:?}");
    assert_eq!(folder["verified"], 40, "{run:?}");
    // LMTP stores before it answers: everything is there when posta exits.
    assert_exactly_once(&inbox, &scene.primary.dovecot.messages("alice", None));
    assert!(scene.source.messages("alice", None).is_empty());
}
