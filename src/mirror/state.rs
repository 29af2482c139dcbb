//! The mirror's durable state per account: for each folder of mailserver1 its UIDVALIDITY and
//! HIGHESTMODSEQ as of the last complete pass, the folder it is mirrored to on mailserver2, and
//! the map from each mailserver1 UID to its copy (mailserver2 UID, the flags set there, and the
//! content identity: size and a hash of the bytes).
//!
//! The map is what makes a message on mailserver2 the mirror's: one that is not in it (mail
//! `posta mta` stored there, a user's own) is never touched. It answers "is mailserver2 UID u
//! in folder f a mirror copy, and of which mailserver1 message?" ([`FolderState::source_of`]),
//! the question the return after failback and the lag report ask.
//!
//! Kill safety: before a batch of APPENDs the state records mailserver2's UIDNEXT and the
//! mailserver1 UIDs about to be copied ([`Pending`]), durably. A pass that finds a pending
//! batch matches the messages at or above that UIDNEXT that are not in the map to the pending
//! ones by content identity and adopts them ([`adopt`]), so a kill between an APPEND and the
//! state write never leads to a second copy. It first waits the longest a command may take
//! (`--timeout`), counted from its own start, not from the record's: the server may still be
//! storing an APPEND whose sender was killed after sending it, and a copy that appears after
//! the look would be made again; the sender read its batch from mailserver1 between the record
//! and the APPEND, so only the time since the sender stopped (before this pass began) bounds
//! it. That wait bounds what a server usually takes, not what one under heavy load may take:
//! the messages the pass does not find it copies again, and for a while ([`Settling`]) every
//! pass removes a copy of one of them that appears late, in no map. A UIDVALIDITY change on
//! either side is handled the same way, by content identity ([`rebuild`]), never by a blind
//! recopy.
//!
//! On disk ([`StateFile`]): a snapshot, `ACCOUNT.json`, and a journal beside it,
//! `ACCOUNT.log`, one JSON line per save with only what changed since the save before. A
//! save appends its line and fsyncs it; a mailbox of 100,000 messages no longer costs a
//! rewrite of its whole map (megabytes) for every batch of copies. Once the journal outgrows
//! the snapshot, the next save writes a new snapshot through [`crate::durable`] (write, fsync,
//! rename, fsync the directory) and the journal starts over. The snapshot's first line names
//! its journal by a random id, and the journal's first line repeats it: a journal left behind
//! by an older snapshot (a crash between the new snapshot and the journal's removal) or by a
//! state moved away is never read into another. A kill or a power failure can tear only the
//! journal's last line, a save that never returned: it is cut off, as if the save had not
//! begun. A damaged line anywhere else is refused.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use ring::digest;
use serde::{Deserialize, Serialize};

/// Bumped when the layout changes incompatibly; an unknown version is refused, not guessed.
/// Version 1 was the snapshot alone, without its journal's id (still read).
const VERSION: u32 = 2;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the mirror state {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the mirror state {path} is damaged ({reason}); move it away to start over")]
    Damaged { path: PathBuf, reason: String },
    #[error("cannot write the mirror state {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// A message's content identity: its size and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub size: u64,
    /// Hex SHA-256 of the whole message as stored.
    pub hash: String,
}

impl Identity {
    pub fn of(message: &[u8]) -> Identity {
        let hash = digest::digest(&digest::SHA256, message);
        Identity {
            size: message.len() as u64,
            hash: hash.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// A mailserver1 message's copy on mailserver2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// Its UID on mailserver2, valid with [`FolderState::dest_uidvalidity`].
    pub dest_uid: u32,
    /// The flags the mirror last set there (mailserver1's at that time).
    pub flags: Vec<String>,
    #[serde(flatten)]
    pub identity: Identity,
}

/// A batch of APPENDs that may have happened without their state write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// mailserver2's UIDNEXT before the batch: the copies, if any, are at or above it.
    pub dest_uidnext: u32,
    /// The mailserver1 UIDs being copied.
    pub source_uids: Vec<u32>,
    /// Unix time the record was written. A killed pass's last
    /// APPEND may still be stored by mailserver2 after the kill: a resume waits the longest a
    /// command may take before it looks for the copies.
    pub written: u64,
}

/// Messages of a pending batch a resume did not find on mailserver2 and copied again: the
/// killed pass's APPEND may still be stored after the look (a server slow under load finishes
/// a command its sender died during). Every pass until `until` removes such a late copy (at
/// or above `dest_uidnext`, in no map, of one of these identities), one per identity listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settling {
    pub dest_uidnext: u32,
    pub identities: Vec<Identity>,
    /// Unix time after which no late copy is looked for.
    pub until: u64,
}

/// A move the return after a failback is making on mailserver1 (see [`super::back`]): recorded
/// before the MOVE, so that a run killed after it adopts the moved messages by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moving {
    /// mailserver1 folders (decoded names, keys of [`AccountState::folders`]).
    pub from: String,
    pub to: String,
    /// mailserver1's UIDNEXT in `to` before the move: the moved messages are at or above it.
    pub to_uidnext: u32,
    pub messages: Vec<Moved>,
    /// Unix time the record was written.
    pub written: u64,
}

