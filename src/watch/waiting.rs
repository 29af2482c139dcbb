//! What waits on mailserver2 for mailserver1, for `posta status` and `/metrics`: the messages
//! and bytes under the mta's Maildirs (`[mta] maildir`, delivered there and not yet swept home)
//! and in its relay queue, and how old the oldest is.
//!
//! The count is blocking file-system work: callers run it off the async runtime
//! ([`count_blocking`]). It is bounded: past [`LIMIT`] files a pile stops counting and says so
//! (`capped`), so a backlog of millions costs a status call no more than a few seconds.
//!
//! Only `new/` and `cur/` of INBOX and of every Maildir++ folder hold mail; `tmp/` is a
//! delivery in progress, and Dovecot's own files (`dovecot-uidlist`, `dovecot.index*`) sit
//! beside those directories, never in them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::mta::maildir::{base, user_dir};

/// Files looked at per pile before it stops counting.
pub const LIMIT: u64 = 100_000;

/// Mail waiting in one place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pile {
    pub messages: u64,
    pub bytes: u64,
    /// The oldest message's modification time (its delivery), seconds since the epoch.
    pub oldest: Option<u64>,
    /// Counting stopped at [`LIMIT`]: there are at least this many.
    pub capped: bool,
    /// Why the pile could not be counted (then the numbers are what was seen before).
    pub error: Option<String>,
}

impl Pile {
    /// `12 messages (3.4 MB), the oldest 95s old`; `≥ 100000 messages …` when capped.
    pub fn describe(&self, now: u64) -> String {
        let at_least = if self.capped { "≥ " } else { "" };
        let mut s = format!(
            "{at_least}{} message{} ({at_least}{} bytes)",
            self.messages,
            if self.messages == 1 { "" } else { "s" },
            self.bytes
        );
        if let Some(t) = self.oldest {
            s.push_str(&format!(", the oldest {}s old", now.saturating_sub(t)));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(" (cannot count all: {e})"));
        }
        s
    }

    fn add(&mut self, meta: &fs::Metadata) {
        self.messages += 1;
        self.bytes += meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        if let Some(t) = mtime {
            self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
        }
    }
}

/// Both places on this host, each only when the site has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Under `[mta] maildir`.
    pub maildir: Option<Pile>,
    /// In the mta's queue (`active/`: what it still tries to deliver).
    pub queue: Option<Pile>,
}

impl Waiting {
    /// Every message waiting, both places.
    pub fn messages(&self) -> u64 {
        [&self.maildir, &self.queue]
            .into_iter()
            .flatten()
            .map(|p| p.messages)
            .sum()
    }
}

/// Counts both, off the async runtime.
pub async fn count_blocking(maildir: Option<PathBuf>, queue: Option<PathBuf>) -> Waiting {
    let work = move || Waiting {
        maildir: maildir.map(|m| maildirs(&m, LIMIT)),
        queue: queue.map(|q| files(&q.join("active"), LIMIT)),
    };
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Waiting {
            maildir: Some(Pile {
                error: Some(format!("the count stopped: {e}")),
                ..Pile::default()
            }),
            queue: None,
        })
}

/// The mail in every user's Maildir under `root` (a root or a `%u` template, as the mta
/// delivers). A root that does not exist yet holds nothing.
pub fn maildirs(root: &Path, limit: u64) -> Pile {
    let mut pile = Pile::default();
    if let Err(e) = walk_maildirs(root, limit, &mut pile) {
        pile.error = Some(e.to_string());
    }
    pile
}

