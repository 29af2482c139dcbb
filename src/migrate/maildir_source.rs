//! The Maildir source: posta runs on mailserver2 and reads the user's Maildir++ directly, so no
//! password is needed. A message is identified by (folder, 0, unique base name): Dovecot,
//! serving the same Maildir, may move it from `new/` to `cur/` or rename it for new flags, and
//! it stays the same message. It is read one at a time (a small window), found again by its
//! base name, and unlinked only after the journal records it delivered; the directory is then
//! fsync'd so the removal survives a crash as the journal does.
//!
//! Dovecot's own files are never touched: posta only reads and unlinks message files in
//! `new/` and `cur/`, which is what any client's expunge does to a Maildir.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use super::deliver::{self, Job, Tally, Target};
use super::folders::{self, Naming};
use super::journal::{MessageKey, Step};
use super::maildir::{self, Folder, Listed, Removal};
use super::plan::InboxRoute;
use super::report::{FolderReport, Problem};
use super::{Ctx, PassError, imap_source, verify};
use crate::proto::mutf7;

type PassResult = Result<Vec<FolderReport>, (Vec<FolderReport>, PassError)>;

fn io_error(what: &str, e: impl std::fmt::Display) -> PassError {
    PassError::fatal(format!("{what}: {e}"))
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Dovecot's Maildir++ naming: no prefix, `.` between levels.
const MAILDIR_NAMING: Naming = Naming {
    prefix: String::new(),
    delimiter: Some('.'),
};

pub async fn pass(ctx: &Arc<Ctx>) -> PassResult {
    let Some(root) = ctx.account.source.maildir.clone() else {
        return Err((Vec::new(), PassError::fatal("no Maildir for this account")));
    };
    let shown = root.display().to_string();
    let all = match blocking(move || maildir::folders(&root)).await {
        Ok(f) => f,
        // posta mta makes a Maildir at its user's first message: none yet, nothing to move.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err((Vec::new(), io_error(&format!("read {shown}"), e))),
    };
    let dest_naming = match imap_source::dest_naming(ctx).await {
        Ok(n) => n,
        Err(e) => return Err((Vec::new(), e)),
    };
    let all = Arc::new(all);
    let mut reports = Vec::new();
    // Folders whose last confirmation and removal wait until every folder is sent: the index
    // of their report, the folder, and its bookkeeping.
    let mut unfinished = Vec::new();
    for folder in all.iter() {
        // A folder name Dovecot would not have written is shown as stored and still migrated.
        let decoded = mutf7::decode(&folder.raw_name).unwrap_or_else(|_| folder.raw_name.clone());
        if !wanted(ctx, &decoded) {
            continue;
        }
        let target = if folders::is_inbox(&decoded) && ctx.account.inbox == InboxRoute::Deliver {
            Target::Deliver
        } else {
            let components = folders::components(&decoded, &MAILDIR_NAMING);
            let name =
                folders::dest_name(&components, dest_naming.as_ref().unwrap_or(&MAILDIR_NAMING));
            Target::Append {
                raw_name: mutf7::encode(&name),
            }
        };
        match Box::pin(one_folder(ctx, folder, &decoded, &all, target)).await {
            Ok((r, rest)) => {
                if let Some(rest) = rest {
                    unfinished.push((reports.len(), rest));
                }
                reports.push(r);
            }
            Err((r, e)) => {
                reports.push(r);
                return Err((reports, e));
            }
        }
    }
    // Waiting up to --settle for mailserver1 to store what it accepted needs no delivery
    // connection: the delivering slot goes to the next account first.
    ctx.slot.sent_everything().await;
    for (i, (place, mut tally)) in unfinished {
        let report = &mut reports[i];
        tally.confirm(ctx, report).await;
        if let Err(e) = remove(ctx, &place, report, &mut tally).await {
            return Err((reports, e));
        }
    }
    Ok(reports)
}

fn wanted(ctx: &Ctx, name: &str) -> bool {
    ctx.opts.folders.is_empty()
        || ctx
            .opts
            .folders
            .iter()
            .any(|f| f == name || (folders::is_inbox(f) && folders::is_inbox(name)))
}

/// A folder's report, with its place and bookkeeping when the last confirmation and the removal
/// are left for after every folder is sent.
type FolderResult = Result<(FolderReport, Option<(Place, Tally)>), (FolderReport, PassError)>;

async fn one_folder(
    ctx: &Arc<Ctx>,
    folder: &Folder,
    decoded: &str,
    all: &Arc<Vec<Folder>>,
    target: Target,
) -> FolderResult {
    let mut report = FolderReport {
        folder: decoded.to_owned(),
        destination: ctx.describe(&target),
        dest_folder: match &target {
            Target::Deliver => "INBOX".into(),
            Target::Append { raw_name } => raw_name.clone(),
        },
        ..Default::default()
    };
    let dir = folder.dir.clone();
    let listed = match blocking(move || maildir::list(&dir)).await {
        Ok(l) => Arc::new(l),
        Err(e) => {
            let what = format!("list {}", folder.dir.display());
            return Err((report, io_error(&what, e)));
        }
    };
    let key = |i: u32| MessageKey {
        folder: folder.raw_name.clone(),
        validity: 0,
        id: listed
            .get(i as usize)
            .map(|l| l.base.clone())
            .unwrap_or_default(),
    };
    // Files delivered under another name: a client moved them here after posta read them
    // (Dovecot links the same file into the new folder under a new name), so they went
    // already and are only removed.
    let delivered_files: HashMap<String, Step> = ctx
        .journal
        .snapshot()
        .into_iter()
        .filter(|(_, e)| matches!(e.step, Step::Delivered | Step::Confirmed | Step::Removed))
        .filter_map(|(_, e)| e.file.map(|f| (f, e.step)))
        .collect();
    let mut to_send = Vec::new();
    let mut earlier = Vec::new();
    let mut doubt = Vec::new();
    let mut send_bytes = 0u64;
    for (i, l) in listed.iter().enumerate() {
        let i = i as u32;
        if ctx.journal.get(&key(i)).is_none()
            && let Some(&step) = delivered_files.get(&l.file.to_string())
        {
            report.source_messages += 1;
            report.source_bytes += l.size;
            earlier.push((step, key(i), i));
            continue;
        }
        // --unseen: as IMAP's UNSEEN, what a client has not read (no S in the info).
        if ctx.opts.unseen && maildir::flags(&l.file_name).iter().any(|f| f == "\\Seen") {
            continue;
        }
        match ctx.journal.get(&key(i)).map(|e| e.step) {
            Some(step @ (Step::Delivered | Step::Confirmed | Step::Removed)) => {
                report.source_messages += 1;
                report.source_bytes += l.size;
                earlier.push((step, key(i), i));
                continue;
            }
            // The IMAP source leaves \Deleted messages alone; the same Maildir read either way
            // must migrate the same messages.
            _ if maildir::trashed(&l.file_name) => {
                report.skipped.push(Problem {
                    uid: l.base.clone(),
                    message_id: None,
                    reason: "marked \\Deleted on the source; left alone".into(),
                    quarantine: None,
                });
                continue;
            }
            Some(Step::Sending) => doubt.push((key(i), i)),
            _ => to_send.push(i),
        }
        report.source_messages += 1;
        report.source_bytes += l.size;
        send_bytes += l.size;
    }
    report.earlier = earlier.len();
    if let Some(p) = ctx.append_without_login(&target, to_send.len() + doubt.len()) {
        report.skipped.push(p);
        return Ok((report, None));
    }
    if ctx.opts.dry_run {
        report.source_messages = to_send.len() + doubt.len();
        report.source_bytes = send_bytes;
        return Ok((report, None));
    }
    ctx.progress
        .add((to_send.len() + doubt.len()) as u64, send_bytes);
    let mut tally = Tally::new(ctx, &target, &report.dest_folder);
    if !ctx.opts.keep {
        for (step, k, i) in earlier {
            tally.earlier(step, k, i);
        }
    }
    let place = Place {
        dir: folder.dir.clone(),
        listed: listed.clone(),
        all: all.clone(),
    };
    // As the other sources: unknown outcomes of an earlier run are asked about first, again
    // after the rest is sent, and only then sent again (at once if sent over --settle ago).
    let earlier = verify::resolve_earlier(ctx, &report.dest_folder, doubt).await;
    tally.found(ctx, &mut report, earlier.found).await;
    let mut doubt = earlier.doubt;
    to_send.extend(earlier.resend);
    to_send.sort_unstable();
    if let Err(e) = send(
        ctx,
        &place,
        &mut report,
        &mut tally,
        &to_send,
        &key,
        &target,
    )
    .await
    {
        return Err((report, e));
    }
    for round in 0..2 {
        let again = tally.settle(ctx, &mut report, &mut doubt, round == 1).await;
        if again.is_empty() {
            break;
        }
        if let Err(e) = send(ctx, &place, &mut report, &mut tally, &again, &key, &target).await {
            return Err((report, e));
        }
    }
    // A 250 is not a delivery: with a read-back path, what mailserver1 accepted leaves the
    // source only once it shows up there, which is looked for after every folder is sent.
    if tally.confirms() {
        return Ok((report, Some((place, tally))));
    }
    if let Err(e) = remove(ctx, &place, &mut report, &mut tally).await {
        return Err((report, e));
    }
    Ok((report, None))
}

/// One folder's directory and listing, and every folder of the Maildir (where a message a
/// client moved meanwhile may be).
struct Place {
    dir: PathBuf,
    listed: Arc<Vec<Listed>>,
    all: Arc<Vec<Folder>>,
}

/// Messages read per blocking call: a handful in memory at a time, whatever the folder's size.
const READ_WINDOW: usize = 8;

async fn send(
    ctx: &Arc<Ctx>,
    place: &Place,
    report: &mut FolderReport,
    tally: &mut Tally,
    handles: &[u32],
    key: &(dyn Fn(u32) -> MessageKey + Sync),
    target: &Target,
) -> Result<(), PassError> {
    if handles.is_empty() {
        return Ok(());
    }
    let (jobs, mut done, mut workers) = deliver::start(ctx.clone(), ctx.opts.connections);
    let mut result = Ok(());
    'windows: for chunk in handles.chunks(READ_WINDOW) {
        let dir = place.dir.clone();
        let listed = place.listed.clone();
        let chunk_owned = chunk.to_vec();
        let reads = tokio::task::spawn_blocking(move || {
            chunk_owned
                .iter()
                .map(|&i| {
                    let l = &listed[i as usize];
                    maildir::read(&dir, &l.base, &l.file_name)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let reads = match reads {
            Ok(r) => r,
            Err(e) => {
                result = Err(io_error("read messages", e));
                break;
            }
        };
        for (&i, read) in chunk.iter().zip(reads) {
            let read = match read {
                Ok(Some(r)) => r,
                // Expunged by its user before posta read it: nothing to migrate.
                Ok(None) => {
                    report.gone += 1;
                    continue;
                }
                Err(e) => {
                    report.left.push(Problem {
                        uid: key(i).id,
                        message_id: None,
                        reason: e.to_string(),
                        quarantine: None,
                    });
                    continue;
                }
            };
            let job = Job {
                key: key(i),
                handle: i,
                message: read.message,
                flags: read.flags,
                internal_date: Some(read.internal_date),
                target: target.clone(),
                file: Some(place.listed[i as usize].file.to_string()),
            };
            if jobs.send(job).await.is_err() {
                break 'windows;
            }
            while let Ok(d) = done.try_recv() {
                tally.done(ctx, report, d);
            }
        }
    }
    drop(jobs);
    while let Some(d) = done.recv().await {
        tally.done(ctx, report, d);
    }
    while workers.join_next().await.is_some() {}
    result
}

/// Unlinks what was delivered (unless --keep), fsyncs the directories, then records the
/// removals. A message its user expunged meanwhile is counted as gone, not as an error.
async fn remove(
    ctx: &Ctx,
    place: &Place,
    report: &mut FolderReport,
    tally: &mut Tally,
) -> Result<(), PassError> {
    if ctx.opts.keep || tally.removable.is_empty() {
        tally.removable.clear();
        return Ok(());
    }
    let batch = std::mem::take(&mut tally.removable);
    let handles: Vec<u32> = batch.iter().map(|(_, h)| *h).collect();
    let dir = place.dir.clone();
    let listed = place.listed.clone();
    let all = place.all.clone();
    let outcome = blocking(move || {
        let mut dirs = BTreeSet::new();
        let mut gone = 0;
        let mut first_error = None;
        for h in handles {
            match maildir::remove(&dir, &listed[h as usize], &all) {
                Ok(Removal::Unlinked(d)) => {
                    dirs.insert(d);
                }
                Ok(Removal::Gone) => gone += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // The unlinks are durable before the journal says Removed (a crash in between makes
        // the next run find them gone, which is the same outcome).
        for d in &dirs {
            crate::durable::sync_dir(d)?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(gone),
        }
    })
    .await;
    let gone = match outcome {
        Ok(g) => g,
        // What was not unlinked stays delivered in the journal: the next run removes it.
        Err(e) => return Err(io_error(&format!("remove from {}", place.dir.display()), e)),
    };
    report.removed += batch.len() - gone;
    report.gone += gone;
    Tally::record_removed(ctx, batch)
        .await
        .map_err(|e| PassError::fatal(e.to_string()))
}
