//! `[notify]`: which events tell users, who, from which address, in which language, with which
//! templates (each read and parsed here, so a mistake in one is located before an outage), and
//! the rate limit.

use std::fs;

use super::Validator;
use super::values::parse_domain;
use crate::config::raw::{Field, RawAccounts, RawSite};
use crate::config::{
    Language, MessageTemplate, NotifyEvent, NotifyRecipients, NotifySettings, TemplateFile,
    duration,
};

impl Validator<'_> {
    pub(super) fn notify(&mut self, raw: &RawSite) -> Option<Option<NotifySettings>> {
        let Some(n) = &raw.notify else {
            return Some(None);
        };
        let table = n.span();
        let n = n.get_ref();
        let before = self.problems.len();
        let mut settings = NotifySettings::default();
        if let Some(names) = self.get(&n.events, "events") {
            let events = self.parsed(&n.events, "events", Some(names), |names| {
                let mut events = Vec::new();
                for name in names {
                    let e = NotifyEvent::parse(&name).ok_or_else(|| {
                        let known: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.name()).collect();
                        format!("unknown event {name:?} (known: {})", known.join(", "))
                    })?;
                    if !events.contains(&e) {
                        events.push(e);
                    }
                }
                Ok::<_, String>(events)
            });
            settings.events = events.unwrap_or_default();
        }
        if let Some(value) = self.get(&n.recipients, "recipients") {
            let recipients = self.parsed(&n.recipients, "recipients", Some(value), |v| match v {
                toml::Value::String(s) if s == "accounts" => Ok(NotifyRecipients::Accounts),
                toml::Value::Array(items) => items
                    .into_iter()
                    .map(|i| match i {
                        toml::Value::String(a) if is_address(&a) => Ok(a),
                        other => Err(format!("{other} is not an address like user@example.org")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(NotifyRecipients::List),
                other => Err(format!(
                    "{other} is neither \"accounts\" nor a list of addresses"
                )),
            });
            settings.recipients = recipients.unwrap_or_default();
        }
        if settings.recipients == NotifyRecipients::Accounts && !has_accounts(raw) {
            let span = n
                .recipients
                .as_ref()
                .map_or(table.clone(), |f| f.span.clone());
            self.problem(
                span,
                "recipients = \"accounts\" (the default) tells the accounts of [migrate], which \
                 lists none: add [[migrate.accounts]], accounts = \"all\", or list the addresses",
            );
        }
        let from = self.get(&n.from, "from");
        settings.from = self.parsed(&n.from, "from", from, |a| {
            if is_address(&a) {
                Ok(a)
            } else {
                Err(format!(
                    "{a:?} is not an address like postmaster@example.org"
                ))
            }
        });
        let language = self.get(&n.language, "language");
        if let Some(l) = self.parsed(&n.language, "language", language, |l| {
            Language::parse(&l).ok_or_else(|| format!("{l:?} is not one of es, en"))
        }) {
            settings.language = l;
        }
        let rate = self.get(&n.rate_limit, "rate_limit");
        if let Some(d) = self.parsed(&n.rate_limit, "rate_limit", rate, |r| duration::parse(&r)) {
            settings.rate_limit = d;
        }
        if let Some(t) = &n.templates {
            let t = t.get_ref();
            for (event, field) in [
                (NotifyEvent::Takeover, &t.takeover),
                (NotifyEvent::Failback, &t.failback),
                (NotifyEvent::MirrorMissing, &t.mirror_missing),
            ] {
                if let Some(file) = self.template(event, field) {
                    settings.templates.push(file);
                }
            }
        }
        (self.problems.len() == before).then_some(Some(settings))
    }

    /// A template file named in `[notify.templates]`, read and parsed: a problem in it is
    /// reported at the key, with the file's own `path:line:column`.
    fn template(
        &mut self,
        event: NotifyEvent,
        field: &Option<Field<String>>,
    ) -> Option<TemplateFile> {
        let key = format!("templates.{}", event.name());
        let text = self.get(field, &key)?;
        let path = self.path(&text);
        let span = field.as_ref().map_or(0..0, |f| f.span.clone());
        let content = match fs::read_to_string(&path) {
            Ok(c) => c,
            Err(e) => {
                self.problem(
                    span,
                    format!("`{key}`: cannot read {}: {e}", path.display()),
                );
                return None;
            }
        };
        match MessageTemplate::parse(&content) {
            Ok(template) => Some(TemplateFile {
                event,
                path,
                template,
            }),
            Err(p) => {
                self.problem(span, format!("`{key}`: {}:{p}", path.display()));
                None
            }
        }
    }
}

fn is_address(a: &str) -> bool {
    a.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !local.contains(char::is_whitespace)
            && !local.contains(['<', '>', '"', ','])
            && parse_domain(domain.into()).is_ok()
    })
}

/// Whether `[migrate]` has accounts to tell: tables, or `accounts = "all"` (a value that is
/// neither is reported at `accounts`, not again here).
fn has_accounts(raw: &RawSite) -> bool {
    let accounts = raw
        .migrate
        .as_ref()
        .and_then(|m| m.get_ref().accounts.as_ref());
    match accounts.map(|a| a.get_ref()) {
        Some(RawAccounts::All | RawAccounts::Other(_)) => true,
        Some(RawAccounts::List(l)) => !l.is_empty(),
        None => false,
    }
}
