//! A user's maildrop on disk: the Maildir `ROOT/<user>/` read as a snapshot at login, its
//! exclusive lock, message files for RETR, and the deletions at QUIT. Blocking file I/O: the
//! driver calls these from `spawn_blocking`.
//!
//! UIDL (RFC 1939 §7) is the Maildir unique name, the part of the file name before `:2,`: it
//! does not change when a reader (Dovecot) moves the file from new/ to cur/ or changes its
//! flags, and it survives restarts with nothing stored. A name RFC 1939 cannot carry (longer than
//! 70 characters or with bytes outside 0x21–0x7E) is replaced by a SHA-256 of it, as stable.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::{Flock, FlockArg};

use crate::proto::pop3_server::{CrlfLen, MessageInfo};

/// The lock file in each Maildir root, so two posta processes do not serve one maildrop.
const LOCK_FILE: &str = ".posta-pop3.lock";

/// One message of the snapshot.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The Maildir unique name: the file name without its `:2,` info.
    pub base: String,
    /// Where the file was at login; see [`locate`] for where it may be now.
    pub path: PathBuf,
    pub info: MessageInfo,
}

/// CRLF-normalized sizes per user and unique name, with the raw size they were computed from:
/// Maildir files never change, so one read per message per process is enough.
pub type SizeCache = Mutex<HashMap<String, HashMap<String, (u64, u64)>>>;

/// Users with a session in TRANSACTION in this process.
#[derive(Debug, Default)]
pub struct Locks {
    held: Mutex<HashSet<String>>,
}

/// Held while a session owns the maildrop; releases it on drop (any way the session ends).
#[derive(Debug)]
pub struct MaildropLock {
    locks: Arc<Locks>,
    user: String,
    _file: Flock<File>,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.locks
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.user);
    }
}

/// Why a maildrop could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("maildrop of {0} is locked by another session")]
    InUse(String),
    #[error("cannot open maildrop {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The Maildir of `user`: the same directory delivery writes to (`mta::maildir::user_dir`:
/// `root/user`, or `root` with `%u` replaced). `None` for a name that cannot be a directory;
/// the users file refuses those already.
pub fn maildir(root: &Path, user: &str) -> Option<PathBuf> {
    crate::mta::maildir::user_dir(root, user)
}

/// Locks the maildrop of `user` in `dir`: in this process (a set of users) and across
/// processes (flock on a file in the Maildir). Creates the Maildir if it does not exist yet,
/// as delivery would.
pub fn lock(locks: &Arc<Locks>, dir: &Path, user: &str) -> Result<MaildropLock, OpenError> {
    let io_err = |source| OpenError::Io {
        path: dir.to_owned(),
        source,
    };
    {
        let mut held = locks.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.insert(user.to_owned()) {
            return Err(OpenError::InUse(user.to_owned()));
        }
    }
    // From here on a failure must give the in-process lock back.
    let release = || {
        locks
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
    };
    let file = crate::mta::maildir::ensure(dir).and_then(|()| {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
    });
    let file = match file {
        Ok(file) => file,
        Err(e) => {
            release();
            return Err(io_err(e));
        }
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(flock) => Ok(MaildropLock {
            locks: Arc::clone(locks),
            user: user.to_owned(),
            _file: flock,
        }),
        Err((_, errno)) => {
            release();
            if errno == nix::errno::Errno::EWOULDBLOCK {
                Err(OpenError::InUse(user.to_owned()))
            } else {
                Err(io_err(io::Error::from(errno)))
            }
        }
    }
}

