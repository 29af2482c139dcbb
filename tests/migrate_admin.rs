//! `posta migrate` with one admin identity per side and no user's password (issue 14, item 1):
//! mailserver2 is a Dovecot with a master user, mailserver1 Postfix → LMTP → a Dovecot with a
//! master user (tests/support's `Primary`). The users' own passwords exist only inside the
//! Dovecots; posta is given the admins' files alone. Outcomes are checked on disk by
//! Message-ID and body hash, as tests/migrate.rs does.

mod support;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use posta::migrate::message::{body_hash, message_id};
use support::example_site::MigrateSite;
use support::run::{Run, posta_command};
use support::{Ca, Dovecot, Primary, StoredMessage};

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const SOURCE_ADMIN_PW: &str = "ms2-admin-pw";
const DEST_ADMIN_PW: &str = "ms1-admin-pw";

/// Runs posta with debug logs (the wire log included) into `log`, killed and failed after five
/// minutes. The log goes to a file: a pipe nobody reads before exit would fill up and stall
/// posta.
fn posta(args: &[String], log: &Path) -> Run {
    let child = posta_command(env!("CARGO_BIN_EXE_posta"))
        .env("POSTA_LOG", "posta=debug")
        .args(args)
        .stderr(fs::File::create(log).expect("create log"))
        .spawn()
        .expect("run posta");
    let mut run = Run::wait(child, Duration::from_secs(300));
    run.stderr = fs::read_to_string(log).expect("read log");
    run
}

/// One user's messages on mailserver2: INBOX, then the `Projects` folder.
type Seeded = (Vec<Vec<u8>>, Vec<Vec<u8>>);

struct Scene {
    source: Dovecot,
    primary: Primary,
    dir: tempfile::TempDir,
    /// Per user: what was seeded on mailserver2.
    seeded: HashMap<&'static str, Seeded>,
}

impl Scene {
    /// Both servers with an `admin` master user; each user has a password posta never sees.
    fn start() -> Scene {
        let ca = Ca::get();
        let own: Vec<(String, String)> = USERS
            .iter()
            .map(|u| (u.to_string(), format!("{u}-own-secret")))
            .collect();
        let users: Vec<(&str, &str)> = own.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
        let source = Dovecot::start_with_master(ca, &users, ("admin", SOURCE_ADMIN_PW));
        let primary = Primary::start_with_master(ca, &users, ("admin", DEST_ADMIN_PW));
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, pw) in [
            ("source-admin.pw", SOURCE_ADMIN_PW),
            ("dest-admin.pw", DEST_ADMIN_PW),
            ("wrong-admin.pw", "not-the-admin-pw"),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, format!("{pw}\n")).expect("write password file");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let mut scene = Scene {
            source,
            primary,
            dir,
            seeded: HashMap::new(),
        };
        let t = SystemTime::now();
        for (n, user) in USERS.iter().enumerate() {
            let rcpt = format!("{user}@example.org");
            let inbox: Vec<_> = (0..4).map(|i| message(n * 100 + i, &rcpt)).collect();
            let projects: Vec<_> = (0..3).map(|i| message(n * 100 + 50 + i, &rcpt)).collect();
            for m in &inbox {
                scene.source.seed(user, None, m, "", &[], t);
            }
            for (i, m) in projects.iter().enumerate() {
                let flags = if i == 0 { "FS" } else { "S" };
                scene.source.seed(user, Some("Projects"), m, flags, &[], t);
            }
            scene.seeded.insert(user, (inbox, projects));
        }
        scene
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A site file with `[migrate] source_admin` and `dest_admin` and the three accounts,
    /// none with a password file; the source is served over `source_service`.
    fn site(&self, source_service: &str, source_admin_pw: &str) -> PathBuf {
        let accounts: String = USERS
            .iter()
            .map(|u| {
                format!("[[migrate.accounts]]\nuser = \"{u}\"\ndeliver_to = \"{u}@example.org\"\n")
            })
            .collect();
        MigrateSite {
            primary: &[
                format!("smtp:{}", self.primary.postfix.smtp_port()),
                format!("imaps:{}", self.primary.dovecot.imaps_port()),
            ],
            backup: &[source_service.to_owned()],
            maildir: None,
            migrate: &format!(
                "source_admin = {{ user = \"admin\", password_file = \"{source_admin_pw}\" }}\n\
                 dest_admin = {{ user = \"admin\", password_file = \"dest-admin.pw\" }}\n"
            ),
            accounts: &accounts,
        }
        .write(self.dir.path())
    }

