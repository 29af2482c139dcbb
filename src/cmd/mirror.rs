//! `posta mirror`: the site's accounts from the site file, a pass (or one every --interval,
//! and with --idle one when an account changes), the report; exit 0 only when every
//! account's pass completed.

use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::migrate::{AdminLogin, read_secret, site_accounts, site_endpoint};
use super::{EXIT_FAILURE, EXIT_USAGE, exclusive_lock, print};
use crate::cli::MirrorArgs;
use crate::client::Login;
use crate::config::{self, MirrorSettings};
use crate::health::{Scheme, TlsPolicy};
use crate::mirror::idle::{Due, Event, Vouched};
use crate::mirror::report::RunReport;
use crate::mirror::{self, Account, Options, Side};

pub async fn execute(config: Option<PathBuf>, args: MirrorArgs) -> u8 {
    let path = config.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let planned = tokio::task::spawn_blocking(move || {
        let planned = plan(&path, &args);
        (args, planned)
    })
    .await;
    let (args, (accounts, settings)) = match planned {
        Ok((args, Ok(planned))) => (args, planned),
        Ok((_, Err(e))) => {
            eprintln!("posta mirror: {e}");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("posta mirror: internal error while planning: {e}");
            return EXIT_FAILURE;
        }
    };
    let interval = args.interval.unwrap_or(settings.interval);
    let state_dir = args
        .state_dir
        .clone()
        .or(settings.state_dir)
        .unwrap_or_else(|| PathBuf::from(mirror::DEFAULT_STATE_DIR));
    // Two mirrors would pass the same accounts each on its own schedule: one per state
    // directory, for the whole life of the process.
    let running = exclusive_lock(
        &state_dir.join("process.lock"),
        "another posta mirror is running",
    );
    let _running = match running {
        Ok(file) => file,
        Err(e) => {
            eprintln!("posta mirror: {e}");
            return EXIT_FAILURE;
        }
    };
    let opts = Options {
        state_dir,
        parallel: usize::from(args.parallel),
        batch: 50,
        settle: args.timeout,
    };
    if args.once {
        return match pass(accounts, &[], &opts, args.json).await {
            Ok((code, _)) => code,
            Err(busy) => {
                eprintln!("posta mirror: {busy}");
                EXIT_FAILURE
            }
        };
    }
    daemon(accounts, &opts, interval, &args).await
}

/// A pass that finds the mirror's lock held (a `posta migrate` reads the map) is tried again
/// this much later.
const RETRY_BUSY: Duration = Duration::from_secs(5);

/// Passes every interval, and with --idle soon after an account changed on mailserver1
/// ([`mirror::idle`]), until SIGTERM or SIGINT; a signal during a pass is acted on once it
/// ends. Returns the last pass's status. With --trust-notify, an interval leaves out the
/// accounts whose sessions vouch that nothing changed since their last pass ([`Vouched`]),
/// and the next round records them as mirrored now.
///
/// The mirror's lock (`state_dir/lock`, which `posta migrate` takes to read the map) is held per
/// pass and released between passes, never for the life of the daemon, which would keep every sweep
/// from running. A pass here is a round: the accounts due at that moment (all of them each
/// interval, less those vouched for; with --idle, those that changed), run at most --parallel at
/// once ([`mirror::run`]); then the lock is dropped. Per round rather than per account: rounds run
/// one after another, so one account's passes never overlap and --parallel caps interval and IDLE
/// passes alike with no second scheduler, while a migrate waits at most one round and an account
/// that changes during a round is passed in the next. A round that finds the lock held waits
/// [`RETRY_BUSY`] and tries again.
async fn daemon(
    accounts: Vec<Account>,
    opts: &Options,
    interval: Duration,
    args: &MirrorArgs,
) -> u8 {
    let mut stop = Stop::new();
    let (tx, mut events) = mpsc::channel(64);
    let _sessions = args
        .idle
        .then(|| mirror::idle::watch(&accounts, tx.clone()));
    let mut due = Due::default();
    let mut vouched = Vouched::new(accounts.len());
    // Accounts an interval found vouched for, recorded by the next round.
    let mut quiet: Vec<usize> = Vec::new();
    let now = Instant::now();
    due.all(accounts.len(), now);
    let mut tick = now + interval;
    let mut code = 0;
    loop {
        let at = due.at();
        tokio::select! {
            () = stop.recv() => return code,
            () = tokio::time::sleep_until(tick) => {
                let now = Instant::now();
                if args.trust_notify {
                    let (these, vouched_for) = vouched.split(now, interval);
                    due.these(these, now);
                    quiet = vouched_for;
                } else {
                    due.all(accounts.len(), now);
                }
                tick = now + interval;
            }
            Some(event) = events.recv() => {
                vouched.heard(&event, Instant::now());
                said(event, &mut due);
            }
            () = tokio::time::sleep_until(at.unwrap_or(tick)), if at.is_some() => {
                let which = due.take();
                // An account both due and vouched for (a change heard since the interval) is
                // passed, not vouched for.
                quiet.retain(|i| !which.contains(i));
                let round = which.iter().map(|&i| accounts[i].clone()).collect();
                let names: Vec<&str> = quiet.iter().map(|&i| accounts[i].name.as_str()).collect();
                let started = Instant::now();
                match pass(round, &names, opts, args.json).await {
                    Ok((c, completed)) => {
                        code = c;
                        quiet.clear();
                        for &i in &which {
                            if completed.contains(&accounts[i].name) {
                                vouched.passed(i, started);
                            }
                        }
                    }
                    Err(busy) => {
                        eprintln!("posta mirror: {busy}; the pass follows in {RETRY_BUSY:?}");
                        due.later(which, Instant::now() + RETRY_BUSY);
                    }
                }
            }
        }
    }
}

