//! What the running daemon knows, as a file (`posta status` reads it) and as Prometheus
//! metrics (`/metrics`) and JSON (`/status`, which other hosts' witnesses ask).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::waiting::Waiting;
use crate::takeover::vip::{Holders, Who};

/// Transitions kept in the snapshot.
const HISTORY: usize = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeResult {
    pub probe: String,
    pub protocol: String,
    pub status: String,
    pub latency_seconds: f64,
    pub summary: String,
    /// When the certificate the probe saw expires (seconds since the epoch), when it spoke
    /// TLS.
    #[serde(default)]
    pub cert_expiry: Option<i64>,
}

impl ProbeResult {
    /// `{protocol="…",probe="…"}`.
    fn labels(&self) -> String {
        format!(
            "{{protocol=\"{}\",probe=\"{}\"}}",
            label_value(&self.protocol),
            label_value(&self.probe)
        )
    }
}

/// A label value as the text exposition format writes it: backslash, double quote and line
/// feed escaped (`\\`, `\"`, `\n`), everything else as is, so a scraper reads back exactly
/// the operator's text.
fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// Seconds since the epoch, with milliseconds.
    pub at: f64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub pid: u32,
    /// Witness-only: probes and reports, never acts.
    pub witness: bool,
    pub started: u64,
    pub updated: u64,
    pub state: String,
    pub state_since: u64,
    /// The last probe round's verdict; `None` before the first.
    pub primary_up: Option<bool>,
    pub probes: Vec<ProbeResult>,
    pub grace_left_seconds: Option<f64>,
    pub last_takeover: Option<f64>,
    pub transitions_total: u64,
    pub transitions: Vec<TransitionRecord>,
    /// Messages waiting in the local mta's queue, when there is one.
    pub queue_depth: Option<u64>,
    /// What waits on this host for mailserver1 (the mta's Maildirs and queue), as last
    /// counted (each round, and after each sweep).
    #[serde(default)]
    pub waiting: Option<Waiting>,
    /// How often a healthy watch sweeps; `None`: never (off, or no accounts to sweep).
    #[serde(default)]
    pub sweep_interval_seconds: Option<f64>,
    /// The last sweep's outcome.
    #[serde(default)]
    pub last_sweep: Option<SweepRecord>,
    #[serde(default)]
    pub sweeps_total: u64,
    #[serde(default)]
    pub sweeps_failed_total: u64,
    /// Mode "vip": who answered for the address in the last round's ARP probe.
    #[serde(default)]
    pub vip_holders: Option<Holders>,
    /// Why the last holder probe failed, when it did.
    #[serde(default)]
    pub vip_holders_error: Option<String>,
    /// How often a healthy watch runs a mirror pass; `None`: never (no `[mirror]`).
    #[serde(default)]
    pub mirror_interval_seconds: Option<f64>,
    /// The last mirror pass's outcome (`posta mirror --once`).
    #[serde(default)]
    pub last_mirror: Option<SweepRecord>,
    #[serde(default)]
    pub mirrors_total: u64,
    #[serde(default)]
    pub mirrors_failed_total: u64,
    /// Each account's mirror as its state showed after the last pass.
    #[serde(default)]
    pub mirror_accounts: Vec<crate::mirror::status::AccountLag>,
}

/// One sweep: a `posta migrate` run while the primary was healthy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepRecord {
    /// When it ended, seconds since the epoch.
    pub at: f64,
    pub seconds: f64,
    pub ok: bool,
    /// What the child said last (its reason when it failed).
    pub detail: String,
}

impl Snapshot {
    pub fn record(&mut self, t: TransitionRecord) {
        self.transitions_total += 1;
        self.state_since = t.at as u64;
        self.transitions.push(t);
        if self.transitions.len() > HISTORY {
            self.transitions.remove(0);
        }
    }

    /// Written to a temporary file and renamed, so a reader never sees half of it. Not
    /// fsync'd, unlike every state posta acts on ([`crate::durable`]): it is what `posta status`
    /// shows, rewritten every probe round, and nothing is read back from it after a crash.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }

