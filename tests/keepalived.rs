//! posta under real keepalived (VRRP) in network namespaces: mailserver1 and mailserver2 each
//! run `posta mta` and keepalived with the configuration `posta keepalived config` writes.
//! When mailserver1 dies, VRRP moves the address and posta, reading keepalived's notify FIFO,
//! runs the takeover hooks; when it returns, the failback hooks run and then `posta migrate`
//! brings the mail mailserver2 accepted home, from its POP3 to mailserver1's SMTP. The
//! notification tests play keepalived themselves: plain notify scripts started in quick
//! succession, and the FIFO, with a failback's migration hanging on mailserver2's POP3.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::maildir::count;
use support::netns::{Host, Lan};
use support::sys::require_tool;

const BIN: &str = env!("CARGO_BIN_EXE_posta");

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_in(host: &Host, program: &Path, args: &[&str], log: &Path) -> Child {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new("ip")
        .args(["netns", "exec", host.ns.name()])
        .arg(program)
        .args(args)
        .env_remove("POSTA_CONFIG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool, ctx: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            ctx()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn send(lan: &Lan, id: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", lan.client.ns.name()])
        .arg(require_tool("swaks"))
        .args(["--server", &format!("{}:25", lan.vip4)])
        .args([
            "--from",
            "carlos@laorganizacion.org",
            "--to",
            "ana@example.org",
        ])
        .args(["--header", &format!("Message-Id: <{id}@posta.test>")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("250 2.0.0 ok"), "{text}");
}