/// What an IDLE session reported: a change makes its account due, trouble is said.
fn said(event: Event, due: &mut Due) {
    match event {
        Event::Changed(index) => due.changed(index, Instant::now()),
        Event::Watching(_) => {}
        Event::Lost {
            account,
            error,
            retry_in,
            ..
        } => eprintln!(
            "posta mirror: {account}: the IDLE session to mailserver1 failed: {error}; \
             reconnecting in {:.0?}",
            retry_in
        ),
        Event::Unsupported { account, error } => eprintln!(
            "posta mirror: {account}: {error}; its new mail waits for the next interval pass"
        ),
    }
}

/// One pass of `accounts` under the mirror's lock, unless the mirror is on hold (said, and a
/// failure); first the accounts `vouched` for are recorded as mirrored now, and said. The
/// status and the accounts whose pass completed; Err: the lock is held, by a `posta migrate`
/// reading the map.
async fn pass(
    accounts: Vec<Account>,
    vouched: &[&str],
    opts: &Options,
    json: bool,
) -> Result<(u8, Vec<String>), String> {
    match mirror::hold::held(&opts.state_dir) {
        Ok(None) => {}
        Ok(Some(since)) => {
            eprintln!(
                "posta mirror: on hold since {} (a takeover: mailserver2 served users, and \
                 a pass now would overwrite what they did there); after the failback, \
                 posta migrate --return carries it back and lifts the hold",
                crate::clock::rfc3339(since)
            );
            return Ok((EXIT_FAILURE, Vec::new()));
        }
        Err(e) => {
            eprintln!(
                "posta mirror: cannot read the hold in {}: {e}",
                opts.state_dir.display()
            );
            return Ok((EXIT_FAILURE, Vec::new()));
        }
    }
    // Copies made while a migrate reads the map would be missing from what it read.
    let _lock = exclusive_lock(
        &opts.state_dir.join("lock"),
        "posta migrate is reading the mirror's map",
    )?;
    let mut code = 0;
    if !vouched.is_empty() {
        show_vouched(vouched, json);
        if let Err(e) = mirror::vouch(&opts.state_dir, vouched) {
            eprintln!("posta mirror: {e}");
            code = EXIT_FAILURE;
        }
    }
    if accounts.is_empty() {
        return Ok((code, Vec::new()));
    }
    let report = mirror::run(accounts, opts).await;
    show(&report, json);
    let completed = report
        .accounts
        .iter()
        .filter(|a| a.error.is_none())
        .map(|a| a.account.clone())
        .collect();
    Ok((if report.ok { code } else { EXIT_FAILURE }, completed))
}

/// The accounts an interval did not pass because their IDLE sessions vouch for them.
fn show_vouched(names: &[&str], json: bool) {
    if json {
        let said = serde_json::json!({ "vouched": names });
        print(&format!("{said}\n"));
    } else {
        print(&format!(
            "posta mirror: not passed, nothing changed on mailserver1 since their last pass \
             (their IDLE sessions hear of every folder): {}\n",
            names.join(", ")
        ));
    }
}

