//! keepalived's plain `notify` scripts, put back in arrival order.
//!
//! keepalived forks one notify script per transition and does not wait for the previous one,
//! so a quick MASTER, BACKUP pair runs as two processes at once (docs/failover.md §1.1). Each
//! process appends its notification under a short lock, which gives it a sequence number;
//! then one process at a time, the runner, takes the notifications in sequence until none
//! is left. A process that finds another runner leaves its notification to it. No one polls:
//! whoever arrives first is first, whatever the scheduler does with the others.
//!
//! The runner gives up its role while it holds the queue lock and sees the queue empty, and
//! an arrival appends under that lock before it tries to become runner: so either the
//! runner sees the new notification or the role is free when the newcomer asks for it. A
//! notification leaves the queue only after it was handled; a runner killed half way leaves
//! it to the next one (handling is idempotent: a repeat changes nothing).
//!
//! Every function here blocks (file locks, fsync): call them from the blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One notification as keepalived gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// `INSTANCE` or `GROUP`.
    pub kind: String,
    pub name: String,
    /// As keepalived wrote it (`MASTER`, `BACKUP`, ...).
    pub state: String,
}

/// A queued notification and its place in the sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub notification: Notification,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    next: u64,
    entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot use the keepalived notification queue {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "the keepalived notification queue {path} is not valid ({reason}); move it aside (the notifications in it are lost, keepalived's next one starts a new queue)"
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// The queue beside the takeover state file.
#[derive(Debug, Clone)]
pub struct Queue {
    file: PathBuf,
    lock: PathBuf,
    runner: PathBuf,
}

impl Queue {
    /// `takeover.json` gets `takeover.notify.json` and its two lock files.
    pub fn beside(state_file: &Path) -> Queue {
        Queue {
            file: state_file.with_extension("notify.json"),
            lock: state_file.with_extension("notify.lock"),
            runner: state_file.with_extension("notify.runner"),
        }
    }

    /// Appends `n`, durably; its sequence number.
    pub fn push(&self, n: Notification) -> Result<u64, QueueError> {
        let _guard = self.guard()?;
        let mut stored = self.load()?;
        let seq = stored.next;
        stored.next += 1;
        stored.entries.push(Entry {
            seq,
            notification: n,
        });
        self.save(&stored)?;
        Ok(seq)
    }

    /// Becomes the runner, unless another process is.
    pub fn try_run(&self) -> Result<Option<Runner>, QueueError> {
        let file = open(&self.runner)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Runner {
                queue: self.clone(),
                role: Some(file),
            })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(source)) => Err(self.io(&self.runner, source)),
        }
    }

    fn guard(&self) -> Result<File, QueueError> {
        let file = open(&self.lock)?;
        file.lock().map_err(|e| self.io(&self.lock, e))?;
        Ok(file)
    }

    fn load(&self) -> Result<Stored, QueueError> {
        match fs::read(&self.file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| QueueError::Corrupt {
                path: self.file.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stored::default()),
            Err(e) => Err(self.io(&self.file, e)),
        }
    }

    fn save(&self, stored: &Stored) -> Result<(), QueueError> {
        let mut bytes =
            serde_json::to_vec_pretty(stored).map_err(|e| self.io(&self.file, e.into()))?;
        bytes.push(b'\n');
        crate::durable::replace(&self.file, &bytes, 0o644).map_err(|e| self.io(&self.file, e))
    }

    fn io(&self, path: &Path, source: io::Error) -> QueueError {
        QueueError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

fn open(path: &Path) -> Result<File, QueueError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| QueueError::Io {
                path: dir.to_owned(),
                source,
            })?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|source| QueueError::Io {
            path: path.to_owned(),
            source,
        })
}

/// The one process taking notifications off the queue.
pub struct Runner {
    queue: Queue,
    /// The locked runner file; `None` once the queue was found empty and the role given up.
    role: Option<File>,
}

impl Runner {
    /// The oldest notification, or `None` after giving up the role on an empty queue.
    pub fn head(&mut self) -> Result<Option<Entry>, QueueError> {
        if self.role.is_none() {
            return Ok(None);
        }
        let _guard = self.queue.guard()?;
        let stored = self.queue.load()?;
        match stored.entries.into_iter().next() {
            Some(e) => Ok(Some(e)),
            None => {
                // Under the queue lock: an arrival after this finds the role free.
                self.role = None;
                Ok(None)
            }
        }
    }

    /// Removes the handled notification `seq`.
    pub fn done(&mut self, seq: u64) -> Result<(), QueueError> {
        let _guard = self.queue.guard()?;
        let mut stored = self.queue.load()?;
        stored.entries.retain(|e| e.seq != seq);
        self.queue.save(&stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(state: &str) -> Notification {
        Notification {
            kind: "INSTANCE".into(),
            name: "posta".into(),
            state: state.into(),
        }
    }

    #[test]
    fn one_runner_takes_every_notification_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::beside(&dir.path().join("takeover.json"));
        assert_eq!(q.push(n("MASTER")).unwrap(), 0);
        assert_eq!(q.push(n("BACKUP")).unwrap(), 1);
        let mut runner = q.try_run().unwrap().expect("no one else runs");
        assert!(q.try_run().unwrap().is_none(), "one runner at a time");
        let first = runner.head().unwrap().unwrap();
        assert_eq!(
            (first.seq, first.notification.state.as_str()),
            (0, "MASTER")
        );
        // Not done yet: a runner that died here leaves it to the next one.
        assert_eq!(runner.head().unwrap().unwrap().seq, 0);
        runner.done(0).unwrap();
        assert_eq!(
            q.push(n("MASTER")).unwrap(),
            2,
            "arrivals while it runs queue up"
        );
        for (seq, state) in [(1, "BACKUP"), (2, "MASTER")] {
            let e = runner.head().unwrap().unwrap();
            assert_eq!((e.seq, e.notification.state.as_str()), (seq, state));
            runner.done(seq).unwrap();
        }
        assert!(runner.head().unwrap().is_none());
        assert!(runner.head().unwrap().is_none(), "the role stays given up");
        assert!(q.try_run().unwrap().is_some(), "the role is free again");
    }

    #[test]
    fn a_corrupt_queue_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::beside(&dir.path().join("takeover.json"));
        fs::write(dir.path().join("takeover.notify.json"), "{nope").unwrap();
        let e = q.push(n("MASTER")).unwrap_err();
        assert!(e.to_string().contains("move it aside"), "{e}");
    }
}
