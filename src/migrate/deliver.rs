//! Delivery workers: each owns one connection to mailserver1 (SMTP/LMTP for INBOX, IMAP for
//! folders) and takes messages from the folder's reader until it runs dry.
//!
//! The order for each message is the no-loss rule (fetchmail's):
//! envelope and data first, then the journal's `sending` record, then the final dot;
//! `delivered` is recorded only after the 2xx, and only a `delivered` message may leave the
//! source. 5xx: a quarantine copy, the source keeps it. 4xx, 421, a lost connection before the
//! dot: retried with backoff for `retry_for`. A connection lost after the dot: the outcome is
//! unknown, and the reader asks mailserver1 before sending again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};

use super::Ctx;
use super::confirm::Presence;
use super::journal::{Entry, MessageKey, Step};
use super::message;
use super::plan::UnknownPolicy;
use super::verify::VerifyError;
use crate::client::imap::{ImapClient, ImapError};
use crate::client::smtp::{SmtpClient, SmtpError};
use crate::proto::smtp::Reply;
use crate::retry::Backoff;

/// Waits between tries after a temporary failure, of a delivery and of a whole pass: 1 s
/// doubling to 30 s, ±25 % so accounts that failed together do not retry together.
pub(super) const RETRY: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30)).with_jitter(0.25);

/// Where a message goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// SMTP/LMTP to the envelope recipient.
    Deliver,
    /// IMAP APPEND to this folder (name on the wire).
    Append { raw_name: String },
}

/// A message read from the source, ready to deliver.
pub struct Job {
    pub key: MessageKey,
    /// The source's handle for removal: the UID (IMAP) or message number (POP3).
    pub handle: u32,
    pub message: Vec<u8>,
    pub flags: Vec<String>,
    pub internal_date: Option<String>,
    pub target: Target,
    /// The source file's identity (Maildir source), journaled with every step.
    pub file: Option<String>,
}

/// What happened to a message.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered,
    Quarantined {
        reason: String,
        copy: Option<String>,
    },
    /// Sent, but the reply never came: only mailserver1 knows.
    InDoubt {
        reason: String,
    },
    /// Temporary failures outlasted the retry time (or an error retrying cannot fix).
    Left {
        reason: String,
    },
}

/// A finished job, back to the reader.
pub struct Done {
    pub key: MessageKey,
    pub handle: u32,
    pub size: u64,
    pub message_id: Option<String>,
    pub outcome: Outcome,
}

/// Bytes of read messages that may wait for a worker. The reader stops now and then: it
/// removes a window of delivered messages from the source (Dovecot's EXPUNGE of 200 Maildir
/// files takes a few hundred milliseconds) or looks for them at mailserver1. What waits here
/// keeps the workers delivering meanwhile; the reader then catches up, the source being faster
/// than mailserver1's intake. Small against the memory ceiling, also with `--parallel`
/// accounts each holding its own.
const WAITING_BYTES: usize = 2 << 20;

/// Messages that may wait for a worker, however small.
const WAITING_JOBS: usize = 64;

/// The workers' intake: bounded in messages and in bytes, so a fast source never piles
/// messages up in memory.
pub struct Jobs {
    tx: mpsc::Sender<(Job, OwnedSemaphorePermit)>,
    room: Arc<Semaphore>,
}

/// Every worker has stopped: the job was not taken.
#[derive(Debug)]
pub struct WorkersGone;

impl Jobs {
    /// Hands `job` to the workers, waiting while the messages already waiting fill the room
    /// (a message larger than the room waits until it is empty).
    pub async fn send(&self, job: Job) -> Result<(), WorkersGone> {
        let bytes = job.message.len().clamp(1, WAITING_BYTES);
        let permit = self
            .room
            .clone()
            .acquire_many_owned(u32::try_from(bytes).unwrap_or(u32::MAX))
            .await
            .map_err(|_| WorkersGone)?;
        self.tx.send((job, permit)).await.map_err(|_| WorkersGone)
    }
}

