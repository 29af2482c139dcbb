//! Reading a Maildir++ mailbox on disk as Dovecot keeps it, while Dovecot may be serving it:
//! the Maildir source lists, reads and removes messages here, and `--to-maildir` looks for
//! tracking ids in mailserver1's Maildirs.
//!
//! Layout: INBOX is the root; folder `A.B` is the directory `.A.B` (`.` is the hierarchy
//! delimiter, names in modified UTF-7 as Dovecot stores them). A message is a file in `new/`
//! (not yet seen by a client) or `cur/`, named `UNIQUE` or `UNIQUE:2,INFO`; INFO lists its
//! flags (D draft, F flagged, P passed, R replied, S seen, T trashed, lowercase letters are
//! keywords). The unique part is the message's identity: Dovecot moves a file from `new/` to
//! `cur/` and renames it when its flags change, always keeping that part. `tmp/` holds
//! deliveries in progress; Dovecot's own files (`dovecot-uidlist`, `dovecot.index*`,
//! `dovecot-keywords`, `subscriptions`, `maildirfolder`) sit beside the subdirectories and
//! are never read or written here.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::proto::dotstuff::MAX_MESSAGE;

/// One folder of a Maildir: `INBOX` (the root) or the directory name without its dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The name as stored: `INBOX`, or e.g. `Archive.2024` (modified UTF-7).
    pub raw_name: String,
    pub dir: PathBuf,
}

/// The folders of the Maildir at `root`: INBOX first, then every `.Name` directory with a
/// `cur/` or `new/`, by name.
pub fn folders(root: &Path) -> io::Result<Vec<Folder>> {
    let mut found = vec![Folder {
        raw_name: "INBOX".into(),
        dir: root.to_path_buf(),
    }];
    let mut others = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(raw) = name.strip_prefix('.') else {
            continue;
        };
        if raw.is_empty() || raw.starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        let dir = entry.path();
        if dir.join("cur").is_dir() || dir.join("new").is_dir() {
            others.push(Folder {
                raw_name: raw.to_owned(),
                dir,
            });
        }
    }
    others.sort_by(|a, b| a.raw_name.cmp(&b.raw_name));
    found.extend(others);
    Ok(found)
}

/// The unique part of a message file name: everything before the first `:` (the info).
pub fn base_name(file_name: &str) -> &str {
    file_name
        .split_once(':')
        .map_or(file_name, |(base, _)| base)
}

/// The IMAP system flags of a message file name's `:2,` info. Keywords (lowercase letters)
/// need the folder's `dovecot-keywords` and are not carried.
pub fn flags(file_name: &str) -> Vec<String> {
    let Some((_, info)) = file_name.split_once(":2,") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (letter, flag) in [
        ('D', "\\Draft"),
        ('F', "\\Flagged"),
        ('R', "\\Answered"),
        ('S', "\\Seen"),
        ('T', "\\Deleted"),
    ] {
        if info.contains(letter) {
            out.push(flag.to_owned());
        }
    }
    out
}

/// Whether a message file name says it is marked for deletion (IMAP `\Deleted`).
pub fn trashed(file_name: &str) -> bool {
    file_name
        .split_once(":2,")
        .is_some_and(|(_, info)| info.contains('T'))
}

/// A message file as listed: enough to find it again after Dovecot renamed or moved it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub base: String,
    /// Its name when listed (flags may change afterwards).
    pub file_name: String,
    pub size: u64,
    pub file: FileId,
}

/// Which file on disk: device, inode, size and modification time. A hard link (Dovecot copies
/// a message to another folder by linking it) shares all four; an inode number reused by an
/// unrelated file after a delete would have to match size and mtime to the nanosecond too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

/// `dev:ino:size:seconds.nanoseconds`, as the journal keeps it.
impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (s, ns) = self.mtime;
        write!(f, "{}:{}:{}:{s}.{ns:09}", self.dev, self.ino, self.size)
    }
}

impl FileId {
    fn of(m: &fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// The message files in `new/` and `cur/` of a folder directory, one per unique name (a file
/// Dovecot moved from `new/` to `cur/` while the two were listed shows once). Hidden names and
/// anything not a regular file are no messages.
pub fn list(dir: &Path) -> io::Result<Vec<Listed>> {
    let mut by_base: HashMap<String, Listed> = HashMap::new();
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            // Renamed or removed since read_dir: it shows up under its new name, or is gone.
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !meta.is_file() {
                continue;
            }
            let base = base_name(&name).to_owned();
            by_base.insert(
                base.clone(),
                Listed {
                    base,
                    file_name: name,
                    size: meta.len(),
                    file: FileId::of(&meta),
                },
            );
        }
    }
    let mut out: Vec<Listed> = by_base.into_values().collect();
    out.sort_by(|a, b| a.base.cmp(&b.base));
    Ok(out)
}

