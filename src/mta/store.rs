//! Making accepted mail durable before the client hears 250, with group commit.
//!
//! Sessions hand their message to one committer thread. It takes every job waiting, writes
//! all their files, then fsyncs them all at once (one short-lived thread per file, so the
//! journal commits them together, see `sync_files`), renames them into place and fsyncs each
//! directory once for the whole batch: under load, twenty sessions share one round of fsyncs
//! instead of paying twenty (a file and a directory fsync alone cap one
//! writer at ~1,300 msg/s on a typical disk). A job is answered only after everything of its batch
//! it depends on is on disk; a failure fails that job alone, and its files are removed.
//!
//! A big message never sits in memory whole: the session spools it to a [`Spill`] file while
//! it arrives, and the committer copies that file into each target (in the kernel).

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;

use super::maildir;
use super::session::StoreError;
use crate::proto::pop3_server::CrlfLen;

/// Where one copy of a message goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The directory to write in (`tmp/` of a Maildir or of the queue).
    pub tmp_dir: PathBuf,
    /// The final directory and name.
    pub dir: PathBuf,
    pub name: String,
    /// Extra bytes written before the message (the queue's envelope).
    pub prefix: Vec<u8>,
    /// A Maildir that may need creating first.
    pub maildir: Option<PathBuf>,
}

/// A message as the store writes it.
#[derive(Debug)]
pub enum Body {
    /// Held in memory: a small message.
    Memory(Arc<Vec<u8>>),
    /// Mostly in a spill file (a big message, spooled while it arrived, see [`Spill`]):
    /// `head` (our Received header), then the file's `spilled` bytes, then `tail` (what
    /// arrived after the last spill).
    Spilled {
        head: Vec<u8>,
        file: PathBuf,
        spilled: u64,
        /// The CRLF-normalized size of the file's part, counted as it was written.
        spilled_crlf: CrlfLen,
        tail: Vec<u8>,
    },
}

impl Body {
    /// The message's size in octets.
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(m) => m.len() as u64,
            Body::Spilled {
                head,
                spilled,
                tail,
                ..
            } => head.len() as u64 + spilled + tail.len() as u64,
        }
    }

    /// The size of `prefix` and the message with every line ending in CRLF (POP3's count,
    /// Maildir's `,W=`), without reading the spill file.
    pub fn crlf_len(&self, prefix: &[u8]) -> u64 {
        let mut len = CrlfLen::default();
        len.feed(prefix);
        match self {
            Body::Memory(m) => {
                len.feed(m);
                len.finish()
            }
            Body::Spilled {
                head,
                spilled_crlf,
                tail,
                ..
            } => {
                // The head is our Received header, ending in CRLF: the spilled part's count,
                // which began at a line start, continues from there unchanged.
                len.feed(head);
                let mut rest = spilled_crlf.clone();
                rest.feed(tail);
                len.finish() + rest.finish()
            }
        }
    }

    /// Whether the message has no octets (never for a message from DATA).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write_to(&self, out: &mut fs::File) -> io::Result<()> {
        match self {
            Body::Memory(m) => out.write_all(m),
            Body::Spilled {
                head, file, tail, ..
            } => {
                out.write_all(head)?;
                // File to file: copy_file_range(2), no user-space buffer for the big part.
                io::copy(&mut fs::File::open(file)?, out)?;
                out.write_all(tail)
            }
        }
    }
}

/// The part of a big message that arrived so far, in an owner-only file, so that a session
/// holds at most a bounded buffer however big the message (Postfix's cleanup(8) writes the
/// queue file while the message arrives, too). The file is removed on drop: its content is
/// only ever committed as a copy ([`Body::Spilled`]), and a session that ends without 250
/// leaves nothing behind. Files left by a crash are swept by [`sweep_spills`].
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    file: Option<fs::File>,
    len: u64,
    crlf: CrlfLen,
}

/// Spill file names start with this; nothing else in a spill directory does.
const SPILL_PREFIX: &str = "spill.";

