//! Progress while mail moves, for the whole site at once: on a terminal one indicatif bar
//! (accounts done of all, messages, bytes, rate, ETA), however many accounts run; otherwise a
//! log line per account and one for the site every few seconds, and at the end.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes for the whole run.
pub struct Progress {
    site: Arc<Site>,
}

/// The site's counters and its one bar.
struct Site {
    bar: Option<ProgressBar>,
    /// The counters, and when the site's line was last logged.
    state: Mutex<(Counters, Instant)>,
    started: Instant,
}

/// Messages and bytes to move and moved, for one account or summed over the site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub accounts: u64,
    pub accounts_done: u64,
    pub total: u64,
    pub total_bytes: u64,
    pub done: u64,
    pub bytes: u64,
}

impl Counters {
    /// Messages per second and the time left (none before the first message). An account
    /// counts its messages only once it has listed its folders, so the messages left undercount
    /// while accounts wait their turn: the later of the two estimates, by messages left at this
    /// rate and by accounts left at this pace, is the ETA.
    fn rate_and_eta(&self, elapsed: Duration) -> (f64, Option<Duration>) {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let left = self.total.saturating_sub(self.done) as f64;
        let by_accounts = match self.accounts_done {
            0 => 0.0,
            done => secs * self.accounts.saturating_sub(done) as f64 / done as f64,
        };
        let eta = (self.done > 0).then(|| Duration::from_secs_f64((left / rate).max(by_accounts)));
        (rate, eta)
    }

    /// `accounts 3/50  1.2 MiB/4.0 MiB`: what the bar's own counters do not show.
    pub fn bar_message(&self) -> String {
        format!(
            "accounts {}/{}  {}/{}",
            self.accounts_done,
            self.accounts,
            HumanBytes(self.bytes),
            HumanBytes(self.total_bytes)
        )
    }

    /// The site's log line without a terminal.
    pub fn log_line(&self, elapsed: Duration) -> String {
        let (rate, eta) = self.rate_and_eta(elapsed);
        let eta = eta.map_or("-".to_owned(), |d| crate::config::format_duration(round(d)));
        format!(
            "accounts {}/{}, messages {}/{}, {}/{}, {rate:.1} msg/s, eta {eta}",
            self.accounts_done,
            self.accounts,
            self.done,
            self.total,
            HumanBytes(self.bytes),
            HumanBytes(self.total_bytes)
        )
    }
}

/// Whole seconds, at least one: an ETA has no use for milliseconds.
fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

impl Progress {
    /// A bar when stderr is a terminal and `quiet` is false; log lines otherwise.
    pub fn new(quiet: bool) -> Progress {
        let tty = !quiet && std::io::stderr().is_terminal();
        let bar = tty.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg}  [{bar:30}] {pos}/{len} msgs  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Progress {
            site: Arc::new(Site {
                bar,
                state: Mutex::new((Counters::default(), Instant::now())),
                started: Instant::now(),
            }),
        }
    }

    /// Progress of one more account; folders add their messages as they are counted.
    pub fn account(&self, name: &str) -> AccountProgress {
        self.site.update(|c| c.accounts += 1);
        AccountProgress {
            name: name.to_owned(),
            site: self.site.clone(),
            state: Mutex::new(LogState {
                counters: Counters::default(),
                started: Instant::now(),
                last_log: Instant::now(),
            }),
        }
    }
}

impl Site {
    /// Applies `change` to the site's counters, redraws the bar, and without a terminal logs
    /// the site's line every few seconds and when the last account is done.
    fn update(&self, change: impl FnOnce(&mut Counters)) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = s.0.accounts_done;
        change(&mut s.0);
        let c = s.0;
        let all_done = c.accounts_done != before && c.accounts_done == c.accounts;
        match &self.bar {
            Some(bar) => {
                bar.set_length(c.total);
                bar.set_position(c.done);
                bar.set_message(c.bar_message());
                if all_done {
                    bar.finish();
                }
            }
            None if all_done || s.1.elapsed() >= LOG_EVERY => {
                s.1 = Instant::now();
                tracing::info!("site: {}", c.log_line(self.started.elapsed()));
            }
            None => {}
        }
    }
}

struct LogState {
    counters: Counters,
    started: Instant,
    last_log: Instant,
}

/// One account's counter, summed into the site's.
pub struct AccountProgress {
    name: String,
    site: Arc<Site>,
    state: Mutex<LogState>,
}

impl AccountProgress {
    /// A folder with `messages` messages (`bytes` bytes) to move.
    pub fn add(&self, messages: u64, bytes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.counters.total += messages;
        s.counters.total_bytes += bytes;
        self.site.update(|c| {
            c.total += messages;
            c.total_bytes += bytes;
        });
    }

    /// One more message handled (delivered, quarantined or given up on).
    pub fn message(&self, bytes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.counters.done += 1;
        s.counters.bytes += bytes;
        self.site.update(|c| {
            c.done += 1;
            c.bytes += bytes;
        });
        if self.site.bar.is_none() && s.last_log.elapsed() >= LOG_EVERY {
            s.last_log = Instant::now();
            log(&self.name, &s);
        }
    }

    /// The account is done.
    pub fn finish(&self) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if self.site.bar.is_none() && s.counters.done > 0 {
            log(&self.name, &s);
        }
        self.site.update(|c| c.accounts_done += 1);
    }
}

fn log(name: &str, s: &LogState) {
    let secs = s.started.elapsed().as_secs_f64().max(0.001);
    tracing::info!(
        account = name,
        messages = s.counters.done,
        of = s.counters.total,
        bytes = s.counters.bytes,
        rate = format!("{:.1} msg/s", s.counters.done as f64 / secs),
        "migrating"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_sum_into_the_site() {
        let p = Progress::new(true);
        let a = p.account("alice");
        let b = p.account("bob");
        a.add(3, 3000);
        b.add(2, 1000);
        b.add(1, 24);
        a.message(1000);
        b.message(500);
        b.message(500);
        b.message(24);
        b.finish();
        let site = p.site.state.lock().unwrap().0;
        assert_eq!(
            site,
            Counters {
                accounts: 2,
                accounts_done: 1,
                total: 6,
                total_bytes: 4024,
                done: 4,
                bytes: 2024,
            }
        );
        let alice = a.state.lock().unwrap().counters;
        assert_eq!((alice.done, alice.total), (1, 3));
    }

    #[test]
    fn lines_show_accounts_messages_bytes_rate_and_eta() {
        let c = Counters {
            accounts: 50,
            accounts_done: 3,
            total: 10_000,
            total_bytes: 20 << 20,
            done: 2_000,
            bytes: 4 << 20,
        };
        assert_eq!(c.bar_message(), "accounts 3/50  4.00 MiB/20.00 MiB");
        // 2,000 in 10 s: 200 msg/s, 8,000 left: 40 s; but 47 accounts left at 3 per 10 s
        // take longer: 2m37s.
        assert_eq!(
            c.log_line(Duration::from_secs(10)),
            "accounts 3/50, messages 2000/10000, 4.00 MiB/20.00 MiB, 200.0 msg/s, eta 2m36s"
        );
        let all_counted = Counters {
            accounts_done: 40,
            ..c
        };
        assert!(
            all_counted
                .log_line(Duration::from_secs(10))
                .ends_with("eta 40s"),
            "{}",
            all_counted.log_line(Duration::from_secs(10))
        );
        let fresh = Counters {
            accounts: 50,
            total: 10,
            ..Counters::default()
        };
        assert!(fresh.log_line(Duration::ZERO).ends_with("0.0 msg/s, eta -"));
    }
}
