//! `[probe]`: how often and how patiently the servers are probed, and the EHLO name.

use std::time::Duration;

use super::Validator;
use crate::config::raw::{Field, RawSite};
use crate::config::{ProbeSettings, duration};

impl Validator<'_> {
    pub(super) fn probe(&mut self, raw: &RawSite) -> Option<ProbeSettings> {
        let Some(t) = &raw.probe else {
            return Some(ProbeSettings::default());
        };
        let span = t.span();
        let t = t.get_ref();
        let d = ProbeSettings::default();
        let duration = |v: &mut Self, f: &Option<Field<String>>, key: &str, default| {
            let text = v.get(f, key);
            match text {
                None => Some(default),
                Some(_) => v.parsed(f, key, text, |s| duration::parse(&s)),
            }
        };
        let interval = duration(self, &t.interval, "interval", d.interval);
        let timeout = duration(self, &t.timeout, "timeout", d.timeout);
        let grace = duration(self, &t.takeover_grace, "takeover_grace", d.takeover_grace);
        let fall = self.get(&t.fall, "fall").unwrap_or(d.fall);
        let rise = self.get(&t.rise, "rise").unwrap_or(d.rise);
        let helo = self.get(&t.helo, "helo").unwrap_or(d.helo);
        for (value, key, field) in [(fall, "fall", &t.fall), (rise, "rise", &t.rise)] {
            if value == 0 {
                let span = field.as_ref().map_or(span.clone(), |f| f.span.clone());
                self.problem(span, format!("`{key}`: must be at least 1"));
            }
        }
        if let (Some(interval), Some(timeout)) = (interval, timeout) {
            if interval.is_zero() {
                let span = t.interval.as_ref().map_or(span.clone(), |f| f.span.clone());
                self.problem(span, "`interval`: must be longer than 0s");
            } else if timeout > interval {
                let span = t.timeout.as_ref().map_or(span.clone(), |f| f.span.clone());
                self.problem(
                    span,
                    format!(
                        "`timeout`: {} is longer than `interval` {}: probes would overlap",
                        duration::format(timeout),
                        duration::format(interval)
                    ),
                );
            }
        }
        Some(ProbeSettings {
            interval: interval?,
            timeout: timeout?,
            fall,
            rise,
            takeover_grace: grace?,
            helo,
        })
    }
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            fall: 3,
            rise: 6,
            // docs/failover.md §3: SMTP senders queue and retry for days, so minutes of outage
            // cost only delay; the seed: a short outage should not move users to mailserver2.
            takeover_grace: Duration::from_secs(300),
            helo: default_helo(),
        }
    }
}

/// This host's name for EHLO, falling back to a name that says what is probing.
pub fn default_helo() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "posta.localdomain".into())
}
