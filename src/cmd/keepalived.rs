//! `posta keepalived config|fifo|notify`: posta as keepalived's check and notify script.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{error, info, warn};

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{KeepalivedCommand, PairRole};
use crate::config::{self, Site};
use crate::takeover::hooks::{EventEnv, Moment};
use crate::takeover::state::{self, Action, Event, Lock, State};
use crate::watch::keepalived::{Step, VrrpState, config as render, decide, parse_fifo_line};
use crate::watch::notify_queue::{Notification, Queue, QueueError};

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
        KeepalivedCommand::Config {
            role,
            router_id,
            fifo,
        } => {
            match render(
                &site,
                role == PairRole::Primary,
                &exe,
                &path,
                router_id,
                &fifo,
            ) {
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
        KeepalivedCommand::Fifo { role, fifo: f } => {
            let ctx = Ctx {
                site: &site,
                path: &path,
                exe: &exe,
                role,
            };
            fifo(&ctx, &f).await
        }
        KeepalivedCommand::Notify {
            role,
            kind,
            name,
            state,
            ..
        } => {
            let Some(to) = VrrpState::parse(&state) else {
                eprintln!("posta keepalived notify: unknown state {state:?}");
                return EXIT_USAGE;
            };
            let ctx = Ctx {
                site: &site,
                path: &path,
                exe: &exe,
                role,
            };
            notify(&ctx, Notification { kind, name, state }, to).await
        }
    }
}

/// What the notification commands need from the command line and the site file.
struct Ctx<'a> {
    site: &'a Site,
    /// The site file, passed on to `posta migrate`.
    path: &'a Path,
    exe: &'a Path,
    role: PairRole,
}

/// `posta keepalived fifo`: keepalived's events in the order it wrote them, one at a time. A
/// failback's migration runs beside the reader, so a takeover arriving meanwhile is handled at
/// once; a failback arriving while one still runs starts the next when it ends (a second
/// `posta migrate` at the same time would find the accounts' journals locked).
async fn fifo(ctx: &Ctx<'_>, fifo: &Path) -> u8 {
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::signal::unix::{SignalKind, signal};
    // Read and write: the reader then never sees end-of-file while keepalived reopens the
    // FIFO (a reload), and the open does not wait for a writer.
    let rx = match tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(fifo)
    {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!(
                "posta keepalived fifo: cannot open {}: {e} (keepalived creates it: \
                 vrrp_notify_fifo in global_defs)",
                fifo.display()
            );
            return EXIT_FAILURE;
        }
    };
    let mut term = match signal(SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("posta keepalived fifo: cannot handle SIGTERM: {e}");
            return EXIT_FAILURE;
        }
    };
    let mut reader = BufReader::new(rx);
    let mut line = Vec::new();
    let mut migration: Option<tokio::task::JoinHandle<u8>> = None;
    let mut again = false;
    let mut stopping = false;
    let mut code = 0;
    info!(fifo = %fifo.display(), "reading keepalived's events");
    loop {
        // keepalived sends SIGTERM before its last events (the instances stopping): read
        // what comes for one more second, then end.
        let read = async {
            if stopping {
                tokio::time::timeout(Duration::from_secs(1), reader.read_until(b'\n', &mut line))
                    .await
                    .ok()
            } else {
                Some(reader.read_until(b'\n', &mut line).await)
            }
        };
        tokio::select! {
            r = read => match r {
                None => break,
                Some(Ok(0)) => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    error!(error = %e, fifo = %fifo.display(), "cannot read keepalived's events");
                    code = EXIT_FAILURE;
                    break;
                }
            },
            _ = term.recv(), if !stopping => {
                stopping = true;
                continue;
            }
            r = async { migration.as_mut().expect("guarded").await }, if migration.is_some() => {
                code = code.max(r.unwrap_or(EXIT_FAILURE));
                migration = None;
                if std::mem::take(&mut again) {
                    migration = Some(start_migration(ctx));
                }
                continue;
            }
        }
        // Cleared only here: a read cut short by another branch keeps what it read in `line`
        // and the next read goes on from there.
        let text = String::from_utf8_lossy(&line).into_owned();
        line.clear();
        let Some((_, name, state)) = parse_fifo_line(&text) else {
            warn!(line = %text.trim_end(), "not a keepalived event line; ignored");
            continue;
        };
        let Some(to) = VrrpState::parse(state) else {
            info!(name, state, "an event posta does not act on");
            continue;
        };
        let (c, migrate) = handle(ctx, name, to).await;
        code = code.max(c);
        if migrate {
            if migration.is_some() {
                info!("a migration still runs; the next starts when it ends");
                again = true;
            } else {
                migration = Some(start_migration(ctx));
            }
        }
    }
    // The migration is a process of its own: it goes on after the reader ends.
    code
}

