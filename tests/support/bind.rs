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
//!
//! [`Bind::start_in`] and [`Bind::start_secondary_in`] put named on port 53 of an address inside
//! a network namespace (tests/support/netns.rs), as on a LAN: a primary that takes signed
//! updates and NOTIFYs its secondaries, and a secondary that transfers the zone from it. The NS
//! records name those addresses, so posta's read-back from "every authoritative server" asks
//! both on port 53, as it would on a real site.

use super::ports::free_port;
use super::sys::{
    loopback, require_root, require_tool, run, server_dir, tail, user_ids, wait_until,
};
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    addr: SocketAddr,
    /// The network namespace named runs in; `None`: this process's.
    netns: Option<String>,
    child: Child,
}

/// What one named instance is for the zone.
enum Role {
    /// Serves the zone from its file; `dynamic`: takes signed updates. `transfer`: who may
    /// transfer the zone (`None`: named's default). `notify`: secondaries told of each change.
    Primary {
        dynamic: bool,
        transfer: Option<Vec<Ipv4Addr>>,
        notify: Vec<Ipv4Addr>,
    },
    /// Transfers the zone from this primary (port 53).
    Secondary { primary: Ipv4Addr },
}

/// Where named listens.
struct Place {
    netns: Option<String>,
    addr: SocketAddr,
}

impl Bind {
    /// Starts named serving `zone` (e.g. `example.test`) from `zone_body`, the complete zone
    /// file text (see [`Bind::minimal_zone`]). Returns once named answers the zone's SOA.
    pub fn start(zone: &str, zone_body: &str) -> Bind {
        Bind::launch(
            zone,
            zone_body,
            Bind::primary(true, None),
            Place::loopback(),
        )
    }

    /// A primary on `addr`:53 inside network namespace `netns`, taking signed updates and
    /// allowing `secondaries` to transfer the zone, each NOTIFYed of every change.
    pub fn start_in(
        netns: &str,
        addr: Ipv4Addr,
        zone: &str,
        zone_body: &str,
        secondaries: &[Ipv4Addr],
    ) -> Bind {
        let role = Role::Primary {
            dynamic: true,
            transfer: Some(secondaries.to_vec()),
            notify: secondaries.to_vec(),
        };
        Bind::launch(zone, zone_body, role, Place::lan(netns, addr))
    }

    /// A secondary on `addr`:53 inside `netns` that transfers `zone` from `primary`:53. Returns
    /// once it serves the zone (the first transfer is done).
    pub fn start_secondary_in(netns: &str, addr: Ipv4Addr, zone: &str, primary: Ipv4Addr) -> Bind {
        let role = Role::Secondary { primary };
        Bind::launch(zone, "", role, Place::lan(netns, addr))
    }

    fn primary(dynamic: bool, transfer: Option<bool>) -> Role {
        Role::Primary {
            dynamic,
            transfer: transfer.map(|yes| {
                if yes {
                    vec![Ipv4Addr::LOCALHOST]
                } else {
                    Vec::new()
                }
            }),
            notify: Vec::new(),
        }
    }

    /// Like [`Bind::start`], but the zone takes no dynamic updates: named reads its file on
    /// start and on [`Bind::reload_command`], as for a hand-edited static zone.
    pub fn start_static(zone: &str, zone_body: &str) -> Bind {
        Bind::launch(
            zone,
            zone_body,
            Bind::primary(false, None),
            Place::loopback(),
        )
    }

    /// Like [`Bind::start_static`], with zone transfers (AXFR) to 127.0.0.1 allowed or refused.
    pub fn start_static_transfer(zone: &str, zone_body: &str, allow_transfer: bool) -> Bind {
        Bind::launch(
            zone,
            zone_body,
            Bind::primary(false, Some(allow_transfer)),
            Place::loopback(),
        )
    }

