//! Making accepted mail durable before the client hears 250, with group commit.
//!
//! Sessions hand their message to one committer thread. It takes every job waiting, writes
//! all their files, then fsyncs them all at once (one short-lived thread per file, so the
//! journal commits them together, see `sync_files`), renames them into place and fsyncs each
//! directory once for the whole batch: under load, twenty sessions share one round of fsyncs
//! instead of paying twenty (notes/mta-semantics.md §5: file+directory fsync alone caps one
//! writer at ~1,300 msg/s on this disk). A job is answered only after everything of its batch
//! it depends on is on disk; a failure fails that job alone, and its files are removed.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::maildir;
use super::session::StoreError;

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

struct Job {
    message: std::sync::Arc<Vec<u8>>,
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
    pub async fn store(
        &self,
        message: std::sync::Arc<Vec<u8>>,
        targets: Vec<Target>,
    ) -> Result<(), StoreError> {
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

fn classify(e: &io::Error) -> StoreError {
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
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            let wrote = file
                .write_all(&t.prefix)
                .and_then(|()| file.write_all(&job.message));
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
    use std::sync::Arc;

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
                store
                    .store(Arc::new(format!("msg {n}").into_bytes()), t)
                    .await
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
    async fn a_failing_target_fails_its_job_only_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::start().unwrap();
        let good = maildir_target(tmp.path(), "ana", 1);
        let mut bad = maildir_target(tmp.path(), "ana", 2);
        bad.tmp_dir = tmp.path().join("missing");
        bad.maildir = None;
        let r = store
            .store(Arc::new(b"x".to_vec()), vec![good.clone(), bad])
            .await;
        assert_eq!(r, Err(StoreError::Failed));
        assert_eq!(fs::read_dir(tmp.path().join("ana/new")).unwrap().count(), 0);
        let mut again = good;
        again.name = "m3".into();
        assert_eq!(
            store.store(Arc::new(b"y".to_vec()), vec![again]).await,
            Ok(())
        );
    }
}