/// `posta keepalived notify`: this notification joins the queue; if no other notification
/// process is handling it, this one handles everything queued, in order, then waits for the
/// migrations it started.
async fn notify(ctx: &Ctx<'_>, n: Notification, to: VrrpState) -> u8 {
    let state_file = super::takeover::state_file(None, Some(ctx.site));
    let queue = Queue::beside(&state_file);
    let name = n.name.clone();
    let pushed = blocking(move || -> Result<_, QueueError> {
        let seq = queue.push(n)?;
        Ok((seq, queue.try_run()?))
    })
    .await
    .and_then(|r| r.map_err(|e| e.to_string()));
    let mut runner = match pushed {
        Ok((seq, Some(runner))) => {
            info!(seq, "handling the notification queue");
            runner
        }
        Ok((seq, None)) => {
            info!(seq, "queued; the notification before it handles it");
            print(&format!(
                "{name}: queued (#{seq}) behind a running notification\n"
            ));
            return 0;
        }
        Err(e) => {
            // Out of order is better than dropped: the address has moved already. A repeat
            // (had it been queued after all) changes nothing.
            error!(error = %e, "cannot queue the notification; handling it now, out of turn");
            let (code, migrate) = handle(ctx, &name, to).await;
            if !migrate {
                return code;
            }
            return code.max(start_migration(ctx).await.unwrap_or(EXIT_FAILURE));
        }
    };
    let mut code = 0;
    let mut migrations = Vec::new();
    loop {
        let (r, next) = match blocking(move || {
            let next = runner.head();
            (runner, next)
        })
        .await
        {
            Ok(pair) => pair,
            Err(e) => {
                error!(error = %e, "the notification queue task failed");
                code = EXIT_FAILURE;
                break;
            }
        };
        runner = r;
        let entry = match next {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                error!(error = %e, "cannot take the next notification");
                code = EXIT_FAILURE;
                break;
            }
        };
        let n = &entry.notification;
        match VrrpState::parse(&n.state) {
            Some(to) => {
                let (c, migrate) = handle(ctx, &n.name, to).await;
                code = code.max(c);
                if migrate {
                    migrations.push(start_migration(ctx));
                }
            }
            None => warn!(state = %n.state, "a queued notification with an unknown state; dropped"),
        }
        let seq = entry.seq;
        let done = blocking(move || {
            let done = runner.done(seq);
            (runner, done)
        })
        .await;
        match done {
            Ok((r, Ok(()))) => runner = r,
            Ok((_, Err(e))) => {
                error!(error = %e, "cannot take the handled notification off the queue");
                code = EXIT_FAILURE;
                break;
            }
            Err(e) => {
                error!(error = %e, "the notification queue task failed");
                code = EXIT_FAILURE;
                break;
            }
        }
    }
    // The queue is free again: a notification arriving now is handled at once while these
    // migrations run.
    for m in migrations {
        code = code.max(m.await.unwrap_or(EXIT_FAILURE));
    }
    code
}

/// Limit for each reply while telling users of the change (`[notify]`).
const NOTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `f` on the blocking pool (file locks, fsync).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the task failed: {e}"))
}

/// Handles one notification: hooks and record under the state lock, then, after a failback,
/// the mta queue flush. Its exit code, and whether a migration should start now.
async fn handle(ctx: &Ctx<'_>, name: &str, to: VrrpState) -> (u8, bool) {
    let site = ctx.site;
    let state_file = super::takeover::state_file(None, Some(site));
    // Waits as long as a manual takeover or failback holds the lock (never for a migration):
    // keepalived has already moved the address, so the notification must not be dropped.
    let lock_path = state_file.clone();
    let locked = blocking(move || Lock::wait(&lock_path).map_err(|e| e.to_string()))
        .await
        .and_then(|r| r);
    let lock = match locked {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, "cannot lock the takeover state");
            return (EXIT_FAILURE, false);
        }
    };
    let file = state_file.clone();
    let recorded = blocking(move || State::load(&file))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let held = recorded.holdings.iter().any(|h| h.holder == "backup");
    let step = decide(ctx.role == PairRole::Backup, held, to);
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
            return (0, false);
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
    let notice_state = state_file.clone();
    let saved = blocking(move || {
        State::load(&state_file)
            .and_then(|mut s| {
                s.record(event, holder);
                s.save(&state_file)
            })
            .map_err(|e| e.to_string())
    })
    .await
    .and_then(|r| r);
    if let Err(e) = saved {
        error!(error = %e, "the change is in effect but was not recorded");
        code = EXIT_FAILURE;
    }
    drop(lock);
    print(&format!("{name} {to:?}: {action:?} handled\n"));
    // Users are told as after `posta takeover` / `posta failback`; a notice that fails is
    // logged, never this notification's failure (the address has moved).
    if action == Action::Takeover {
        super::mirror::hold_after_takeover(site);
    }
    let view = match action {
        Action::Takeover => super::notify::view_of(Some(&super::takeover::mirror_view(site))),
        _ => crate::notify::View::NoMirror,
    };
    if let Some(n) = super::notify::after(site, &notice_state, action, NOTICE_TIMEOUT, view).await {
        print(&format!("{}\n", n.line()));
        for f in &n.failed {
            warn!(recipient = %f.recipient, error = %f.error, "notice failed");
        }
    }
    if step != Step::Failback {
        return (code, false);
    }
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
    (code, !site.migrate.is_empty())
}

/// Starts `posta migrate` as a process of its own, after the failback is recorded and with no
/// lock held. It is left to finish even if a takeover follows: it removes a message from
/// mailserver2 only after mailserver1 accepted it and journals every step, so if mailserver1
/// is gone again its SMTP refuses and the run ends by itself, and if not the mail is home
/// sooner; stopping it would gain nothing. Its exit code, once it ends.
fn start_migration(ctx: &Ctx<'_>) -> tokio::task::JoinHandle<u8> {
    let mut cmd = tokio::process::Command::new(ctx.exe);
    cmd.arg("--config")
        .arg(ctx.path)
        .arg("migrate")
        .stdin(std::process::Stdio::null());
    tokio::spawn(async move {
        // Its output goes where ours goes, so it still has somewhere to write if we end first.
        match cmd.status().await {
            Ok(s) if s.success() => {
                info!("posta migrate brought the mail home");
                0
            }
            Ok(s) => {
                error!(status = %s, "posta migrate did not finish; run it by hand");
                EXIT_FAILURE
            }
            Err(e) => {
                error!(error = %e, "cannot run posta migrate");
                EXIT_FAILURE
            }
        }
    })
}
