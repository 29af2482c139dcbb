//! The per-account journal: what happened to each source message, written and fsync'd before
//! the step it enables (mbsync's journal-before-action).
//!
//! One JSON record per line, appended. The last record for a key wins. A crash can tear only
//! the last line, which `open` cuts off; any other unreadable line is corruption and refused,
//! because guessing would mean sending mail twice or deleting it unsent.
//!
//! Writes go through one thread per journal that gathers every record queued while the
//! previous fsync ran and commits them with a single fsync (group commit): concurrent delivery
//! workers wait for durability together instead of one after another.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Which source message: the folder, its UIDVALIDITY and the UID (IMAP), or folder `INBOX`,
/// validity 0 and the UIDL (POP3). Never the `\Seen` flag or headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageKey {
    #[serde(rename = "f")]
    pub folder: String,
    #[serde(rename = "v")]
    pub validity: u32,
    #[serde(rename = "id")]
    pub id: String,
}

/// The steps a message goes through. Each is recorded before what it permits happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// About to send the final dot (or the APPEND): from here the outcome may be unknown.
    Sending,
    /// The destination accepted it. Without a read-back path the source copy may go; with
    /// one, only after it is `Confirmed` (an MTA's 250 is a promise to deliver, not a
    /// delivery: a loop, a quota or an alias to nowhere still bounces it afterwards).
    Delivered,
    /// Delivered and found in mailserver1's mailbox by its tracking id: the source copy may go.
    Confirmed,
    /// The destination answered the final dot with a temporary failure: known not delivered.
    Deferred,
    /// The destination refused it for good; a copy is in the quarantine Maildir.
    Quarantined,
    /// Delivered and gone from the source.
    Removed,
}

/// What the journal knows about one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "s")]
    pub step: Step,
    /// Message-ID and body hash, for the reconciliation.
    #[serde(rename = "mid", default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(rename = "h", default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// Where it went (`smtp`, `lmtp`, `imap:Folder`) or why it was refused.
    #[serde(rename = "d", default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// When a `sending` step was recorded (Unix seconds; 0 for other steps and older
    /// journals): a later run that finds it unknown knows whether `--settle` has passed since.
    #[serde(rename = "t", default, skip_serializing_if = "is_zero")]
    pub at: u64,
    /// The source file (Maildir source: device, inode, size, mtime): a client that moves the
    /// message to another folder gives it a new name there but the same file, and this is how
    /// a later pass knows it was delivered already.
    #[serde(rename = "file", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Entry {
    /// Whether this is a `sending` step recorded at least `settle` ago: if mailserver1 does not
    /// show the message now, it will not (the same conclusion a run reaches by waiting).
    pub fn sent_before(&self, settle: std::time::Duration) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.step == Step::Sending
            && self.at != 0
            && now.saturating_sub(self.at) >= settle.as_secs()
    }
}

#[derive(Serialize)]
struct RecordRef<'a> {
    #[serde(flatten)]
    key: &'a MessageKey,
    #[serde(flatten)]
    entry: &'a Entry,
}

