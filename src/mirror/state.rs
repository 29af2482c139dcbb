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
//! The file is JSON, replaced through [`crate::durable`] (write, fsync, rename, fsync the
//! directory): a kill or a power failure leaves the old state or the new one.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use ring::digest;
use serde::{Deserialize, Serialize};

/// Bumped when the layout changes incompatibly; an unknown version is refused, not guessed.
const VERSION: u32 = 1;

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

impl AccountState {
    /// The state at `path`, or an empty one when there is none yet; its last complete pass
    /// is the later of the state's and the pass record's ([`AccountState::record_pass`]). A
    /// record without its state (the state moved away to start over) is not read.
    pub fn load(path: &Path) -> Result<AccountState, StateError> {
        let Some(mut state) = AccountState::load_file(path)? else {
            return Ok(AccountState {
                version: VERSION,
                ..AccountState::default()
            });
        };
        let record = pass_path(path);
        match std::fs::read(&record) {
            Ok(bytes) => {
                let r: PassRecord =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
                        path: record,
                        reason: e.to_string(),
                    })?;
                state.last_complete_pass = state.last_complete_pass.max(Some(r.last_complete_pass));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StateError::Read {
                    path: record,
                    source,
                });
            }
        }
        Ok(state)
    }

    /// Records that a pass which changed nothing ended at `when`, in a small file beside the
    /// state at `path`: a mirror every minute of mailboxes that did not change would otherwise
    /// rewrite every account's whole state (megabytes for a large mailbox) each time.
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

    fn load_file(path: &Path) -> Result<Option<AccountState>, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let damaged = |reason: String| StateError::Damaged {
            path: path.to_owned(),
            reason,
        };
        let state: AccountState =
            serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        if state.version != VERSION {
            return Err(damaged(format!("unknown version {}", state.version)));
        }
        Ok(Some(state))
    }

    /// Writes the state durably (see the module doc).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let write = |source| StateError::Write {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(crate::durable::parent(path)).map_err(write)?;
        let bytes = serde_json::to_vec(self).map_err(|e| write(io::Error::other(e)))?;
        crate::durable::replace(path, &bytes, 0o600).map_err(write)
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
        let mut state = AccountState::load(&path).unwrap();
        assert!(state.folders.is_empty());
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
        state.save(&path).unwrap();
        let back = AccountState::load(&path).unwrap();
        assert_eq!(back, state);
        let (name, f) = back.folder_by_dest("Projekt&AOQ-").unwrap();
        assert_eq!(name, "Projektä");
        assert_eq!(f.source_of(102), Some(5));
        assert_eq!(f.source_of(103), None, "not the mirror's");
        std::fs::write(&path, b"{\"version\": 99, \"folders\": {}}").unwrap();
        assert!(matches!(
            AccountState::load(&path),
            Err(StateError::Damaged { .. })
        ));
        std::fs::write(&path, b"{trunc").unwrap();
        assert!(AccountState::load(&path).is_err());
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
        let mut state = AccountState::load(&path).unwrap();
        assert_eq!(state.last_complete_pass, None);
        state.last_complete_pass = Some(1000);
        state.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        AccountState::record_pass(&path, 2000).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(
            AccountState::load(&path).unwrap().last_complete_pass,
            Some(2000)
        );
        state.last_complete_pass = Some(3000);
        state.save(&path).unwrap();
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
