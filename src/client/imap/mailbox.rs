//! Mailbox commands: LIST (with NAMESPACE, RFC 2342), SELECT/EXAMINE, CREATE, UID SEARCH,
//! UID STORE, (UID) EXPUNGE and APPEND.

use super::wire::Limits;
use super::{ImapClient, ImapError, MailboxInfo, Selected};
use crate::proto::imap::Cond;
use crate::proto::imap_cmd::{self, Command};
use crate::proto::imap_data::{Data, Namespaces};
use crate::proto::imap_select::{SelectState, append_uid, append_uids};

/// `* SEARCH` puts every matching UID on one line (RFC 3501 §7.2.5): about 100 000 UIDs fit.
/// Narrow the criteria (`UID 1:50000 ALL`) for larger mailboxes.
const MAX_SEARCH_LINE: usize = 1 << 20;

impl ImapClient {
    /// The personal mailboxes: `LIST "" "*"` (RFC 3501 §6.3.8), without other users' and
    /// shared namespaces when the server has NAMESPACE (RFC 2342): a migration copies the
    /// user's own folders, and `*` would also match those of everyone the user can see.
    /// `\Noselect` nodes are kept, marked, so the hierarchy can be recreated.
    pub async fn list(&mut self) -> Result<Vec<MailboxInfo>, ImapError> {
        let namespaces = if self.has_capability("NAMESPACE") {
            Some(self.namespace().await?)
        } else {
            None
        };
        let found = self.list_matching("*").await?;
        Ok(found
            .into_iter()
            .filter(|m| namespaces.as_ref().is_none_or(|ns| ns.is_personal(m)))
            .collect())
    }