/// One message of a [`Moving`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// Its UID in the source folder on mailserver1.
    pub uid: u32,
    #[serde(flatten)]
    pub identity: Identity,
    /// The flags the mirror last set on its copy.
    pub base_flags: Vec<String>,
    /// Its copy's UID in the target folder's mirror on mailserver2, and the flags there.
    pub dest_uid: u32,
    pub dest_flags: Vec<String>,
}

/// One folder of mailserver1 and its mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    /// The folder's wire name on mailserver2 (modified UTF-7).
    pub dest: String,
    pub source_uidvalidity: u32,
    pub dest_uidvalidity: u32,
    /// mailserver1's HIGHESTMODSEQ once everything up to it was applied; None until then or
    /// when the server keeps no mod-sequences.
    pub highest_modseq: Option<u64>,
    /// mailserver1 UID → its copy.
    pub messages: BTreeMap<u32, Copy>,
    pub pending: Option<Pending>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settling: Vec<Settling>,
}

impl FolderState {
    pub fn new(dest: String, source_uidvalidity: u32, dest_uidvalidity: u32) -> FolderState {
        FolderState {
            dest,
            source_uidvalidity,
            dest_uidvalidity,
            highest_modseq: None,
            messages: BTreeMap::new(),
            pending: None,
            settling: Vec::new(),
        }
    }

    /// The mailserver1 UID whose copy is mailserver2 UID `dest_uid`; None: not the mirror's.
    pub fn source_of(&self, dest_uid: u32) -> Option<u32> {
        self.messages
            .iter()
            .find(|(_, c)| c.dest_uid == dest_uid)
            .map(|(&uid, _)| uid)
    }

    /// The mailserver2 UIDs that are mirror copies.
    pub fn dest_uids(&self) -> Vec<u32> {
        self.messages.values().map(|c| c.dest_uid).collect()
    }
}

/// Everything the mirror knows about one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub version: u32,
    /// By mailserver1 folder name (UTF-8).
    pub folders: BTreeMap<String, FolderState>,
    /// Unix time of the end of the last pass that completed: the mirror's lag is measured
    /// from here.
    pub last_complete_pass: Option<u64>,
    /// Moves the return after a failback recorded and has not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moving: Vec<Moving>,
}

/// What a pass that changed nothing writes instead of the whole state: when it ended.
#[derive(Debug, Serialize, Deserialize)]
struct PassRecord {
    last_complete_pass: u64,
}

/// The pass record beside the state file `path` (`alice.json` → `alice.pass`).
fn pass_path(path: &Path) -> PathBuf {
    path.with_extension("pass")
}

/// The journal beside the state file `path` (`alice.json` → `alice.log`).
fn journal_path(path: &Path) -> PathBuf {
    path.with_extension("log")
}

/// The first line of a snapshot and of its journal: which journal continues which snapshot.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    journal: u64,
}

/// One save's changes: what [`delta`] found between the state saved before and this one.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Delta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    folders: BTreeMap<String, FolderDelta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_complete_pass: Option<u64>,
    /// The whole list when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    moving: Option<Vec<Moving>>,
}

impl Delta {
    fn is_empty(&self) -> bool {
        *self == Delta::default()
    }
}

/// What changed in one folder: gone, or its fields (all of them) and the copies put and
/// removed.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct FolderDelta {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    gone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<FolderFields>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    put: BTreeMap<u32, Copy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    del: Vec<u32>,
}

/// A folder's state without its map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FolderFields {
    dest: String,
    source_uidvalidity: u32,
    dest_uidvalidity: u32,
    highest_modseq: Option<u64>,
    pending: Option<Pending>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    settling: Vec<Settling>,
}

impl FolderFields {
    fn of(f: &FolderState) -> FolderFields {
        FolderFields {
            dest: f.dest.clone(),
            source_uidvalidity: f.source_uidvalidity,
            dest_uidvalidity: f.dest_uidvalidity,
            highest_modseq: f.highest_modseq,
            pending: f.pending.clone(),
            settling: f.settling.clone(),
        }
    }

    fn folder(self) -> FolderState {
        FolderState {
            dest: self.dest,
            source_uidvalidity: self.source_uidvalidity,
            dest_uidvalidity: self.dest_uidvalidity,
            highest_modseq: self.highest_modseq,
            messages: BTreeMap::new(),
            pending: self.pending,
            settling: self.settling,
        }
    }
}

/// What the last save wrote of a copy, to tell whether it changed: every field, the
/// identity's hash as bytes (half the size of its hex, and the state holds one per message).
#[derive(Debug)]
struct SavedCopy {
    dest_uid: u32,
    size: u64,
    /// None: not 64 hex digits, so never equal (the copy is journaled whenever saved).
    hash: Option<[u8; 32]>,
    flags: Vec<String>,
}

impl SavedCopy {
    fn of(c: &Copy) -> SavedCopy {
        SavedCopy {
            dest_uid: c.dest_uid,
            size: c.identity.size,
            hash: hash_bytes(&c.identity.hash),
            flags: c.flags.clone(),
        }
    }