#[test]
fn vrrp_moves_the_address_and_posta_runs_its_hooks_in_order_then_migrates() {
    let keepalived = require_tool("keepalived");
    let lan = Lan::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hook = d.join("hook.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$POSTA_EVENT\" >> {}/hooks.log\n",
            d.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    let pw = d.join("ana.pw");
    fs::write(&pw, "pw-ana\n").unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let users = d.join("pop3-users");
    fs::write(
        &users,
        format!("ana:{}\n", posta::mta::users::hash_password("pw-ana")),
    )
    .unwrap();
    fs::set_permissions(&users, fs::Permissions::from_mode(0o600)).unwrap();
    let h = hook.display();
    // mailserver2's POP3 listens on its loopback: migrate, run there by the notify script,
    // reads it without TLS (posta's POP3 allows cleartext logins from loopback only).
    let site = d.join("site.toml");
    fs::write(
        &site,
        format!(
            r#"domain = "example.org"
[primary]
name = "mailserver1.example.org"
address = "{ms1}"
services = ["smtp:25?starttls=no"]
[backup]
name = "mailserver2.example.org"
address = "127.0.0.1"
services = ["pop3:110?starttls=no"]
[takeover]
mode = "vip"
state_file = "{d}/takeover.json"
[vip]
address = "{vip}/24"
interface = "{dev}"
[probe]
interval = "1s"
timeout = "1s"
fall = 1
rise = 1
takeover_grace = "0"
[hooks]
pre_takeover = ["{h}"]
post_takeover = ["{h}"]
pre_failback = ["{h}"]
post_failback = ["{h}"]
[migrate]
state_dir = "{d}/migrate"
[[migrate.accounts]]
user = "ana"
password_file = "{pw}"
deliver_to = "ana@example.org"
"#,
            ms1 = lan.ms1.ipv4,
            vip = lan.vip4,
            dev = Host::INTERFACE,
            d = d.display(),
            pw = pw.display(),
        ),
    )
    .unwrap();
    let (m1, m2) = (d.join("m1"), d.join("m2"));
    let bin = PathBuf::from(BIN);
    let mut procs = Procs(Vec::new());
    let mta = |host: &Host, maildir: &Path, extra: &[&str]| {
        let mut a = vec![
            "mta",
            "--listen",
            "0.0.0.0:25",
            "--hostname",
            host.role,
            "--domain",
            "example.org",
            "--maildir",
            maildir.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        spawn_in(host, &bin, &a, &d.join(format!("mta-{}.log", host.role)))
    };
    procs.0.push(mta(&lan.ms1, &m1, &[]));
    procs.0.push(mta(
        &lan.ms2,
        &m2,
        &[
            "--pop3-listen",
            "127.0.0.1:110",
            "--pop3-users",
            users.to_str().unwrap(),
        ],
    ));
    // The keepalived configurations, as an administrator would write them.
    for (host, role) in [(&lan.ms1, "primary"), (&lan.ms2, "backup")] {
        let out = Command::new(BIN)
            .args([
                "--config",
                site.to_str().unwrap(),
                "keepalived",
                "config",
                "--role",
                role,
            ])
            .args(["--router-id", "77"])
            .arg("--fifo")
            .arg(d.join(format!("{}.fifo", host.role)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let conf = d.join(format!("{}.conf", host.role));
        fs::write(&conf, &out.stdout).unwrap();
    }
    let conf_text = fs::read_to_string(d.join("ms1.conf")).unwrap();
    assert!(conf_text.contains("check --nagios primary"), "{conf_text}");
    assert!(
        conf_text.contains("keepalived fifo --role primary")
            && conf_text.contains(&format!(
                "vrrp_notify_fifo {}",
                d.join("ms1.fifo").display()
            )),
        "{conf_text}"
    );
    let ka = |host: &Host| {
        let r = host.role;
        spawn_in(
            host,
            &keepalived,
            &[
                "--dont-fork",
                "--log-console",
                "--no-syslog",
                "--vrrp",
                "--use-file",
                d.join(format!("{r}.conf")).to_str().unwrap(),
                "--pid",
                d.join(format!("{r}.pid")).to_str().unwrap(),
                "--vrrp_pid",
                d.join(format!("{r}-vrrp.pid")).to_str().unwrap(),
            ],
            &d.join(format!("keepalived-{r}.log")),
        )
    };
    procs.0.push(ka(&lan.ms1));
    procs.0.push(ka(&lan.ms2));
    let logs = || {
        let mut s = String::new();
        for f in [
            "keepalived-ms1.log",
            "keepalived-ms2.log",
            "hooks.log",
            "mta-ms2.log",
        ] {
            s.push_str(&format!(
                "--- {f}\n{}\n",
                fs::read_to_string(d.join(f)).unwrap_or_default()
            ));
        }
        s
    };
    let greets = |name: &str| {
        lan.client
            .smtp_greeting(lan.vip4.into())
            .is_ok_and(|g| g.starts_with(&format!("220 {name} ")))
    };
    wait_for(
        "mailserver1 to hold the address",
        Duration::from_secs(30),
        || greets("ms1"),
        logs,
    );
    send(&lan, "before");
    assert_eq!(count(&m1.join("ana"), None), 1);

    // mailserver1 dies: VRRP hands the address to mailserver2, whose notify runs the hooks.
    lan.ms1.link_down();
    wait_for(
        "mailserver2 to hold the address",
        Duration::from_secs(30),
        || greets("ms2"),
        logs,
    );
    wait_for(
        "the takeover hooks",
        Duration::from_secs(30),
        || fs::read_to_string(d.join("hooks.log")).is_ok_and(|l| l.lines().count() >= 2),
        logs,
    );
    send(&lan, "during");
    assert_eq!(count(&m2.join("ana"), None), 1, "mailserver2 took the mail");

    // mailserver1 returns and preempts: failback hooks, then the migration home.
    lan.ms1.link_up();
    wait_for(
        "mailserver1 to hold the address again",
        Duration::from_secs(30),
        || greets("ms1"),
        logs,
    );
    wait_for(
        "the mail to come home",
        Duration::from_secs(60),
        || count(&m1.join("ana"), None) == 2 && count(&m2.join("ana"), None) == 0,
        logs,
    );
    let hooks: Vec<String> = fs::read_to_string(d.join("hooks.log"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        hooks,
        [
            "pre-takeover",
            "post-takeover",
            "pre-failback",
            "post-failback"
        ],
        "{}",
        logs()
    );
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("takeover.json")).unwrap()).unwrap();
    assert_eq!(state["holdings"][0]["holder"], "primary");
    assert_eq!(state["history"].as_array().unwrap().len(), 2);
}

/// A site for the notification tests: no namespaces, no keepalived (the tests play keepalived
/// and start `posta keepalived notify|fifo` as it would), hooks that log their event and take
/// `hook_secs`, and, with `pop3`, a migration from mailserver2's POP3 at that loopback port.
fn notify_site(d: &Path, hook_secs: &str, pop3: Option<u16>) -> PathBuf {
    let hook = d.join("hook.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$POSTA_EVENT\" >> {}/hooks.log\nsleep {hook_secs}\n",
            d.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    let h = hook.display();
    let mut text = format!(
        r#"domain = "example.org"
[primary]
name = "mailserver1.example.org"
address = "127.0.0.2"
services = ["smtp:1?starttls=no"]
[backup]
name = "mailserver2.example.org"
address = "127.0.0.1"
services = ["pop3:{port}?starttls=no"]
[takeover]
mode = "vip"
state_file = "{d}/takeover.json"
[vip]
address = "192.0.2.25/24"
interface = "lo"
[hooks]
pre_takeover = ["{h}"]
post_takeover = ["{h}"]
pre_failback = ["{h}"]
post_failback = ["{h}"]
"#,
        port = pop3.unwrap_or(110),
        d = d.display(),
    );
    if pop3.is_some() {
        let pw = d.join("ana.pw");
        fs::write(&pw, "pw-ana\n").unwrap();
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
        text.push_str(&format!(
            "[migrate]\nstate_dir = \"{d}/migrate\"\n[[migrate.accounts]]\nuser = \"ana\"\n\
             password_file = \"{pw}\"\ndeliver_to = \"ana@example.org\"\n",
            d = d.display(),
            pw = pw.display(),
        ));
    }
    let site = d.join("site.toml");
    fs::write(&site, text).unwrap();
    site
}

/// Kills each child's whole process group (a notification's `posta migrate` child with it).
struct Groups(Vec<Child>);

impl Drop for Groups {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.wait();
        }
    }
}

fn posta_in_group(site: &Path, args: &[&str], log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(BIN)
        .arg("--config")
        .arg(site)
        .args(["keepalived"])
        .args(args)
        .env_remove("POSTA_CONFIG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap()
}

fn hook_lines(d: &Path) -> Vec<String> {
    fs::read_to_string(d.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The hook lines a run of MASTER/BACKUP notifications must leave, in order.
fn expected_hooks(states: &[&str]) -> Vec<String> {
    states
        .iter()
        .flat_map(|s| {
            let step = if *s == "MASTER" {
                "takeover"
            } else {
                "failback"
            };
            [format!("pre-{step}"), format!("post-{step}")]
        })
        .collect()
}

/// mailserver2's POP3 as a hung server: it accepts and never answers, so a `posta migrate`
/// reading from it waits out its 60 s reply timeout. The streams stay open (and the
/// migration running) until the test ends.
fn silent_pop3() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    (port, held)
}

/// Whether the peer of every held stream is still connected (no EOF waiting to be read).
fn still_connected(held: &std::sync::Mutex<Vec<std::net::TcpStream>>) -> bool {
    let held = held.lock().unwrap();
    !held.is_empty()
        && held.iter().all(|s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let open =
                matches!(s.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            s.set_nonblocking(false).unwrap();
            open
        })
}

// keepalived forks one plain `notify` per transition; they overlap when transitions come
// quickly. Each takes a sequence number on arrival and the holder of the queue runs them in
// that order (before, each polled the state lock every 50 ms and the first to poll won).
#[test]
fn notify_scripts_started_in_quick_succession_run_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let site = notify_site(d, "0.3", None);
    let states = ["MASTER", "BACKUP", "MASTER", "BACKUP", "MASTER", "BACKUP"];
    let mut procs = Groups(Vec::new());
    for s in states {
        procs.0.push(posta_in_group(
            &site,
            &["notify", "--role", "backup", "INSTANCE", "posta", s, "100"],
            &d.join("notify.log"),
        ));
        thread::sleep(Duration::from_millis(250));
    }
    for c in &mut procs.0 {
        let status = c.wait().unwrap();
        assert!(
            status.success(),
            "{status}\n{}",
            fs::read_to_string(d.join("notify.log")).unwrap_or_default()
        );
    }
    assert_eq!(
        hook_lines(d),
        expected_hooks(&states),
        "{}",
        fs::read_to_string(d.join("notify.log")).unwrap_or_default()
    );
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("takeover.json")).unwrap()).unwrap();
    assert_eq!(state["holdings"][0]["holder"], "primary");
    assert_eq!(state["history"].as_array().unwrap().len(), states.len());
}

/// Plays MASTER, BACKUP, MASTER where the failback's migration hangs on mailserver2's POP3
/// (60 s to its first timeout), through `deliver` (plain notify scripts or the FIFO); the
/// second takeover must run while the migration still runs.
fn takeover_during_a_migration(deliver: impl FnOnce(&Path, &Path, &mut Groups)) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, held) = silent_pop3();
    let site = notify_site(d, "0", Some(port));
    let mut procs = Groups(Vec::new());
    let log = || fs::read_to_string(d.join("notify.log")).unwrap_or_default();
    deliver(d, &site, &mut procs);
    wait_for(
        "the second takeover's hooks",
        Duration::from_secs(30),
        || hook_lines(d).len() >= 6,
        log,
    );
    assert_eq!(
        hook_lines(d),
        expected_hooks(&["MASTER", "BACKUP", "MASTER"]),
        "{}",
        log()
    );
    wait_for(
        "the migration to reach mailserver2's POP3",
        Duration::from_secs(30),
        || !held.lock().unwrap().is_empty(),
        log,
    );
    assert!(
        still_connected(&held),
        "the migration was still running when the takeover ran\n{}",
        log()
    );
    // The migration holds nothing the next action needs: the state lock is free.
    let lock = fs::File::open(d.join("takeover.lock")).unwrap();
    lock.try_lock()
        .expect("the state lock is free while the migration runs");
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("takeover.json")).unwrap()).unwrap();
    assert_eq!(state["holdings"][0]["holder"], "backup", "{}", log());
    assert_eq!(state["history"].as_array().unwrap().len(), 3);
}

