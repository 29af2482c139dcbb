//! Asking mailserver1 what it has, by the tracking id in each message's trace header (mbsync's
//! X-TUID idea, carried in the one header posta adds).
//!
//! Two uses: a message whose outcome a crash or a lost connection left unknown is looked for
//! before it is sent again; and after a run, what this run delivered is read back and checked
//! by tracking id, Message-ID and body hash: missing, duplicated or altered messages are named.
//! An MTA queues before it stores, so both wait up to `settle` for mail to appear.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Ctx;
use super::journal::MessageKey;
use super::message;
use super::report::{FolderReport, Problem};
use crate::client::imap::{ImapClient, ImapError};

const POLL: Duration = Duration::from_millis(500);

async fn connect(ctx: &Ctx) -> Result<Option<ImapClient>, ImapError> {
    let Some(dest) = &ctx.account.dest_imap else {
        return Ok(None);
    };
    dest.open().await.map(Some)
}

/// Splits `doubt` into what mailserver1's `folder` has (by tracking id) and what it does not
/// show within `settle`. Without a destination IMAP login nothing can be found.
pub async fn resolve(
    ctx: &Ctx,
    folder: &str,
    doubt: Vec<(MessageKey, u32)>,
    settle: Duration,
) -> (Vec<(MessageKey, u32)>, Vec<(MessageKey, u32)>) {
    if doubt.is_empty() {
        return (Vec::new(), Vec::new());
    }
    match search_ids(ctx, folder, doubt.clone(), settle).await {
        Ok(split) => split,
        Err(e) => {
            tracing::warn!(account = %ctx.account.name, "cannot check mailserver1 for unknown outcomes: {e}");
            (Vec::new(), doubt)
        }
    }
}

/// Looks once for the unknown outcomes an earlier run left, when a run starts. Found ones are
/// delivered; of the rest, those recorded at least `--settle` ago are known not delivered and
/// returned to be sent now (waiting out another `--settle` would tell nothing new); the others
/// are still in doubt. When mailserver1 cannot be asked, all stay in doubt.
pub async fn resolve_earlier(ctx: &Ctx, folder: &str, doubt: Vec<(MessageKey, u32)>) -> Earlier {
    let mut out = Earlier::default();
    if doubt.is_empty() || !ctx.read_back_path() {
        out.doubt = doubt;
        return out;
    }
    match search_ids(ctx, folder, doubt.clone(), Duration::ZERO).await {
        Ok((found, rest)) => {
            out.found = found;
            for (key, handle) in rest {
                let stale = ctx
                    .journal
                    .get(&key)
                    .is_some_and(|e| e.sent_before(ctx.opts.settle));
                if stale {
                    out.resend.push(handle);
                } else {
                    out.doubt.push((key, handle));
                }
            }
        }
        Err(e) => {
            tracing::warn!(account = %ctx.account.name, "cannot check mailserver1 for unknown outcomes: {e}");
            out.doubt = doubt;
        }
    }
    out
}

/// What [`resolve_earlier`] made of an earlier run's unknown outcomes.
#[derive(Default)]
pub struct Earlier {
    pub found: Vec<(MessageKey, u32)>,
    /// Source handles known not delivered: to send again.
    pub resend: Vec<u32>,
    pub doubt: Vec<(MessageKey, u32)>,
}

