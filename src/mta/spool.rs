//! The durable queue of the store-and-forward role (the seed's MX 30 "queues and retries").
//!
//! Layout under the queue directory:
//! - `tmp/`      files being written; never read, swept at start.
//! - `active/`   one file per message waiting for delivery: a magic line, the envelope as one
//!   JSON line, then the message. The envelope records the message length, so a truncated file
//!   is detected (Postfix's END record does the same) and moved to `corrupt/`.
//! - `hold/`     messages an administrator held: no delivery attempts, no expiry.
//! - `state/`    per message, what changed since it was queued: recipients done or failed
//!   and the retry schedule. Written before the message is touched again, so a recipient that
//!   got 250 is never sent twice. A state file that cannot be read is an error that stops its
//!   message, never "nothing delivered yet".
//! - `corrupt/`  files that failed to parse, kept for a human.
//! - `lock`      flock'd by the running `posta mta`.
//!
//! The directory holds mail and state only: the control socket lives elsewhere (under
//! `/run/posta` by default), so the queue can sit on any file system, one that simulates
//! power failures included.
//!
//! Every write is atomic and durable through [`crate::durable::replace`] (temporary file,
//! fsync, rename, directory fsync), or through the store's committer for mail from clients,
//! which does the same in batches; a message is acknowledged only then, and removed only when
//! every recipient is done or failed.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::clock::unix_now;
use crate::durable::{replace, sync_dir};

const MAGIC: &[u8] = b"posta-queue 1\n";

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRcpt {
    /// Where it goes (after any virtusertable rewrite).
    pub to: String,
    /// What the client wrote in RCPT TO, for the DSN's Original-Recipient.
    pub original: String,
}

/// The envelope stored ahead of the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    /// Sender without brackets; empty for the null sender (then no DSN is ever sent).
    pub from: String,
    pub rcpts: Vec<QueuedRcpt>,
    /// Seconds since the epoch.
    pub arrival: u64,
    pub client: String,
    pub helo: String,
    /// Length of the message that follows the envelope line.
    pub size: u64,
}

/// A recipient's final outcome, recorded in `state/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub rcpt: usize,
    /// True when delivered, false when it failed for good (a DSN is due).
    pub delivered: bool,
    /// The reply or reason, for the DSN and `posta queue show`.
    pub reply: String,
    #[serde(default)]
    pub remote: Option<String>,
    /// RFC 3463 status (`5.1.1`, `4.4.7`) for the DSN.
    #[serde(default)]
    pub status: String,
}

/// What happened to a message since it was queued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub attempts: u32,
    /// Seconds since the epoch; 0 means now.
    pub next_attempt: u64,
    pub last_error: Option<String>,
    pub outcomes: Vec<Outcome>,
}

impl State {
    /// Recipient indexes still waiting for delivery.
    pub fn pending(&self, env: &Envelope) -> Vec<usize> {
        (0..env.rcpts.len())
            .filter(|i| !self.outcomes.iter().any(|o| o.rcpt == *i))
            .collect()
    }
}

/// Which directory a message is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    Active,
    Hold,
}

impl Place {
    fn dir(self) -> &'static str {
        match self {
            Place::Active => "active",
            Place::Hold => "hold",
        }
    }
}

/// The queue directory.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