impl Spill {
    /// A new, empty spill file in `dir` (made owner-only if missing), named after `id`.
    pub async fn create(dir: PathBuf, id: &str) -> io::Result<Spill> {
        let name = format!("{SPILL_PREFIX}{}.{id}", std::process::id());
        let path = dir.join(name);
        let open = path.clone();
        let file = tokio::task::spawn_blocking(move || {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&open)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Spill {
            path,
            file: Some(file),
            len: 0,
            crlf: CrlfLen::default(),
        })
    }

    /// Appends `bytes` (off the runtime; the buffer moves to the blocking thread, no copy).
    pub async fn append(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("spill file lost after an earlier error"))?;
        let n = bytes.len() as u64;
        let mut crlf = self.crlf.clone();
        let (file, crlf, wrote) = tokio::task::spawn_blocking(move || {
            let wrote = file.write_all(&bytes);
            crlf.feed(&bytes);
            (file, crlf, wrote)
        })
        .await
        .map_err(io::Error::other)?;
        wrote?;
        self.file = Some(file);
        self.len += n;
        self.crlf = crlf;
        Ok(())
    }

    /// The message as the store takes it: `message` is the session's (our Received header,
    /// then what came after the last append), split after `head_len` octets.
    pub fn body(&self, mut message: Vec<u8>, head_len: usize) -> Body {
        let tail = message.split_off(head_len.min(message.len()));
        Body::Spilled {
            head: message,
            file: self.path.clone(),
            spilled: self.len,
            spilled_crlf: self.crlf.clone(),
            tail,
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        let file = self.file.take();
        let unlink = move || {
            drop(file);
            let _ = fs::remove_file(path);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(unlink)),
            Err(_) => unlink(),
        }
    }
}

/// Removes spill files that no running process owns (their pid is in the name): a crash
/// leaves them, and their messages never got a 250.
pub fn sweep_spills(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SPILL_PREFIX))
            .and_then(|n| n.split('.').next())
        else {
            continue;
        };
        let mine = pid == std::process::id().to_string();
        if !mine && !Path::new("/proc").join(pid).exists() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

struct Job {
    message: Body,
    targets: Vec<Target>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The committer's handle; cloning shares the thread.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
}

impl Store {
    /// Starts the committer thread. It ends when every handle is dropped.
    pub fn start() -> io::Result<Store> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("posta-store".into())
            .spawn(move || {
                // Maildirs known to exist: checked once, not with three stats per message.
                let mut known = HashSet::new();
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter().take(511));
                    commit(batch, &mut known);
                }
            })?;
        Ok(Store { tx })
    }

    /// Writes the message to every target durably; Ok only when all copies are on disk.
    pub async fn store(&self, message: Body, targets: Vec<Target>) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Job {
                message,
                targets,
                done,
            })
            .map_err(|_| StoreError::Failed)?;
        rx.await.unwrap_or(Err(StoreError::Failed))
    }
}

struct Written {
    file: fs::File,
    tmp: PathBuf,
    target: Target,
}

/// What a failed write means for the client: 452 for a full disk, else 451.
pub(super) fn classify(e: &io::Error) -> StoreError {
    // ENOSPC and EDQUOT: a full disk is a temporary condition, never a 5xx (Haraka #1263).
    match e.raw_os_error() {
        Some(28) | Some(122) => StoreError::DiskFull,
        _ => StoreError::Failed,
    }
}

