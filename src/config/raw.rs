//! The site file as written: serde types whose leaves remember where they came from.
//!
//! Every leaf is a [`Field`], which accepts any TOML value and defers a type mismatch to
//! validation, so one run reports every mistake with its position instead of stopping at the
//! first (`posta config check`).

use std::ops::Range;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// A leaf value with its byte span; `value` says what was wrong when the TOML type was.
#[derive(Debug, Clone)]
pub struct Field<T> {
    pub span: Range<usize>,
    pub value: Result<T, TypeError>,
}

/// A site-file value of the wrong TOML type: toml's own message on one line, and the type
/// found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (found {found})")]
pub struct TypeError {
    message: String,
    found: &'static str,
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<toml::Value>::deserialize(deserializer)?;
        let span = spanned.span();
        let raw = spanned.into_inner();
        let found = raw.type_str();
        // One problem, one line: toml's messages end with a newline.
        let value = T::deserialize(raw).map_err(|e| TypeError {
            message: e.to_string().trim().replace('\n', " "),
            found,
        });
        Ok(Field { span, value })
    }
}

#[derive(Debug, Deserialize)]
pub struct RawSite {
    pub domain: Option<Field<String>>,
    pub primary: Option<Spanned<RawServer>>,
    pub backup: Option<Spanned<RawServer>>,
    pub relay: Option<Spanned<RawServer>>,
    pub takeover: Option<Spanned<RawTakeover>>,
    pub vip: Option<Spanned<RawVip>>,
    pub dns: Option<Spanned<RawDns>>,
    pub probe: Option<Spanned<RawProbe>>,
    pub tls: Option<Spanned<RawTls>>,
    pub migrate: Option<Spanned<RawMigrate>>,
    pub hooks: Option<Spanned<RawHooks>>,
    pub mta: Option<Spanned<RawMta>>,
    pub watch: Option<Spanned<RawWatch>>,
    pub notify: Option<Spanned<RawNotify>>,
    pub mirror: Option<Spanned<RawMirror>>,
}

/// `[notify]`: telling users of a takeover, a failback, a missing mirror.
#[derive(Debug, Deserialize)]
pub struct RawNotify {
    pub events: Option<Field<Vec<String>>>,
    /// `"accounts"` or a list of addresses.
    pub recipients: Option<Field<toml::Value>>,
    pub from: Option<Field<String>>,
    pub language: Option<Field<String>>,
    pub templates: Option<Spanned<RawNotifyTemplates>>,
    pub rate_limit: Option<Field<String>>,
}

/// `[notify.templates]`: a template file per event.
#[derive(Debug, Deserialize)]
pub struct RawNotifyTemplates {
    pub takeover: Option<Field<String>>,
    pub failback: Option<Field<String>>,
    pub mirror_missing: Option<Field<String>>,
}

/// `[mirror]`: `posta mirror`'s pass interval and state.
#[derive(Debug, Deserialize)]
pub struct RawMirror {
    pub interval: Option<Field<String>>,
    pub state_dir: Option<Field<String>>,
    pub max_lag: Option<Field<String>>,
}

/// `[watch]`: what `posta watch` may do by itself, who else must agree, where it reports.
#[derive(Debug, Deserialize)]
pub struct RawWatch {
    pub auto_takeover: Option<Field<bool>>,
    pub auto_failback: Option<Field<bool>>,
    pub witnesses: Option<Field<Vec<String>>>,
    pub listen: Option<Field<String>>,
    pub state_file: Option<Field<String>>,
    pub sweep_interval: Option<Field<String>>,
}

/// `[mta]`: the same settings as `posta mta`'s flags, which override them.
#[derive(Debug, Deserialize)]
pub struct RawMta {
    pub listen: Option<Field<Vec<String>>>,
    pub hostname: Option<Field<String>>,
    pub domains: Option<Field<Vec<String>>>,
    pub relay_domains: Option<Field<Vec<String>>>,
    pub maildir: Option<Field<String>>,
    pub maildir_owner: Option<Field<String>>,
    pub queue: Option<Field<String>>,
    pub control_socket: Option<Field<String>>,
    pub relay_to: Option<Field<String>>,
    pub relay_tls: Option<Field<String>>,
    pub access: Option<Field<String>>,
    pub virtusertable: Option<Field<String>>,
    pub local_host_names: Option<Field<String>>,
    pub recipients: Option<Field<String>>,
    pub verify_recipients: Option<Field<bool>>,
    pub pop3_listen: Option<Field<Vec<String>>>,
    pub pop3s_listen: Option<Field<Vec<String>>>,
    pub pop3_users: Option<Field<String>>,
    pub tls_cert: Option<Field<String>>,
    pub tls_key: Option<Field<String>>,
    pub vip_tls_cert: Option<Field<String>>,
    pub vip_tls_key: Option<Field<String>>,
    pub max_message_size: Option<Field<u64>>,
    pub max_recipients: Option<Field<usize>>,
    pub max_connections: Option<Field<usize>>,
    pub max_per_ip: Option<Field<usize>>,
    pub timeout: Option<Field<String>>,
    pub retry_min: Option<Field<String>>,
    pub retry_max: Option<Field<String>>,
    pub lifetime: Option<Field<String>>,
    pub min_free: Option<Field<u64>>,
}

