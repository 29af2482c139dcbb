//! The site file: what the seed's world looks like for one organization.
//!
//! The domain, mailserver1 (primary, MX 10), mailserver2 (backup, MX 20), the optional friendly
//! relay (MX 30), how takeover moves the primary's address (a virtual IP alias or the DNS A
//! record), probe timing (down detection kept apart from the takeover grace: the seed says a
//! few minutes of outage should not trigger a takeover), and the accounts to migrate home.
//!
//! The text is parsed into [`raw`] serde types, then validated once into [`Site`]; every problem
//! is reported at once with `file:line:column`.

mod duration;
pub mod edit;
mod host;
mod location;
mod notify;
mod raw;
mod show;
mod validate;

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use duration::{DurationError, format as format_duration, parse as parse_duration};
pub use host::{HostCheck, check_host, check_vip_interface, this_host};
pub use location::{Located, Problem, line_column};
pub use notify::{
    DEFAULT_RATE_LIMIT, Language, MessageTemplate, NotifyEvent, NotifyRecipients, NotifySettings,
    Piece, Placeholder, TemplateFile, TemplateProblem,
};
pub use show::to_site_file;
pub use validate::{default_helo, parse_domain, parse_socket_addr_53};

use crate::service::{Scheme, StartTls};

/// Where the site file is looked for when neither `--config` nor `POSTA_CONFIG` names one.
pub const DEFAULT_PATH: &str = "/etc/posta/site.toml";

/// The validated site.
/// The hooks of one site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Run by `posta watch` on every state change (POSTA_OLD/POSTA_NEW are the states).
    pub on_transition: Vec<Vec<String>>,
    pub pre_takeover: Vec<Vec<String>>,
    pub post_takeover: Vec<Vec<String>>,
    pub pre_failback: Vec<Vec<String>>,
    pub post_failback: Vec<Vec<String>>,
    /// Limit for each hook.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Site {
    /// The mail domain (`laorganizacion.org`).
    pub domain: String,
    pub primary: Server,
    pub backup: Server,
    pub relay: Option<Server>,
    pub takeover: TakeoverMode,
    pub vip: Option<Vip>,
    pub dns: Option<DnsRecord>,
    pub probe: ProbeSettings,
    pub tls: TlsSettings,
    pub migrate: Vec<MigrateAccount>,
    /// `[migrate] accounts = "all"`: the accounts are found on mailserver2 at run time, each
    /// delivered to this template (`deliver_to = "%u@example.org"`); `migrate` is then empty.
    pub migrate_all: Option<AddressTemplate>,
    /// Where `migrate` keeps journals and the quarantine (`[migrate] state_dir`).
    pub migrate_state_dir: Option<PathBuf>,
    /// How `migrate` reads mailserver2 (`[migrate] source`).
    pub migrate_source: MigrateSource,
    /// Logs in as every account on mailserver2 (`[migrate] source_admin`).
    pub migrate_source_admin: Option<MigrateAdmin>,
    /// Logs in as every account on mailserver1 (`[migrate] dest_admin`).
    pub migrate_dest_admin: Option<MigrateAdmin>,
    /// Where takeover and failback record who holds what (`[takeover] state_file`).
    pub takeover_state_file: Option<PathBuf>,
    /// Commands run before and after takeover and failback (`[hooks]`).
    #[serde(skip)]
    pub hooks: Hooks,
    /// `posta mta`'s settings (`[mta]`); its flags override them.
    pub mta: Option<MtaSection>,
    /// `posta watch`'s settings (`[watch]`).
    pub watch: WatchSettings,
    /// Telling users of a takeover, a failback, a missing mirror (`[notify]`); `None`: no
    /// notices.
    pub notify: Option<NotifySettings>,
    /// `posta mirror`'s settings (`[mirror]`); its flags override them.
    pub mirror: MirrorSettings,
    /// Every secret file the site names, with the section that needs it. Loading the site
    /// never opens them: each is read only by the feature that uses it, so one user's loose
    /// migration password cannot stop a takeover; `posta config check` checks them all.
    #[serde(skip)]
    pub secrets: Vec<SecretFile>,
    /// Where `[vip] interface` is written, for `posta config check`'s look at this host.
    #[serde(skip)]
    pub vip_interface_at: Option<Located>,
}

