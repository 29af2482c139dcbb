//! Maildir++ on disk as Dovecot keeps it: seeding mailboxes and reading deliveries back without
//! a client in between, so tests can set up thousands of messages in seconds and assert on
//! exactly what a server stored.
//!
//! Layout (Dovecot's maildir format): INBOX is the root; IMAP folder `A.B` is the directory
//! `.A.B/` with `cur/ new/ tmp/` and an empty `maildirfolder` file, and subscribed folders are
//! listed one per line in the root's `subscriptions`. A message file is `UNIQUE` in `new/` or
//! `UNIQUE:2,INFO` in `cur/`, where INFO holds its flag letters in ASCII order: the system flags
//! D F P R S T (draft, flagged, passed = forwarded, replied, seen, trashed = deleted), then
//! keywords `a`..`z`, each the index of a line `N name` in that folder's `dovecot-keywords`.
//! Dovecot reports a file's mtime as its INTERNALDATE and gives new files UIDs in file-name order
//! (seconds, then `.M` microseconds), so seeded names increase strictly within a process.

use std::collections::BTreeMap;
use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::os::unix::fs::{chown, fchown};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The maildir letters of the IMAP system flags, in the order the info part lists them.
pub const SYSTEM_FLAGS: &str = "DFPRST";

/// Keyword letters are `a`..`z`: Dovecot's maildir format has room for 26 per folder.
const MAX_KEYWORDS: usize = 26;

/// One message file as found in a Maildir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub path: PathBuf,
    /// System flag letters from the `:2,` info in ASCII order (`"FS"`); empty for `new/`.
    pub flags: String,
    /// Keyword names, read through the folder's `dovecot-keywords`, in letter order.
    pub keywords: Vec<String>,
    /// The whole file: header and body as stored (deliveries store LF line ends).
    pub body: Vec<u8>,
}

/// Writes `message` into `folder` (None: INBOX) of the Maildir at `root`; see
/// `Dovecot::seed`. Files and new directories belong to `owner` (uid, gid).
pub fn seed(
    root: &Path,
    folder: Option<&str>,
    message: &[u8],
    flags: &str,
    keywords: &[&str],
    mtime: SystemTime,
    owner: (u32, u32),
) -> PathBuf {
    assert!(
        flags.chars().all(|c| SYSTEM_FLAGS.contains(c)),
        "maildir flags are letters from {SYSTEM_FLAGS:?}, got {flags:?}"
    );
    let dir = folder_dir(root, folder);
    if let Some(name) = folder
        && !dir.join("cur").is_dir()
    {
        create_folder(root, name, owner);
    }
    let mut info: Vec<char> = flags.chars().collect();
    if !keywords.is_empty() {
        info.extend(keyword_letters(&dir, keywords, owner));
    }
    info.sort_unstable();
    info.dedup();

    let name = unique_name();
    let tmp = dir.join("tmp").join(&name);
    let mut file =
        File::create(&tmp).unwrap_or_else(|e| panic!("failed to create {}: {e}", tmp.display()));
    file.write_all(message)
        .unwrap_or_else(|e| panic!("failed to write {}: {e}", tmp.display()));
    fchown(&file, Some(owner.0), Some(owner.1)).expect("failed to chown seeded message");
    file.set_times(FileTimes::new().set_accessed(mtime).set_modified(mtime))
        .expect("failed to set the seeded message's mtime");
    drop(file);
    // Unflagged mail waits in new/ as a fresh delivery does; anything with flags has been seen
    // by a client, which is what moves a message to cur/.
    let dest = if info.is_empty() {
        dir.join("new").join(name)
    } else {
        let info: String = info.into_iter().collect();
        dir.join("cur").join(format!("{name}:2,{info}"))
    };
    fs::rename(&tmp, &dest).expect("failed to move seeded message out of tmp/");
    dest
}

/// The messages in `folder` (None: INBOX) of the Maildir at `root`, `cur/` and `new/`, in
/// Dovecot's UID-assignment order for new files (timestamp in the name, then the name).
pub fn messages(root: &Path, folder: Option<&str>) -> Vec<StoredMessage> {
    let dir = folder_dir(root, folder);
    let names = read_keywords(&dir);
    let mut found = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let info = file_name.split_once(":2,").map_or("", |(_, info)| info);
            let flags = info.chars().filter(|c| c.is_ascii_uppercase()).collect();
            let keywords = info
                .chars()
                .filter(char::is_ascii_lowercase)
                .map(|c| {
                    let index = usize::from(c as u8 - b'a');
                    names.get(&index).cloned().unwrap_or_else(|| {
                        panic!("keyword letter {c} of {file_name} is not in dovecot-keywords")
                    })
                })
                .collect();
            let path = entry.path();
            let body = fs::read(&path)
                .unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()));
            found.push(StoredMessage {
                path,
                flags,
                keywords,
                body,
            });
        }
    }
    found.sort_by_cached_key(|m| sort_key(&m.path));
    found
}