#[derive(Debug, Deserialize)]
pub struct RawServer {
    pub name: Option<Field<String>>,
    pub address: Option<Field<String>>,
    pub probe_address: Option<Field<String>>,
    pub services: Option<Field<Vec<String>>>,
    pub probe_user: Option<Field<String>>,
    pub probe_password_file: Option<Field<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawTakeover {
    pub mode: Option<Field<String>>,
    pub state_file: Option<Field<String>>,
}

/// A hook: a program path, or an argv list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawHook {
    Program(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct RawHooks {
    pub on_transition: Option<Field<Vec<RawHook>>>,
    pub pre_takeover: Option<Field<Vec<RawHook>>>,
    pub post_takeover: Option<Field<Vec<RawHook>>>,
    pub pre_failback: Option<Field<Vec<RawHook>>>,
    pub post_failback: Option<Field<Vec<RawHook>>>,
    pub timeout: Option<Field<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawVip {
    pub address: Option<Field<String>>,
    pub interface: Option<Field<String>>,
    pub label: Option<Field<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawDns {
    pub server: Option<Field<String>>,
    pub zone: Option<Field<String>>,
    pub name: Option<Field<String>>,
    pub ttl: Option<Field<u32>>,
    pub tsig_key_file: Option<Field<String>>,
    pub zone_file: Option<Field<String>>,
    pub reload_command: Option<Field<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
pub struct RawProbe {
    pub interval: Option<Field<String>>,
    pub timeout: Option<Field<String>>,
    pub fall: Option<Field<u32>>,
    pub rise: Option<Field<u32>>,
    pub takeover_grace: Option<Field<String>>,
    pub helo: Option<Field<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawTls {
    pub ca_file: Option<Field<String>>,
    pub cert_warning_days: Option<Field<u32>>,
    pub cert_critical_days: Option<Field<u32>>,
}

#[derive(Debug, Deserialize)]
pub struct RawMigrate {
    pub state_dir: Option<Field<String>>,
    pub source: Option<Field<String>>,
    pub source_admin: Option<Spanned<RawAdmin>>,
    pub dest_admin: Option<Spanned<RawAdmin>>,
    pub accounts: Option<Spanned<RawAccounts>>,
    /// The address template for discovered accounts (`accounts = "all"`).
    pub deliver_to: Option<Field<String>>,
}

/// `accounts`: the string `"all"` (discover them) or `[[migrate.accounts]]` tables.
///
/// Written by hand, not `#[serde(untagged)]`: an untagged enum buffers the value and loses
/// the spans that `Spanned` and [`Field`] carry, so every problem inside an account would lose
/// its `file:line:column`.
#[derive(Debug)]
pub enum RawAccounts {
    All,
    List(Vec<Spanned<RawAccount>>),
    /// Any other string, kept so validation reports it with its position.
    Other(String),
}

impl<'de> Deserialize<'de> for RawAccounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawAccounts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the string \"all\" or [[migrate.accounts]] tables")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawAccounts, E> {
                Ok(if v == "all" {
                    RawAccounts::All
                } else {
                    RawAccounts::Other(v.to_owned())
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawAccounts, A::Error> {
                let mut list = Vec::new();
                while let Some(a) = seq.next_element()? {
                    list.push(a);
                }
                Ok(RawAccounts::List(list))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl RawAccounts {
    /// The `[[migrate.accounts]]` tables, none for `"all"`.
    pub fn list(&self) -> &[Spanned<RawAccount>] {
        match self {
            RawAccounts::List(l) => l,
            RawAccounts::All | RawAccounts::Other(_) => &[],
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RawAdmin {
    pub user: Option<Field<String>>,
    pub password_file: Option<Field<String>>,
    pub login: Option<Field<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawAccount {
    pub user: Option<Field<String>>,
    pub password_file: Option<Field<String>>,
    pub deliver_to: Option<Field<String>>,
    pub dest_user: Option<Field<String>>,
    pub dest_password_file: Option<Field<String>>,
}
