//! The return after a failback (`posta migrate --return`): what users did on mailserver2 while
//! it served them, carried back to mailserver1. The mirror's map says what mailserver2 held at
//! the last pass; what differs now is the users' doing:
//!
//! - a copy whose flags differ from the mapped ones: flags changed on mailserver2. Per flag, a
//!   change made there wins; every other flag keeps mailserver1's value, so a flag changed on
//!   one side only keeps that change ([`merge`]);
//! - a copy gone from its folder whose exact bytes (size and SHA-256) now sit, unmapped, in
//!   another folder: moved. It is moved on mailserver1 too (UID MOVE), never copied;
//! - a copy gone and found nowhere: deleted. It is expunged on mailserver1;
//! - a folder of the map under a new name with the same UIDVALIDITY (RENAME keeps it): renamed;
//!   a folder mailserver2 has and the map does not: created; a mapped folder gone: deleted on
//!   mailserver1 once it holds nothing.
//!
//! New mail on mailserver2 is not this module's: the migration that follows carries it home
//! (through mailserver1's delivery path for INBOX), as without a mirror. Only messages the map
//! names are ever touched on mailserver1: a message that reached mailserver1 after the last
//! pass, never seen on mailserver2, is never deleted. A folder whose mailserver2 UIDVALIDITY
//! changed (recreated, restored) says nothing about the users, and is left alone; an account
//! whose INBOX changed UIDVALIDITY (a replaced mail store) is refused, not emptied.
//!
//! Kill safety: flags are set to absolute values and expunges name UIDs, so repeating them is
//! harmless, and the state is saved after each step. A move is the one step that is not
//! idempotent: before it the state records it ([`Moving`], with mailserver1's UIDNEXT in the
//! target folder), and a run that finds the record first adopts the moved messages in the
//! target by content, then moves only what is still in the source folder.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::state::{self, AccountState, Copy, FolderState, Identity, Moved, Moving, StateFile};
use super::{
    Account, Listing, MirrorError, Options, Result, connect, each_account, expunge, identities,
    identities_only, same_flags, state_path,
};
use crate::client::imap::{ImapClient, MailboxInfo};
use crate::migrate::folders;
use crate::proto::mutf7;

/// What one account's return did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountReturn {
    pub account: String,
    /// Messages whose flags were set on mailserver1.
    pub flags_changed: usize,
    pub moved: usize,
    /// Messages expunged on mailserver1 because the users deleted them on mailserver2.
    pub deleted: usize,
    pub folders_created: usize,
    pub folders_renamed: usize,
    pub folders_deleted: usize,
    /// Folders left alone: their mailserver2 UIDVALIDITY changed, or a rename had no clear
    /// target.
    pub folders_skipped: Vec<String>,
    pub seconds: f64,
    /// Why the return stopped; None: it completed.
    pub error: Option<String>,
}

/// The return over every account.
#[derive(Debug, Clone, Serialize)]
pub struct ReturnReport {
    pub ok: bool,
    pub accounts: Vec<AccountReturn>,
    pub seconds: f64,
}

impl ReturnReport {
    /// One line per account and a total: what the users' changes on mailserver2 did.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "return: what users did on mailserver2, carried back to mailserver1\n\
             account                     flags   moved deleted folders(+/~/-)  result\n",
        );
        for a in &self.accounts {
            out.push_str(&format!(
                "{:<26} {:>6} {:>7} {:>7}  {:>4}/{}/{} {:>8}\n",
                a.account,
                a.flags_changed,
                a.moved,
                a.deleted,
                a.folders_created,
                a.folders_renamed,
                a.folders_deleted,
                a.error.as_deref().map_or("ok", |_| "FAILED"),
            ));
            for f in &a.folders_skipped {
                out.push_str(&format!("  left alone: folder {f:?}\n"));
            }
            if let Some(e) = &a.error {
                out.push_str(&format!("  {e}\n"));
            }
        }
        out
    }
}

