//! `posta migrate`: bring the mail that piled up on mailserver2 home to mailserver1, losing
//! nothing and duplicating nothing.
//!
//! Data flow per account: a reader (`imap_source`, `pop3_source` or `maildir_source`) lists what is on
//! mailserver2, sorts it by the journal (already delivered, outcome unknown, to send), streams
//! the rest to `deliver` workers (SMTP/LMTP for INBOX, IMAP APPEND for folders) and removes
//! from the source only what the journal records as delivered. `verify` asks mailserver1 about
//! unknown outcomes and reads the destination back for the reconciliation `report`.
//!
//! - `plan`       accounts and options, as `cmd::migrate` builds them.
//! - `journal`    per-account record of each message's step, fsync'd before the step it enables.
//! - `message`    envelope, Message-ID, body hash and the trace header, from the raw bytes.
//! - `folders`    folder names across delimiters and namespaces.
//! - `maildir`    Maildir++ on disk: folders, unique names, flags, read and remove.
//! - `deliver`    the delivery workers and the no-loss order of steps.
//! - `quarantine` the local Maildir for what mailserver1 refused for good.
//! - `confirm`    confirm before remove: a delivered message is found at mailserver1 first.
//! - `verify`     unknown outcomes and the read-back by tracking id, Message-ID and body hash.
//! - `report`     the reconciliation, as a table or JSON.
//! - `discover`   the site's accounts for `accounts = "all"`.
//! - `uncovered`  mailboxes on mailserver2 with mail that no account covers.
//! - `progress`   one bar for the site on a terminal, log lines elsewhere.

pub mod confirm;
pub mod deliver;
pub mod discover;
pub mod folders;
mod imap_source;
pub mod journal;
pub mod maildir;
mod maildir_source;
pub mod message;
pub mod plan;
mod pop3_source;
pub mod progress;
pub mod quarantine;
pub mod report;
pub mod uncovered;
pub mod verify;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::deliver::{Job, Target};
use self::journal::{Journal, MessageKey};
use self::plan::{Account, Options, SourceKind};
use self::progress::{AccountProgress, Progress};
use self::quarantine::Quarantine;
use self::report::{AccountReport, FolderReport, Problem, RunReport};
use crate::client::smtp::Dialect;
use crate::durable;

/// Everything one account's reader and workers share.
pub struct Ctx {
    pub account: Account,
    pub opts: Options,
    pub journal: Arc<Journal>,
    pub quarantine: Quarantine,
    /// Stable name of the source mailbox (journal file, tracking ids).
    pub source_id: String,
    /// `posta.<hash>`: the prefix of this account's tracking ids, searched for at mailserver1.
    pub tag: String,
    /// This host, the trace header's `by`.
    pub by: String,
    pub source_ip: Option<String>,
    pub progress: AccountProgress,
    /// The account's turn to deliver, given back once it has sent everything.
    pub slot: Slot,
}

/// The site-wide caps an account's slot is taken from.
#[derive(Clone)]
struct Caps {
    /// Accounts delivering at once (`--parallel`).
    delivering: Arc<Semaphore>,
    /// Delivery connections to mailserver1 across the site (`--max-primary-connections`).
    primary: Arc<Semaphore>,
    /// Accounts confirming and reading mailserver1 back at once, after their delivery: as many
    /// as deliver, so the sessions open to mailserver2 stay bounded (each keeps its own for
    /// the removals).
    confirming: Arc<Semaphore>,
}

/// What an account holds of the site-wide caps.
enum Held {
    Nothing,
    Delivering {
        _account: OwnedSemaphorePermit,
        _connections: OwnedSemaphorePermit,
    },
    Confirming {
        _permit: OwnedSemaphorePermit,
    },
}

/// An account's turn: a delivering slot with its share of mailserver1's connections while it
/// sends, then a confirming slot. Once an account has sent everything it only waits for
/// mailserver1 to store what it accepted (up to --settle) and reads it back; holding the
/// delivering slot meanwhile would leave mailserver1's connections idle while the next
/// account waits to start.
pub struct Slot {
    caps: Caps,
    /// Delivery connections this account was granted (its workers per folder).
    connections: usize,
    held: Mutex<Held>,
}

