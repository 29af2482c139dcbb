//! Raw site file → [`Site`], collecting every problem with its span.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::raw::{Field, RawAccount, RawAccounts, RawAdmin, RawHook, RawServer, RawSite};
use super::{
    AddressTemplate, DnsRecord, Located, MigrateAccount, MigrateAdmin, MigrateSource, MtaSection,
    ProbeAccount, ProbeSettings, Problem, Role, SecretFile, Server, Service, Site, TakeoverMode,
    TlsSettings, Vip, WatchSettings, Witness, duration,
};
use crate::dns::in_zone;
use crate::service::AdminForm;
use crate::service::{Scheme, StartTls};

/// Validates the whole file at `file`; `Err` holds every problem found, in file order.
pub fn site(text: &str, file: &Path) -> Result<Site, Vec<Problem>> {
    let base = file.parent().unwrap_or(Path::new("."));
    let (tree, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax.iter().map(problem_of).collect());
    }
    let mut unknown: Vec<Vec<String>> = Vec::new();
    let deserializer = toml::de::Deserializer::from(tree.clone());
    let raw: RawSite = serde_ignored::deserialize(deserializer, |path| {
        unknown.push(segments(&path));
    })
    .map_err(|e| vec![problem_of(&e)])?;

    let mut v = Validator {
        problems: Vec::new(),
        base,
        secrets: Vec::new(),
        vip_interface: None,
    };
    for path in &unknown {
        v.problems.push(Problem::new(
            locate_key(&tree, path),
            format!("unknown key `{}`", path.join(".")),
        ));
    }
    let headers = headers(&raw);
    let site = v.site(raw);
    let mut problems = v.problems;
    if let (true, Some(mut site)) = (problems.is_empty(), site) {
        let at = |span: &Range<usize>, message: String| {
            Located::resolve(file, text, &Problem::new(span.clone(), message))
        };
        site.secrets = v
            .secrets
            .iter()
            .map(|(span, key, path)| {
                let needed_by = format!("`{key}` in {}", section_of(&headers, span));
                SecretFile {
                    path: path.clone(),
                    at: at(span, needed_by.clone()),
                    needed_by,
                }
            })
            .collect();
        site.vip_interface_at = v
            .vip_interface
            .as_ref()
            .map(|span| at(span, "`interface` in [vip]".into()));
        return Ok(site);
    }
    problems.sort_by_key(|p| p.span.start);
    Err(problems)
}

/// The table headers of the file, by position: a key belongs to the last header before it.
fn headers(raw: &RawSite) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut add = |span: Option<Range<usize>>, name: &str| {
        if let Some(span) = span {
            out.push((span.start, name.to_string()));
        }
    };
    add(raw.primary.as_ref().map(Spanned::span), "[primary]");
    add(raw.backup.as_ref().map(Spanned::span), "[backup]");
    add(raw.relay.as_ref().map(Spanned::span), "[relay]");
    add(raw.takeover.as_ref().map(Spanned::span), "[takeover]");
    add(raw.vip.as_ref().map(Spanned::span), "[vip]");
    add(raw.dns.as_ref().map(Spanned::span), "[dns]");
    add(raw.probe.as_ref().map(Spanned::span), "[probe]");
    add(raw.tls.as_ref().map(Spanned::span), "[tls]");
    add(raw.hooks.as_ref().map(Spanned::span), "[hooks]");
    add(raw.mta.as_ref().map(Spanned::span), "[mta]");
    add(raw.watch.as_ref().map(Spanned::span), "[watch]");
    if let Some(m) = &raw.migrate {
        add(Some(m.span()), "[migrate]");
        let accounts = m.get_ref().accounts.as_ref();
        for a in accounts.map_or(&[][..], |a| a.get_ref().list()) {
            add(Some(a.span()), "[[migrate.accounts]]");
        }
    }
    out
}

fn section_of(headers: &[(usize, String)], span: &Range<usize>) -> String {
    headers
        .iter()
        .filter(|(start, _)| *start <= span.start)
        .max_by_key(|(start, _)| *start)
        .map_or_else(|| "the top level".to_string(), |(_, name)| name.clone())
}

