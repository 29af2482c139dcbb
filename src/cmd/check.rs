//! `posta check`: probe site-file roles and URLs concurrently; report; exit with the worst
//! Nagios status.

use std::path::PathBuf;
use std::time::Duration;

use super::print;
use crate::cli::CheckArgs;
use crate::config::{self, Role, Site};
use crate::health::dns::DnsCheck;
use crate::health::run::{self, Job};
use crate::health::url::{self, UrlDefaults};
use crate::health::{Account, ProbeReport, Status, Target, TlsPolicy, report};
use crate::secret;

/// Default per-probe limit for ad hoc URLs without a site file.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
enum Output {
    Table,
    Json,
    Nagios,
}

pub async fn execute(config: Option<PathBuf>, args: CheckArgs) -> u8 {
    let output = if args.json {
        Output::Json
    } else if args.nagios {
        Output::Nagios
    } else {
        Output::Table
    };
    let jobs = match plan(config, &args) {
        Ok(jobs) => jobs,
        Err(e) => return unknown(output, &e),
    };
    let reports = run::all(jobs).await;
    let text = match output {
        Output::Table => report::table(&reports),
        Output::Json => report::json(&reports),
        Output::Nagios => report::nagios(&reports),
    };
    print(&text);
    worst(&reports).exit_code()
}

fn worst(reports: &[ProbeReport]) -> Status {
    Status::worst(reports.iter().map(|r| r.status))
}

/// A check that could not start is UNKNOWN (Nagios plugin guidelines), said where the caller
/// reads: the status line for --nagios, JSON for --json, stderr otherwise.
fn unknown(output: Output, message: &str) -> u8 {
    match output {
        Output::Nagios => print(&format!(
            "POSTA UNKNOWN - {}\n",
            message.replace(['\n', '|'], " ")
        )),
        Output::Json => print(&format!(
            "{}\n",
            serde_json::json!({"status": "unknown", "exit_code": 3, "error": message, "probes": []})
        )),
        Output::Table => eprintln!("posta check: {message}"),
    }
    Status::Unknown.exit_code()
}