    fn is(&self, c: &Copy) -> bool {
        self.dest_uid == c.dest_uid
            && self.size == c.identity.size
            && self.flags == c.flags
            && self.hash.is_some()
            && self.hash == hash_bytes(&c.identity.hash)
    }
}

/// The 32 bytes a hex SHA-256 spells.
fn hash_bytes(hex: &str) -> Option<[u8; 32]> {
    let digit = |c: u8| (c as char).to_digit(16);
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// The state the files hold, as the next save compares with it: each folder's fields and
/// its copies in a compact form (some 90 bytes a copy, against some 200 for the state's own).
#[derive(Debug, Default)]
struct Saved {
    folders: BTreeMap<String, SavedFolder>,
    last_complete_pass: Option<u64>,
    moving: Vec<Moving>,
}

#[derive(Debug)]
struct SavedFolder {
    fields: FolderFields,
    copies: HashMap<u32, SavedCopy>,
}

impl Saved {
    fn of(state: &AccountState) -> Saved {
        let folders = state
            .folders
            .iter()
            .map(|(name, f)| {
                let copies = f
                    .messages
                    .iter()
                    .map(|(uid, c)| (*uid, SavedCopy::of(c)))
                    .collect();
                let fields = FolderFields::of(f);
                (name.clone(), SavedFolder { fields, copies })
            })
            .collect();
        Saved {
            folders,
            last_complete_pass: state.last_complete_pass,
            moving: state.moving.clone(),
        }
    }

    /// Takes in a journal line once it is written.
    fn apply(&mut self, d: &Delta) {
        for (name, fd) in &d.folders {
            if fd.gone {
                self.folders.remove(name);
                continue;
            }
            if let Some(fields) = &fd.fields {
                let folder = self
                    .folders
                    .entry(name.clone())
                    .or_insert_with(|| SavedFolder {
                        fields: fields.clone(),
                        copies: HashMap::new(),
                    });
                folder.fields = fields.clone();
            }
            if let Some(folder) = self.folders.get_mut(name) {
                for uid in &fd.del {
                    folder.copies.remove(uid);
                }
                for (uid, c) in &fd.put {
                    folder.copies.insert(*uid, SavedCopy::of(c));
                }
            }
        }
        if d.last_complete_pass.is_some() {
            self.last_complete_pass = d.last_complete_pass;
        }
        if let Some(m) = &d.moving {
            self.moving.clone_from(m);
        }
    }
}

/// What turns the saved state into `new`; None when a journal line cannot say it (the last
/// pass's time taken away), and a snapshot must.
fn delta(old: &Saved, new: &AccountState) -> Option<Delta> {
    if new.last_complete_pass.is_none() && old.last_complete_pass.is_some() {
        return None;
    }
    let mut d = Delta::default();
    for name in old.folders.keys() {
        if !new.folders.contains_key(name) {
            d.folders.insert(
                name.clone(),
                FolderDelta {
                    gone: true,
                    ..FolderDelta::default()
                },
            );
        }
    }
    let none = HashMap::new();
    for (name, f) in &new.folders {
        let was = old.folders.get(name);
        let mut fd = FolderDelta::default();
        let fields = FolderFields::of(f);
        if was.is_none_or(|w| w.fields != fields) {
            fd.fields = Some(fields);
        }
        let before = was.map_or(&none, |w| &w.copies);
        for (uid, c) in &f.messages {
            if !before.get(uid).is_some_and(|s| s.is(c)) {
                fd.put.insert(*uid, c.clone());
            }
        }
        // Without removals the saved copies plus the new ones are the count: a sum above it
        // means some went (or some changed), and only then are the removals looked for.
        if before.len() + fd.put.len() > f.messages.len() {
            fd.del = before
                .keys()
                .filter(|u| !f.messages.contains_key(u))
                .copied()
                .collect();
            fd.del.sort_unstable();
        }
        if fd != FolderDelta::default() {
            d.folders.insert(name.clone(), fd);
        }
    }
    if new.last_complete_pass != old.last_complete_pass {
        d.last_complete_pass = new.last_complete_pass;
    }
    if new.moving != old.moving {
        d.moving = Some(new.moving.clone());
    }
    Some(d)
}

/// Applies one journal line's changes.
fn apply(state: &mut AccountState, d: Delta) -> Result<(), String> {
    for (name, fd) in d.folders {
        if fd.gone {
            state.folders.remove(&name);
            continue;
        }
        if let Some(fields) = fd.fields {
            let messages = state
                .folders
                .remove(&name)
                .map(|f| f.messages)
                .unwrap_or_default();
            let mut f = fields.folder();
            f.messages = messages;
            state.folders.insert(name.clone(), f);
        }
        let f = state
            .folders
            .get_mut(&name)
            .ok_or_else(|| format!("a change to folder {name:?}, which it does not hold"))?;
        for uid in fd.del {
            f.messages.remove(&uid);
        }
        f.messages.extend(fd.put);
    }
    if let Some(t) = d.last_complete_pass {
        state.last_complete_pass = Some(t);
    }
    if let Some(m) = d.moving {
        state.moving = m;
    }
    Ok(())
}

/// The snapshot on disk: its journal's id (None: written by a posta without journals, so the
/// next save writes a snapshot) and its size.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    journal: Option<u64>,
    len: u64,
}

