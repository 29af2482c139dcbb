//! The I/O core of an IMAP session: whole responses read under the timeout (lines, and literals
//! in chunks so a big message on a slow link is not one long wait), commands sent part by part
//! with the `+` handshake for synchronizing literals (RFC 3501 §7.5), and the loop that reads
//! until a command's tagged completion while passing untagged data to the caller.

use std::future::Future;
use std::time::Duration;

use super::{ImapClient, ImapError};
use crate::client::ConnError;
use crate::proto::imap::{Cond, StatusResp};
use crate::proto::imap_cmd::Command;
use crate::proto::imap_data::{self, Data};
use crate::proto::imap_frame::{Frame, Need};
use crate::proto::{MAX_LINE, ProtoError};

/// Literal data and message bodies move in pieces of this size, each under the timeout.
const CHUNK: usize = 64 * 1024;

/// How large a response may be.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The first line; only `* SEARCH` needs more than [`MAX_LINE`].
    pub line: usize,
    /// The largest literal: a whole message for FETCH bodies, 64 KiB otherwise.
    pub literal: usize,
}

impl Limits {
    /// Responses without message data: literals only for odd mailbox names.
    pub const SMALL: Limits = Limits {
        line: MAX_LINE,
        literal: 64 * 1024,
    };
}

impl ImapClient {
    /// Sends `cmd` and reads until its tagged completion, handing untagged data to `seen`.
    /// An untagged BYE ends the session with [`ImapError::Bye`], except during LOGOUT.
    pub(super) async fn run(
        &mut self,
        cmd: Command<'_>,
        what: &str,
        limits: Limits,
        mut seen: impl FnMut(Data) -> Result<(), ProtoError>,
    ) -> Result<StatusResp, ImapError> {
        self.finish_fetch().await?;
        if let Some(early) = self.send(&cmd, what).await? {
            return Ok(early);
        }
        loop {
            match self.read(what, limits).await? {
                Data::Tagged { tag, resp } if tag == cmd.tag => return Ok(resp),
                other => {
                    let data = self.untagged(other, what)?;
                    seen(data).map_err(|reason| self.malformed(what, reason))?;
                }
            }
        }
    }

    /// Checks a response that is not the awaited completion: BYE, stray tags and unexpected
    /// continuations end the session; anything else goes back to the caller.
    pub(super) fn untagged(&mut self, data: Data, what: &str) -> Result<Data, ImapError> {
        match data {
            Data::Status(resp) if resp.cond == Cond::Bye && what != "LOGOUT" => {
                let server = self.server.clone();
                Err(self.broke(ImapError::Bye { server, resp }))
            }
            Data::Tagged { tag, .. } => Err(self.malformed(
                what,
                ProtoError::Malformed(format!("reply tagged {tag:?} to no command in progress")),
            )),
            Data::Continuation(text) => Err(self.malformed(
                what,
                ProtoError::Malformed(format!("unexpected continuation: + {text}")),
            )),
            // The BYE that LOGOUT asks for is the normal end of a session, not news.
            Data::Status(resp) if resp.cond == Cond::Bye => {
                tracing::debug!(server = %self.server, "IMAP {what}: * {resp}");
                Ok(Data::Status(resp))
            }
            Data::Status(resp) if resp.cond != Cond::Ok => {
                tracing::warn!(server = %self.server, "IMAP {what}: * {resp}");
                Ok(Data::Status(resp))
            }
            other => Ok(other),
        }
    }

