//! A run never says "everything arrived" while a mailbox on mailserver2 holds mail that no
//! account covers (issue 14, item 3): mail for postmaster@ stayed on mailserver2 while the run
//! said so. mailserver2 is a Dovecot serving the Maildirs under the site's `[mta] maildir`
//! (where posta mta delivers), mailserver1 Postfix → LMTP → Dovecot (tests/support's
//! `Primary`).

mod support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use support::example_site::MigrateSite;
use support::run::{Run, posta_command};
use support::sys::{server_dir, vmail_ids};
use support::{Ca, Dovecot, Primary};

const USERS: [(&str, &str); 2] = [("alice", "alice-pw"), ("postmaster", "postmaster-pw")];

struct Scene {
    source: Dovecot,
    primary: Primary,
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scene {
    /// Two messages for alice and three for postmaster on mailserver2.
    fn start() -> Scene {
        let ca = Ca::get();
        let dir = server_dir("posta-uncovered-");
        let root = dir.path().join("vmail");
        let (uid, gid) = vmail_ids();
        for (user, pw) in USERS {
            let maildir = root.join(user);
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(maildir.join(sub)).expect("create Maildir");
            }
            for p in [root.clone(), maildir.clone()] {
                chown(&p, Some(uid), Some(gid)).expect("chown Maildir");
            }
            for sub in ["cur", "new", "tmp"] {
                chown(maildir.join(sub), Some(uid), Some(gid)).expect("chown Maildir");
            }
            let file = dir.path().join(format!("{user}.pw"));
            fs::write(&file, format!("{pw}\n")).expect("write password file");
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let source = Dovecot::start_on(ca, &USERS, &root);
        let primary = Primary::start(ca, &USERS);
        let t = SystemTime::now();
        for (user, n) in [("alice", 2), ("postmaster", 3)] {
            for i in 0..n {
                let m = format!(
                    "From: sender{i}@example.net\nTo: {user}@example.org\n\
                     Message-ID: <uncovered{i}.{user}@example.net>\nSubject: {i}\n\nbody {i}\n"
                );
                source.seed(user, None, m.as_bytes(), "", &[], t);
            }
        }
        Scene {
            source,
            primary,
            dir,
            root,
        }
    }

    /// A site file whose `[mta] maildir` is the source's Maildir root, with `accounts`.
    fn site(&self, accounts: &[&str]) -> PathBuf {
        let accounts: String = accounts
            .iter()
            .map(|u| {
                format!(
                    "[[migrate.accounts]]\nuser = \"{u}\"\npassword_file = \"{}\"\n\
                     deliver_to = \"{u}@example.org\"\n",
                    self.dir.path().join(format!("{u}.pw")).display()
                )
            })
            .collect();
        MigrateSite {
            primary: &[format!("smtp:{}", self.primary.postfix.smtp_port())],
            backup: &[format!("imaps:{}", self.source.imaps_port())],
            maildir: Some(&self.root),
            migrate: "",
            accounts: &accounts,
        }
        .write(self.dir.path())
    }
}

fn migrate(site: &Path, json: bool) -> Run {
    let mut cmd = posta_command(env!("CARGO_BIN_EXE_posta"));
    cmd.arg("--config").arg(site).arg("migrate");
    if json {
        cmd.arg("--json");
    }
    Run::wait(cmd.spawn().expect("run posta"), Duration::from_secs(300))
}

/// Before the fix the run migrated alice, said "everything selected arrived" and exited 0
/// with postmaster's three messages still on mailserver2; the run now looks in `[mta]
/// maildir` for mailboxes with mail that no account covers, names them and exits 1.
#[test]
fn a_mailbox_no_account_covers_fails_the_run_and_is_named() {
    let scene = Scene::start();
    let run = migrate(&scene.site(&["alice"]), true);
    assert_eq!(run.code, 1, "{run:?}");
    let report = run.json();
    assert_eq!(report["ok"], false, "{run:?}");
    let uncovered = report["uncovered"].as_array().expect("uncovered list");
    assert_eq!(uncovered.len(), 1, "{run:?}");
    assert_eq!(uncovered[0]["user"], "postmaster");
    assert_eq!(uncovered[0]["messages"], 3);
    // alice's mail went home; postmaster's was not touched.
    assert!(scene.source.messages("alice", None).is_empty(), "{run:?}");
    assert_eq!(scene.source.messages("postmaster", None).len(), 3);

    // The table names it too, and does not claim success.
    let run = migrate(&scene.site(&["alice"]), false);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("postmaster: 3 message(s) in ")
            && run.stdout.contains("no account covers this mailbox"),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains("everything selected arrived"),
        "{run:?}"
    );

    // Covered, it is migrated and the run succeeds.
    let run = migrate(&scene.site(&["alice", "postmaster"]), true);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["ok"], true, "{run:?}");
    assert_eq!(report["uncovered"].as_array().map(Vec::len), Some(0));
    assert!(scene.source.messages("postmaster", None).is_empty());
}
