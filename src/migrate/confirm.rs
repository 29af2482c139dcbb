//! Confirm before remove: a message that mailserver1 answered 250 leaves the source only once
//! its tracking id is found in mailserver1's mailbox. An MTA's 250 promises delivery; Postfix
//! still bounces afterwards on a local(8) loop (`mail forwarding loop for ...`), an alias to
//! nowhere or a full mailbox, and the sender of that SMTP transaction (posta) never hears of it.
//!
//! The check is batched: [`Presence`] keeps one session per destination folder and reads only
//! the messages that arrived since its last look (`UID n:*` with posta's tracking tag), so a
//! window of delivered messages costs one search and one fetch, not a round trip each. When
//! posta runs on mailserver1 (`--to-maildir`) it reads the user's Maildir instead, each new
//! file once.
//!
//! When the run verifies (no `--no-verify`), the look reads whole messages and keeps each copy's
//! body hash, and the folder's verification is booked from what it saw ([`Presence::verify`]):
//! each message is read back from mailserver1 once, not once for the confirmation and again
//! for the verification. Otherwise it reads the headers alone.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::Ctx;
use super::message;
use super::plan::DestImap;
use super::report::FolderReport;
use super::verify::{self, LocalScan, ReadBack, Seen, VerifyError, tracking_id_in};
use crate::client::imap::{ImapClient, ImapError};

const POLL: Duration = Duration::from_millis(500);

/// The tracking ids seen so far in one folder of mailserver1 (with each copy's body hash when
/// the run verifies), and the session that looks for more.
pub struct Presence {
    /// The folder on the wire (INBOX for SMTP/LMTP delivery).
    folder: String,
    client: Option<ImapClient>,
    /// UIDVALIDITY and the highest UID already read: later looks read only newer messages.
    validity: u32,
    last_uid: u32,
    /// The local Maildir read so far (`--to-maildir`): what it saw is kept there.
    local: Option<LocalScan>,
    /// What the IMAP looks saw.
    seen: HashMap<String, Vec<Seen>>,
    /// Whether whole messages are read and hashed, for [`Presence::verify`].
    hashes: bool,
}

impl Presence {
    pub fn new(folder: &str, hashes: bool) -> Presence {
        Presence {
            folder: folder.to_owned(),
            client: None,
            validity: 0,
            last_uid: 0,
            local: None,
            seen: HashMap::new(),
            hashes,
        }
    }

    fn seen(&self) -> &HashMap<String, Vec<Seen>> {
        self.local.as_ref().map_or(&self.seen, LocalScan::seen)
    }

    /// Books the verification of the messages `report` delivered and still lists
    /// (`delivered_keys`) from what the looks saw: each found once with the source's body hash
    /// is verified, and leaves the list, so the run's read-back at the end skips it. One not
    /// seen yet (an unknown outcome found by its own search) is looked for first, up to
    /// --settle. Without hashes (`--no-verify`), or when mailserver1 cannot be looked at,
    /// nothing is booked: the read-back at the end tries again.
    pub async fn verify(&mut self, ctx: &Ctx, report: &mut FolderReport) {
        if !self.hashes || report.delivered_keys.is_empty() {
            return;
        }
        let unseen: Vec<String> = report
            .delivered_keys
            .iter()
            .map(|(k, _)| ctx.tracking_id(k))
            .filter(|id| !self.seen().contains_key(id))
            .collect();
        if !unseen.is_empty() && self.present(ctx, &unseen, ctx.opts.settle).await.is_err() {
            return;
        }
        let place = match &self.local {
            Some(scan) => scan.root().display().to_string(),
            None => self.folder.clone(),
        };
        verify::book(ctx, report, self.seen(), &place);
    }

    /// Which of `ids` (tracking ids) mailserver1's folder holds, waiting up to `wait` for the
    /// rest to arrive (an MTA queues before it stores). Without a read-back path nothing is
    /// found.
    pub async fn present(
        &mut self,
        ctx: &Ctx,
        ids: &[String],
        wait: Duration,
    ) -> Result<HashSet<String>, VerifyError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Err(e) = self.look(ctx).await {
                // The session may be broken: the next look opens a new one.
                self.client = None;
                return Err(e);
            }
            let all = ids.iter().all(|id| self.seen().contains_key(id));
            if all || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(ids
            .iter()
            .filter(|id| self.seen().contains_key(*id))
            .cloned()
            .collect())
    }

    /// Reads the tracking ids of the messages that arrived since the last look.
    async fn look(&mut self, ctx: &Ctx) -> Result<(), VerifyError> {
        match ReadBack::of(&ctx.account) {
            None => Ok(()),
            Some(ReadBack::Imap(dest)) => Ok(self.look_imap(ctx, dest).await?),
            Some(ReadBack::LocalMaildir(dir)) => {
                // The whole Maildir, as the local read-back looks: mailserver1's filters may
                // have filed the message in any folder.
                let scan = match self.local.take() {
                    Some(scan) => scan,
                    None => LocalScan::new(dir, &ctx.tag, self.hashes),
                };
                self.local = Some(scan.rescan().await?);
                Ok(())
            }
        }
    }

    /// The IMAP look: only the messages with a UID above the last one read.
    async fn look_imap(&mut self, ctx: &Ctx, dest: &DestImap) -> Result<(), ImapError> {
        if self.client.is_none() {
            self.client = Some(dest.open().await?);
        }
        let Some(c) = self.client.as_mut() else {
            return Ok(());
        };
        // A fresh EXAMINE each look shows what arrived since.
        let selected = c.select(&self.folder, true).await?;
        if selected.uidvalidity != self.validity {
            self.validity = selected.uidvalidity;
            self.last_uid = 0;
            self.seen.clear();
        }
        // `n:*` always contains the highest UID, even below n (RFC 3501 §6.4.8): filter.
        let after = self.last_uid;
        let criteria = format!("UID {}:* HEADER Received \"{}.\"", after + 1, ctx.tag);
        let new: Vec<u32> = c
            .uid_search(&criteria)
            .await?
            .into_iter()
            .filter(|u| *u > after)
            .collect();
        for chunk in new.chunks(ctx.opts.batch.max(1)) {
            if self.hashes {
                c.start_fetch(chunk).await?;
            } else {
                c.start_fetch_header(chunk).await?;
            }
            while let Some(m) = c.next_message().await? {
                if let Some(id) = tracking_id_in(&m.body, &ctx.tag) {
                    let hash = if self.hashes {
                        message::body_hash(&m.body)
                    } else {
                        String::new()
                    };
                    self.seen.entry(id).or_default().push(Seen { hash });
                }
                self.last_uid = self.last_uid.max(m.uid);
            }
        }
        Ok(())
    }

    /// Ends the session politely.
    pub async fn close(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.logout().await;
        }
    }
}