    /// Waits until mailserver1's `user` INBOX holds `n` messages (Postfix delivers after it
    /// accepts), then a moment more to see late duplicates.
    fn await_inbox(&self, user: &str, n: usize) -> Vec<StoredMessage> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.primary.dovecot.messages(user, None).len() < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        thread::sleep(Duration::from_millis(500));
        self.primary.dovecot.messages(user, None)
    }

    /// Every seeded message of `user` once at mailserver1 (INBOX, and Projects when
    /// `folders`), and mailserver2 emptied of it.
    fn assert_migrated(&self, user: &str, folders: bool) {
        let (inbox, projects) = &self.seeded[user];
        assert_exactly_once(inbox, &self.await_inbox(user, inbox.len()));
        assert!(
            self.source.messages(user, None).is_empty(),
            "{user}'s source INBOX"
        );
        if folders {
            let stored = self.primary.dovecot.messages(user, Some("Projects"));
            assert_exactly_once(projects, &stored);
            assert_eq!(
                stored.iter().filter(|m| m.flags == "FS").count(),
                1,
                "{user}'s flags"
            );
            assert!(self.source.messages(user, Some("Projects")).is_empty());
        }
    }

    /// Nothing left mailserver2 and nothing reached mailserver1.
    fn assert_untouched(&self) {
        for user in USERS {
            let (inbox, projects) = &self.seeded[user];
            assert_eq!(
                self.source.messages(user, None).len(),
                inbox.len(),
                "{user}"
            );
            let left = self.source.messages(user, Some("Projects")).len();
            assert_eq!(left, projects.len(), "{user}");
            assert!(
                self.primary.dovecot.messages(user, None).is_empty(),
                "{user}"
            );
        }
    }
}

fn message(i: usize, rcpt: &str) -> Vec<u8> {
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut m = format!(
        "Return-Path: <sender{i}@example.net>\nDelivered-To: {rcpt}\n\
Message-ID: <admin{i}.{nonce}@example.net>\nFrom: sender{i}@example.net\nTo: {rcpt}\n\
Subject: message {i}\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n"
    );
    for line in 0..40 {
        m.push_str(&format!(
            "line {line} of message {i}: lorem ipsum dolor sit amet\n"
        ));
    }
    m.into_bytes()
}

fn assert_exactly_once(seeded: &[Vec<u8>], stored: &[StoredMessage]) {
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    for m in stored {
        let id = message_id(&m.body).expect("stored message without Message-ID");
        got.entry(id).or_default().push(body_hash(&m.body));
    }
    for m in seeded {
        let id = message_id(m).unwrap();
        assert_eq!(
            got.get(&id),
            Some(&vec![body_hash(m)]),
            "{id}: missing, changed or doubled"
        );
    }
    assert_eq!(stored.len(), seeded.len(), "unexpected extra messages");
}

/// Neither admin password reaches stdout or the debug log (the wire log redacts AUTH).
fn assert_no_password(run: &Run) {
    for pw in [SOURCE_ADMIN_PW, DEST_ADMIN_PW] {
        assert!(
            !run.stdout.contains(pw) && !run.stderr.contains(pw),
            "{pw} leaked"
        );
    }
    assert!(
        run.stderr.contains("AUTHENTICATE PLAIN <redacted>"),
        "{run:?}"
    );
    // The BYE that LOGOUT asks for ends a session normally: never a warning.
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("* BYE")),
        "a logout's BYE logged as a warning: {run:?}"
    );
}

