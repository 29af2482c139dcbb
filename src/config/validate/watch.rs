//! `[watch]`: the health-check daemon: automation, witnesses, status listener, sweeps.

use std::net::SocketAddr;

use super::Validator;
use crate::config::raw::RawSite;
use crate::config::{WatchSettings, Witness, duration};

impl Validator<'_> {
    pub(super) fn watch(&mut self, raw: &RawSite) -> Option<WatchSettings> {
        let Some(t) = &raw.watch else {
            return Some(WatchSettings::default());
        };
        let t = t.get_ref();
        let before = self.problems.len();
        let witnesses = self.get(&t.witnesses, "witnesses").unwrap_or_default();
        let witnesses = self
            .parsed(&t.witnesses, "witnesses", Some(witnesses), |w| {
                w.iter()
                    .map(|x| Witness::parse(x))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_default();
        let listen = self.get(&t.listen, "listen");
        let listen = self.parsed(&t.listen, "listen", listen, |l| {
            l.parse::<SocketAddr>()
                .map_err(|_| format!("{l:?} is not an address with a port (127.0.0.1:9725)"))
        });
        let state_file = self.get(&t.state_file, "state_file").map(|p| self.path(&p));
        let sweep = self.get(&t.sweep_interval, "sweep_interval");
        let sweep_interval = match sweep.as_deref() {
            None => Some(crate::config::DEFAULT_SWEEP_INTERVAL),
            Some("off") => None,
            Some(_) => self
                .parsed(&t.sweep_interval, "sweep_interval", sweep, |s| {
                    duration::parse(&s)
                })
                .filter(|d| !d.is_zero()),
        };
        let settings = WatchSettings {
            auto_takeover: self.get(&t.auto_takeover, "auto_takeover").unwrap_or(false),
            auto_failback: self.get(&t.auto_failback, "auto_failback").unwrap_or(false),
            witnesses,
            listen,
            state_file,
            sweep_interval,
        };
        (self.problems.len() == before).then_some(settings)
    }
}