/// A journal smaller than this is never folded into a new snapshot.
const MIN_JOURNAL: u64 = 64 * 1024;

/// An account's state on disk (see the module doc): the snapshot, its journal, and the state
/// they hold, which the next save compares with.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    saved: Saved,
    /// None: no snapshot yet.
    snapshot: Option<Snapshot>,
    /// Bytes of the journal that are the snapshot's (its head and whole lines); 0: none yet.
    journal_len: u64,
}

impl StateFile {
    /// The state at `path` and the file to save it to: an empty state when there is none
    /// yet. Its last complete pass is the later of the state's and the pass record's
    /// ([`AccountState::record_pass`]); a record or a journal without its snapshot (the state
    /// moved away to start over) is not read.
    pub fn open(path: &Path) -> Result<(StateFile, AccountState), StateError> {
        let (state, snapshot, journal_len) = read(path)?;
        let file = StateFile {
            path: path.to_owned(),
            saved: Saved::of(&state),
            snapshot,
            journal_len,
        };
        Ok((file, with_pass_record(path, state, snapshot.is_some())?))
    }

    /// The snapshot's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a snapshot was there or has been written.
    pub fn exists(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Writes `state` durably: what changed since the last save as one journal line, fsync'd;
    /// or, when the journal would outgrow the snapshot, a new snapshot. Nothing when nothing
    /// changed.
    pub fn save(&mut self, state: &AccountState) -> Result<(), StateError> {
        let write_err = |path: &Path, source| StateError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(Snapshot {
            journal: Some(id),
            len: snapshot_len,
        }) = self.snapshot
            && let Some(d) = delta(&self.saved, state)
        {
            if d.is_empty() {
                return Ok(());
            }
            let mut line = serde_json::to_vec(&d).map_err(|e| write_err(&self.path, e.into()))?;
            line.push(b'\n');
            let len = self.journal_len + line.len() as u64;
            if len <= snapshot_len.max(MIN_JOURNAL) {
                let jpath = journal_path(&self.path);
                if self.journal_len == 0 {
                    let mut bytes = head_line(id).map_err(|e| write_err(&jpath, e))?;
                    let head = bytes.len() as u64;
                    bytes.extend_from_slice(&line);
                    crate::durable::replace(&jpath, &bytes, 0o600)
                        .map_err(|e| write_err(&jpath, e))?;
                    self.journal_len = head + line.len() as u64;
                } else {
                    crate::durable::append(&jpath, self.journal_len, &line)
                        .map_err(|e| write_err(&jpath, e))?;
                    self.journal_len = len;
                }
                self.saved.apply(&d);
                return Ok(());
            }
        }
        self.snapshot(state)
    }

    /// Writes `state` as a new snapshot with a new journal id, and removes the old journal.
    fn snapshot(&mut self, state: &AccountState) -> Result<(), StateError> {
        let write_err = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        std::fs::create_dir_all(crate::durable::parent(&self.path)).map_err(write_err)?;
        let id = new_id().map_err(write_err)?;
        let mut bytes = head_line(id).map_err(write_err)?;
        if state.version == VERSION {
            serde_json::to_writer(&mut bytes, state)
        } else {
            let mut body = state.clone();
            body.version = VERSION;
            serde_json::to_writer(&mut bytes, &body)
        }
        .map_err(|e| write_err(e.into()))?;
        crate::durable::replace(&self.path, &bytes, 0o600).map_err(write_err)?;
        // A journal of the old id that stays (this removal failed, or a crash came first) is
        // never read with this snapshot, and the next save replaces it.
        let _ = std::fs::remove_file(journal_path(&self.path));
        self.snapshot = Some(Snapshot {
            journal: Some(id),
            len: bytes.len() as u64,
        });
        self.journal_len = 0;
        self.saved = Saved::of(state);
        Ok(())
    }
}

/// What the snapshot and its journal at `path` hold (no state and no snapshot when there is
/// none), and the length of the journal that is the snapshot's.
fn read(path: &Path) -> Result<(AccountState, Option<Snapshot>, u64), StateError> {
    let read_err = |path: &Path, source| StateError::Read {
        path: path.to_owned(),
        source,
    };
    let damaged = |path: &Path, reason: String| StateError::Damaged {
        path: path.to_owned(),
        reason,
    };
    // The journal before the snapshot: a snapshot written meanwhile is newer than the
    // journal read, and holds all of it.
    let jpath = journal_path(path);
    let journal = read_if_there(&jpath).map_err(|e| read_err(&jpath, e))?;
    let Some(bytes) = read_if_there(path).map_err(|e| read_err(path, e))? else {
        let state = AccountState {
            version: VERSION,
            ..AccountState::default()
        };
        return Ok((state, None, 0));
    };
    let (id, body) = match bytes.iter().position(|&b| b == b'\n') {
        Some(n) => {
            let head: Head = serde_json::from_slice(&bytes[..n])
                .map_err(|e| damaged(path, format!("line 1: {e}")))?;
            (Some(head.journal), &bytes[n + 1..])
        }
        None => (None, &bytes[..]),
    };
    let mut state: AccountState =
        serde_json::from_slice(body).map_err(|e| damaged(path, e.to_string()))?;
    match (state.version, id) {
        (VERSION, Some(_)) | (1, None) => state.version = VERSION,
        (v, _) => return Err(damaged(path, format!("unknown version {v}"))),
    }
    let mut journal_len = 0;
    if let (Some(id), Some(journal)) = (id, journal) {
        journal_len = replay(&journal, id, &mut state, &jpath).map_err(|e| damaged(&jpath, e))?;
    }
    let snapshot = Snapshot {
        journal: id,
        len: bytes.len() as u64,
    };
    Ok((state, Some(snapshot), journal_len))
}

/// `state` with the later of its last complete pass and the pass record's, when there is a
/// snapshot (`exists`) for the record to belong to.
fn with_pass_record(
    path: &Path,
    mut state: AccountState,
    exists: bool,
) -> Result<AccountState, StateError> {
    if !exists {
        return Ok(state);
    }
    let record = pass_path(path);
    let bytes = read_if_there(&record).map_err(|source| StateError::Read {
        path: record.clone(),
        source,
    })?;
    if let Some(bytes) = bytes {
        let r: PassRecord = serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
            path: record.clone(),
            reason: e.to_string(),
        })?;
        state.last_complete_pass = state.last_complete_pass.max(Some(r.last_complete_pass));
    }
    Ok(state)
}

