//! `posta mirror`: a warm copy of every mailbox of mailserver1 on mailserver2, one way and
//! incremental over IMAP with each server's admin identity, so that after a takeover users
//! find their folders and old mail there.
//!
//! One pass per account: LIST both sides; folders missing on mailserver2 are created, folders
//! renamed on mailserver1 (the same UIDVALIDITY under a new name: a RENAME keeps it, RFC 3501
//! §6.3.5) are renamed, folders gone from mailserver1 are deleted; then per folder new messages
//! are copied byte for byte with their flags and INTERNALDATE (APPEND; APPENDUID names the
//! copy, RFC 4315), flag and keyword changes are applied (UID STORE FLAGS.SILENT) and what
//! mailserver1 expunged is expunged on mailserver2.
//!
//! What changed is asked the cheapest way the server offers: QRESYNC (RFC 7162 §3.2: one
//! EXAMINE per unchanged folder, VANISHED and changed flags in its answer), else CONDSTORE
//! (`CHANGEDSINCE` and a UID SEARCH for expunges), else a full `UID FETCH 1:* (UID FLAGS)`.
//!
//! The per-account state ([`state`]) maps every mailserver1 message to its copy; a message on
//! mailserver2 that is not in it is never touched. See [`state`] for why a kill at any moment
//! leads to no second copy, and how UIDVALIDITY changes are handled by content.
//!
//! - `state`  the durable map and the matching by content identity.
//! - `back`   the return after a failback: what users did on mailserver2, carried back.
//! - `hold`   the mirror held from a takeover until the return.
//! - `idle`   `--idle`: an IDLE session per account wakes its pass when mail arrives.
//! - `report` counters, table and JSON.

pub mod back;
pub mod hold;
pub mod idle;
pub mod report;
pub mod state;
pub mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use self::report::{AccountReport, RunReport};
use self::state::{
    AccountState, Copy, FolderState, Identity, Pending, Settling, StateError, StateFile,
};
use crate::client::imap::{FetchedMessage, FlagsOf, ImapClient, ImapError, MailboxInfo};
use crate::client::{Endpoint, Login};
use crate::migrate::folders::{self, Naming};
use crate::proto::mutf7;

/// The most message bytes one MULTIAPPEND carries (and the mirror holds in memory at once).
const MULTI_BYTES: usize = 8 << 20;

/// The most messages [`Pass::batch_size`] puts in one batch: what a resume after a kill reads
/// back from both servers to find the batch's copies.
const MAX_BATCH: usize = 2_000;

/// Where the state files live unless the site file or --state-dir says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/posta/mirror";

/// One server of an account: where, and who logs in (the admin identity as the user).
#[derive(Debug, Clone)]
pub struct Side {
    pub endpoint: Endpoint,
    pub login: Login,
}

/// An account mirrored from `source` (mailserver1) to `dest` (mailserver2).
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub source: Side,
    pub dest: Side,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Where the per-account state files live.
    pub state_dir: PathBuf,
    /// Accounts mirrored at once: each holds one connection to each server, so this is also
    /// the cap on connections per server.
    pub parallel: usize,
    /// Messages per APPEND batch (one state write before it) while the state is small; more
    /// as it grows (see [`Pass::batch_size`]).
    pub batch: usize,
    /// The longest any one command may take (the sessions' timeout): how long after a batch
    /// was recorded its copies may still appear on mailserver2, the sender killed.
    pub settle: Duration,
}

/// Why an account's pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("mailserver1: {0}")]
    Source(ImapError),
    #[error("mailserver2: {0}")]
    Dest(ImapError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("mailserver2: {0}")]
    Refused(String),
    #[error(transparent)]
    Adopt(#[from] crate::durable::AdoptError),
}

type Result<T> = std::result::Result<T, MirrorError>;

/// The state file of account `name` in `dir`.
pub fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(crate::durable::state_file_name(name, STATE_EXT))
}

const STATE_EXT: &str = ".json";

/// Gives the state files an earlier posta named for the accounts `names` their present names
/// (see [`crate::durable::adopt_legacy_state_files`]); run before any of them is read.
pub fn adopt_state_files(dir: &Path, names: &[&str]) -> Result<()> {
    Ok(crate::durable::adopt_legacy_state_files(
        dir, names, STATE_EXT,
    )?)
}

/// Records the accounts `names` in `dir` as mirrored now without a pass: their IDLE sessions
/// vouch that nothing changed on mailserver1 since their last pass ([`idle::Vouched`]). For
/// the lag, that counts as a complete pass.
pub fn vouch(dir: &Path, names: &[&str]) -> std::result::Result<(), state::StateError> {
    let now = crate::clock::unix_now();
    for name in names {
        AccountState::record_pass(&state_path(dir, name), now)?;
    }
    Ok(())
}