// Before, the failback's notification held the state lock for the whole `posta migrate`, so a
// MASTER arriving meanwhile waited for it (and gave up after 600 s). The migration now runs
// after the failback is recorded and the queue moves on without waiting for it.
#[test]
fn a_master_notification_during_a_long_migration_runs_its_takeover_at_once() {
    takeover_during_a_migration(|d, site, procs| {
        for s in ["MASTER", "BACKUP", "MASTER"] {
            procs.0.push(posta_in_group(
                site,
                &["notify", "--role", "backup", "INSTANCE", "posta", s, "100"],
                &d.join("notify.log"),
            ));
            // The failback's migration is under way (connected to the POP3) before MASTER comes.
            thread::sleep(Duration::from_millis(if s == "BACKUP" {
                2000
            } else {
                300
            }));
        }
    });
}

// keepalived's vrrp_notify_fifo: one long-lived reader gets every event in order on one FIFO,
// so order holds by construction; the reader must not wait for a migration either.
#[test]
fn the_fifo_reader_runs_events_in_order_and_a_takeover_during_a_migration_at_once() {
    takeover_during_a_migration(|d, site, procs| {
        let fifo = d.join("keepalived.fifo");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        procs.0.push(posta_in_group(
            site,
            &["fifo", "--role", "backup", fifo.to_str().unwrap()],
            &d.join("notify.log"),
        ));
        let mut w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        use std::io::Write;
        w.write_all(
            b"INSTANCE \"posta\" MASTER 100\nINSTANCE \"posta\" BACKUP 100\n\
              INSTANCE \"posta\" MASTER 100\n",
        )
        .unwrap();
    });
}

