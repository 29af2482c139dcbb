//! `posta takeover` / `posta failback`: build the job from flags and the site file, run it,
//! print what happened, exit 0 when the address (or record) is where it should be (a post hook
//! that failed after that is a warning, not a failure).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{DnsArgs, GarpMode, ModeArgs, TakeoverArgs, VipArgs};
use crate::config::{self, Site, TakeoverMode};
use crate::health::Scheme;
use crate::takeover::action::{self, Common, DnsJob, DnsWhere, MirrorView, Outcome, VipJob};
use crate::takeover::dns::{self, Record};
use crate::takeover::hooks::Hooks;
use crate::takeover::state::{self, Action};
use crate::takeover::vip::{AnnounceMode, AnnounceSettings, ProbeSettings, Vip};

pub async fn execute(config: Option<PathBuf>, args: TakeoverArgs, failback: bool) -> u8 {
    let site = match site(config) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let common = Common {
        hooks: site
            .as_ref()
            .map(|s| s.hooks.clone())
            .unwrap_or_else(|| Hooks {
                timeout: std::time::Duration::from_secs(30),
                ..Hooks::default()
            }),
        state_file: state_file(args.state_file.clone(), site.as_ref()),
        dry_run: args.dry_run,
        step_timeout: args.timeout,
        host: config::default_helo(),
    };
    let mode = match (&args.mode, site.as_ref().map(|s| s.takeover)) {
        (Some(m), _) => m,
        (None, Some(TakeoverMode::Vip)) => &ModeArgs::Vip(default_vip_args()),
        (None, Some(TakeoverMode::Dns)) => &ModeArgs::Dns(default_dns_args()),
        (None, None) => {
            return usage(
                "no site file to take the mode from: name it, e.g. posta takeover vip --address \
                 10.0.0.25/24 --dev eth0",
            );
        }
    };
    let mut outcome = match mode {
        ModeArgs::Vip(v) => {
            if v.reclaim && !failback {
                return usage("--reclaim belongs to failback (run on mailserver1)");
            }
            let job = match vip_job(v, site.as_ref()) {
                Ok(j) => j,
                Err(e) => return usage(&e),
            };
            let (mut outcome, announcement) = if failback && !v.reclaim {
                action::vip_release(&job, &common).await
            } else {
                let what = if failback {
                    Action::Reclaim
                } else {
                    Action::Takeover
                };
                action::vip_take(&job, &common, what).await
            };
            if !failback {
                outcome.mirror = site.as_ref().map(mirror_view);
            }
            hold_mirror(site.as_ref(), &common, &outcome);
            notices(site.as_ref(), &common, &mut outcome).await;
            show(&outcome, args.json);
            if let Some(a) = announcement {
                if a.is_pending() {
                    eprintln!("posta: sending the second gratuitous ARP burst before exiting");
                }
                if let Err(e) = a.finish().await {
                    eprintln!("posta: second announcement burst failed: {e}");
                }
            }
            return code(&outcome);
        }
        ModeArgs::Dns(d) => {
            let job = match dns_job(d, site.as_ref(), failback, &common.state_file) {
                Ok(j) => j,
                Err(e) => return usage(&e),
            };
            let what = if failback {
                Action::Failback
            } else {
                Action::Takeover
            };
            action::dns_swap(&job, &common, what).await
        }
    };
    if !failback {
        outcome.mirror = site.as_ref().map(mirror_view);
    }
    hold_mirror(site.as_ref(), &common, &outcome);
    notices(site.as_ref(), &common, &mut outcome).await;
    show(&outcome, args.json);
    code(&outcome)
}

/// Once mailserver2 serves users, the mirror waits for the return ([`crate::mirror::hold`]).
fn hold_mirror(site: Option<&Site>, common: &Common, outcome: &Outcome) {
    if let Some(site) = site
        && !common.dry_run
        && outcome.ok()
        && outcome.action == Action::Takeover
    {
        super::mirror::hold_after_takeover(site);
    }
}

/// Tells users (`[notify]`) once the change is in effect, whether this run made it or found it
/// made: a run after a crash mid-send tells those not yet told, the rate limit skips the rest.
async fn notices(site: Option<&Site>, common: &Common, outcome: &mut Outcome) {
    let Some(site) = site else { return };
    if common.dry_run || !outcome.ok() {
        return;
    }
    let view = super::notify::view_of(outcome.mirror.as_ref());
    let summary = super::notify::after(
        site,
        &common.state_file,
        outcome.action,
        common.step_timeout,
        view,
    )
    .await;
    if let Some(summary) = summary {
        outcome.add_notices(summary);
    }
}

