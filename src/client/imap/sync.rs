//! What `posta mirror` adds to the session: ENABLE QRESYNC (RFC 5161, RFC 7162 §3.2.3), a
//! SELECT that resynchronizes (VANISHED and changed flags in its answer), flag scans with and
//! without CHANGEDSINCE, flags replaced with UID STORE, RENAME and DELETE; and for the return
//! after a failback, messages moved between mailboxes (UID MOVE).

use super::wire::Limits;
use super::{ImapClient, ImapError, Selected};
use crate::proto::imap_cmd::{self, Command};
use crate::proto::imap_data::Data;
use crate::proto::imap_fetch::{FlagsOf, Partials};
use crate::proto::imap_select::SelectState;
use crate::proto::imap_sync::{self, UidRanges};

/// `* VANISHED` and flag scans put many UIDs on one line: a mailbox with scattered expunges
/// needs more than [`crate::proto::MAX_LINE`].
const MAX_SYNC_LINE: usize = 1 << 20;

/// A mailbox selected with what changed since a known state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resync {
    pub selected: Selected,
    /// UIDs expunged since the known mod-sequence (`* VANISHED (EARLIER)`).
    pub vanished: UidRanges,
    /// Messages changed or added since the known mod-sequence, with their flags.
    pub changed: Vec<FlagsOf>,
}

impl ImapClient {
    /// `ENABLE QRESYNC` when the server announced QRESYNC: whether it is now on. Afterwards
    /// [`ImapClient::select_since`] resynchronizes in the SELECT itself.
    pub async fn enable_qresync(&mut self) -> Result<bool, ImapError> {
        if !self.has_capability("QRESYNC") || !self.has_capability("ENABLE") {
            return Ok(false);
        }
        let cmd = self.simple("ENABLE QRESYNC");
        let mut on = false;
        let done = self
            .run(cmd, "ENABLE QRESYNC", Limits::SMALL, |d| {
                if let Data::Enabled(names) = d {
                    on |= names.iter().any(|n| n.eq_ignore_ascii_case("QRESYNC"));
                }
                Ok(())
            })
            .await?;
        self.check(done, "ENABLE QRESYNC")?;
        self.qresync = on;
        Ok(on)
    }

    /// Whether `ENABLE QRESYNC` succeeded on this session.
    pub fn qresync_enabled(&self) -> bool {
        self.qresync
    }

