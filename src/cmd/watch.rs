//! `posta watch`: load the site, build the plan, take the lock, run the daemon with its
//! HTTP endpoint, reload on SIGHUP, stop on SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::cli::WatchArgs;
use crate::config::{self, Site};
use crate::health::TlsPolicy;
use crate::health::url::UrlDefaults;
use crate::watch::daemon::{Daemon, MirrorDuty, Plan, VipWatch};
use crate::watch::policy::Tuning;
use crate::watch::{DEFAULT_STATE_FILE, http};

pub async fn execute(config: Option<PathBuf>, args: WatchArgs) -> u8 {
    let path = config.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let plan = match plan(&path, args.witness) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("posta watch: {e}");
            return EXIT_USAGE;
        }
    };
    let site = match config::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("posta watch: {e}");
            return EXIT_USAGE;
        }
    };
    // A takeover onto an interface this host lacks would fail only when it is needed.
    if !args.witness && site.watch.auto_takeover {
        let problems = config::check_vip_interface(&site).problems;
        if let Some(p) = problems.first() {
            eprintln!("posta watch: {p}");
            return EXIT_USAGE;
        }
    }
    let state_file = args
        .state_file
        .clone()
        .or(site.watch.state_file.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_FILE));
    let _lock = match lock(&state_file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("posta watch: {e}");
            return EXIT_FAILURE;
        }
    };
    let mut daemon = Daemon::new(plan, state_file);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    if let Some(addr) = args.listen.or(site.watch.listen) {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("posta watch: cannot listen on {addr}: {e}");
                return EXIT_FAILURE;
            }
        };
        tokio::spawn(http::serve(
            listener,
            Arc::clone(&daemon.snapshot),
            stop_rx.clone(),
        ));
    }
    info!(
        state = daemon.policy.state.name(),
        witness = args.witness,
        "posta watch started"
    );
    let signals = tokio::spawn(signals(path, args.witness, stop_tx, reload_tx));
    daemon.run(stop_rx, reload_rx).await;
    signals.abort();
    0
}

/// Holds `STATE.lock` for the life of the process: one watch per site.
fn lock(state_file: &Path) -> Result<std::fs::File, String> {
    super::exclusive_lock(
        &state_file.with_extension("lock"),
        "another posta watch runs for this site",
    )
}

/// SIGHUP: a new plan from the site file, or the old one kept with the reason logged.
/// SIGTERM/SIGINT: stop after the current round.
async fn signals(
    path: PathBuf,
    witness: bool,
    stop: watch::Sender<bool>,
    reload: mpsc::UnboundedSender<Plan>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        let _ = stop.send(true);
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => match plan(&path, witness) {
                Ok(p) => { let _ = reload.send(p); }
                Err(e) => error!("reload failed, keeping the old site file: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!("stopping after the current round");
    let _ = stop.send(true);
}

/// The probes of the primary and the rules, from the site file.
fn plan(path: &Path, witness_only: bool) -> Result<Plan, String> {
    let site: Site = config::load(path).map_err(|e| e.to_string())?;
    let defaults = UrlDefaults {
        tls: TlsPolicy {
            ca_file: site.tls.ca_file.clone(),
            insecure: false,
            server_name: None,
            warn_days: i64::from(site.tls.cert_warning_days),
            crit_days: i64::from(site.tls.cert_critical_days),
        },
        timeout: site.probe.timeout,
        helo: site.probe.helo.clone(),
        password: None,
    };
    let mut jobs = super::check::role_jobs(&site, "primary", &defaults)?;
    // The watch runs on mailserver2 (or a witness): a greeting with this host's own name is
    // its own answer, never mailserver1's.
    let own = config::default_helo();
    if !own.eq_ignore_ascii_case(&site.primary.name) {
        for job in &mut jobs {
            if let crate::health::run::Job::Service(t) = job {
                t.foreign_names.push(own.clone());
            }
        }
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    Ok(Plan {
        jobs,
        interval: site.probe.interval,
        tuning: Tuning {
            fall: site.probe.fall,
            rise: site.probe.rise,
            grace: site.probe.takeover_grace,
            auto_takeover: site.watch.auto_takeover,
            auto_failback: site.watch.auto_failback,
        },
        witnesses: site.watch.witnesses.clone(),
        hooks: site.hooks.clone(),
        takeover_state: super::takeover::state_file(None, Some(&site)),
        exe,
        config: path.to_path_buf(),
        queue: site.mta.as_ref().and_then(|m| m.queue.clone()),
        migrate: !site.migrate.is_empty() || site.migrate_all.is_some(),
        sweep_interval: site.watch.sweep_interval,
        maildir: site.mta.as_ref().and_then(|m| m.maildir.clone()),
        witness_only,
        // A witness off the VIP's LAN cannot see who answers there.
        vip: super::takeover::site_vip(&site)?
            .filter(|vip| !witness_only || crate::takeover::vip::on_link(vip))
            .map(|vip| VipWatch {
                vip,
                mailserver1: site.primary.probe_target(),
                rightful: config::this_host(&site) == Some(config::Role::Primary),
            }),
        mirror: mirror_duty(&site),
    })
}

/// With `[mirror]` and accounts to mirror: the watch's mirror duty.
fn mirror_duty(site: &Site) -> Option<MirrorDuty> {
    if !site.mirror.enabled || (site.migrate.is_empty() && site.migrate_all.is_none()) {
        return None;
    }
    // The accounts only name the lags shown: the passes run whatever this says.
    let accounts = super::migrate::site_accounts(site).unwrap_or_else(|e| {
        warn!("the mirror's lag per account is not shown: {e}");
        Vec::new()
    });
    Some(MirrorDuty {
        interval: site.mirror.interval,
        state_dir: site
            .mirror
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::mirror::DEFAULT_STATE_DIR)),
        accounts: accounts.into_iter().map(|a| a.user).collect(),
    })
}
