//! IDLE (RFC 2177): the server tells the session of changes to the selected mailbox as they
//! happen, instead of the client asking again and again; with NOTIFY (RFC 5465), of changes
//! to every mailbox of the user.

use std::time::Duration;

use super::wire::{Limits, timed};
use super::{ImapClient, ImapError};
use crate::proto::ProtoError;
use crate::proto::imap::StatusResp;
use crate::proto::imap_cmd::IDLE_DONE;
use crate::proto::imap_data::Data;

/// Servers may end an IDLE that lasts 30 minutes without a word (RFC 2177 §3: "clients ...
/// SHOULD terminate the IDLE and re-issue it at least every 29 minutes"); longer waits are cut
/// to this.
pub const MAX_IDLE: Duration = Duration::from_secs(25 * 60);

/// How an IDLE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleWake {
    /// The selected mailbox changed: a message arrived, was expunged or had its flags changed.
    Changed,
    /// The wait passed without a change.
    Quiet,
    /// The server stopped telling of changes (`* OK [NOTIFICATIONOVERFLOW]`, RFC 5465 §5.8:
    /// it then behaves as after NOTIFY NONE): something changed that it will not name, and
    /// only a new [`ImapClient::notify_personal`] brings the news of other mailboxes back.
    NotifyLost,
}

impl ImapClient {
    /// IDLE in the selected mailbox for up to `max` (at most [`MAX_IDLE`]): `IDLE`, the
    /// server's `+`, then untagged data until one says the mailbox changed
    /// ([`Data::is_mailbox_change`]) or the time is up; then `DONE` and the tagged OK. Keepalives
    /// (`* OK Still here`) are not changes. The `+` and the completion are each awaited under
    /// the session timeout, so a server that never answers fails the call rather than hang it.
    /// A server without IDLE: [`ImapError::Unsupported`]; the caller polls instead.
    pub async fn idle(&mut self, max: Duration) -> Result<IdleWake, ImapError> {
        const WHAT: &str = "IDLE";
        if !self.has_capability("IDLE") {
            return Err(ImapError::Unsupported {
                server: self.server.clone(),
                capability: "IDLE (RFC 2177)",
            });
        }
        let cmd = self.simple(WHAT);
        self.finish_fetch().await?;
        if let Some(resp) = self.send(&cmd, WHAT).await? {
            return Err(self.ended_early(resp));
        }
        let (mut changed, mut lost) = (false, false);
        let mut news = |data: Data, changed: &mut bool| {
            lost |= data.is_notify_overflow();
            *changed |= data.is_mailbox_change();
        };
        loop {
            match self.read(WHAT, Limits::SMALL).await? {
                Data::Continuation(_) => break,
                Data::Tagged { tag, resp } if tag == cmd.tag => {
                    return Err(self.ended_early(resp));
                }
                other => news(self.untagged(other, WHAT)?, &mut changed),
            }
        }
        let deadline = tokio::time::Instant::now() + max.min(MAX_IDLE);
        while !changed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.wait_for(WHAT, Limits::SMALL, left).await? {
                None => break,
                Some(Data::Tagged { tag, resp }) if tag == cmd.tag => {
                    return Err(self.ended_early(resp));
                }
                Some(other) => news(self.untagged(other, WHAT)?, &mut changed),
            }
        }
        let sent = self.conn.send(IDLE_DONE, "DONE");
        timed(self.timeout, "the server to take DONE", WHAT, sent)
            .await
            .map_err(|e| self.broke(e))?;
        loop {
            match self.read(WHAT, Limits::SMALL).await? {
                Data::Tagged { tag, resp } if tag == cmd.tag => {
                    self.check(resp, WHAT)?;
                    break;
                }
                other => news(self.untagged(other, WHAT)?, &mut changed),
            }
        }
        Ok(if lost {
            IdleWake::NotifyLost
        } else if changed {
            IdleWake::Changed
        } else {
            IdleWake::Quiet
        })
    }

    /// NOTIFY (RFC 5465): from now on the server also tells this session of changes to every
    /// mailbox of the user's own namespaces, not only the selected one: `* STATUS` for one whose
    /// messages or flags changed, `* LIST` for one created, renamed or deleted (§5.2, §5.4),
    /// which [`ImapClient::idle`] counts as changes. False, with nothing sent, when the server
    /// has no NOTIFY; a refusal is [`ImapError::Rejected`].
    pub async fn notify_personal(&mut self) -> Result<bool, ImapError> {
        const WHAT: &str = "NOTIFY";
        if !self.has_capability(WHAT) {
            return Ok(false);
        }
        // MessageNew and MessageExpunge go together, and FlagChange needs both (§5.1, §5.3).
        let cmd = self.simple(
            "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) \
             (personal (MessageNew MessageExpunge FlagChange MailboxName))",
        );
        let done = self.run(cmd, WHAT, Limits::SMALL, |_| Ok(())).await?;
        self.check(done, WHAT)?;
        Ok(true)
    }

    /// The IDLE's completion came before DONE: a NO or BAD is the server's refusal, an OK
    /// breaks the protocol (only DONE ends an IDLE).
    fn ended_early(&mut self, resp: StatusResp) -> ImapError {
        match self.check(resp, "IDLE") {
            Err(refused) => refused,
            Ok(()) => self.malformed(
                "IDLE",
                ProtoError::Malformed("IDLE completed before DONE".into()),
            ),
        }
    }
}
