//! `[migrate]` and `[[migrate.accounts]]`: which accounts come home, from where, with which
//! logins.

use std::path::PathBuf;

use toml::Spanned;

use super::Validator;
use super::values::parse_domain;
use crate::config::raw::{RawAccount, RawAccounts, RawAdmin, RawSite};
use crate::config::{AddressTemplate, MigrateAccount, MigrateAdmin, MigrateSource};
use crate::service::AdminForm;

impl Validator<'_> {
    pub(super) fn migrate(&mut self, raw: &RawSite) -> Vec<MigrateAccount> {
        let Some(m) = &raw.migrate else {
            return Vec::new();
        };
        // A Maildir source reads files on this host: no account needs a password there.
        let maildir = m
            .get_ref()
            .source
            .as_ref()
            .is_some_and(|s| s.value.as_deref() == Ok("maildir"));
        let admin = m.get_ref().source_admin.is_some() || maildir;
        let accounts = m.get_ref().accounts.as_ref();
        accounts
            .map_or(&[][..], |a| a.get_ref().list())
            .iter()
            .filter_map(|a| self.account(a, admin))
            .collect()
    }

    /// `accounts = "all"` with its `deliver_to` template; `Some(None)` for an explicit list.
    pub(super) fn migrate_all(&mut self, raw: &RawSite) -> Option<Option<AddressTemplate>> {
        let Some(m) = &raw.migrate else {
            return Some(None);
        };
        let table = m.span();
        let m = m.get_ref();
        let all = match m.accounts.as_ref().map(|a| (a.span(), a.get_ref())) {
            Some((_, RawAccounts::All)) => true,
            Some((span, RawAccounts::Other(text))) => {
                self.problem(
                    span,
                    format!(
                        "`accounts`: {text:?} is neither \"all\" nor [[migrate.accounts]] tables"
                    ),
                );
                return None;
            }
            Some((_, RawAccounts::List(_))) | None => false,
        };
        let template = self.get(&m.deliver_to, "deliver_to");
        let template = self.parsed(
            &m.deliver_to,
            "deliver_to",
            template,
            AddressTemplate::parse,
        );
        match (all, &m.deliver_to) {
            (false, None) => Some(None),
            (false, Some(f)) => {
                self.problem(
                    f.span.clone(),
                    "`deliver_to` in [migrate] is the address template of accounts = \"all\"; \
                     each [[migrate.accounts]] entry has its own deliver_to",
                );
                None
            }
            (true, None) => {
                self.problem(
                    table,
                    "accounts = \"all\" needs deliver_to, the address template such as \
                     \"%u@example.org\"",
                );
                None
            }
            (true, Some(_)) => {
                // Discovered accounts have no password files: one login must serve them all.
                // A Maildir source reads files on this host and needs no login at all.
                let maildir = m
                    .source
                    .as_ref()
                    .is_some_and(|s| s.value.as_deref() == Ok("maildir"));
                if m.source_admin.is_none() && !maildir {
                    self.problem(
                        table,
                        "accounts = \"all\" needs source_admin (one login for every discovered \
                         account on mailserver2) or source = \"maildir\"",
                    );
                    return None;
                }
                template.map(Some)
            }
        }
    }

    /// `[migrate] source = "server" | "maildir"`; a Maildir source needs `[mta] maildir`.
    pub(super) fn migrate_source(&mut self, raw: &RawSite) -> Option<MigrateSource> {
        let Some(field) = raw.migrate.as_ref().map(|m| &m.get_ref().source) else {
            return Some(MigrateSource::Server);
        };
        let text = self.get(field, "source");
        if text.is_none() {
            return Some(MigrateSource::Server);
        }
        let source = self.parsed(field, "source", text, |t| match t.as_str() {
            "server" => Ok(MigrateSource::Server),
            "maildir" => Ok(MigrateSource::Maildir),
            _ => Err(format!("{t:?} is not one of server, maildir")),
        })?;
        let has_maildir = raw
            .mta
            .as_ref()
            .is_some_and(|m| m.get_ref().maildir.is_some());
        if source == MigrateSource::Maildir && !has_maildir {
            if let Some(f) = field {
                self.problem(
                    f.span.clone(),
                    "source = \"maildir\" reads the Maildirs under [mta] maildir, which is not set",
                );
            }
            return None;
        }
        Some(source)
    }

    /// `source_admin` / `dest_admin = { user, password_file, login }`.
    fn admin(&mut self, raw: &Spanned<RawAdmin>, key: &str) -> Option<MigrateAdmin> {
        let span = raw.span();
        let raw = raw.get_ref();
        let table = format!("migrate.{key}");
        let user = self.required(&raw.user, "user", &table, &span);
        let password_file = match &raw.password_file {
            None => {
                self.problem(span, format!("missing key `password_file` in [{table}]"));
                None
            }
            Some(_) => self.secret_file(&raw.password_file, "password_file"),
        };
        let login = match self.get(&raw.login, "login") {
            None => Some(AdminForm::Auto),
            text => self.parsed(&raw.login, "login", text, |t| {
                AdminForm::parse(&t)
                    .ok_or_else(|| format!("{t:?} is not one of auto, plain, separator"))
            }),
        };
        Some(MigrateAdmin {
            user: user?,
            password_file: password_file?,
            login: login?,
        })
    }

    fn account(&mut self, raw: &Spanned<RawAccount>, admin: bool) -> Option<MigrateAccount> {
        let span = raw.span();
        let raw = raw.get_ref();
        let table = "[migrate.accounts]";
        let user = self.required(&raw.user, "user", table, &span);
        let password_file = match &raw.password_file {
            None if !admin => {
                self.problem(
                    span.clone(),
                    format!(
                        "missing key `password_file` in {table} (or set [migrate] source_admin)"
                    ),
                );
                None
            }
            None => Some(None),
            Some(_) => self
                .secret_file(&raw.password_file, "password_file")
                .map(Some),
        };
        let deliver_to = self.required(&raw.deliver_to, "deliver_to", table, &span);
        let deliver_to = self.parsed(&raw.deliver_to, "deliver_to", deliver_to, |a| {
            match a.split_once('@') {
                Some((local, domain))
                    if !local.is_empty() && parse_domain(domain.into()).is_ok() =>
                {
                    Ok(a)
                }
                _ => Err(format!("{a:?} is not an address like user@example.org")),
            }
        });
        let dest_user = self.get(&raw.dest_user, "dest_user");
        let dest_password_file = raw
            .dest_password_file
            .as_ref()
            .and_then(|_| self.secret_file(&raw.dest_password_file, "dest_password_file"));
        Some(MigrateAccount {
            user: user?,
            password_file: password_file?,
            deliver_to: deliver_to?,
            dest_user,
            dest_password_file,
        })
    }

    /// `[migrate] state_dir`.
    pub(super) fn migrate_state_dir(&mut self, raw: &RawSite) -> Option<PathBuf> {
        raw.migrate.as_ref().and_then(|m| {
            let text = self.get(&m.get_ref().state_dir, "state_dir")?;
            Some(self.path(&text))
        })
    }

    /// `[migrate] source_admin` and `dest_admin`.
    pub(super) fn admins(&mut self, raw: &RawSite) -> (Option<MigrateAdmin>, Option<MigrateAdmin>) {
        let m = raw.migrate.as_ref().map(|m| m.get_ref());
        let source_admin = m
            .and_then(|m| m.source_admin.as_ref())
            .and_then(|a| self.admin(a, "source_admin"));
        let dest_admin = m
            .and_then(|m| m.dest_admin.as_ref())
            .and_then(|a| self.admin(a, "dest_admin"));
        (source_admin, dest_admin)
    }
}