    /// SELECT, or EXAMINE when `read_only` (RFC 3501 §6.3.1-§6.3.2), of a mailbox by its wire
    /// name ([`MailboxInfo::raw_name`]).
    pub async fn select(&mut self, raw_name: &str, read_only: bool) -> Result<Selected, ImapError> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let what = format!("{verb} {raw_name:?}");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, verb, self.literal_mode())
            .astring(raw_name)
            .finish();
        let mut state = SelectState::default();
        let done = self
            .run(cmd, &what, Limits::SMALL, |d| state.observe(&d))
            .await?;
        self.check(done.clone(), &what)?;
        state
            .finish(&done, read_only)
            .map_err(|reason| self.malformed(&what, reason))
    }

    /// UID SEARCH (RFC 3501 §6.4.4) in the selected mailbox, e.g. `ALL`, `UNSEEN`, or
    /// [`imap_cmd::search_header`]'s `HEADER "X-Posta-Id" "..."`. UIDs come back sorted.
    pub async fn uid_search(&mut self, criteria: &str) -> Result<Vec<u32>, ImapError> {
        let what = format!("UID SEARCH {criteria}");
        let criteria =
            imap_cmd::check_criteria(criteria).map_err(|reason| ImapError::Argument {
                command: "UID SEARCH".into(),
                reason,
            })?;
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "UID SEARCH", self.literal_mode())
            .raw(criteria)
            .finish();
        let limits = Limits {
            line: MAX_SEARCH_LINE,
            ..Limits::SMALL
        };
        let mut uids = Vec::new();
        let done = self
            .run(cmd, &what, limits, |d| {
                if let Data::Search(found) = d {
                    uids.extend(found);
                }
                Ok(())
            })
            .await?;
        self.check(done, &what)?;
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// Marks messages `\Deleted` (`UID STORE set +FLAGS.SILENT (\Deleted)`, RFC 3501 §6.4.6).
    pub async fn store_deleted(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        let Some(set) = imap_cmd::uid_set(uids) else {
            return Ok(());
        };
        let what = format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "UID STORE", self.literal_mode())
            .raw(&set)
            .raw("+FLAGS.SILENT (\\Deleted)")
            .finish();
        let done = self.run(cmd, &what, Limits::SMALL, |_| Ok(())).await?;
        self.check(done, &what)
    }

    /// Removes `\Deleted` messages: exactly `uids` with UID EXPUNGE when the server has UIDPLUS
    /// (RFC 4315 §2.1). Without UIDPLUS plain EXPUNGE (RFC 3501 §6.4.3) removes every message
    /// marked `\Deleted` in the mailbox, including ones another client marked.
    pub async fn expunge(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        let Some(set) = imap_cmd::uid_set(uids) else {
            return Ok(());
        };
        let tag = self.tags.next_tag();
        let (cmd, what) = if self.has_capability("UIDPLUS") {
            let cmd = Command::build(&tag, "UID EXPUNGE", self.literal_mode()).raw(&set);
            (cmd.finish(), format!("UID EXPUNGE {set}"))
        } else {
            let cmd = Command::build(&tag, "EXPUNGE", self.literal_mode());
            (cmd.finish(), "EXPUNGE".to_owned())
        };
        let done = self.run(cmd, &what, Limits::SMALL, |_| Ok(())).await?;
        self.check(done, &what)
    }

    /// CREATE (RFC 3501 §6.3.3). A mailbox that already exists is success: the server says
    /// `[ALREADYEXISTS]` (RFC 5530), or a plain NO and a LIST then finds the name.
    pub async fn create(&mut self, raw_name: &str) -> Result<(), ImapError> {
        let what = format!("CREATE {raw_name:?}");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "CREATE", self.literal_mode())
            .astring(raw_name)
            .finish();
        let done = self.run(cmd, &what, Limits::SMALL, |_| Ok(())).await?;
        let exists = done.cond == Cond::Ok
            || done
                .code
                .as_ref()
                .is_some_and(|c| c.name == "ALREADYEXISTS")
            || (done.cond == Cond::No
                && self
                    .list_matching(raw_name)
                    .await?
                    .iter()
                    .any(|m| m.raw_name == raw_name && !m.noselect));
        if exists {
            Ok(())
        } else {
            self.check(done, &what)
        }
    }

    /// APPEND (RFC 3501 §6.3.11) of one message with its flags and, when given, its
    /// INTERNALDATE as the source sent it. The body goes as a literal: at once with LITERAL+
    /// (RFC 7888), else after the server's `+`. Returns `(uidvalidity, uid)` of the new
    /// message from APPENDUID when the server has UIDPLUS (RFC 4315 §3). `\Recent` in `flags`
    /// is left out; a NO `[TRYCREATE]` means the mailbox does not exist.
    pub async fn append(
        &mut self,
        raw_name: &str,
        flags: &[String],
        internal_date: Option<&str>,
        body: &[u8],
    ) -> Result<Option<(u32, u32)>, ImapError> {
        let what = format!("APPEND {raw_name:?}");
        let argument = |reason| ImapError::Argument {
            command: what.clone(),
            reason,
        };
        let flags = imap_cmd::flag_list(flags).map_err(argument)?;
        let date = internal_date
            .map(imap_cmd::check_date_time)
            .transpose()
            .map_err(argument)?;
        let tag = self.tags.next_tag();
        let mut cmd = Command::build(&tag, "APPEND", self.literal_mode())
            .astring(raw_name)
            .raw(&flags);
        if let Some(date) = date {
            cmd = cmd.raw(&format!("\"{date}\""));
        }
        let cmd = cmd.literal(body).finish();
        let done = self.run(cmd, &what, Limits::SMALL, |_| Ok(())).await?;
        self.check(done.clone(), &what)?;
        append_uid(&done).map_err(|reason| self.malformed(&what, reason))
    }

    /// MULTIAPPEND (RFC 3502): `messages` (flags, INTERNALDATE, body) in one APPEND, which
    /// the server stores all or none, in one transaction. Returns `(uidvalidity, uids)` in the
    /// order of `messages` from APPENDUID (RFC 4315). Only when the server announced
    /// MULTIAPPEND; an empty list is refused (APPEND needs a message).
    pub async fn append_many(
        &mut self,
        raw_name: &str,
        messages: &[(&[String], &str, &[u8])],
    ) -> Result<Option<(u32, Vec<u32>)>, ImapError> {
        let what = format!("APPEND {raw_name:?} ({} messages)", messages.len());
        let argument = |reason| ImapError::Argument {
            command: what.clone(),
            reason,
        };
        if messages.is_empty() {
            return Err(argument(crate::proto::ProtoError::BadArgument(
                "no message to append".into(),
            )));
        }
        let mut heads = Vec::with_capacity(messages.len());
        for (flags, date, _) in messages {
            let flags = imap_cmd::flag_list(flags).map_err(argument)?;
            let date = imap_cmd::check_date_time(date).map_err(argument)?;
            heads.push(format!("{flags} \"{date}\""));
        }
        let tag = self.tags.next_tag();
        let mut cmd = Command::build(&tag, "APPEND", self.literal_mode()).astring(raw_name);
        for (head, (_, _, body)) in heads.iter().zip(messages) {
            cmd = cmd.raw(head).literal(body);
        }
        let done = self
            .run(cmd.finish(), &what, Limits::SMALL, |_| Ok(()))
            .await?;
        self.check(done.clone(), &what)?;
        append_uids(&done, messages.len()).map_err(|reason| self.malformed(&what, reason))
    }

    /// NAMESPACE (RFC 2342 §5).
    async fn namespace(&mut self) -> Result<Namespaces, ImapError> {
        let cmd = self.simple("NAMESPACE");
        let mut found = Namespaces::default();
        let done = self
            .run(cmd, "NAMESPACE", Limits::SMALL, |d| {
                if let Data::Namespace(ns) = d {
                    found = ns;
                }
                Ok(())
            })
            .await?;
        self.check(done, "NAMESPACE")?;
        Ok(found)
    }

    /// `LIST "" pattern`.
    async fn list_matching(&mut self, pattern: &str) -> Result<Vec<MailboxInfo>, ImapError> {
        let what = format!("LIST \"\" {pattern:?}");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "LIST \"\"", self.literal_mode())
            .astring(pattern)
            .finish();
        let mut found = Vec::new();
        let done = self
            .run(cmd, &what, Limits::SMALL, |d| {
                if let Data::List(m) = d {
                    found.push(m);
                }
                Ok(())
            })
            .await?;
        self.check(done, &what)?;
        Ok(found)
    }
}
