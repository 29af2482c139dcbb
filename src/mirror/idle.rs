//! `posta mirror --idle`: what changes on mailserver1 is on mailserver2 within seconds, not
//! within the interval. Per account one more session to mailserver1 (the admin identity, as
//! the pass logs in) EXAMINEs INBOX and IDLEs there (RFC 2177), and where the server offers
//! NOTIFY (RFC 5465; Dovecot does) asks to hear of every folder of the account as well: new
//! and expunged messages, flag changes, folders created, renamed or deleted. When it wakes
//! with a change, that account is due for a pass a moment later ([`DEBOUNCE`]: a burst of
//! deliveries is one pass). The passes every interval go on beside it: without NOTIFY they
//! catch what happens in other folders, which the INBOX session does not see.
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
    /// The account's session now hears of every folder (NOTIFY), until it is [`Event::Lost`]
    /// or says this again (after asking anew).
    Watching(usize),
    /// The session of `account` failed; it reconnects after `retry_in`.
    Lost {
        index: usize,
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
        let error = match session(index, &name, &side, reconnected, &mut failures, &events).await {
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
            index,
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
/// `\Recent`), NOTIFY where offered (a refusal is said, and INBOX alone watched), then IDLE
/// until an error ([`ImapError::Unsupported`] at once without IDLE).
/// Ok: the receiver is gone.
async fn session(
    index: usize,
    name: &str,
    side: &Side,
    reconnected: bool,
    failures: &mut u32,
    events: &mpsc::Sender<Event>,
) -> Result<(), ImapError> {
    let mut client = ImapClient::connect(&side.endpoint).await?;
    client.login(&side.login).await?;
    client.select("INBOX", true).await?;
    let watching = notify(&mut client, name).await?;
    *failures = 0;
    if reconnected && events.send(Event::Changed(index)).await.is_err() {
        return Ok(());
    }
    if watching && events.send(Event::Watching(index)).await.is_err() {
        return Ok(());
    }
    loop {
        let wake = client.idle(MAX_IDLE).await?;
        if wake == IdleWake::Quiet {
            continue;
        }
        if events.send(Event::Changed(index)).await.is_err() {
            return Ok(());
        }
        if wake == IdleWake::NotifyLost {
            tracing::info!(
                account = name,
                "mailserver1 stopped its NOTIFY news; asking again"
            );
            if notify(&mut client, name).await?
                && events.send(Event::Watching(index)).await.is_err()
            {
                return Ok(());
            }
        }
    }
}

/// Asks to hear of every folder where the server offers NOTIFY; a refusal is said, and INBOX
/// alone is watched. True: every folder is.
async fn notify(client: &mut ImapClient, name: &str) -> Result<bool, ImapError> {
    match client.notify_personal().await {
        Ok(on) => Ok(on),
        Err(ImapError::Rejected { resp, .. }) => {
            tracing::warn!(
                account = name,
                "NOTIFY refused ({resp}): watching INBOX only"
            );
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// How often an account the IDLE sessions vouch for is passed all the same, in intervals: news
/// can go missing (a server bug, a writer that bypasses the server), and this bounds how long.
pub const VOUCHED_PASS_EVERY: u32 = 10;

/// Which accounts an interval need not pass (`posta mirror --trust-notify`): those whose
/// session has heard of every folder (NOTIFY) since before their last complete pass started,
/// and heard no change since. Their mirror is as current as a pass would make it, without its
/// session to mailserver1, provided every change there goes through the server: Dovecot does
/// not tell of a file another program writes into a folder other than INBOX.
#[derive(Debug)]
pub struct Vouched {
    /// Per account: since when its session hears of every folder; None: it does not.
    watching: Vec<Option<Instant>>,
    /// Per account: when its last complete pass started.
    passed: Vec<Option<Instant>>,
    /// Per account: when its session last heard a change.
    changed: Vec<Option<Instant>>,
}

impl Vouched {
    pub fn new(count: usize) -> Vouched {
        Vouched {
            watching: vec![None; count],
            passed: vec![None; count],
            changed: vec![None; count],
        }
    }

    /// What a session said, at `now`.
    pub fn heard(&mut self, event: &Event, now: Instant) {
        match *event {
            Event::Changed(i) => self.changed[i] = Some(now),
            Event::Watching(i) => self.watching[i] = Some(now),
            Event::Lost { index, .. } => self.watching[index] = None,
            Event::Unsupported { .. } => {}
        }
    }

    /// Account `index`'s pass that started at `started` completed.
    pub fn passed(&mut self, index: usize, started: Instant) {
        self.passed[index] = Some(started);
    }

    /// The interval at `now`, every `interval`: the accounts to pass, and those vouched for.
    /// An account is vouched for until [`VOUCHED_PASS_EVERY`] intervals after its last
    /// complete pass started, no longer.
    pub fn split(&self, now: Instant, interval: Duration) -> (Vec<usize>, Vec<usize>) {
        let longest = interval * VOUCHED_PASS_EVERY;
        (0..self.passed.len()).partition(|&i| {
            let vouched = match (self.watching[i], self.passed[i]) {
                (Some(since), Some(started)) => {
                    since <= started
                        && self.changed[i].is_none_or(|c| c < started)
                        && now.saturating_duration_since(started) < longest
                }
                _ => false,
            };
            !vouched
        })
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
        self.these(0..count, now);
    }

    /// These accounts are due now (the interval, less those [`Vouched`] for).
    pub fn these(&mut self, accounts: impl IntoIterator<Item = usize>, now: Instant) {
        self.accounts.extend(accounts);
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
    use crate::client::{Endpoint, Login};
    use crate::secret::Secret;
    use crate::service::{StartTls, TlsPolicy};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// Serves one scripted session per connection, in order: each string is said after one
    /// line is heard (the first before anything is heard). What was heard, per session.
    async fn serve(
        sessions: Vec<Vec<&'static str>>,
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut heard = Vec::new();
            for script in sessions {
                let Ok((sock, _)) = listener.accept().await else {
                    break;
                };
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                for (i, say) in script.into_iter().enumerate() {
                    if i > 0 {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            break;
                        }
                        heard.push(line.trim_end().to_owned());
                    }
                    if w.write_all(say.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
            heard
        });
        (port, task)
    }

    fn account(port: u16) -> Account {
        let side = Side {
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port,
                implicit_tls: false,
                starttls: StartTls::No,
                tls: TlsPolicy::default(),
                timeout: Duration::from_millis(500),
            },
            login: Login::own("u", Secret::new("pw")),
        };
        Account {
            name: "alice".into(),
            source: side.clone(),
            dest: side,
        }
    }

    const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 IDLE] scripted\r\n";
    const LOGGED_IN: &str = "p1 OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n";
    const EXAMINED: &str = "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\np2 OK [READ-ONLY] done\r\n";

    /// A session that breaks is said with its wait and reconnects; back, its account is due
    /// (a delivery may have come meanwhile), and new mail makes it due again.
    #[tokio::test]
    async fn a_lost_session_reconnects_and_wakes_its_account() {
        let (port, srv) = serve(vec![
            vec![
                GREETING,
                LOGGED_IN,
                EXAMINED,
                "+ idling\r\n* BYE going down\r\n",
            ],
            vec![
                GREETING,
                LOGGED_IN,
                EXAMINED,
                "+ idling\r\n* 2 EXISTS\r\n",
                "p3 OK done\r\n",
            ],
        ])
        .await;
        let (tx, mut rx) = mpsc::channel(8);
        let sessions = watch(&[account(port)], tx);
        let wait = Duration::from_secs(10);
        let next = async |rx: &mut mpsc::Receiver<Event>| {
            tokio::time::timeout(wait, rx.recv())
                .await
                .expect("an event")
                .expect("open")
        };
        match next(&mut rx).await {
            Event::Lost {
                index,
                account,
                error,
                retry_in,
            } => {
                assert_eq!((index, account.as_str()), (0, "alice"));
                assert!(matches!(error, ImapError::Bye { .. }), "{error}");
                assert!(retry_in <= Duration::from_millis(2500), "{retry_in:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(next(&mut rx).await, Event::Changed(0)), "back");
        assert!(matches!(next(&mut rx).await, Event::Changed(0)), "new mail");
        drop(sessions);
        let heard = srv.await.expect("server");
        assert_eq!(
            heard,
            [
                "p1 LOGIN \"u\" \"pw\"",
                "p2 EXAMINE \"INBOX\"",
                "p3 IDLE",
                "p1 LOGIN \"u\" \"pw\"",
                "p2 EXAMINE \"INBOX\"",
                "p3 IDLE",
                "DONE",
            ]
        );
    }

    /// With NOTIFY the session hears of every folder, and says so; when the server gives up on
    /// its news (NOTIFICATIONOVERFLOW) the account is due, and the session asks for them again.
    #[tokio::test]
    async fn a_notify_overflow_makes_the_account_due_and_notify_is_asked_again() {
        const NOTIFY: &str = "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) \
                              (personal (MessageNew MessageExpunge FlagChange MailboxName))";
        let (port, srv) = serve(vec![vec![
            GREETING,
            "p1 OK [CAPABILITY IMAP4rev1 IDLE NOTIFY] hi\r\n",
            EXAMINED,
            "p3 OK NOTIFY completed\r\n",
            "+ idling\r\n* OK [NOTIFICATIONOVERFLOW] too many\r\n",
            "p4 OK done\r\n",
            "p5 OK NOTIFY completed\r\n",
            "+ idling\r\n* STATUS Archivo (MESSAGES 2)\r\n",
            "p6 OK done\r\n",
        ]])
        .await;
        let (tx, mut rx) = mpsc::channel(8);
        let sessions = watch(&[account(port)], tx);
        for (why, watching) in [
            ("NOTIFY on", true),
            ("the overflow", false),
            ("NOTIFY on again", true),
            ("news of another folder", false),
        ] {
            let event = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            let event = event.expect("an event").expect("open");
            let expected = if watching {
                matches!(event, Event::Watching(0))
            } else {
                matches!(event, Event::Changed(0))
            };
            assert!(expected, "{why}: {event:?}");
        }
        drop(sessions);
        let heard = srv.await.expect("server");
        assert_eq!(
            heard,
            [
                "p1 LOGIN \"u\" \"pw\"".to_string(),
                "p2 EXAMINE \"INBOX\"".into(),
                format!("p3 {NOTIFY}"),
                "p4 IDLE".into(),
                "DONE".into(),
                format!("p5 {NOTIFY}"),
                "p6 IDLE".into(),
                "DONE".into(),
            ]
        );
    }

    /// Without IDLE the account is said once and its session ends: no reconnecting.
    #[tokio::test]
    async fn a_server_without_idle_is_said_once() {
        let (port, _srv) = serve(vec![vec![
            "* OK [CAPABILITY IMAP4rev1] scripted\r\n",
            "p1 OK [CAPABILITY IMAP4rev1] hi\r\n",
            EXAMINED,
        ]])
        .await;
        let (tx, mut rx) = mpsc::channel(8);
        let mut sessions = watch(&[account(port)], tx);
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        match event.expect("an event").expect("open") {
            Event::Unsupported { account, error } => {
                assert_eq!(account, "alice");
                assert!(matches!(error, ImapError::Unsupported { .. }), "{error}");
            }
            other => panic!("{other:?}"),
        }
        let ended = tokio::time::timeout(Duration::from_secs(5), sessions.join_next()).await;
        assert!(matches!(ended, Ok(Some(Ok(())))), "the session ended");
        assert!(rx.recv().await.is_none(), "nothing more");
    }

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

    /// An account is vouched for only while its session has heard of every folder since
    /// before its last complete pass started and heard no change since; never for longer
    /// than [`VOUCHED_PASS_EVERY`] intervals.
    #[test]
    fn an_interval_leaves_out_only_accounts_whose_sessions_vouch_for_them() {
        let minute = Duration::from_secs(60);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut v = Vouched::new(5);
        assert_eq!(
            v.split(at(0), minute),
            (vec![0, 1, 2, 3, 4], vec![]),
            "none passed yet"
        );

        // 0: watching, then passed: vouched for.
        v.heard(&Event::Watching(0), at(1));
        v.passed(0, at(2));
        // 1: passed before its session heard of every folder: a change between the two is
        // unknown to both.
        v.passed(1, at(2));
        v.heard(&Event::Watching(1), at(3));
        // 2: a change heard after its pass started.
        v.heard(&Event::Watching(2), at(1));
        v.passed(2, at(2));
        v.heard(&Event::Changed(2), at(4));
        // 3: its session was lost.
        v.heard(&Event::Watching(3), at(1));
        v.passed(3, at(2));
        v.heard(
            &Event::Lost {
                index: 3,
                account: "d".into(),
                error: ImapError::Unusable { server: "s".into() },
                retry_in: minute,
            },
            at(5),
        );
        // 4: INBOX only (no NOTIFY): never a Watching.
        v.passed(4, at(2));
        assert_eq!(v.split(at(60), minute), (vec![1, 2, 3, 4], vec![0]));

        // A change heard before the next pass started is that pass's to find.
        v.passed(2, at(61));
        v.passed(1, at(61));
        assert_eq!(v.split(at(120), minute), (vec![3, 4], vec![0, 1, 2]));
        // Ten intervals after its last pass, an account is passed all the same.
        let late = at(2) + minute * VOUCHED_PASS_EVERY;
        assert_eq!(v.split(late, minute), (vec![0, 3, 4], vec![1, 2]));
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