/// A secret file named by the site file, and who needs it.
#[derive(Debug, Clone)]
pub struct SecretFile {
    pub path: PathBuf,
    /// The key and its table, as an operator finds them: "`password_file` in [[migrate.accounts]]".
    pub needed_by: String,
    /// Where the key is written.
    pub at: Located,
}

/// `[watch]`, typed.
#[derive(Debug, Clone, Serialize)]
pub struct WatchSettings {
    /// Take over by itself when the grace ends (default: tell the operator and wait).
    pub auto_takeover: bool,
    /// Fail back by itself after the rise window (default: tell the operator and wait).
    pub auto_failback: bool,
    /// Other vantage points that must agree the primary is down before a takeover.
    pub witnesses: Vec<Witness>,
    /// Where to serve `/metrics` (Prometheus) and `/status` (for other hosts' witnesses).
    pub listen: Option<SocketAddr>,
    /// Where the daemon writes its state for `posta status`.
    pub state_file: Option<PathBuf>,
    /// How often a healthy watch sweeps mail stored on mailserver2 home with `posta migrate`;
    /// `None` (`0` or `off`) never does.
    #[serde(serialize_with = "serialize_opt_duration")]
    pub sweep_interval: Option<Duration>,
}

/// Mail a backup MX accepted while the primary was up waits at most this long by default:
/// senders pick MX 20 for their own reasons (greylisting, a timeout, a route flap). Postfix
/// rescans its deferred queue every `queue_run_delay` (300s) and fetchmail's daemon polls at
/// its `-d` interval; a minute keeps mail on the backup for less time than either, and a sweep
/// with nothing to move costs at most one login per account.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl Default for WatchSettings {
    fn default() -> WatchSettings {
        WatchSettings {
            auto_takeover: false,
            auto_failback: false,
            witnesses: Vec::new(),
            listen: None,
            state_file: None,
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
        }
    }
}

/// `[mirror]`: how often `posta mirror` passes and where it keeps its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorSettings {
    /// Time from the start of one pass to the start of the next.
    #[serde(serialize_with = "serialize_duration")]
    pub interval: Duration,
    /// The per-account state files [default: /var/lib/posta/mirror].
    pub state_dir: Option<PathBuf>,
    /// Whether the site file has `[mirror]`: only then does a mirror count as existing (the
    /// watch's mirror duty, the sweep leaving mirror copies in place, the lag checks).
    pub enabled: bool,
    /// Lag (time since an account's last complete pass) past which `posta check backup`
    /// warns [default: 3 × interval].
    #[serde(serialize_with = "serialize_duration")]
    pub max_lag: Duration,
}

/// Mail that reaches mailserver1 is on mailserver2 within this long (issue 17's default): a
/// pass with nothing changed costs one login and one EXAMINE per folder with QRESYNC.
pub const DEFAULT_MIRROR_INTERVAL: Duration = Duration::from_secs(60);

impl Default for MirrorSettings {
    fn default() -> MirrorSettings {
        MirrorSettings {
            interval: DEFAULT_MIRROR_INTERVAL,
            state_dir: None,
            enabled: false,
            max_lag: DEFAULT_MIRROR_INTERVAL * 3,
        }
    }
}

/// A witness: another host that also probes the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "target")]
pub enum Witness {
    /// `http://host:port`: a `posta watch` serving `/status`.
    Http(SocketAddr),
    /// `ssh://[user@]host`: runs `posta check --nagios primary` there.
    Ssh(String),
}

impl Witness {
    /// `http://ADDR:PORT` or `ssh://[user@]host`.
    pub fn parse(text: &str) -> Result<Witness, WitnessError> {
        if let Some(rest) = text.strip_prefix("http://") {
            let addr = rest.trim_end_matches('/');
            return addr
                .parse()
                .map(Witness::Http)
                .map_err(|_| WitnessError::Http(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix("ssh://") {
            let ok = !rest.is_empty()
                && !rest.starts_with('-')
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"@.-_:[]".contains(&b));
            return if ok {
                Ok(Witness::Ssh(rest.to_string()))
            } else {
                Err(WitnessError::Ssh(text.to_string()))
            };
        }
        Err(WitnessError::Scheme(text.to_string()))
    }
}

/// A `[watch] witnesses` entry that is not a witness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    #[error("{0:?}: an http witness is http://ADDRESS:PORT (an IP address, not a name)")]
    Http(String),
    #[error("{0:?}: an ssh witness is ssh://[user@]host")]
    Ssh(String),
    #[error("{0:?}: a witness is http://ADDRESS:PORT or ssh://[user@]host")]
    Scheme(String),
}

impl std::fmt::Display for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Witness::Http(a) => write!(f, "http://{a}"),
            Witness::Ssh(t) => write!(f, "ssh://{t}"),
        }
    }
}