async fn search_ids(
    ctx: &Ctx,
    folder: &str,
    mut pending: Vec<(MessageKey, u32)>,
    settle: Duration,
) -> Result<(Vec<(MessageKey, u32)>, Vec<(MessageKey, u32)>), ImapError> {
    let Some(mut c) = connect(ctx).await? else {
        return Ok((Vec::new(), pending));
    };
    let deadline = Instant::now() + settle;
    let mut found = Vec::new();
    loop {
        // A fresh EXAMINE each round shows what arrived since.
        if c.select(folder, true).await.is_ok() {
            let mut still = Vec::new();
            for (key, handle) in pending {
                let criteria = format!("HEADER Received \"{}\"", ctx.tracking_id(&key));
                if c.uid_search(&criteria).await?.is_empty() {
                    still.push((key, handle));
                } else {
                    found.push((key, handle));
                }
            }
            pending = still;
        }
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let _ = c.logout().await;
    Ok((found, pending))
}

/// Reports unknown outcomes that could not be settled; they stay on the source.
pub fn leave_unknown(ctx: &Ctx, report: &mut FolderReport, doubt: Vec<(MessageKey, u32)>) {
    let reason = if !ctx.read_back_path() {
        "outcome unknown (the connection was lost after the final dot); give an IMAP login on \
         mailserver1 (--to-imap, --dest-admin) so posta can check, or --unknown resend to send \
         it again at the risk of a second copy"
    } else {
        "outcome unknown twice (connection lost after the final dot, and mailserver1 does not \
         show it); rerun to check again"
    };
    for (key, _) in doubt {
        report.left.push(Problem {
            uid: ctx.label(&key),
            message_id: ctx.journal.get(&key).and_then(|e| e.message_id),
            reason: reason.into(),
            quarantine: None,
        });
    }
}

/// What one destination message says about itself.
struct Seen {
    hash: String,
}

/// Reads back every message this run delivered and books the result in each folder's report.
pub async fn read_back(ctx: &Ctx, folders: &mut [FolderReport]) -> Result<(), ImapError> {
    if folders.iter().all(|f| f.delivered_keys.is_empty()) {
        return Ok(());
    }
    let Some(mut c) = connect(ctx).await? else {
        return Ok(());
    };
    for f in folders.iter_mut().filter(|f| !f.delivered_keys.is_empty()) {
        let expected: HashMap<String, &(MessageKey, String)> = f
            .delivered_keys
            .iter()
            .map(|k| (ctx.tracking_id(&k.0), k))
            .collect();
        let mut seen: HashMap<String, Vec<Seen>> = HashMap::new();
        let mut fetched = std::collections::HashSet::new();
        let deadline = Instant::now() + ctx.opts.settle;
        loop {
            c.select(&f.dest_folder, true).await?;
            let uids = c
                .uid_search(&format!("HEADER Received \"{}.\"", ctx.tag))
                .await?;
            let new: Vec<u32> = uids.into_iter().filter(|u| fetched.insert(*u)).collect();
            for chunk in new.chunks(ctx.opts.batch.max(1)) {
                c.start_fetch(chunk).await?;
                while let Some(m) = c.next_message().await? {
                    if let Some(id) = tracking_id_in(&m.body, &ctx.tag) {
                        seen.entry(id).or_default().push(Seen {
                            hash: message::body_hash(&m.body),
                        });
                    }
                }
            }
            let complete = expected.keys().all(|id| seen.contains_key(id));
            if complete || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let mut verified = 0;
        for (id, (key, hash)) in &expected {
            let problem = |reason: String| Problem {
                uid: ctx.label(key),
                message_id: ctx.journal.get(key).and_then(|e| e.message_id),
                reason,
                quarantine: None,
            };
            match seen.get(id).map(Vec::as_slice) {
                None | Some([]) => f.missing.push(problem(format!(
                    "accepted by mailserver1 but not in {} after {:?}",
                    f.dest_folder, ctx.opts.settle
                ))),
                Some([one]) if hash.is_empty() || &one.hash == hash => verified += 1,
                Some([_]) => f.missing.push(problem(
                    "the copy at mailserver1 differs from the source (body hash)".into(),
                )),
                Some(many) => f.duplicated.push(problem(format!(
                    "{} copies at mailserver1 in {}",
                    many.len(),
                    f.dest_folder
                ))),
            }
        }
        f.verified = Some(verified);
    }
    let _ = c.logout().await;
    Ok(())
}

/// The tracking id (`tag.<hex>`) in a message's header, if posta's trace header is there.
pub(super) fn tracking_id_in(message: &[u8], tag: &str) -> Option<String> {
    let header = &message[..message::body_offset(message)];
    let needle = format!("id {tag}.");
    let at = header
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let start = at + 3;
    let end = header[start + tag.len() + 1..]
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .map_or(header.len(), |n| start + tag.len() + 1 + n);
    Some(String::from_utf8_lossy(&header[start..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_tracking_id_in_the_trace_header() {
        let m = b"Return-Path: <a@b>\r\nReceived: from x\r\n\tby y with IMAP (posta-0.1.0 account a \
folder INBOX uid 1/2 id posta.00aa.0123456789abcdef)\r\n\tfor <a@b> (single-drop); date\r\n\r\nid posta.00aa.ffff\r\n";
        assert_eq!(
            tracking_id_in(m, "posta.00aa").as_deref(),
            Some("posta.00aa.0123456789abcdef")
        );
        assert_eq!(tracking_id_in(m, "posta.00bb"), None);
        assert_eq!(tracking_id_in(b"\r\nid posta.00aa.ff", "posta.00aa"), None);
    }
}