/// One pass over every account, `opts.parallel` at a time.
pub async fn run(accounts: Vec<Account>, opts: &Options) -> RunReport {
    let started = Instant::now();
    let reports = each_account(
        accounts,
        opts,
        |account, opts| async move { mirror_account(account, &opts).await },
        |account, e| AccountReport {
            account,
            error: Some(e),
            ..AccountReport::default()
        },
    )
    .await;
    RunReport::new(reports, started.elapsed())
}

/// `job` for every account, `opts.parallel` at a time (each holds one session to each
/// server, so this is also the cap per server), the results in the accounts' order; a job
/// whose task failed (a panic), or every account when a state file's owner is in doubt, gives
/// `failed` of the account's name and what went wrong.
async fn each_account<R, F, Fut>(
    accounts: Vec<Account>,
    opts: &Options,
    job: F,
    failed: fn(String, String) -> R,
) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(Account, Options) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Err(e) = adopt_state_files(&opts.state_dir, &refs) {
        // No account's state is read while one file's owner is in doubt.
        let e = e.to_string();
        return names.into_iter().map(|n| failed(n, e.clone())).collect();
    }
    let slots = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let mut tasks = Vec::new();
    for account in accounts {
        let slots = slots.clone();
        let work = job(account, opts.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            work.await
        }));
    }
    let mut out = Vec::new();
    for (t, name) in tasks.into_iter().zip(names) {
        out.push(
            t.await
                .unwrap_or_else(|e| failed(name, format!("internal error: {e}"))),
        );
    }
    out
}

async fn mirror_account(account: Account, opts: &Options) -> AccountReport {
    let started = Instant::now();
    let mut report = AccountReport {
        account: account.name.clone(),
        ..AccountReport::default()
    };
    let path = state_path(&opts.state_dir, &account.name);
    let result = match StateFile::open(&path) {
        Ok((file, state)) => {
            let mut pass = Pass {
                account: &account,
                opts,
                file,
                state,
                loaded: Instant::now(),
                report: &mut report,
            };
            pass.run().await
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        report.error = Some(e.to_string());
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// One account's pass.
struct Pass<'a> {
    account: &'a Account,
    opts: &'a Options,
    file: StateFile,
    state: AccountState,
    /// When the state was read: whatever wrote it last (a killed or failed pass) had stopped
    /// by then.
    loaded: Instant,
    report: &'a mut AccountReport,
}

/// A server's folders by decoded name, and how it names them.
struct Listing {
    selectable: Vec<MailboxInfo>,
    naming: Naming,
}

impl Listing {
    async fn of(client: &mut ImapClient) -> std::result::Result<Listing, ImapError> {
        let all = client.list().await?;
        let delimiter = all.iter().find_map(|m| m.delimiter);
        Ok(Listing {
            selectable: all.into_iter().filter(|m| !m.noselect).collect(),
            naming: Naming {
                prefix: String::new(),
                delimiter,
            },
        })
    }

    fn has_raw(&self, raw: &str) -> bool {
        self.selectable.iter().any(|m| m.raw_name == raw)
    }
}

async fn connect(side: &Side) -> std::result::Result<ImapClient, ImapError> {
    let mut client = ImapClient::connect(&side.endpoint).await?;
    client.login(&side.login).await?;
    Ok(client)
}

/// The name on mailserver2 of mailserver1's folder `m`.
fn dest_name(m: &MailboxInfo, source: &Naming, dest: &Naming) -> String {
    mutf7::encode(&folders::dest_name(
        &folders::components(&m.name, source),
        dest,
    ))
}

/// mailserver2's session and its folders, opened when a folder first needs them: a pass that
/// finds every folder of mailserver1 unchanged since the state never logs in there (each
/// session costs the server a login process, a TLS handshake and an IMAP process).
struct Dest<'a> {
    side: &'a Side,
    session: Option<(ImapClient, Listing)>,
}

impl Dest<'_> {
    async fn open(&mut self) -> Result<(&mut ImapClient, &mut Listing)> {
        let (client, listing) = match &mut self.session {
            Some(session) => session,
            slot @ None => {
                let mut client = connect(self.side).await.map_err(MirrorError::Dest)?;
                if !client.has_capability("UIDPLUS") {
                    // APPENDUID names each copy; UID EXPUNGE removes only the mirror's messages.
                    return Err(MirrorError::Refused(
                        "no UIDPLUS (RFC 4315): the mirror needs APPENDUID and UID EXPUNGE".into(),
                    ));
                }
                let listing = Listing::of(&mut client).await.map_err(MirrorError::Dest)?;
                slot.insert((client, listing))
            }
        };
        Ok((client, listing))
    }

    fn listing(&self) -> Option<&Listing> {
        self.session.as_ref().map(|(_, listing)| listing)
    }
}