fn problem_of(e: &toml::de::Error) -> Problem {
    Problem::new(e.span().unwrap_or(0..0), e.message().trim().to_string())
}

/// The map keys and array indexes on the way to an ignored (unknown) key.
fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    let mut here = path;
    loop {
        match here {
            Path::Root => break,
            Path::Map { parent, key } => {
                // toml::Spanned deserializes through a private wrapper field; not a user key.
                if !key.starts_with("$__serde_spanned_private") {
                    out.push(key.clone());
                }
                here = parent;
            }
            Path::Seq { parent, index } => {
                out.push(index.to_string());
                here = parent;
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => here = parent,
        }
    }
    out.reverse();
    out
}

/// The span of the key at `path` in the parsed tree (the start of the file if not found).
fn locate_key(tree: &Spanned<DeTable<'_>>, path: &[String]) -> Range<usize> {
    let mut table = tree.get_ref();
    let mut found = 0..0;
    let mut rest = path;
    while let Some((segment, tail)) = rest.split_first() {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == segment) else {
            break;
        };
        found = key.span();
        rest = tail;
        let mut value = value;
        // Arrays of tables: the next segment is an index.
        if let (DeValue::Array(items), Some((index, after))) = (value.get_ref(), rest.split_first())
        {
            match index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(item) => {
                    value = item;
                    rest = after;
                }
                None => break,
            }
        }
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found
}

struct Validator<'a> {
    problems: Vec<Problem>,
    base: &'a Path,
    /// Secret files named so far: where, which key, the path.
    secrets: Vec<(Range<usize>, String, PathBuf)>,
    /// Where `[vip] interface` is written.
    vip_interface: Option<Range<usize>>,
}

