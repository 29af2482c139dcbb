//! `posta mirror --idle` between two real Dovecots, each with a master user (issue 17, item
//! 1's IDLE/NOTIFY option): with an interval of an hour, mail delivered to an INBOX on
//! mailserver1 is on mailserver2 within seconds, for one account and then another, and so
//! are a folder created there, mail filed into it and a flag set on it (NOTIFY); with
//! --trust-notify, intervals vouch for quiet accounts instead of passing them; SIGTERM ends the
//! daemon with status 0. And the daemon holds the mirror's lock only during its passes: a
//! `posta migrate` sweep between them runs, and the mail it brings to mailserver1 wakes the
//! mirror, which copies it back to mailserver2 once; a pass woken while the lock is held
//! waits for it, and one woken while the mirror is on hold does not run.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use posta::client::imap::ImapClient;
use support::example_site::MigrateSite;
use support::mirror::{count, session, short_message as message};
use support::run::{Run, posta_command};
use support::{Ca, Dovecot};

const BIN: &str = env!("CARGO_BIN_EXE_posta");
const PRIMARY_ADMIN_PW: &str = "pi-ms1-admin";
const BACKUP_ADMIN_PW: &str = "pi-ms2-admin";
const USERS: [(&str, &str); 2] = [("pi-alice", "pi-alice-secret"), ("pi-bob", "pi-bob-secret")];
/// How long a delivery may take to reach mailserver2: generous for a loaded 2-core machine,
/// and still far under the hour between interval passes.
const ARRIVAL: Duration = Duration::from_secs(20);

struct Servers {
    primary: Dovecot,
    backup: Dovecot,
    dir: tempfile::TempDir,
    site: PathBuf,
}

impl Servers {
    /// Both servers with [`USERS`], each with `old` messages in INBOX on mailserver1, and the
    /// example's site file (its `[mirror]` state under the test's directory). No SMTP listens
    /// on port 9: a migration's INBOX goes by IMAP APPEND (`--inbox append`).
    fn start() -> Servers {
        let ca = Ca::get();
        let primary = Dovecot::start_with_master(ca, &USERS, ("admin", PRIMARY_ADMIN_PW));
        let backup = Dovecot::start_with_master(ca, &USERS, ("admin", BACKUP_ADMIN_PW));
        let dir = tempfile::tempdir().expect("temp dir");
        support::mirror::admin_password_files(dir.path(), PRIMARY_ADMIN_PW, BACKUP_ADMIN_PW);
        let accounts = support::mirror::accounts(USERS.iter().map(|(u, _)| *u));
        let site = MigrateSite {
            primary: &[
                format!("imaps:{}", primary.imaps_port()),
                "smtp:9".to_string(),
            ],
            backup: &[format!("imaps:{}", backup.imaps_port())],
            maildir: None,
            migrate: support::mirror::ADMINS,
            accounts: &accounts,
        }
        .write(dir.path());
        let t = SystemTime::now() - Duration::from_secs(3600);
        for (user, _) in USERS {
            primary.seed(
                user,
                None,
                &message(user, &format!("old-{user}")),
                "S",
                &[],
                t,
            );
        }
        Servers {
            primary,
            backup,
            dir,
            site,
        }
    }

    /// APPEND as the user to INBOX on mailserver1, as a delivery would store it.
    fn deliver(&self, user: &str, id: &str) {
        self.as_user(user, async |c| {
            c.append("INBOX", &[], None, &message(user, id))
                .await
                .expect("append");
        });
    }

    /// As the user on mailserver1: `act` on a fresh session, then LOGOUT.
    fn as_user<F>(&self, user: &str, act: F)
    where
        F: AsyncFnOnce(&mut ImapClient),
    {
        let password = USERS.iter().find(|u| u.0 == user).expect("a test user").1;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut c = session(&self.primary, user, password).await;
            act(&mut c).await;
            c.logout().await.expect("logout");
        });
    }

    /// Waits up to `limit` until mailserver2's INBOX of `user` holds `id`; how long it took.
    fn arrives(&self, daemon: &Daemon, user: &str, id: &str, limit: Duration) -> Duration {
        within(daemon, id, limit, || {
            count(&self.backup.messages(user, None), id) > 0
        })
    }
}

