//! `posta keepalived config|notify`: posta as keepalived's check and notify script.

use std::path::PathBuf;
use std::time::Duration;

use tracing::{error, info, warn};

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{KeepalivedCommand, PairRole};
use crate::config::{self, Site};
use crate::takeover::hooks::{EventEnv, Moment};
use crate::takeover::state::{self, Action, Event, Lock, State};
use crate::watch::keepalived::{Step, VrrpState, config as render, decide};

pub async fn execute(config_path: Option<PathBuf>, cmd: KeepalivedCommand) -> u8 {
    let path = config_path.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let site = match config::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("posta keepalived: {e}");
            return EXIT_USAGE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("posta keepalived: cannot find this program: {e}");
            return EXIT_FAILURE;
        }
    };
    match cmd {
        KeepalivedCommand::Config { role, router_id } => {
            match render(&site, role == PairRole::Primary, &exe, &path, router_id) {
                Ok(text) => {
                    print(&text);
                    0
                }
                Err(e) => {
                    eprintln!("posta keepalived: {e}");
                    EXIT_USAGE
                }
            }
        }
        KeepalivedCommand::Notify {
            role,
            name,
            state: to,
            ..
        } => {
            let Some(to) = VrrpState::parse(&to) else {
                eprintln!("posta keepalived notify: unknown state {to:?}");
                return EXIT_USAGE;
            };
            notify(&site, &path, &exe, role, &name, to).await
        }
    }
}

async fn notify(
    site: &Site,
    path: &std::path::Path,
    exe: &std::path::Path,
    role: PairRole,
    name: &str,
    to: VrrpState,
) -> u8 {
    let state_file = super::takeover::state_file(None, Some(site));
    // keepalived may start notifications concurrently: one at a time, in arrival order. The
    // wait polls with sleeps, so it runs on the blocking pool, not on the runtime.
    let lock_path = state_file.clone();
    let locked = tokio::task::spawn_blocking(move || {
        Lock::acquire(&lock_path, Duration::from_secs(600)).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("the lock task failed: {e}")));
    let _lock = match locked {
        Ok(l) => l,
        Err(e) => {
            eprintln!("posta keepalived notify: {e}");
            return EXIT_FAILURE;
        }
    };
    let recorded = State::load(&state_file).unwrap_or_default();
    let held = recorded.holdings.iter().any(|h| h.holder == "backup");
    let step = decide(role == PairRole::Backup, held, to);
    let resource = match &site.vip {
        Some(v) => format!(
            "{}/{} on {} (VRRP {name})",
            v.address, v.prefix, v.interface
        ),
        None => format!("VRRP {name}"),
    };
    let (action, old, new, holder, pre, post) = match step {
        Step::Nothing => {
            info!(?to, held, "nothing to do");
            print(&format!("{name} {to:?}: nothing to do on this host\n"));
            return 0;
        }
        Step::Takeover => (
            Action::Takeover,
            "on mailserver1",
            "on mailserver2",
            "backup",
            Moment::PreTakeover,
            Moment::PostTakeover,
        ),
        Step::Failback => (
            Action::Failback,
            "on mailserver2",
            "on mailserver1",
            "primary",
            Moment::PreFailback,
            Moment::PostFailback,
        ),
    };
    let env = EventEnv {
        mode: "vrrp".into(),
        resource: resource.clone(),
        old: old.into(),
        new: new.into(),
        changed: true,
    };
    let mut code = 0;
    // keepalived has already moved the address: a failing pre hook cannot stop anything,
    // so it is reported and the rest still runs.
    for moment in [pre, post] {
        if let Err(e) = site.hooks.run(moment, &env).await {
            error!(error = %e, "hook failed");
            code = EXIT_FAILURE;
        }
    }
    let event = Event {
        time: state::now(),
        action,
        mode: "vrrp".into(),
        resource,
        old: old.into(),
        new: new.into(),
        host: site.backup.name.clone(),
        changed: true,
    };
    let saved = State::load(&state_file).and_then(|mut s| {
        s.record(event, holder);
        s.save(&state_file)
    });
    if let Err(e) = saved {
        error!(error = %e, "the change is in effect but was not recorded");
        code = EXIT_FAILURE;
    }
    if step == Step::Failback {
        if let Some(mta) = site.mta.as_ref().filter(|m| m.queue.is_some()) {
            let socket = mta
                .control_socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::mta::settings::DEFAULT_CONTROL_SOCKET));
            match crate::mta::control::request_flush(&socket, None).await {
                Ok(()) => info!("mta queue flush requested"),
                Err(e) => warn!(error = %e, "cannot reach the mta to flush its queue"),
            }
        }
        if !site.migrate.is_empty() {
            let out = tokio::process::Command::new(exe)
                .arg("--config")
                .arg(path)
                .arg("migrate")
                .stdin(std::process::Stdio::null())
                .output()
                .await;
            match out {
                Ok(o) if o.status.success() => info!("posta migrate brought the mail home"),
                Ok(o) => {
                    error!(
                        stderr = %String::from_utf8_lossy(&o.stderr).trim(),
                        "posta migrate did not finish; run it by hand"
                    );
                    code = EXIT_FAILURE;
                }
                Err(e) => {
                    error!(error = %e, "cannot run posta migrate");
                    code = EXIT_FAILURE;
                }
            }
        }
    }
    print(&format!("{name} {to:?}: {action:?} handled\n"));
    code
}
