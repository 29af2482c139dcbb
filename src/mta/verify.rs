//! Recipient verification for backed-up domains without a recipient list: ask the primary
//! (`MAIL FROM:<>`, `RCPT TO`, `RSET`, like Postfix's `reject_unverified_recipient`) and
//! remember the answers, so that while the primary is down the backup still knows who exists.
//!
//! A positive answer is kept for 31 days (Postfix's `address_verify_positive_expire_time`) in
//! `QUEUE/verified`, one `address seconds` line each, appended and fsync'd; a negative one for
//! an hour, in memory. When the primary cannot be asked, a cached positive answer accepts and
//! anything else gets 450: the sender retries later, and nothing is accepted that might have
//! to bounce to a forged sender (Postfix's ADDRESS_VERIFICATION_README; mailcow #2981: live
//! verification alone "defeats the point of a backup MX", as it tempfails while the primary
//! is down).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::policy::Verdict;
use super::relay::Runner;
use super::tables::Reply;
use crate::clock::unix_now;
use crate::durable::{parent, sync_dir};

const POSITIVE_TTL: u64 = 31 * 86_400;
const NEGATIVE_TTL: u64 = 3600;
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Verifier {
    runner: Arc<Runner>,
    file: PathBuf,
    /// Address → (valid, when learned).
    cache: Mutex<HashMap<String, (bool, u64)>>,
}

/// Appends one line, fsync'd; a file made here has its directory entry fsync'd too. (An
/// append, not a replacement: the cache only grows between restarts, and a torn last line is
/// skipped when it is read back.)
fn append(file: &Path, line: &[u8]) -> std::io::Result<()> {
    let created = !file.exists();
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    f.write_all(line)?;
    f.sync_data()?;
    if created {
        sync_dir(parent(file))?;
    }
    Ok(())
}

impl Verifier {
    /// Loads the cache of positive answers from `queue/verified`.
    pub fn open(queue: &Path, runner: Arc<Runner>) -> Verifier {
        let file = queue.join("verified");
        let now = unix_now();
        let mut cache = HashMap::new();
        if let Ok(text) = fs::read_to_string(&file) {
            for line in text.lines() {
                let mut f = line.split_whitespace();
                if let (Some(a), Some(t)) = (f.next(), f.next().and_then(|t| t.parse::<u64>().ok()))
                    && now.saturating_sub(t) < POSITIVE_TTL
                {
                    cache.insert(a.to_string(), (true, t));
                }
            }
        }
        info!(addresses = cache.len(), "recipient cache loaded");
        Verifier {
            runner,
            file,
            cache: Mutex::new(cache),
        }
    }

    fn cached(&self, addr: &str) -> Option<bool> {
        let now = unix_now();
        let cache = self.cache.lock().ok()?;
        let (valid, at) = *cache.get(addr)?;
        let ttl = if valid { POSITIVE_TTL } else { NEGATIVE_TTL };
        (now.saturating_sub(at) < ttl).then_some(valid)
    }

    async fn remember(&self, addr: &str, valid: bool) {
        let now = unix_now();
        if let Ok(mut c) = self.cache.lock() {
            c.insert(addr.to_string(), (valid, now));
        }
        if valid {
            // The append and its fsync block: off the runtime, which serves every session.
            let (file, line) = (self.file.clone(), format!("{addr} {now}\n"));
            let res = tokio::task::spawn_blocking(move || append(&file, line.as_bytes()))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(e) = res {
                warn!(error = %e, file = %self.file.display(), "cannot record a verified recipient");
            }
        }
    }

    /// `None` when the recipient is valid; otherwise the refusal to give at RCPT.
    pub async fn check(&self, addr: &str) -> Option<Verdict> {
        let addr = addr.to_ascii_lowercase();
        let refuse = |code, dsn: &str, text: String| {
            Some(Verdict::Reject(Reply {
                code,
                dsn: Some(dsn.into()),
                text,
            }))
        };
        match self.cached(&addr) {
            Some(true) => return None,
            Some(false) => return refuse(550, "5.1.1", format!("{addr}: user unknown (verified)")),
            None => {}
        }
        match self.runner.probe_rcpt(&addr, PROBE_TIMEOUT).await {
            Ok(reply) if reply.class() == 2 => {
                debug!(%addr, "recipient verified with the primary");
                self.remember(&addr, true).await;
                None
            }
            Ok(reply) => {
                self.remember(&addr, false).await;
                refuse(550, "5.1.1", format!("{addr}: the primary said: {reply}"))
            }
            Err(why) => {
                info!(%addr, reason = %why, "cannot verify the recipient now");
                refuse(
                    450,
                    "4.1.1",
                    format!("{addr}: recipient not verified yet, try again later"),
                )
            }
        }
    }
}
