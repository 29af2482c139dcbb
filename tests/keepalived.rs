//! posta under real keepalived (VRRP) in network namespaces: mailserver1 and mailserver2 each
//! run `posta mta` and keepalived with the configuration `posta keepalived config` writes.
//! When mailserver1 dies, VRRP moves the address and posta's notify script runs the takeover
//! hooks; when it returns, the failback hooks run and then `posta migrate` brings the mail
//! mailserver2 accepted home, from its POP3 to mailserver1's SMTP.

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
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let conf = d.join(format!("{}.conf", host.role));
        fs::write(&conf, &out.stdout).unwrap();
    }
    let conf_text = fs::read_to_string(d.join("ms1.conf")).unwrap();
    assert!(conf_text.contains("check --nagios primary"), "{conf_text}");
    assert!(
        conf_text.contains("keepalived notify --role primary"),
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