impl Slot {
    /// Waits for a delivering slot and `want` connections of the site's cap (fewer when fewer
    /// are free, at least one): the account starts with its delivery connections granted,
    /// never with a source session open and idle while it waits. Taking what is free rather
    /// than waiting for all keeps the cap full; the semaphores are fair, so no account
    /// starves.
    async fn deliver(caps: Caps, want: usize) -> Slot {
        let account = caps.delivering.clone().acquire_owned().await;
        let cap = caps.primary.available_permits().clamp(1, want);
        let connections = caps.primary.clone().acquire_many_owned(cap as u32).await;
        let held = match (account, connections) {
            (Ok(a), Ok(c)) => Held::Delivering {
                _account: a,
                _connections: c,
            },
            // The semaphores are never closed.
            _ => Held::Nothing,
        };
        Slot {
            caps,
            connections: cap,
            held: Mutex::new(held),
        }
    }

    /// The delivering slot again, for a pass restarted after the account gave it back.
    async fn deliver_again(&self) {
        if matches!(*self.lock(), Held::Delivering { .. }) {
            return;
        }
        // The confirming slot goes first: waiting for a delivering slot while holding one
        // could deadlock with an account that holds the other way round.
        *self.lock() = Held::Nothing;
        let account = self.caps.delivering.clone().acquire_owned().await;
        let connections = self
            .caps
            .primary
            .clone()
            .acquire_many_owned(self.connections as u32)
            .await;
        if let (Ok(a), Ok(c)) = (account, connections) {
            *self.lock() = Held::Delivering {
                _account: a,
                _connections: c,
            };
        }
    }

