//! Durable file writes, the one way posta makes a file survive a crash or a power failure:
//! write a temporary file beside the target, fsync it, rename it over the target, fsync the
//! directory. A reader sees the old file or the new one, never half of either; after the call
//! returns, the new one is what a machine that loses power finds.
//!
//! A rename without the file's fsync can leave an empty file under the new name after a power
//! failure (ext4 and XFS commit the rename before the data); a rename without the directory's
//! fsync can be forgotten altogether. Both only show when the page cache is lost, never under
//! `kill -9`, which is why every writer goes through here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// fsync a directory, making the names created, renamed or removed in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes`, created with `mode` (before the umask): temporary file in the
/// same directory, fsync, rename, directory fsync. On error the temporary file is removed and
/// the old file, if any, is untouched.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_beside(path, bytes, mode, false).map(drop)
}

/// Like [`replace`], but returns the new file, open for reading and writing at its end and
/// holding an exclusive lock taken before the rename: a file other runs lock (a journal) is
/// never there unlocked, even for an instant.
pub fn replace_locked(path: &Path, bytes: &[u8], mode: u32) -> io::Result<File> {
    write_beside(path, bytes, mode, true)
}

fn write_beside(path: &Path, bytes: &[u8], mode: u32, lock: bool) -> io::Result<File> {
    let dir = parent(path);
    let tmp = temp_name(dir, path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        if lock {
            f.lock()?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)?;
        Ok(f)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Like [`replace`], but leaves the file alone when it already holds exactly `bytes`; whether
/// it was written.
pub fn replace_if_changed(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    replace(path, bytes, mode).map(|()| true)
}

/// Appends `bytes` to the journal `path` (made by [`replace`], so its name is durable) whose
/// first `len` bytes are its whole lines, and fdatasyncs it. Whatever lies beyond `len` (a
/// line torn by a crash or a failed write) is cut off first. On error the file may hold part
/// of `bytes` beyond `len`, which the next append cuts off the same way.
pub fn append(path: &Path, len: u64, bytes: &[u8]) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = OpenOptions::new().write(true).open(path)?;
    if f.metadata()?.len() != len {
        f.set_len(len)?;
    }
    f.seek(SeekFrom::Start(len))?;
    f.write_all(bytes)?;
    f.sync_data()
}

/// The file name (`ext` appended) that holds the state of `id` (an account, a source):
/// `id` itself when every character is safe in a file name (ASCII letters, digits, `.`, `-`,
/// `_`, `@`; not starting with `.`) and it is short, else its safe characters, `+` and a hash
/// of the whole id. No two ids share a name: a name without `+` is its id, and one with `+`
/// carries its id's hash.
pub fn state_file_name(id: &str, ext: &str) -> String {
    let safe = legacy_state_file_name(id, "");
    if safe == id && !id.is_empty() && id.len() <= MAX_PLAIN_NAME && !id.starts_with('.') {
        return format!("{id}{ext}");
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let hash: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Only the hash tells names apart here: the head is for the reader, and never hidden.
    let head: String = safe
        .trim_start_matches('.')
        .chars()
        .take(MAX_PLAIN_NAME)
        .collect();
    format!("{head}+{hash}{ext}")
}

/// Longest id kept whole in a state file's name, well under the 255 bytes a name may have.
const MAX_PLAIN_NAME: usize = 160;

/// The name posta gave a state file before [`state_file_name`]: every unsafe character made
/// `_`, which lets two ids share one file (`a b` and `a_b`).
fn legacy_state_file_name(id: &str, ext: &str) -> String {
    let mut name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.push_str(ext);
    name
}

/// A state file under its old name that more than one id claims.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error(
        "{} was written by an earlier posta for one of {}, whose state files now have names of \
         their own; move it to the name of the one it belongs to ({}) and run again",
        .old.display(),
        .ids.join(", "),
        .new.join(" or ")
    )]
    Ambiguous {
        old: PathBuf,
        ids: Vec<String>,
        new: Vec<String>,
    },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Gives each state file in `dir` that an earlier posta named for one of `ids` its