/// `posta mirror --idle --interval 1h --json`, its output in a log; SIGKILLed on drop if
/// still running.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(site: &Path, dir: &Path) -> Daemon {
        Daemon::start_every(site, dir, "1h", &[])
    }

    /// With an interval of `interval`, and `more` arguments.
    fn start_every(site: &Path, dir: &Path, interval: &str, more: &[&str]) -> Daemon {
        let log = dir.join("mirror.log");
        let out = fs::File::create(&log).expect("create log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(site)
            .args(["mirror", "--idle", "--interval", interval, "--json"])
            .args(more)
            .env_remove("POSTA_CONFIG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn posta mirror");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to [`ARRIVAL`] until the daemon has said `what`.
    fn said(&self, what: &str) {
        let deadline = Instant::now() + ARRIVAL;
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "posta mirror did not say {what:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The passes reported so far (each report is one JSON document with an `"ok"`).
    fn passes(&self) -> usize {
        self.log().matches("\"ok\":").count()
    }

    /// Waits until `n` passes have been reported.
    fn wait_passes(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.passes() < n {
            let exited = self.child.try_wait().expect("try_wait");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "waiting for pass {n} (exited: {exited:?}):\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status within 10 s.
    fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit on SIGTERM:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn mail_reaching_mailserver1_is_on_mailserver2_within_seconds() {
    let s = Servers::start();
    let mut daemon = Daemon::start(&s.site, s.dir.path());
    daemon.wait_passes(1);
    for (user, _) in USERS {
        let id = format!("old-{user}");
        assert_eq!(count(&s.backup.messages(user, None), &id), 1, "{id}");
    }

    s.deliver(USERS[0].0, "idle-1");
    let took = s.arrives(&daemon, USERS[0].0, "idle-1", ARRIVAL);
    eprintln!("the first delivery reached mailserver2 in {took:?}");
    s.deliver(USERS[1].0, "idle-2");
    let took = s.arrives(&daemon, USERS[1].0, "idle-2", ARRIVAL);
    eprintln!("the second delivery (another account) reached mailserver2 in {took:?}");

    let log = daemon.log();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}:\n{log}");
    for (user, id) in [(USERS[0].0, "idle-1"), (USERS[1].0, "idle-2")] {
        let inbox = s.backup.messages(user, None);
        assert_eq!(count(&inbox, id), 1, "{id} once on mailserver2:\n{log}");
        assert_eq!(inbox.len(), 2, "{user}: the old message and {id}:\n{log}");
    }
    assert!(!log.contains("IDLE session"), "no session failed:\n{log}");
}

/// Waits up to `limit` for `done` on mailserver2; how long it took.
fn within(
    daemon: &Daemon,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what}: not on mailserver2 after {limit:?}; posta mirror said:\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// [`within`] [`ARRIVAL`].
fn within_seconds(daemon: &Daemon, what: &str, done: impl FnMut() -> bool) -> Duration {
    within(daemon, what, ARRIVAL, done)
}

/// Dovecot offers NOTIFY (RFC 5465), so the IDLE session hears of every folder: a folder
/// created on mailserver1, mail filed into it and a flag set there reach mailserver2 within
/// seconds, not at the next interval pass an hour later.
#[test]
fn a_folder_mail_filed_into_it_and_a_flag_set_there_reach_mailserver2_within_seconds() {
    let s = Servers::start();
    let mut daemon = Daemon::start(&s.site, s.dir.path());
    daemon.wait_passes(1);
    let user = USERS[0].0;
    let folder = "Proyectos";

    s.as_user(user, async |c| {
        c.create(folder).await.expect("create");
    });
    let took = within_seconds(&daemon, "the new folder", || {
        s.backup.maildir(user).join(format!(".{folder}")).is_dir()
    });
    eprintln!("the new folder reached mailserver2 in {took:?}");

    s.as_user(user, async |c| {
        c.append(folder, &[], None, &message(user, "filed-1"))
            .await
            .expect("append");
    });
    let took = within_seconds(&daemon, "filed-1", || {
        count(&s.backup.messages(user, Some(folder)), "filed-1") == 1
    });
    eprintln!("mail filed into {folder} reached mailserver2 in {took:?}");

    s.as_user(user, async |c| {
        let selected = c.select(folder, false).await.expect("select");
        assert_eq!(selected.exists, 1);
        c.store_flags(&[1], &["\\Flagged".to_string()])
            .await
            .expect("store");
    });
    let took = within_seconds(&daemon, "the flag", || {
        s.backup
            .messages(user, Some(folder))
            .iter()
            .any(|m| m.flags.contains('F'))
    });
    eprintln!("the flag reached mailserver2 in {took:?}");

    let log = daemon.log();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}:\n{log}");
    let filed = s.backup.messages(user, Some(folder));
    assert_eq!(filed.len(), 1, "filed-1 once on mailserver2:\n{log}");
    assert_eq!(filed[0].flags, "F", "flagged, nothing else:\n{log}");
    assert!(!log.contains("NOTIFY refused"), "{log}");
    assert!(!log.contains("IDLE session"), "no session failed:\n{log}");
}

/// The last complete pass of `user` in the state's pass record, if any.
fn last_pass(dir: &Path, user: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.join("mirror").join(format!("{user}.pass"))).ok()?;
    let record: serde_json::Value = serde_json::from_str(&text).expect("a pass record");
    record["last_complete_pass"].as_u64()
}

/// With NOTIFY trusted, an interval leaves out the accounts whose sessions heard nothing since
/// their last pass: no logins, the lag kept fresh by a record. A change is still passed within
/// seconds.
#[test]
fn quiet_accounts_are_vouched_for_without_a_pass_and_passed_when_they_change() {
    const VOUCHED: &str = r#"{"vouched":["pi-alice","pi-bob"]}"#;
    let s = Servers::start();
    let daemon = Daemon::start_every(&s.site, s.dir.path(), "2s", &["--trust-notify"]);
    daemon.said(VOUCHED);
    let passes = daemon.passes();
    let first = last_pass(s.dir.path(), USERS[0].0).expect("a pass record");
    // Three more intervals, each vouching for both accounts and passing none; the pass that
    // is due all the same comes ten intervals after the last one, well after these.
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.log().matches(VOUCHED).count() < 4 {
        assert!(Instant::now() < deadline, "{}", daemon.log());
        thread::sleep(Duration::from_millis(100));
    }
    let log = daemon.log();
    assert_eq!(daemon.passes(), passes, "no pass between vouchings:\n{log}");
    let later = last_pass(s.dir.path(), USERS[0].0).expect("a pass record");
    assert!(later > first, "the lag is kept fresh: {first} then {later}");

    s.deliver(USERS[0].0, "quiet-1");
    let took = s.arrives(&daemon, USERS[0].0, "quiet-1", ARRIVAL);
    eprintln!("mail to a vouched-for account reached mailserver2 in {took:?}");
    let log = daemon.log();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}:\n{log}");
    assert_eq!(count(&s.backup.messages(USERS[0].0, None), "quiet-1"), 1);
}

/// Without --trust-notify every interval passes every account: NOTIFY only wakes passes.
#[test]
fn without_trust_notify_every_interval_passes_every_account() {
    let s = Servers::start();
    let mut daemon = Daemon::start_every(&s.site, s.dir.path(), "2s", &[]);
    daemon.wait_passes(4);
    let log = daemon.log();
    assert!(!log.contains("vouched"), "{log}");
    assert!(daemon.terminate().success(), "{log}");
}

#[test]
fn a_sweep_runs_while_an_idle_mirror_waits_between_passes() {
    let s = Servers::start();
    let mut daemon = Daemon::start(&s.site, s.dir.path());
    daemon.wait_passes(1);
    let user = USERS[0].0;
    // mailserver2 takes a message itself (MX 20 while mailserver1 was busy).
    s.backup.seed(
        user,
        None,
        &message(user, "new-1"),
        "",
        &[],
        SystemTime::now(),
    );

    // The sweep finds the mirror's lock free: the daemon holds it only during a pass.
    let out = posta_command(BIN)
        .arg("--config")
        .arg(&s.site)
        .args(["migrate", "--inbox", "append", "--json"])
        .output()
        .expect("run posta migrate");
    let run = Run::from_output(out);
    assert_eq!(run.code, 0, "{run:?}\nposta mirror said:\n{}", daemon.log());
    assert_eq!(
        count(&s.primary.messages(user, None), "new-1"),
        1,
        "{run:?}"
    );

    // Home on mailserver1, it wakes the mirror, which copies it to mailserver2: once.
    let took = s.arrives(&daemon, user, "new-1", ARRIVAL);
    eprintln!("the swept message was mirrored back in {took:?}");

    // While a migrate holds the lock, a woken pass waits for it, then runs.
    let state_dir = s.dir.path().join("mirror");
    let lock = fs::File::create(state_dir.join("lock")).expect("open the mirror's lock");
    // The pass that copied new-1 releases the lock right after its report.
    daemon.wait_passes(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while lock.try_lock().is_err() {
        assert!(
            Instant::now() < deadline,
            "the daemon holds the lock between passes"
        );
        thread::sleep(Duration::from_millis(50));
    }
    s.deliver(user, "locked-1");
    daemon.said("posta migrate is reading the mirror's map");
    assert_eq!(count(&s.backup.messages(user, None), "locked-1"), 0);
    drop(lock);
    s.arrives(&daemon, user, "locked-1", ARRIVAL);

    // On hold (a takeover), a woken pass is not run; once lifted, the next one catches up.
    posta::mirror::hold::hold(&state_dir, 1).expect("hold");
    s.deliver(user, "held-1");
    daemon.said("on hold since");
    assert_eq!(count(&s.backup.messages(user, None), "held-1"), 0);
    posta::mirror::hold::release(&state_dir).expect("release");
    s.deliver(user, "after-1");
    s.arrives(&daemon, user, "after-1", ARRIVAL);
    assert_eq!(count(&s.backup.messages(user, None), "held-1"), 1);

    let log = daemon.log();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}:\n{log}");
    let inbox = s.backup.messages(user, None);
    for id in [
        &format!("old-{user}")[..],
        "new-1",
        "locked-1",
        "held-1",
        "after-1",
    ] {
        assert_eq!(count(&inbox, id), 1, "{id} once on mailserver2:\n{log}");
    }
    assert_eq!(inbox.len(), 5, "{log}");
    assert_eq!(s.primary.messages(user, None).len(), 5, "{log}");
}