fn config_args(site: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--config".into(),
        site.display().to_string(),
        "migrate".into(),
        "--json".into(),
        "--settle".into(),
        "45s".into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Three accounts, INBOX and a folder each, over IMAP with one admin credential per server:
/// AUTHENTICATE PLAIN with each user as authorization identity on mailserver2 (reading) and
/// on mailserver1 (APPEND for the folder, and the read-back).
#[test]
fn one_admin_credential_migrates_every_account_over_imap() {
    let scene = Scene::start();
    let site = scene.site(
        &format!("imaps:{}", scene.source.imaps_port()),
        "source-admin.pw",
    );
    let run = posta(
        &config_args(&site, &[]),
        &scene.dir.path().join("posta.log"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["ok"], true, "{run:?}");
    assert_eq!(report["accounts"].as_array().unwrap().len(), 3);
    for account in report["accounts"].as_array().unwrap() {
        let inbox = account["folders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["folder"] == "INBOX")
            .unwrap();
        assert_eq!(
            inbox["verified"], 4,
            "read back through the dest admin: {account}"
        );
    }
    for user in USERS {
        scene.assert_migrated(user, true);
    }
    assert_no_password(&run);
}

/// The same over POP3: AUTH PLAIN with the user as authorization identity (RFC 5034); INBOX
/// is what POP3 sees, so the folder stays where it is.
#[test]
fn one_admin_credential_migrates_every_account_over_pop3() {
    let scene = Scene::start();
    let site = scene.site(
        &format!("pop3s:{}", scene.source.pop3s_port()),
        "source-admin.pw",
    );
    let run = posta(
        &config_args(&site, &[]),
        &scene.dir.path().join("posta.log"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    for user in USERS {
        scene.assert_migrated(user, false);
    }
    assert!(run.stderr.contains("AUTH PLAIN <redacted>"), "{run:?}");
    for pw in [SOURCE_ADMIN_PW, DEST_ADMIN_PW] {
        assert!(
            !run.stdout.contains(pw) && !run.stderr.contains(pw),
            "{pw} leaked"
        );
    }
}

/// A wrong admin password: every account fails naming the admin identity, the run exits 1
/// (README: something did not arrive), and nothing is removed or delivered.
#[test]
fn a_wrong_admin_password_fails_clearly_and_removes_nothing() {
    let scene = Scene::start();
    let site = scene.site(
        &format!("imaps:{}", scene.source.imaps_port()),
        "wrong-admin.pw",
    );
    let run = posta(
        &config_args(&site, &[]),
        &scene.dir.path().join("posta.log"),
    );
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    assert_eq!(report["ok"], false);
    for account in report["accounts"].as_array().unwrap() {
        let error = account["error"].as_str().unwrap_or_default();
        let user = account["account"].as_str().unwrap();
        assert!(
            error.contains(&format!("as {user} with admin identity admin failed"))
                && error.contains("AUTHENTICATIONFAILED"),
            "{error}"
        );
    }
    scene.assert_untouched();
}

/// Dovecot's `user*admin` LOGIN, forced with --admin-login separator, for one ad hoc account
/// on both sides (the source read and the read-back on mailserver1).
#[test]
fn the_master_user_separator_login_works_when_forced() {
    let scene = Scene::start();
    let log = scene.dir.path().join("posta.log");
    let run = posta(
        &[
            "migrate".into(),
            "--from".into(),
            format!("imaps://carol@127.0.0.1:{}", scene.source.imaps_port()),
            "--source-admin".into(),
            "admin".into(),
            "--source-admin-password-file".into(),
            scene.file("source-admin.pw"),
            "--to".into(),
            format!("smtp://127.0.0.1:{}", scene.primary.postfix.smtp_port()),
            "--to-imap".into(),
            format!(
                "imaps://carol@127.0.0.1:{}",
                scene.primary.dovecot.imaps_port()
            ),
            "--dest-admin".into(),
            "admin".into(),
            "--dest-admin-password-file".into(),
            scene.file("dest-admin.pw"),
            "--admin-login".into(),
            "separator".into(),
            "--ca-file".into(),
            Ca::get().ca_pem().display().to_string(),
            "--state-dir".into(),
            scene.file("state"),
            "--settle".into(),
            "45s".into(),
            "--json".into(),
        ],
        &log,
    );
    assert_eq!(run.code, 0, "{run:?}");
    scene.assert_migrated("carol", true);
    assert!(
        run.stderr.contains(r#"LOGIN carol*admin <redacted>"#),
        "{run:?}"
    );
    assert!(!run.stderr.contains("AUTHENTICATE"), "{run:?}");
    for user in ["alice", "bob"] {
        assert_eq!(
            scene.source.messages(user, None).len(),
            4,
            "{user} not asked for"
        );
    }
}