fn walk_maildirs(root: &Path, limit: u64, pile: &mut Pile) -> io::Result<()> {
    let base = base(root);
    let users = match fs::read_dir(&base) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| in_dir(e, &base))?,
    };
    for entry in users {
        let entry = entry.map_err(|e| in_dir(e, &base))?;
        // The mta's spill directory and anything hidden is nobody's mailbox.
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(dir) = user_dir(root, &name) else {
            continue;
        };
        for folder in folders(&dir)? {
            for sub in ["new", "cur"] {
                mail_in(&folder.join(sub), limit, pile)?;
                if pile.capped {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// INBOX (the Maildir itself) and every Maildir++ folder (`.Name`) in it.
fn folders(maildir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = vec![maildir.to_path_buf()];
    let entries = match fs::read_dir(maildir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(|e| in_dir(e, maildir))?,
    };
    for entry in entries {
        let entry = entry?;
        let folder = entry
            .file_name()
            .to_str()
            .is_some_and(|f| f.starts_with('.') && f != "." && f != "..");
        if folder && entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Every message file in `dir` (a missing one holds none).
fn files(dir: &Path, limit: u64) -> Pile {
    let mut pile = Pile::default();
    if let Err(e) = mail_in(dir, limit, &mut pile) {
        pile.error = Some(e.to_string());
    }
    pile
}

fn mail_in(dir: &Path, limit: u64, pile: &mut Pile) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| in_dir(e, dir))?,
    };
    for entry in entries {
        if pile.messages >= limit {
            pile.capped = true;
            return Ok(());
        }
        let entry = entry.map_err(|e| in_dir(e, dir))?;
        if entry
            .file_name()
            .to_str()
            .is_none_or(|f| f.starts_with('.'))
        {
            continue;
        }
        // Gone meanwhile (swept, expunged, moved new/ → cur/ by Dovecot): not waiting here.
        match entry.metadata() {
            Ok(m) if m.is_file() => pile.add(&m),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(in_dir(e, dir)),
        }
    }
    Ok(())
}

fn in_dir(e: io::Error, dir: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn put(dir: &Path, name: &str, bytes: usize, age: u64) {
        fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, vec![b'x'; bytes]).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn counts_new_cur_and_folders_with_bytes_and_the_oldest_age() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        put(&root.join("alice/new"), "1.a", 100, 10);
        put(&root.join("alice/cur"), "2.a:2,S", 200, 3600);
        put(&root.join("alice/.Projects/new"), "3.a", 300, 20);
        put(&root.join("bob/new"), "1.b", 400, 30);
        // Not mail: a delivery in progress, Dovecot's files, the mta's spill, hidden files.
        put(&root.join("alice/tmp"), "4.a", 5000, 99_999);
        put(&root.join("alice"), "dovecot-uidlist", 5000, 99_999);
        put(&root.join("alice/cur"), ".hidden", 5000, 99_999);
        put(&root.join(".posta-spill/new"), "x", 5000, 99_999);
        let pile = maildirs(root, LIMIT);
        assert_eq!((pile.messages, pile.bytes), (4, 1000), "{pile:?}");
        assert!(!pile.capped && pile.error.is_none(), "{pile:?}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let age = now - pile.oldest.unwrap();
        assert!((3600..3700).contains(&age), "oldest {age}s");
        assert!(
            pile.describe(now)
                .starts_with("4 messages (1000 bytes), the oldest 3")
        );
    }

    #[test]
    fn a_template_root_and_a_missing_root() {
        let t = tempfile::tempdir().unwrap();
        put(&t.path().join("postmaster/Maildir/new"), "1.p", 10, 0);
        put(&t.path().join("carol/other/new"), "1.c", 10, 0);
        let pile = maildirs(&t.path().join("%u/Maildir"), LIMIT);
        assert_eq!(pile.messages, 1, "{pile:?}");
        let none = maildirs(&t.path().join("absent"), LIMIT);
        assert_eq!(none, Pile::default());
    }

    #[test]
    fn counting_stops_at_the_limit_and_says_at_least() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..5 {
            put(&t.path().join("alice/new"), &format!("{i}.a"), 1, 0);
        }
        let pile = maildirs(t.path(), 3);
        assert_eq!((pile.messages, pile.capped), (3, true), "{pile:?}");
        assert!(pile.describe(0).starts_with("≥ 3 messages"), "{pile:?}");
        let all = files(&t.path().join("alice/new"), 10);
        assert_eq!((all.messages, all.capped), (5, false));
    }

    #[test]
    fn an_unreadable_maildir_is_an_error_that_names_it() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let pile = files(&file, LIMIT);
        let e = pile.error.unwrap_or_default();
        assert!(e.contains("not-a-dir"), "{e}");
    }
}