    /// The account has sent everything: it takes a confirming slot, then gives its
    /// delivering slot and connections to the next account. Idempotent.
    pub async fn sent_everything(&self) {
        if !matches!(*self.lock(), Held::Delivering { .. }) {
            return;
        }
        // No deadlock: a confirming account never waits for a delivering slot.
        let permit = self.caps.confirming.clone().acquire_owned().await;
        *self.lock() = match permit {
            Ok(p) => Held::Confirming { _permit: p },
            Err(_) => Held::Nothing,
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Nothing panics while holding the lock; a poisoned one still holds valid permits.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Ctx {
    /// The tracking id of one source message, carried in the trace header.
    pub fn tracking_id(&self, key: &MessageKey) -> String {
        let validity = key.validity.to_string();
        format!(
            "{}.{}",
            self.tag,
            message::short_hash(&[&key.folder, &validity, &key.id])
        )
    }

    /// How reports name a message: `validity/uid` (IMAP), the UIDL (POP3) or the unique
    /// base name (Maildir).
    pub fn label(&self, key: &MessageKey) -> String {
        match self.account.source.kind {
            SourceKind::Imap => format!("{}/{}", key.validity, key.id),
            SourceKind::Pop3 | SourceKind::Maildir => key.id.clone(),
        }
    }

    pub fn delivery_name(&self) -> &'static str {
        match self.account.delivery.dialect {
            Dialect::Smtp => "smtp",
            Dialect::Lmtp => "lmtp",
        }
    }

    /// The message as it is relayed: byte-exact plus the one trace header, and for SMTP/LMTP
    /// delivery its Delivered-To fields renamed ([`message::rename_delivered_to`]) so that
    /// mailserver1's delivery does not take it for a loop and bounce it after its 250.
    pub fn with_trace(&self, job: &Job, rcpt: Option<&str>) -> Vec<u8> {
        let tracking_id = self.tracking_id(&job.key);
        let uid = self.label(&job.key);
        let trace = message::Trace {
            source_host: &self.account.source.endpoint.host,
            source_ip: self.source_ip.as_deref(),
            by: &self.by,
            protocol: self.account.source.kind.trace_name(),
            user: &self.account.source.login.user,
            folder: &job.key.folder,
            uid: &uid,
            tracking_id: &tracking_id,
            rcpt,
            date: &message::now_rfc5322(),
        }
        .render();
        let original = match job.target {
            Target::Deliver => message::rename_delivered_to(&job.message),
            Target::Append { .. } => std::borrow::Cow::Borrowed(&job.message[..]),
        };
        let at = message::trace_offset(&original);
        let mut out = Vec::with_capacity(original.len() + trace.len());
        out.extend_from_slice(&original[..at]);
        out.extend_from_slice(&trace);
        out.extend_from_slice(&original[at..]);
        out
    }

    /// Whether posta can look into mailserver1's mailbox (an IMAP login there, or its Maildir
    /// on this host): then a delivered message is confirmed there before it leaves the source,
    /// and an unknown outcome is settled by looking instead of by `--unknown`.
    pub fn read_back_path(&self) -> bool {
        verify::ReadBack::of(&self.account).is_some()
    }

    /// Whether a delivered message of a folder going to `target` waits for confirmation before
    /// removal. An IMAP APPEND's OK means stored; an SMTP/LMTP 250 only means accepted.
    pub fn confirms(&self, target: &Target) -> bool {
        matches!(target, Target::Deliver)
            && self.read_back_path()
            && !self.opts.keep
            && !self.opts.dry_run
    }

    /// A folder that goes by IMAP APPEND cannot move without an IMAP login on mailserver1: the
    /// problem that says so, when `pending` messages wait to move.
    pub fn append_without_login(&self, target: &Target, pending: usize) -> Option<Problem> {
        let stuck = matches!(target, Target::Append { .. })
            && self.account.dest_imap.is_none()
            && pending > 0;
        stuck.then(|| Problem {
            uid: "*".into(),
            message_id: None,
            reason: format!(
                "{pending} messages not migrated: folders go by IMAP APPEND and no IMAP login on \
                 mailserver1 was given (--to-imap, or the account's dest_user in the site file)"
            ),
            quarantine: None,
        })
    }

    /// Whether this run reads mailserver1 back at the end.
    pub fn will_verify(&self) -> bool {
        self.opts.verify && !self.opts.dry_run && verify::ReadBack::of(&self.account).is_some()
    }

    /// What a folder's messages go to, for the report.
    pub fn describe(&self, target: &Target) -> String {
        match target {
            Target::Deliver => self.delivery_name().to_owned(),
            Target::Append { raw_name } => format!("imap:{raw_name}"),
        }
    }
}

/// Why a pass over an account stopped early.
#[derive(Debug)]
pub struct PassError {
    pub message: String,
    pub transient: bool,
}

impl PassError {
    pub fn fatal(message: impl Into<String>) -> PassError {
        PassError {
            message: message.into(),
            transient: false,
        }
    }
}

/// Migrates every account (`opts.parallel_accounts` at a time) and returns the
/// reconciliation.
pub async fn run(accounts: Vec<Account>, opts: &Options, progress: &Progress) -> RunReport {
    let started = Instant::now();
    let ids: Vec<String> = accounts.iter().map(Account::source_id).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let adopted = durable::adopt_legacy_state_files(&journal_dir(opts), &ids, JOURNAL_EXT)
        .and_then(|()| durable::adopt_legacy_state_files(&quarantine_dir(opts), &ids, ""));
    if let Err(e) = adopted {
        // Nothing is opened while the owner of a journal or a quarantine is in doubt.
        let reports = accounts
            .iter()
            .map(|a| AccountReport {
                account: a.name.clone(),
                source: a.source_id(),
                error: Some(e.to_string()),
                ..Default::default()
            })
            .collect();
        return RunReport::new(reports, started.elapsed());
    }
    let cap = opts.primary_connections.max(1);
    let caps = Caps {
        delivering: Arc::new(Semaphore::new(opts.parallel_accounts.max(1))),
        primary: Arc::new(Semaphore::new(cap)),
        confirming: Arc::new(Semaphore::new(opts.parallel_accounts.max(1))),
    };
    let bars: Vec<_> = accounts.iter().map(|a| progress.account(&a.name)).collect();
    let mut tasks = Vec::new();
    // Accounts start in the order given, each once it has its slot.
    for (account, bar) in accounts.into_iter().zip(bars) {
        let slot = Slot::deliver(caps.clone(), opts.connections.clamp(1, cap)).await;
        let mut opts = opts.clone();
        opts.connections = slot.connections;
        tasks.push(tokio::spawn(migrate_account(account, opts, bar, slot)));
    }
    let mut reports = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => reports.push(r),
            Err(e) => reports.push(AccountReport {
                account: "?".into(),
                error: Some(format!("internal error: {e}")),
                ..Default::default()
            }),
        }
    }
    RunReport::new(reports, started.elapsed())
}