/// [`state_file_name`], before anything opens them: a file whose old name only one id gives
/// is renamed (durably); one that several give is an error, since which of them wrote it is
/// unknown. Files already under their new name are left alone.
pub fn adopt_legacy_state_files(dir: &Path, ids: &[&str], ext: &str) -> Result<(), AdoptError> {
    let mut claims: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for id in ids {
        claims
            .entry(legacy_state_file_name(id, ext))
            .or_default()
            .push(*id);
    }
    let mut renamed = false;
    for (old_name, claimants) in claims {
        let Some((old, new)) = legacy_file(dir, &old_name, &claimants, ext)? else {
            continue;
        };
        if new.exists() {
            continue;
        }
        fs::rename(&old, &new).map_err(|source| AdoptError::Io { path: old, source })?;
        renamed = true;
    }
    if renamed {
        sync_dir(dir).map_err(|source| AdoptError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Where a read-only command (`posta status`) finds `id`'s state file without renaming
/// anything: under its [`state_file_name`], or, until a run adopts it
/// ([`adopt_legacy_state_files`]), under the name an earlier posta gave it. An error where
/// that run would refuse: the old file fits several of `ids`.
pub fn state_file_to_read(
    dir: &Path,
    id: &str,
    ids: &[&str],
    ext: &str,
) -> Result<PathBuf, AdoptError> {
    let old_name = legacy_state_file_name(id, ext);
    let claimants: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|other| legacy_state_file_name(other, ext) == old_name)
        .collect();
    Ok(match legacy_file(dir, &old_name, &claimants, ext)? {
        Some((old, new)) if !new.exists() => old,
        _ => dir.join(state_file_name(id, ext)),
    })
}

/// The file an earlier posta wrote as `old_name` for one of `claimants` (the ids that give
/// that old name), and its new name: None when there is no such file or no claimant's name
/// changed; an error when several ids give that name, since which of them wrote it is
/// unknown.
fn legacy_file(
    dir: &Path,
    old_name: &str,
    claimants: &[&str],
    ext: &str,
) -> Result<Option<(PathBuf, PathBuf)>, AdoptError> {
    let old = dir.join(old_name);
    let renamed = claimants
        .iter()
        .any(|id| state_file_name(id, ext) != old_name);
    if !renamed || !old.exists() {
        return Ok(None);
    }
    match claimants {
        [id] => Ok(Some((old, dir.join(state_file_name(id, ext))))),
        _ => Err(AdoptError::Ambiguous {
            old,
            ids: claimants.iter().map(|s| s.to_string()).collect(),
            new: claimants.iter().map(|c| state_file_name(c, ext)).collect(),
        }),
    }
}

/// A hidden name beside the target, unique within this process and across processes.
fn temp_name(dir: &Path, path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.posta-{}-{seq}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_with_the_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        replace(&p, b"one", 0o600).unwrap();
        replace(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(!replace_if_changed(&p, b"two", 0o600).unwrap());
        assert!(replace_if_changed(&p, b"three", 0o600).unwrap());
    }

    #[test]
    fn a_locked_replacement_is_locked_under_its_name_and_appendable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.journal");
        replace(&p, b"old\n", 0o600).unwrap();
        let mut f = replace_locked(&p, b"one\n", 0o600).unwrap();
        let other = File::open(&p).unwrap();
        assert!(other.try_lock().is_err(), "the new file is locked");
        f.write_all(b"two\n").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one\ntwo\n");
        append(&p, 8, b"three\n").unwrap();
        append(&p, 8, b"four\n").unwrap();
        assert_eq!(
            fs::read(&p).unwrap(),
            b"one\ntwo\nfour\n",
            "what lay past 8 is cut"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("f");
        assert!(replace(&p, b"x", 0o600).is_err());
        let q = dir.path().join("f");
        replace(&q, b"old", 0o644).unwrap();
        // A directory where the file should go: the rename fails, the temporary goes.
        let d = dir.path().join("d");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("inner"), b"").unwrap();
        assert!(replace(&d, b"x", 0o600).is_err());
        assert_eq!(fs::read(&q).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary left behind");
    }

    #[test]
    fn state_file_names_are_the_id_when_safe_and_never_shared() {
        assert_eq!(
            state_file_name("alice@example.org", ".json"),
            "alice@example.org.json"
        );
        let a = state_file_name("a b", ".json");
        let b = state_file_name("a/b", ".json");
        assert!(a.starts_with("a_b+") && b.starts_with("a_b+"), "{a} {b}");
        assert_ne!(a, b);
        assert_ne!(a, state_file_name("a_b", ".json"));
        for odd in ["", ".", "..", ".hidden"] {
            let n = state_file_name(odd, ".json");
            assert!(n.contains('+') && !n.starts_with('.'), "{n}");
            assert_ne!(n, format!("{odd}.json"));
        }
        let long = "x".repeat(1000);
        assert!(state_file_name(&long, ".journal").len() < 200);
        assert_ne!(
            state_file_name(&long, ".journal"),
            state_file_name(&format!("{long}y"), ".journal")
        );
    }

    #[test]
    fn a_state_file_under_its_old_name_is_adopted_by_the_one_id_that_gives_it() {
        let dir = tempfile::tempdir().unwrap();
        let id = "imap-alice@mailserver2:993";
        let old = dir.path().join("imap-alice@mailserver2_993.journal");
        fs::write(&old, b"records").unwrap();
        // An id whose name never changed, and an id with no file, are left alone.
        fs::write(dir.path().join("bob.journal"), b"bob's").unwrap();
        adopt_legacy_state_files(dir.path(), &[id, "bob", "carol:x"], ".journal").unwrap();
        assert!(!old.exists());
        let new = dir.path().join(state_file_name(id, ".journal"));
        assert_eq!(fs::read(&new).unwrap(), b"records");
        assert_eq!(fs::read(dir.path().join("bob.journal")).unwrap(), b"bob's");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        // Again: nothing left to adopt.
        adopt_legacy_state_files(dir.path(), &[id, "bob"], ".journal").unwrap();
        assert_eq!(fs::read(&new).unwrap(), b"records");
    }

    #[test]
    fn an_old_name_two_ids_give_is_an_error_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a_b.json");
        fs::write(&old, b"whose?").unwrap();
        let e = adopt_legacy_state_files(dir.path(), &["a b", "a/b"], ".json").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, AdoptError::Ambiguous { .. }));
        assert!(
            msg.contains("a_b.json") && msg.contains("a b, a/b"),
            "{msg}"
        );
        assert!(msg.contains(&state_file_name("a b", ".json")), "{msg}");
        assert_eq!(fs::read(&old).unwrap(), b"whose?");
        // The plain id "a_b" has always owned that name: it claims it too.
        let e = adopt_legacy_state_files(dir.path(), &["a b", "a_b"], ".json").unwrap_err();
        assert!(e.to_string().contains("a b, a_b"), "{e}");
    }

    #[test]
    fn a_reader_finds_a_file_under_its_old_name_until_it_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a_b.json");
        fs::write(&old, b"old").unwrap();
        let read = |id, ids: &[&str]| state_file_to_read(dir.path(), id, ids, ".json");
        assert_eq!(read("a b", &["a b", "c"]).unwrap(), old);
        // Whose file it is is in doubt, for each of them: read nobody's.
        for id in ["a b", "a_b"] {
            let e = read(id, &["a b", "a_b"]).unwrap_err();
            assert!(matches!(e, AdoptError::Ambiguous { .. }), "{e}");
        }
        assert!(read("a b", &["a b", "a/b"]).is_err());
        adopt_legacy_state_files(dir.path(), &["a b"], ".json").unwrap();
        let new = dir.path().join(state_file_name("a b", ".json"));
        assert_eq!(read("a b", &["a b"]).unwrap(), new);
        assert_eq!(fs::read(&new).unwrap(), b"old");
    }

    #[test]
    fn an_old_file_is_not_moved_over_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a_b.json");
        let new = dir.path().join(state_file_name("a b", ".json"));
        fs::write(&old, b"old").unwrap();
        fs::write(&new, b"new").unwrap();
        adopt_legacy_state_files(dir.path(), &["a b"], ".json").unwrap();
        assert_eq!(fs::read(&old).unwrap(), b"old");
        assert_eq!(fs::read(&new).unwrap(), b"new");
    }
}