    /// Sends the parts of a command. Before a synchronizing literal the server must say `+`;
    /// it may instead refuse the command, whose completion is then returned.
    pub(super) async fn send(
        &mut self,
        cmd: &Command<'_>,
        what: &str,
    ) -> Result<Option<StatusResp>, ImapError> {
        if self.broken {
            return Err(ImapError::Unusable {
                server: self.server.clone(),
            });
        }
        for (i, part) in cmd.parts.iter().enumerate() {
            if part.wait {
                loop {
                    match self.read(what, Limits::SMALL).await? {
                        Data::Continuation(_) => break,
                        Data::Tagged { tag, resp } if tag == cmd.tag => return Ok(Some(resp)),
                        other => drop(self.untagged(other, what)?),
                    }
                }
            }
            for (j, piece) in part.bytes.chunks(CHUNK).enumerate() {
                let shown = if i == 0 && j == 0 {
                    cmd.shown.clone()
                } else {
                    format!("<{} octets>", piece.len())
                };
                let waiting_for = format!("the server to take {what}");
                let sent = self.conn.send(piece, &shown);
                timed(self.timeout, &waiting_for, what, sent)
                    .await
                    .map_err(|e| self.broke(e))?;
            }
        }
        Ok(None)
    }

    /// Reads one whole response: its first line, then literal data and continuation lines as
    /// the framing asks.
    pub(super) async fn read(&mut self, what: &str, limits: Limits) -> Result<Data, ImapError> {
        let waiting_for = format!("the reply to {what}");
        let first = self.conn.read_line_within(limits.line);
        let first = timed(self.timeout, &waiting_for, what, first)
            .await
            .map_err(|e| self.broke(e))?;
        self.read_rest(first, what, limits).await
    }

    /// Waits up to `wait` for a response to begin, then reads it whole as [`ImapClient::read`]
    /// does. None: nothing came; nothing was read, and the session is still in step (a
    /// response's first line is only taken off the buffer once complete).
    pub(super) async fn wait_for(
        &mut self,
        what: &str,
        limits: Limits,
        wait: Duration,
    ) -> Result<Option<Data>, ImapError> {
        let first = self.conn.read_line_within(limits.line);
        match timed(wait, "a response", what, first).await {
            Ok(first) => self.read_rest(first, what, limits).await.map(Some),
            Err(ImapError::Timeout { .. }) => Ok(None),
            Err(e) => Err(self.broke(e)),
        }
    }

    /// The rest of a response whose first line is `first`: literal data and continuation
    /// lines as the framing asks, each under the session timeout.
    async fn read_rest(
        &mut self,
        first: Vec<u8>,
        what: &str,
        limits: Limits,
    ) -> Result<Data, ImapError> {
        let waiting_for = format!("the reply to {what}");
        let mut frame =
            Frame::new(first, limits.literal).map_err(|reason| self.malformed(what, reason))?;
        loop {
            match frame.need() {
                Need::Done => break,
                Need::Line => {
                    let line = self.conn.read_line();
                    let line = timed(self.timeout, &waiting_for, what, line)
                        .await
                        .map_err(|e| self.broke(e))?;
                    frame.push_line(&line)
                }
                Need::Literal(left) => {
                    let data = self.conn.read_exact(left.min(CHUNK));
                    let data = timed(self.timeout, &waiting_for, what, data)
                        .await
                        .map_err(|e| self.broke(e))?;
                    frame.push_literal(&data)
                }
            }
            .map_err(|reason| self.malformed(what, reason))?;
        }
        imap_data::parse(frame.into_wire()).map_err(|reason| self.malformed(what, reason))
    }

    /// Marks the session unusable: after a timeout, a lost connection or a malformed reply
    /// part of a response may be unread, and the next command would read it as its own.
    pub(super) fn broke(&mut self, err: ImapError) -> ImapError {
        self.broken = true;
        err
    }

    pub(super) fn malformed(&mut self, what: &str, reason: ProtoError) -> ImapError {
        self.broke(ImapError::Malformed {
            command: what.to_owned(),
            reason,
        })
    }
}

/// Runs one socket operation under the session timeout.
pub(super) async fn timed<T>(
    timeout: Duration,
    waiting_for: &str,
    what: &str,
    op: impl Future<Output = Result<T, ConnError>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(timeout, op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(ConnError::Malformed(reason))) => Err(ImapError::Malformed {
            command: what.to_owned(),
            reason,
        }),
        Ok(Err(source)) => Err(ImapError::Conn {
            command: what.to_owned(),
            source,
        }),
        Err(_) => Err(ImapError::Timeout {
            waiting_for: waiting_for.to_owned(),
            after: timeout,
        }),
    }
}