fn commit(batch: Vec<Job>, known: &mut HashSet<PathBuf>) {
    // Phase 1: write every file of every job (page cache only).
    let mut staged: Vec<(Job, Result<Vec<Written>, io::Error>)> = batch
        .into_iter()
        .map(|job| {
            let written = write_all(&job, known);
            (job, written)
        })
        .collect();
    // Phase 2: make the data durable (every file of the batch at once), then the names.
    let files: Vec<&fs::File> = staged
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flatten()
        .map(|w| &w.file)
        .collect();
    let mut data_synced = sync_files(&files).into_iter();
    let mut dirs = BTreeSet::new();
    for (_, result) in staged.iter_mut() {
        let synced = match result {
            Ok(files) => {
                // Consume this job's results in full so the next job gets its own.
                let mine: Vec<io::Result<()>> = data_synced.by_ref().take(files.len()).collect();
                mine.into_iter().collect::<io::Result<()>>().and_then(|()| {
                    files
                        .iter()
                        .try_for_each(|w| fs::rename(&w.tmp, w.target.dir.join(&w.target.name)))
                })
            }
            Err(_) => Ok(()),
        };
        if let (Err(e), Ok(files)) = (synced, &*result) {
            cleanup(files);
            *result = Err(e);
        }
        if let Ok(files) = result {
            dirs.extend(files.iter().map(|w| w.target.dir.clone()));
        }
    }
    let failed_dirs: BTreeSet<PathBuf> = dirs
        .into_iter()
        .filter(|d| crate::durable::sync_dir(d).is_err())
        .collect();
    for (job, result) in staged {
        let answer = match result {
            Ok(files) if files.iter().any(|w| failed_dirs.contains(&w.target.dir)) => {
                tracing::error!("fsync of a spool directory failed; message not acknowledged");
                for w in &files {
                    let _ = fs::remove_file(w.target.dir.join(&w.target.name));
                }
                Err(StoreError::Failed)
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "cannot store message");
                Err(classify(&e))
            }
        };
        let _ = job.done.send(answer);
    }
}

/// At most this many fsyncs in flight: a batch holds one file per waiting session.
const SYNC_THREADS: usize = 32;

/// `fdatasync`s every file, concurrently. One thread syncing a batch file after file pays a
/// journal commit per file (2-3 ms each on the bench machine: a ceiling near 300 msg/s however
/// many sessions wait); concurrent fsyncs share commits (ext4's jbd2 joins them), as Postfix's
/// parallel cleanup(8) processes do. Results come back in the order of `files`.
fn sync_files(files: &[&fs::File]) -> Vec<io::Result<()>> {
    if files.len() <= 1 {
        return files.iter().map(|f| f.sync_data()).collect();
    }
    let per_thread = files.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let running: Vec<_> = files
            .chunks(per_thread)
            .map(|chunk| {
                let sync = move || chunk.iter().map(|f| f.sync_data()).collect::<Vec<_>>();
                // No thread to be had: sync this chunk here instead.
                std::thread::Builder::new()
                    .name("posta-fsync".into())
                    .spawn_scoped(scope, sync)
                    .map_err(|_| sync())
            })
            .collect();
        running
            .into_iter()
            .zip(files.chunks(per_thread))
            .flat_map(|(thread, chunk)| match thread {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    chunk
                        .iter()
                        .map(|_| Err(io::Error::other("fsync thread panicked")))
                        .collect()
                }),
                Err(done) => done,
            })
            .collect()
    })
}