#[derive(Deserialize)]
struct Record {
    #[serde(flatten)]
    key: MessageKey,
    #[serde(flatten)]
    entry: Entry,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open journal {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "journal {path} is in use by another posta migrate (or was left locked); \
         two runs on one account could send mail twice"
    )]
    Locked { path: PathBuf },
    #[error(
        "journal {path} line {line} is corrupt ({reason}); refusing to guess which messages \
         were sent. Inspect it; moving it aside makes the next run resend everything not yet \
         removed from the source"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot write journal {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

type Batch = (Vec<u8>, oneshot::Sender<io::Result<()>>);

/// An open, locked journal.
pub struct Journal {
    path: PathBuf,
    entries: Mutex<HashMap<MessageKey, Entry>>,
    writer: Mutex<Option<mpsc::Sender<Batch>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Journal {
    /// Opens (creating) the journal at `path`, takes an exclusive lock for the life of the
    /// value, cuts a torn last line and loads every entry.
    pub fn open(path: &Path) -> Result<Arc<Journal>, JournalError> {
        let open_err = |source| JournalError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(open_err)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(open_err)?;
        file.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => JournalError::Locked {
                path: path.to_owned(),
            },
            fs::TryLockError::Error(source) => open_err(source),
        })?;
        let (entries, lines) = load(&mut file, path)?;
        if lines > 2 * entries.len() + 1000 {
            file = compact(file, path, &entries)?;
        }
        let (tx, rx) = mpsc::channel::<Batch>();
        let thread_path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("posta-journal".into())
            .spawn(move || commit_loop(file, rx, &thread_path))
            .map_err(open_err)?;
        Ok(Arc::new(Journal {
            path: path.to_owned(),
            entries: Mutex::new(entries),
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last recorded entry for `key`.
    pub fn get(&self, key: &MessageKey) -> Option<Entry> {
        self.lock().get(key).cloned()
    }

    /// The entry for `key`'s next `step`, carrying the Message-ID and body hash recorded with
    /// its earlier steps (the reconciliation needs them on every record).
    pub fn next(&self, key: &MessageKey, step: Step, detail: &str) -> Entry {
        let old = self.get(key);
        Entry {
            step,
            message_id: old.as_ref().and_then(|e| e.message_id.clone()),
            hash: old.as_ref().map(|e| e.hash.clone()).unwrap_or_default(),
            detail: detail.to_owned(),
            at: 0,
            file: old.and_then(|e| e.file),
        }
    }

    /// Every key and its last entry.
    pub fn snapshot(&self) -> Vec<(MessageKey, Entry)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Appends a record and returns once it is on disk (fsync'd). The in-memory view changes
    /// only after that, so nothing acts on a step that a crash could still undo.
    pub async fn record(&self, key: &MessageKey, entry: Entry) -> Result<(), JournalError> {
        self.record_many(vec![(key.clone(), entry)]).await
    }

    /// Records many entries with one wait: they share the writer's fsync.
    pub async fn record_many(&self, items: Vec<(MessageKey, Entry)>) -> Result<(), JournalError> {
        let write_err = |source| JournalError::Write {
            path: self.path.clone(),
            source,
        };
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "journal writer stopped");
        let mut waits = Vec::with_capacity(items.len());
        {
            let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let Some(tx) = writer.as_ref() else {
                return Err(write_err(closed()));
            };
            for (key, entry) in &items {
                let record = RecordRef { key, entry };
                let mut line = serde_json::to_vec(&record).map_err(|e| write_err(e.into()))?;
                line.push(b'\n');
                let (done, wait) = oneshot::channel();
                tx.send((line, done)).map_err(|_| write_err(closed()))?;
                waits.push(wait);
            }
        }
        for wait in waits {
            wait.await
                .unwrap_or_else(|_| Err(closed()))
                .map_err(write_err)?;
        }
        let mut entries = self.lock();
        for (key, entry) in items {
            entries.insert(key, entry);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MessageKey, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Closing the channel ends the writer thread, which drops the file and its lock;
        // joining makes the lock free when this returns.
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Reads every record; returns the last entry per key and the number of lines read.
fn load(file: &mut File, path: &Path) -> Result<(HashMap<MessageKey, Entry>, usize), JournalError> {
    let open_err = |source| JournalError::Open {
        path: path.to_owned(),
        source,
    };
    let mut entries = HashMap::new();
    let mut reader = BufReader::new(&mut *file);
    let mut good_len = 0u64;
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(open_err)?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            // A torn final write: the step it announced never got its fsync, so never happened.
            tracing::warn!(path = %path.display(), line = number, "cutting a torn last journal line");
            break;
        }
        let record: Record =
            serde_json::from_slice(&line[..n - 1]).map_err(|e| JournalError::Corrupt {
                path: path.to_owned(),
                line: number,
                reason: e.to_string(),
            })?;
        entries.insert(record.key, record.entry);
        good_len += n as u64;
    }
    drop(reader);
    if file.metadata().map_err(open_err)?.len() != good_len {
        file.set_len(good_len).map_err(open_err)?;
        file.sync_all().map_err(open_err)?;
    }
    file.seek(SeekFrom::End(0)).map_err(open_err)?;
    Ok((entries, number))
}

/// Rewrites the journal with one line per key (a long-lived state directory would otherwise
/// grow by a line per step forever), through [`crate::durable::replace_locked`]: the new file
/// is locked before it takes the journal's name, so no other run slips in.
fn compact(
    old: File,
    path: &Path,
    entries: &HashMap<MessageKey, Entry>,
) -> Result<File, JournalError> {
    let err = |source| JournalError::Write {
        path: path.to_owned(),
        source,
    };
    let mut keys: Vec<_> = entries.keys().collect();
    keys.sort();
    let mut buf = Vec::new();
    for key in keys {
        let record = RecordRef {
            key,
            entry: &entries[key],
        };
        serde_json::to_writer(&mut buf, &record).map_err(|e| err(e.into()))?;
        buf.push(b'\n');
    }
    // The writer appends at the file position: the end, and no one else writes (locked).
    let file = crate::durable::replace_locked(path, &buf, 0o600).map_err(err)?;
    drop(old);
    Ok(file)
}

fn commit_loop(mut file: File, rx: mpsc::Receiver<Batch>, path: &Path) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut buf = Vec::new();
        for (line, _) in &batch {
            buf.extend_from_slice(line);
        }
        let result = file.write_all(&buf).and_then(|()| file.sync_data());
        if let Err(e) = &result {
            tracing::error!(path = %path.display(), error = %e, "journal write failed");
        }
        for (_, done) in batch {
            let _ = done.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
        if result.is_err() {
            // After a failed write the file's tail is unknown; stop accepting records.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: u32) -> MessageKey {
        MessageKey {
            folder: "INBOX".into(),
            validity: 7,
            id: uid.to_string(),
        }
    }

    fn entry(step: Step) -> Entry {
        Entry {
            step,
            message_id: Some("<a@b>".into()),
            hash: "00".into(),
            detail: String::new(),
            at: 0,
            file: None,
        }
    }

    #[tokio::test]
    async fn records_survive_reopen_and_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/alice.journal");
        {
            let j = Journal::open(&path).unwrap();
            j.record(&key(1), entry(Step::Sending)).await.unwrap();
            j.record(&key(1), entry(Step::Delivered)).await.unwrap();
            j.record(&key(2), entry(Step::Sending)).await.unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get(&key(1)).unwrap().step, Step::Delivered);
        assert_eq!(j.get(&key(2)).unwrap().step, Step::Sending);
        assert_eq!(j.get(&key(3)), None);
        assert_eq!(j.snapshot().len(), 2);
    }

    #[test]
    fn a_sending_step_knows_whether_settle_has_passed() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let settle = std::time::Duration::from_secs(30);
        let sending = |at| Entry {
            at,
            ..entry(Step::Sending)
        };
        assert!(sending(now - 31).sent_before(settle));
        assert!(!sending(now - 5).sent_before(settle));
        assert!(!sending(0).sent_before(settle), "an older journal: unknown");
        let delivered = Entry {
            at: now - 100,
            ..entry(Step::Delivered)
        };
        assert!(!delivered.sent_before(settle));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_and_appending_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        {
            let j = Journal::open(&path).unwrap();
            j.record(&key(1), entry(Step::Delivered)).await.unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"f":"INBOX","v":7,"id":"2","s":"deliv"#)
            .unwrap();
        drop(f);
        {
            let j = Journal::open(&path).unwrap();
            assert_eq!(j.get(&key(2)), None);
            j.record(&key(3), entry(Step::Sending)).await.unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get(&key(1)).unwrap().step, Step::Delivered);
        assert_eq!(j.get(&key(3)).unwrap().step, Step::Sending);
    }

    #[tokio::test]
    async fn corruption_before_the_end_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        fs::write(
            &path,
            "garbage\n{\"f\":\"INBOX\",\"v\":1,\"id\":\"1\",\"s\":\"sending\"}\n",
        )
        .unwrap();
        let err = Journal::open(&path).err().unwrap();
        assert!(
            matches!(err, JournalError::Corrupt { line: 1, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_second_open_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let first = Journal::open(&path).unwrap();
        let err = Journal::open(&path).err().unwrap();
        assert!(matches!(err, JournalError::Locked { .. }), "{err}");
        drop(first);
        assert!(Journal::open(&path).is_ok());
    }

    #[tokio::test]
    async fn a_long_journal_is_compacted_to_one_line_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        {
            let j = Journal::open(&path).unwrap();
            for uid in 0..1200 {
                j.record(&key(uid), entry(Step::Sending)).await.unwrap();
                j.record(&key(uid), entry(Step::Delivered)).await.unwrap();
                j.record(&key(uid), entry(Step::Removed)).await.unwrap();
            }
        }
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 3600);
        {
            let j = Journal::open(&path).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1200);
            j.record(&key(9999), entry(Step::Sending)).await.unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get(&key(7)).unwrap().step, Step::Removed);
        assert_eq!(j.get(&key(9999)).unwrap().step, Step::Sending);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1201);
    }

    #[tokio::test]
    async fn concurrent_records_share_fsyncs_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let j = Journal::open(&path).unwrap();
        let mut tasks = Vec::new();
        for uid in 0..200 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                j.record(&key(uid), entry(Step::Delivered)).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        drop(j);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 200);
    }
}