/// Turns the arguments into jobs; any error means nothing is probed.
fn plan(config: Option<PathBuf>, args: &CheckArgs) -> Result<Vec<Job>, String> {
    let roles: Vec<&str> = args
        .targets
        .iter()
        .filter(|t| !t.contains("://"))
        .map(String::as_str)
        .collect();
    let urls: Vec<&str> = args
        .targets
        .iter()
        .filter(|t| t.contains("://"))
        .map(String::as_str)
        .collect();
    // The site file is needed for roles (and for none at all: then every role is probed);
    // URL-only checks read it only when it is named explicitly, for its TLS and timing defaults.
    let need_site = !roles.is_empty() || urls.is_empty();
    let site = if need_site || config.is_some() {
        Some(load(config)?)
    } else {
        None
    };
    let mut tls = TlsPolicy {
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        server_name: None,
        warn_days: 14,
        crit_days: 3,
    };
    if let Some(site) = &site {
        tls.ca_file = tls.ca_file.or_else(|| site.tls.ca_file.clone());
        tls.warn_days = i64::from(site.tls.cert_warning_days);
        tls.crit_days = i64::from(site.tls.cert_critical_days);
    }
    let timeout = args
        .timeout
        .or(site.as_ref().map(|s| s.probe.timeout))
        .unwrap_or(DEFAULT_TIMEOUT);
    let helo = args
        .helo
        .clone()
        .or(site.as_ref().map(|s| s.probe.helo.clone()))
        .unwrap_or_else(config::default_helo);
    if let Some(ca) = &tls.ca_file
        && !ca.is_file()
    {
        return Err(format!("CA file {} is not a readable file", ca.display()));
    }
    let password = match &args.password_file {
        Some(path) => Some(secret::read_password(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let defaults = UrlDefaults {
        tls,
        timeout,
        helo,
        password,
    };

    let mut jobs = Vec::new();
    if let Some(site) = &site {
        let all = ["primary", "backup", "relay", "dns"];
        let wanted: Vec<&str> = if roles.is_empty() && urls.is_empty() {
            all.iter()
                .copied()
                .filter(|r| *r != "relay" || site.relay.is_some())
                .collect()
        } else {
            roles
        };
        for role in wanted {
            jobs.extend(role_jobs(site, role, &defaults)?);
        }
    }
    for u in urls {
        jobs.push(Job::Service(
            url::parse(u, &defaults).map_err(|e| e.to_string())?,
        ));
    }
    Ok(jobs)
}

fn load(config: Option<PathBuf>) -> Result<Site, String> {
    let path = super::site_path(config);
    config::load(&path).map_err(|e| match e {
        config::ConfigError::Invalid { .. } => {
            format!("{e}\n(run `posta config check` for the full list)")
        }
        other => other.to_string(),
    })
}

pub(super) fn role_jobs(
    site: &Site,
    role: &str,
    defaults: &UrlDefaults,
) -> Result<Vec<Job>, String> {
    let role = match role {
        "dns" => return Ok(vec![Job::Dns(dns_check(site, defaults.timeout))]),
        "primary" => Role::Primary,
        "backup" => Role::Backup,
        "relay" => Role::Relay,
        other => {
            return Err(format!(
                "unknown target {other:?}: name primary, backup, relay, dns or a URL such as smtp://host:25"
            ));
        }
    };
    let server = site
        .server(role)
        .ok_or_else(|| format!("the site file has no [{}] table", role.name()))?;
    let account = match &server.probe_account {
        Some(a) => Some(Account {
            user: a.user.clone(),
            password: secret::read_password(&a.password_file)
                .map_err(|e| format!("{e} (`probe_password_file` in [{}])", role.name()))?,
            mechanism: Default::default(),
        }),
        None => None,
    };
    let foreign_names = foreign_names(site, server);
    let address = server.probe_target();
    Ok(server
        .services
        .iter()
        .map(|svc| {
            let mut tls = defaults.tls.clone();
            // Connect by address, verify the certificate for the server's name.
            tls.server_name = Some(server.name.clone());
            Job::Service(Target {
                label: format!(
                    "{} {}://{}",
                    role.name(),
                    svc.scheme,
                    std::net::SocketAddr::new(address, svc.port)
                ),
                scheme: svc.scheme,
                host: address.to_string(),
                port: svc.port,
                starttls: svc.starttls,
                tls,
                account: account.clone(),
                timeout: defaults.timeout,
                helo: defaults.helo.clone(),
                foreign_names: foreign_names.clone(),
            })
        })
        .collect())
}

/// The names of the site's other mail hosts: a greeting from `server` that names one of them
/// is that host answering in its place (see `health::smtp`).
fn foreign_names(site: &Site, server: &config::Server) -> Vec<String> {
    let mut names: Vec<String> = [&site.primary, &site.backup]
        .into_iter()
        .chain(site.relay.as_ref())
        .map(|s| s.name.clone())
        // `[mta]` is mailserver2's mini-MTA, which answers for the primary after a takeover.
        .chain(
            site.mta
                .as_ref()
                .filter(|_| server.role == Role::Primary)
                .and_then(|m| m.hostname.clone()),
        )
        .filter(|n| !n.eq_ignore_ascii_case(&server.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn dns_check(site: &Site, timeout: Duration) -> DnsCheck {
    DnsCheck {
        domain: site.domain.clone(),
        primary: (site.primary.name.clone(), site.primary.address),
        backup: (site.backup.name.clone(), site.backup.address),
        relay: site.relay.as_ref().map(|r| r.name.clone()),
        takeover: site.takeover,
        grace: site.probe.takeover_grace,
        server: site.dns.as_ref().map(|d| d.server),
        zone: site.dns.as_ref().map(|d| d.zone.clone()),
        timeout,
    }
}