/// `[mta]`, typed: the same settings as `posta mta`'s flags, paths relative to the site file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MtaSection {
    pub listen: Vec<std::net::SocketAddr>,
    pub hostname: Option<String>,
    pub domains: Vec<String>,
    pub relay_domains: Vec<String>,
    pub maildir: Option<PathBuf>,
    /// `USER` or `USER:GROUP`: whose the Maildirs are and who the mta runs as.
    pub maildir_owner: Option<String>,
    pub queue: Option<PathBuf>,
    /// The queue's control socket [default: /run/posta/mta.sock].
    pub control_socket: Option<PathBuf>,
    pub relay_to: Option<String>,
    /// `require`, `may` or `none`.
    pub relay_tls: Option<String>,
    pub access: Option<PathBuf>,
    pub virtusertable: Option<PathBuf>,
    pub local_host_names: Option<PathBuf>,
    pub recipients: Option<PathBuf>,
    pub verify_recipients: bool,
    pub pop3_listen: Vec<std::net::SocketAddr>,
    pub pop3s_listen: Vec<std::net::SocketAddr>,
    pub pop3_users: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// mailserver1's certificate for connections to `[vip] address` and SNI naming it.
    pub vip_tls_cert: Option<PathBuf>,
    pub vip_tls_key: Option<PathBuf>,
    pub max_message_size: Option<u64>,
    pub max_recipients: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_per_ip: Option<usize>,
    #[serde(serialize_with = "serialize_opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(serialize_with = "serialize_opt_duration")]
    pub retry_min: Option<Duration>,
    #[serde(serialize_with = "serialize_opt_duration")]
    pub retry_max: Option<Duration>,
    #[serde(serialize_with = "serialize_opt_duration")]
    pub lifetime: Option<Duration>,
    pub min_free: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Backup,
    Relay,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
            Role::Relay => "relay",
        }
    }
}

/// One mail server of the site.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub role: Role,
    /// Host name: what the MX record names and what its TLS certificate is for.
    pub name: String,
    /// Its service address: what clients and the DNS A record use (for mailserver1 in
    /// mode "vip", usually the VIP itself).
    pub address: IpAddr,
    /// The server's own address, which stays with it when the VIP moves. The probes and
    /// `posta migrate` connect here; without it, to `address`.
    pub probe_address: Option<IpAddr>,
    pub services: Vec<Service>,
    pub probe_account: Option<ProbeAccount>,
}

/// A service a server offers, as probed by `posta check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Service {
    #[serde(serialize_with = "serialize_scheme")]
    pub scheme: Scheme,
    pub port: u16,
    #[serde(serialize_with = "serialize_starttls")]
    pub starttls: StartTls,
}

/// An account the probes log in with. The password stays in its file until a probe needs it.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeAccount {
    pub user: String,
    pub password_file: PathBuf,
}

/// How `takeover` makes clients of mailserver1 reach mailserver2 (the seed's two artifices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TakeoverMode {
    /// mailserver2 adds mailserver1's address as an alias ("IP virtual" / "IP alias").
    Vip,
    /// mailserver1's A record is rewritten to mailserver2's address.
    Dns,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vip {
    pub address: IpAddr,
    pub prefix: u8,
    pub interface: String,
    pub label: Option<String>,
}