    /// SELECT (or EXAMINE when `read_only`) that asks what changed since `known`
    /// (uidvalidity, mod-sequence): with QRESYNC enabled the answer carries the VANISHED UIDs
    /// and the changed messages (RFC 7162 §3.2.5); otherwise, or without `known`, it is a
    /// plain select (with `(CONDSTORE)` when offered, so HIGHESTMODSEQ is reported) and both
    /// lists are empty. A server that no longer has `known`'s UIDVALIDITY answers as to a plain
    /// select: compare [`Selected::uidvalidity`].
    pub async fn select_since(
        &mut self,
        raw_name: &str,
        read_only: bool,
        known: Option<(u32, u64)>,
    ) -> Result<Resync, ImapError> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let param = match known {
            Some((validity, modseq)) if self.qresync => {
                Some(imap_sync::qresync_param(validity, modseq))
            }
            _ if self.has_capability("CONDSTORE") => Some("(CONDSTORE)".to_owned()),
            _ => None,
        };
        let what = format!("{verb} {raw_name:?}");
        let tag = self.tags.next_tag();
        let mut cmd = Command::build(&tag, verb, self.literal_mode()).astring(raw_name);
        if let Some(p) = &param {
            cmd = cmd.raw(p);
        }
        let mut state = SelectState::default();
        let mut vanished = UidRanges::default();
        let mut partials = Partials::default();
        let limits = Limits {
            line: MAX_SYNC_LINE,
            ..Limits::SMALL
        };
        let done = self
            .run(cmd.finish(), &what, limits, |d| {
                state.observe(&d)?;
                match d {
                    Data::Vanished { uids, .. } => vanished.extend(&uids),
                    Data::Fetch(f) => {
                        let merged = partials.merge(f);
                        partials.keep(merged);
                    }
                    _ => {}
                }
                Ok(())
            })
            .await?;
        self.check(done.clone(), &what)?;
        let selected = state
            .finish(&done, read_only)
            .map_err(|reason| self.malformed(&what, reason))?;
        let changed = flags_of(partials);
        Ok(Resync {
            selected,
            vanished,
            changed,
        })
    }

    /// Every message's UID and flags in the selected mailbox (`UID FETCH 1:* (UID FLAGS)`),
    /// or with `since` only those changed since that mod-sequence (`(UID FLAGS MODSEQ)
    /// (CHANGEDSINCE n)`, CONDSTORE, RFC 7162 §3.1.4.1). Sorted by UID.
    pub async fn fetch_flags(&mut self, since: Option<u64>) -> Result<Vec<FlagsOf>, ImapError> {
        let items = match since {
            Some(n) => format!("(UID FLAGS MODSEQ) {}", imap_sync::changedsince(n)),
            None => "(UID FLAGS)".to_owned(),
        };
        self.fetch_flags_in("1:*", &items).await
    }

    /// The UID and flags of each of `uids` still in the selected mailbox (`UID FETCH set (UID
    /// FLAGS)`), sorted by UID.
    pub async fn fetch_flags_of(&mut self, uids: &[u32]) -> Result<Vec<FlagsOf>, ImapError> {
        match imap_cmd::uid_set(uids) {
            Some(set) => self.fetch_flags_in(&set, "(UID FLAGS)").await,
            None => Ok(Vec::new()),
        }
    }

    async fn fetch_flags_in(&mut self, set: &str, items: &str) -> Result<Vec<FlagsOf>, ImapError> {
        let what = format!("UID FETCH {set} {items}");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "UID FETCH", self.literal_mode())
            .raw(set)
            .raw(items)
            .finish();
        let mut partials = Partials::default();
        let limits = Limits {
            line: MAX_SYNC_LINE,
            ..Limits::SMALL
        };
        let done = self
            .run(cmd, &what, limits, |d| {
                match d {
                    Data::Fetch(f) => {
                        let merged = partials.merge(f);
                        partials.keep(merged);
                    }
                    Data::Expunge(seq) => partials.expunged(seq),
                    _ => {}
                }
                Ok(())
            })
            .await?;
        self.check(done, &what)?;
        Ok(flags_of(partials))
    }

    /// Replaces the flags of `uids` with `flags` (`UID STORE set FLAGS.SILENT (...)`, RFC 3501
    /// §6.4.6). `\Recent` is left out: no client can set it.
    pub async fn store_flags(&mut self, uids: &[u32], flags: &[String]) -> Result<(), ImapError> {
        let Some(set) = imap_cmd::uid_set(uids) else {
            return Ok(());
        };
        let list = imap_cmd::flag_list(flags).map_err(|reason| ImapError::Argument {
            command: "UID STORE".into(),
            reason,
        })?;
        let what = format!("UID STORE {set} FLAGS.SILENT {list}");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "UID STORE", self.literal_mode())
            .raw(&set)
            .raw(&format!("FLAGS.SILENT {list}"))
            .finish();
        let done = self.run(cmd, &what, Limits::SMALL, |_| Ok(())).await?;
        self.check(done, &what)
    }

    /// RENAME (RFC 3501 §6.3.5): the mailbox, its messages and UIDVALIDITY, and its children.
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), ImapError> {
        let what = format!("RENAME {from:?} {to:?}");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "RENAME", self.literal_mode())
            .astring(from)
            .astring(to)
            .finish();
        let done = self.run(cmd, &what, Limits::SMALL, |_| Ok(())).await?;
        self.check(done, &what)
    }

    /// Moves `uids` of the selected mailbox to mailbox `to` (wire name): `UID MOVE` (RFC 6851)
    /// when the server has MOVE, one atomic step. Without MOVE: `UID COPY`, then `\Deleted`
    /// and UID EXPUNGE of exactly them, which needs UIDPLUS (RFC 4315) and is two steps: a
    /// caller that may be killed between them must find the copies (by content) before it
    /// moves again. Returns whether the move was atomic.
    pub async fn move_uids(&mut self, uids: &[u32], to: &str) -> Result<bool, ImapError> {
        let Some(set) = imap_cmd::uid_set(uids) else {
            return Ok(true);
        };
        let atomic = self.has_capability("MOVE");
        if !atomic && !self.has_capability("UIDPLUS") {
            return Err(ImapError::Argument {
                command: format!("UID MOVE {set} {to:?}"),
                reason: crate::proto::ProtoError::BadArgument(
                    "the server has neither MOVE (RFC 6851) nor UIDPLUS (RFC 4315): a move \
                     would expunge other clients' deleted messages too"
                        .into(),
                ),
            });
        }
        let verb = if atomic { "UID MOVE" } else { "UID COPY" };
        let what = format!("{verb} {set} {to:?}");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, verb, self.literal_mode())
            .raw(&set)
            .astring(to)
            .finish();
        let done = self.run(cmd, &what, Limits::SMALL, |_| Ok(())).await?;
        self.check(done, &what)?;
        if !atomic {
            self.store_deleted(uids).await?;
            self.expunge(uids).await?;
        }
        Ok(atomic)
    }

    /// DELETE (RFC 3501 §6.3.4) of a mailbox and the messages in it.
    pub async fn delete(&mut self, raw_name: &str) -> Result<(), ImapError> {
        let what = format!("DELETE {raw_name:?}");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "DELETE", self.literal_mode())
            .astring(raw_name)
            .finish();
        let done = self.run(cmd, &what, Limits::SMALL, |_| Ok(())).await?;
        self.check(done, &what)
    }
}

/// The complete (UID and FLAGS) records, sorted by UID; flag updates without a UID, which
/// servers send unasked for messages of other sessions, are dropped.
fn flags_of(partials: Partials) -> Vec<FlagsOf> {
    let mut out: Vec<FlagsOf> = partials
        .into_records()
        .filter_map(|f| f.into_flags().ok())
        .collect();
    out.sort_by_key(|f| f.uid);
    out.dedup_by_key(|f| f.uid);
    out
}
