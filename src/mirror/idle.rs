//! `posta mirror --idle`: mail that reaches an INBOX on mailserver1 is on mailserver2 within
//! seconds, not within the interval. Per account one more session to mailserver1 (the admin
//! identity, as the pass logs in) EXAMINEs INBOX and IDLEs there (RFC 2177); when it wakes
//! with a change, that account is due for a pass a moment later ([`DEBOUNCE`]: a burst of
//! deliveries is one pass). The passes every interval go on beside it: they catch what
//! happens in other folders, which the INBOX session does not see.
//!
//! A session that fails reconnects with the house backoff ([`crate::retry`]), and its account
//! is passed once it is back (a delivery in between was not seen). A server without IDLE is
//! said once; its accounts are then passed every interval only.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Account, Side};
use crate::client::imap::{IdleWake, ImapClient, ImapError, MAX_IDLE};
use crate::retry::Backoff;

/// How long a wake waits for more before its pass starts: deliveries of one burst (a list
/// message, a queue flushed after an outage) arrive within it and make one pass.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// Waits between reconnections of a failed session: from 2 s, doubling to 5 min, ±25 %.
const RECONNECT: Backoff =
    Backoff::new(Duration::from_secs(2), Duration::from_secs(300)).with_jitter(0.25);

/// What the IDLE sessions report.
#[derive(Debug)]
pub enum Event {
    /// The account at this index of the list given to [`watch`] changed on mailserver1, or
    /// its session is back after a failure and may have missed a change.
    Changed(usize),
    /// The session of `account` failed; it reconnects after `retry_in`.
    Lost {
        account: String,
        error: ImapError,
        retry_in: Duration,
    },
    /// mailserver1 offers no IDLE to `account`: it is passed every interval only.
    Unsupported { account: String, error: ImapError },
}

/// Starts one IDLE session per account. The sessions end when the receiver of `events` is
/// dropped, or with the returned set.
pub fn watch(accounts: &[Account], events: mpsc::Sender<Event>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for (index, account) in accounts.iter().enumerate() {
        let (name, side, events) = (account.name.clone(), account.source.clone(), events.clone());
        set.spawn(async move { watch_one(index, name, side, events).await });
    }
    set
}

async fn watch_one(index: usize, name: String, side: Side, events: mpsc::Sender<Event>) {
    let mut failures = 0u32;
    let mut reconnected = false;
    loop {
        let error = match session(index, &side, reconnected, &mut failures, &events).await {
            // The receiver is gone: posta mirror is ending.
            Ok(()) => return,
            Err(error) => error,
        };
        if matches!(error, ImapError::Unsupported { .. }) {
            let _ = events
                .send(Event::Unsupported {
                    account: name,
                    error,
                })
                .await;
            return;
        }
        failures += 1;
        let retry_in = RECONNECT.delay(failures);
        let lost = Event::Lost {
            account: name.clone(),
            error,
            retry_in,
        };
        if events.send(lost).await.is_err() {
            return;
        }
        tokio::time::sleep(retry_in).await;
        reconnected = true;
    }
}

/// One session: log in, EXAMINE INBOX (read-only: the session changes nothing, not even
/// `\Recent`), then IDLE until an error ([`ImapError::Unsupported`] at once without IDLE).
/// Ok: the receiver is gone.
async fn session(
    index: usize,
    side: &Side,
    reconnected: bool,
    failures: &mut u32,
    events: &mpsc::Sender<Event>,
) -> Result<(), ImapError> {
    let mut client = ImapClient::connect(&side.endpoint).await?;
    client.login(&side.login).await?;
    client.select("INBOX", true).await?;
    *failures = 0;
    if reconnected && events.send(Event::Changed(index)).await.is_err() {
        return Ok(());
    }
    loop {
        if client.idle(MAX_IDLE).await? == IdleWake::Changed
            && events.send(Event::Changed(index)).await.is_err()
        {
            return Ok(());
        }
    }
}

/// The accounts due for a pass, and when it starts.
#[derive(Debug, Default)]
pub struct Due {
    accounts: BTreeSet<usize>,
    at: Option<Instant>,
}

impl Due {
    /// Account `index` changed: due [`DEBOUNCE`] after the first change not yet passed, so
    /// later changes within it join that pass.
    pub fn changed(&mut self, index: usize, now: Instant) {
        self.accounts.insert(index);
        self.at = Some(self.at.unwrap_or(now + DEBOUNCE));
    }

    /// All `count` accounts are due now (the interval).
    pub fn all(&mut self, count: usize, now: Instant) {
        self.accounts.extend(0..count);
        self.at = Some(now);
    }

    /// When the next pass starts; None: nothing is due.
    pub fn at(&self) -> Option<Instant> {
        self.at
    }

    /// The due accounts, for a pass starting now; nothing is due afterwards.
    pub fn take(&mut self) -> Vec<usize> {
        self.at = None;
        std::mem::take(&mut self.accounts).into_iter().collect()
    }

    /// A pass of `accounts` could not start: they are due again at `at` (or earlier, when
    /// something else is).
    pub fn later(&mut self, accounts: Vec<usize>, at: Instant) {
        self.accounts.extend(accounts);
        self.at = Some(self.at.map_or(at, |t| t.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_changes_is_one_pass_and_the_interval_passes_everyone() {
        let t0 = Instant::now();
        let mut due = Due::default();
        assert_eq!(due.at(), None);
        due.changed(2, t0);
        due.changed(0, t0 + Duration::from_millis(400));
        due.changed(2, t0 + Duration::from_millis(900));
        assert_eq!(
            due.at(),
            Some(t0 + DEBOUNCE),
            "the first change sets the time"
        );
        assert_eq!(due.take(), [0, 2]);
        assert_eq!((due.at(), due.take()), (None, Vec::new()));

        due.changed(1, t0);
        due.all(3, t0 + Duration::from_millis(10));
        assert_eq!(due.at(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(due.take(), [0, 1, 2]);

        let retry = t0 + Duration::from_secs(5);
        due.later(vec![1], retry);
        assert_eq!(due.at(), Some(retry));
        due.changed(0, t0);
        assert_eq!(due.at(), Some(retry), "a wake joins the pass already due");
        due.all(3, t0);
        assert_eq!(due.at(), Some(t0));
        due.later(vec![2], retry);
        assert_eq!(due.at(), Some(t0), "what is due sooner stays sooner");
        assert_eq!(due.take(), [0, 1, 2]);
    }

    #[test]
    fn reconnections_back_off_to_five_minutes() {
        let exact = |n| RECONNECT.delay_with(n, 0.5);
        assert_eq!(exact(1), Duration::from_secs(2));
        assert_eq!(exact(3), Duration::from_secs(8));
        assert_eq!(exact(20), Duration::from_secs(300));
        assert!(MAX_IDLE < Duration::from_secs(29 * 60), "RFC 2177 §3");
    }
}
