//! The takeover state file: who holds mailserver1's address (or A record) now, and every
//! takeover, failback and reclaim that changed it, with time, mode, old and new values.
//!
//! One JSON document, replaced atomically (written beside, fsync'd, renamed, directory fsync'd)
//! while an exclusive lock on `FILE.lock` keeps two actions from interleaving. `posta status`
//! reads it without the lock: it only ever sees a whole old or a whole new document.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::unix_now;

/// Where the state lives unless the site file or `--state-file` says otherwise.
pub const DEFAULT_PATH: &str = "/var/lib/posta/takeover.json";

/// What an action was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Takeover,
    Failback,
    /// Failback run on mailserver1: it takes its address back and announces it.
    Reclaim,
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC.
    pub time: String,
    pub action: Action,
    /// `vip` or `dns`.
    pub mode: String,
    /// What moved: `10.0.0.25/24 on eth0`, `mail.example.test A`.
    pub resource: String,
    /// Before and after, in words an operator reads: `on mailserver1`, `10.0.0.25`, ...
    pub old: String,
    pub new: String,
    /// This host.
    pub host: String,
    /// False when the action changed nothing because it was already in effect.
    pub changed: bool,
}

/// Who holds a resource now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub mode: String,
    pub resource: String,
    /// `backup` after a takeover, `primary` after failback or reclaim.
    pub holder: String,
    pub value: String,
    pub since: String,
    /// DNS mode: the TTL mailserver1's record had before the takeover, which failback writes
    /// back (the site's `ttl` is what the takeover wrote, short on purpose, not the owner's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_ttl: Option<u32>,
    /// DNS mode: how long resolvers may still hand out the address this change replaced, in
    /// seconds from `changed_at` (the replaced record's TTL, or the zone's negative TTL when an
    /// address family was added): a takeover's old address is mailserver1's, a failback's is
    /// mailserver2's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_ttl: Option<u64>,
    /// When the change was made, seconds since the epoch (`since` is for people; this is for
    /// counting `old_ttl` down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<u64>,
}

impl Holding {
    /// Seconds resolvers may still hand out the replaced address at `now` (seconds since the
    /// epoch), counted down from the change; `None` when no TTL was recorded (VIP mode).
    pub fn old_cached_for(&self, now: u64) -> Option<u64> {
        let ttl = self.old_ttl?;
        let elapsed = now.saturating_sub(self.changed_at.unwrap_or(now));
        Some(ttl.saturating_sub(elapsed))
    }
}

/// What a DNS change leaves to remember: the TTLs failback and `posta status` need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsTtls {
    /// The record's TTL before a takeover, which failback writes back.
    pub original: Option<u32>,
    /// How long resolvers may hand out the replaced address ([`Holding::old_ttl`]).
    pub old: Option<u64>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub holdings: Vec<Holding>,
    /// Oldest first; bounded to the last [`HISTORY`] events.
    pub history: Vec<Event>,
}

const HISTORY: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read takeover state {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("takeover state {path} is not valid ({reason}); move it aside to start a new one")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write takeover state {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "another posta takeover or failback holds {path}; wait for it (or for {wait:?}) and retry"
    )]
    Busy { path: PathBuf, wait: Duration },
}

impl State {
    /// Reads the state; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, StateError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(StateError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The holding of `resource`, if recorded.
    pub fn holding(&self, resource: &str) -> Option<&Holding> {
        self.holdings.iter().find(|h| h.resource == resource)
    }

    /// Records `event` and the holding it leaves.
    pub fn record(&mut self, event: Event, holder: &str) {
        self.record_with_ttl(event, holder, DnsTtls::default());
    }

    /// Like [`Self::record`], also keeping a DNS change's TTLs.
    pub fn record_with_ttl(&mut self, event: Event, holder: &str, ttls: DnsTtls) {
        self.holdings.retain(|h| h.resource != event.resource);
        self.holdings.push(Holding {
            mode: event.mode.clone(),
            resource: event.resource.clone(),
            holder: holder.to_owned(),
            value: event.new.clone(),
            since: event.time.clone(),
            original_ttl: ttls.original,
            old_ttl: ttls.old,
            changed_at: ttls.old.map(|_| unix_now()),
        });
        self.history.push(event);
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
    }

    /// Replaces the file durably ([`crate::durable::replace`]).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let err = |source| StateError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(err)?;
        }
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        text.push(b'\n');
        crate::durable::replace(path, &text, 0o644).map_err(err)
    }
}

/// An exclusive lock on the state for the length of one action.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock, waiting up to `wait` for another action to finish.
    pub fn acquire(path: &Path, wait: Duration) -> Result<Lock, StateError> {
        let (file, lock_path) = Self::open(path)?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(StateError::Busy {
                        path: lock_path,
                        wait,
                    });
                }
                Err(fs::TryLockError::Error(source)) => {
                    return Err(StateError::Write {
                        path: lock_path,
                        source,
                    });
                }
            }
        }
    }

    /// Takes the lock, blocking for as long as another action holds it: for what must not be
    /// dropped (a keepalived notification: the address has already moved). Nothing holds the
    /// lock for longer than one action's hooks and record.
    pub fn wait(path: &Path) -> Result<Lock, StateError> {
        let (file, lock_path) = Self::open(path)?;
        file.lock().map_err(|source| StateError::Write {
            path: lock_path,
            source,
        })?;
        Ok(Lock { _file: file })
    }

    fn open(path: &Path) -> Result<(File, PathBuf), StateError> {
        let lock_path = path.with_extension("lock");
        let err = |source| StateError::Write {
            path: lock_path.clone(),
            source,
        };
        if let Some(dir) = lock_path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(err)?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&lock_path)
            .map_err(err)?;
        Ok((file, lock_path))
    }
}

/// Now, RFC 3339 in UTC.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: Action, new: &str) -> Event {
        Event {
            time: now(),
            action,
            mode: "vip".into(),
            resource: "10.0.0.25/24 on eth0".into(),
            old: "x".into(),
            new: new.into(),
            host: "ms2".into(),
            changed: true,
        }
    }

    #[test]
    fn records_round_trip_and_the_holding_follows_the_last_action() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/takeover.json");
        assert_eq!(State::load(&path).unwrap(), State::default());
        let mut s = State::default();
        s.record(event(Action::Takeover, "on mailserver2"), "backup");
        s.record(event(Action::Failback, "off mailserver2"), "primary");
        s.save(&path).unwrap();
        let back = State::load(&path).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.holdings.len(), 1);
        assert_eq!(
            back.holding("10.0.0.25/24 on eth0").unwrap().holder,
            "primary"
        );
        assert_eq!(back.history.len(), 2);
    }

    #[test]
    fn history_is_bounded_and_corruption_is_named() {
        let mut s = State::default();
        for _ in 0..(HISTORY + 10) {
            s.record(event(Action::Takeover, "a"), "backup");
        }
        assert_eq!(s.history.len(), HISTORY);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        fs::write(&path, "{not json").unwrap();
        let e = State::load(&path).unwrap_err();
        assert!(e.to_string().contains("move it aside"), "{e}");
    }

    #[test]
    fn the_lock_is_exclusive_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let first = Lock::acquire(&path, Duration::from_millis(10)).unwrap();
        let e = Lock::acquire(&path, Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(matches!(e, StateError::Busy { .. }), "{e}");
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || Lock::wait(&path).map(|_| ())
        });
        drop(first);
        waiter
            .join()
            .unwrap()
            .expect("wait takes the lock once it is free");
        assert!(Lock::acquire(&path, Duration::from_millis(10)).is_ok());
    }
}
