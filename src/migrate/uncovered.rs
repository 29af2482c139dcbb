//! Mailboxes on mailserver2 that hold mail no account of the run covers (issue 14: mail for
//! postmaster@ or probe@ stayed on mailserver2 while the run said everything arrived).
//!
//! `posta mta` delivers into `[mta] maildir`: a root whose user U has `ROOT/U`, or a
//! template such as `/var/vmail/%u/Maildir` (Dovecot's `mail_location` syntax). Every
//! directory under the root (or the template's part before `%u`) is a user; its mail is what
//! `new/` and `cur/` hold, in INBOX and in each Maildir++ folder (`.Name`). `tmp/` is not
//! mail yet: a delivery in progress, or one a crash cut short.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::mta::maildir::{base, user_dir};

/// A user's Maildir on mailserver2 with mail in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    pub user: String,
    /// Its Maildir, as posta mta delivers into it.
    pub maildir: String,
    /// Messages in `new/` and `cur/`, every folder.
    pub messages: usize,
}

/// Every user under `root` with a directory, and its Maildir, by name. A missing root is an
/// error (NotFound) the caller may take as "no Maildirs on this host".
pub fn users(root: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(base(root))? {
        let entry = entry?;
        // posta mta's spill directory and anything else hidden is nobody's mailbox.
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        // The same mapping posta mta delivers by; a name it would refuse is not one of its
        // users (user_dir lowercases, so an upper-case directory maps elsewhere and is
        // skipped rather than counted under another user's name).
        let Some(dir) = user_dir(root, &name).filter(|_| name == name.to_ascii_lowercase()) else {
            continue;
        };
        found.push((name, dir));
    }
    found.sort();
    Ok(found)
}

/// Every user under `root` whose Maildir holds mail, by name.
pub fn mailboxes(root: &Path) -> io::Result<Vec<Mailbox>> {
    let mut found = Vec::new();
    for (user, dir) in users(root)? {
        let messages = count(&dir)?;
        if messages > 0 {
            found.push(Mailbox {
                user,
                maildir: dir.display().to_string(),
                messages,
            });
        }
    }
    Ok(found)
}

/// The mailboxes under `root` with mail whose user is not in `covered` (compared without
/// case: the mta keeps lowercased local parts).
pub fn uncovered(root: &Path, covered: &[String]) -> io::Result<Vec<Mailbox>> {
    Ok(mailboxes(root)?
        .into_iter()
        .filter(|m| !covered.iter().any(|c| c.eq_ignore_ascii_case(&m.user)))
        .collect())
}

/// Messages in a Maildir: INBOX and every Maildir++ folder. A user directory that is no
/// Maildir (yet) holds none.
fn count(maildir: &Path) -> io::Result<usize> {
    let mut n = messages_in(maildir)?;
    let entries = match fs::read_dir(maildir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let folder = entry
            .file_name()
            .to_str()
            .is_some_and(|f| f.starts_with('.'));
        if folder && entry.file_type()?.is_dir() {
            n += messages_in(&entry.path())?;
        }
    }
    Ok(n)
}

/// Files in `dir/new` and `dir/cur` (hidden ones are no messages).
fn messages_in(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let visible = entry
                .file_name()
                .to_str()
                .is_some_and(|f| !f.starts_with('.'));
            if visible && entry.file_type()?.is_file() {
                n += 1;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, name: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(name), b"Subject: x\r\n\r\nx\r\n").unwrap();
    }

    fn maildir(root: &Path, user: &str) -> PathBuf {
        let d = root.join(user);
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        d
    }

    #[test]
    fn counts_new_cur_and_folders_but_not_tmp() {
        let t = tempfile::tempdir().unwrap();
        let alice = maildir(t.path(), "alice");
        put(&alice.join("new"), "1.a");
        put(&alice.join("cur"), "2.a:2,S");
        put(&alice.join("tmp"), "3.a");
        put(&alice.join(".Projects/cur"), "4.a:2,");
        put(&alice.join(".Projects/new"), "5.a");
        // Dovecot's own files sit beside the folders and are not mail.
        fs::write(alice.join("dovecot-uidlist"), b"3 V1 N1\n").unwrap();
        maildir(t.path(), "bob");
        fs::create_dir_all(t.path().join(".posta-spill")).unwrap();
        put(&t.path().join(".posta-spill/new"), "x");
        let found = mailboxes(t.path()).unwrap();
        assert_eq!(
            found,
            vec![Mailbox {
                user: "alice".into(),
                maildir: alice.display().to_string(),
                messages: 4,
            }]
        );
    }

    #[test]
    fn a_template_root_maps_users_as_the_mta_does() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("%u/Maildir");
        put(&t.path().join("postmaster/Maildir/new"), "1.p");
        put(&t.path().join("postmaster/Maildir/new"), "2.p");
        put(&t.path().join("alice/Maildir/cur"), "1.a:2,S");
        // A home with no Maildir under it yet holds no mail.
        fs::create_dir_all(t.path().join("carol")).unwrap();
        let found = uncovered(&root, &["Alice".into()]).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].user, "postmaster");
        assert_eq!(found[0].messages, 2);
        assert!(found[0].maildir.ends_with("postmaster/Maildir"));
    }

    #[test]
    fn covered_or_empty_mailboxes_are_not_listed() {
        let t = tempfile::tempdir().unwrap();
        put(&maildir(t.path(), "alice").join("new"), "1");
        maildir(t.path(), "probe");
        assert!(uncovered(t.path(), &["alice".into()]).unwrap().is_empty());
    }

    #[test]
    fn a_missing_root_says_not_found() {
        let t = tempfile::tempdir().unwrap();
        let e = mailboxes(&t.path().join("absent")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
