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
    let dir = parent(path);
    let tmp = temp_name(dir, path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
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
}
