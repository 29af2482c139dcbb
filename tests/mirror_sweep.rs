//! The sweep and the mirror (issue 17): the healthy-time sweep (`posta migrate` of the mail on
//! mailserver2 to mailserver1) must not send `posta mirror`'s copies back to mailserver1,
//! where the originals are: with `[mirror]` in the site file it leaves every message the
//! mirror's map names as a copy in place and moves only mail mailserver2 took itself.
//!
//! Two real Dovecots with a master user each; the site file is the example's, with
//! `[mirror]` as the example has it.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use support::example_site::MigrateSite;
use support::mirror::count;
use support::run::{Run, posta_site};
use support::{Ca, Dovecot, StoredMessage};

const USER: &str = "pl-alice";
const PRIMARY_ADMIN_PW: &str = "pl-ms1-admin";
const BACKUP_ADMIN_PW: &str = "pl-ms2-admin";

fn message(id: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}@posta.test>\r\nFrom: sender@example.net\r\nTo: {USER}@example.org\r\n\
         Subject: {id}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nbody of {id}\r\n"
    )
    .into_bytes()
}

fn site(dir: &Path, primary: &Dovecot, backup: &Dovecot) -> PathBuf {
    support::mirror::admin_password_files(dir, PRIMARY_ADMIN_PW, BACKUP_ADMIN_PW);
    MigrateSite {
        // No SMTP listens on port 9: INBOX goes by IMAP APPEND (--inbox append).
        primary: &[
            format!("imaps:{}", primary.imaps_port()),
            "smtp:9".to_string(),
        ],
        backup: &[format!("imaps:{}", backup.imaps_port())],
        maildir: None,
        migrate: support::mirror::ADMINS,
        accounts: &format!(
            "[[migrate.accounts]]\nuser = \"{USER}\"\ndeliver_to = \"{USER}@example.org\"\n"
        ),
    }
    .write(dir)
}

/// The mirror copies the sweep counted, over every folder of the report.
fn mirror_copies(report: &serde_json::Value) -> u64 {
    report["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["folders"].as_array().into_iter().flatten())
        .map(|f| f["mirror_copies"].as_u64().unwrap_or(0))
        .sum()
}

fn posta(site: &Path, args: &[&str]) -> Run {
    posta_site(env!("CARGO_BIN_EXE_posta"), site, args)
}

#[test]
fn the_sweep_moves_only_new_mail_and_leaves_mirror_copies_in_place() {
    let ca = Ca::get();
    let users = [(USER, "pl-alice-secret")];
    let primary = Dovecot::start_with_master(ca, &users, ("admin", PRIMARY_ADMIN_PW));
    let backup = Dovecot::start_with_master(ca, &users, ("admin", BACKUP_ADMIN_PW));
    let dir = tempfile::tempdir().expect("temp dir");
    let site = site(dir.path(), &primary, &backup);
    let t = SystemTime::now() - Duration::from_secs(3600);
    for id in ["old-1", "old-2", "old-3"] {
        primary.seed(USER, None, &message(id), "S", &[], t);
    }
    for id in ["work-1", "work-2"] {
        primary.seed(USER, Some("Work"), &message(id), "", &[], t);
    }

    // A mirror pass puts copies of all five on mailserver2.
    let run = posta(&site, &["mirror", "--once", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(backup.messages(USER, None).len(), 3, "{run:?}");
    assert_eq!(backup.messages(USER, Some("Work")).len(), 2, "{run:?}");

    // mailserver2 takes one message itself (MX 20 while mailserver1 was busy).
    backup.seed(USER, None, &message("new-1"), "", &[], SystemTime::now());

    // The sweep moves only that one: the copies stay, mailserver1 holds each message once.
    let run = posta(&site, &["migrate", "--inbox", "append", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(mirror_copies(&run.json()), 5, "{}", run.stdout);
    let inbox = primary.messages(USER, None);
    assert_eq!(inbox.len(), 4, "{run:?}");
    for id in ["old-1", "old-2", "old-3", "new-1"] {
        assert_eq!(count(&inbox, id), 1, "{id} at mailserver1: {run:?}");
    }
    let work = primary.messages(USER, Some("Work"));
    assert_eq!((count(&work, "work-1"), count(&work, "work-2")), (1, 1));
    assert_eq!(work.len(), 2);
    let left = backup.messages(USER, None);
    assert_eq!(left.len(), 3, "the copies stay on mailserver2");
    assert_eq!(count(&left, "new-1"), 0, "the new one was moved");
    assert_eq!(backup.messages(USER, Some("Work")).len(), 2);

    // A second sweep finds nothing to move and doubles nothing.
    let run = posta(&site, &["migrate", "--inbox", "append", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(mirror_copies(&run.json()), 5, "{}", run.stdout);
    assert_eq!(primary.messages(USER, None).len(), 4);
    assert_eq!(primary.messages(USER, Some("Work")).len(), 2);
}

#[test]
fn a_copy_a_user_moved_on_mailserver2_is_not_sent_back_beside_its_original() {
    let ca = Ca::get();
    let users = [(USER, "pl-alice-secret")];
    let primary = Dovecot::start_with_master(ca, &users, ("admin", PRIMARY_ADMIN_PW));
    let backup = Dovecot::start_with_master(ca, &users, ("admin", BACKUP_ADMIN_PW));
    let dir = tempfile::tempdir().expect("temp dir");
    let site = site(dir.path(), &primary, &backup);
    let t = SystemTime::now() - Duration::from_secs(3600);
    for id in ["old-1", "old-2"] {
        primary.seed(USER, None, &message(id), "S", &[], t);
    }
    primary.seed(USER, Some("Work"), &message("work-1"), "S", &[], t);
    let run = posta(&site, &["mirror", "--once", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");

    // During the outage the user moves old-1's copy into Work: in a Maildir a move is a
    // rename, and Dovecot gives it a new UID there, one the mirror's map does not name.
    let copy = backup
        .messages(USER, None)
        .into_iter()
        .find(|m| count(std::slice::from_ref(m), "old-1") == 1)
        .expect("old-1's copy on mailserver2");
    let name = copy.path.file_name().expect("a file name").to_owned();
    let work = backup.maildir(USER).join(".Work").join("cur").join(name);
    fs::rename(&copy.path, &work).expect("move the copy into Work");

    let run = posta(&site, &["migrate", "--inbox", "append", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(mirror_copies(&run.json()), 3, "{}", run.stdout);
    let everything: Vec<StoredMessage> = primary
        .messages(USER, None)
        .into_iter()
        .chain(primary.messages(USER, Some("Work")))
        .collect();
    for id in ["old-1", "old-2", "work-1"] {
        assert_eq!(count(&everything, id), 1, "{id} at mailserver1: {run:?}");
    }
    assert_eq!(everything.len(), 3, "{run:?}");
    let moved = backup.messages(USER, Some("Work"));
    assert_eq!(
        count(&moved, "old-1"),
        1,
        "the moved copy stays where the user put it"
    );
}