/// A new queue id: time-ordered, unique within the process (only one `posta mta` owns a
/// queue, enforced by its lock).
pub fn new_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("{:09X}{:05X}{seq:04X}", now.as_secs(), now.subsec_micros())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Spool {
    /// Opens (creating) a queue directory.
    pub fn open(root: &Path) -> io::Result<Spool> {
        // Owner-only, like the mail in it.
        for sub in ["tmp", "active", "hold", "state", "corrupt"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root.join(sub))?;
        }
        Ok(Spool {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing queue without creating anything (for `posta queue`).
    pub fn existing(root: &Path) -> io::Result<Spool> {
        if !root.join("active").is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a posta queue directory", root.display()),
            ));
        }
        Ok(Spool {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn active_dir(&self) -> PathBuf {
        self.root.join("active")
    }

    /// The bytes of a queue file for this envelope and message.
    pub fn encode(env: &Envelope, message: &[u8]) -> Vec<u8> {
        let json = serde_json::to_vec(env).unwrap_or_default();
        let mut out = Vec::with_capacity(MAGIC.len() + json.len() + 1 + message.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&json);
        out.push(b'\n');
        out.extend_from_slice(message);
        out
    }

    /// Removes leftovers of writes a crash interrupted (never acknowledged to anyone): files
    /// in `tmp/`, and the hidden temporaries `durable::replace` leaves beside a target.
    pub fn sweep_tmp(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(self.tmp_dir())? {
            fs::remove_file(e?.path())?;
            n += 1;
        }
        for dir in ["active", "state"] {
            for e in fs::read_dir(self.root.join(dir))? {
                let e = e?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    fs::remove_file(e.path())?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Queue ids in a place, oldest first.
    pub fn ids(&self, place: Place) -> io::Result<Vec<String>> {
        let mut ids: Vec<String> = fs::read_dir(self.root.join(place.dir()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| valid_id(n))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Where a message is, if it is queued.
    pub fn find(&self, id: &str) -> Option<Place> {
        if !valid_id(id) {
            return None;
        }
        [Place::Active, Place::Hold]
            .into_iter()
            .find(|p| self.root.join(p.dir()).join(id).is_file())
    }

    fn path(&self, place: Place, id: &str) -> PathBuf {
        self.root.join(place.dir()).join(id)
    }

    /// Reads a message's envelope and, when `with_message`, its bytes.
    pub fn load(
        &self,
        place: Place,
        id: &str,
        with_message: bool,
    ) -> io::Result<(Envelope, Vec<u8>)> {
        let bytes = fs::read(self.path(place, id))?;
        decode(&bytes, with_message).map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                CorruptFile {
                    id: id.to_string(),
                    why,
                },
            )
        })
    }

    /// Moves an unreadable file out of the way, keeping it for a human.
    pub fn quarantine(&self, place: Place, id: &str) -> io::Result<()> {
        fs::rename(self.path(place, id), self.root.join("corrupt").join(id))?;
        sync_dir(&self.root.join(place.dir()))
    }

    /// What happened to a message so far; no state file means nothing yet. A file that
    /// cannot be read or parsed (a 0-byte file after a crash of a writer that did not fsync,
    /// a disk error) is an error: taking it as "nothing delivered" would send delivered
    /// recipients again.
    pub fn state(&self, id: &str) -> io::Result<State> {
        let path = self.state_path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read the state file {}: {e}", path.display()),
                ));
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the state file {} is unreadable ({} octets: {e}); the message is \
                     stopped, as some recipients may have been delivered: check them, then \
                     fix or remove the file",
                    path.display(),
                    bytes.len()
                ),
            )
        })
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.root.join("state").join(format!("{id}.json"))
    }

    /// Saves a message's state, outcomes and retry schedule alike, atomically and durably:
    /// the old state or the new one survives a crash or a power failure, never an empty file.
    pub fn save_state(&self, id: &str, state: &State) -> io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        replace(&self.state_path(id), &bytes, 0o600)
    }

    /// Queues a message the mta itself wrote (a DSN), as durably as mail from a client.
    pub fn insert(&self, env: &Envelope, message: &[u8]) -> io::Result<()> {
        replace(
            &self.active_dir().join(&env.id),
            &Spool::encode(env, message),
            0o600,
        )
    }

    /// Removes a message for good (delivered, bounced or deleted by an administrator).
    pub fn remove(&self, place: Place, id: &str) -> io::Result<()> {
        fs::remove_file(self.path(place, id))?;
        sync_dir(&self.root.join(place.dir()))?;
        match fs::remove_file(self.state_path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves a message between active and hold.
    pub fn move_to(&self, id: &str, from: Place, to: Place) -> io::Result<()> {
        fs::rename(self.path(from, id), self.path(to, id))?;
        sync_dir(&self.root.join(to.dir()))?;
        sync_dir(&self.root.join(from.dir()))
    }

    /// Age of a message for lifetime checks.
    pub fn age(env: &Envelope) -> Duration {
        Duration::from_secs(unix_now().saturating_sub(env.arrival))
    }
}

/// A queue file that does not decode, carried inside the `InvalidData` error of
/// [`Spool::load`].
#[derive(Debug, thiserror::Error)]
#[error("queue file {id} is corrupt: {why}")]
pub struct CorruptFile {
    pub id: String,
    #[source]
    pub why: Corrupt,
}

/// What is wrong with a queue file.
#[derive(Debug, thiserror::Error)]
pub enum Corrupt {
    #[error("not a posta queue file (bad first line)")]
    FirstLine,
    #[error("no envelope line")]
    NoEnvelope,
    #[error("bad envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    #[error("message is {found} octets, the envelope says {said} (truncated?)")]
    Size { found: usize, said: u64 },
    #[error("bad id in envelope")]
    Id,
}

fn decode(bytes: &[u8], with_message: bool) -> Result<(Envelope, Vec<u8>), Corrupt> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(Corrupt::FirstLine)?;
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Corrupt::NoEnvelope)?;
    let env: Envelope = serde_json::from_slice(&rest[..nl]).map_err(Corrupt::Envelope)?;
    let message = &rest[nl + 1..];
    if message.len() as u64 != env.size {
        return Err(Corrupt::Size {
            found: message.len(),
            said: env.size,
        });
    }
    if !valid_id(&env.id) {
        return Err(Corrupt::Id);
    }
    Ok((
        env,
        if with_message {
            message.to_vec()
        } else {
            Vec::new()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(id: &str, size: u64) -> Envelope {
        Envelope {
            id: id.into(),
            from: "a@b.example".into(),
            rcpts: vec![QueuedRcpt {
                to: "x@laorganizacion.org".into(),
                original: "x@laorganizacion.org".into(),
            }],
            arrival: unix_now(),
            client: "192.0.2.1".into(),
            helo: "c".into(),
            size,
        }
    }

    #[test]
    fn roundtrip_hold_state_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Spool::open(tmp.path()).unwrap();
        let id = new_id();
        let msg = b"Subject: hi\r\n\r\nbody\r\n";
        fs::write(
            s.active_dir().join(&id),
            Spool::encode(&envelope(&id, msg.len() as u64), msg),
        )
        .unwrap();
        assert_eq!(s.ids(Place::Active).unwrap(), vec![id.clone()]);
        let (env, m) = s.load(Place::Active, &id, true).unwrap();
        assert_eq!((env.rcpts.len(), m.as_slice()), (1, &msg[..]));
        s.move_to(&id, Place::Active, Place::Hold).unwrap();
        assert_eq!(s.find(&id), Some(Place::Hold));
        let st = State {
            attempts: 2,
            outcomes: vec![Outcome {
                rcpt: 0,
                delivered: true,
                reply: "250 ok".into(),
                remote: None,
                status: "2.0.0".into(),
            }],
            ..State::default()
        };
        s.save_state(&id, &st).unwrap();
        assert_eq!(s.state(&id).unwrap(), st);
        assert!(s.state(&id).unwrap().pending(&env).is_empty());
        s.remove(Place::Hold, &id).unwrap();
        assert_eq!(s.find(&id), None);
        assert_eq!(s.state(&id).unwrap(), State::default());
    }

    #[test]
    fn an_unreadable_state_is_an_error_not_nothing_delivered() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Spool::open(tmp.path()).unwrap();
        let id = new_id();
        fs::write(s.state_path(&id), b"").unwrap();
        let e = s.state(&id).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("0 octets"), "{e}");
        // Leftovers of a replace a crash interrupted go at start; real state stays.
        fs::write(s.root().join("state").join(".x.json.posta-1-0.tmp"), b"{").unwrap();
        assert_eq!(s.sweep_tmp().unwrap(), 1);
        assert!(s.state_path(&id).exists());
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Spool::open(tmp.path()).unwrap();
        let id = new_id();
        let full = Spool::encode(&envelope(&id, 100), b"short");
        fs::write(s.active_dir().join(&id), full).unwrap();
        let e = s.load(Place::Active, &id, false).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        s.quarantine(Place::Active, &id).unwrap();
        assert!(s.ids(Place::Active).unwrap().is_empty());
        fs::write(s.active_dir().join("X1"), b"From nobody\n").unwrap();
        assert!(s.load(Place::Active, "X1", false).is_err());
        assert_eq!(s.find("../x"), None);
    }

    #[test]
    fn ids_are_ordered_and_unique() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
        assert!(ids.iter().all(|i| valid_id(i)));
    }
}