/// The maildrop snapshot: new/ then cur/ (a file moved between the two reads is seen twice and
/// kept once), dot files skipped, in delivery order (the seconds and `.M` microseconds leading
/// the name, then the name). Sizes come from `cache` or from reading the file.
pub fn scan(dir: &Path, cache: &mut HashMap<String, (u64, u64)>) -> io::Result<Vec<Entry>> {
    let mut found: HashMap<String, PathBuf> = HashMap::new();
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(file = ?entry.path(), "skipping a message file whose name is not UTF-8");
                continue;
            };
            if name.starts_with('.') || !entry.file_type()?.is_file() {
                continue;
            }
            found.insert(base_name(&name).to_owned(), entry.path());
        }
    }
    let mut sizes = HashMap::with_capacity(found.len());
    let mut entries = Vec::with_capacity(found.len());
    for (base, path) in found {
        // Named with its size: not even a stat (a file removed since read_dir is found gone
        // by RETR, which says so).
        if let Some(size) = virtual_size(&base) {
            entries.push(Entry {
                info: MessageInfo {
                    size,
                    uid: unique_id(&base),
                },
                base,
                path,
            });
            continue;
        }
        let raw = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            // Removed by another reader since read_dir: not part of the snapshot.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let size = match cache.get(&base) {
            Some(&(cached_raw, size)) if cached_raw == raw => size,
            _ => match crlf_size(&path) {
                Ok(size) => size,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            },
        };
        sizes.insert(base.clone(), (raw, size));
        entries.push(Entry {
            info: MessageInfo {
                size,
                uid: unique_id(&base),
            },
            base,
            path,
        });
    }
    *cache = sizes;
    entries.sort_by_cached_key(|e| delivery_order(&e.base));
    Ok(entries)
}

/// The octets RETR sends, from the name: Dovecot's `,W=` (and posta's) is the size with CRLF
/// line ends, so a login after a restart lists 27,000 messages without reading one. `,S=`
/// alone is the size on disk, exact for POP3 only if every line ends in CRLF (Postfix and
/// Dovecot store LF), so it is not trusted: such a file is read once per process.
pub fn virtual_size(base: &str) -> Option<u64> {
    base.split(',')
        .skip(1)
        .find_map(|field| field.strip_prefix("W="))
        .and_then(|n| n.parse().ok())
}

