//! Asking mailserver1 what it has, by the tracking id in each message's trace header (mbsync's
//! X-TUID idea, carried in the one header posta adds).
//!
//! Two uses: a message whose outcome a crash or a lost connection left unknown is looked for
//! before it is sent again; and after a run, what this run delivered is read back and checked
//! by tracking id, Message-ID and body hash: missing, duplicated or altered messages are named.
//! An MTA queues before it stores, so both wait up to `settle` for mail to appear.
//!
//! mailserver1 is asked over IMAP (a login there), or, when posta runs on mailserver1
//! (`--to-maildir`), by reading the user's Maildir on disk: every folder, `new/` and `cur/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Ctx;
use super::journal::MessageKey;
use super::maildir;
use super::message;
use super::plan::{Account, DestImap};
use super::report::{FolderReport, Problem};
use crate::client::imap::{ImapClient, ImapError};

const POLL: Duration = Duration::from_millis(500);

/// Where mailserver1 can be asked what it holds.
#[derive(Debug, Clone, Copy)]
pub enum ReadBack<'a> {
    /// An IMAP login there: searched folder by folder.
    Imap(&'a DestImap),
    /// The user's Maildir on this host (posta runs on mailserver1): every folder at once, so a
    /// message mailserver1's filters filed elsewhere is found too.
    LocalMaildir(&'a Path),
}

impl ReadBack<'_> {
    /// The account's read-back path: its Maildir when given (no login, no folder mapping),
    /// else its IMAP login; None without either.
    pub fn of(account: &Account) -> Option<ReadBack<'_>> {
        match (&account.dest_maildir, &account.dest_imap) {
            (Some(dir), _) => Some(ReadBack::LocalMaildir(dir)),
            (None, Some(imap)) => Some(ReadBack::Imap(imap)),
            (None, None) => None,
        }
    }
}

/// Why mailserver1 could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error("cannot read {path}: {source}")]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
}

async fn connect(ctx: &Ctx) -> Result<Option<ImapClient>, ImapError> {
    let Some(dest) = &ctx.account.dest_imap else {
        return Ok(None);
    };
    dest.open().await.map(Some)
}

/// Whether mailserver1 has these messages: splits `doubt` into what it holds (by tracking id;
/// over IMAP in `folder`, in a local Maildir anywhere) and what it does not show within
/// `settle`. The one question every caller asks, whichever read-back path the account has;
/// without one nothing can be found.
pub async fn resolve(
    ctx: &Ctx,
    folder: &str,
    doubt: Vec<(MessageKey, u32)>,
    settle: Duration,
) -> (Vec<(MessageKey, u32)>, Vec<(MessageKey, u32)>) {
    if doubt.is_empty() {
        return (Vec::new(), Vec::new());
    }
    match search(ctx, folder, doubt.clone(), settle).await {
        Ok(split) => split,
        Err(e) => {
            tracing::warn!(account = %ctx.account.name, "cannot check mailserver1 for unknown outcomes: {e}");
            (Vec::new(), doubt)
        }
    }
}

/// Splits `pending` into what mailserver1 holds and what it does not show within `settle`,
/// over whichever read-back path the account has (none: nothing is found).
async fn search(
    ctx: &Ctx,
    folder: &str,
    pending: Vec<(MessageKey, u32)>,
    settle: Duration,
) -> Result<Split, VerifyError> {
    match ReadBack::of(&ctx.account) {
        None => Ok((Vec::new(), pending)),
        Some(ReadBack::Imap(_)) => search_ids(ctx, folder, pending, settle).await,
        Some(ReadBack::LocalMaildir(dir)) => search_local(ctx, dir, pending, settle).await,
    }
}