impl Pass<'_> {
    fn save(&mut self) -> Result<()> {
        Ok(self.file.save(&self.state)?)
    }

    fn folder_mut(&mut self, name: &str) -> Result<&mut FolderState> {
        self.state
            .folders
            .get_mut(name)
            .ok_or_else(|| MirrorError::Refused(format!("no state for folder {name:?}")))
    }

    /// The pass; when it fails, what it learned is saved all the same. The state in memory
    /// is always true to save: a copy enters the map only once APPENDUID named it, and the
    /// batch in flight stays recorded as pending.
    async fn run(&mut self) -> Result<()> {
        let result = self.pass().await;
        if result.is_err()
            && let Err(e) = self.save()
        {
            tracing::warn!(account = %self.account.name, "after a failed pass: {e}");
        }
        result
    }

    async fn pass(&mut self) -> Result<()> {
        let mut src = connect(&self.account.source)
            .await
            .map_err(MirrorError::Source)?;
        src.enable_qresync().await.map_err(MirrorError::Source)?;
        let source = Listing::of(&mut src).await.map_err(MirrorError::Source)?;
        let mut dest = Dest {
            side: &self.account.dest,
            session: None,
        };
        self.folder_changes(&mut src, &mut dest, &source).await?;
        // Folders unchanged on mailserver1 that were passed before mailserver2 was listed.
        let mut unlooked = Vec::new();
        for m in &source.selectable {
            self.report.counts.folders += 1;
            if !self.folder(&mut src, &mut dest, &source, m).await? {
                unlooked.push(m);
            }
        }
        for m in unlooked {
            // mailserver2 was listed for another folder after all: one whose mirror went
            // away there (or moved) is made again.
            let gone = dest.listing().is_some_and(|l| {
                let target = dest_name(m, &source.naming, &l.naming);
                self.state
                    .folders
                    .get(&m.name)
                    .is_none_or(|f| f.dest != target || !l.has_raw(&target))
            });
            if gone {
                self.folder(&mut src, &mut dest, &source, m).await?;
            } else {
                self.report.counts.folders_unchanged += 1;
            }
        }
        let now = crate::clock::unix_now();
        self.state.last_complete_pass = Some(now);
        // Only work on mailserver2 changes the state (a folder renamed or deleted, or one not
        // unchanged on mailserver1 opens its session first); a pass without it records only
        // its end.
        if dest.session.is_some() || !self.file.exists() {
            self.save()?;
        } else {
            AccountState::record_pass(self.file.path(), now)?;
        }
        let _ = src.logout().await;
        if let Some((dst, _)) = dest.session {
            let _ = dst.logout().await;
        }
        Ok(())
    }

    /// Renames and deletions: folders of the state that mailserver1 no longer lists.
    async fn folder_changes(
        &mut self,
        src: &mut ImapClient,
        dest: &mut Dest<'_>,
        source: &Listing,
    ) -> Result<()> {
        let listed: Vec<&str> = source.selectable.iter().map(|m| m.name.as_str()).collect();
        let gone: Vec<String> = self
            .state
            .folders
            .keys()
            .filter(|k| !listed.contains(&k.as_str()))
            .cloned()
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let (dst, dest) = dest.open().await?;
        // A renamed folder keeps its UIDVALIDITY: look at the new names for one that was gone.
        let mut renames = Vec::new();
        for m in source
            .selectable
            .iter()
            .filter(|m| !self.state.folders.contains_key(&m.name))
        {
            let sel = src
                .select(&m.raw_name, true)
                .await
                .map_err(MirrorError::Source)?;
            let was: Vec<&String> = gone
                .iter()
                .filter(|g| self.state.folders[*g].source_uidvalidity == sel.uidvalidity)
                .collect();
            if let [old] = was[..] {
                renames.push((old.clone(), m.name.clone()));
            }
        }
        // Parents first: renaming one renames its children on mailserver2 too.
        renames.sort();
        let mut renamed = Vec::new();
        for (old, new) in renames {
            let Some(fs) = self.state.folders.get(&old) else {
                continue;
            };
            let Some(m) = source.selectable.iter().find(|m| m.name == new) else {
                continue;
            };
            let target = dest_name(m, &source.naming, &dest.naming);
            match (dest.has_raw(&fs.dest), dest.has_raw(&target)) {
                (true, false) => {
                    dst.rename(&fs.dest, &target)
                        .await
                        .map_err(MirrorError::Dest)?;
                    *dest = Listing::of(dst).await.map_err(MirrorError::Dest)?;
                }
                // Its parent's RENAME moved it already.
                (false, true) => {}
                // The new name is taken on mailserver2 (by a folder that is not the mirror's),
                // or the old one is gone: the old folder is deleted and the new one mirrored
                // afresh instead.
                _ => continue,
            }
            let Some(mut fs) = self.state.folders.remove(&old) else {
                continue;
            };
            tracing::info!(account = %self.account.name, "folder {old:?} renamed to {new:?}");
            fs.dest = target;
            self.state.folders.insert(new, fs);
            self.save()?;
            self.report.counts.folders_renamed += 1;
            renamed.push(old);
        }
        // Children first: a parent goes once it is empty.
        let mut deleted: Vec<&String> = gone.iter().filter(|g| !renamed.contains(g)).collect();
        deleted.sort_by(|a, b| b.cmp(a));
        for name in deleted {
            let Some(fs) = self.state.folders.get(name).cloned() else {
                continue;
            };
            if dest.has_raw(&fs.dest) {
                self.delete_folder(dst, name, &fs).await?;
            }
            self.state.folders.remove(name);
            self.save()?;
            self.report.counts.folders_deleted += 1;
        }
        Ok(())
    }

    /// Deletes the mirror of a folder mailserver1 no longer has: the whole folder when it holds
    /// only mirror copies, else only the copies.
    async fn delete_folder(
        &mut self,
        dst: &mut ImapClient,
        name: &str,
        fs: &FolderState,
    ) -> Result<()> {
        let sel = dst
            .select(&fs.dest, false)
            .await
            .map_err(MirrorError::Dest)?;
        if sel.uidvalidity != fs.dest_uidvalidity {
            // Not the folder the mirror made: someone else's now.
            self.report.folders_kept.push(name.to_owned());
            return Ok(());
        }
        let present = dst.uid_search("ALL").await.map_err(MirrorError::Dest)?;
        let ours = fs.dest_uids();
        if present.iter().all(|u| ours.contains(u)) {
            // Dovecot ends a session whose selected mailbox is deleted (BYE); CLOSE would
            // expunge messages others marked \Deleted. Leave it for INBOX, read-only.
            dst.select("INBOX", true).await.map_err(MirrorError::Dest)?;
            dst.delete(&fs.dest).await.map_err(MirrorError::Dest)?;
            tracing::info!(account = %self.account.name, "folder {name:?} deleted");
        } else {
            let mine: Vec<u32> = present.into_iter().filter(|u| ours.contains(u)).collect();
            expunge(dst, &mine).await.map_err(MirrorError::Dest)?;
            self.report.counts.expunged += mine.len();
            self.report.folders_kept.push(name.to_owned());
        }
        Ok(())
    }

    /// Brings one folder of mailserver2 up to mailserver1's. False when the folder is
    /// unchanged on mailserver1 and mailserver2 was not looked at (its session not open yet).
    async fn folder(
        &mut self,
        src: &mut ImapClient,
        dest: &mut Dest<'_>,
        source: &Listing,
        m: &MailboxInfo,
    ) -> Result<bool> {
        let known = self
            .state
            .folders
            .get(&m.name)
            .and_then(|f| f.highest_modseq.map(|n| (f.source_uidvalidity, n)));
        let r = src
            .select_since(&m.raw_name, true, known)
            .await
            .map_err(MirrorError::Source)?;
        let validity = r.selected.uidvalidity;
        // Until mailserver2 is listed, the state's word that the mirror is there is taken.
        let existing = self.state.folders.get(&m.name).filter(|f| {
            dest.listing().is_none_or(|l| {
                let target = dest_name(m, &source.naming, &l.naming);
                f.dest == target && l.has_raw(&target)
            })
        });
        if let Some(fs) = existing
            && known.is_some()
            && fs.source_uidvalidity == validity
            && fs.pending.is_none()
            && fs.settling.is_empty()
            && r.vanished.is_empty()
            && r.changed.is_empty()
            && r.selected.highest_modseq == fs.highest_modseq
            // Without QRESYNC an expunge need not show in HIGHESTMODSEQ: count too.
            && (src.qresync_enabled() || r.selected.exists as usize == fs.messages.len())
        {
            if dest.listing().is_none() {
                return Ok(false);
            }
            self.report.counts.folders_unchanged += 1;
            return Ok(true);
        }
        let (dst, dest) = dest.open().await?;
        let target = &dest_name(m, &source.naming, &dest.naming);
        let fresh = !self
            .state
            .folders
            .get(&m.name)
            .is_some_and(|f| f.dest == *target && dest.has_raw(target));
        if fresh {
            // New to the mirror, or its mailserver2 folder went away: start from what is there.
            let had = dest.has_raw(target);
            if !had {
                dst.create(target).await.map_err(MirrorError::Dest)?;
                *dest = Listing::of(dst).await.map_err(MirrorError::Dest)?;
                self.report.counts.folders_created += 1;
            }
            let sel = dst.select(target, false).await.map_err(MirrorError::Dest)?;
            let mut fs = FolderState::new(target.to_owned(), validity, sel.uidvalidity);
            if had && sel.exists > 0 {
                // A folder with mail and no state (the state was lost): copies made before
                // are found by content, never doubled.
                self.rebuild(src, dst, &mut fs, true).await?;
            }
            self.state.folders.insert(m.name.clone(), fs);
            self.save()?;
        }
        let mut fs = self.folder_mut(&m.name)?.clone();
        let dsel = dst
            .select(&fs.dest, false)
            .await
            .map_err(MirrorError::Dest)?;
        let mut full = fresh;
        if fs.source_uidvalidity != validity || fs.dest_uidvalidity != dsel.uidvalidity {
            tracing::warn!(
                account = %self.account.name,
                "folder {:?}: UIDVALIDITY changed; matching the copies by content", m.name
            );
            fs.source_uidvalidity = validity;
            fs.dest_uidvalidity = dsel.uidvalidity;
            self.rebuild(src, dst, &mut fs, false).await?;
            self.report.counts.rebuilt += 1;
            full = true;
        }
        if let Some(p) = fs.pending.clone() {
            self.adopt(src, dst, &mut fs, &p).await?;
            full = true;
        }
        if !fs.settling.is_empty() {
            self.late_copies(dst, &mut fs).await?;
        }
        // What changed on mailserver1, and what it expunged.
        let (changed, gone): (Vec<FlagsOf>, Vec<u32>) = match known {
            Some(_) if !full && src.qresync_enabled() => {
                let gone = fs
                    .messages
                    .keys()
                    .copied()
                    .filter(|u| r.vanished.contains(*u))
                    .collect();
                (r.changed, gone)
            }
            Some((_, since)) if !full => {
                let changed = src
                    .fetch_flags(Some(since))
                    .await
                    .map_err(MirrorError::Source)?;
                let all = src.uid_search("ALL").await.map_err(MirrorError::Source)?;
                (changed, missing(&fs, &all))
            }
            _ => {
                let all = src.fetch_flags(None).await.map_err(MirrorError::Source)?;
                let uids: Vec<u32> = all.iter().map(|f| f.uid).collect();
                let gone = missing(&fs, &uids);
                (all, gone)
            }
        };
        // Expunges.
        let doomed: Vec<u32> = gone
            .iter()
            .filter_map(|u| fs.messages.get(u).map(|c| c.dest_uid))
            .collect();
        expunge(dst, &doomed).await.map_err(MirrorError::Dest)?;
        for u in &gone {
            fs.messages.remove(u);
        }
        self.report.counts.expunged += doomed.len();
        // Flag changes, one STORE per distinct flag set.
        let mut by_flags: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
        for f in &changed {
            if let Some(c) = fs.messages.get_mut(&f.uid)
                && !same_flags(&c.flags, &f.flags)
            {
                by_flags
                    .entry(f.flags.clone())
                    .or_default()
                    .push(c.dest_uid);
                c.flags.clone_from(&f.flags);
            }
        }
        for (flags, uids) in &by_flags {
            dst.store_flags(uids, flags)
                .await
                .map_err(MirrorError::Dest)?;
            self.report.counts.flags_changed += uids.len();
        }
        // Not saved on its own: the next save (a batch's pending record, or the pass's end)
        // carries it, and a pass killed before that repeats these idempotent STOREs and
        // EXPUNGEs from the old HIGHESTMODSEQ.
        self.state.folders.insert(m.name.clone(), fs.clone());
        // New messages.
        let new: Vec<u32> = changed
            .iter()
            .map(|f| f.uid)
            .filter(|u| !fs.messages.contains_key(u))
            .collect();
        let mut uidnext = dsel.uidnext.ok_or_else(|| {
            MirrorError::Refused(format!("SELECT {:?} reported no UIDNEXT", fs.dest))
        })?;
        let mut rest = &new[..];
        while !rest.is_empty() {
            let (batch, tail) = rest.split_at(self.batch_size().min(rest.len()));
            uidnext = self.copy_batch(src, dst, &m.name, batch, uidnext).await?;
            rest = tail;
        }
        // Saved with the pass's end (or, if the pass fails, at once): killed before that, the
        // next pass adopts the last batch by content and repeats the STOREs from the old
        // HIGHESTMODSEQ, so no folder costs an fsync of its own.
        let fs = self.folder_mut(&m.name)?;
        fs.pending = None;
        fs.highest_modseq = r.selected.highest_modseq;
        Ok(true)
    }

    /// Messages in the next batch: [`Options::batch`], or a tenth of the copies the state already
    /// holds when that is more (at most [`MAX_BATCH`]). Every batch's record costs an fsync and
    /// a comparison with the whole map ([`StateFile::save`]), so with a fixed size the first
    /// pass of a mailbox of n messages would compare O(n²) copies; growing with the state, a
    /// few times n.
    fn batch_size(&self) -> usize {
        let held: usize = self.state.folders.values().map(|f| f.messages.len()).sum();
        self.opts.batch.max(1).max((held / 10).min(MAX_BATCH))
    }

    /// Copies one batch: the pending record first, then the APPENDs, then the map in memory.
    /// The next save (the next batch's pending record, or the pass's end) makes the copies
    /// durable; killed before it, the next pass adopts them by content.
    async fn copy_batch(
        &mut self,
        src: &mut ImapClient,
        dst: &mut ImapClient,
        name: &str,
        batch: &[u32],
        uidnext: u32,
    ) -> Result<u32> {
        let fs = self.folder_mut(name)?;
        fs.pending = Some(Pending {
            dest_uidnext: uidnext,
            source_uids: batch.to_vec(),
            written: crate::clock::unix_now(),
        });
        let (target, validity) = (fs.dest.clone(), fs.dest_uidvalidity);
        self.save()?;
        src.start_fetch(batch).await.map_err(MirrorError::Source)?;
        // With MULTIAPPEND (RFC 3502) messages go up to MULTI_BYTES at a time: one command,
        // one transaction on mailserver2, instead of one round trip and one fsync each.
        let multi = dst.has_capability("MULTIAPPEND");
        let mut next = uidnext;
        let mut held: Vec<FetchedMessage> = Vec::new();
        let mut held_bytes = 0;
        while let Some(msg) = src.next_message().await.map_err(MirrorError::Source)? {
            if !held.is_empty() && (!multi || held_bytes + msg.body.len() > MULTI_BYTES) {
                next = self
                    .append(dst, name, &target, validity, &mut held, next)
                    .await?;
                held_bytes = 0;
            }
            held_bytes += msg.body.len();
            held.push(msg);
        }
        self.append(dst, name, &target, validity, &mut held, next)
            .await
    }

    /// APPENDs `held` (one message, or several in one MULTIAPPEND) and maps the copies.
    async fn append(
        &mut self,
        dst: &mut ImapClient,
        name: &str,
        target: &str,
        validity: u32,
        held: &mut Vec<FetchedMessage>,
        mut next: u32,
    ) -> Result<u32> {
        let appended = match &held[..] {
            [] => return Ok(next),
            [one] => dst
                .append(target, &one.flags, Some(&one.internal_date), &one.body)
                .await
                .map(|r| r.map(|(v, uid)| (v, vec![uid]))),
            many => {
                let items: Vec<(&[String], &str, &[u8])> = many
                    .iter()
                    .map(|m| (&m.flags[..], m.internal_date.as_str(), &m.body[..]))
                    .collect();
                dst.append_many(target, &items).await
            }
        }
        .map_err(MirrorError::Dest)?;
        let Some((v, uids)) = appended else {
            return Err(MirrorError::Refused(format!(
                "APPEND to {target:?} gave no APPENDUID"
            )));
        };
        if v != validity {
            return Err(MirrorError::Refused(format!(
                "{target:?} changed UIDVALIDITY during the pass"
            )));
        }
        for (msg, uid) in held.drain(..).zip(uids) {
            next = next.max(uid.saturating_add(1));
            self.report.counts.copied += 1;
            self.report.counts.copied_bytes += msg.body.len() as u64;
            self.folder_mut(name)?.messages.insert(
                msg.uid,
                Copy {
                    dest_uid: uid,
                    identity: Identity::of(&msg.body),
                    flags: msg.flags,
                },
            );
        }
        Ok(next)
    }

    /// A batch was being copied when the last pass stopped: its copies on mailserver2, at or
    /// above the UIDNEXT recorded before it, are found by content and taken into the map.
    async fn adopt(
        &mut self,
        src: &mut ImapClient,
        dst: &mut ImapClient,
        fs: &mut FolderState,
        p: &Pending,
    ) -> Result<()> {
        // The interrupted pass stopped before this one read the state, and sent its last
        // APPEND before it stopped; not necessarily soon after the record was written (the
        // batch is read from mailserver1 first), so the record's age bounds nothing: the
        // whole settle time is waited, counted from the read (once per account, not per
        // folder).
        let wait = self
            .opts
            .settle
            .saturating_add(Duration::from_secs(1))
            .saturating_sub(self.loaded.elapsed());
        if !wait.is_zero() {
            tracing::info!(
                account = %self.account.name,
                "folder {:?}: waiting {wait:?} for an interrupted pass's last APPEND to settle",
                fs.dest
            );
            tokio::time::sleep(wait).await;
        }
        let ours = fs.dest_uids();
        let candidates: Vec<u32> = dst
            .uid_search(&format!("UID {}:*", p.dest_uidnext))
            .await
            .map_err(MirrorError::Dest)?
            .into_iter()
            .filter(|u| *u >= p.dest_uidnext && !ours.contains(u))
            .collect();
        let waiting: Vec<u32> = p
            .source_uids
            .iter()
            .copied()
            .filter(|u| !fs.messages.contains_key(u))
            .collect();
        if waiting.is_empty() {
            fs.pending = None;
            return Ok(());
        }
        let pending = identities_only(src, &waiting)
            .await
            .map_err(MirrorError::Source)?;
        let theirs = identities(dst, &candidates)
            .await
            .map_err(MirrorError::Dest)?;
        let found = state::adopt(
            &pending,
            &theirs
                .iter()
                .map(|(u, id, _)| (*u, id.clone()))
                .collect::<Vec<_>>(),
        );
        let by_uid: HashMap<u32, (Identity, Vec<String>)> = theirs
            .into_iter()
            .map(|(u, id, flags)| (u, (id, flags)))
            .collect();
        for (s, d) in &found {
            let (identity, flags) = by_uid[d].clone();
            fs.messages.insert(
                *s,
                Copy {
                    dest_uid: *d,
                    flags,
                    identity,
                },
            );
        }
        self.report.counts.adopted += found.len();
        tracing::info!(
            account = %self.account.name,
            "folder {:?}: adopted {} copies an interrupted pass made, of {} pending",
            fs.dest,
            found.len(),
            waiting.len()
        );
        let adopted: HashSet<u32> = found.iter().map(|(s, _)| *s).collect();
        let unfound: Vec<Identity> = pending
            .into_iter()
            .filter(|(u, _)| !adopted.contains(u))
            .map(|(_, id)| id)
            .collect();
        if !unfound.is_empty() {
            fs.settling.push(Settling {
                dest_uidnext: p.dest_uidnext,
                identities: unfound,
                until: crate::clock::unix_now() + self.settling_for().as_secs(),
            });
        }
        fs.pending = None;
        Ok(())
    }

    /// How long after a resume copied a batch's unfound messages again a late copy of one of
    /// them is looked for: ten times the longest a command may take, and at least ten
    /// minutes.
    fn settling_for(&self) -> Duration {
        (self.opts.settle * 10).max(Duration::from_secs(600))
    }

    /// Removes the copies a killed pass's APPEND stored after a resume had looked for them
    /// and copied their messages again (see [`Settling`]), and forgets the records whose time
    /// is up.
    async fn late_copies(&mut self, dst: &mut ImapClient, fs: &mut FolderState) -> Result<()> {
        let from = fs
            .settling
            .iter()
            .map(|s| s.dest_uidnext)
            .min()
            .unwrap_or(u32::MAX);
        let ours: HashSet<u32> = fs.dest_uids().into_iter().collect();
        let candidates: Vec<u32> = dst
            .uid_search(&format!("UID {from}:*"))
            .await
            .map_err(MirrorError::Dest)?
            .into_iter()
            .filter(|u| *u >= from && !ours.contains(u))
            .collect();
        let mut doubles = Vec::new();
        for (uid, id, _) in identities(dst, &candidates)
            .await
            .map_err(MirrorError::Dest)?
        {
            let record = fs
                .settling
                .iter_mut()
                .find(|s| uid >= s.dest_uidnext && s.identities.contains(&id));
            if let Some(s) = record
                && let Some(i) = s.identities.iter().position(|x| *x == id)
            {
                s.identities.swap_remove(i);
                doubles.push(uid);
            }
        }
        if !doubles.is_empty() {
            expunge(dst, &doubles).await.map_err(MirrorError::Dest)?;
            tracing::warn!(
                account = %self.account.name,
                "folder {:?}: removed {} copies an interrupted pass stored after this mirror \
                 had copied the same messages again",
                fs.dest,
                doubles.len()
            );
            self.report.counts.late_doubles += doubles.len();
        }
        let now = crate::clock::unix_now();
        fs.settling
            .retain(|s| s.until > now && !s.identities.is_empty());
        Ok(())
    }

    /// Rebuilds `fs`'s map by content (see [`state::rebuild`]) and expunges the stale copies.
    async fn rebuild(
        &mut self,
        src: &mut ImapClient,
        dst: &mut ImapClient,
        fs: &mut FolderState,
        adopt_all: bool,
    ) -> Result<()> {
        let src_all = src.uid_search("ALL").await.map_err(MirrorError::Source)?;
        let source = identities_only(src, &src_all)
            .await
            .map_err(MirrorError::Source)?;
        let dst_all = dst.uid_search("ALL").await.map_err(MirrorError::Dest)?;
        let dest = identities(dst, &dst_all).await.map_err(MirrorError::Dest)?;
        let rebuilt = state::rebuild(&fs.messages, &source, &dest, adopt_all);
        expunge(dst, &rebuilt.stale)
            .await
            .map_err(MirrorError::Dest)?;
        self.report.counts.expunged += rebuilt.stale.len();
        self.report.counts.adopted += rebuilt.messages.len();
        fs.messages = rebuilt.messages;
        fs.highest_modseq = None;
        fs.pending = None;
        // The copies a killed pass may still store went to the folder under its old UIDs.
        fs.settling.clear();
        Ok(())
    }
}