fn read_if_there(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A journal id no other snapshot of this account had.
fn new_id() -> io::Result<u64> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| io::Error::other("the system's random source failed"))?;
    Ok(u64::from_le_bytes(b))
}

fn head_line(id: u64) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(&Head { journal: id }).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Applies the journal `bytes` to the snapshot `state` whose id is `id`; the length of what
/// belongs to it (0 for another snapshot's journal). A torn last line (no newline: its save
/// never returned) is left out.
fn replay(bytes: &[u8], id: u64, state: &mut AccountState, path: &Path) -> Result<u64, String> {
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let Some(head) = lines.next().filter(|l| l.ends_with(b"\n")) else {
        return Ok(0);
    };
    match serde_json::from_slice::<Head>(head) {
        Ok(h) if h.journal == id => {}
        Ok(_) => return Ok(0),
        Err(e) => return Err(format!("line 1: {e}")),
    }
    let mut len = head.len();
    for (n, line) in lines.enumerate() {
        if !line.ends_with(b"\n") {
            tracing::warn!(path = %path.display(), "leaving out a torn last journal line");
            break;
        }
        let d: Delta = serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 2))?;
        apply(state, d).map_err(|e| format!("line {}: {e}", n + 2))?;
        len += line.len();
    }
    Ok(len as u64)
}

impl AccountState {
    /// The state at `path` (see [`StateFile::open`]), to read only: without what a save
    /// would compare with.
    pub fn load(path: &Path) -> Result<AccountState, StateError> {
        let (state, snapshot, _) = read(path)?;
        with_pass_record(path, state, snapshot.is_some())
    }

    /// Records that a pass which changed nothing ended at `when`, in a small file beside the
    /// state at `path`: a mirror every minute of mailboxes that did not change would otherwise
    /// grow every account's journal each time.
    pub fn record_pass(path: &Path, when: u64) -> Result<(), StateError> {
        let record = pass_path(path);
        let bytes = serde_json::to_vec(&PassRecord {
            last_complete_pass: when,
        })
        .map_err(|e| StateError::Write {
            path: record.clone(),
            source: io::Error::other(e),
        })?;
        crate::durable::replace(&record, &bytes, 0o600).map_err(|source| StateError::Write {
            path: record.clone(),
            source,
        })
    }

    /// The folder mirrored to mailserver2 folder `dest` (wire name), and its state.
    pub fn folder_by_dest(&self, dest: &str) -> Option<(&str, &FolderState)> {
        self.folders
            .iter()
            .find(|(_, f)| f.dest == dest)
            .map(|(name, f)| (name.as_str(), f))
    }
}

/// Matches the pending mailserver1 messages to mailserver2 messages by content identity, one
/// to one, each in UID order: `(source uid, dest uid)` pairs. Messages on either side without
/// a partner are left out (not copied yet; not the mirror's).
pub fn adopt(pending: &[(u32, Identity)], candidates: &[(u32, Identity)]) -> Vec<(u32, u32)> {
    let mut free: HashMap<&Identity, Vec<u32>> = HashMap::new();
    let mut sorted = candidates.to_vec();
    sorted.sort_by_key(|(uid, _)| std::cmp::Reverse(*uid));
    for (uid, id) in &sorted {
        free.entry(id).or_default().push(*uid);
    }
    let mut pending = pending.to_vec();
    pending.sort_by_key(|(uid, _)| *uid);
    let mut out = Vec::new();
    for (src, id) in &pending {
        if let Some(dest) = free.get_mut(id).and_then(Vec::pop) {
            out.push((*src, dest));
        }
    }
    out
}