/// Starts `n` workers. Jobs go into the returned [`Jobs`]; results come out of the receiver.
pub fn start(
    ctx: Arc<Ctx>,
    n: usize,
) -> (
    Jobs,
    mpsc::UnboundedReceiver<Done>,
    tokio::task::JoinSet<()>,
) {
    let (job_tx, job_rx) = mpsc::channel(WAITING_JOBS.max(n));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n.max(1) {
        set.spawn(worker(ctx.clone(), job_rx.clone(), done_tx.clone()));
    }
    let jobs = Jobs {
        tx: job_tx,
        room: Arc::new(Semaphore::new(WAITING_BYTES)),
    };
    (jobs, done_rx, set)
}

#[derive(Default)]
struct Conns {
    smtp: Option<SmtpClient>,
    imap: Option<ImapClient>,
}

async fn worker(
    ctx: Arc<Ctx>,
    jobs: Arc<Mutex<mpsc::Receiver<(Job, OwnedSemaphorePermit)>>>,
    done: mpsc::UnboundedSender<Done>,
) {
    let mut conns = Conns::default();
    loop {
        let job = jobs.lock().await.recv().await;
        let Some((job, waiting)) = job else { break };
        // Taken: its bytes no longer wait, the room is the reader's again.
        drop(waiting);
        let size = job.message.len() as u64;
        let facts = Facts {
            message_id: message::message_id(&job.message),
            // The hash serves the read-back only: SHA-256 of every body is the largest CPU
            // cost of a migration, not worth paying when nothing will be read back.
            hash: if ctx.will_verify() {
                message::body_hash(&job.message)
            } else {
                String::new()
            },
            file: job.file.clone(),
        };
        let finished = Done {
            key: job.key.clone(),
            handle: job.handle,
            size,
            message_id: facts.message_id.clone(),
            outcome: Outcome::Delivered,
        };
        // Boxed: the delivery future nests the SMTP/IMAP session futures and is large.
        match Box::pin(deliver(&ctx, &mut conns, &job, &facts)).await {
            Ended::Outcome(outcome) => {
                ctx.progress.message(size);
                let _ = done.send(Done {
                    outcome,
                    ..finished
                });
            }
            // The `delivered` record's fsync runs while this worker sends the next message;
            // the reader hears of the message (and may remove it) only once it is on disk.
            Ended::Accepted(entry) => {
                let (ctx, done) = (ctx.clone(), done.clone());
                tokio::spawn(async move {
                    let outcome = match ctx.journal.record(&finished.key, entry).await {
                        Ok(()) => Outcome::Delivered,
                        // Accepted, but not durably known: the next run must check, not resend.
                        Err(e) => Outcome::InDoubt {
                            reason: e.to_string(),
                        },
                    };
                    ctx.progress.message(size);
                    let _ = done.send(Done {
                        outcome,
                        ..finished
                    });
                });
            }
        }
    }
    if let Some(c) = conns.smtp.take() {
        let _ = c.quit().await;
    }
    if let Some(c) = conns.imap.take() {
        let _ = c.logout().await;
    }
}

/// What the journal records about a message, computed once per message.
struct Facts {
    message_id: Option<String>,
    hash: String,
    file: Option<String>,
}

/// One attempt's result.
enum Attempt {
    Accepted,
    Refused(String),
    /// Known not delivered; worth retrying.
    Transient(String),
    /// Retrying cannot help (bad certificate, login refused): leave it on the source.
    Fatal(String),
    Unknown(String),
}

/// How a delivery ended: mailserver1 accepted the message and its `delivered` record (this
/// entry) is still to be written, or that is all there is to know.
enum Ended {
    Accepted(Entry),
    Outcome(Outcome),
}