fn write_all(job: &Job, known: &mut HashSet<PathBuf>) -> Result<Vec<Written>, io::Error> {
    let mut out: Vec<Written> = Vec::with_capacity(job.targets.len());
    for t in &job.targets {
        let mut res = || {
            if let Some(m) = &t.maildir
                && !known.contains(m)
            {
                maildir::ensure(m)?;
                known.insert(m.clone());
            }
            let tmp = t.tmp_dir.join(&t.name);
            // Mail is its owner's alone (Postfix's virtual(8) writes 0600 too).
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let wrote = file
                .write_all(&t.prefix)
                .and_then(|()| job.message.write_to(&mut file));
            if let Err(e) = wrote {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            Ok(Written {
                file,
                tmp,
                target: t.clone(),
            })
        };
        match res() {
            Ok(w) => out.push(w),
            Err(e) => {
                // A Maildir removed behind our back is made again next time.
                if let Some(m) = &t.maildir {
                    known.remove(m);
                }
                cleanup(&out);
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn cleanup(files: &[Written]) {
    for w in files {
        let _ = fs::remove_file(&w.tmp);
        let _ = fs::remove_file(w.target.dir.join(&w.target.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn maildir_target(root: &std::path::Path, user: &str, n: usize) -> Target {
        let dir = root.join(user);
        Target {
            tmp_dir: dir.join("tmp"),
            dir: dir.join("new"),
            name: format!("m{n}"),
            prefix: Vec::new(),
            maildir: Some(dir),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_jobs_all_land() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::start().unwrap();
        let mut tasks = Vec::new();
        for n in 0..50 {
            let store = store.clone();
            let root = tmp.path().to_path_buf();
            tasks.push(tokio::spawn(async move {
                let t = vec![
                    maildir_target(&root, "ana", n),
                    maildir_target(&root, "bo", n),
                ];
                let body = Body::Memory(Arc::new(format!("msg {n}").into_bytes()));
                store.store(body, t).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        for user in ["ana", "bo"] {
            assert_eq!(
                fs::read_dir(tmp.path().join(user).join("new"))
                    .unwrap()
                    .count(),
                50
            );
            assert_eq!(
                fs::read_dir(tmp.path().join(user).join("tmp"))
                    .unwrap()
                    .count(),
                0
            );
        }
        assert_eq!(
            fs::read(tmp.path().join("ana/new/m7")).unwrap(),
            b"msg 7".to_vec()
        );
    }

    #[tokio::test]
    async fn a_spilled_body_lands_byte_exact_in_every_target_and_its_file_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::start().unwrap();
        let spill_dir = tmp.path().join("spill");
        let mut spill = Spill::create(spill_dir.clone(), "q1").await.unwrap();
        spill.append(b"body 1\r\n".to_vec()).await.unwrap();
        spill.append(b"body 2\r\n".to_vec()).await.unwrap();
        let file = fs::read_dir(&spill_dir).unwrap().next().unwrap().unwrap();
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        let body = spill.body(b"Received: x\r\n\tby y\r\n\ttail\n".to_vec(), 20);
        assert_eq!(body.len(), 20 + 16 + 6);
        assert_eq!(body.crlf_len(b"P: 1\n"), 6 + 20 + 16 + 7);
        let targets = vec![
            maildir_target(tmp.path(), "ana", 1),
            maildir_target(tmp.path(), "bo", 1),
        ];
        assert_eq!(store.store(body, targets).await, Ok(()));
        for user in ["ana", "bo"] {
            assert_eq!(
                fs::read(tmp.path().join(user).join("new/m1")).unwrap(),
                b"Received: x\r\n\tby y\r\nbody 1\r\nbody 2\r\n\ttail\n".to_vec()
            );
        }
        drop(spill);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs::read_dir(&spill_dir).unwrap().count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "spill file not removed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn sweep_removes_spills_of_dead_processes_only() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = format!("{SPILL_PREFIX}{}.a", std::process::id());
        // Beyond the kernel's pid_max (at most 2^22): no such process.
        let dead = format!("{SPILL_PREFIX}99999999.b");
        for name in [&ours, &dead, &"1700.M1P1.host".to_string()] {
            fs::write(tmp.path().join(name), "x").unwrap();
        }
        assert_eq!(sweep_spills(tmp.path()).unwrap(), 1);
        assert!(tmp.path().join(&ours).exists());
        assert!(!tmp.path().join(&dead).exists());
        assert!(tmp.path().join("1700.M1P1.host").exists());
        assert_eq!(sweep_spills(&tmp.path().join("missing")).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_failing_target_fails_its_job_only_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::start().unwrap();
        let good = maildir_target(tmp.path(), "ana", 1);
        let mut bad = maildir_target(tmp.path(), "ana", 2);
        bad.tmp_dir = tmp.path().join("missing");
        bad.maildir = None;
        let r = store
            .store(
                Body::Memory(Arc::new(b"x".to_vec())),
                vec![good.clone(), bad],
            )
            .await;
        assert_eq!(r, Err(StoreError::Failed));
        assert_eq!(fs::read_dir(tmp.path().join("ana/new")).unwrap().count(), 0);
        let mut again = good;
        again.name = "m3".into();
        assert_eq!(
            store
                .store(Body::Memory(Arc::new(b"y".to_vec())), vec![again])
                .await,
            Ok(())
        );
    }
}
