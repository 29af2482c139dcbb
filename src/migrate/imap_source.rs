//! The IMAP source: every selectable folder (or the chosen ones), messages identified by
//! (folder, UIDVALIDITY, UID), read with BODY.PEEK (so `\Seen` never changes on the source),
//! pipelined over UID ranges, removed with UID STORE \Deleted + UID EXPUNGE only after the
//! journal says delivered.

use std::sync::Arc;

use super::deliver::{self, Job, Tally, Target};
use super::folders::{self, Naming};
use super::journal::{MessageKey, Step};
use super::plan::InboxRoute;
use super::report::{FolderReport, Problem};
use super::{Ctx, PassError, verify};
use crate::client::imap::{ImapClient, ImapError, MailboxInfo};
use crate::proto::mutf7;

/// Reports of the folders handled so far, and why the pass stopped.
type PassResult = Result<Vec<FolderReport>, (Vec<FolderReport>, PassError)>;

fn pass_error(e: &ImapError, what: &str) -> PassError {
    PassError {
        message: format!("{what}: {e}"),
        transient: e.is_transient(),
    }
}

pub async fn pass(ctx: &Arc<Ctx>) -> PassResult {
    let src = &ctx.account.source;
    let mut client = match ImapClient::connect(&src.endpoint).await {
        Ok(c) => c,
        Err(e) => return Err((Vec::new(), pass_error(&e, "mailserver2"))),
    };
    if let Err(e) = client.login(&src.login).await {
        return Err((Vec::new(), pass_error(&e, "mailserver2")));
    }
    let mailboxes = match client.list().await {
        Ok(m) => m,
        Err(e) => return Err((Vec::new(), pass_error(&e, "mailserver2"))),
    };
    let src_naming = naming(&mailboxes);
    let dest_naming = match dest_naming(ctx).await {
        Ok(n) => n,
        Err(e) => return Err((Vec::new(), e)),
    };
    let mut reports = Vec::new();
    // Folders whose last confirmation and removal wait until every folder is sent: the index
    // of their report, and their bookkeeping.
    let mut unfinished = Vec::new();
    for mailbox in mailboxes.iter().filter(|m| wanted(ctx, m)) {
        let components = folders::components(&mailbox.name, &src_naming);
        let target = if folders::is_inbox(&mailbox.name) && ctx.account.inbox == InboxRoute::Deliver
        {
            Target::Deliver
        } else {
            let name = folders::dest_name(&components, dest_naming.as_ref().unwrap_or(&src_naming));
            Target::Append {
                raw_name: mutf7::encode(&name),
            }
        };
        match Box::pin(folder(ctx, &mut client, mailbox, target)).await {
            Ok((r, rest)) => {
                if let Some(tally) = rest {
                    unfinished.push((reports.len(), mailbox, tally));
                }
                reports.push(r);
            }
            Err((r, e)) => {
                reports.push(r);
                return Err((reports, e));
            }
        }
    }
    ctx.slot.sent_everything().await;
    for (i, mailbox, mut tally) in unfinished {
        if let Err(e) = finish(ctx, &mut client, mailbox, &mut reports[i], &mut tally).await {
            return Err((reports, e));
        }
    }
    let _ = client.logout().await;
    Ok(reports)
}

/// A folder's last confirmation, once the account has sent everything (without a delivering
/// slot), and the removal of what it confirmed: the folder is selected again for it.
async fn finish(
    ctx: &Ctx,
    client: &mut ImapClient,
    mailbox: &MailboxInfo,
    report: &mut FolderReport,
    tally: &mut Tally,
) -> Result<(), PassError> {
    tally.confirm(ctx, report).await;
    if ctx.opts.keep || tally.removable.is_empty() {
        return Ok(());
    }
    let selected = client
        .select(&mailbox.raw_name, false)
        .await
        .map_err(|e| pass_error(&e, &format!("select {}", mailbox.name)))?;
    // UIDs name the same messages only under the same UIDVALIDITY (RFC 3501 §2.3.1.1).
    if tally
        .removable
        .iter()
        .any(|(k, _)| k.validity != selected.uidvalidity)
    {
        return Err(PassError::fatal(format!(
            "{}: UIDVALIDITY changed during the run; the delivered messages stay on the source",
            mailbox.name
        )));
    }
    remove(ctx, client, report, tally).await
}

/// The source's hierarchy: Dovecot and most servers have an empty personal prefix; the
/// delimiter comes from LIST.
fn naming(mailboxes: &[MailboxInfo]) -> Naming {
    Naming {
        prefix: String::new(),
        delimiter: mailboxes.iter().find_map(|m| m.delimiter),
    }
}