/// Looks once for the unknown outcomes an earlier run left, when a run starts. Found ones are
/// delivered; of the rest, those recorded at least `--settle` ago are known not delivered and
/// returned to be sent now (waiting out another `--settle` would tell nothing new); the others
/// are still in doubt. When mailserver1 cannot be asked, all stay in doubt.
pub async fn resolve_earlier(ctx: &Ctx, folder: &str, doubt: Vec<(MessageKey, u32)>) -> Earlier {
    let mut out = Earlier::default();
    if doubt.is_empty() || !ctx.read_back_path() {
        out.doubt = doubt;
        return out;
    }
    match search(ctx, folder, doubt.clone(), Duration::ZERO).await {
        Ok((found, rest)) => {
            out.found = found;
            for (key, handle) in rest {
                let stale = ctx
                    .journal
                    .get(&key)
                    .is_some_and(|e| e.sent_before(ctx.opts.settle));
                if stale {
                    out.resend.push(handle);
                } else {
                    out.doubt.push((key, handle));
                }
            }
        }
        Err(e) => {
            tracing::warn!(account = %ctx.account.name, "cannot check mailserver1 for unknown outcomes: {e}");
            out.doubt = doubt;
        }
    }
    out
}

/// What [`resolve_earlier`] made of an earlier run's unknown outcomes.
#[derive(Default)]
pub struct Earlier {
    pub found: Vec<(MessageKey, u32)>,
    /// Source handles known not delivered: to send again.
    pub resend: Vec<u32>,
    pub doubt: Vec<(MessageKey, u32)>,
}

type Split = (Vec<(MessageKey, u32)>, Vec<(MessageKey, u32)>);

async fn search_local(
    ctx: &Ctx,
    dir: &Path,
    mut pending: Vec<(MessageKey, u32)>,
    settle: Duration,
) -> Result<Split, VerifyError> {
    let deadline = Instant::now() + settle;
    let mut scan = LocalScan::new(dir, &ctx.tag, false);
    let mut found = Vec::new();
    loop {
        scan = scan.rescan().await?;
        let (here, still): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(k, _)| scan.seen.contains_key(&ctx.tracking_id(k)));
        found.extend(here);
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            return Ok((found, pending));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What a local Maildir holds of this account's messages, by tracking id, kept between polls
/// so each file's header is read once.
pub(super) struct LocalScan {
    root: PathBuf,
    tag: String,
    /// Also hash each body of ours (the read-back), not just find it (unknown outcomes).
    hashes: bool,
    /// Files looked at, by folder directory and unique name (a rename for flags is not new).
    looked: std::collections::HashSet<(PathBuf, String)>,
    seen: HashMap<String, Vec<Seen>>,
}

/// How much of a file is read to find the trace header: it is near the top, under the few
/// fields mailserver1's delivery prepends.
const HEADER_PEEK: u64 = 64 * 1024;

impl LocalScan {
    pub(super) fn new(root: &Path, tag: &str, hashes: bool) -> LocalScan {
        LocalScan {
            root: root.to_path_buf(),
            tag: tag.to_owned(),
            hashes,
            looked: Default::default(),
            seen: HashMap::new(),
        }
    }

    /// Looks at every file not looked at before, off the async runtime.
    pub(super) async fn rescan(self) -> Result<LocalScan, VerifyError> {
        tokio::task::spawn_blocking(move || {
            let mut scan = self;
            scan.scan().map(|()| scan)
        })
        .await
        .unwrap_or_else(|e| {
            Err(VerifyError::Local {
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })
        })
    }

    /// What was found so far, by tracking id.
    pub(super) fn seen(&self) -> &HashMap<String, Vec<Seen>> {
        &self.seen
    }

    /// The Maildir looked at.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    fn scan(&mut self) -> Result<(), VerifyError> {
        let local = |path: &Path| {
            let path = path.to_path_buf();
            move |source| VerifyError::Local { path, source }
        };
        let folders = match maildir::folders(&self.root) {
            Ok(f) => f,
            // No Maildir yet: mailserver1 has stored nothing for this user.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(local(&self.root)(e)),
        };
        for folder in folders {
            let listed = maildir::list(&folder.dir).map_err(local(&folder.dir))?;
            for l in listed {
                if !self.looked.insert((folder.dir.clone(), l.base.clone())) {
                    continue;
                }
                // Gone since the listing (expunged, or renamed: the rename shows next time).
                let Some(path) = maildir::find(&folder.dir, &l.base).map_err(local(&folder.dir))?
                else {
                    self.looked.remove(&(folder.dir.clone(), l.base));
                    continue;
                };
                let Ok(head) = peek(&path, HEADER_PEEK) else {
                    self.looked.remove(&(folder.dir.clone(), l.base));
                    continue;
                };
                let Some(id) = tracking_id_in(&head, &self.tag) else {
                    continue;
                };
                let hash = if self.hashes {
                    match std::fs::read(&path) {
                        Ok(whole) => message::body_hash(&whole),
                        Err(_) => {
                            self.looked.remove(&(folder.dir.clone(), l.base));
                            continue;
                        }
                    }
                } else {
                    String::new()
                };
                self.seen.entry(id).or_default().push(Seen { hash });
            }
        }
        Ok(())
    }
}