/// Each source's journal, named for its [`Account::source_id`].
fn journal_dir(opts: &Options) -> PathBuf {
    opts.state_dir.join("journal")
}

const JOURNAL_EXT: &str = ".journal";

/// Each source's quarantine Maildir, named as its journal is.
fn quarantine_dir(opts: &Options) -> PathBuf {
    opts.state_dir.join("quarantine")
}

async fn migrate_account(
    account: Account,
    opts: Options,
    bar: AccountProgress,
    slot: Slot,
) -> AccountReport {
    let source_id = account.source_id();
    let mut report = AccountReport {
        account: account.name.clone(),
        source: source_id.clone(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let journal_path = journal_dir(&opts).join(durable::state_file_name(&source_id, JOURNAL_EXT));
    let journal = match Journal::open(&journal_path) {
        Ok(j) => j,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    // A Maildir is read on this host: no peer address to name.
    let source_ip = if account.source.kind == SourceKind::Maildir {
        None
    } else {
        tokio::net::lookup_host((
            account.source.endpoint.host.as_str(),
            account.source.endpoint.port,
        ))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip().to_string())
    };
    let ctx = Arc::new(Ctx {
        tag: format!("posta.{}", message::short_hash(&[&source_id])),
        by: account.delivery.helo.clone(),
        quarantine: Quarantine::new(
            quarantine_dir(&opts).join(durable::state_file_name(&source_id, "")),
        ),
        account,
        opts,
        journal,
        source_id,
        source_ip,
        progress: bar,
        slot,
    });
    // Transient failures of the source (a restart, a dropped connection) restart the pass:
    // the journal makes every pass start where the last one stopped.
    let started = Instant::now();
    let mut tries = 0;
    let mut folders: Vec<FolderReport> = Vec::new();
    loop {
        ctx.slot.deliver_again().await;
        let pass = match ctx.account.source.kind {
            SourceKind::Imap => imap_source::pass(&ctx).await,
            SourceKind::Pop3 => pop3_source::pass(&ctx).await,
            SourceKind::Maildir => maildir_source::pass(&ctx).await,
        };
        match pass {
            Ok(done) => {
                merge(&mut folders, done);
                break;
            }
            Err((partial, e)) => {
                merge(&mut folders, partial);
                tries += 1;
                let delay = deliver::RETRY.delay(tries);
                if !e.transient || started.elapsed() + delay > ctx.opts.retry_for {
                    report.error = Some(e.message);
                    break;
                }
                tracing::warn!(account = %ctx.account.name, retry_in = ?delay, "{}", e.message);
                tokio::time::sleep(delay).await;
            }
        }
    }
    ctx.slot.sent_everything().await;
    if ctx.will_verify()
        && let Err(e) = verify::read_back(&ctx, &mut folders).await
    {
        report
            .error
            .get_or_insert(format!("reading mailserver1 back failed: {e}"));
    }
    ctx.progress.finish();
    // Kept for the read-back only: a site's run holds every account's report to the end.
    for f in &mut folders {
        f.delivered_keys = Vec::new();
    }
    report.folders = folders;
    report
}

/// Folds a later pass's folder reports into the earlier ones (a pass restarted after a
/// transient failure counts what it finds again as `earlier`).
fn merge(into: &mut Vec<FolderReport>, pass: Vec<FolderReport>) {
    for f in pass {
        match into.iter_mut().find(|g| g.folder == f.folder) {
            Some(g) => {
                // The later pass counts what the earlier one delivered as `earlier`.
                g.earlier = g.earlier.max(f.earlier.saturating_sub(g.delivered));
                g.delivered += f.delivered;
                g.delivered_bytes += f.delivered_bytes;
                g.removed += f.removed;
                g.gone += f.gone;
                g.quarantined = f.quarantined;
                g.left = f.left;
                g.unconfirmed = f.unconfirmed;
                g.resent_unknown += f.resent_unknown;
                g.skipped = f.skipped;
                // What a pass verified from its confirmation looks (the rest waits in
                // delivered_keys for the read-back at the end).
                if let Some(v) = f.verified {
                    g.verified = Some(g.verified.unwrap_or(0) + v);
                }
                g.missing.extend(f.missing);
                g.duplicated.extend(f.duplicated);
                g.delivered_keys.extend(f.delivered_keys);
            }
            None => into.push(f),
        }
    }
}