/// mailserver1's hierarchy, for mapping folder names (None without an IMAP login there).
pub(super) async fn dest_naming(ctx: &Ctx) -> Result<Option<Naming>, PassError> {
    let Some(dest) = &ctx.account.dest_imap else {
        return Ok(None);
    };
    if ctx.opts.dry_run {
        return Ok(None);
    }
    let mut c = dest
        .open()
        .await
        .map_err(|e| pass_error(&e, "mailserver1 IMAP"))?;
    let list = c
        .list()
        .await
        .map_err(|e| pass_error(&e, "mailserver1 IMAP"))?;
    let _ = c.logout().await;
    Ok(Some(naming(&list)))
}

fn wanted(ctx: &Ctx, m: &MailboxInfo) -> bool {
    if m.noselect {
        return false;
    }
    ctx.opts.folders.is_empty()
        || ctx
            .opts
            .folders
            .iter()
            .any(|f| f == &m.name || (folders::is_inbox(f) && folders::is_inbox(&m.name)))
}

/// A folder's report, with its bookkeeping when the last confirmation and the removal are left
/// for after every folder is sent.
type FolderResult = Result<(FolderReport, Option<Tally>), (FolderReport, PassError)>;

async fn folder(
    ctx: &Arc<Ctx>,
    client: &mut ImapClient,
    mailbox: &MailboxInfo,
    target: Target,
) -> FolderResult {
    let mut report = FolderReport {
        folder: mailbox.name.clone(),
        destination: ctx.describe(&target),
        dest_folder: match &target {
            Target::Deliver => "INBOX".into(),
            Target::Append { raw_name } => raw_name.clone(),
        },
        ..Default::default()
    };
    macro_rules! fail {
        ($e:expr, $what:expr) => {
            return Err((report, pass_error(&$e, $what)))
        };
    }
    let read_only = ctx.opts.keep || ctx.opts.dry_run;
    let selected = match client.select(&mailbox.raw_name, read_only).await {
        Ok(s) => s,
        Err(e) => fail!(e, &format!("select {}", mailbox.name)),
    };
    let criteria = if ctx.opts.unseen {
        "UNSEEN UNDELETED"
    } else {
        "UNDELETED"
    };
    let uids = match client.uid_search(criteria).await {
        Ok(u) => u,
        Err(e) => fail!(e, "search"),
    };
    let deleted = match client.uid_search("DELETED").await {
        Ok(u) => u,
        Err(e) => fail!(e, "search"),
    };
    let mut ours = Vec::new();
    for uid in deleted {
        let k = MessageKey {
            folder: mailbox.raw_name.clone(),
            validity: selected.uidvalidity,
            id: uid.to_string(),
        };
        if let Some(step @ (Step::Delivered | Step::Confirmed | Step::Removed)) =
            ctx.journal.get(&k).map(|e| e.step)
        {
            // Flagged by an earlier run that died before its EXPUNGE: finish the removal.
            ours.push((step, k, uid));
            continue;
        }
        report.skipped.push(Problem {
            uid: format!("{}/{uid}", selected.uidvalidity),
            message_id: None,
            reason: "marked \\Deleted on the source; left alone".into(),
            quarantine: None,
        });
    }
    let mut metas = Vec::new();
    for chunk in uids.chunks(1000) {
        match client.fetch_meta(chunk).await {
            // Only what the plan needs: a mailbox's flags and dates are not held in memory.
            Ok(m) => metas.extend(m.into_iter().map(|m| (m.uid, m.size))),
            Err(e) => fail!(e, "fetch sizes"),
        }
    }
    let key = |uid: u32| MessageKey {
        folder: mailbox.raw_name.clone(),
        validity: selected.uidvalidity,
        id: uid.to_string(),
    };
    let mut to_send = Vec::new();
    let mut earlier = Vec::new();
    let mut doubt = Vec::new();
    let mut send_bytes = 0u64;
    let copies = ctx.account.mirror_copies.as_ref();
    for &(uid, size) in &metas {
        if copies.is_some_and(|c| c.is_copy(&mailbox.raw_name, selected.uidvalidity, uid)) {
            // mailserver1 holds the original: sending the copy back would double it.
            report.mirror_copies += 1;
            continue;
        }
        report.source_messages += 1;
        report.source_bytes += size;
        match ctx.journal.get(&key(uid)).map(|e| e.step) {
            Some(step @ (Step::Delivered | Step::Confirmed | Step::Removed)) => {
                earlier.push((step, key(uid), uid));
            }
            Some(Step::Sending) => {
                doubt.push((key(uid), uid));
                send_bytes += size;
            }
            _ => {
                to_send.push(uid);
                send_bytes += size;
            }
        }
    }
    drop(metas);
    report.earlier = earlier.len() + ours.len();
    if let Some(p) = ctx.append_without_login(&target, to_send.len() + doubt.len()) {
        report.skipped.push(p);
        return Ok((report, None));
    }
    if ctx.opts.dry_run {
        report.source_messages = to_send.len() + doubt.len();
        report.source_bytes = send_bytes;
        return Ok((report, None));
    }
    ctx.progress
        .add((to_send.len() + doubt.len()) as u64, send_bytes);

    let mut tally = Tally::new(ctx, &target, &report.dest_folder);
    if !ctx.opts.keep {
        for (step, k, uid) in earlier.into_iter().chain(ours) {
            tally.earlier(step, k, uid);
        }
    }
    // Unknown outcomes left by a run that died between the final dot and its reply: ask
    // mailserver1 now; what it does not show yet is asked again after the rest is sent
    // (an MTA may still have it queued), and only then sent again, unless it was sent more
    // than --settle ago: then it is sent again now.
    let earlier = verify::resolve_earlier(ctx, &report.dest_folder, doubt).await;
    tally.found(ctx, &mut report, earlier.found).await;
    let mut doubt = earlier.doubt;
    to_send.extend(earlier.resend);
    to_send.sort_unstable();
    if let Err(e) = send(
        ctx,
        client,
        &mut report,
        &mut tally,
        &to_send,
        &key,
        &target,
    )
    .await
    {
        return Err((report, e));
    }
    for round in 0..2 {
        let again = tally.settle(ctx, &mut report, &mut doubt, round == 1).await;
        if again.is_empty() {
            break;
        }
        if let Err(e) = send(ctx, client, &mut report, &mut tally, &again, &key, &target).await {
            return Err((report, e));
        }
    }
    // Waiting up to --settle for mailserver1 to store what it accepted needs no delivery
    // connection: it is left for after every folder is sent.
    if tally.confirms() {
        return Ok((report, Some(tally)));
    }
    if let Err(e) = remove(ctx, client, &mut report, &mut tally).await {
        return Err((report, e));
    }
    Ok((report, None))
}