    pub fn load(path: &Path) -> Option<Snapshot> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn metrics(&self) -> String {
        let mut m = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, lines: Vec<(String, f64)>| {
            let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(m, "{name}{labels} {v}");
            }
        };
        let states = ["healthy", "suspect", "down", "taken_over", "primary_back"];
        gauge(
            "posta_watch_state",
            "1 for the state the watch is in",
            "gauge",
            states
                .iter()
                .map(|s| {
                    (
                        format!("{{state=\"{s}\"}}"),
                        f64::from(u8::from(self.state == *s)),
                    )
                })
                .collect(),
        );
        gauge(
            "posta_watch_transitions_total",
            "State changes since the daemon started",
            "counter",
            vec![(String::new(), self.transitions_total as f64)],
        );
        gauge(
            "posta_watch_primary_up",
            "1 when the last probe round found the primary up",
            "gauge",
            vec![(
                String::new(),
                self.primary_up.map_or(f64::NAN, |u| f64::from(u8::from(u))),
            )],
        );
        gauge(
            "posta_watch_probe_latency_seconds",
            "Latency of the last probe, by protocol",
            "gauge",
            self.probes
                .iter()
                .map(|p| (p.labels(), p.latency_seconds))
                .collect(),
        );
        gauge(
            "posta_watch_probe_certificate_expiry_timestamp_seconds",
            "When the certificate the last probe saw expires",
            "gauge",
            self.probes
                .iter()
                .filter_map(|p| Some((p.labels(), p.cert_expiry? as f64)))
                .collect(),
        );
        gauge(
            "posta_watch_grace_remaining_seconds",
            "Takeover grace left while the primary is down",
            "gauge",
            vec![(String::new(), self.grace_left_seconds.unwrap_or(0.0))],
        );
        gauge(
            "posta_watch_last_takeover_timestamp_seconds",
            "When this host last took over (0: never since start)",
            "gauge",
            vec![(String::new(), self.last_takeover.unwrap_or(0.0))],
        );
        gauge(
            "posta_watch_last_update_timestamp_seconds",
            "When the watch last finished a probe round; stale while the daemon hangs",
            "gauge",
            vec![(String::new(), self.updated as f64)],
        );
        self.sweep_metrics(&mut gauge);
        self.mirror_metrics(&mut gauge);
        self.holder_metrics(&mut gauge);
        if let Some(q) = self.queue_depth {
            gauge(
                "posta_mta_queue_depth",
                "Messages waiting in the mta's queue",
                "gauge",
                vec![(String::new(), q as f64)],
            );
        }
        m
    }

    /// Who answers for the VIP (mode "vip"): how many hosts, and 1 for the one word that says
    /// who. A failed probe gives NaN hosts and no word.
    fn holder_metrics(&self, gauge: &mut impl FnMut(&str, &str, &str, Vec<(String, f64)>)) {
        if self.vip_holders.is_none() && self.vip_holders_error.is_none() {
            return;
        }
        let h = self.vip_holders.as_ref();
        gauge(
            "posta_vip_holders",
            "Hosts answering for the VIP in the last ARP probe (2 or more: a duplicate address)",
            "gauge",
            vec![(String::new(), h.map_or(f64::NAN, |h| h.count as f64))],
        );
        gauge(
            "posta_vip_holder",
            "1 for who answers for the VIP: nobody, this_host, mailserver1, another_host, both",
            "gauge",
            Who::ALL
                .iter()
                .map(|w| {
                    (
                        format!("{{who=\"{}\"}}", w.name()),
                        f64::from(u8::from(h.is_some_and(|h| h.who == *w))),
                    )
                })
                .collect(),
        );
    }

    /// The watch's mirror passes and each account's lag (only with `[mirror]`). An account
    /// that never completed a pass has no timestamp and an infinite lag.
    fn mirror_metrics(&self, gauge: &mut impl FnMut(&str, &str, &str, Vec<(String, f64)>)) {
        let Some(every) = self.mirror_interval_seconds else {
            return;
        };
        gauge(
            "posta_watch_mirror_interval_seconds",
            "How often a healthy watch runs a mirror pass",
            "gauge",
            vec![(String::new(), every)],
        );
        gauge(
            "posta_watch_mirror_passes_total",
            "Mirror passes run since the daemon started, by result",
            "counter",
            vec![
                (
                    "{result=\"ok\"}".into(),
                    (self.mirrors_total - self.mirrors_failed_total.min(self.mirrors_total)) as f64,
                ),
                (
                    "{result=\"failed\"}".into(),
                    self.mirrors_failed_total as f64,
                ),
            ],
        );
        let label = |a: &str| format!("{{account=\"{}\"}}", label_value(a));
        gauge(
            "posta_mirror_last_pass_timestamp_seconds",
            "When the account's last complete mirror pass ended",
            "gauge",
            self.mirror_accounts
                .iter()
                .filter_map(|a| Some((label(&a.account), a.last_pass? as f64)))
                .collect(),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        gauge(
            "posta_mirror_lag_seconds",
            "Time since the account's last complete mirror pass (+Inf: never)",
            "gauge",
            self.mirror_accounts
                .iter()
                .map(|a| {
                    let lag = a
                        .last_pass
                        .map_or(f64::INFINITY, |t| now.saturating_sub(t) as f64);
                    (label(&a.account), lag)
                })
                .collect(),
        );
    }

    /// What waits here for mailserver1 and how the sweeps go.
    fn sweep_metrics(&self, gauge: &mut impl FnMut(&str, &str, &str, Vec<(String, f64)>)) {
        let piles: Vec<(&str, &super::waiting::Pile)> = self
            .waiting
            .iter()
            .flat_map(|w| [("maildir", &w.maildir), ("queue", &w.queue)])
            .filter_map(|(at, p)| p.as_ref().map(|p| (at, p)))
            .collect();
        let by = |f: &dyn Fn(&super::waiting::Pile) -> f64| {
            piles
                .iter()
                .map(|(at, p)| (format!("{{where=\"{at}\"}}"), f(p)))
                .collect::<Vec<_>>()
        };
        gauge(
            "posta_waiting_messages",
            "Messages on this host waiting to reach mailserver1 (at least, when capped)",
            "gauge",
            by(&|p| p.messages as f64),
        );
        gauge(
            "posta_waiting_bytes",
            "Bytes of those messages",
            "gauge",
            by(&|p| p.bytes as f64),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        gauge(
            "posta_waiting_oldest_age_seconds",
            "Age of the oldest waiting message (0: none)",
            "gauge",
            by(&|p| p.oldest.map_or(0.0, |t| now.saturating_sub(t) as f64)),
        );
        gauge(
            "posta_waiting_capped",
            "1 when counting stopped at the limit: at least the count waits",
            "gauge",
            by(&|p| f64::from(u8::from(p.capped))),
        );
        gauge(
            "posta_watch_sweep_interval_seconds",
            "How often a healthy watch sweeps mail home (0: never)",
            "gauge",
            vec![(String::new(), self.sweep_interval_seconds.unwrap_or(0.0))],
        );
        gauge(
            "posta_watch_sweeps_total",
            "Sweeps run since the daemon started, by result",
            "counter",
            vec![
                (
                    "{result=\"ok\"}".into(),
                    (self.sweeps_total - self.sweeps_failed_total.min(self.sweeps_total)) as f64,
                ),
                (
                    "{result=\"failed\"}".into(),
                    self.sweeps_failed_total as f64,
                ),
            ],
        );
        gauge(
            "posta_watch_last_sweep_timestamp_seconds",
            "When the last sweep ended (0: none since start)",
            "gauge",
            vec![(
                String::new(),
                self.last_sweep.as_ref().map_or(0.0, |s| s.at),
            )],
        );
        gauge(
            "posta_watch_last_sweep_success",
            "1 when the last sweep brought everything it selected home",
            "gauge",
            vec![(
                String::new(),
                self.last_sweep
                    .as_ref()
                    .map_or(f64::NAN, |s| f64::from(u8::from(s.ok))),
            )],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_history() {
        let mut s = Snapshot {
            state: "down".into(),
            primary_up: Some(false),
            grace_left_seconds: Some(12.5),
            probes: vec![ProbeResult {
                probe: "primary smtp://192.0.2.10:25".into(),
                protocol: "smtp".into(),
                status: "CRITICAL".into(),
                latency_seconds: 0.25,
                summary: "connection refused".into(),
                cert_expiry: Some(1_700_086_400),
            }],
            updated: 1_700_000_000,
            ..Snapshot::default()
        };
        for i in 0..30 {
            s.record(TransitionRecord {
                at: f64::from(i),
                ..TransitionRecord::default()
            });
        }
        assert_eq!((s.transitions.len(), s.transitions_total), (HISTORY, 30));
        let m = s.metrics();
        assert!(m.contains("posta_watch_state{state=\"down\"} 1"), "{m}");
        assert!(m.contains("posta_watch_state{state=\"healthy\"} 0"), "{m}");
        assert!(m.contains("posta_watch_primary_up 0"), "{m}");
        assert!(
            m.contains("posta_watch_grace_remaining_seconds 12.5"),
            "{m}"
        );
        assert!(m.contains("protocol=\"smtp\""), "{m}");
        assert!(
            m.contains("# TYPE posta_watch_transitions_total counter"),
            "{m}"
        );
        assert!(m.contains("posta_watch_last_sweep_success NaN"), "{m}");
        assert!(m.contains("posta_watch_sweep_interval_seconds 0"), "{m}");
        for line in [
            "posta_watch_last_update_timestamp_seconds 1700000000",
            "posta_watch_probe_certificate_expiry_timestamp_seconds{protocol=\"smtp\",probe=\"primary smtp://192.0.2.10:25\"} 1700086400",
        ] {
            assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
        }
    }

    /// A probe name is the operator's text (a URL, a site-file name): the exposition format
    /// escapes backslash, double quote and newline in label values, and so must we, or a
    /// scraper reads another value than the one the operator wrote (it used to become `_`).
    #[test]
    fn label_values_are_escaped_not_altered() {
        let s = Snapshot {
            probes: vec![ProbeResult {
                probe: "a\\b \"q\"\nc".into(),
                protocol: "smtp".into(),
                ..ProbeResult::default()
            }],
            ..Snapshot::default()
        };
        let m = s.metrics();
        let line = r#"posta_watch_probe_latency_seconds{protocol="smtp",probe="a\\b \"q\"\nc"} 0"#;
        assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
    }

    #[test]
    fn who_answers_for_the_vip_is_a_metric() {
        use crate::takeover::vip::Mac;
        assert!(!Snapshot::default().metrics().contains("posta_vip_holder"));
        let both = Holders::new(
            "10.0.0.100".parse().unwrap(),
            Mac([2, 0, 0, 0, 0, 0x12]),
            true,
            &[Mac([2, 0, 0, 0, 0, 0x11])],
            None,
        );
        let s = Snapshot {
            vip_holders: Some(both),
            ..Snapshot::default()
        };
        let m = s.metrics();
        for line in [
            "posta_vip_holders 2",
            "posta_vip_holder{who=\"both\"} 1",
            "posta_vip_holder{who=\"nobody\"} 0",
            "posta_vip_holder{who=\"mailserver1\"} 0",
        ] {
            assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
        }
        let failed = Snapshot {
            vip_holders_error: Some("interface eth9 not found".into()),
            ..Snapshot::default()
        };
        assert!(failed.metrics().contains("posta_vip_holders NaN"));
    }

    #[test]
    fn what_waits_and_the_sweeps_are_metrics() {
        use crate::watch::waiting::{Pile, Waiting};
        let s = Snapshot {
            waiting: Some(Waiting {
                maildir: Some(Pile {
                    messages: 3,
                    bytes: 4096,
                    oldest: Some(1),
                    capped: false,
                    error: None,
                }),
                queue: None,
            }),
            sweep_interval_seconds: Some(60.0),
            last_sweep: Some(SweepRecord {
                at: 1234.5,
                seconds: 0.5,
                ok: false,
                detail: "journal in use".into(),
            }),
            sweeps_total: 5,
            sweeps_failed_total: 2,
            ..Snapshot::default()
        };
        let m = s.metrics();
        for line in [
            "posta_waiting_messages{where=\"maildir\"} 3",
            "posta_waiting_bytes{where=\"maildir\"} 4096",
            "posta_waiting_capped{where=\"maildir\"} 0",
            "posta_watch_sweep_interval_seconds 60",
            "posta_watch_sweeps_total{result=\"ok\"} 3",
            "posta_watch_sweeps_total{result=\"failed\"} 2",
            "posta_watch_last_sweep_timestamp_seconds 1234.5",
            "posta_watch_last_sweep_success 0",
        ] {
            assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
        }
        assert!(!m.contains("where=\"queue\""), "{m}");
        let age = m
            .lines()
            .find_map(|l| l.strip_prefix("posta_waiting_oldest_age_seconds{where=\"maildir\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_default();
        assert!(age > 1e9, "{age}");
    }
}
