//! What other commands read of the mirror's state files: each account's lag (time since its
//! last complete pass) for `posta status`, `/metrics`, `posta check backup` and the takeover's
//! report, and its copies on mailserver2 for the sweep, which must leave them in place.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state::AccountState;
use crate::migrate::plan::MirrorCopies;

/// The mailserver2 messages the mirror put there, by folder wire name under the UIDVALIDITY
/// it recorded. A pending batch (APPENDs whose state write may not have happened) counts
/// every message at or above its UIDNEXT that is in no map as a copy too: the next pass
/// adopts them, and until then sending them back could double them.
pub fn copies(state: &AccountState) -> MirrorCopies {
    let mut out = MirrorCopies::default();
    for f in state.folders.values() {
        out.contents
            .extend(f.messages.values().map(|c| c.identity.hash.clone()));
        let mut uids: HashSet<u32> = f.dest_uids().into_iter().collect();
        if let Some(p) = &f.pending {
            out.pending_from.insert(f.dest.clone(), p.dest_uidnext);
        }
        let entry = out
            .folders
            .entry(f.dest.clone())
            .or_insert((f.dest_uidvalidity, HashSet::new()));
        entry.1.extend(uids.drain());
    }
    out
}

/// One account's mirror as its state file shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLag {
    pub account: String,
    /// Unix time of the end of its last complete pass; None: never.
    pub last_pass: Option<u64>,
    /// Seconds since then; None: never.
    pub lag_seconds: Option<u64>,
    /// mailserver1 messages of an interrupted batch, copied or not yet known (the next pass
    /// settles them).
    pub pending: usize,
    /// Why the state could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AccountLag {
    /// Whether the mirror is older than `max_lag` (or never completed a pass).
    pub fn stale(&self, max_lag: u64) -> bool {
        self.lag_seconds.is_none_or(|l| l > max_lag)
    }

    /// The lag for people: `12s`, `never`, or why it is unknown.
    pub fn describe(&self) -> String {
        match (&self.error, self.lag_seconds) {
            (Some(e), _) => format!("unknown ({e})"),
            (None, Some(s)) => crate::config::format_duration(std::time::Duration::from_secs(s)),
            (None, None) => "never".into(),
        }
    }
}

/// The lag of each of `accounts` from the state files in `dir`, at Unix time `now` (a state
/// file an earlier posta named is read where it is; the next pass renames it).
pub fn lags(dir: &Path, accounts: &[String], now: u64) -> Vec<AccountLag> {
    let ids: Vec<&str> = accounts.iter().map(String::as_str).collect();
    accounts
        .iter()
        .map(|name| {
            let state = crate::durable::state_file_to_read(dir, name, &ids, super::STATE_EXT)
                .map_err(|e| e.to_string())
                .and_then(|path| AccountState::load(&path).map_err(|e| e.to_string()));
            (name, state)
        })
        .map(|(name, state)| match state {
            Ok(s) => AccountLag {
                account: name.clone(),
                last_pass: s.last_complete_pass,
                lag_seconds: s.last_complete_pass.map(|t| now.saturating_sub(t)),
                pending: s
                    .folders
                    .values()
                    .filter_map(|f| f.pending.as_ref())
                    .map(|p| p.source_uids.len())
                    .sum(),
                error: None,
            },
            Err(e) => AccountLag {
                account: name.clone(),
                last_pass: None,
                lag_seconds: None,
                pending: 0,
                error: Some(e),
            },
        })
        .collect()
}

/// The oldest of `lags` (None when some account never completed a pass or is unreadable):
/// what a takeover reports, since the most stale account is what its users find.
pub fn oldest_pass(lags: &[AccountLag]) -> Option<u64> {
    lags.iter()
        .map(|l| l.last_pass.filter(|_| l.error.is_none()))
        .try_fold(u64::MAX, |min, t| t.map(|t| min.min(t)))
        .filter(|&t| t != u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::state::{Copy, FolderState, Identity, Pending, StateFile};
    use crate::mirror::state_path;

    fn state() -> AccountState {
        let mut f = FolderState::new("Work".into(), 7, 42);
        for (src, dest) in [(1, 10), (2, 11)] {
            f.messages.insert(
                src,
                Copy {
                    dest_uid: dest,
                    flags: Vec::new(),
                    identity: Identity::of(b"x"),
                },
            );
        }
        f.pending = Some(Pending {
            dest_uidnext: 12,
            source_uids: vec![3, 4],
            written: 900,
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = AccountState::load(&dir.path().join("none.json")).expect("an empty state");
        s.folders.insert("Work".into(), f);
        s.last_complete_pass = Some(1000);
        s
    }

    fn save(path: &std::path::Path) {
        let (mut file, _) = StateFile::open(path).expect("open");
        file.save(&state()).expect("save");
    }

    #[test]
    fn copies_are_named_by_destination_folder_and_uidvalidity() {
        let c = copies(&state());
        let uids = c.in_folder("Work", 42).expect("the folder's copies");
        assert!(uids.contains(&10) && uids.contains(&11) && uids.len() == 2);
        assert!(c.in_folder("Work", 43).is_none(), "another UIDVALIDITY");
        assert!(c.in_folder("INBOX", 42).is_none());
        assert!(c.is_copy("Work", 42, 10));
        assert!(
            c.is_copy("Work", 42, 12),
            "at or above a pending batch's UIDNEXT"
        );
        assert!(!c.is_copy("Work", 42, 9));
        assert!(!c.is_copy("Work", 43, 12));
    }

    #[test]
    fn lag_counts_from_the_last_complete_pass_and_pending_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        save(&state_path(dir.path(), "alice"));
        let l = lags(dir.path(), &["alice".into(), "bob".into()], 1030);
        assert_eq!(l[0].lag_seconds, Some(30));
        assert_eq!(l[0].pending, 2);
        assert!(!l[0].stale(60) && l[0].stale(29));
        assert_eq!(l[1].lag_seconds, None, "bob never had a pass");
        assert!(l[1].stale(u64::MAX));
        assert_eq!(l[1].describe(), "never");
        assert_eq!(oldest_pass(&l), None, "one account never mirrored");
        assert_eq!(oldest_pass(&l[..1]), Some(1000));
    }

    /// An account whose state file an earlier posta named (`a b` → `a_b.json`): its lag
    /// shows before the next pass renames the file, and the file stays where it is.
    #[test]
    fn lag_reads_a_state_file_under_its_old_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("a_b.json");
        save(&old);
        let l = lags(dir.path(), &["a b".into()], 1030);
        assert_eq!(l[0].lag_seconds, Some(30), "{l:?}");
        assert!(old.exists());
        // With "a_b" configured too, whose file it is is in doubt: both say so.
        let l = lags(dir.path(), &["a b".into(), "a_b".into()], 1030);
        for a in &l {
            let e = a.error.as_deref().unwrap_or_default();
            assert!(e.contains("a_b.json"), "{a:?}");
            assert!(a.describe().starts_with("unknown"), "{a:?}");
        }
    }
}