/// Deletes every message file in `folder` (None: INBOX) of the Maildir at `root`.
pub fn clear(root: &Path, folder: Option<&str>) {
    let dir = folder_dir(root, folder);
    for sub in ["cur", "new", "tmp"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            fs::remove_file(&path)
                .unwrap_or_else(|e| panic!("failed to remove {}: {e}", path.display()));
        }
    }
}

/// How many messages `folder` (None: INBOX) of the Maildir at `root` holds, without reading
/// them.
pub fn count(root: &Path, folder: Option<&str>) -> usize {
    let dir = folder_dir(root, folder);
    ["cur", "new"]
        .iter()
        .map(|sub| fs::read_dir(dir.join(sub)).map_or(0, Iterator::count))
        .sum()
}

/// Maildir++: folder `A.B` lives in `.A.B` below the INBOX root.
fn folder_dir(root: &Path, folder: Option<&str>) -> PathBuf {
    match folder {
        None => root.to_path_buf(),
        Some(name) => {
            assert!(
                !name.is_empty()
                    && !name.eq_ignore_ascii_case("INBOX")
                    && name.is_ascii()
                    && !name.contains(['/', '\n'])
                    && !name.starts_with('.')
                    && !name.ends_with('.')
                    && !name.contains(".."),
                "{name:?} is not a Maildir++ folder name (ASCII, `.` separates levels, not INBOX)"
            );
            root.join(format!(".{name}"))
        }
    }
}

fn create_folder(root: &Path, name: &str, (uid, gid): (u32, u32)) {
    let dir = folder_dir(root, Some(name));
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))
            .unwrap_or_else(|e| panic!("failed to create {}/{sub}: {e}", dir.display()));
    }
    // Dovecot's marker that a directory is a Maildir++ subfolder, not a root.
    fs::write(dir.join("maildirfolder"), "").expect("failed to write maildirfolder");
    for path in ["", "cur", "new", "tmp", "maildirfolder"].map(|p| dir.join(p)) {
        chown(&path, Some(uid), Some(gid)).expect("failed to chown new folder");
    }
    let subscriptions = root.join("subscriptions");
    let mut listed = fs::read_to_string(&subscriptions).unwrap_or_default();
    if !listed.lines().any(|l| l == name) {
        listed.push_str(name);
        listed.push('\n');
        replace_file(&subscriptions, listed.as_bytes(), (uid, gid));
    }
}

/// The letters for `keywords` in the folder at `dir`, adding new names to `dovecot-keywords`.
fn keyword_letters(dir: &Path, keywords: &[&str], owner: (u32, u32)) -> Vec<char> {
    let mut names = read_keywords(dir);
    let before = names.len();
    let letters = keywords
        .iter()
        .map(|keyword| {
            let index = match names.iter().find(|(_, n)| n.as_str() == *keyword) {
                Some((index, _)) => *index,
                None => {
                    let index = (0..MAX_KEYWORDS)
                        .find(|i| !names.contains_key(i))
                        .unwrap_or_else(|| {
                            panic!("more than {MAX_KEYWORDS} keywords in {}", dir.display())
                        });
                    names.insert(index, (*keyword).to_owned());
                    index
                }
            };
            char::from(b'a' + index as u8)
        })
        .collect();
    if names.len() != before {
        let text: String = names.iter().map(|(i, n)| format!("{i} {n}\n")).collect();
        replace_file(&dir.join("dovecot-keywords"), text.as_bytes(), owner);
    }
    letters
}

/// `dovecot-keywords`: lines `INDEX NAME`; a missing file means no keywords yet.
fn read_keywords(dir: &Path) -> BTreeMap<usize, String> {
    let text = fs::read_to_string(dir.join("dovecot-keywords")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (index, name) = line.split_once(' ')?;
            Some((index.parse().ok()?, name.to_owned()))
        })
        .collect()
}

/// Replaces a file atomically (write aside, rename), as Dovecot does for its own control files.
fn replace_file(path: &Path, contents: &[u8], (uid, gid): (u32, u32)) {
    let aside = path.with_extension("posta-tmp");
    fs::write(&aside, contents)
        .unwrap_or_else(|e| panic!("failed to write {}: {e}", aside.display()));
    chown(&aside, Some(uid), Some(gid)).expect("failed to chown control file");
    fs::rename(&aside, path)
        .unwrap_or_else(|e| panic!("failed to replace {}: {e}", path.display()));
}

/// `SECONDS.MMICROS P PID .posta`, strictly increasing within this process even when the clock
/// stands still or steps back, so Dovecot numbers seeded messages in seeding order.
fn unique_name() -> String {
    static LAST: Mutex<u128> = Mutex::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_micros();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    *last = now.max(*last + 1);
    format!(
        "{}.M{}P{}.posta",
        *last / 1_000_000,
        *last % 1_000_000,
        std::process::id()
    )
}

/// Dovecot's order for new files: leading seconds, then `.M` microseconds, then the name.
fn sort_key(path: &Path) -> (u64, u64, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let number = |s: &str| -> u64 {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap_or(0)
    };
    let seconds = number(&name);
    let rest = name.trim_start_matches(|c: char| c.is_ascii_digit());
    let micros = rest.strip_prefix(".M").map_or(0, number);
    (seconds, micros, name)
}
