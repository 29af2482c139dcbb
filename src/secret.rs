//! Secrets (passwords, TSIG keys) live in files named by path, never in argv, logs or JSON.
//!
//! A secret file that group or others can read is refused, as ssh refuses a private key with loose
//! permissions: a password readable by every local user is already leaked.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A secret value. `Debug` and `Display` never show it; only [`Secret::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "refusing secret file {path}: mode {mode:04o} lets group or others read it; run: chmod 600 {path}"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
    #[error("secret file {path} is not UTF-8 text")]
    NotText { path: PathBuf },
}

/// Checks that `path` is a regular file readable only by its owner.
pub fn check_permissions(path: &Path) -> Result<(), SecretError> {
    let meta = fs::metadata(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Reads a one-line secret (a password): the first line, without its line ending.
pub fn read_password(path: &Path) -> Result<Secret, SecretError> {
    let text = read_text(path)?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Secret::new(line))
}

/// Reads a whole secret file (a TSIG key file) after the permission check.
pub fn read_text(path: &Path) -> Result<String, SecretError> {
    check_permissions(path)?;
    let bytes = fs::read(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| SecretError::NotText {
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, mode: u32, text: &str) -> PathBuf {
        let path = dir.join("pw");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn reads_first_line_of_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 0o600, "s3cret\nignored\n");
        assert_eq!(read_password(&path).unwrap().expose(), "s3cret");
    }

    #[test]
    fn refuses_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 0o644, "s3cret\n");
        let err = read_password(&path).unwrap_err().to_string();
        assert!(err.contains("mode 0644"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn refuses_group_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 0o640, "s3cret\n");
        assert!(matches!(
            read_password(&path),
            Err(SecretError::Permissions { mode: 0o640, .. })
        ));
    }

    #[test]
    fn refuses_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 0o600, "\n");
        assert!(matches!(
            read_password(&path),
            Err(SecretError::Empty { .. })
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}