/// The return of every account, `opts.parallel` at a time.
pub async fn run(accounts: Vec<Account>, opts: &Options) -> ReturnReport {
    let started = Instant::now();
    let accounts = each_account(
        accounts,
        opts,
        |account, opts| async move { return_account(account, &opts).await },
        |account, e| AccountReturn {
            account,
            error: Some(e),
            ..AccountReturn::default()
        },
    )
    .await;
    ReturnReport {
        ok: accounts.iter().all(|a| a.error.is_none()),
        accounts,
        seconds: started.elapsed().as_secs_f64(),
    }
}

async fn return_account(account: Account, opts: &Options) -> AccountReturn {
    let started = Instant::now();
    let mut report = AccountReturn {
        account: account.name.clone(),
        ..AccountReturn::default()
    };
    let path = state_path(&opts.state_dir, &account.name);
    let result = match StateFile::open(&path) {
        Ok((file, state)) => {
            let mut back = Back {
                account: &account,
                opts,
                file,
                state,
                report: &mut report,
            };
            back.run().await
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        report.error = Some(e.to_string());
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// A mailserver2 folder as the return found it: its UIDVALIDITY and every message's flags.
struct Found {
    info: MailboxInfo,
    uidvalidity: u32,
    flags: HashMap<u32, Vec<String>>,
}

/// What became of a folder of the map on mailserver2.
enum Fate {
    /// Still there under its name and UIDVALIDITY.
    Kept,
    /// There under another name (wire name), same UIDVALIDITY.
    Renamed(String),
    /// Gone.
    Deleted,
    /// Its UIDVALIDITY changed: nothing can be told about what users did.
    Replaced,
}

/// A mapped copy that left its folder: where it went, if anywhere.
struct Gone {
    folder: String,
    uid: u32,
    copy: Copy,
}

struct Back<'a> {
    account: &'a Account,
    opts: &'a Options,
    file: StateFile,
    state: AccountState,
    report: &'a mut AccountReturn,
}

impl Back<'_> {
    fn save(&mut self) -> Result<()> {
        self.file.save(&self.state)?;
        tracing::debug!(account = %self.account.name, "return state saved");
        Ok(())
    }

    async fn run(&mut self) -> Result<()> {
        let result = self.pass().await;
        if result.is_err()
            && let Err(e) = self.save()
        {
            tracing::warn!(account = %self.account.name, "after a failed return: {e}");
        }
        result
    }

    async fn pass(&mut self) -> Result<()> {
        if self.state.folders.is_empty() {
            // Never mirrored: there is nothing the users could have changed on a copy.
            return Ok(());
        }
        let mut src = connect(&self.account.source)
            .await
            .map_err(MirrorError::Source)?;
        let mut dst = connect(&self.account.dest)
            .await
            .map_err(MirrorError::Dest)?;
        let mut source = Listing::of(&mut src).await.map_err(MirrorError::Source)?;
        // A move recorded by an interrupted run is finished first: the map depends on it.
        while let Some(m) = self.state.moving.first().cloned() {
            self.finish_move(&mut src, &source, &m, true).await?;
        }
        let dest = Listing::of(&mut dst).await.map_err(MirrorError::Dest)?;
        let mut found = Vec::new();
        for m in &dest.selectable {
            let sel = dst
                .select(&m.raw_name, true)
                .await
                .map_err(MirrorError::Dest)?;
            let flags = if sel.exists == 0 {
                HashMap::new()
            } else {
                let all = dst.fetch_flags(None).await.map_err(MirrorError::Dest)?;
                all.into_iter().map(|f| (f.uid, f.flags)).collect()
            };
            found.push(Found {
                info: m.clone(),
                uidvalidity: sel.uidvalidity,
                flags,
            });
        }
        self.refuse_replaced_store(&found)?;
        let fates = self.fates(&found);
        self.folders(&mut src, &mut source, &dest, &found, &fates)
            .await?;
        let by_raw: HashMap<&str, &Found> = found
            .iter()
            .map(|f| (f.info.raw_name.as_str(), f))
            .collect();
        // The copies that left their folders, and the unmapped messages they may have become.
        let mut gone = Vec::new();
        for (name, fs) in &self.state.folders {
            let here = by_raw
                .get(fs.dest.as_str())
                .filter(|f| f.uidvalidity == fs.dest_uidvalidity);
            let Some(here) = here else {
                if matches!(fates.get(name), Some(Fate::Replaced)) {
                    continue;
                }
                // The folder was deleted on mailserver2: every copy in it is gone.
                gone.extend(fs.messages.iter().map(|(&uid, c)| Gone {
                    folder: name.clone(),
                    uid,
                    copy: c.clone(),
                }));
                continue;
            };
            gone.extend(
                fs.messages
                    .iter()
                    .filter(|(_, c)| !here.flags.contains_key(&c.dest_uid))
                    .map(|(&uid, c)| Gone {
                        folder: name.clone(),
                        uid,
                        copy: c.clone(),
                    }),
            );
        }
        let arrivals = self.arrivals(&mut dst, &found, &gone).await?;
        let mut moves: BTreeMap<(String, String), Vec<Moved>> = BTreeMap::new();
        let mut deletions: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut free: HashMap<&Identity, Vec<(&str, u32)>> = HashMap::new();
        for (raw, uid, id) in &arrivals {
            free.entry(id).or_default().push((raw.as_str(), *uid));
        }
        for g in &gone {
            match free.get_mut(&g.copy.identity).and_then(Vec::pop) {
                Some((raw, uid)) => {
                    let Some((to, _)) = self.state.folder_by_dest(raw) else {
                        continue;
                    };
                    let flags = by_raw[raw].flags.get(&uid).cloned().unwrap_or_default();
                    moves
                        .entry((g.folder.clone(), to.to_owned()))
                        .or_default()
                        .push(Moved {
                            uid: g.uid,
                            identity: g.copy.identity.clone(),
                            base_flags: g.copy.flags.clone(),
                            dest_uid: uid,
                            dest_flags: flags,
                        });
                }
                None => deletions.entry(g.folder.clone()).or_default().push(g.uid),
            }
        }
        self.flags(&mut src, &source, &by_raw).await?;
        self.deletions(&mut src, &source, &deletions).await?;
        for ((from, to), messages) in moves {
            let to_raw = raw_of(&source, &to)?;
            let uidnext = src
                .select(&to_raw, true)
                .await
                .map_err(MirrorError::Source)?
                .uidnext
                .ok_or_else(|| MirrorError::Refused(format!("{to:?} reported no UIDNEXT")))?;
            let m = Moving {
                from,
                to,
                to_uidnext: uidnext,
                messages,
                written: crate::clock::unix_now(),
            };
            self.state.moving.push(m.clone());
            self.save()?;
            self.finish_move(&mut src, &source, &m, false).await?;
        }
        self.empty_deleted_folders(&mut src, &fates).await?;
        let _ = src.logout().await;
        let _ = dst.logout().await;
        Ok(())
    }

    /// A mail store replaced on mailserver2 (its INBOX has a new UIDVALIDITY) would look as if
    /// the users had deleted everything: refused.
    fn refuse_replaced_store(&self, found: &[Found]) -> Result<()> {
        let inbox = self
            .state
            .folders
            .iter()
            .find(|(n, _)| folders::is_inbox(n));
        let Some((_, fs)) = inbox else {
            return Ok(());
        };
        let now = found.iter().find(|f| folders::is_inbox(&f.info.name));
        match now {
            Some(f) if f.uidvalidity == fs.dest_uidvalidity => Ok(()),
            _ => Err(MirrorError::Refused(format!(
                "INBOX is not the one the mirror filled (UIDVALIDITY {} then, {} now): was \
                 the mail store replaced? Nothing was changed on mailserver1; move {} away to \
                 start the mirror over",
                fs.dest_uidvalidity,
                now.map_or_else(|| "none".to_owned(), |f| f.uidvalidity.to_string()),
                self.file.path().display()
            ))),
        }
    }

    /// What became of each folder of the map.
    fn fates(&self, found: &[Found]) -> BTreeMap<String, Fate> {
        let mapped: Vec<&str> = self
            .state
            .folders
            .values()
            .map(|f| f.dest.as_str())
            .collect();
        let mut out = BTreeMap::new();
        for (name, fs) in &self.state.folders {
            let fate = match found.iter().find(|f| f.info.raw_name == fs.dest) {
                Some(f) if f.uidvalidity == fs.dest_uidvalidity => Fate::Kept,
                Some(_) => Fate::Replaced,
                None => {
                    let same: Vec<&Found> = found
                        .iter()
                        .filter(|f| {
                            f.uidvalidity == fs.dest_uidvalidity
                                && !mapped.contains(&f.info.raw_name.as_str())
                        })
                        .collect();
                    match same[..] {
                        [one] => Fate::Renamed(one.info.raw_name.clone()),
                        _ => Fate::Deleted,
                    }
                }
            };
            out.insert(name.clone(), fate);
        }
        out
    }

    /// Renames, then creations, on mailserver1; the map follows.
    async fn folders(
        &mut self,
        src: &mut ImapClient,
        source: &mut Listing,
        dest: &Listing,
        found: &[Found],
        fates: &BTreeMap<String, Fate>,
    ) -> Result<()> {
        // Parents first: renaming one renames its children on both servers.
        for (old, fate) in fates {
            let Fate::Renamed(raw) = fate else {
                if matches!(fate, Fate::Replaced) {
                    self.report.folders_skipped.push(old.clone());
                }
                continue;
            };
            let new = source_name(raw, dest, source);
            let new_raw = mutf7::encode(&new);
            let old_raw = source
                .selectable
                .iter()
                .find(|m| &m.name == old)
                .map(|m| m.raw_name.clone());
            match (old_raw, source.has_raw(&new_raw)) {
                (Some(old_raw), false) => {
                    src.rename(&old_raw, &new_raw)
                        .await
                        .map_err(MirrorError::Source)?;
                    *source = Listing::of(src).await.map_err(MirrorError::Source)?;
                }
                // Done already: by its parent's RENAME, or by a run killed after it.
                (None, true) => {}
                _ => {
                    self.report.folders_skipped.push(old.clone());
                    continue;
                }
            }
            if let Some(mut fs) = self.state.folders.remove(old) {
                tracing::info!(account = %self.account.name, "folder {old:?} renamed to {new:?}");
                fs.dest.clone_from(raw);
                self.state.folders.insert(new, fs);
                self.save()?;
                self.report.folders_renamed += 1;
            }
        }
        for f in found {
            if self.state.folder_by_dest(&f.info.raw_name).is_some() {
                continue;
            }
            let name = source_name(&f.info.raw_name, dest, source);
            if self.state.folders.contains_key(&name) {
                // mailserver1's folder of that name is mirrored elsewhere: not the users' new
                // folder to make.
                continue;
            }
            let raw = mutf7::encode(&name);
            if !source.has_raw(&raw) {
                src.create(&raw).await.map_err(MirrorError::Source)?;
                *source = Listing::of(src).await.map_err(MirrorError::Source)?;
                self.report.folders_created += 1;
                tracing::info!(account = %self.account.name, "folder {name:?} created");
            }
            let sel = src.select(&raw, true).await.map_err(MirrorError::Source)?;
            self.state.folders.insert(
                name,
                FolderState::new(f.info.raw_name.clone(), sel.uidvalidity, f.uidvalidity),
            );
            self.save()?;
        }
        Ok(())
    }

    /// The unmapped messages on mailserver2 that may be moved copies: those whose size is that
    /// of a gone copy, with their identity. Mail a mirror batch may have stored without its
    /// state write (at or above a pending UIDNEXT) is never one.
    async fn arrivals(
        &self,
        dst: &mut ImapClient,
        found: &[Found],
        gone: &[Gone],
    ) -> Result<Vec<(String, u32, Identity)>> {
        let sizes: std::collections::HashSet<u64> =
            gone.iter().map(|g| g.copy.identity.size).collect();
        let mut out = Vec::new();
        if sizes.is_empty() {
            return Ok(out);
        }
        for f in found {
            let mapped = self.state.folder_by_dest(&f.info.raw_name);
            let Some((_, fs)) = mapped else { continue };
            if fs.dest_uidvalidity != f.uidvalidity {
                continue;
            }
            let ours: std::collections::HashSet<u32> = fs.dest_uids().into_iter().collect();
            let pending_from = fs.pending.as_ref().map_or(u32::MAX, |p| p.dest_uidnext);
            let mut unmapped: Vec<u32> = f
                .flags
                .keys()
                .copied()
                .filter(|u| !ours.contains(u) && *u < pending_from)
                .collect();
            if unmapped.is_empty() {
                continue;
            }
            unmapped.sort_unstable();
            dst.select(&f.info.raw_name, true)
                .await
                .map_err(MirrorError::Dest)?;
            let metas = dst.fetch_meta(&unmapped).await.map_err(MirrorError::Dest)?;
            let likely: Vec<u32> = metas
                .iter()
                .filter(|m| sizes.contains(&m.size))
                .map(|m| m.uid)
                .collect();
            for (uid, id, _) in identities(dst, &likely).await.map_err(MirrorError::Dest)? {
                out.push((f.info.raw_name.clone(), uid, id));
            }
        }
        Ok(out)
    }

    /// Flags changed on mailserver2, merged into mailserver1's ([`merge`]).
    async fn flags(
        &mut self,
        src: &mut ImapClient,
        source: &Listing,
        by_raw: &HashMap<&str, &Found>,
    ) -> Result<()> {
        let names: Vec<String> = self.state.folders.keys().cloned().collect();
        for name in names {
            let fs = &self.state.folders[&name];
            let Some(here) = by_raw
                .get(fs.dest.as_str())
                .filter(|f| f.uidvalidity == fs.dest_uidvalidity)
            else {
                continue;
            };
            let changed: Vec<(u32, Vec<String>)> = fs
                .messages
                .iter()
                .filter_map(|(&uid, c)| {
                    let now = here.flags.get(&c.dest_uid)?;
                    (!same_flags(now, &c.flags)).then(|| (uid, now.clone()))
                })
                .collect();
            if changed.is_empty() {
                continue;
            }
            let Ok(raw) = raw_of(source, &name) else {
                // Gone on mailserver1: its deletion stands.
                continue;
            };
            src.select(&raw, false).await.map_err(MirrorError::Source)?;
            let uids: Vec<u32> = changed.iter().map(|(uid, _)| *uid).collect();
            let theirs: HashMap<u32, Vec<String>> = src
                .fetch_flags_of(&uids)
                .await
                .map_err(MirrorError::Source)?
                .into_iter()
                .map(|f| (f.uid, f.flags))
                .collect();
            let mut by_flags: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
            let fs = self
                .state
                .folders
                .get_mut(&name)
                .ok_or_else(|| MirrorError::Refused(format!("no state for folder {name:?}")))?;
            for (uid, now) in changed {
                let Some(c) = fs.messages.get_mut(&uid) else {
                    continue;
                };
                // Expunged on mailserver1 since the last pass: that deletion stands.
                let Some(on_primary) = theirs.get(&uid) else {
                    continue;
                };
                let merged = merge(&c.flags, on_primary, &now);
                if !same_flags(&merged, on_primary) {
                    by_flags.entry(merged).or_default().push(uid);
                }
                // What mailserver2 holds: the next mirror pass sets mailserver1's merged
                // flags there.
                c.flags = now;
            }
            for (flags, uids) in &by_flags {
                src.store_flags(uids, flags)
                    .await
                    .map_err(MirrorError::Source)?;
                self.report.flags_changed += uids.len();
            }
            self.save()?;
        }
        Ok(())
    }

    /// Copies the users deleted on mailserver2: expunged on mailserver1, by UID.
    async fn deletions(
        &mut self,
        src: &mut ImapClient,
        source: &Listing,
        deletions: &BTreeMap<String, Vec<u32>>,
    ) -> Result<()> {
        for (name, uids) in deletions {
            let Ok(raw) = raw_of(source, name) else {
                // Gone on mailserver1 too: nothing left to delete there.
                self.forget(name, uids);
                self.save()?;
                continue;
            };
            src.select(&raw, false).await.map_err(MirrorError::Source)?;
            let set = crate::proto::imap_cmd::uid_set(uids).unwrap_or_default();
            let present = src
                .uid_search(&format!("UID {set}"))
                .await
                .map_err(MirrorError::Source)?;
            let doomed: Vec<u32> = present.into_iter().filter(|u| uids.contains(u)).collect();
            expunge(src, &doomed).await.map_err(MirrorError::Source)?;
            self.report.deleted += doomed.len();
            self.forget(name, uids);
            self.save()?;
        }
        Ok(())
    }

    /// Takes `uids` of mailserver1 folder `name` out of the map.
    fn forget(&mut self, name: &str, uids: &[u32]) {
        if let Some(fs) = self.state.folders.get_mut(name) {
            for u in uids {
                fs.messages.remove(u);
            }
        }
    }

    /// Moves `m.messages` from `m.from` to `m.to` on mailserver1, adopting first what an
    /// interrupted run moved already (see the module doc), and maps the moved messages to
    /// their copies in the target folder.
    async fn finish_move(
        &mut self,
        src: &mut ImapClient,
        source: &Listing,
        m: &Moving,
        resumed: bool,
    ) -> Result<()> {
        if resumed {
            self.settle(m.written).await;
        }
        let (Ok(from_raw), Ok(to_raw)) = (raw_of(source, &m.from), raw_of(source, &m.to)) else {
            // A folder of the move is gone on mailserver1 (deleted there since the last
            // pass). Out of the map, the copy the user moved is new mail to the migration
            // that follows: the user's move, the later act, keeps the message.
            let uids: Vec<u32> = m.messages.iter().map(|x| x.uid).collect();
            self.forget(&m.from, &uids);
            self.state.moving.retain(|x| !same_move(x, m));
            return self.save();
        };
        let mut moved = self.adopt_moved(src, &to_raw, m).await?;
        let left: Vec<u32> = m
            .messages
            .iter()
            .map(|x| x.uid)
            .filter(|u| !moved.iter().any(|(s, _)| s == u))
            .collect();
        let mut atomic = true;
        if !left.is_empty() {
            src.select(&from_raw, false)
                .await
                .map_err(MirrorError::Source)?;
            let set = crate::proto::imap_cmd::uid_set(&left).unwrap_or_default();
            let present: Vec<u32> = src
                .uid_search(&format!("UID {set}"))
                .await
                .map_err(MirrorError::Source)?
                .into_iter()
                .filter(|u| left.contains(u))
                .collect();
            // The record's time becomes the time the MOVE is sent: a run killed after this
            // waits from here for the server to finish it (see `settle`).
            if !present.is_empty() {
                let now = crate::clock::unix_now();
                for r in self.state.moving.iter_mut().filter(|x| same_move(x, m)) {
                    r.written = now;
                }
                self.save()?;
            }
            atomic = src
                .move_uids(&present, &to_raw)
                .await
                .map_err(MirrorError::Source)?;
            moved = self.adopt_moved(src, &to_raw, m).await?;
        }
        if resumed || !atomic {
            // A COPY whose expunge did not happen: the original goes now that its copy is
            // known to be in the target.
            src.select(&from_raw, false)
                .await
                .map_err(MirrorError::Source)?;
            let done: Vec<u32> = moved.iter().map(|(s, _)| *s).collect();
            let set = crate::proto::imap_cmd::uid_set(&done).unwrap_or_default();
            if !done.is_empty() {
                let still: Vec<u32> = src
                    .uid_search(&format!("UID {set}"))
                    .await
                    .map_err(MirrorError::Source)?
                    .into_iter()
                    .filter(|u| done.contains(u))
                    .collect();
                expunge(src, &still).await.map_err(MirrorError::Source)?;
            }
        }
        // The moved messages' flags: what users did on mailserver2 wins per flag.
        src.select(&to_raw, false)
            .await
            .map_err(MirrorError::Source)?;
        let now: HashMap<u32, Vec<String>> = if moved.is_empty() {
            HashMap::new()
        } else {
            let set: Vec<u32> = moved.iter().map(|(_, t)| *t).collect();
            src.fetch_meta(&set)
                .await
                .map_err(MirrorError::Source)?
                .into_iter()
                .map(|x| (x.uid, x.flags))
                .collect()
        };
        let mut by_flags: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
        for (s, t) in &moved {
            let Some(x) = m.messages.iter().find(|x| x.uid == *s) else {
                continue;
            };
            let Some(on_primary) = now.get(t) else {
                continue;
            };
            let merged = merge(&x.base_flags, on_primary, &x.dest_flags);
            if !same_flags(&merged, on_primary) {
                by_flags.entry(merged).or_default().push(*t);
            }
        }
        for (flags, uids) in &by_flags {
            src.store_flags(uids, flags)
                .await
                .map_err(MirrorError::Source)?;
        }
        for (s, t) in &moved {
            let Some(x) = m.messages.iter().find(|x| x.uid == *s) else {
                continue;
            };
            if let Some(fs) = self.state.folders.get_mut(&m.from) {
                fs.messages.remove(s);
            }
            if let Some(fs) = self.state.folders.get_mut(&m.to) {
                fs.messages.insert(
                    *t,
                    Copy {
                        dest_uid: x.dest_uid,
                        flags: x.dest_flags.clone(),
                        identity: x.identity.clone(),
                    },
                );
            }
        }
        // What neither moved nor stayed was expunged on mailserver1 meanwhile: that stands.
        if let Some(fs) = self.state.folders.get_mut(&m.from) {
            for x in &m.messages {
                fs.messages.remove(&x.uid);
            }
        }
        self.report.moved += moved.len();
        self.state.moving.retain(|x| !same_move(x, m));
        self.save()
    }

    /// The messages of `m` already in its target folder on mailserver1: those at or above the
    /// UIDNEXT recorded before the move, not yet mapped, matched by content. `(source uid,
    /// target uid)` pairs.
    async fn adopt_moved(
        &mut self,
        src: &mut ImapClient,
        to_raw: &str,
        m: &Moving,
    ) -> Result<Vec<(u32, u32)>> {
        src.select(to_raw, true)
            .await
            .map_err(MirrorError::Source)?;
        let mapped: std::collections::HashSet<u32> = self
            .state
            .folders
            .get(&m.to)
            .map(|f| f.messages.keys().copied().collect())
            .unwrap_or_default();
        let candidates: Vec<u32> = src
            .uid_search(&format!("UID {}:*", m.to_uidnext))
            .await
            .map_err(MirrorError::Source)?
            .into_iter()
            .filter(|u| *u >= m.to_uidnext && !mapped.contains(u))
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let theirs = identities_only(src, &candidates)
            .await
            .map_err(MirrorError::Source)?;
        let wanted: Vec<(u32, Identity)> = m
            .messages
            .iter()
            .map(|x| (x.uid, x.identity.clone()))
            .collect();
        Ok(state::adopt(&wanted, &theirs))
    }

    /// Waits until a recorded move is as old as the longest a command may take: mailserver1
    /// may still be carrying out the MOVE of a run killed after sending it. The record is
    /// rewritten just before each MOVE is sent, so its age bounds the time since then.
    async fn settle(&self, written: u64) {
        let age = crate::clock::unix_now().saturating_sub(written);
        if age <= self.opts.settle.as_secs() {
            let wait = self
                .opts
                .settle
                .saturating_sub(Duration::from_secs(age))
                .saturating_add(Duration::from_secs(1));
            tracing::info!(
                account = %self.account.name,
                "waiting {wait:?} for an interrupted run's last move to settle"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Folders the users deleted on mailserver2: their copies were moved or expunged above;
    /// the folder goes on mailserver1 once it holds nothing (mail that reached it after the
    /// last pass keeps it), and leaves the map either way.
    async fn empty_deleted_folders(
        &mut self,
        src: &mut ImapClient,
        fates: &BTreeMap<String, Fate>,
    ) -> Result<()> {
        let mut deleted: Vec<&String> = fates
            .iter()
            .filter(|(_, f)| matches!(f, Fate::Deleted))
            .map(|(n, _)| n)
            .collect();
        // Children first: a parent goes once it is empty.
        deleted.sort_by(|a, b| b.cmp(a));
        let source = Listing::of(src).await.map_err(MirrorError::Source)?;
        for name in deleted {
            if folders::is_inbox(name) {
                continue;
            }
            if let Some(m) = source.selectable.iter().find(|m| &m.name == name) {
                let sel = src
                    .select(&m.raw_name, true)
                    .await
                    .map_err(MirrorError::Source)?;
                if sel.exists == 0 {
                    src.select("INBOX", true)
                        .await
                        .map_err(MirrorError::Source)?;
                    src.delete(&m.raw_name).await.map_err(MirrorError::Source)?;
                    self.report.folders_deleted += 1;
                    tracing::info!(account = %self.account.name, "folder {name:?} deleted");
                } else {
                    self.report.folders_skipped.push(name.clone());
                }
            }
            self.state.folders.remove(name);
            self.save()?;
        }
        Ok(())
    }
}

/// Whether two records are the same move (the time in them changes as it goes).
fn same_move(a: &Moving, b: &Moving) -> bool {
    (&a.from, &a.to, a.to_uidnext) == (&b.from, &b.to, b.to_uidnext)
}

/// mailserver1's wire name of folder `name` (decoded).
fn raw_of(source: &Listing, name: &str) -> Result<String> {
    source
        .selectable
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.raw_name.clone())
        .ok_or_else(|| {
            MirrorError::Refused(format!("mailserver1 has no folder {name:?} (any more)"))
        })
}

/// mailserver1's decoded name for mailserver2 folder `raw` (wire name).
fn source_name(raw: &str, dest: &Listing, source: &Listing) -> String {
    let decoded = mutf7::decode(raw).unwrap_or_else(|_| raw.to_owned());
    let components = folders::components(&decoded, &dest.naming);
    folders::dest_name(&components, &source.naming)
}

/// Three-way flag merge: `base` is what the mirror last set on mailserver2, `primary` what
/// mailserver1 has now, `backup` what mailserver2 has now. A flag whose presence on
/// mailserver2 differs from `base` was changed there by a user, and that change wins; every
/// other flag keeps mailserver1's value. Flags compare case-insensitively; the spelling kept
/// is the side's the flag comes from.
pub fn merge(base: &[String], primary: &[String], backup: &[String]) -> Vec<String> {
    let has = |v: &[String], f: &str| v.iter().any(|x| x.eq_ignore_ascii_case(f));
    let mut out: Vec<String> = Vec::new();
    let mut push = |f: &String| {
        if !has(&out, f) {
            out.push(f.clone());
        }
    };
    for f in primary {
        let changed_there = has(base, f) != has(backup, f);
        if !changed_there {
            push(f);
        }
    }
    // Set on mailserver2 since the pass, or kept on both sides.
    for f in backup {
        if !has(base, f) || has(primary, f) {
            push(f);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(flags: &[&str]) -> Vec<String> {
        flags.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_flag_changed_on_one_side_only_keeps_that_change() {
        // Read on mailserver2 during the outage.
        assert_eq!(merge(&v(&[]), &v(&[]), &v(&["\\Seen"])), v(&["\\Seen"]));
        // Unflagged on mailserver2, untouched on mailserver1.
        assert_eq!(
            merge(
                &v(&["\\Flagged", "\\Seen"]),
                &v(&["\\Flagged", "\\Seen"]),
                &v(&["\\Seen"])
            ),
            v(&["\\Seen"])
        );
        // Flagged on mailserver1 just before the crash (mailserver2 never saw it), read on
        // mailserver2: both changes kept.
        assert_eq!(
            merge(&v(&[]), &v(&["\\Flagged"]), &v(&["\\Seen"])),
            v(&["\\Flagged", "\\Seen"])
        );
        // Nothing changed on mailserver2: mailserver1's flags stand, whatever they are now.
        assert_eq!(
            merge(&v(&["$Work"]), &v(&["\\Answered"]), &v(&["$work"])),
            v(&["\\Answered"])
        );
        // Both sides removed it.
        assert_eq!(merge(&v(&["\\Seen"]), &v(&[]), &v(&[])), v(&[]));
    }
}