    fn launch(zone: &str, zone_body: &str, role: Role, place: Place) -> Bind {
        require_root();
        let named = require_tool("named");
        let keygen = require_tool("tsig-keygen");
        let dig = require_tool("dig");
        let (uid, gid) = user_ids("bind");
        let dir = server_dir("posta-bind-");
        let root = dir.path();

        let zones = root.join("zones");
        fs::create_dir(&zones).expect("failed to create zone dir");
        chown(&zones, Some(uid), Some(gid)).expect("failed to chown zone dir");
        // A secondary writes its own copy after the transfer.
        if matches!(role, Role::Primary { .. }) {
            let file = zones.join(format!("{zone}.db"));
            fs::write(&file, zone_body).expect("failed to write zone");
            chown(&file, Some(uid), Some(gid)).expect("failed to chown zone");
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
        fs::write(&conf, named_conf(root, zone, place.addr, &role))
            .expect("failed to write named.conf");
        chown(root, Some(uid), Some(gid)).expect("failed to chown bind dir");

        let log = root.join("named.log");
        let log_file = File::create(&log).expect("failed to create named.log");
        let mut command = match &place.netns {
            None => Command::new(named),
            Some(ns) => {
                let mut c = Command::new(require_tool("ip"));
                // `ip netns exec` execs named: the child's pid is named's, as Drop needs.
                c.args(["netns", "exec", ns]).arg(named);
                c
            }
        };
        let child = command
            .arg("-g") // foreground, logs on stderr
            .args(["-4", "-n", "1", "-u", "bind", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("failed to clone log handle"))
            .stderr(log_file)
            .spawn()
            .expect("failed to spawn named");
        let (addr, netns) = (place.addr, place.netns);
        let mut b = Bind {
            dir,
            zone: zone.to_owned(),
            addr,
            netns,
            child,
        };
        let answered = wait_until(START_DEADLINE, || {
            let exited = matches!(b.child.try_wait(), Ok(Some(_)));
            exited || b.soa_answers(&dig)
        });
        let exited = b.child.try_wait().ok().flatten();
        if answered.is_err() || exited.is_some() {
            panic!(
                "named did not answer SOA {zone} at {addr} within {START_DEADLINE:?} \
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
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
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

    /// `dig ARGS` against this server, run where named runs (its namespace).
    pub fn dig(&self, args: &[&str]) -> std::process::Output {
        let dig = require_tool("dig");
        let mut command = match &self.netns {
            None => Command::new(dig),
            Some(ns) => {
                let mut c = Command::new(require_tool("ip"));
                c.args(["netns", "exec", ns]).arg(dig);
                c
            }
        };
        command
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string()])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("failed to run dig: {e}"))
    }

    fn soa_answers(&self, _dig: &Path) -> bool {
        let o = self.dig(&[&self.zone, "SOA", "+short", "+time=1", "+tries=1"]);
        o.status.success() && !o.stdout.is_empty()
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Place {
    fn loopback() -> Place {
        Place {
            netns: None,
            addr: loopback(free_port()),
        }
    }

    fn lan(netns: &str, addr: Ipv4Addr) -> Place {
        Place {
            netns: Some(netns.to_owned()),
            addr: SocketAddr::new(IpAddr::V4(addr), 53),
        }
    }
}

fn addr_list(addrs: &[Ipv4Addr]) -> String {
    if addrs.is_empty() {
        return "none;".into();
    }
    addrs.iter().map(|a| format!("{a}; ")).collect()
}

fn named_conf(dir: &Path, zone: &str, addr: SocketAddr, role: &Role) -> String {
    let dir = dir.display();
    let (ip, port) = (addr.ip(), addr.port());
    let (zone_type, zone_options, notify) = match role {
        Role::Primary {
            dynamic,
            transfer,
            notify,
        } => {
            let mut opts = String::new();
            if *dynamic {
                opts.push_str(&format!("allow-update {{ key \"{KEY_NAME}\"; }};\n    "));
            }
            if let Some(t) = transfer {
                opts.push_str(&format!("allow-transfer {{ {} }};\n    ", addr_list(t)));
            }
            let notify = if notify.is_empty() {
                "notify no;".to_string()
            } else {
                opts.push_str(&format!("also-notify {{ {} }};", addr_list(notify)));
                // Only the listed secondaries, not every NS target on port 53 of the host.
                format!("notify explicit;\n    notify-source {ip};")
            };
            ("primary", opts, notify)
        }
        Role::Secondary { primary } => (
            "secondary",
            format!("primaries {{ {primary}; }};\n    transfer-source {ip};"),
            "notify no;".to_string(),
        ),
    };
    format!(
        r#"// Private test instance written by tests/support/bind.rs
options {{
    directory "{dir}";
    listen-on port {port} {{ {ip}; }};
    listen-on-v6 {{ none; }};
    pid-file "{dir}/named.pid";
    lock-file "{dir}/named.lock";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    recursion no;
    dnssec-validation no;
    {notify}
}};
controls {{ }};
include "{dir}/{KEY_NAME}.key";
include "{dir}/{OTHER_KEY_NAME}.key";
zone "{zone}" {{
    type {zone_type};
    file "{dir}/zones/{zone}.db";
    {zone_options}
}};
"#
    )
}