/// The first `limit` bytes of a file.
fn peek(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut out)?;
    Ok(out)
}

async fn search_ids(
    ctx: &Ctx,
    folder: &str,
    mut pending: Vec<(MessageKey, u32)>,
    settle: Duration,
) -> Result<Split, VerifyError> {
    let Some(mut c) = connect(ctx).await? else {
        return Ok((Vec::new(), pending));
    };
    let deadline = Instant::now() + settle;
    let mut found = Vec::new();
    loop {
        // A fresh EXAMINE each round shows what arrived since.
        if c.select(folder, true).await.is_ok() {
            let mut still = Vec::new();
            for (key, handle) in pending {
                let criteria = format!("HEADER Received \"{}\"", ctx.tracking_id(&key));
                if c.uid_search(&criteria).await?.is_empty() {
                    still.push((key, handle));
                } else {
                    found.push((key, handle));
                }
            }
            pending = still;
        }
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let _ = c.logout().await;
    Ok((found, pending))
}

/// Reports unknown outcomes that could not be settled; they stay on the source.
pub fn leave_unknown(ctx: &Ctx, report: &mut FolderReport, doubt: Vec<(MessageKey, u32)>) {
    let reason = if !ctx.read_back_path() {
        "outcome unknown (the connection was lost after the final dot); give an IMAP login on \
         mailserver1 (--to-imap, --dest-admin), or run on mailserver1 with --to-maildir, so \
         posta can check, or --unknown resend to send it again at the risk of a second copy"
    } else {
        "outcome unknown twice (connection lost after the final dot, and mailserver1 does not \
         show it); rerun to check again"
    };
    for (key, _) in doubt {
        report.left.push(Problem {
            uid: ctx.label(&key),
            message_id: ctx.journal.get(&key).and_then(|e| e.message_id),
            reason: reason.into(),
            quarantine: None,
        });
    }
}

/// What one destination message says about itself: its body hash (empty when only its header
/// was read).
pub(super) struct Seen {
    pub(super) hash: String,
}

/// Reads back every message this run delivered and books the result in each folder's report.
pub async fn read_back(ctx: &Ctx, folders: &mut [FolderReport]) -> Result<(), VerifyError> {
    if folders.iter().all(|f| f.delivered_keys.is_empty()) {
        return Ok(());
    }
    match ReadBack::of(&ctx.account) {
        None => Ok(()),
        Some(ReadBack::Imap(_)) => read_back_imap(ctx, folders).await,
        Some(ReadBack::LocalMaildir(dir)) => read_back_local(ctx, dir, folders).await,
    }
}

/// The tracking ids this folder's delivered messages carry.
fn expected<'a>(ctx: &Ctx, f: &'a FolderReport) -> HashMap<String, &'a (MessageKey, String)> {
    f.delivered_keys
        .iter()
        .map(|k| (ctx.tracking_id(&k.0), k))
        .collect()
}