async fn deliver(ctx: &Ctx, conns: &mut Conns, job: &Job, facts: &Facts) -> Ended {
    let rcpt = match (&job.target, &ctx.account.rcpt) {
        (Target::Append { .. }, _) => None,
        (Target::Deliver, Some(r)) => Some(r.clone()),
        (Target::Deliver, None) => match message::envelope_recipient(&job.message) {
            Some(r) => Some(r),
            None => {
                let reason = "no envelope recipient: no Delivered-To or X-Original-To header and \
                              no account mapping (posta never guesses from To/Cc)";
                return Ended::Outcome(quarantine(ctx, job, facts, reason.into()).await);
            }
        },
    };
    let bytes = ctx.with_trace(job, rcpt.as_deref());
    let started = Instant::now();
    let mut tries = 0;
    loop {
        let attempt = match &job.target {
            Target::Deliver => {
                smtp_once(
                    ctx,
                    conns,
                    job,
                    facts,
                    rcpt.as_deref().unwrap_or_default(),
                    &bytes,
                )
                .await
            }
            Target::Append { raw_name } => {
                append_once(ctx, conns, job, facts, raw_name, &bytes).await
            }
        };
        match attempt {
            Attempt::Accepted => {
                let entry = ctx.entry(facts, Step::Delivered, ctx.describe(&job.target));
                return Ended::Accepted(entry);
            }
            Attempt::Refused(reason) => {
                return Ended::Outcome(quarantine(ctx, job, facts, reason).await);
            }
            Attempt::Unknown(reason) => {
                conns.smtp = None;
                conns.imap = None;
                return Ended::Outcome(Outcome::InDoubt { reason });
            }
            Attempt::Fatal(reason) => {
                conns.smtp = None;
                conns.imap = None;
                return Ended::Outcome(Outcome::Left { reason });
            }
            Attempt::Transient(reason) => {
                conns.smtp = None;
                conns.imap = None;
                tries += 1;
                let delay = RETRY.delay(tries);
                if started.elapsed() + delay > ctx.opts.retry_for {
                    return Ended::Outcome(Outcome::Left {
                        reason: format!("{reason} (still failing after {:?})", started.elapsed()),
                    });
                }
                tracing::warn!(
                    account = %ctx.account.name,
                    uid = %ctx.label(&job.key),
                    retry_in = ?delay,
                    "temporary failure: {reason}"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn quarantine(ctx: &Ctx, job: &Job, facts: &Facts, reason: String) -> Outcome {
    let name = message::short_hash(&[&ctx.source_id, &ctx.label(&job.key)]);
    let q = ctx.quarantine.clone();
    let message = job.message.clone();
    let stored = tokio::task::spawn_blocking(move || q.store(&name, &message)).await;
    let copy = match stored {
        Ok(Ok(path)) => Some(path.display().to_string()),
        Ok(Err(e)) => {
            return Outcome::Left {
                reason: format!("{reason}; and the quarantine copy failed: {e}"),
            };
        }
        Err(e) => {
            return Outcome::Left {
                reason: format!("{reason}; and the quarantine copy failed: {e}"),
            };
        }
    };
    let entry = ctx.entry(facts, Step::Quarantined, reason.clone());
    if let Err(e) = ctx.journal.record(&job.key, entry).await {
        tracing::error!("{e}");
    }
    Outcome::Quarantined { reason, copy }
}

fn reply_text(reply: &Reply) -> String {
    reply.lines.join(" ")
}

fn smtp_attempt(err: &SmtpError) -> Attempt {
    if err.is_transient() {
        Attempt::Transient(err.to_string())
    } else {
        Attempt::Fatal(err.to_string())
    }
}

fn classify(what: &str, reply: &Reply) -> Option<Attempt> {
    match reply.class() {
        2 | 3 => None,
        4 => Some(Attempt::Transient(format!(
            "{what}: {} {}",
            reply.code,
            reply_text(reply)
        ))),
        _ => Some(Attempt::Refused(format!(
            "{what}: {} {}",
            reply.code,
            reply_text(reply)
        ))),
    }
}

async fn smtp_once(
    ctx: &Ctx,
    conns: &mut Conns,
    job: &Job,
    facts: &Facts,
    rcpt: &str,
    bytes: &[u8],
) -> Attempt {
    if conns.smtp.is_none() {
        let d = &ctx.account.delivery;
        match SmtpClient::connect(&d.endpoint, d.dialect, &d.helo, None).await {
            Ok(c) => conns.smtp = Some(c),
            Err(e) => return smtp_attempt(&e),
        }
    }
    let Some(client) = conns.smtp.as_mut() else {
        return Attempt::Transient("no connection".into());
    };
    let sender = message::envelope_sender(&job.message);
    let eight_bit = bytes.iter().any(|b| *b >= 0x80);
    let env = match client
        .begin(
            sender.as_deref(),
            &[rcpt.to_owned()],
            bytes.len(),
            eight_bit,
        )
        .await
    {
        Ok(env) => env,
        Err(e) => return smtp_attempt(&e),
    };
    if let Some(a) = classify(
        &format!("MAIL FROM:<{}>", sender.unwrap_or_default()),
        &env.mail,
    ) {
        let _ = client.rset().await;
        return a;
    }
    for (r, reply) in &env.rcpts {
        if let Some(a) = classify(&format!("RCPT TO:<{r}>"), reply) {
            let _ = client.rset().await;
            return a;
        }
    }
    match &env.data {
        Some(reply) if reply.code == 354 => {}
        Some(reply) => {
            let _ = client.rset().await;
            return classify("DATA", reply)
                .unwrap_or_else(|| Attempt::Transient(format!("DATA: {}", reply.code)));
        }
        None => return Attempt::Transient("server did not reach DATA".into()),
    }
    if let Err(e) = client.write_body(bytes).await {
        return smtp_attempt(&e);
    }
    let entry = ctx.entry(facts, Step::Sending, String::new());
    if let Err(e) = ctx.journal.record(&job.key, entry).await {
        // Without the record a crash after the dot could duplicate: do not send the dot.
        return Attempt::Fatal(e.to_string());
    }
    let verdict = match client.finish().await {
        Ok(replies) if replies.is_empty() => {
            Attempt::Unknown("no reply after the final dot".into())
        }
        Ok(replies) => replies
            .iter()
            .filter_map(|(r, reply)| classify(&format!("end of data for <{r}>"), reply))
            .next_back()
            .unwrap_or(Attempt::Accepted),
        // A refusal is an answer; anything else after the dot leaves the outcome unknown.
        Err(e) => match e.reply() {
            Some(reply) if matches!(e, SmtpError::Rejected { .. }) => {
                classify("end of data", reply).unwrap_or_else(|| Attempt::Unknown(e.to_string()))
            }
            _ => Attempt::Unknown(format!("after the final dot: {e}")),
        },
    };
    if let Attempt::Transient(reason) = &verdict {
        // The server said "not now" to the dot: certainly not delivered.
        let entry = ctx.entry(facts, Step::Deferred, reason.clone());
        if let Err(e) = ctx.journal.record(&job.key, entry).await {
            return Attempt::Fatal(e.to_string());
        }
    }
    verdict
}

fn imap_attempt(err: &ImapError) -> Attempt {
    if err.is_transient() {
        Attempt::Transient(err.to_string())
    } else {
        Attempt::Fatal(err.to_string())
    }
}

async fn append_once(
    ctx: &Ctx,
    conns: &mut Conns,
    job: &Job,
    facts: &Facts,
    raw_name: &str,
    bytes: &[u8],
) -> Attempt {
    if conns.imap.is_none() {
        let Some(dest) = &ctx.account.dest_imap else {
            return Attempt::Fatal("no IMAP login on mailserver1 for folders".into());
        };
        match dest.open().await {
            Ok(c) => conns.imap = Some(c),
            Err(e) => return imap_attempt(&e),
        }
    }
    let Some(client) = conns.imap.as_mut() else {
        return Attempt::Transient("no connection".into());
    };
    let entry = ctx.entry(facts, Step::Sending, String::new());
    if let Err(e) = ctx.journal.record(&job.key, entry).await {
        return Attempt::Fatal(e.to_string());
    }
    let date = job.internal_date.as_deref();
    let mut result = client.append(raw_name, &job.flags, date, bytes).await;
    if let Err(e) = &result
        && e.code() == Some("TRYCREATE")
    {
        if let Err(e) = client.create(raw_name).await {
            return imap_attempt(&e);
        }
        result = client.append(raw_name, &job.flags, date, bytes).await;
    }
    match result {
        Ok(_) => Attempt::Accepted,
        Err(e @ ImapError::Rejected { .. }) => {
            // A tagged NO/BAD: the server answered, so it did not store the message.
            let entry = ctx.entry(facts, Step::Deferred, e.to_string());
            if let Err(je) = ctx.journal.record(&job.key, entry).await {
                return Attempt::Fatal(je.to_string());
            }
            if e.is_transient() {
                Attempt::Transient(e.to_string())
            } else {
                Attempt::Refused(e.to_string())
            }
        }
        Err(e) => Attempt::Unknown(format!("APPEND to {raw_name}: {e}")),
    }
}

impl Ctx {
    /// The journal entry for a step of `job`.
    fn entry(&self, facts: &Facts, step: Step, detail: String) -> Entry {
        let at = match step {
            Step::Sending => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            _ => 0,
        };
        Entry {
            step,
            message_id: facts.message_id.clone(),
            hash: facts.hash.clone(),
            detail,
            at,
            file: facts.file.clone(),
        }
    }
}

/// A folder's bookkeeping while its messages are delivered.
#[derive(Default)]
pub struct Tally {
    /// Source handles (UIDs or message numbers) delivered and not yet removed.
    pub removable: Vec<(MessageKey, u32)>,
    /// Sent, outcome unknown.
    pub doubt: Vec<(MessageKey, u32)>,
    /// Accepted by mailserver1, not yet found in its mailbox: removable once found.
    pub unconfirmed: Vec<(MessageKey, u32)>,
    /// Whether delivered messages wait for confirmation ([`Ctx::confirms`]).
    confirms: bool,
    /// The session that looks for them; taken while a look runs beside the reader.
    presence: Option<Presence>,
    /// A window's look at mailserver1 running beside the reader ([`Tally::look_behind`]).
    looking: Option<tokio::task::JoinHandle<Look>>,
}

/// A finished look: the session, for the next one, and which tracking ids it found.
type Look = (Presence, Result<HashSet<String>, VerifyError>);

impl Tally {
    /// The bookkeeping for a folder whose messages go to `target`, read back from mailserver1's
    /// `dest_folder` when they need confirming.
    pub fn new(ctx: &Ctx, target: &Target, dest_folder: &str) -> Tally {
        let confirms = ctx.confirms(target);
        Tally {
            confirms,
            presence: confirms.then(|| Presence::new(dest_folder, ctx.will_verify())),
            ..Tally::default()
        }
    }

    /// Whether what this folder delivers waits for confirmation before removal.
    pub fn confirms(&self) -> bool {
        self.confirms
    }

    /// Books a message the journal already knows as accepted (an earlier run): removable, or
    /// first looked for at mailserver1 when the journal has no confirmation yet.
    pub fn earlier(&mut self, step: Step, key: MessageKey, handle: u32) {
        if step == Step::Delivered && self.confirms {
            self.unconfirmed.push((key, handle));
        } else {
            self.removable.push((key, handle));
        }
    }

    /// Books one finished job into the folder's report.
    pub fn done(&mut self, ctx: &Ctx, report: &mut super::report::FolderReport, d: Done) {
        let problem = |reason: String, copy: Option<String>| super::report::Problem {
            uid: ctx.label(&d.key),
            message_id: d.message_id.clone(),
            reason,
            quarantine: copy,
        };
        match d.outcome {
            Outcome::Delivered => {
                report.delivered += 1;
                report.delivered_bytes += d.size;
                if ctx.will_verify() {
                    let hash = ctx.journal.get(&d.key).map(|e| e.hash).unwrap_or_default();
                    report.delivered_keys.push((d.key.clone(), hash));
                }
                if self.confirms {
                    self.unconfirmed.push((d.key, d.handle));
                } else {
                    self.removable.push((d.key, d.handle));
                }
            }
            Outcome::Quarantined { reason, copy } => report.quarantined.push(problem(reason, copy)),
            Outcome::Left { reason } => report.left.push(problem(reason, None)),
            Outcome::InDoubt { reason } => {
                tracing::warn!(account = %ctx.account.name, uid = %ctx.label(&d.key), "outcome unknown: {reason}");
                self.doubt.push((d.key, d.handle));
            }
        }
    }

    /// Books messages mailserver1 turned out to have as delivered. Found in its mailbox, they
    /// are confirmed as well.
    pub async fn found(
        &mut self,
        ctx: &Ctx,
        report: &mut super::report::FolderReport,
        found: Vec<(MessageKey, u32)>,
    ) {
        let entries: Vec<_> = found
            .iter()
            .map(|(k, _)| {
                let detail = "found at mailserver1 after an unknown outcome";
                (k.clone(), ctx.journal.next(k, Step::Confirmed, detail))
            })
            .collect();
        if let Err(e) = ctx.journal.record_many(entries).await {
            tracing::error!("{e}");
            return;
        }
        for (k, uid) in found {
            report.delivered += 1;
            if ctx.will_verify() {
                let hash = ctx.journal.get(&k).map(|e| e.hash).unwrap_or_default();
                report.delivered_keys.push((k.clone(), hash));
            }
            if !ctx.opts.keep {
                self.removable.push((k, uid));
            }
        }
    }

    /// The folder's last look for the accepted messages at mailserver1, once everything is
    /// sent (after a look still running beside the reader): found ones are journaled
    /// `confirmed` and become removable. posta waits up to --settle; what is still not there
    /// stays on the source and is reported: mailserver1 bounced or lost it after its 250.
    /// What the looks saw then verifies the confirmed messages ([`Presence::verify`]).
    pub async fn confirm(&mut self, ctx: &Ctx, report: &mut super::report::FolderReport) {
        self.looked(ctx, true).await;
        let Some(mut presence) = self.presence.take() else {
            return;
        };
        if !self.unconfirmed.is_empty() {
            let ids = Self::tracking_ids(ctx, &self.unconfirmed);
            match presence.present(ctx, &ids, ctx.opts.settle).await {
                Ok(present) => {
                    self.book_present(ctx, &present).await;
                    if !self.unconfirmed.is_empty() {
                        let reason = format!(
                            "accepted by mailserver1 but not in its mailbox after --settle {:?} \
                             (bounced or lost after its 250: see mailserver1's log); kept on the \
                             source",
                            ctx.opts.settle
                        );
                        self.keep_unconfirmed(ctx, report, reason);
                    }
                }
                Err(e) => {
                    let reason = format!(
                        "accepted by mailserver1, but its mailbox could not be checked ({e}); \
                         kept on the source, the next run checks again"
                    );
                    self.keep_unconfirmed(ctx, report, reason);
                }
            }
        }
        presence.verify(ctx, report).await;
        presence.close().await;
        self.presence = Some(presence);
    }

    /// The tracking ids of accepted messages not yet seen at mailserver1.
    fn tracking_ids(ctx: &Ctx, unconfirmed: &[(MessageKey, u32)]) -> Vec<String> {
        unconfirmed
            .iter()
            .map(|(k, _)| ctx.tracking_id(k))
            .collect()
    }

    /// Journals the unconfirmed messages mailserver1 holds (`present`, by tracking id) as
    /// `confirmed`; they become removable.
    async fn book_present(&mut self, ctx: &Ctx, present: &HashSet<String>) {
        let (found, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unconfirmed)
            .into_iter()
            .partition(|(k, _)| present.contains(&ctx.tracking_id(k)));
        self.unconfirmed = rest;
        if found.is_empty() {
            return;
        }
        let entries = found
            .iter()
            .map(|(k, _)| (k.clone(), ctx.journal.next(k, Step::Confirmed, "")))
            .collect();
        match ctx.journal.record_many(entries).await {
            Ok(()) => self.removable.extend(found),
            // Not durably confirmed: stays on the source; the next run looks again.
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// Starts a look at mailserver1 for the accepted messages beside the reader, which goes on
    /// fetching meanwhile: what the look finds is booked by [`Tally::looked`]. It does not wait
    /// for what has not arrived yet: the next look, or the last, finds it. Nothing happens
    /// while a look runs or when nothing waits for confirmation.
    pub fn look_behind(&mut self, ctx: &Arc<Ctx>) {
        if self.looking.is_some() || self.unconfirmed.is_empty() {
            return;
        }
        let Some(mut presence) = self.presence.take() else {
            return;
        };
        let ids = Self::tracking_ids(ctx, &self.unconfirmed);
        let ctx = ctx.clone();
        self.looking = Some(tokio::spawn(async move {
            let present = presence.present(&ctx, &ids, Duration::ZERO).await;
            (presence, present)
        }));
    }

    /// Books the look started by [`Tally::look_behind`] once it has finished, or, with
    /// `wait`, waits for it: found messages are journaled `confirmed` and become removable.
    pub async fn looked(&mut self, ctx: &Ctx, wait: bool) {
        let Some(look) = self.looking.take_if(|l| wait || l.is_finished()) else {
            return;
        };
        let (presence, present) = match look.await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.presence = Some(presence);
        match present {
            Ok(present) => self.book_present(ctx, &present).await,
            Err(e) => {
                tracing::warn!(account = %ctx.account.name, "cannot look for delivered messages at mailserver1 yet: {e}");
            }
        }
    }

    /// Reports the unconfirmed messages as kept on the source; the read-back then leaves them
    /// out (they are named once, here).
    fn keep_unconfirmed(
        &mut self,
        ctx: &Ctx,
        report: &mut super::report::FolderReport,
        reason: String,
    ) {
        let kept = std::mem::take(&mut self.unconfirmed);
        report
            .delivered_keys
            .retain(|(k, _)| !kept.iter().any(|(u, _)| u == k));
        for (key, _) in kept {
            report.unconfirmed.push(super::report::Problem {
                uid: ctx.label(&key),
                message_id: ctx.journal.get(&key).and_then(|e| e.message_id),
                reason: reason.clone(),
                quarantine: None,
            });
        }
    }

    /// After a send round: the unknown outcomes so far (`doubt` plus this round's) are looked
    /// for at mailserver1, waiting up to `settle`; found ones are booked as delivered. Returns
    /// the source handles to send again; empty when there is nothing (more) to do. In the last
    /// round what is still unknown is reported as left. Without a read-back path (an IMAP login or a
    /// local Maildir on mailserver1) nothing can
    /// be looked for: `--unknown keep` reports them at once, `--unknown resend` sends them
    /// again once (and counts them as possibly doubled).
    pub async fn settle(
        &mut self,
        ctx: &Ctx,
        report: &mut super::report::FolderReport,
        doubt: &mut Vec<(MessageKey, u32)>,
        last_round: bool,
    ) -> Vec<u32> {
        doubt.append(&mut self.doubt);
        if doubt.is_empty() {
            return Vec::new();
        }
        if !ctx.read_back_path() {
            if ctx.opts.unknown == UnknownPolicy::Resend && !last_round {
                report.resent_unknown += doubt.len();
                return std::mem::take(doubt).into_iter().map(|(_, h)| h).collect();
            }
            super::verify::leave_unknown(ctx, report, std::mem::take(doubt));
            return Vec::new();
        }
        if last_round {
            super::verify::leave_unknown(ctx, report, std::mem::take(doubt));
            return Vec::new();
        }
        let folder = report.dest_folder.clone();
        let (found, unknown) =
            super::verify::resolve(ctx, &folder, std::mem::take(doubt), ctx.opts.settle).await;
        self.found(ctx, report, found).await;
        unknown.into_iter().map(|(_, handle)| handle).collect()
    }

    /// Records that `batch` left the source (after the server confirmed the removal).
    pub async fn record_removed(
        ctx: &Ctx,
        batch: Vec<(MessageKey, u32)>,
    ) -> Result<(), super::journal::JournalError> {
        // In slices: a whole maildrop's records at once would be a memory peak of its own.
        for slice in batch.chunks(500) {
            Self::record_removed_slice(ctx, slice).await?;
        }
        Ok(())
    }

    async fn record_removed_slice(
        ctx: &Ctx,
        batch: &[(MessageKey, u32)],
    ) -> Result<(), super::journal::JournalError> {
        let entries = batch
            .iter()
            .map(|(k, _)| (k.clone(), ctx.journal.next(k, Step::Removed, "")))
            .collect();
        ctx.journal.record_many(entries).await
    }
}
