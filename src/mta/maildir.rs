//! Maildir delivery, mailserver2's role while mailserver1 is down: user U's mailbox is
//! `ROOT/U/` with `tmp/`, `new/` and `cur/` (Dovecot: `mail_location = maildir:ROOT/%u`), or
//! wherever a root with `%u` says (`/var/vmail/%u/Maildir`, Dovecot's own syntax), so an
//! existing Dovecot serves the mail as it is.
//!
//! A message is written to `tmp/`, fsync'd, renamed into `new/`, and `new/` is fsync'd
//! before the client hears 250 (the maildir crate stops short of the directory fsync).
//! The store batches those fsyncs across sessions.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::durable::sync_dir;

/// A user name fit for a directory name: what the policy resolved (lowercased local part or
/// the virtusertable's local user). Anything that could leave `ROOT` is refused.
pub fn user_dir(root: &Path, user: &str) -> Option<PathBuf> {
    let user = user.to_ascii_lowercase();
    let ok = !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('.')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+=".contains(&b));
    if !ok {
        return None;
    }
    match root.to_str() {
        Some(r) if r.contains("%u") => Some(PathBuf::from(r.replace("%u", &user))),
        _ => Some(root.join(user)),
    }
}

/// The directory that must exist before any Maildir is made: the root, or for a template the
/// part before the first `%u`.
pub fn base(root: &Path) -> PathBuf {
    match root.to_str().and_then(|r| r.split_once("%u")) {
        Some((head, _)) => PathBuf::from(head),
        None => root.to_path_buf(),
    }
}

/// Where a Maildir-only mta spools big messages while they arrive: in the root, under a name
/// no user can have (a leading dot), so on the same file system as the Maildirs.
pub fn spill_dir(root: &Path) -> PathBuf {
    base(root).join(".posta-spill")
}

/// Creates `dir/{tmp,new,cur}` when missing, fsyncing the parents so a new mailbox survives
/// a crash along with the message put in it.
pub fn ensure(dir: &Path) -> io::Result<()> {
    if dir.join("new").is_dir() && dir.join("tmp").is_dir() && dir.join("cur").is_dir() {
        return Ok(());
    }
    let created = !dir.exists();
    // 0700, the user's directory and a `%u/Maildir` template's `%u` (Dovecot's home) too: a
    // mailbox is its owner's alone, as Postfix's virtual(8) makes its Maildir directories.
    for sub in ["tmp", "new", "cur"] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join(sub))?;
    }
    sync_dir(dir)?;
    if created {
        // The directories made on the way (a `%u/Maildir` template makes two) must be
        // durable too: fsync the parent and the grandparent.
        for p in dir.ancestors().skip(1).take(2) {
            sync_dir(p)?;
        }
    }
    Ok(())
}

/// A unique file name for `new/` (the Maildir convention: time, microseconds, pid, a
/// per-process counter and the host; `,S=` is the size, which Dovecot reads without stat).
pub fn unique_name(hostname: &str, size: usize) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let host: String = hostname
        .chars()
        .map(|c| if c == '/' || c == ':' { '_' } else { c })
        .collect();
    format!(
        "{}.M{}P{}Q{seq}.{host},S={size}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id()
    )
}

/// [`unique_name`] with `,W=`, the size with every line ending in CRLF (what POP3 RETR
/// sends), as Dovecot names its files: the POP3 server lists such a message without reading it.
pub fn delivery_name(hostname: &str, size: u64, crlf_size: u64) -> String {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    format!("{},W={crlf_size}", unique_name(hostname, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn user_names_stay_inside_the_root() {
        let root = Path::new("/srv/mail");
        assert_eq!(user_dir(root, "Ana"), Some(PathBuf::from("/srv/mail/ana")));
        assert_eq!(
            user_dir(root, "ana.b+x"),
            Some(PathBuf::from("/srv/mail/ana.b+x"))
        );
        let t = Path::new("/var/vmail/%u/Maildir");
        assert_eq!(
            user_dir(t, "Bo"),
            Some(PathBuf::from("/var/vmail/bo/Maildir"))
        );
        assert_eq!(base(t), PathBuf::from("/var/vmail/"));
        for bad in ["", "..", "../etc", "a/b", ".hidden", "a b", "a\0b"] {
            assert_eq!(user_dir(root, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn creates_and_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ana");
        ensure(&dir).unwrap();
        ensure(&dir).unwrap();
        for sub in ["tmp", "new", "cur"] {
            assert!(dir.join(sub).is_dir());
            let mode = fs::metadata(dir.join(sub)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{sub}");
        }
        let (a, b) = (unique_name("mx2", 10), unique_name("mx2", 10));
        assert_ne!(a, b);
        assert!(a.ends_with(".mx2,S=10"), "{a}");
        let d = delivery_name("mx2", 10, 12);
        assert!(d.ends_with(".mx2,S=10,W=12"), "{d}");
    }
}