/// Where the message with unique name `base` is now in a folder directory, if anywhere.
pub fn find(dir: &Path, base: &str) -> io::Result<Option<PathBuf>> {
    for sub in ["new", "cur"] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_str().map(base_name) == Some(base) {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}

/// A message as read: its bytes with CRLF line ends (as an IMAP server hands it out and SMTP
/// and IMAP APPEND want it), its flags now, and its mtime (Dovecot's INTERNALDATE).
pub struct Message {
    pub message: Vec<u8>,
    pub flags: Vec<String>,
    pub internal_date: String,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("larger than {} MiB", MAX_MESSAGE >> 20)]
    TooLarge,
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Reads the message with unique name `base` from a folder directory, wherever it is now:
/// `None` when it is gone (expunged by its user). Tries `hint` (its name when listed) first.
pub fn read(dir: &Path, base: &str, hint: &str) -> Result<Option<Message>, ReadError> {
    let mut path = [dir.join("cur").join(hint), dir.join("new").join(hint)]
        .into_iter()
        .find(|p| p.is_file());
    // A rename between finding and opening is retried: Dovecot may change the flags again.
    for _ in 0..3 {
        let p = match path.take() {
            Some(p) => p,
            None => match find(dir, base).map_err(|source| ReadError::Io {
                path: dir.to_path_buf(),
                source,
            })? {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        match read_file(&p) {
            Ok(r) => return Ok(Some(r)),
            Err(ReadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn read_file(path: &Path) -> Result<Message, ReadError> {
    let io_err = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.len() > MAX_MESSAGE as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut raw = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(io_err)?;
    if raw.len() > MAX_MESSAGE {
        return Err(ReadError::TooLarge);
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    Ok(Message {
        message: crlf(raw),
        flags: flags(name),
        internal_date: internal_date(meta.mtime()),
    })
}

/// Bare LF line ends made CRLF (Dovecot stores LF); CRLF stays as it is.
pub fn crlf(raw: Vec<u8>) -> Vec<u8> {
    let bare = raw
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
        .count();
    if bare == 0 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + bare);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// IMAP date-time (RFC 3501 `date-time`) of a Unix time, in UTC.
pub fn internal_date(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let month = &t.month().to_string()[..3];
    format!(
        "{:02}-{month}-{} {:02}:{:02}:{:02} +0000",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What removing one delivered message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Unlinked from this directory (`new/` or `cur/` of some folder).
    Unlinked(PathBuf),
    /// Not there any more, nor moved to another folder: its user expunged it meanwhile.
    Gone,
}

impl Removal {
    fn unlinked(path: &Path) -> Removal {
        Removal::Unlinked(crate::durable::parent(path).to_path_buf())
    }
}

/// Unlinks the delivered message `listed` from folder directory `dir`, wherever Dovecot has
/// put it since: renamed for its flags, moved to `cur/`, or moved to another of `folders` (a
/// client's MOVE: Dovecot links the same file there under a new name, then unlinks the old
/// one). The caller fsyncs the directories returned in [`Removal::Unlinked`].
pub fn remove(dir: &Path, listed: &Listed, folders: &[Folder]) -> io::Result<Removal> {
    for _ in 0..3 {
        let Some(path) = find(dir, &listed.base)? else {
            break;
        };
        match fs::remove_file(&path) {
            Ok(()) => return Ok(Removal::unlinked(&path)),
            // Renamed between finding and unlinking: look again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    for f in folders {
        for sub in ["new", "cur"] {
            let entries = match fs::read_dir(f.dir.join(sub)) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let same = entry
                    .metadata()
                    .is_ok_and(|m| m.is_file() && FileId::of(&m) == listed.file);
                if !same {
                    continue;
                }
                match fs::remove_file(entry.path()) {
                    Ok(()) => return Ok(Removal::unlinked(&entry.path())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(Removal::Gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir(root: &Path) {
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
    }

    fn put(path: &Path, body: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, body).unwrap();
    }

    #[test]
    fn names_flags_and_base_names() {
        let name = "1733000000.M12P34.host,S=120,W=123:2,FRS";
        assert_eq!(base_name(name), "1733000000.M12P34.host,S=120,W=123");
        assert_eq!(base_name("1733.M1P2.host"), "1733.M1P2.host");
        assert_eq!(flags(name), ["\\Flagged", "\\Answered", "\\Seen"]);
        assert_eq!(flags("x:2,DTab"), ["\\Draft", "\\Deleted"]);
        assert!(flags("x").is_empty());
        // `:1,` is the experimental info semantics: no flags in it.
        assert!(flags("x:1,S").is_empty());
        assert!(trashed("x:2,ST"));
        assert!(!trashed("x:2,S"));
    }

    #[test]
    fn folders_are_inbox_then_maildirplusplus_dirs_and_nothing_of_dovecots() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        maildir(root);
        maildir(&root.join(".Sent"));
        maildir(&root.join(".Archive.2024"));
        maildir(&root.join(".Entw&APw-rfe"));
        fs::create_dir_all(root.join(".nomaildir")).unwrap();
        for f in [
            "dovecot-uidlist",
            "dovecot.index",
            "subscriptions",
            ".hidden",
        ] {
            fs::write(root.join(f), b"x").unwrap();
        }
        let names: Vec<String> = folders(root)
            .unwrap()
            .into_iter()
            .map(|f| f.raw_name)
            .collect();
        assert_eq!(names, ["INBOX", "Archive.2024", "Entw&APw-rfe", "Sent"]);
    }

    #[test]
    fn a_message_renamed_or_moved_to_cur_is_still_found_and_read() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        maildir(dir);
        put(&dir.join("new/1.M1P1.h"), b"Subject: a\n\nbody\n");
        put(&dir.join("cur/2.M1P1.h:2,S"), b"Subject: b\r\n\r\nbody\r\n");
        put(&dir.join("tmp/3.M1P1.h"), b"in progress");
        put(&dir.join("new/.hidden"), b"x");
        let listed = list(dir).unwrap();
        let bases: Vec<&str> = listed.iter().map(|l| l.base.as_str()).collect();
        assert_eq!(bases, ["1.M1P1.h", "2.M1P1.h"]);
        // Dovecot moves the first to cur/ with flags after it was listed.
        fs::rename(dir.join("new/1.M1P1.h"), dir.join("cur/1.M1P1.h:2,FS")).unwrap();
        let r = read(dir, "1.M1P1.h", &listed[0].file_name)
            .unwrap()
            .unwrap();
        assert_eq!(r.message, b"Subject: a\r\n\r\nbody\r\n");
        assert_eq!(r.flags, ["\\Flagged", "\\Seen"]);
        assert!(r.internal_date.ends_with(" +0000"), "{}", r.internal_date);
        fs::remove_file(dir.join("cur/2.M1P1.h:2,S")).unwrap();
        assert!(read(dir, "2.M1P1.h", "2.M1P1.h:2,S").unwrap().is_none());
    }

    #[test]
    fn removal_follows_a_rename_and_a_move_and_counts_what_is_gone() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        maildir(root);
        maildir(&root.join(".Archive"));
        put(&root.join("new/1.a"), b"one\n");
        put(&root.join("new/2.a"), b"two\n");
        put(&root.join("new/3.a"), b"three\n");
        put(&root.join("new/4.a"), b"four\n");
        let all = folders(root).unwrap();
        let listed = list(root).unwrap();
        // 1: re-flagged; 2: moved to Archive (link under a new name, unlink); 3: expunged.
        fs::rename(root.join("new/1.a"), root.join("cur/1.a:2,S")).unwrap();
        fs::hard_link(root.join("new/2.a"), root.join(".Archive/cur/9.b:2,S")).unwrap();
        fs::remove_file(root.join("new/2.a")).unwrap();
        fs::remove_file(root.join("new/3.a")).unwrap();
        let removed: Vec<Removal> = listed
            .iter()
            .map(|l| remove(root, l, &all).unwrap())
            .collect();
        assert_eq!(
            removed,
            [
                Removal::Unlinked(root.join("cur")),
                Removal::Unlinked(root.join(".Archive/cur")),
                Removal::Gone,
                Removal::Unlinked(root.join("new")),
            ]
        );
        assert!(list(root).unwrap().is_empty());
        assert!(list(&root.join(".Archive")).unwrap().is_empty());
    }

    #[test]
    fn a_new_file_with_a_reused_inode_is_not_taken_for_a_moved_message() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        maildir(root);
        maildir(&root.join(".Archive"));
        put(&root.join("new/1.a"), b"one\n");
        let all = folders(root).unwrap();
        let mut listed = list(root).unwrap().remove(0);
        fs::remove_file(root.join("new/1.a")).unwrap();
        put(&root.join(".Archive/new/7.c"), b"another message\n");
        // Whatever inode the new file got, a different size or mtime tells it apart.
        listed.file.size += 1;
        assert_eq!(remove(root, &listed, &all).unwrap(), Removal::Gone);
        assert_eq!(list(&root.join(".Archive")).unwrap().len(), 1);
    }

    #[test]
    fn internal_date_is_imap_date_time() {
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(1_764_633_600), "02-Dec-2025 00:00:00 +0000");
    }
}
