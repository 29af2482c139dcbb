//! The record of notices sent, per event and recipient, which the rate limit reads: one JSON
//! file beside the takeover state, replaced through [`crate::durable`] after every notice the
//! server accepted, while an exclusive lock keeps two senders apart.
//!
//! Recorded after sending, never before: a notice is never lost to a crash, and a crash can
//! send at most one notice twice (the one whose acceptance had not been recorded yet), with
//! the same Message-ID, which mail programs show once.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::NotifyEvent;

/// The file's name, beside the takeover state file.
pub const FILE_NAME: &str = "notify.json";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read the notice record {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the notice record {path} is not valid ({reason}); move it aside to start a new one")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write the notice record {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("another posta is sending notices (it holds {0})")]
    Busy(PathBuf),
}

/// When each user was last sent each event's notice, seconds since the epoch.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Sent {
    sent: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The record, loaded and locked.
pub struct Ledger {
    path: PathBuf,
    sent: Sent,
    _lock: File,
}

impl Ledger {
    /// Takes the lock (refusing when another sender holds it) and reads the record; a missing
    /// file is an empty record.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let write = |source| LedgerError::Write {
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(crate::durable::parent(path)).map_err(write)?;
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(write)?;
        if lock.try_lock().is_err() {
            return Err(LedgerError::Busy(lock_path));
        }
        let sent = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LedgerError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Sent::default(),
            Err(source) => {
                return Err(LedgerError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Ledger {
            path: path.to_owned(),
            sent,
            _lock: lock,
        })
    }

    /// Whether `to` was sent `event`'s notice less than `window` before `now`.
    pub fn recently_sent(&self, event: NotifyEvent, to: &str, now: u64, window: Duration) -> bool {
        self.sent
            .sent
            .get(event.name())
            .and_then(|m| m.get(&to.to_ascii_lowercase()))
            .is_some_and(|&at| now.saturating_sub(at) < window.as_secs())
    }

    /// Records that `to` was sent `event`'s notice at `now`, durably before returning.
    pub fn record(&mut self, event: NotifyEvent, to: &str, now: u64) -> Result<(), LedgerError> {
        self.sent
            .sent
            .entry(event.name().to_string())
            .or_default()
            .insert(to.to_ascii_lowercase(), now);
        let mut bytes = serde_json::to_vec_pretty(&self.sent).map_err(|e| LedgerError::Write {
            path: self.path.clone(),
            source: e.into(),
        })?;
        bytes.push(b'\n');
        crate::durable::replace(&self.path, &bytes, 0o644).map_err(|source| LedgerError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_record_survives_a_reopen_and_the_window_is_per_event_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/notify.json");
        {
            let mut l = Ledger::open(&path).unwrap();
            assert!(!l.recently_sent(NotifyEvent::Takeover, "a@x.org", 1000, HOUR));
            l.record(NotifyEvent::Takeover, "A@x.org", 1000).unwrap();
        }
        let l = Ledger::open(&path).unwrap();
        assert!(l.recently_sent(NotifyEvent::Takeover, "a@x.org", 1000 + 3599, HOUR));
        assert!(!l.recently_sent(NotifyEvent::Takeover, "a@x.org", 1000 + 3600, HOUR));
        assert!(!l.recently_sent(NotifyEvent::Failback, "a@x.org", 1001, HOUR));
        assert!(!l.recently_sent(NotifyEvent::Takeover, "b@x.org", 1001, HOUR));
    }

    #[test]
    fn one_sender_at_a_time_and_corruption_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.json");
        let first = Ledger::open(&path).unwrap();
        assert!(matches!(Ledger::open(&path), Err(LedgerError::Busy(_))));
        drop(first);
        fs::write(&path, "{half").unwrap();
        let e = Ledger::open(&path).err().unwrap();
        assert!(e.to_string().contains("move it aside"), "{e}");
    }
}
