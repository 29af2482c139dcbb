//! Recipient verification for backed-up domains without a recipient list: ask the primary
//! (`MAIL FROM:<>`, `RCPT TO`, `RSET`, like Postfix's `reject_unverified_recipient`) and
//! remember the answers, so that while the primary is down the backup still knows who exists.
//!
//! A positive answer is kept for 31 days (Postfix's `address_verify_positive_expire_time`) in
//! `QUEUE/verified`, one `address seconds` line each, appended and fsync'd; a negative one for
//! an hour, in memory. When the primary cannot be asked, a cached positive answer accepts and
//! anything else gets 450: the sender retries later, and nothing is accepted that might have
//! to bounce to a forged sender (notes §2, mailcow #2981).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::policy::Verdict;
use super::relay::Runner;
use super::spool::unix_now;
use super::tables::Reply;

const POSITIVE_TTL: u64 = 31 * 86_400;
const NEGATIVE_TTL: u64 = 3600;
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Verifier {
    runner: Arc<Runner>,
    file: PathBuf,
    /// Address → (valid, when learned).
    cache: Mutex<HashMap<String, (bool, u64)>>,
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

    fn remember(&self, addr: &str, valid: bool) {
        let now = unix_now();
        if let Ok(mut c) = self.cache.lock() {
            c.insert(addr.to_string(), (valid, now));
        }
        if valid {
            let line = format!("{addr} {now}\n");
            let res = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.file)
                .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_data()));
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
                self.remember(&addr, true);
                None
            }
            Ok(reply) => {
                self.remember(&addr, false);
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