/// Puts the mirror on hold after a takeover ([`mirror::hold`]), with `[mirror]`. A failure
/// is said, never the takeover's: the address has moved either way.
pub(super) fn hold_after_takeover(site: &config::Site) {
    if !site.mirror.enabled {
        return;
    }
    let dir = state_dir(site);
    if let Err(e) = mirror::hold::hold(&dir, crate::clock::unix_now()) {
        eprintln!(
            "posta: cannot put the mirror on hold in {}: {e}; stop posta mirror until \
             posta migrate --return has run after the failback",
            dir.display()
        );
    }
}

/// The mirror's state directory by the site file.
pub(super) fn state_dir(site: &config::Site) -> PathBuf {
    site.mirror
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(mirror::DEFAULT_STATE_DIR))
}

/// SIGTERM or SIGINT, listened for from the start: one that comes during a pass is seen
/// when the pass has ended.
struct Stop {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn recv(&mut self) {
        match (&mut self.term, &mut self.int) {
            (Some(term), Some(int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
}

fn show(report: &RunReport, json: bool) {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => print(&format!("{text}\n")),
            Err(e) => eprintln!("posta mirror: cannot encode the report: {e}"),
        }
    } else {
        print(&report.table());
    }
}

/// The site file's accounts ([`accounts`]) and `[mirror]` settings.
fn plan(
    path: &std::path::Path,
    args: &MirrorArgs,
) -> Result<(Vec<Account>, MirrorSettings), String> {
    let site = config::load(path).map_err(|e| e.to_string())?;
    let tls = TlsPolicy {
        ca_file: args.ca_file.clone().or(site.tls.ca_file.clone()),
        insecure: args.insecure,
        ..TlsPolicy::default()
    };
    let accounts = accounts(&site, &args.accounts, &tls, args.timeout)?;
    Ok((accounts, site.mirror))
}

/// The mirror's accounts of the site file (all, or those `names`): mailserver1 read with
/// `[migrate] dest_admin` or the account's `dest_password_file`, mailserver2 with `[migrate]
/// source_admin` or its `password_file`. `posta migrate --return` uses the same.
pub(super) fn accounts(
    site: &config::Site,
    names: &[String],
    tls: &TlsPolicy,
    timeout: std::time::Duration,
) -> Result<Vec<Account>, String> {
    let listed = site_accounts(site)?;
    for name in names {
        if !listed.iter().any(|a| &a.user == name) {
            return Err(format!("no account {name:?} in the site file"));
        }
    }
    let primary_admin = AdminLogin::pick(None, site.migrate_dest_admin.as_ref(), None)?;
    let backup_admin = AdminLogin::pick(None, site.migrate_source_admin.as_ref(), None)?;
    let primary = imap_side(&site.primary, "primary", tls, timeout)?;
    let backup = imap_side(&site.backup, "backup", tls, timeout)?;
    let mut accounts = Vec::new();
    for a in listed {
        if !names.is_empty() && !names.contains(&a.user) {
            continue;
        }
        let source_user = a.dest_user.clone().unwrap_or_else(|| a.user.clone());
        let source = login(
            &source_user,
            a.dest_password_file.as_deref(),
            primary_admin.as_ref(),
            "dest_password_file",
            "[migrate] dest_admin",
        )?;
        let dest = login(
            &a.user,
            a.password_file.as_deref(),
            backup_admin.as_ref(),
            "password_file",
            "[migrate] source_admin",
        )?;
        accounts.push(Account {
            name: a.user.clone(),
            source: Side {
                endpoint: primary.clone(),
                login: source,
            },
            dest: Side {
                endpoint: backup.clone(),
                login: dest,
            },
        });
    }
    Ok(accounts)
}

fn imap_side(
    server: &config::Server,
    which: &str,
    tls: &TlsPolicy,
    timeout: std::time::Duration,
) -> Result<crate::client::Endpoint, String> {
    let svc = [Scheme::Imaps, Scheme::Imap]
        .iter()
        .find_map(|s| server.services.iter().find(|x| x.scheme == *s))
        .copied()
        .ok_or_else(|| format!("the {which} server lists no imap or imaps service to mirror"))?;
    Ok(site_endpoint(server, svc, tls, timeout))
}

/// The account's own password file, else the admin identity.
fn login(
    user: &str,
    own: Option<&std::path::Path>,
    admin: Option<&AdminLogin>,
    own_key: &str,
    admin_key: &str,
) -> Result<Login, String> {
    match (own, admin) {
        (Some(file), _) => Ok(Login::own(user, read_secret(file)?)),
        (None, Some(admin)) => Ok(admin.login_as(user)),
        (None, None) => Err(format!(
            "account {user:?} has no {own_key} and there is no {admin_key}"
        )),
    }
}
