//! `[hooks]`: the commands run around takeover, failback and every watch transition.

use super::Validator;
use crate::config::raw::{Field, RawHook, RawSite};
use crate::config::{Hooks, parse_duration};

impl Validator<'_> {
    pub(super) fn hooks(&mut self, raw: &RawSite) -> Option<Hooks> {
        let mut hooks = Hooks {
            timeout: std::time::Duration::from_secs(30),
            ..Default::default()
        };
        let Some(h) = &raw.hooks else {
            return Some(hooks);
        };
        let h = h.get_ref();
        let mut list = |field: &Option<Field<Vec<RawHook>>>, key: &str| -> Vec<Vec<String>> {
            let hooks = self.get(field, key).unwrap_or_default();
            let argvs: Vec<Vec<String>> = hooks
                .into_iter()
                .map(|h| match h {
                    RawHook::Program(p) => vec![p],
                    RawHook::Argv(a) => a,
                })
                .collect();
            if argvs
                .iter()
                .any(|a| a.first().is_none_or(|p| !p.starts_with('/')))
            {
                let span = field.as_ref().map_or(0..0, |f| f.span.clone());
                self.problem(
                    span,
                    format!("`{key}`: each hook is an absolute program path, or [path, args...]"),
                );
            }
            argvs
        };
        hooks.on_transition = list(&h.on_transition, "on_transition");
        hooks.pre_takeover = list(&h.pre_takeover, "pre_takeover");
        hooks.post_takeover = list(&h.post_takeover, "post_takeover");
        hooks.pre_failback = list(&h.pre_failback, "pre_failback");
        hooks.post_failback = list(&h.post_failback, "post_failback");
        if let Some(t) = self.get(&h.timeout, "timeout") {
            hooks.timeout = self.parsed(&h.timeout, "timeout", Some(t), |t| parse_duration(&t))?;
        }
        Some(hooks)
    }
}