/// What users find on mailserver2 after this takeover: no mirror without `[mirror]`, else
/// fresh or stale by each account's last complete pass and `[mirror] max_lag`.
pub(super) fn mirror_view(site: &Site) -> MirrorView {
    let Some(lags) = super::status::mirror_lags(site) else {
        return MirrorView::None;
    };
    let now = crate::clock::unix_now();
    let Ok(lags) = lags else {
        return MirrorView::Stale {
            last_pass: None,
            lag_seconds: None,
            accounts: Vec::new(),
        };
    };
    let max = site.mirror.max_lag.as_secs();
    let stale: Vec<String> = lags
        .iter()
        .filter(|l| l.stale(max) || l.error.is_some())
        .map(|l| l.account.clone())
        .collect();
    let last_pass = crate::mirror::status::oldest_pass(&lags);
    let lag_seconds = last_pass.map(|t| now.saturating_sub(t));
    match (last_pass, lag_seconds) {
        (Some(last_pass), Some(lag_seconds)) if stale.is_empty() => MirrorView::Fresh {
            last_pass,
            lag_seconds,
        },
        _ => MirrorView::Stale {
            last_pass,
            lag_seconds,
            accounts: stale,
        },
    }
}

fn show(outcome: &Outcome, json: bool) {
    // A failed post hook leaves the action done (exit 0): said on stderr whatever the format,
    // where `posta watch` finds it in its child's output and logs it at WARN.
    for w in &outcome.warnings {
        eprintln!("posta: warning: {w}");
    }
    if json {
        match serde_json::to_string_pretty(outcome) {
            Ok(j) => print(&format!("{j}\n")),
            Err(e) => eprintln!("posta: cannot encode the outcome: {e}"),
        }
    } else {
        print(&outcome.lines());
    }
}

fn code(outcome: &Outcome) -> u8 {
    if outcome.ok() { 0 } else { EXIT_FAILURE }
}

fn usage(message: &str) -> u8 {
    eprintln!("posta: {message}");
    EXIT_USAGE
}

/// The site file when one is named (`--config`, `POSTA_CONFIG`) or at the default path; ad hoc
/// flags work without one.
pub fn site(config: Option<PathBuf>) -> Result<Option<Site>, String> {
    let path = match config {
        Some(p) => p,
        None if Path::new(config::DEFAULT_PATH).exists() => PathBuf::from(config::DEFAULT_PATH),
        None => return Ok(None),
    };
    config::load(&path).map(Some).map_err(|e| e.to_string())
}

pub fn state_file(flag: Option<PathBuf>, site: Option<&Site>) -> PathBuf {
    flag.or_else(|| site.and_then(|s| s.takeover_state_file.clone()))
        .unwrap_or_else(|| PathBuf::from(state::DEFAULT_PATH))
}

fn default_vip_args() -> VipArgs {
    VipArgs {
        address: None,
        dev: None,
        label: None,
        force: false,
        reclaim: false,
        probe_count: 3,
        probe_interval: std::time::Duration::from_millis(50),
        probe_wait: std::time::Duration::from_millis(100),
        garp_count: 5,
        garp_interval: std::time::Duration::from_millis(200),
        garp_mode: GarpMode::Request,
        second_burst: std::time::Duration::from_secs(5),
        smtp_port: None,
    }
}

fn default_dns_args() -> DnsArgs {
    DnsArgs {
        server: None,
        zone: None,
        name: None,
        expect: Vec::new(),
        to: Vec::new(),
        key_file: None,
        ttl: None,
        zone_file: None,
        reload: Vec::new(),
    }
}

/// The site's virtual IP when takeover moves one (mode "vip"): what `posta status` and the
/// watch probe for holders.
pub fn site_vip(site: &Site) -> Result<Option<Vip>, String> {
    match (site.takeover, &site.vip) {
        (crate::config::TakeoverMode::Vip, Some(v)) => {
            Vip::new(v.address, v.prefix, v.interface.clone(), v.label.clone())
                .map(Some)
                .map_err(|e| e.to_string())
        }
        _ => Ok(None),
    }
}