async fn read_back_imap(ctx: &Ctx, folders: &mut [FolderReport]) -> Result<(), VerifyError> {
    let Some(mut c) = connect(ctx).await? else {
        return Ok(());
    };
    for f in folders.iter_mut().filter(|f| !f.delivered_keys.is_empty()) {
        let expected = expected(ctx, f);
        let mut seen: HashMap<String, Vec<Seen>> = HashMap::new();
        let mut fetched = std::collections::HashSet::new();
        let deadline = Instant::now() + ctx.opts.settle;
        // Messages below the UIDNEXT seen before a search were all looked at by it: the next
        // round searches only what arrived since, not the user's whole mailbox again.
        let mut looked: Option<(u32, u32)> = None;
        loop {
            let sel = c.select(&f.dest_folder, true).await?;
            let (from, renumbered) = search_start(looked, sel.uidvalidity);
            if renumbered {
                // What was seen by UID means nothing now.
                seen.clear();
                fetched.clear();
            }
            looked = sel.uidnext.map(|next| (sel.uidvalidity, next));
            let uids = c
                .uid_search(&format!("UID {from}:* HEADER Received \"{}.\"", ctx.tag))
                .await?;
            let new: Vec<u32> = uids.into_iter().filter(|u| fetched.insert(*u)).collect();
            for chunk in new.chunks(ctx.opts.batch.max(1)) {
                c.start_fetch(chunk).await?;
                while let Some(m) = c.next_message().await? {
                    if let Some(id) = tracking_id_in(&m.body, &ctx.tag) {
                        seen.entry(id).or_default().push(Seen {
                            hash: message::body_hash(&m.body),
                        });
                    }
                }
            }
            let complete = expected.keys().all(|id| seen.contains_key(id));
            if complete || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let place = f.dest_folder.clone();
        book(ctx, f, &seen, &place);
    }
    let _ = c.logout().await;
    Ok(())
}

/// Where a read-back round's search starts, given the (UIDVALIDITY, UIDNEXT) the last round's
/// EXAMINE reported and this round's UIDVALIDITY: from that UIDNEXT, or from 1 on the first
/// round, without a UIDNEXT, or when the folder was renumbered since (the second value).
fn search_start(looked: Option<(u32, u32)>, validity: u32) -> (u32, bool) {
    match looked {
        Some((v, next)) if v == validity => (next, false),
        Some(_) => (1, true),
        None => (1, false),
    }
}

/// The local read-back: the whole Maildir is scanned (each file once), until every message
/// delivered by this run shows or `settle` is over.
async fn read_back_local(
    ctx: &Ctx,
    dir: &Path,
    folders: &mut [FolderReport],
) -> Result<(), VerifyError> {
    let deadline = Instant::now() + ctx.opts.settle;
    let mut scan = LocalScan::new(dir, &ctx.tag, true);
    loop {
        scan = scan.rescan().await?;
        let complete = folders
            .iter()
            .flat_map(|f| f.delivered_keys.iter())
            .all(|(k, _)| scan.seen.contains_key(&ctx.tracking_id(k)));
        if complete || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let place = dir.display().to_string();
    for f in folders.iter_mut().filter(|f| !f.delivered_keys.is_empty()) {
        book(ctx, f, &scan.seen, &place);
    }
    Ok(())
}

/// Books what mailserver1 showed (`seen`, by tracking id) against what the folder delivered
/// and has not booked yet (`delivered_keys`, emptied here).
pub(super) fn book(
    ctx: &Ctx,
    f: &mut FolderReport,
    seen: &HashMap<String, Vec<Seen>>,
    place: &str,
) {
    let expected = expected(ctx, f);
    let mut verified = 0;
    let mut missing = Vec::new();
    let mut duplicated = Vec::new();
    for (id, (key, hash)) in &expected {
        let problem = |reason: String| Problem {
            uid: ctx.label(key),
            message_id: ctx.journal.get(key).and_then(|e| e.message_id),
            reason,
            quarantine: None,
        };
        match seen.get(id).map(Vec::as_slice) {
            None | Some([]) => missing.push(problem(format!(
                "accepted by mailserver1 but not in {place} after {:?}",
                ctx.opts.settle
            ))),
            Some([one]) if hash.is_empty() || &one.hash == hash => verified += 1,
            Some([_]) => missing.push(problem(
                "the copy at mailserver1 differs from the source (body hash)".into(),
            )),
            Some(many) => duplicated.push(problem(format!(
                "{} copies at mailserver1 in {place}",
                many.len()
            ))),
        }
    }
    f.missing.extend(missing);
    f.duplicated.extend(duplicated);
    f.verified = Some(f.verified.unwrap_or(0) + verified);
    f.delivered_keys.clear();
}

/// The tracking id (`tag.<hex>`) in a message's header, if posta's trace header is there.
pub(super) fn tracking_id_in(message: &[u8], tag: &str) -> Option<String> {
    let header = &message[..message::body_offset(message)];
    let needle = format!("id {tag}.");
    let at = header
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let start = at + 3;
    let end = header[start + tag.len() + 1..]
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .map_or(header.len(), |n| start + tag.len() + 1 + n);
    Some(String::from_utf8_lossy(&header[start..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_scan_finds_tracking_ids_in_every_folder_once_per_file() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for d in ["", ".Archive"] {
            for sub in ["tmp", "new", "cur"] {
                std::fs::create_dir_all(root.join(d).join(sub)).unwrap();
            }
        }
        let m = |id: &str| {
            format!(
                "Return-Path: <a@b>\nDelivered-To: a@b\nReceived: from x\n\tby y with local \
                 (posta-0.1.0 account a folder INBOX uid 1.a id {id})\n\t; date\n\nbody\n"
            )
        };
        std::fs::write(root.join("new/1.a"), m("posta.00aa.01")).unwrap();
        std::fs::write(root.join(".Archive/cur/2.a:2,S"), m("posta.00aa.02")).unwrap();
        std::fs::write(root.join("cur/3.a:2,S"), m("posta.00bb.03")).unwrap();
        // A delivery in progress is not there yet.
        std::fs::write(root.join("tmp/4.a"), m("posta.00aa.04")).unwrap();
        let mut scan = LocalScan::new(root, "posta.00aa", true);
        scan.scan().unwrap();
        let mut ids: Vec<&String> = scan.seen.keys().collect();
        ids.sort();
        assert_eq!(ids, ["posta.00aa.01", "posta.00aa.02"]);
        assert_eq!(
            scan.seen["posta.00aa.01"][0].hash,
            message::body_hash(b"x\r\n\r\nbody\r\n")
        );
        // Renamed for flags: the same file, not a second copy.
        std::fs::rename(root.join("new/1.a"), root.join("cur/1.a:2,S")).unwrap();
        std::fs::rename(root.join("tmp/4.a"), root.join("new/4.a")).unwrap();
        scan.scan().unwrap();
        assert_eq!(scan.seen["posta.00aa.01"].len(), 1);
        assert!(scan.seen.contains_key("posta.00aa.04"));
        // No Maildir yet: nothing stored, not an error.
        let mut none = LocalScan::new(&root.join("absent"), "posta.00aa", false);
        none.scan().unwrap();
        assert!(none.seen.is_empty());
    }

    #[test]
    fn a_read_back_round_searches_only_what_arrived_since_the_last() {
        assert_eq!(search_start(None, 7), (1, false));
        assert_eq!(search_start(Some((7, 201)), 7), (201, false));
        // Renumbered: everything again, and what was seen by UID is void.
        assert_eq!(search_start(Some((7, 201)), 8), (1, true));
    }

    #[test]
    fn finds_the_tracking_id_in_the_trace_header() {
        let m = b"Return-Path: <a@b>\r\nReceived: from x\r\n\tby y with IMAP (posta-0.1.0 account a \
folder INBOX uid 1/2 id posta.00aa.0123456789abcdef)\r\n\tfor <a@b> (single-drop); date\r\n\r\nid posta.00aa.ffff\r\n";
        assert_eq!(
            tracking_id_in(m, "posta.00aa").as_deref(),
            Some("posta.00aa.0123456789abcdef")
        );
        assert_eq!(tracking_id_in(m, "posta.00bb"), None);
        assert_eq!(tracking_id_in(b"\r\nid posta.00aa.ff", "posta.00aa"), None);
    }
}
