//! What a migration is asked to do: accounts (a source mailbox, where its mail goes) and the
//! options that apply to all of them. Built by `cmd::migrate` from the site file or from URLs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::imap::{ImapClient, ImapError};
use crate::client::smtp::Dialect;
use crate::client::{Endpoint, Login};

/// How a source mailbox is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Imap,
    Pop3,
    /// The Maildir itself, on this host (posta runs on mailserver2): no login at all.
    Maildir,
}

impl SourceKind {
    /// The `with` word of the trace header, as fetchmail writes it. A Maildir read from disk
    /// crossed no protocol: `local` is what Exim writes for mail that did not arrive over the
    /// network, and claiming IMAP would send a reader looking for a session that never was.
    pub fn trace_name(self) -> &'static str {
        match self {
            SourceKind::Imap => "IMAP",
            SourceKind::Pop3 => "POP3",
            SourceKind::Maildir => "local",
        }
    }
}

/// A mailbox on mailserver2.
#[derive(Debug, Clone)]
pub struct Source {
    pub kind: SourceKind,
    /// The server (IMAP, POP3); for a Maildir this host, as the trace header's `from`.
    pub endpoint: Endpoint,
    /// The user, and for IMAP and POP3 the credentials (a Maildir needs none).
    pub login: Login,
    /// The user's Maildir ([`SourceKind::Maildir`] only).
    pub maildir: Option<PathBuf>,
}

/// mailserver1's SMTP or LMTP listener, for INBOX mail (so its filters and quotas apply).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub endpoint: Endpoint,
    pub dialect: Dialect,
    pub helo: String,
}

/// An IMAP login on mailserver1: folders are APPENDed there, and a resumed run searches it for
/// messages whose delivery outcome a crash left unknown.
#[derive(Debug, Clone)]
pub struct DestImap {
    pub endpoint: Endpoint,
    pub login: Login,
}

impl DestImap {
    /// A logged-in session on mailserver1.
    pub async fn open(&self) -> Result<ImapClient, ImapError> {
        let mut c = ImapClient::connect(&self.endpoint).await?;
        c.login(&self.login).await?;
        Ok(c)
    }
}

/// How INBOX messages reach mailserver1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxRoute {
    /// SMTP/LMTP to the recipient: filters, quotas and notifications apply; flags are lost.
    Deliver,
    /// IMAP APPEND to INBOX: flags and INTERNALDATE survive, filters do not run.
    Append,
}

/// One source mailbox and where its mail goes.
#[derive(Debug, Clone)]
pub struct Account {
    /// How reports name it (the source user).
    pub name: String,
    pub source: Source,
    /// The envelope recipient (the account map's `deliver_to`, or `--rcpt`); without it, each
    /// message's own Delivered-To / X-Original-To.
    pub rcpt: Option<String>,
    pub delivery: Delivery,
    pub dest_imap: Option<DestImap>,
    /// The user's Maildir on mailserver1, when posta runs there (`--to-maildir`): read by
    /// tracking id to settle unknown outcomes and for the read-back, without any login.
    pub dest_maildir: Option<PathBuf>,
    pub inbox: InboxRoute,
    /// The messages on mailserver2 that `posta mirror` put there (with `[mirror]` in the site
    /// file; an IMAP source only): copies of what mailserver1 holds, left in place.
    pub mirror_copies: Option<MirrorCopies>,
}

/// The mirror's copies in one account on mailserver2, by folder wire name: the folder's
/// UIDVALIDITY as the mirror recorded it, and the UIDs of the copies. Under another
/// UIDVALIDITY the UIDs name other messages, so none counts as a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorCopies {
    pub folders: HashMap<String, (u32, HashSet<u32>)>,
    /// Folders with a batch of APPENDs whose state write may not have happened: every UID at
    /// or above this one may be a copy the map does not show yet.
    pub pending_from: HashMap<String, u32>,
    /// The content (hex SHA-256 of the whole message) of every copy: a copy a user moved to
    /// another folder on mailserver2 has a new UID there but the same bytes.
    pub contents: HashSet<String>,
}
impl MirrorCopies {
    /// The mirror's copies in `folder` as selected under `uidvalidity`.
    pub fn in_folder(&self, folder: &str, uidvalidity: u32) -> Option<&HashSet<u32>> {
        self.folders
            .get(folder)
            .filter(|(v, _)| *v == uidvalidity)
            .map(|(_, uids)| uids)
    }

    /// Whether `message` (as fetched) has the bytes of one of the mirror's copies: a copy
    /// moved to another folder, whose original mailserver1 still holds. Sending it would
    /// double it there.
    pub fn holds_content(&self, message: &[u8]) -> bool {
        !self.contents.is_empty() && self.contents.contains(&super::message::whole_hash(message))
    }

    /// Whether UID `uid` of `folder`, selected under `uidvalidity`, is (or may be) the
    /// mirror's copy.
    pub fn is_copy(&self, folder: &str, uidvalidity: u32, uid: u32) -> bool {
        self.in_folder(folder, uidvalidity).is_some_and(|uids| {
            uids.contains(&uid)
                || self
                    .pending_from
                    .get(folder)
                    .is_some_and(|&from| uid >= from)
        })
    }
}

impl Account {
    /// A stable name for this source mailbox: journal file names and tracking ids derive from
    /// it, so it must not change between runs.
    pub fn source_id(&self) -> String {
        let (kind, place) = match (self.source.kind, &self.source.maildir) {
            (SourceKind::Imap, _) => ("imap", self.source.endpoint.display()),
            (SourceKind::Pop3, _) => ("pop3", self.source.endpoint.display()),
            (SourceKind::Maildir, dir) => (
                "maildir",
                dir.as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
                    .to_string(),
            ),
        };
        format!("{kind}-{}@{place}", self.source.login.user)
    }
}

/// What becomes of a message whose outcome is unknown (sent, no reply after the final dot)
/// when posta cannot look into mailserver1's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPolicy {
    /// Left on the source and reported, for a human to check.
    Keep,
    /// Sent again: at least once, possibly twice (fetchmail's behaviour).
    Resend,
}

/// Options shared by every account of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Leave the source as it was (nothing flagged, expunged or deleted).
    pub keep: bool,
    /// Only unread mail (IMAP `UNSEEN`); identity still by UID, never by `\Seen`.
    pub unseen: bool,
    /// Report what would move; change nothing anywhere.
    pub dry_run: bool,
    /// Folders to migrate (decoded names); empty means all.
    pub folders: Vec<String>,
    /// Journals and the quarantine live here.
    pub state_dir: PathBuf,
    /// Delivery connections per account (SMTP/LMTP or IMAP APPEND).
    pub connections: usize,
    /// Accounts migrated at once (each holds one session to mailserver2).
    pub parallel_accounts: usize,
    /// Delivery connections to mailserver1 across every account of the run.
    pub primary_connections: usize,
    /// How long transient failures (4xx, 421, lost connections) are retried within the run.
    pub retry_for: Duration,
    /// How long an accepted message may take to appear in mailserver1's mailbox (an MTA
    /// queues before it delivers) when a resumed run checks an unknown outcome or the
    /// reconciliation reads the destination back.
    pub settle: Duration,
    /// UIDs per pipelined FETCH / RETR window.
    pub batch: usize,
    /// Read mailserver1 back after the run (needs a destination IMAP login).
    pub verify: bool,
    /// Unknown outcomes without a read-back path.
    pub unknown: UnknownPolicy,
}