/// The DNS record takeover rewrites, and where to send the signed update.
#[derive(Debug, Clone, Serialize)]
pub struct DnsRecord {
    /// The zone's authoritative (primary) server.
    pub server: SocketAddr,
    pub zone: String,
    /// mailserver1's name, whose A record moves.
    pub name: String,
    /// TTL written by takeover and failback.
    pub ttl: u32,
    /// BIND-format TSIG key file (owner-only).
    pub tsig_key_file: PathBuf,
    /// For a static zone: the file takeover edits instead of sending an UPDATE.
    pub zone_file: Option<PathBuf>,
    /// Run after editing the zone file (argv), e.g. `["rndc", "reload", "example.org"]`.
    pub reload_command: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeSettings {
    /// Time between probes of the primary.
    #[serde(serialize_with = "serialize_duration")]
    pub interval: Duration,
    /// Limit for one probe.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    /// Consecutive failed probes before the primary counts as down.
    pub fall: u32,
    /// Consecutive good probes before a recovered primary counts as healthy.
    pub rise: u32,
    /// How long the primary must stay down before takeover; kept apart from `fall`.
    #[serde(serialize_with = "serialize_duration")]
    pub takeover_grace: Duration,
    /// Name the probes give in EHLO.
    pub helo: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    pub cert_warning_days: u32,
    pub cert_critical_days: u32,
}

/// How `posta migrate` reads mailserver2's mailboxes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateSource {
    /// Over the backup server's IMAP or POP3 service (as listed under [servers.backup]).
    #[default]
    Server,
    /// From the Maildirs under `[mta] maildir`, on this host: no password needed.
    Maildir,
}

/// An admin identity (a Dovecot master user) that logs in as any account, so no user's
/// password is needed.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateAdmin {
    pub user: String,
    pub password_file: PathBuf,
    /// `auto`, `plain` (SASL PLAIN with an authorization identity) or `separator`
    /// (`user*admin`).
    #[serde(serialize_with = "admin_form")]
    pub login: crate::service::AdminForm,
}

fn admin_form<S: serde::Serializer>(
    form: &crate::service::AdminForm,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(form.name())
}

/// A mailbox on mailserver2 whose mail `migrate` brings home.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateAccount {
    pub user: String,
    /// The user's own password on mailserver2; without it, `[migrate] source_admin` logs in.
    pub password_file: Option<PathBuf>,
    pub deliver_to: String,
    /// IMAP login on mailserver1, for folders and for checking unknown outcomes.
    pub dest_user: Option<String>,
    /// Its password file [default: `[migrate] dest_admin`, else `password_file`].
    pub dest_password_file: Option<PathBuf>,
}

/// Text that is not an [`AddressTemplate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address template like \"%u@example.org\" (%u once, in the local part)")]
pub struct TemplateError(String);

/// An address with `%u` for the user (`%u@laorganizacion.org`), as Dovecot's
/// `mail_location` and fetchmail's `is` write a user into a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AddressTemplate(String);

impl AddressTemplate {
    /// `%u` once, in the local part, and the rest a valid address for any user.
    pub fn parse(text: String) -> Result<AddressTemplate, TemplateError> {
        let valid = text.matches("%u").count() == 1
            && text.split_once('@').is_some_and(|(local, domain)| {
                local.contains("%u") && validate::parse_domain(domain.into()).is_ok()
            });
        if valid {
            Ok(AddressTemplate(text))
        } else {
            Err(TemplateError(text))
        }
    }

    /// The address of `user`.
    pub fn address(&self, user: &str) -> String {
        self.0.replace("%u", user)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Server {
    /// Where the probes connect: the server's own address, never one that may move away.
    pub fn probe_target(&self) -> IpAddr {
        self.probe_address.unwrap_or(self.address)
    }
}

impl Site {
    pub fn server(&self, role: Role) -> Option<&Server> {
        match role {
            Role::Primary => Some(&self.primary),
            Role::Backup => Some(&self.backup),
            Role::Relay => self.relay.as_ref(),
        }
    }
}

/// Why the site file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read site file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(.problems))]
    Invalid { problems: Vec<Located> },
}

fn render(problems: &[Located]) -> String {
    let lines: Vec<String> = problems.iter().map(Located::to_string).collect();
    lines.join("\n")
}

/// Reads and validates the site file at `path`.
pub fn load(path: &Path) -> Result<Site, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Validates site-file `text`; `path` locates problems and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Site, ConfigError> {
    validate::site(text, path).map_err(|problems| ConfigError::Invalid {
        problems: problems
            .iter()
            .map(|p| Located::resolve(path, text, p))
            .collect(),
    })
}

fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn serialize_opt_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize_duration(d, s),
        None => s.serialize_none(),
    }
}

fn serialize_scheme<S: serde::Serializer>(v: &Scheme, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.name())
}

fn serialize_starttls<S: serde::Serializer>(v: &StartTls, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.name())
}

#[cfg(test)]
mod tests;
