//! UID FETCH (RFC 3501 §6.4.8): metadata for plans, and whole messages streamed out of one
//! command. The server sends the messages of a batch back to back; [`ImapClient::next_message`]
//! returns each as soon as its literal has arrived, so at most one body is in memory and the
//! batch costs one round trip instead of one per message.

use super::wire::Limits;
use super::{FetchedMessage, ImapClient, ImapError, MessageMeta};
use crate::proto::MAX_LINE;
use crate::proto::imap_cmd::{self, Command};
use crate::proto::imap_data::Data;
use crate::proto::imap_fetch::Partials;

/// Largest message accepted from FETCH. A bigger literal is refused before it is read (a
/// hostile `{4000000000}` must not exhaust memory); check [`MessageMeta::size`] against it to
/// leave such messages out of a batch.
pub const MAX_MESSAGE: usize = 256 << 20;

/// A UID FETCH whose responses are still arriving.
pub(super) struct Streaming {
    tag: String,
    what: String,
    /// Requested UIDs, sorted: a body for any other UID is a server error.
    wanted: Vec<u32>,
    partials: Partials,
}

impl ImapClient {
    /// `UID FETCH set (UID RFC822.SIZE FLAGS INTERNALDATE)`: what a plan or dry run needs,
    /// sorted by UID. UIDs that no longer exist are simply absent (RFC 3501 §6.4.8).
    pub async fn fetch_meta(&mut self, uids: &[u32]) -> Result<Vec<MessageMeta>, ImapError> {
        let Some(set) = imap_cmd::uid_set(uids) else {
            return Ok(Vec::new());
        };
        let what = format!("UID FETCH {set} (UID RFC822.SIZE FLAGS INTERNALDATE)");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "UID FETCH", self.literal_mode())
            .raw(&set)
            .raw("(UID RFC822.SIZE FLAGS INTERNALDATE)")
            .finish();
        let mut partials = Partials::default();
        let done = self
            .run(cmd, &what, Limits::SMALL, |d| {
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
        let wanted = sorted(uids);
        let mut metas = Vec::new();
        for record in partials.into_records() {
            // Flag updates for other messages may arrive unasked, with or without UID.
            if record.uid.is_some_and(|u| wanted.binary_search(&u).is_ok()) {
                let meta = record
                    .into_meta()
                    .map_err(|reason| self.malformed(&what, reason))?;
                metas.push(meta);
            }
        }
        metas.sort_by_key(|m| m.uid);
        Ok(metas)
    }

    /// Sends `UID FETCH set (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[])` for one batch
    /// (BODY.PEEK leaves `\Seen` alone on the source, RFC 3501 §6.4.5). Read the messages with
    /// [`ImapClient::next_message`]. An empty batch sends nothing.
    pub async fn start_fetch(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        self.start_fetch_section(uids, "BODY.PEEK[]").await
    }

    /// [`ImapClient::start_fetch`] for the header alone (`BODY.PEEK[HEADER]`): a message's
    /// `body` is then its header and blank line. What a read-back by tracking id needs, at a
    /// fraction of the bytes.
    pub async fn start_fetch_header(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        self.start_fetch_section(uids, "BODY.PEEK[HEADER]").await
    }

    async fn start_fetch_section(&mut self, uids: &[u32], section: &str) -> Result<(), ImapError> {
        self.finish_fetch().await?;
        let Some(set) = imap_cmd::uid_set(uids) else {
            return Ok(());
        };
        let what = format!("UID FETCH {set} (... {section})");
        let tag = self.tags.next_tag();
        let cmd = Command::build(&tag, "UID FETCH", self.literal_mode())
            .raw(&set)
            .raw(&format!("(UID RFC822.SIZE FLAGS INTERNALDATE {section})"))
            .finish();
        if let Some(done) = self.send(&cmd, &what).await? {
            return self.check(done, &what);
        }
        self.fetch = Some(Streaming {
            tag,
            what,
            wanted: sorted(uids),
            partials: Partials::default(),
        });
        Ok(())
    }

    /// The next message of the batch started by [`ImapClient::start_fetch`], in the server's
    /// order; `None` once the FETCH has completed (or when no fetch is running), never after an
    /// error broke the batch (that stays [`ImapError::Unusable`]). Bodies are
    /// byte-exact: `BODY[]` is the message as stored, CRLF line ends and leading dots intact.
    pub async fn next_message(&mut self) -> Result<Option<FetchedMessage>, ImapError> {
        let Some(mut stream) = self.fetch.take() else {
            // After a failure mid-batch, "no more messages" would read as a completed batch.
            if self.broken {
                return Err(ImapError::Unusable {
                    server: self.server.clone(),
                });
            }
            return Ok(None);
        };
        let limits = Limits {
            line: MAX_LINE,
            literal: MAX_MESSAGE,
        };
        loop {
            match self.read(&stream.what, limits).await? {
                Data::Tagged { tag, resp } if tag == stream.tag => {
                    self.check(resp, &stream.what)?;
                    return Ok(None);
                }
                Data::Fetch(f) => {
                    let record = stream.partials.merge(f);
                    if record.body.is_none() {
                        stream.partials.keep(record);
                        continue;
                    }
                    let message = record
                        .into_message()
                        .map_err(|reason| self.malformed(&stream.what, reason))?;
                    if stream.wanted.binary_search(&message.uid).is_err() {
                        let reason = crate::proto::ProtoError::Malformed(format!(
                            "server sent UID {} which was not asked for",
                            message.uid
                        ));
                        return Err(self.malformed(&stream.what, reason));
                    }
                    self.fetch = Some(stream);
                    return Ok(Some(message));
                }
                Data::Expunge(seq) => stream.partials.expunged(seq),
                other => drop(self.untagged(other, &stream.what)?),
            }
        }
    }

    /// Reads an unfinished fetch to its end, dropping the messages, so the next command's
    /// responses are its own.
    pub(super) async fn finish_fetch(&mut self) -> Result<(), ImapError> {
        if self.fetch.is_some() {
            tracing::debug!(server = %self.server, "dropping the rest of an unfinished UID FETCH");
        }
        while self.next_message().await?.is_some() {}
        Ok(())
    }
}

fn sorted(uids: &[u32]) -> Vec<u32> {
    let mut v = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}