async fn send(
    ctx: &Arc<Ctx>,
    client: &mut ImapClient,
    report: &mut FolderReport,
    tally: &mut Tally,
    uids: &[u32],
    key: &(dyn Fn(u32) -> MessageKey + Sync),
    target: &Target,
) -> Result<(), PassError> {
    let raw_name = &key(0).folder;
    if uids.is_empty() {
        return Ok(());
    }
    let (jobs, mut done, mut workers) = deliver::start(ctx.clone(), ctx.opts.connections);
    let mut result = Ok(());
    'batches: for chunk in uids.chunks(ctx.opts.batch.max(1)) {
        if let Err(e) = client.start_fetch(chunk).await {
            result = Err(pass_error(&e, &format!("fetch from {raw_name}")));
            break;
        }
        loop {
            let m = match client.next_message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    result = Err(pass_error(&e, &format!("fetch from {raw_name}")));
                    break 'batches;
                }
            };
            if ctx
                .account
                .mirror_copies
                .as_ref()
                .is_some_and(|c| c.holds_content(&m.body))
            {
                // A copy a user moved on mailserver2: its original is on mailserver1 already.
                report.mirror_copies += 1;
                report.source_messages = report.source_messages.saturating_sub(1);
                report.source_bytes = report.source_bytes.saturating_sub(m.body.len() as u64);
                ctx.progress.message(m.body.len() as u64);
                continue;
            }
            let job = Job {
                key: key(m.uid),
                handle: m.uid,
                message: m.body,
                flags: m.flags,
                internal_date: Some(m.internal_date),
                target: target.clone(),
                file: None,
            };
            if jobs.send(job).await.is_err() {
                break 'batches;
            }
            while let Ok(d) = done.try_recv() {
                tally.done(ctx, report, d);
            }
        }
        // One look at mailserver1 per window of accepted messages, beside the reader (it has
        // its own session there); what has not arrived yet is looked for with the next one (or,
        // at the end, for up to --settle).
        tally.looked(ctx, false).await;
        if tally.unconfirmed.len() >= 200 {
            tally.look_behind(ctx);
        }
        if tally.removable.len() >= 200
            && let Err(e) = remove(ctx, client, report, tally).await
        {
            result = Err(e);
            break;
        }
    }
    drop(jobs);
    while let Some(d) = done.recv().await {
        tally.done(ctx, report, d);
    }
    while workers.join_next().await.is_some() {}
    result
}

/// Removes delivered messages from the source (unless --keep), then records it.
async fn remove(
    ctx: &Ctx,
    client: &mut ImapClient,
    report: &mut FolderReport,
    tally: &mut Tally,
) -> Result<(), PassError> {
    if ctx.opts.keep || tally.removable.is_empty() {
        tally.removable.clear();
        return Ok(());
    }
    let batch = std::mem::take(&mut tally.removable);
    let uids: Vec<u32> = batch.iter().map(|(_, u)| *u).collect();
    client
        .store_deleted(&uids)
        .await
        .map_err(|e| pass_error(&e, "flag delivered messages \\Deleted"))?;
    client
        .expunge(&uids)
        .await
        .map_err(|e| pass_error(&e, "expunge delivered messages"))?;
    report.removed += uids.len();
    Tally::record_removed(ctx, batch)
        .await
        .map_err(|e| PassError::fatal(e.to_string()))
}
