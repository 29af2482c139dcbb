//! `[mirror]`: `posta mirror`'s pass interval, state directory and the lag `posta check
//! backup` tolerates.

use super::Validator;
use crate::config::raw::RawSite;
use crate::config::{MirrorSettings, duration};

impl Validator<'_> {
    pub(super) fn mirror(&mut self, raw: &RawSite) -> Option<MirrorSettings> {
        let Some(t) = &raw.mirror else {
            return Some(MirrorSettings::default());
        };
        let t = t.get_ref();
        let before = self.problems.len();
        let positive = |s: String| match duration::parse(&s) {
            Ok(d) if d.is_zero() => Err("must be longer than 0".to_string()),
            Ok(d) => Ok(d),
            Err(e) => Err(e.to_string()),
        };
        let text = self.get(&t.interval, "interval");
        let interval = match text {
            None => Some(crate::config::DEFAULT_MIRROR_INTERVAL),
            Some(_) => self.parsed(&t.interval, "interval", text, |s| {
                positive(s).map_err(|e| e.replace("must be", "the interval must be"))
            }),
        };
        let text = self.get(&t.max_lag, "max_lag");
        let max_lag = match (&text, interval) {
            (None, Some(i)) => Some(i * 3),
            (None, None) => None,
            (Some(_), _) => self.parsed(&t.max_lag, "max_lag", text, |s| {
                positive(s).map_err(|e| e.replace("must be", "the lag allowed must be"))
            }),
        };
        if let (Some(lag), Some(every), Some(f)) = (max_lag, interval, &t.max_lag)
            && lag < every
        {
            self.problem(
                f.span.clone(),
                "`max_lag` is shorter than `interval`: every pass would be reported late",
            );
        }
        // The Maildir source cannot tell mirror copies from mail mailserver2 took itself: the
        // mirror's map knows IMAP UIDs, not file names, so the sweep would send every copy
        // back to mailserver1 as a duplicate.
        if let Some(field) = raw.migrate.as_ref().map(|m| &m.get_ref().source)
            && let Some(f) = field
            && f.value.as_deref().is_ok_and(|s| s == "maildir")
        {
            self.problem(
                f.span.clone(),
                "[mirror] needs `[migrate] source = \"server\"`: read as Maildirs, mailserver2's \
                 mailboxes do not show which messages are mirror copies (the mirror knows IMAP \
                 UIDs, not file names), so the sweep would send every copy back to mailserver1",
            );
        }
        let state_dir = self.get(&t.state_dir, "state_dir").map(|p| self.path(&p));
        let settings = MirrorSettings {
            interval: interval?,
            state_dir,
            enabled: true,
            max_lag: max_lag?,
        };
        (self.problems.len() == before).then_some(settings)
    }
}
