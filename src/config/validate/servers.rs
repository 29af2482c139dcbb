//! `[primary]`, `[backup]` and `[relay]`: the servers and what is probed on them.

use std::net::IpAddr;

use toml::Spanned;

use super::Validator;
use super::values::{parse_domain, parse_service};
use crate::config::raw::{RawServer, RawSite};
use crate::config::{ProbeAccount, Role, Server};

impl Validator<'_> {
    /// `[primary]`, `[backup]` and the optional `[relay]`, which must be two servers.
    pub(super) fn servers(
        &mut self,
        raw: &RawSite,
    ) -> (Option<Server>, Option<Server>, Option<Server>) {
        let primary = self.server(&raw.primary, Role::Primary);
        let backup = self.server(&raw.backup, Role::Backup);
        let relay = raw
            .relay
            .as_ref()
            .map(|_| self.server(&raw.relay, Role::Relay));
        if let (Some(p), Some(b)) = (&primary, &backup)
            && (p.address == b.address || p.probe_target() == b.address)
        {
            let span = raw.backup.as_ref().map_or(0..0, Spanned::span);
            self.problem(
                span,
                "[backup] has the same address as [primary]: takeover needs two servers",
            );
        }
        (primary, backup, relay.flatten())
    }

    fn server(&mut self, raw: &Option<Spanned<RawServer>>, role: Role) -> Option<Server> {
        let table = role.name();
        let Some(raw) = raw else {
            self.problem(0..0, format!("missing table [{table}]"));
            return None;
        };
        let span = raw.span();
        let raw = raw.get_ref();
        let name = self.required(&raw.name, "name", table, &span);
        let name = self.parsed(&raw.name, "name", name, parse_domain);
        let address = self.required(&raw.address, "address", table, &span);
        let ip = |a: String| {
            a.parse::<IpAddr>()
                .map_err(|_| format!("{a:?} is not an IP address"))
        };
        let address = self.parsed(&raw.address, "address", address, ip);
        let probe_address = self.get(&raw.probe_address, "probe_address");
        let probe_address = self.parsed(&raw.probe_address, "probe_address", probe_address, ip);
        let default: &[&str] = match role {
            Role::Relay => &["smtp"],
            Role::Primary | Role::Backup => &["smtp", "imap", "pop3"],
        };
        let services = match self.get(&raw.services, "services") {
            Some(list) => {
                let span = raw.services.as_ref().map_or(0..0, |f| f.span.clone());
                let mut out = Vec::new();
                for entry in list {
                    match parse_service(&entry) {
                        Ok(s) => out.push(s),
                        Err(e) => self.problem(span.clone(), format!("`services`: {e}")),
                    }
                }
                if out.is_empty() {
                    self.problem(span, "`services`: list at least one service to probe");
                }
                out
            }
            None => default
                .iter()
                .filter_map(|s| parse_service(s).ok())
                .collect(),
        };
        let user = self.get(&raw.probe_user, "probe_user");
        let password_file = self.secret_file(&raw.probe_password_file, "probe_password_file");
        let probe_account = match (user, raw.probe_password_file.is_some()) {
            (Some(user), true) => password_file.map(|password_file| ProbeAccount {
                user,
                password_file,
            }),
            (None, false) => None,
            (Some(_), false) => {
                self.problem(
                    span.clone(),
                    format!("[{table}] has `probe_user` but no `probe_password_file`"),
                );
                None
            }
            (None, true) => {
                self.problem(
                    span.clone(),
                    format!("[{table}] has `probe_password_file` but no `probe_user`"),
                );
                None
            }
        };
        if raw.probe_address.is_some() && probe_address.is_none() {
            return None;
        }
        Some(Server {
            role,
            name: name?,
            address: address?,
            probe_address,
            services,
            probe_account,
        })
    }
}