// keepalived ends the reader with SIGTERM *before* writing its last events (the instances
// stopping), so the reader reads on for a moment after the signal, then ends by itself.
#[test]
fn the_fifo_reader_handles_what_keepalived_writes_after_its_sigterm_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let site = notify_site(d, "0", None);
    let fifo = d.join("keepalived.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut procs = Groups(vec![posta_in_group(
        &site,
        &["fifo", "--role", "backup", fifo.to_str().unwrap()],
        &d.join("notify.log"),
    )]);
    let log = || fs::read_to_string(d.join("notify.log")).unwrap_or_default();
    let mut w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    use std::io::Write;
    w.write_all(b"INSTANCE \"posta\" MASTER 100\n").unwrap();
    wait_for(
        "the takeover's hooks",
        Duration::from_secs(30),
        || hook_lines(d).len() >= 2,
        log,
    );
    let pid = procs.0[0].id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    w.write_all(b"INSTANCE \"posta\" STOP 100\n").unwrap();
    let mut status = None;
    wait_for(
        "the reader to end",
        Duration::from_secs(30),
        || {
            status = procs.0[0].try_wait().unwrap();
            status.is_some()
        },
        log,
    );
    assert!(status.unwrap().success(), "{}", log());
    assert_eq!(
        hook_lines(d),
        expected_hooks(&["MASTER", "STOP"]),
        "{}",
        log()
    );
}

// A queue posta cannot use (here: not JSON) must not cost a takeover: the notification is
// handled at once, out of turn, rather than dropped.
#[test]
fn a_notify_script_that_cannot_queue_still_runs_the_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let site = notify_site(d, "0", None);
    fs::write(d.join("takeover.notify.json"), "{not json").unwrap();
    let mut procs = Groups(vec![posta_in_group(
        &site,
        &[
            "notify", "--role", "backup", "INSTANCE", "posta", "MASTER", "100",
        ],
        &d.join("notify.log"),
    )]);
    let status = procs.0[0].wait().unwrap();
    let log = fs::read_to_string(d.join("notify.log")).unwrap_or_default();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("move it aside"), "the queue is named: {log}");
    assert_eq!(hook_lines(d), expected_hooks(&["MASTER"]), "{log}");
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("takeover.json")).unwrap()).unwrap();
    assert_eq!(state["holdings"][0]["holder"], "backup");
}
