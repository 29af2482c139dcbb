//! `[mirror]`: `posta mirror`'s pass interval and state directory.

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
        let text = self.get(&t.interval, "interval");
        let interval = match text {
            None => Some(crate::config::DEFAULT_MIRROR_INTERVAL),
            Some(_) => self.parsed(&t.interval, "interval", text, |s| {
                match duration::parse(&s) {
                    Ok(d) if d.is_zero() => Err("the interval must be longer than 0".to_string()),
                    Ok(d) => Ok(d),
                    Err(e) => Err(e.to_string()),
                }
            }),
        };
        let state_dir = self.get(&t.state_dir, "state_dir").map(|p| self.path(&p));
        let settings = MirrorSettings {
            interval: interval?,
            state_dir,
        };
        (self.problems.len() == before).then_some(settings)
    }
}
