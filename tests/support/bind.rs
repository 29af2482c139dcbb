//! A private BIND9 `named`, authoritative for one zone, on a loopback high port (UDP and TCP).
//!
//! named runs in the foreground (`-g`) as our child process, so Drop can kill it by pid. It
//! drops to the `bind` user early: the temp dir is 0755 and the zone directory and key file
//! belong to bind (the zone dir must be writable for the dynamic-update journal). A TSIG key
//! from `tsig-keygen -a hmac-sha256` may update the zone, as posta's DNS takeover does; a second
//! key is known to named but not allowed to update (REFUSED). [`Bind::start_static`] serves a
//! zone that takes no updates, as a hand-edited zone file is, and [`Bind::reload_command`]
//! reloads it. [`Bind::start_static_transfer`] says explicitly whether loopback may transfer
//! the zone (AXFR); the others leave named's default.

use super::ports::free_port;
use super::sys::{
    loopback, require_root, require_tool, run, server_dir, tail, user_ids, wait_until,
};
use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const START_DEADLINE: Duration = Duration::from_secs(15);
const KEY_NAME: &str = "posta-test-key";
const OTHER_KEY_NAME: &str = "posta-test-other";

pub struct Bind {
    dir: tempfile::TempDir,
    zone: String,
    port: u16,
    child: Child,
}

impl Bind {
    /// Starts named serving `zone` (e.g. `example.test`) from `zone_body`, the complete zone
    /// file text (see [`Bind::minimal_zone`]). Returns once named answers the zone's SOA.
    pub fn start(zone: &str, zone_body: &str) -> Bind {
        Bind::launch(zone, zone_body, true, None)
    }

    /// Like [`Bind::start`], but the zone takes no dynamic updates: named reads its file on
    /// start and on [`Bind::reload_command`], as for a hand-edited static zone.
    pub fn start_static(zone: &str, zone_body: &str) -> Bind {
        Bind::launch(zone, zone_body, false, None)
    }

    /// Like [`Bind::start_static`], with zone transfers (AXFR) to 127.0.0.1 allowed or refused.
    pub fn start_static_transfer(zone: &str, zone_body: &str, allow_transfer: bool) -> Bind {
        Bind::launch(zone, zone_body, false, Some(allow_transfer))
    }

    fn launch(zone: &str, zone_body: &str, dynamic: bool, transfer: Option<bool>) -> Bind {
        require_root();
        let named = require_tool("named");
        let keygen = require_tool("tsig-keygen");
        let dig = require_tool("dig");
        let (uid, gid) = user_ids("bind");
        let dir = server_dir("posta-bind-");
        let port = free_port();
        let root = dir.path();

        let zones = root.join("zones");
        fs::create_dir(&zones).expect("failed to create zone dir");
        fs::write(zones.join(format!("{zone}.db")), zone_body).expect("failed to write zone");
        for p in [zones.clone(), zones.join(format!("{zone}.db"))] {
            chown(&p, Some(uid), Some(gid)).expect("failed to chown zone");
        }
        for name in [KEY_NAME, OTHER_KEY_NAME] {
            let key = run(Command::new(&keygen).args(["-a", "hmac-sha256", name])).stdout;
            let key_file = root.join(format!("{name}.key"));
            fs::write(&key_file, key).expect("failed to write key file");
            fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600))
                .expect("failed to chmod key file");
            chown(&key_file, Some(uid), Some(gid)).expect("failed to chown key file");
        }
        let conf = root.join("named.conf");
        fs::write(&conf, named_conf(root, zone, port, dynamic, transfer))
            .expect("failed to write named.conf");
        chown(root, Some(uid), Some(gid)).expect("failed to chown bind dir");

        let log = root.join("named.log");
        let log_file = File::create(&log).expect("failed to create named.log");
        let child = Command::new(named)
            .arg("-g") // foreground, logs on stderr
            .args(["-4", "-n", "1", "-u", "bind", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("failed to clone log handle"))
            .stderr(log_file)
            .spawn()
            .expect("failed to spawn named");
        let mut b = Bind {
            dir,
            zone: zone.to_owned(),
            port,
            child,
        };
        let answered = wait_until(START_DEADLINE, || {
            let exited = matches!(b.child.try_wait(), Ok(Some(_)));
            exited || b.soa_answers(&dig)
        });
        let exited = b.child.try_wait().ok().flatten();
        if answered.is_err() || exited.is_some() {
            panic!(
                "named did not answer SOA {zone} on port {port} within {START_DEADLINE:?} \
                 (exit status {exited:?}); log tail:\n{}",
                tail(&log, 30)
            );
        }
        b
    }

    /// A zone file with just SOA, NS (`ns1`, 127.0.0.1) and a short TTL.
    pub fn minimal_zone(zone: &str) -> String {
        format!(
            "$ORIGIN {zone}.\n$TTL 60\n\
             @ IN SOA ns1 hostmaster 1 60 60 600 60\n\
             @ IN NS ns1\n\
             ns1 IN A 127.0.0.1\n"
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The BIND-format TSIG key (`key "NAME" { algorithm ...; secret ...; };`), mode 0600.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join(format!("{KEY_NAME}.key"))
    }

    pub fn key_name(&self) -> &str {
        KEY_NAME
    }

    /// A second key named knows but does not allow to update the zone (mode 0600).
    pub fn other_key_file(&self) -> PathBuf {
        self.dir.path().join(format!("{OTHER_KEY_NAME}.key"))
    }

    /// The zone file named serves (owned by bind).
    pub fn zone_file(&self) -> PathBuf {
        self.dir
            .path()
            .join("zones")
            .join(format!("{}.db", self.zone))
    }

    /// A shell command that makes named reload changed zone files (SIGHUP, as `rndc reload`;
    /// this instance has no control channel).
    pub fn reload_command(&self) -> String {
        format!("kill -HUP {}", self.child.id())
    }

    /// named's stderr log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("named.log")
    }

    fn soa_answers(&self, dig: &Path) -> bool {
        Command::new(dig)
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                &self.zone,
                "SOA",
            ])
            .args(["+short", "+time=1", "+tries=1"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn named_conf(dir: &Path, zone: &str, port: u16, dynamic: bool, transfer: Option<bool>) -> String {
    let dir = dir.display();
    let update = if dynamic {
        format!("allow-update {{ key \"{KEY_NAME}\"; }};")
    } else {
        String::new()
    };
    let transfer = match transfer {
        Some(true) => "allow-transfer { 127.0.0.1; };",
        Some(false) => "allow-transfer { none; };",
        None => "",
    };
    format!(
        r#"// Private test instance written by tests/support/bind.rs
options {{
    directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    pid-file "{dir}/named.pid";
    lock-file "{dir}/named.lock";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
include "{dir}/{KEY_NAME}.key";
include "{dir}/{OTHER_KEY_NAME}.key";
zone "{zone}" {{
    type primary;
    file "{dir}/zones/{zone}.db";
    {update}
    {transfer}
}};
"#
    )
}