/// The identity and flags of each of `uids` in the selected mailbox, read one body at a time.
async fn identities(
    client: &mut ImapClient,
    uids: &[u32],
) -> std::result::Result<Vec<(u32, Identity, Vec<String>)>, ImapError> {
    let mut out = Vec::with_capacity(uids.len());
    for chunk in uids.chunks(200) {
        client.start_fetch(chunk).await?;
        while let Some(m) = client.next_message().await? {
            out.push((m.uid, Identity::of(&m.body), m.flags));
        }
    }
    Ok(out)
}

/// The identity of each of `uids` in the selected mailbox (see [`identities`]).
async fn identities_only(
    client: &mut ImapClient,
    uids: &[u32],
) -> std::result::Result<Vec<(u32, Identity)>, ImapError> {
    let all = identities(client, uids).await?;
    Ok(all.into_iter().map(|(u, id, _)| (u, id)).collect())
}

/// Marks `uids` `\Deleted` and removes exactly them (UID EXPUNGE, RFC 4315 §2.1).
async fn expunge(client: &mut ImapClient, uids: &[u32]) -> std::result::Result<(), ImapError> {
    if uids.is_empty() {
        return Ok(());
    }
    client.store_deleted(uids).await?;
    client.expunge(uids).await
}

/// The mapped mailserver1 UIDs not among `present`.
fn missing(fs: &FolderState, present: &[u32]) -> Vec<u32> {
    let present: std::collections::HashSet<u32> = present.iter().copied().collect();
    fs.messages
        .keys()
        .copied()
        .filter(|u| !present.contains(u))
        .collect()
}