/// The CRLF-normalized size of a file, read in pieces (never whole: a message may be big).
fn crlf_size(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut len = CrlfLen::default();
    let mut buf = vec![0u8; READ_PIECE];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(len.finish()),
            Ok(n) => len.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How much of a message file is read at once, for sizes and for RETR.
pub const READ_PIECE: usize = 64 * 1024;

/// The Maildir unique name: the file name up to its `:2,` info, if any.
pub fn base_name(name: &str) -> &str {
    name.split_once(":2,").map_or(name, |(base, _)| base)
}

/// RFC 1939 §7: 1 to 70 characters from 0x21 to 0x7E; otherwise a hash of the name.
pub fn unique_id(base: &str) -> String {
    let fits = (1..=70).contains(&base.len()) && base.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if fits {
        return base.to_owned();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, base.as_bytes());
    digest.as_ref()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Leading seconds, then `.M` microseconds, then the name (Dovecot's order for new files).
fn delivery_order(base: &str) -> (u64, u64, String) {
    let number = |s: &str| -> u64 {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().unwrap_or(0)
    };
    let seconds = number(base);
    let rest = base.trim_start_matches(|c: char| c.is_ascii_digit());
    let micros = rest.strip_prefix(".M").map_or(0, number);
    (seconds, micros, base.to_owned())
}

/// Where message `base` is now: where it was, or moved to cur/ (new → cur, flags changed) by
/// another reader since the snapshot. `None` when it is gone.
pub fn locate(dir: &Path, entry: &Entry) -> io::Result<Option<PathBuf>> {
    if entry.path.exists() {
        return Ok(Some(entry.path.clone()));
    }
    let candidates = [dir.join("new").join(&entry.base)];
    if let Some(p) = candidates.into_iter().find(|p| p.exists()) {
        return Ok(Some(p));
    }
    let cur = match fs::read_dir(dir.join("cur")) {
        Ok(cur) => cur,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for file in cur {
        let file = file?;
        if file
            .file_name()
            .to_str()
            .is_some_and(|n| base_name(n) == entry.base)
        {
            return Ok(Some(file.path()));
        }
    }
    Ok(None)
}

/// The message file, open for reading, `None` if it is gone.
pub fn open(dir: &Path, entry: &Entry) -> io::Result<Option<File>> {
    // Two tries: a file renamed between `locate` and the open is found again on the second.
    for _ in 0..2 {
        let Some(path) = locate(dir, entry)? else {
            return Ok(None);
        };
        match File::open(&path) {
            Ok(file) => return Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The message's stored bytes, `None` if the file is gone.
#[cfg(test)]
fn read(dir: &Path, entry: &Entry) -> io::Result<Option<Vec<u8>>> {
    let Some(mut file) = open(dir, entry)? else {
        return Ok(None);
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(Some(data))
}

/// Removes the messages durably (RFC 1939 §6 UPDATE): unlink each file (one already gone is
/// fine: the goal is reached), then fsync new/ and cur/ so the unlinks survive a crash before
/// the client hears `+OK`.
pub fn delete(dir: &Path, entries: &[&Entry]) -> io::Result<()> {
    for entry in entries {
        let mut removed = false;
        for _ in 0..2 {
            let Some(path) = locate(dir, entry)? else {
                removed = true;
                break;
            };
            match fs::remove_file(&path) {
                Ok(()) => {
                    removed = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot remove {}: {e}", path.display()),
                    ));
                }
            }
        }
        if !removed {
            return Err(io::Error::other(format!(
                "message {} keeps moving, not removed",
                entry.base
            )));
        }
    }
    if !entries.is_empty() {
        for sub in ["new", "cur"] {
            File::open(dir.join(sub))?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids() {
        assert_eq!(base_name("1700.M1P2.h,S=10:2,S"), "1700.M1P2.h,S=10");
        assert_eq!(base_name("1700.M1P2.h"), "1700.M1P2.h");
        assert_eq!(unique_id("1700.M1P2.h"), "1700.M1P2.h");
        let long = "x".repeat(71);
        let hashed = unique_id(&long);
        assert_eq!(hashed.len(), 40);
        assert_eq!(hashed, unique_id(&long));
        assert_ne!(unique_id("has space"), "has space");
        assert_eq!(unique_id("has space").len(), 40);
    }

    #[test]
    fn sizes_come_from_w_in_the_name_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("ana");
        crate::mta::maildir::ensure(&md).unwrap();
        // The content does not match the name: proof the file was not read.
        fs::write(md.join("new/1.M1P1.h,S=3,W=1234"), "a\n").unwrap();
        fs::write(md.join("new/2.M1P1.h,S=3"), "a\nb").unwrap();
        let entries = scan(&md, &mut HashMap::new()).unwrap();
        let sizes: Vec<_> = entries.iter().map(|e| e.info.size).collect();
        assert_eq!(sizes, [1234, 6]);
        assert_eq!(virtual_size("1.M1P1.h,S=3,W=5"), Some(5));
        assert_eq!(virtual_size("1.M1P1.h,W=x"), None);
        assert_eq!(virtual_size("1.M1P1.W=5"), None);
    }

    #[test]
    fn delivery_order_is_numeric() {
        let mut names = vec!["1700.M10P1.h", "1699.M99P1.h", "1700.M9P1.h", "junk"];
        names.sort_by_key(|n| delivery_order(n));
        assert_eq!(
            names,
            ["junk", "1699.M99P1.h", "1700.M9P1.h", "1700.M10P1.h"]
        );
    }

    #[test]
    fn scan_locate_delete() {
        let dir = tempfile::tempdir().unwrap();
        let locks = Arc::new(Locks::default());
        let md = maildir(dir.path(), "alice").unwrap();
        let lock = lock(&locks, &md, "alice").unwrap();
        assert!(matches!(
            super::lock(&locks, &md, "alice"),
            Err(OpenError::InUse(_))
        ));
        fs::write(md.join("new/2.M1P1.h"), "a\nb\n").unwrap();
        fs::write(md.join("cur/1.M1P1.h:2,S"), "x\r\n").unwrap();
        fs::write(md.join("new/.hidden"), "x").unwrap();
        fs::write(md.join("tmp/3.M1P1.h"), "x").unwrap();
        let mut cache = HashMap::new();
        let entries = scan(&md, &mut cache).unwrap();
        let uids: Vec<_> = entries.iter().map(|e| e.info.uid.as_str()).collect();
        assert_eq!(uids, ["1.M1P1.h", "2.M1P1.h"]);
        assert_eq!(entries[1].info.size, 6);
        assert_eq!(cache.len(), 2);
        // Moved to cur/ by another reader: still found, same uid.
        fs::rename(md.join("new/2.M1P1.h"), md.join("cur/2.M1P1.h:2,S")).unwrap();
        assert_eq!(read(&md, &entries[1]).unwrap().unwrap(), b"a\nb\n");
        delete(&md, &[&entries[1]]).unwrap();
        assert_eq!(read(&md, &entries[1]).unwrap(), None);
        assert_eq!(scan(&md, &mut cache).unwrap().len(), 1);
        drop(lock);
        assert!(super::lock(&locks, &md, "alice").is_ok());
        assert_eq!(maildir(dir.path(), "../x"), None);
    }
}