impl Validator<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(Problem::new(span, message));
    }

    /// The value of a present field with the right type; records a problem otherwise.
    fn get<T: Clone>(&mut self, field: &Option<Field<T>>, key: &str) -> Option<T> {
        let field = field.as_ref()?;
        match &field.value {
            Ok(value) => Some(value.clone()),
            Err(e) => {
                self.problem(field.span.clone(), format!("`{key}`: {e}"));
                None
            }
        }
    }

    /// Like [`Self::get`], but a missing field is a problem located at its table.
    fn required<T: Clone>(
        &mut self,
        field: &Option<Field<T>>,
        key: &str,
        table: &str,
        table_span: &Range<usize>,
    ) -> Option<T> {
        if field.is_none() {
            self.problem(
                table_span.clone(),
                format!("missing key `{key}` in [{table}]"),
            );
            return None;
        }
        self.get(field, key)
    }

    /// Parses a present field's value with `parse`, recording its error at the field.
    fn parsed<T, U, E: std::fmt::Display>(
        &mut self,
        field: &Option<Field<T>>,
        key: &str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<U> {
        let span = field.as_ref().map(|f| f.span.clone())?;
        match parse(value?) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(span, format!("`{key}`: {e}"));
                None
            }
        }
    }

    fn path(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    /// A secret file's path, remembered for `posta config check`. It is not opened here:
    /// only the feature that needs the secret reads it (and refuses loose permissions then).
    fn secret_file(&mut self, field: &Option<Field<String>>, key: &str) -> Option<PathBuf> {
        let text = self.get(field, key)?;
        let path = self.path(&text);
        let span = field.as_ref().map(|f| f.span.clone()).unwrap_or(0..0);
        self.secrets.push((span, key.to_string(), path.clone()));
        Some(path)
    }

    fn site(&mut self, raw: RawSite) -> Option<Site> {
        let whole = 0..0;
        let domain = self.required(&raw.domain, "domain", "top level", &whole);
        let domain = self.parsed(&raw.domain, "domain", domain, parse_domain);
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

        let vip = raw.vip.as_ref().and_then(|t| {
            let span = t.span();
            let t = t.get_ref();
            let address = self.required(&t.address, "address", "vip", &span);
            let address = self.parsed(&t.address, "address", address, parse_prefixed);
            let interface = self.required(&t.interface, "interface", "vip", &span);
            self.vip_interface = t.interface.as_ref().map(|f| f.span.clone());
            let label = self.get(&t.label, "label");
            if let Some(label) = &label {
                // The kernel limits labels to IFNAMSIZ-1 and wants them to start with the
                // interface name (`eth0:posta`), as `ip addr add ... label` does.
                if label.len() > 15 || !interface.as_ref().is_none_or(|i| label.starts_with(i)) {
                    let span = t.label.as_ref().map_or(0..0, |f| f.span.clone());
                    self.problem(
                        span,
                        "`label`: must start with the interface name and be at most 15 characters (e.g. \"eth0:posta\")",
                    );
                }
            }
            let (address, prefix) = address?;
            Some(Vip {
                address,
                prefix,
                interface: interface?,
                label,
            })
        });

        let dns = raw.dns.as_ref().and_then(|t| {
            let span = t.span();
            let t = t.get_ref();
            let server = self.required(&t.server, "server", "dns", &span);
            let server = self.parsed(&t.server, "server", server, parse_socket_addr_53);
            let zone = self.required(&t.zone, "zone", "dns", &span);
            let zone = self.parsed(&t.zone, "zone", zone, parse_domain);
            let name = self.required(&t.name, "name", "dns", &span);
            let name = self.parsed(&t.name, "name", name, parse_domain);
            if let (Some(zone), Some(name)) = (&zone, &name)
                && !in_zone(name, zone)
            {
                let span = t.name.as_ref().map_or(0..0, |f| f.span.clone());
                self.problem(span, format!("`name`: {name} is not inside zone {zone}"));
            }
            let ttl = self.get(&t.ttl, "ttl").unwrap_or(300);
            let key = match &t.tsig_key_file {
                None => {
                    self.problem(span.clone(), "missing key `tsig_key_file` in [dns]");
                    None
                }
                Some(_) => self.secret_file(&t.tsig_key_file, "tsig_key_file"),
            };
            let zone_file = self.get(&t.zone_file, "zone_file").map(|p| self.path(&p));
            let reload_command = self.get(&t.reload_command, "reload_command").unwrap_or_default();
            if zone_file.is_some() && reload_command.is_empty() {
                let span = t.zone_file.as_ref().map_or(0..0, |f| f.span.clone());
                self.problem(
                    span,
                    "`zone_file` needs `reload_command` (e.g. [\"rndc\", \"reload\", \"example.org\"]) so the server loads the edit",
                );
            }
            Some(DnsRecord {
                server: server?,
                zone: zone?,
                name: name?,
                ttl,
                tsig_key_file: key?,
                zone_file,
                reload_command,
            })
        });

        let takeover = match &raw.takeover {
            Some(t) => {
                let f = &t.get_ref().mode;
                let mode = self.get(f, "mode");
                self.parsed(f, "mode", mode, |m| match m.as_str() {
                    "vip" => Ok(TakeoverMode::Vip),
                    "dns" => Ok(TakeoverMode::Dns),
                    other => Err(format!(
                        "unknown takeover mode {other:?}: use \"vip\" or \"dns\""
                    )),
                })
            }
            None if raw.dns.is_some() && raw.vip.is_none() => Some(TakeoverMode::Dns),
            None => Some(TakeoverMode::Vip),
        };
        if let (Some(TakeoverMode::Vip), Some(vip), Some(p), Some(raw_primary)) =
            (takeover, &vip, &primary, &raw.primary)
            && p.probe_target() == vip.address
        {
            let t = raw_primary.get_ref();
            let field = t.probe_address.as_ref().or(t.address.as_ref());
            self.problem(
                field.map_or(raw_primary.span(), |f| f.span.clone()),
                format!(
                    "[primary] is probed at {}, the [vip] address: after a takeover mailserver2 \
                     holds it and would probe itself, see the primary answer and fail back while \
                     mailserver1 is down; set `probe_address` to mailserver1's own address",
                    vip.address
                ),
            );
        }
        let mode_span = raw.takeover.as_ref().map_or(0..0, Spanned::span);
        match takeover {
            Some(TakeoverMode::Vip) if raw.vip.is_none() => self.problem(
                mode_span,
                "takeover mode \"vip\" needs a [vip] table (address/prefix and interface)",
            ),
            Some(TakeoverMode::Dns) if raw.dns.is_none() => self.problem(
                mode_span,
                "takeover mode \"dns\" needs a [dns] table (server, zone, name, tsig_key_file)",
            ),
            _ => {}
        }

        let probe = self.probe(&raw);
        if let (Some(d), Some(p), Some(t)) = (&dns, &probe, &raw.dns) {
            self.ttl_within_grace(d.ttl, p.takeover_grace, &t.get_ref().ttl);
        }
        let tls = self.tls(&raw);
        let migrate = self.migrate(&raw);
        let migrate_all = self.migrate_all(&raw);
        let takeover_state_file = raw.takeover.as_ref().and_then(|t| {
            let text = self.get(&t.get_ref().state_file, "state_file")?;
            Some(self.path(&text))
        });
        let hooks = self.hooks(&raw);
        let mta = self.mta(&raw);
        let watch = self.watch(&raw);
        let migrate_state_dir = raw.migrate.as_ref().and_then(|m| {
            let text = self.get(&m.get_ref().state_dir, "state_dir")?;
            Some(self.path(&text))
        });
        let m = raw.migrate.as_ref().map(|m| m.get_ref());
        let migrate_source = self.migrate_source(&raw);
        let migrate_source_admin = m
            .and_then(|m| m.source_admin.as_ref())
            .and_then(|a| self.admin(a, "source_admin"));
        let migrate_dest_admin = m
            .and_then(|m| m.dest_admin.as_ref())
            .and_then(|a| self.admin(a, "dest_admin"));

        Some(Site {
            domain: domain?,
            primary: primary?,
            backup: backup?,
            relay: relay.flatten(),
            takeover: takeover?,
            vip,
            dns,
            probe: probe?,
            tls: tls?,
            migrate,
            migrate_all: migrate_all?,
            migrate_state_dir,
            migrate_source: migrate_source?,
            migrate_source_admin,
            migrate_dest_admin,
            takeover_state_file,
            hooks: hooks?,
            mta: mta?,
            watch: watch?,
            secrets: Vec::new(),
            vip_interface_at: None,
        })
    }

    /// Resolvers cache the record for its TTL, so a TTL longer than the grace makes the
    /// takeover's wait pointless: senders would keep mailserver1's address for longer than the
    /// outage posta waited out before moving them.
    fn ttl_within_grace(&mut self, ttl: u32, grace: Duration, field: &Option<Field<u32>>) {
        if u64::from(ttl) <= grace.as_secs() {
            return;
        }
        let span = field.as_ref().map_or(0..0, |f| f.span.clone());
        self.problem(
            span,
            format!(
                "`ttl`: {ttl}s is longer than [probe] `takeover_grace` {}: resolvers would keep \
                 the old address longer than the grace; lower it to at most {}",
                duration::format(grace),
                grace.as_secs()
            ),
        );
    }

    fn watch(&mut self, raw: &RawSite) -> Option<WatchSettings> {
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

    /// `[mta]`: every key typed and checked here, so `posta config check` finds mistakes
    /// before the mta starts. Missing keys stay unset (the flags or the defaults decide).
    fn mta(&mut self, raw: &RawSite) -> Option<Option<MtaSection>> {
        let Some(t) = &raw.mta else {
            return Some(None);
        };
        let t = t.get_ref();
        let ok_before = self.problems.len();
        let addrs = |v: &mut Self, f: &Option<Field<Vec<String>>>, key: &str| {
            let list = v.get(f, key).unwrap_or_default();
            v.parsed(f, key, Some(list), |l| {
                l.iter()
                    .map(|a| {
                        a.parse::<SocketAddr>().map_err(|_| {
                            format!("{a:?} is not an address with a port (0.0.0.0:25, [::]:25)")
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_default()
        };
        let path =
            |v: &mut Self, f: &Option<Field<String>>, key: &str| v.get(f, key).map(|p| v.path(&p));
        let dur = |v: &mut Self, f: &Option<Field<String>>, key: &str| {
            let text = v.get(f, key);
            text.as_ref()?;
            v.parsed(f, key, text, |s| duration::parse(&s))
        };
        let relay_tls = self.get(&t.relay_tls, "relay_tls");
        let relay_tls = self.parsed(&t.relay_tls, "relay_tls", relay_tls, |m| match m.as_str() {
            "require" | "may" | "none" => Ok(m),
            _ => Err(format!("{m:?}: use \"require\", \"may\" or \"none\"")),
        });
        let section = MtaSection {
            listen: addrs(self, &t.listen, "listen"),
            hostname: self.get(&t.hostname, "hostname"),
            domains: self.get(&t.domains, "domains").unwrap_or_default(),
            relay_domains: self
                .get(&t.relay_domains, "relay_domains")
                .unwrap_or_default(),
            maildir: path(self, &t.maildir, "maildir"),
            maildir_owner: self.get(&t.maildir_owner, "maildir_owner"),
            queue: path(self, &t.queue, "queue"),
            control_socket: path(self, &t.control_socket, "control_socket"),
            relay_to: self.get(&t.relay_to, "relay_to"),
            relay_tls,
            access: path(self, &t.access, "access"),
            virtusertable: path(self, &t.virtusertable, "virtusertable"),
            local_host_names: path(self, &t.local_host_names, "local_host_names"),
            recipients: path(self, &t.recipients, "recipients"),
            verify_recipients: self
                .get(&t.verify_recipients, "verify_recipients")
                .unwrap_or(false),
            pop3_listen: addrs(self, &t.pop3_listen, "pop3_listen"),
            pop3s_listen: addrs(self, &t.pop3s_listen, "pop3s_listen"),
            pop3_users: self.secret_file(&t.pop3_users, "pop3_users"),
            tls_cert: path(self, &t.tls_cert, "tls_cert"),
            tls_key: self.secret_file(&t.tls_key, "tls_key"),
            vip_tls_cert: path(self, &t.vip_tls_cert, "vip_tls_cert"),
            vip_tls_key: self.secret_file(&t.vip_tls_key, "vip_tls_key"),
            max_message_size: self.get(&t.max_message_size, "max_message_size"),
            max_recipients: self.get(&t.max_recipients, "max_recipients"),
            max_connections: self.get(&t.max_connections, "max_connections"),
            max_per_ip: self.get(&t.max_per_ip, "max_per_ip"),
            timeout: dur(self, &t.timeout, "timeout"),
            retry_min: dur(self, &t.retry_min, "retry_min"),
            retry_max: dur(self, &t.retry_max, "retry_max"),
            lifetime: dur(self, &t.lifetime, "lifetime"),
            min_free: self.get(&t.min_free, "min_free"),
        };
        (self.problems.len() == ok_before).then_some(Some(section))
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

    fn probe(&mut self, raw: &RawSite) -> Option<ProbeSettings> {
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

    fn tls(&mut self, raw: &RawSite) -> Option<TlsSettings> {
        let d = TlsSettings::default();
        let Some(t) = &raw.tls else {
            return Some(d);
        };
        let t = t.get_ref();
        let ca_file = self.get(&t.ca_file, "ca_file").map(|p| self.path(&p));
        if let (Some(path), Some(f)) = (&ca_file, &t.ca_file)
            && !path.is_file()
        {
            self.problem(
                f.span.clone(),
                format!("`ca_file`: {} is not a readable file", path.display()),
            );
        }
        Some(TlsSettings {
            ca_file,
            cert_warning_days: self
                .get(&t.cert_warning_days, "cert_warning_days")
                .unwrap_or(d.cert_warning_days),
            cert_critical_days: self
                .get(&t.cert_critical_days, "cert_critical_days")
                .unwrap_or(d.cert_critical_days),
        })
    }

    fn hooks(&mut self, raw: &RawSite) -> Option<super::Hooks> {
        let mut hooks = super::Hooks {
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
            hooks.timeout = self.parsed(&h.timeout, "timeout", Some(t), |t| {
                super::parse_duration(&t)
            })?;
        }
        Some(hooks)
    }

    fn migrate(&mut self, raw: &RawSite) -> Vec<MigrateAccount> {
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
    fn migrate_all(&mut self, raw: &RawSite) -> Option<Option<AddressTemplate>> {
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
    fn migrate_source(&mut self, raw: &RawSite) -> Option<MigrateSource> {
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

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca_file: None,
            cert_warning_days: 14,
            cert_critical_days: 3,
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

/// Why a site-file value (a name, an address, a service) was refused; each message quotes
/// what was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not a valid domain name")]
    Domain(String),
    #[error("{0:?} needs a prefix length, e.g. \"192.0.2.10/24\"")]
    NoPrefix(String),
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error("prefix length {prefix:?} must be 0..={max}")]
    Prefix { prefix: String, max: u8 },
    #[error("{0:?} is not an address like \"192.0.2.53\" or \"192.0.2.53:5353\"")]
    SocketAddr(String),
    #[error("unknown service {name:?} (known: {known})")]
    Service { name: String, known: String },
    #[error("{text:?}: port {port:?} is not a number from 1 to 65535")]
    Port { text: String, port: String },
    #[error("{text:?}: starttls must be auto, require or no, not {value:?}")]
    StartTls { text: String, value: String },
    #[error("{text:?}: unknown option {query:?} (only starttls=...)")]
    Option { text: String, query: String },
}

/// A DNS name: letters, digits, hyphens and dots; no empty labels. A trailing dot is dropped.
pub fn parse_domain(text: String) -> Result<String, ValueError> {
    let name = text.strip_suffix('.').unwrap_or(&text).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(name)
    } else {
        Err(ValueError::Domain(text))
    }
}

/// `192.0.2.10/24` → address and prefix length.
fn parse_prefixed(text: String) -> Result<(IpAddr, u8), ValueError> {
    let Some((addr, prefix)) = text.split_once('/') else {
        return Err(ValueError::NoPrefix(text));
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| ValueError::Address(addr.to_string()))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max => Ok((addr, p)),
        _ => Err(ValueError::Prefix {
            prefix: prefix.to_string(),
            max,
        }),
    }
}

/// `192.0.2.53`, `192.0.2.53:5353` or `[2001:db8::53]:53`; port 53 by default.
pub fn parse_socket_addr_53(text: String) -> Result<SocketAddr, ValueError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(ValueError::SocketAddr(text)),
    }
}

/// A service entry: `smtp`, `imap:10143`, `pop3s:995`, optionally `?starttls=require|no|auto`.
pub fn parse_service(text: &str) -> Result<Service, ValueError> {
    let (head, query) = match text.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (text, None),
    };
    let (name, port) = match head.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (head, None),
    };
    let scheme = Scheme::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Scheme::ALL.iter().map(|s| s.name()).collect();
        ValueError::Service {
            name: name.to_string(),
            known: known.join(", "),
        }
    })?;
    let port = match port {
        None => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(ValueError::Port {
                    text: text.to_string(),
                    port: p.to_string(),
                });
            }
        },
    };
    let mut starttls = StartTls::Auto;
    if let Some(query) = query {
        match query.split_once('=') {
            Some(("starttls", v)) => {
                starttls = StartTls::parse(v).ok_or_else(|| ValueError::StartTls {
                    text: text.to_string(),
                    value: v.to_string(),
                })?;
            }
            _ => {
                return Err(ValueError::Option {
                    text: text.to_string(),
                    query: query.to_string(),
                });
            }
        }
    }
    Ok(Service {
        scheme,
        port,
        starttls,
    })
}