/// A folder's map rebuilt after a UIDVALIDITY change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// mailserver1 UID → copy, for every message found on both sides.
    pub messages: BTreeMap<u32, Copy>,
    /// mailserver2 messages that were mirror copies and match no mailserver1 message any
    /// more: mailserver1 no longer has them.
    pub stale: Vec<u32>,
}

/// Rebuilds a folder's map by content identity. `source`: mailserver1's messages (uid,
/// identity); `dest`: mailserver2's (uid, identity, flags). A mailserver2 message is the
/// mirror's when its identity is that of a copy in `old` or, with `adopt_all` (a folder found
/// on mailserver2 with no state: the state was lost), whenever it matches a mailserver1
/// message. Others are never claimed, never stale.
pub fn rebuild(
    old: &BTreeMap<u32, Copy>,
    source: &[(u32, Identity)],
    dest: &[(u32, Identity, Vec<String>)],
    adopt_all: bool,
) -> Rebuilt {
    let mut ours: HashMap<&Identity, usize> = HashMap::new();
    for c in old.values() {
        *ours.entry(&c.identity).or_default() += 1;
    }
    // Only as many mailserver2 messages of one identity are the mirror's as the old map had.
    let mut claimable: Vec<&(u32, Identity, Vec<String>)> = Vec::new();
    let mut others = Vec::new();
    let mut sorted: Vec<_> = dest.iter().collect();
    sorted.sort_by_key(|d| d.0);
    for d in sorted {
        match ours.get_mut(&d.1) {
            Some(n) if *n > 0 => {
                *n -= 1;
                claimable.push(d);
            }
            _ if adopt_all => claimable.push(d),
            _ => others.push(d.0),
        }
    }
    let pairs = adopt(
        source,
        &claimable
            .iter()
            .map(|(uid, id, _)| (*uid, id.clone()))
            .collect::<Vec<_>>(),
    );
    let by_uid: HashMap<u32, &(u32, Identity, Vec<String>)> =
        claimable.iter().map(|d| (d.0, *d)).collect();
    let mut out = Rebuilt::default();
    for (src, dest_uid) in &pairs {
        let (_, identity, flags) = by_uid[dest_uid];
        out.messages.insert(
            *src,
            Copy {
                dest_uid: *dest_uid,
                flags: flags.clone(),
                identity: identity.clone(),
            },
        );
    }
    let claimed: std::collections::HashSet<u32> = pairs.iter().map(|p| p.1).collect();
    if !adopt_all {
        out.stale = claimable
            .iter()
            .map(|d| d.0)
            .filter(|u| !claimed.contains(u))
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Identity {
        Identity::of(text.as_bytes())
    }

    fn copy(dest_uid: u32, text: &str) -> Copy {
        Copy {
            dest_uid,
            flags: vec!["\\Seen".into()],
            identity: id(text),
        }
    }

    #[test]
    fn identity_is_size_and_hash_of_the_bytes() {
        let a = id("hello\r\n");
        assert_eq!(a.size, 7);
        assert_eq!(a.hash.len(), 64);
        assert_ne!(a, id("hello\n"));
    }

    #[test]
    fn state_round_trips_and_answers_which_copy_is_whose() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/alice.json");
        let (mut file, mut state) = StateFile::open(&path).unwrap();
        assert!(state.folders.is_empty() && !file.exists());
        let mut f = FolderState::new("Projekt&AOQ-".into(), 7, 9);
        f.messages.insert(3, copy(101, "a"));
        f.messages.insert(5, copy(102, "b"));
        f.pending = Some(Pending {
            dest_uidnext: 103,
            source_uids: vec![6, 8],
            written: 1_700_000_000,
        });
        state.folders.insert("Projektä".into(), f);
        state.last_complete_pass = Some(1_700_000_000);
        file.save(&state).unwrap();
        let back = AccountState::load(&path).unwrap();
        assert_eq!(back, state);
        let (name, f) = back.folder_by_dest("Projekt&AOQ-").unwrap();
        assert_eq!(name, "Projektä");
        assert_eq!(f.source_of(102), Some(5));
        assert_eq!(f.source_of(103), None, "not the mirror's");
        std::fs::write(
            &path,
            b"{\"journal\":1}\n{\"version\": 99, \"folders\": {}}",
        )
        .unwrap();
        assert!(matches!(
            AccountState::load(&path),
            Err(StateError::Damaged { .. })
        ));
        std::fs::write(&path, b"{trunc").unwrap();
        assert!(AccountState::load(&path).is_err());
    }

    /// A state with two folders, `n` copies in the first.
    fn sample(n: u32) -> AccountState {
        let mut s = AccountState {
            version: VERSION,
            ..AccountState::default()
        };
        let mut inbox = FolderState::new("INBOX".into(), 1, 2);
        for uid in 1..=n {
            inbox
                .messages
                .insert(uid, copy(100 + uid, &format!("m{uid}")));
        }
        inbox.highest_modseq = Some(10);
        s.folders.insert("INBOX".into(), inbox);
        s.folders
            .insert("Work".into(), FolderState::new("Work".into(), 3, 4));
        s.last_complete_pass = Some(1000);
        s
    }

    /// Every kind of change a pass or a return makes comes back from its journal line.
    #[test]
    fn a_delta_carries_every_change() {
        let old = sample(5);
        let mut new = old.clone();
        let inbox = new.folders.get_mut("INBOX").unwrap();
        inbox.messages.remove(&2);
        inbox.messages.get_mut(&3).unwrap().flags = vec!["\\Flagged".into()];
        inbox.messages.insert(9, copy(200, "new"));
        inbox.highest_modseq = Some(11);
        inbox.settling.push(Settling {
            dest_uidnext: 201,
            identities: vec![id("late")],
            until: 5000,
        });
        // A rename: the folder under a new name, its map whole.
        let work = new.folders.remove("Work").unwrap();
        new.folders.insert("Job".into(), work);
        new.folders
            .insert("Fresh".into(), FolderState::new("Fresh".into(), 5, 6));
        new.last_complete_pass = Some(2000);
        new.moving.push(Moving {
            from: "INBOX".into(),
            to: "Job".into(),
            to_uidnext: 7,
            messages: Vec::new(),
            written: 3,
        });
        let d = delta(&Saved::of(&old), &new).unwrap();
        assert_eq!(d.folders["INBOX"].put.len(), 2, "{d:?}");
        assert_eq!(d.folders["INBOX"].del, [2]);
        assert!(d.folders["Work"].gone);
        let line = serde_json::to_vec(&d).unwrap();
        let mut back = old.clone();
        apply(&mut back, serde_json::from_slice(&line).unwrap()).unwrap();
        assert_eq!(back, new);
        assert!(delta(&Saved::of(&new), &new).unwrap().is_empty());
        let mut unpassed = new.clone();
        unpassed.last_complete_pass = None;
        assert_eq!(
            delta(&Saved::of(&new), &unpassed),
            None,
            "only a snapshot says it"
        );
    }

    /// Saves append small lines to the journal; once it would outgrow the snapshot, a new
    /// snapshot replaces both, and a reader always sees the last save.
    #[test]
    fn saves_journal_what_changed_and_fold_it_into_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.json");
        let jpath = dir.path().join("alice.log");
        let (mut file, _) = StateFile::open(&path).unwrap();
        let mut state = sample(2000);
        file.save(&state).unwrap();
        let snapshot = std::fs::read(&path).unwrap();
        assert!(!jpath.exists(), "the first save is a snapshot");
        file.save(&state).unwrap();
        assert!(!jpath.exists(), "nothing changed, nothing written");
        for round in 0..20u32 {
            let inbox = state.folders.get_mut("INBOX").unwrap();
            inbox.messages.insert(5000 + round, copy(9000 + round, "x"));
            inbox.messages.remove(&(round + 1));
            let flagged = inbox.messages.get_mut(&(round + 100)).unwrap();
            flagged.flags.push("\\Flagged".into());
            file.save(&state).unwrap();
            assert_eq!(AccountState::load(&path).unwrap(), state);
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            snapshot,
            "only the journal grew"
        );
        let journal = std::fs::metadata(&jpath).unwrap().len();
        assert!(journal < 10_000, "{journal} bytes for 20 small saves");
        // A save as large as the snapshot makes a new one.
        for uid in 10_000..14_000 {
            state
                .folders
                .get_mut("Work")
                .unwrap()
                .messages
                .insert(uid, copy(uid, "y"));
        }
        file.save(&state).unwrap();
        assert_ne!(std::fs::read(&path).unwrap(), snapshot);
        assert!(!jpath.exists(), "the journal folded into the snapshot");
        assert_eq!(AccountState::load(&path).unwrap(), state);
        assert_eq!(StateFile::open(&path).unwrap().1, state);
    }

    /// A kill in the middle of a journal write leaves a torn last line: it is left out (the
    /// save never returned) and the next save cuts it off. A damaged line before the last is
    /// refused; a journal of another snapshot is not read.
    #[test]
    fn a_torn_last_line_is_cut_and_other_damage_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.json");
        let jpath = dir.path().join("alice.log");
        let (mut file, _) = StateFile::open(&path).unwrap();
        let mut state = sample(50);
        file.save(&state).unwrap();
        state.last_complete_pass = Some(2000);
        file.save(&state).unwrap();
        let saved = state.clone();
        let good = std::fs::read(&jpath).unwrap();
        let mut torn = good.clone();
        torn.extend_from_slice(b"{\"last_complete_pass\":77");
        std::fs::write(&jpath, &torn).unwrap();
        let (mut file, state) = StateFile::open(&path).unwrap();
        assert_eq!(state, saved);
        let mut state = state;
        state.last_complete_pass = Some(3000);
        file.save(&state).unwrap();
        let after = std::fs::read(&jpath).unwrap();
        assert!(after.starts_with(&good) && !after.windows(3).any(|w| w == b":77"));
        assert_eq!(AccountState::load(&path).unwrap(), state);

        let mut damaged = good.clone();
        damaged.extend_from_slice(b"{oops\n{}\n");
        std::fs::write(&jpath, &damaged).unwrap();
        let e = AccountState::load(&path).unwrap_err();
        assert!(e.to_string().contains("alice.log"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");

        // The state moved away to start over: its journal is another snapshot's.
        std::fs::write(&jpath, &good).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (mut file, fresh) = StateFile::open(&path).unwrap();
        assert!(fresh.folders.is_empty());
        let mut other = sample(1);
        file.save(&other).unwrap();
        other.last_complete_pass = Some(4000);
        assert_eq!(
            AccountState::load(&path).unwrap().last_complete_pass,
            Some(1000)
        );
        file.save(&other).unwrap();
        assert_eq!(AccountState::load(&path).unwrap(), other);
    }

    /// A state an earlier posta wrote (version 1, no journal) is read, and the first save
    /// writes a snapshot with its journal id rather than a journal it could not name.
    #[test]
    fn a_version_1_state_is_read_and_its_first_save_is_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.json");
        let mut old = sample(3);
        old.version = 1;
        std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        let (mut file, mut state) = StateFile::open(&path).unwrap();
        assert_eq!(state.folders, old.folders);
        assert_eq!(state.version, VERSION);
        state.last_complete_pass = Some(5000);
        file.save(&state).unwrap();
        assert!(!dir.path().join("alice.log").exists());
        assert!(std::fs::read(&path).unwrap().starts_with(b"{\"journal\":"));
        assert_eq!(AccountState::load(&path).unwrap(), state);
    }

    /// A kill after two of three APPENDs: the two copies are adopted, the third is left to
    /// copy, and a message someone else stored meanwhile is not claimed.
    #[test]
    fn a_pending_batch_is_adopted_by_content() {
        let pending = [(10, id("m10")), (11, id("m11")), (12, id("m12"))];
        let candidates = [
            (50, id("m10")),
            (51, id("delivered by mta")),
            (52, id("m11")),
        ];
        assert_eq!(adopt(&pending, &candidates), [(10, 50), (11, 52)]);
    }

    /// Two identical messages pending, one copy made: exactly one is adopted.
    #[test]
    fn identical_messages_are_adopted_one_to_one() {
        let pending = [(1, id("same")), (2, id("same"))];
        assert_eq!(adopt(&pending, &[(9, id("same"))]), [(1, 9)]);
        assert_eq!(
            adopt(&pending, &[(9, id("same")), (8, id("same"))]),
            [(1, 8), (2, 9)]
        );
    }

    /// mailserver1's folder was recreated (new UIDVALIDITY, new UIDs): the copies are found
    /// again by content, the one mailserver1 lost is stale, a foreign message is untouched,
    /// and nothing is to be copied twice.
    #[test]
    fn a_uidvalidity_change_rebuilds_by_content() {
        let mut old = BTreeMap::new();
        old.insert(1, copy(101, "a"));
        old.insert(2, copy(102, "b"));
        old.insert(3, copy(103, "c"));
        let source = [(7, id("a")), (8, id("c")), (9, id("new"))];
        let dest = [
            (101, id("a"), vec![]),
            (102, id("b"), vec![]),
            (103, id("c"), vec!["\\Flagged".to_owned()]),
            (104, id("foreign"), vec![]),
            (105, id("new"), vec![]),
        ];
        let r = rebuild(&old, &source, &dest, false);
        let pairs: Vec<_> = r.messages.iter().map(|(s, c)| (*s, c.dest_uid)).collect();
        assert_eq!(pairs, [(7, 101), (8, 103)]);
        assert_eq!(r.messages[&8].flags, ["\\Flagged"]);
        assert_eq!(r.stale, [102]);
        // Lost state: everything that matches is adopted, nothing is stale.
        let r = rebuild(&BTreeMap::new(), &source, &dest, true);
        let pairs: Vec<_> = r.messages.iter().map(|(s, c)| (*s, c.dest_uid)).collect();
        assert_eq!(pairs, [(7, 101), (8, 103), (9, 105)]);
        assert!(r.stale.is_empty());
    }

    /// A pass that changed nothing writes only its end beside the state; loading takes the
    /// later of the two, whichever was written last.
    #[test]
    fn a_pass_record_moves_the_last_pass_and_the_state_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.json");
        let (mut file, mut state) = StateFile::open(&path).unwrap();
        assert_eq!(state.last_complete_pass, None);
        state.last_complete_pass = Some(1000);
        file.save(&state).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        AccountState::record_pass(&path, 2000).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(
            AccountState::load(&path).unwrap().last_complete_pass,
            Some(2000)
        );
        state.last_complete_pass = Some(3000);
        file.save(&state).unwrap();
        assert_eq!(
            AccountState::load(&path).unwrap().last_complete_pass,
            Some(3000)
        );
        std::fs::write(dir.path().join("alice.pass"), b"{").unwrap();
        let e = AccountState::load(&path).unwrap_err();
        assert!(e.to_string().contains("alice.pass"), "{e}");
        // The state moved away to start over: its old pass record does not count.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(AccountState::load(&path).unwrap().last_complete_pass, None);
    }
}
