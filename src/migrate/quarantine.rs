//! The local quarantine: a Maildir holding a copy of every message mailserver1 refused for good
//! (5xx) or that had no usable recipient. The source copy stays where it is; this copy exists so
//! that nothing permanently refused is ever only on a server someone may wipe.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A quarantine Maildir (`cur`, `new`, `tmp`), created on first use with owner-only modes.
#[derive(Debug, Clone)]
pub struct Quarantine {
    dir: PathBuf,
}

impl Quarantine {
    pub fn new(dir: PathBuf) -> Quarantine {
        Quarantine { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `message` as `new/NAME`, durably: written to `tmp/`, fsync'd, renamed, and the
    /// directory fsync'd. `name` is stable per source message, so storing the same message
    /// again (a rerun that is refused again) keeps one copy.
    pub fn store(&self, name: &str, message: &[u8]) -> io::Result<PathBuf> {
        for sub in ["cur", "new", "tmp"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(self.dir.join(sub))?;
        }
        let file_name = format!("{name}.posta");
        let target = self.dir.join("new").join(&file_name);
        if target.exists() {
            return Ok(target);
        }
        let tmp = self.dir.join("tmp").join(&file_name);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(message)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        File::open(self.dir.join("new"))?.sync_all()?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_once_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::new(dir.path().join("q/alice"));
        let a = q.store("k1", b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let b = q.store("k1", b"Subject: x\r\n\r\nbody\r\n").unwrap();
        assert_eq!(a, b);
        assert_eq!(fs::read(&a).unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(fs::read_dir(q.dir().join("new")).unwrap().count(), 1);
        assert_eq!(fs::read_dir(q.dir().join("tmp")).unwrap().count(), 0);
    }
}
