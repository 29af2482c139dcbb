//! The POP3 source: the maildrop is INBOX, messages identified by UIDL (RFC 1939 §7), read with
//! pipelined RETR when the server offers PIPELINING (RFC 2449), DELEted only after the journal
//! says delivered. DELE becomes final only at QUIT (RFC 1939 §6), so a session that dies
//! undeletes; the journal already knows those messages went, and the next run deletes them
//! without sending them again (fetchmail resends them).

use std::sync::Arc;

use super::deliver::{self, Job, Tally, Target};
use super::journal::{MessageKey, Step};
use super::plan::InboxRoute;
use super::report::FolderReport;
use super::{Ctx, PassError, verify};
use crate::client::pop3::{Pop3Client, Pop3Error};

type PassResult = Result<Vec<FolderReport>, (Vec<FolderReport>, PassError)>;

fn pass_error(e: &Pop3Error, what: &str) -> PassError {
    PassError {
        message: format!("{what}: {e}"),
        transient: e.is_transient(),
    }
}

pub async fn pass(ctx: &Arc<Ctx>) -> PassResult {
    let src = &ctx.account.source;
    let target = match ctx.account.inbox {
        InboxRoute::Deliver => Target::Deliver,
        InboxRoute::Append => Target::Append {
            raw_name: "INBOX".into(),
        },
    };
    let mut report = FolderReport {
        folder: "INBOX".into(),
        destination: ctx.describe(&target),
        dest_folder: "INBOX".into(),
        ..Default::default()
    };
    macro_rules! fail {
        ($e:expr, $what:expr) => {
            return Err((vec![report], pass_error(&$e, $what)))
        };
    }
    let mut client = match Pop3Client::connect(&src.endpoint).await {
        Ok(c) => c,
        Err(e) => fail!(e, "mailserver2"),
    };
    if let Err(e) = client.login(&src.login).await {
        fail!(e, "mailserver2");
    }
    let uidl = match client.uidl().await {
        Ok(u) => u,
        Err(e) => fail!(e, "UIDL"),
    };
    let sizes: std::collections::HashMap<u32, u64> = match client.list().await {
        Ok(l) => l.into_iter().collect(),
        Err(e) => fail!(e, "LIST"),
    };
    let key = |id: &str| MessageKey {
        folder: "INBOX".into(),
        validity: 0,
        id: id.to_owned(),
    };
    let mut to_send = Vec::new();
    let mut earlier = Vec::new();
    let mut doubt = Vec::new();
    let mut send_bytes = 0;
    for (n, id) in &uidl {
        let size = sizes.get(n).copied().unwrap_or(0);
        report.source_messages += 1;
        report.source_bytes += size;
        match ctx.journal.get(&key(id)).map(|e| e.step) {
            Some(step @ (Step::Delivered | Step::Confirmed | Step::Removed)) => {
                earlier.push((step, key(id), *n));
            }
            Some(Step::Sending) => {
                doubt.push((key(id), *n));
                send_bytes += size;
            }
            _ => {
                to_send.push(*n);
                send_bytes += size;
            }
        }
    }
    drop(sizes);
    // Message number → UIDL, the one copy of the listing kept for the run.
    let ids: std::collections::HashMap<u32, String> = uidl.into_iter().collect();
    report.earlier = earlier.len();
    if ctx.opts.dry_run {
        report.source_messages = to_send.len() + doubt.len();
        report.source_bytes = send_bytes;
        let _ = client.quit().await;
        return Ok(vec![report]);
    }
    ctx.progress
        .add((to_send.len() + doubt.len()) as u64, send_bytes);
    let mut tally = Tally::new(ctx, &target, "INBOX");
    if !ctx.opts.keep {
        for (step, k, n) in earlier {
            tally.earlier(step, k, n);
        }
    }
    let earlier = verify::resolve_earlier(ctx, "INBOX", doubt).await;
    tally.found(ctx, &mut report, earlier.found).await;
    let mut doubt = earlier.doubt;
    to_send.extend(earlier.resend);
    to_send.sort_unstable();
    let key_of = |n: u32| key(ids.get(&n).map(String::as_str).unwrap_or_default());
    if let Err(e) = send(
        ctx,
        &mut client,
        &mut report,
        &mut tally,
        &to_send,
        &key_of,
        &target,
    )
    .await
    {
        return Err((vec![report], e));
    }
    for round in 0..2 {
        let again = tally.settle(ctx, &mut report, &mut doubt, round == 1).await;
        if again.is_empty() {
            break;
        }
        if let Err(e) = send(
            ctx,
            &mut client,
            &mut report,
            &mut tally,
            &again,
            &key_of,
            &target,
        )
        .await
        {
            return Err((vec![report], e));
        }
    }
    // Waiting up to --settle for mailserver1 to store what it accepted needs no delivery
    // connection: the delivering slot goes to the next account first.
    ctx.slot.sent_everything().await;
    tally.confirm(ctx, &mut report).await;
    if let Err(e) = remove(ctx, client, &mut report, &mut tally).await {
        return Err((vec![report], e));
    }
    Ok(vec![report])
}

async fn send(
    ctx: &Arc<Ctx>,
    client: &mut Pop3Client,
    report: &mut FolderReport,
    tally: &mut Tally,
    msgnos: &[u32],
    key: &(dyn Fn(u32) -> MessageKey + Sync),
    target: &Target,
) -> Result<(), PassError> {
    if msgnos.is_empty() {
        return Ok(());
    }
    let (jobs, mut done, mut workers) = deliver::start(ctx.clone(), ctx.opts.connections);
    // Without PIPELINING one RETR is outstanding at a time (RFC 2449 §6.6).
    let window = if client.pipelining() {
        ctx.opts.batch.clamp(1, 16)
    } else {
        1
    };
    let mut result = Ok(());
    'windows: for chunk in msgnos.chunks(window) {
        for n in chunk {
            if let Err(e) = client.send_retr(*n).await {
                result = Err(pass_error(&e, "RETR"));
                break 'windows;
            }
        }
        for n in chunk {
            let message = match client.read_retr().await {
                Ok(m) => m,
                Err(e) => {
                    result = Err(pass_error(&e, "RETR"));
                    break 'windows;
                }
            };
            let job = Job {
                key: key(*n),
                handle: *n,
                message,
                flags: Vec::new(),
                internal_date: None,
                target: target.clone(),
                file: None,
            };
            if jobs.send(job).await.is_err() {
                break 'windows;
            }
            while let Ok(d) = done.try_recv() {
                tally.done(ctx, report, d);
            }
        }
    }
    drop(jobs);
    while let Some(d) = done.recv().await {
        tally.done(ctx, report, d);
    }
    while workers.join_next().await.is_some() {}
    result
}

/// DELE what was delivered (unless --keep), QUIT to commit, then record the removals.
async fn remove(
    ctx: &Ctx,
    mut client: Pop3Client,
    report: &mut FolderReport,
    tally: &mut Tally,
) -> Result<(), PassError> {
    if ctx.opts.keep || tally.removable.is_empty() {
        let _ = client.quit().await;
        return Ok(());
    }
    let batch = std::mem::take(&mut tally.removable);
    let msgnos: Vec<u32> = batch.iter().map(|(_, n)| *n).collect();
    client
        .dele_many(&msgnos)
        .await
        .map_err(|e| pass_error(&e, "DELE"))?;
    client.quit().await.map_err(|e| pass_error(&e, "QUIT"))?;
    report.removed += batch.len();
    Tally::record_removed(ctx, batch)
        .await
        .map_err(|e| PassError::fatal(e.to_string()))
}