/// Flag lists as sets: order and case of system flags do not matter.
fn same_flags(a: &[String], b: &[String]) -> bool {
    let norm = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|f| f.to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_compare_as_sets() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(same_flags(&s(&["\\Seen", "$A"]), &s(&["$a", "\\SEEN"])));
        assert!(!same_flags(&s(&["\\Seen"]), &s(&["\\Seen", "\\Flagged"])));
    }

    #[test]
    fn state_files_are_named_after_the_account() {
        assert_eq!(
            state_path(Path::new("/s"), "alice@x"),
            Path::new("/s/alice@x.json")
        );
        let odd = state_path(Path::new("/s"), "a/../b c@x");
        assert_eq!(odd.parent(), Some(Path::new("/s")));
        let name = odd.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("a_.._b_c@x+") && name.ends_with(".json"),
            "{name}"
        );
    }

    #[test]
    fn missing_uids_are_the_mapped_ones_not_present() {
        let mut fs = FolderState::new("X".into(), 1, 2);
        for u in [1, 2, 3] {
            fs.messages.insert(
                u,
                Copy {
                    dest_uid: u + 10,
                    flags: Vec::new(),
                    identity: Identity::of(b"x"),
                },
            );
        }
        assert_eq!(missing(&fs, &[2, 4]), [1, 3]);
    }
}