fn vip_job(v: &VipArgs, site: Option<&Site>) -> Result<VipJob, String> {
    let sv = site.and_then(|s| s.vip.as_ref());
    let (address, prefix) = match (&v.address, sv) {
        (Some(text), _) => parse_prefixed(text)?,
        (None, Some(sv)) => (sv.address, sv.prefix),
        (None, None) => {
            return Err("--address ADDR/PREFIX is needed (no [vip] in a site file)".into());
        }
    };
    let dev = v
        .dev
        .clone()
        .or_else(|| sv.map(|s| s.interface.clone()))
        .ok_or("--dev IF is needed (no [vip] in a site file)")?;
    let label = v.label.clone().or_else(|| sv.and_then(|s| s.label.clone()));
    let vip = Vip::new(address, prefix, dev, label).map_err(|e| e.to_string())?;
    let smtp_port = v
        .smtp_port
        .or_else(|| {
            site.and_then(|s| s.primary.services.iter().find(|x| x.scheme == Scheme::Smtp))
                .map(|x| x.port)
        })
        .unwrap_or(25);
    Ok(VipJob {
        vip,
        probe: ProbeSettings {
            count: v.probe_count,
            interval: v.probe_interval,
            wait: v.probe_wait,
        },
        announce: AnnounceSettings {
            count: v.garp_count,
            interval: v.garp_interval,
            mode: match v.garp_mode {
                GarpMode::Request => AnnounceMode::Request,
                GarpMode::Reply => AnnounceMode::Reply,
            },
            second_burst_after: (!v.second_burst.is_zero()).then_some(v.second_burst),
        },
        force: v.force,
        smtp_port,
        // Only a site file says where mailserver1 is apart from the VIP.
        mailserver1: site
            .map(|s| s.primary.probe_target())
            .filter(|a| *a != address),
    })
}

fn parse_prefixed(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = text.split_once('/').ok_or_else(|| {
        format!("--address {text:?}: write it with its prefix, e.g. 10.0.0.25/24")
    })?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("--address {text:?}: {addr:?} is not an IP address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| format!("--address {text:?}: {prefix:?} is not a prefix length"))?;
    Ok((addr, prefix))
}

fn dns_job(
    d: &DnsArgs,
    site: Option<&Site>,
    failback: bool,
    state_file: &Path,
) -> Result<DnsJob, String> {
    let sd = site.and_then(|s| s.dns.as_ref());
    let server: SocketAddr = match (&d.server, sd) {
        (Some(text), _) => parse_server(text)?,
        (None, Some(sd)) => sd.server,
        (None, None) => return Err("--server HOST:PORT is needed (no [dns] in a site file)".into()),
    };
    let zone = d
        .zone
        .clone()
        .or_else(|| sd.map(|s| s.zone.clone()))
        .ok_or("--zone is needed (no [dns] in a site file)")?;
    let name = d
        .name
        .clone()
        .or_else(|| sd.map(|s| s.name.clone()))
        .ok_or("--name is needed (no [dns] in a site file)")?;
    let ttl = d.ttl.or(sd.map(|s| s.ttl)).unwrap_or(300);
    let mut record = Record::new(&zone, &name, ttl).map_err(|e| e.to_string())?;
    if failback && d.ttl.is_none() {
        // The site's `ttl` is the short one takeover wrote; failback gives the record back the
        // TTL its owner had set, which the takeover recorded.
        match state::State::load(state_file) {
            Ok(s) => {
                if let Some(t) = s
                    .holding(&action::dns_resource(&record))
                    .and_then(|h| h.original_ttl)
                {
                    record.ttl = t;
                }
            }
            Err(e) => eprintln!(
                "posta: {e}; writing TTL {} because the record's original TTL is unknown",
                record.ttl
            ),
        }
    }
    let (primary, backup) = match site {
        Some(s) => (vec![s.primary.address], vec![s.backup.address]),
        None => (Vec::new(), Vec::new()),
    };
    let (default_expect, default_to) = if failback {
        (backup, primary)
    } else {
        (primary, backup)
    };
    let expect = if d.expect.is_empty() {
        default_expect
    } else {
        d.expect.clone()
    };
    let to = if d.to.is_empty() {
        default_to
    } else {
        d.to.clone()
    };
    if expect.is_empty() || to.is_empty() {
        return Err(
            "--expect ADDR and --to ADDR are needed (no site file to take them from)".into(),
        );
    }
    let zone_file = d
        .zone_file
        .clone()
        .or_else(|| sd.and_then(|s| s.zone_file.clone()));
    let how = match zone_file {
        Some(path) => {
            let reload = if d.reload.is_empty() {
                sd.map(|s| s.reload_command.clone()).unwrap_or_default()
            } else {
                d.reload.clone()
            };
            if reload.is_empty() {
                return Err("--zone-file needs --reload (the command that loads the zone)".into());
            }
            DnsWhere::ZoneFile { path, reload }
        }
        None => {
            let (key_file, from) = match (&d.key_file, sd) {
                (Some(f), _) => (f.clone(), "--key-file"),
                (None, Some(s)) => (s.tsig_key_file.clone(), "`tsig_key_file` in [dns]"),
                (None, None) => return Err("--key-file is needed (no [dns] in a site file)".into()),
            };
            let key = dns::read_key_file(&key_file).map_err(|e| format!("{e} ({from})"))?;
            DnsWhere::Update { key }
        }
    };
    Ok(DnsJob {
        server,
        record,
        how,
        expect,
        to,
    })
}

/// `host:port`, or an address alone for port 53.
fn parse_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "--server {text:?}: write an address, e.g. 192.0.2.53 or 127.0.0.1:5353"
    ))
}
