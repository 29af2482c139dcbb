//! Zone-file mode, for sites whose DNS is a static BIND zone: rewrite mailserver1's A/AAAA
//! lines in place, bump the SOA serial, write the file atomically. The caller then runs the
//! site's reload command and [`super::verify`].
//!
//! hickory's zone parser would lose the administrator's layout and comments, so this is a
//! line-preserving editor (`lexer` → `records` → `edit`) that changes only the bytes of the
//! record and the serial, and refuses what it does not understand (`$INCLUDE`, `$GENERATE`) or
//! what would change any other record. Blocking file I/O: call it from `spawn_blocking`.

mod edit;
mod lexer;
mod records;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::update::check_request;
use super::{DnsError, Record, Swap, normalize};
use edit::{Outcome, Refusal};

/// Replaces `rec.name`'s addresses in the zone file at `path` with `to` (TTL `rec.ttl`) if they
/// are exactly `expect`, and bumps the SOA serial (today's `YYYYMMDD00`, UTC, for date-style
/// serials, else +1). The file keeps its owner and mode; other writers are locked out while it
/// is read and replaced (tmp + fsync + rename + fsync of the directory).
pub fn swap(path: &Path, rec: &Record, expect: &[IpAddr], to: &[IpAddr]) -> Result<Swap, DnsError> {
    let (expect, to) = (normalize(expect), normalize(to));
    check_request(rec, &expect, &to)?;
    let read_err = |source| DnsError::ZoneRead {
        path: path.to_owned(),
        source,
    };
    // Edit the real file, not a symlink to it (rename would replace the link).
    let real = fs::canonicalize(path).map_err(read_err)?;
    let journal = PathBuf::from(format!("{}.jnl", real.display()));
    if journal.exists() {
        return Err(DnsError::ZoneJournal {
            path: path.to_owned(),
            journal,
        });
    }
    let (locked, text) = lock_and_read(&real).map_err(read_err)?;
    match edit::plan(&text, rec, &expect, &to, today()) {
        Ok(Outcome::AlreadyDone { current }) => Ok(Swap::AlreadyDone { current }),
        Ok(Outcome::Done { before, text }) => {
            write_atomically(&real, &locked, &text).map_err(|source| DnsError::ZoneWrite {
                path: path.to_owned(),
                source,
            })?;
            Ok(Swap::Done { before })
        }
        Err(Refusal::NotExpected(found)) => Err(DnsError::NotExpected {
            name: rec.name.to_string(),
            at: path.display().to_string(),
            expected: expect,
            found,
        }),
        Err(Refusal::Syntax(line, message)) => Err(DnsError::ZoneSyntax {
            path: path.to_owned(),
            line,
            message,
        }),
        Err(Refusal::Unsafe(why)) => Err(DnsError::ZoneUnsafe {
            path: path.to_owned(),
            message: why.to_string(),
        }),
    }
}

/// Opens `path` with an exclusive lock, making sure the lock is on the file the path names now
/// (a concurrent writer may have renamed a new file into place meanwhile), and reads it.
fn lock_and_read(path: &Path) -> io::Result<(File, String)> {
    loop {
        let mut file = File::open(path)?;
        file.lock()?;
        let (held, now) = (file.metadata()?, fs::metadata(path)?);
        if held.ino() == now.ino() && held.dev() == now.dev() {
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            return Ok((file, text));
        }
    }
}

/// Replaces `path` with `text`: a temporary file beside it with the old file's mode and
/// owner, fsync'd, renamed over it, and the directory fsync'd. The old file stays whole on error.
fn write_atomically(path: &Path, old: &File, text: &str) -> io::Result<()> {
    let meta = old.metadata()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.posta-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        let mine = f.metadata()?;
        if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))?;
        }
        f.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Today's date in UTC, for YYYYMMDDnn serials.
fn today() -> edit::Date {
    let d = time::OffsetDateTime::now_utc().date();
    (d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns1 h 7 60 60 600 60\n\
                        @ IN NS ns1\nns1 IN A 127.0.0.1\nmail IN A 10.0.0.25\n";

    fn rec() -> Record {
        Record::new("example.test", "mail", 60).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn zone_file(dir: &Path, mode: u32) -> PathBuf {
        let path = dir.join("example.test.db");
        fs::write(&path, ZONE).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn rewrites_in_place_keeping_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = zone_file(dir.path(), 0o644);
        let s = swap(&path, &rec(), &[ip("10.0.0.25")], &[ip("10.0.0.26")]).unwrap();
        assert!(
            matches!(s, Swap::Done { ref before } if before.serial == 7),
            "{s:?}"
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("mail IN A 10.0.0.26\n"), "{text}");
        assert!(text.contains("@ IN SOA ns1 h 8 60 60 600 60\n"), "{text}");
        let mode = fs::metadata(&path).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        let again = swap(&path, &rec(), &[ip("10.0.0.25")], &[ip("10.0.0.26")]).unwrap();
        assert!(matches!(again, Swap::AlreadyDone { .. }));
    }

    #[test]
    fn through_a_symlink_the_target_is_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = zone_file(dir.path(), 0o644);
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        swap(&link, &rec(), &[ip("10.0.0.25")], &[ip("10.0.0.26")]).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(fs::read_to_string(&path).unwrap().contains("10.0.0.26"));
    }

    #[test]
    fn refusals_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = zone_file(dir.path(), 0o644);
        let e = swap(&path, &rec(), &[ip("10.0.0.99")], &[ip("10.0.0.26")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "mail.example.test. holds 10.0.0.25 at {}, not the expected 10.0.0.99: nothing \
                 was changed",
                path.display()
            )
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), ZONE);
        fs::write(dir.path().join("example.test.db.jnl"), "").unwrap();
        let e = swap(&path, &rec(), &[ip("10.0.0.25")], &[ip("10.0.0.26")]).unwrap_err();
        assert!(matches!(e, DnsError::ZoneJournal { .. }), "{e}");
        let missing = dir.path().join("nope.db");
        let e = swap(&missing, &rec(), &[ip("10.0.0.25")], &[ip("10.0.0.26")]).unwrap_err();
        assert!(e.to_string().starts_with("cannot read zone file"), "{e}");
    }

    #[test]
    fn syntax_errors_carry_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.db");
        fs::write(&path, "$TTL 60\n@ IN SOA ns1 h ( 1 60\n").unwrap();
        let e = swap(&path, &rec(), &[ip("10.0.0.25")], &[ip("10.0.0.26")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}:2: `(` is never closed", path.display())
        );
    }
}
