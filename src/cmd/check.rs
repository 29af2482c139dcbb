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
use crate::mirror::status::AccountLag;
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
    let (jobs, mirror) = match plan(config, &args) {
        Ok(planned) => planned,
        Err(e) => return unknown(output, &e),
    };
    let mut reports = run::all(jobs).await;
    reports.extend(mirror);
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

/// Turns the arguments into jobs, and with the backup among the roles and `[mirror]` in the
/// site file the mirror's lag, read from its state; any error means nothing is probed.
fn plan(
    config: Option<PathBuf>,
    args: &CheckArgs,
) -> Result<(Vec<Job>, Option<ProbeReport>), String> {
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
    let mut mirror = None;
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
            if role == "backup"
                && let Some(lags) = super::status::mirror_lags(site)
            {
                mirror = Some(mirror_report(&lags, site.mirror.max_lag));
            }
        }
    }
    for u in urls {
        jobs.push(Job::Service(
            url::parse(u, &defaults).map_err(|e| e.to_string())?,
        ));
    }
    Ok((jobs, mirror))
}

/// `backup mirror`: WARNING when an account's last complete pass is older than `[mirror]
/// max_lag` (or it never had one), UNKNOWN when the accounts or a state cannot be read.
fn mirror_report(lags: &Result<Vec<AccountLag>, String>, max_lag: Duration) -> ProbeReport {
    let started = std::time::Instant::now();
    let (status, summary) = match lags {
        Err(e) => (Status::Unknown, format!("cannot list the accounts: {e}")),
        Ok(lags) => {
            let limit = max_lag.as_secs();
            let unreadable: Vec<&AccountLag> = lags.iter().filter(|l| l.error.is_some()).collect();
            let stale: Vec<&AccountLag> = lags.iter().filter(|l| l.stale(limit)).collect();
            let list = |v: &[&AccountLag]| {
                v.iter()
                    .map(|l| format!("{} {}", l.account, l.describe()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let max = config::format_duration(max_lag);
            if !unreadable.is_empty() {
                (
                    Status::Unknown,
                    format!("mirror state unreadable: {}", list(&unreadable)),
                )
            } else if !stale.is_empty() {
                (
                    Status::Warning,
                    format!(
                        "{} of {} accounts mirrored longer ago than max_lag {max}: {}",
                        stale.len(),
                        lags.len(),
                        list(&stale)
                    ),
                )
            } else {
                let worst = lags.iter().filter_map(|l| l.lag_seconds).max().unwrap_or(0);
                (
                    Status::Ok,
                    format!(
                        "{} accounts mirrored, the oldest pass {worst}s ago (max_lag {max})",
                        lags.len()
                    ),
                )
            }
        }
    };
    ProbeReport {
        probe: "backup mirror".into(),
        protocol: "mirror",
        status,
        latency: started.elapsed(),
        summary,
        steps: Vec::new(),
        tls: None,
        capabilities: Vec::new(),
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::mirror_report;
    use crate::health::Status;
    use crate::mirror::status::AccountLag;

    fn lag(account: &str, lag: Option<u64>) -> AccountLag {
        AccountLag {
            account: account.into(),
            last_pass: lag.map(|l| 1000 - l),
            lag_seconds: lag,
            pending: 0,
            error: None,
        }
    }

    #[test]
    fn the_mirror_warns_past_max_lag_and_names_the_late_accounts() {
        let max = Duration::from_secs(180);
        let fresh = mirror_report(&Ok(vec![lag("alice", Some(30))]), max);
        assert_eq!(fresh.status, Status::Ok, "{}", fresh.summary);
        assert_eq!(fresh.probe, "backup mirror");
        let late = mirror_report(
            &Ok(vec![
                lag("alice", Some(30)),
                lag("bob", Some(181)),
                lag("carol", None),
            ]),
            max,
        );
        assert_eq!(late.status, Status::Warning);
        assert_eq!(
            late.summary,
            "2 of 3 accounts mirrored longer ago than max_lag 3m: bob 3m1s, carol never"
        );
        let broken = AccountLag {
            error: Some("damaged".into()),
            ..lag("dave", None)
        };
        assert_eq!(
            mirror_report(&Ok(vec![broken]), max).status,
            Status::Unknown
        );
    }
}
