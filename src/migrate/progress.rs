//! Progress while mail moves: on a terminal one indicatif bar per account (messages, bytes,
//! rate, ETA); otherwise a plain log line per account every few seconds and at the end.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes for the whole run.
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    /// Bars when stderr is a terminal and `quiet` is false; log lines otherwise.
    pub fn new(quiet: bool) -> Progress {
        let tty = !quiet && std::io::stderr().is_terminal();
        Progress {
            bars: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Progress of one account; folders add their messages as they are counted.
    pub fn account(&self, name: &str) -> AccountProgress {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(0));
            let style = ProgressStyle::with_template(
                "{prefix:<12} [{bar:30}] {pos}/{len} msgs  {msg}  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(name.to_owned());
            bar
        });
        AccountProgress {
            name: name.to_owned(),
            bar,
            state: Mutex::new(LogState {
                total: 0,
                total_bytes: 0,
                done: 0,
                bytes: 0,
                started: Instant::now(),
                last_log: Instant::now(),
            }),
        }
    }
}

struct LogState {
    total: u64,
    total_bytes: u64,
    done: u64,
    bytes: u64,
    started: Instant,
    last_log: Instant,
}

/// One account's counter.
pub struct AccountProgress {
    name: String,
    bar: Option<ProgressBar>,
    state: Mutex<LogState>,
}

impl AccountProgress {
    /// A folder with `messages` messages (`bytes` bytes) to move.
    pub fn add(&self, messages: u64, bytes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.total += messages;
        s.total_bytes += bytes;
        if let Some(bar) = &self.bar {
            bar.set_length(s.total);
        }
    }

    /// One more message handled (delivered, quarantined or given up on).
    pub fn message(&self, bytes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.done += 1;
        s.bytes += bytes;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!(
                    "{}/{}",
                    indicatif::HumanBytes(s.bytes),
                    indicatif::HumanBytes(s.total_bytes)
                ));
            }
            None if s.last_log.elapsed() >= LOG_EVERY => {
                s.last_log = Instant::now();
                log(&self.name, &s);
            }
            None => {}
        }
    }

    /// The account is done.
    pub fn finish(&self) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &self.bar {
            Some(bar) => bar.finish(),
            None if s.done > 0 => log(&self.name, &s),
            None => {}
        }
    }
}

fn log(name: &str, s: &LogState) {
    let secs = s.started.elapsed().as_secs_f64().max(0.001);
    tracing::info!(
        account = name,
        messages = s.done,
        of = s.total,
        bytes = s.bytes,
        rate = format!("{:.1} msg/s", s.done as f64 / secs),
        "migrating"
    );
}
