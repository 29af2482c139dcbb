//! The watch's mirror duty (issue 17): `posta watch` on mailserver2 with `[mirror]` in the
//! site file runs `posta mirror --once` every `[mirror] interval` while mailserver1 is
//! healthy, so mail delivered to mailserver1 appears on mailserver2 within about that long;
//! each account's lag is in the watch's state, `posta status --json` and `/metrics`.
//!
//! Two real Dovecots with a master user each; the site file is the example's, with a 2 s
//! mirror interval, mailserver1 probed on its IMAPS port and no sweep.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::example_site::MigrateSite;
use support::run::{Run, posta_command};
use support::{Ca, Dovecot};

const BIN: &str = env!("CARGO_BIN_EXE_posta");
const USER: &str = "pl-bob";
const PRIMARY_ADMIN_PW: &str = "pl-w-ms1-admin";
const BACKUP_ADMIN_PW: &str = "pl-w-ms2-admin";

fn message(id: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}@posta.test>\r\nFrom: sender@example.net\r\nTo: {USER}@example.org\r\n\
         Subject: {id}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nbody of {id}\r\n"
    )
    .into_bytes()
}

fn site(dir: &Path, primary: &Dovecot, backup: &Dovecot, http: u16) -> PathBuf {
    support::mirror::admin_password_files(dir, PRIMARY_ADMIN_PW, BACKUP_ADMIN_PW);
    let path = MigrateSite {
        primary: &[format!("imaps:{}", primary.imaps_port())],
        backup: &[format!("imaps:{}", backup.imaps_port())],
        maildir: None,
        migrate: support::mirror::ADMINS,
        accounts: &format!(
            "[[migrate.accounts]]\nuser = \"{USER}\"\ndeliver_to = \"{USER}@example.org\"\n"
        ),
    }
    .write(dir);
    // Fast rounds, the VIP on loopback, no takeover, no sweep, a pass every 2 s.
    let mut t: toml::Table = fs::read_to_string(&path)
        .expect("read site")
        .parse()
        .expect("site is TOML");
    let mut set = |table: &str, key: &str, value: toml::Value| {
        t.get_mut(table)
            .and_then(toml::Value::as_table_mut)
            .unwrap_or_else(|| panic!("no [{table}]"))
            .insert(key.into(), value);
    };
    set("probe", "interval", "1s".into());
    set("probe", "timeout", "1s".into());
    set("vip", "address", "192.0.2.9/32".into());
    set("vip", "interface", "lo".into());
    set("vip", "label", "lo:posta".into());
    set("watch", "auto_takeover", false.into());
    set("watch", "sweep_interval", "off".into());
    set("watch", "listen", format!("127.0.0.1:{http}").into());
    set("mirror", "interval", "2s".into());
    // mailserver1's probe logs in to no account: the example's password file is not here.
    let primary = t
        .get_mut("primary")
        .and_then(toml::Value::as_table_mut)
        .expect("[primary]");
    primary.remove("probe_user");
    primary.remove("probe_password_file");
    fs::write(&path, toml::to_string(&t).expect("render site")).expect("write site");
    path
}

/// A running `posta watch`, stopped with SIGTERM (then killed) on drop.
struct Watch {
    child: Child,
    state: PathBuf,
    log: PathBuf,
}

impl Watch {
    fn start(site: &Path, dir: &Path, state: PathBuf) -> Watch {
        let log = dir.join("watch.log");
        let out = fs::File::create(&log).expect("create watch log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(site)
            .arg("watch")
            .env_remove("POSTA_CONFIG")
            .env("POSTA_LOG", "posta=info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn posta watch");
        Watch { child, state, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (generously: a loaded 2-core machine) until `ok` holds of the watch's state.
    fn wait(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s: Value = fs::read(&self.state)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            if ok(&s) {
                return s;
            }
            let exited = self.child.try_wait().ok().flatten();
            assert!(
                Instant::now() < deadline && exited.is_none(),
                "timed out waiting for {what} (watch exited: {exited:?}); state {s}\nlog:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("ask for /metrics");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read /metrics");
    body
}

#[test]
fn a_healthy_watch_mirrors_mail_delivered_to_mailserver1_within_the_interval() {
    let ca = Ca::get();
    let users = [(USER, "pl-bob-secret")];
    let primary = Dovecot::start_with_master(ca, &users, ("admin", PRIMARY_ADMIN_PW));
    let backup = Dovecot::start_with_master(ca, &users, ("admin", BACKUP_ADMIN_PW));
    let dir = tempfile::tempdir().expect("temp dir");
    let http = support::ports::free_port();
    let site = site(dir.path(), &primary, &backup, http);
    let state: Value = toml::from_str::<toml::Table>(&fs::read_to_string(&site).unwrap())
        .map(|t| Value::String(t["watch"]["state_file"].as_str().unwrap().into()))
        .expect("the watch's state file");
    let mut watch = Watch::start(&site, dir.path(), PathBuf::from(state.as_str().unwrap()));
    let s = watch.wait("a healthy watch with a mirror pass done", |s| {
        s["state"] == "healthy" && s["last_mirror"]["ok"] == true
    });
    assert_eq!(s["mirror_interval_seconds"], 2.0, "{s}");

    // Mail delivered to mailserver1 now is on mailserver2 within an interval or two.
    primary.seed(USER, None, &message("ms1-new"), "", &[], SystemTime::now());
    let delivered = Instant::now();
    let deadline = delivered + Duration::from_secs(60);
    while backup.messages(USER, None).is_empty() {
        assert!(
            Instant::now() < deadline,
            "not mirrored within 60 s; log:\n{}",
            watch.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("mirrored {:?} after delivery", delivered.elapsed());
    let copies = backup.messages(USER, None);
    assert_eq!(copies.len(), 1);
    assert!(String::from_utf8_lossy(&copies[0].body).contains("<ms1-new@posta.test>"));

    // Its lag is in the watch's state, in status and in /metrics.
    let s = watch.wait("the account's lag recorded", |s| {
        s["mirror_accounts"][0]["lag_seconds"].as_u64().is_some()
    });
    assert_eq!(s["mirror_accounts"][0]["account"], USER, "{s}");
    let out = posta_command(BIN)
        .arg("--config")
        .arg(&site)
        .args(["status", "--json"])
        .output()
        .expect("run posta status");
    let status = Run::from_output(out);
    assert_eq!(status.code, 0, "{status:?}");
    let json = status.json();
    assert_eq!(json["mirror"]["accounts"][0]["account"], USER, "{json}");
    assert!(
        json["mirror"]["accounts"][0]["lag_seconds"].as_u64() < Some(60),
        "{json}"
    );
    let m = metrics(http);
    for name in [
        format!("posta_mirror_lag_seconds{{account=\"{USER}\"}} "),
        format!("posta_mirror_last_pass_timestamp_seconds{{account=\"{USER}\"}} "),
        "posta_watch_mirror_interval_seconds 2".to_string(),
    ] {
        assert!(
            m.lines().any(|l| l.starts_with(&name)),
            "{name} missing:\n{m}"
        );
    }
    assert!(!watch.log().contains("takeover"), "{}", watch.log());
}
