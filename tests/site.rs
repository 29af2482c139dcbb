//! A whole two-host site in VIP mode, set up the way the README tells an administrator to
//! (issue 15, first acceptance line): network namespaces ms1, ms2 and a client on one bridge
//! (tests/support/netns.rs, names starting with `pfb`); on ms1 a real Postfix delivering over
//! LMTP into a real Dovecot, both listening on every address (its own and the VIP), and
//! `posta watch` on mailserver1's side; on ms2 `posta mta` and `posta watch`. The site file is
//! examples/site.toml itself with only addresses, names, paths and fast timings changed, key by key
//! (tests/support/example_site.rs).
//!
//! Five outage cycles: ms1's link down, its mail services killed, the host frozen, then link
//! and services again. Each takes over exactly once, never fails back while ms1 is down, and
//! after each failback the client's SMTP, POP3 and IMAP sessions through the VIP reach ms1
//! (Postfix's and Dovecot's greetings) within a second of mailserver2 letting the address go;
//! `posta status --json` names the holder at every step, "nobody" and "both" included.
//! During the first outage a client verifying mailserver1's name gets mailserver1's
//! certificate through the VIP from mailserver2's `posta mta` (SMTP STARTTLS and POP3S), and
//! the new one after the certificate is replaced and the mta gets SIGHUP.
//!
//! A frozen host is SIGSTOP on every process in ms1's namespace plus `arp off` on its link: a
//! namespace shares the test machine's kernel, which SIGSTOP cannot stop, so without `arp off`
//! ms1's kernel would go on answering ARP for the VIP and the case would be the same as
//! "services killed". A really frozen host (hung kernel, paused VM) answers nothing.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::example_site::{MtaTls, VipLayout, vip_site};
use support::netns::{Host, Lan};
use support::postfix::Options;
use support::{Ca, Dovecot, Postfix};

const BIN: &str = env!("CARGO_BIN_EXE_posta");
const DOMAIN: &str = "example.org";
const PROBE_PASSWORD: &str = "probe-password";
/// Postfix's greeting names its myhostname (tests/support/postfix.rs), posta mta's its own.
const MS1_SMTP: &str = "mx.example.org";
const MS2_SMTP: &str = "mailserver2.example.org";

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `posta ARGS` inside `host`'s namespace, in the background, output to `log`.
fn spawn(host: &Host, args: &[&str], log: &Path) -> Child {
    let out = fs::File::create(log).unwrap();
    Command::new("ip")
        .args(["netns", "exec", host.ns.name(), BIN])
        .args(args)
        .env_remove("POSTA_CONFIG")
        .env("POSTA_LOG", "posta=info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

struct Daemon {
    child: Child,
    state: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(host: &Host, args: &[&str], dir: &Path, name: &str) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let state = dir.join(format!("{name}.json"));
        let child = spawn(host, args, &log);
        Daemon { child, state, log }
    }

    fn watch(host: &Host, site: &Path, dir: &Path) -> Daemon {
        let name = format!("watch-{}", host.role);
        let state = dir.join(format!("{name}.json"));
        let args = [
            "--config",
            site.to_str().unwrap(),
            "watch",
            "--state-file",
            state.to_str().unwrap(),
        ];
        let d = Daemon::start(host, &args, dir, &name);
        d.wait("the first round", Duration::from_secs(30), |s| {
            !s["primary_up"].is_null()
        });
        d
    }

    fn snapshot(&self) -> Value {
        fs::read(&self.state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait(&self, what: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.snapshot();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; state {s}\nlog:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The transitions into `state` at or after `since` (epoch seconds).
    fn entered_since(s: &Value, state: &str, since: f64) -> Vec<f64> {
        s["transitions"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter(|t| t["to"] == state)
                    .filter_map(|t| t["at"].as_f64())
                    .filter(|at| *at >= since)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line a server at `address:port` sends, from inside `host`'s namespace; `Err`
/// when nothing answers within the short timeouts (a client retries).
fn greeting(host: &Host, address: IpAddr, port: u16) -> Result<String, String> {
    host.ns.run(move || {
        let to = SocketAddr::new(address, port);
        let stream = TcpStream::connect_timeout(&to, Duration::from_millis(250))
            .map_err(|e| format!("connect to {to}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .map_err(|e| format!("no greeting from {to}: {e}"))?;
        let _ = (&stream).write_all(if port == 143 {
            b"a LOGOUT\r\n"
        } else {
            b"QUIT\r\n"
        });
        Ok(line.trim_end().to_string())
    })
}

/// The serial number (hex, as openssl prints it, without leading zeros) of the certificate the
/// server at `addr` presents to a client in `host`'s namespace that verifies `name` against the
/// test CA; panics unless it verifies.
fn presented_serial(host: &Host, addr: SocketAddr, starttls: bool, name: &str) -> String {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", host.ns.name(), "openssl", "s_client"])
        .args(["-connect", &addr.to_string(), "-verify_return_error"])
        .args(["-verify_hostname", name, "-noservername", "-CAfile"])
        .arg(Ca::get().ca_pem());
    if starttls {
        cmd.args(["-starttls", "smtp"]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("Verify return code: 0 (ok)"),
        "{addr} does not verify as {name}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("certificate shown");
    let end = text
        .find("-----END CERTIFICATE-----")
        .expect("certificate end");
    let pem = &text[begin..end + "-----END CERTIFICATE-----".len()];
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    x509.stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write certificate");
    let serial = x509.wait_with_output().expect("openssl x509");
    String::from_utf8_lossy(&serial.stdout)
        .trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_string()
}

fn holds_vip(lan: &Lan, host: &Host) -> bool {
    let out = host.ns.ip(&["-4", "addr", "show", "dev", Host::INTERFACE]);
    String::from_utf8_lossy(&out.stdout).contains(&format!("{}/24", lan.vip4))
}

/// `posta status --json` on `host`: who answers for the VIP, by its own ARP probe.
fn who(host: &Host, site: &Path, dir: &Path) -> String {
    let none = dir.join("no-watch.json");
    let out = Command::new("ip")
        .args(["netns", "exec", host.ns.name(), BIN])
        .args(["--config", site.to_str().unwrap(), "status", "--json"])
        .args(["--watch-state-file", none.to_str().unwrap()])
        .env_remove("POSTA_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "posta status: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["vip_holders"]["who"]
        .as_str()
        .unwrap_or_else(|| panic!("no vip_holders.who in {v}"))
        .to_string()
}

/// Every process in ms1's namespace, for freezing it.
fn ms1_pids(lan: &Lan) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", lan.ms1.ns.name()])
        .output()
        .unwrap();
    let me = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|p| *p != me)
        .map(str::to_string)
        .collect()
}

fn signal_all(pids: &[String], signal: &str) {
    for pid in pids {
        let _ = Command::new("kill").args([signal, pid]).status();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    LinkDown,
    ServicesKilled,
    Frozen,
}

struct Site {
    lan: Lan,
    dir: tempfile::TempDir,
    site: PathBuf,
    servers: Option<(Postfix, Dovecot)>,
}

impl Site {
    fn vip(&self) -> IpAddr {
        self.lan.vip4.into()
    }

    /// Kills every mail server process on ms1 at once (SIGKILL to all of ms1's processes but
    /// its watch, `spare`), then lets the fixtures see them gone.
    fn kill_services(&mut self, spare: u32) {
        let doomed: Vec<String> = ms1_pids(&self.lan)
            .into_iter()
            .filter(|p| *p != spare.to_string())
            .collect();
        assert!(!doomed.is_empty(), "no mail server process on ms1");
        signal_all(&doomed, "-KILL");
        let (mut postfix, mut dovecot) = self.servers.take().expect("servers running");
        postfix.stop();
        dovecot.stop();
        self.servers = Some((postfix, dovecot));
    }

    fn start_services(&mut self) {
        let (mut postfix, mut dovecot) = self.servers.take().expect("servers");
        // Started from a thread in ms1's namespace, so they listen there.
        self.servers = Some(self.lan.ms1.ns.run(move || {
            dovecot.start_again();
            postfix.start_again();
            (postfix, dovecot)
        }));
    }
}

/// Seconds from mailserver2 letting the VIP go to the client's SMTP, POP3 and IMAP greetings
/// from ms1 through it.
fn failback_gap(s: &Site, limit: Duration) -> f64 {
    let deadline = Instant::now() + limit;
    while holds_vip(&s.lan, &s.lan.ms2) {
        assert!(
            Instant::now() < deadline,
            "mailserver2 never released the VIP"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let released = Instant::now();
    let reach = Duration::from_secs(10);
    for (port, want) in [(25, MS1_SMTP), (110, "Dovecot"), (143, "Dovecot")] {
        loop {
            let last = match greeting(&s.lan.client, s.vip(), port) {
                Ok(g) if g.contains(want) => break,
                Ok(g) => g,
                Err(e) => e,
            };
            assert!(
                released.elapsed() < reach,
                "port {port} through the VIP never reached ms1: {last}; client's neighbour \
                 entry: {}",
                s.lan.client.neighbour_line(s.vip())
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
    released.elapsed().as_secs_f64()
}

/// A check run once, while mailserver2 holds the VIP.
type DuringOutage<'a> = Option<Box<dyn FnOnce(&Site) + 'a>>;

fn cycle(
    s: &mut Site,
    ms2: &Daemon,
    ms1: &Daemon,
    outage: Outage,
    gaps: &mut Vec<f64>,
    during_outage: &mut DuringOutage<'_>,
) {
    let (lan, dir, site) = (&s.lan, s.dir.path().to_path_buf(), s.site.clone());
    let started = epoch();
    eprintln!("cycle: {outage:?}");
    let mut frozen = Vec::new();
    match outage {
        Outage::LinkDown => lan.ms1.link_down(),
        Outage::ServicesKilled => {}
        Outage::Frozen => {
            frozen = ms1_pids(lan);
            assert!(!frozen.is_empty(), "no process in ms1's namespace");
            signal_all(&frozen, "-STOP");
            lan.ms1
                .ns
                .ip(&["link", "set", Host::INTERFACE, "arp", "off"]);
        }
    }
    if outage == Outage::ServicesKilled {
        s.kill_services(ms1.child.id());
        // mailserver1's own watch gives the VIP up after half the grace: nobody answers then.
        ms1.wait("ms1 released the VIP", Duration::from_secs(30), |v| {
            v["state"] == "released"
        });
        assert!(!holds_vip(&s.lan, &s.lan.ms1), "{}", ms1.log());
    }
    let lan = &s.lan;
    assert_eq!(
        who(&lan.ms2, &site, &dir),
        "nobody",
        "ms1 down, before takeover"
    );
    let v = ms2.wait("takeover", Duration::from_secs(30), |v| {
        v["state"] == "taken_over"
    });
    assert_eq!(
        Daemon::entered_since(&v, "taken_over", started).len(),
        1,
        "one takeover: {v}"
    );
    assert!(holds_vip(lan, &lan.ms2));
    assert_eq!(who(&lan.ms2, &site, &dir), "this_host");
    let g = greeting(&lan.client, s.vip(), 25).unwrap_or_else(|e| e);
    assert!(g.contains(MS2_SMTP), "mailserver2's mta answers: {g}");
    if let Some(check) = during_outage.take() {
        check(s);
    }
    let lan = &s.lan;
    // ms1 stays down a while: no failback meanwhile.
    thread::sleep(Duration::from_secs(2));
    let v = ms2.snapshot();
    assert_eq!(
        v["state"], "taken_over",
        "no failback while ms1 is down: {v}"
    );
    match outage {
        Outage::LinkDown => lan.ms1.link_up(),
        Outage::ServicesKilled => s.start_services(),
        Outage::Frozen => {
            s.lan
                .ms1
                .ns
                .ip(&["link", "set", Host::INTERFACE, "arp", "on"]);
            signal_all(&frozen, "-CONT");
        }
    }
    let gap = failback_gap(s, Duration::from_secs(60));
    eprintln!("cycle {outage:?}: failback gap {gap:.3} s (release to SMTP+POP3+IMAP from ms1)");
    gaps.push(gap);
    let v = ms2.wait("healthy again", Duration::from_secs(60), |v| {
        v["state"] == "healthy"
    });
    assert_eq!(
        Daemon::entered_since(&v, "taken_over", started).len(),
        1,
        "still one takeover: {v}"
    );
    let lan = &s.lan;
    assert_eq!(who(&lan.ms2, &site, &dir), "mailserver1");
    assert!(holds_vip(lan, &lan.ms1) && !holds_vip(lan, &lan.ms2));
    ms1.wait("ms1 serving", Duration::from_secs(30), |v| {
        v["state"] == "serving"
    });
}

#[test]
fn five_outages_each_taken_over_once_and_failed_back_without_a_blackout() {
    let lan = Lan::named("pfb");
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::get();
    let probe_user = format!("probe@{DOMAIN}");
    // mailserver1's mail services, started in its namespace.
    let servers = lan.ms1.ns.run(move || {
        let users = [
            ("alice", "alice-password"),
            (probe_user.as_str(), PROBE_PASSWORD),
        ];
        let dovecot = Dovecot::start_in_namespace(ca, &users);
        let options = Options {
            sasl: Some(&dovecot.auth_socket()),
            lmtp: Some(dovecot.lmtp_port()),
            ports: Some([25, 587]),
            any_address: true,
            ..Options::default()
        };
        let postfix = Postfix::start_with(ca, DOMAIN, &["alice", "probe"], options);
        (postfix, dovecot)
    });
    lan.ms1.ns.ip(&[
        "addr",
        "add",
        &format!("{}/24", lan.vip4),
        "dev",
        Host::INTERFACE,
    ]);
    let (ms1_addr, ms2_addr, vip) = (
        lan.ms1.ipv4.to_string(),
        lan.ms2.ipv4.to_string(),
        lan.vip4.to_string(),
    );
    // posta mta on ms2: its own certificate, and mailserver1's for connections to the VIP. It
    // reloads them on SIGHUP after dropping root to the Maildirs' owner, so that user owns them
    // and can reach them.
    let tls = dir.path().join("tls");
    fs::create_dir(&tls).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let (own_cert, own_key) = ca.issue(&tls, "ms2", &format!("mailserver2.{DOMAIN}"), 0x22);
    let (vip_cert, vip_key) = ca.issue(&tls, "ms1-vip", "localhost", 0x11);
    let pop3_users = tls.join("pop3-users");
    let line = format!(
        "alice:{}\n",
        posta::mta::users::hash_password("alice-password")
    );
    fs::write(&pop3_users, line).unwrap();
    let (uid, gid) = support::sys::vmail_ids();
    let own = |f: &Path, mode: u32| {
        fs::set_permissions(f, fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
    };
    own(&tls, 0o700);
    for f in [&own_cert, &own_key, &vip_cert, &vip_key, &pop3_users] {
        own(f, 0o600);
    }
    let site = vip_site(&VipLayout {
        dir: dir.path(),
        primary_name: "localhost",
        vip: &vip,
        prefix: 24,
        interface: Host::INTERFACE,
        ms1: &ms1_addr,
        ms2: &ms2_addr,
        domain: DOMAIN,
        probe_password: PROBE_PASSWORD,
        ca_file: &ca.ca_pem(),
        maildir_owner: support::sys::VMAIL_USER,
        mta_tls: Some(MtaTls {
            cert: &own_cert,
            key: &own_key,
            vip_cert: &vip_cert,
            vip_key: &vip_key,
            pop3s_listen: "0.0.0.0:995",
            pop3_users: &pop3_users,
        }),
        // A probe of real Postfix and Dovecot (TLS included) on a loaded two-core machine
        // needs more than 250 ms now and then; a false "down" would fail the test.
        interval: "500ms",
        timeout: "450ms",
        fall: 2,
        rise: 3,
        grace: "4s",
    });
    let check = Command::new("ip")
        .args(["netns", "exec", lan.ms2.ns.name(), BIN])
        .args(["--config", site.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert!(check.status.success(), "config check: {check:?}");
    let mut s = Site {
        lan,
        dir,
        site,
        servers: Some(servers),
    };
    let (dir, site) = (s.dir.path().to_path_buf(), s.site.clone());
    let lan = &s.lan;
    let g = greeting(&lan.client, s.vip(), 25).unwrap_or_else(|e| e);
    assert!(g.contains(MS1_SMTP), "Postfix on ms1 through the VIP: {g}");

    let mta = Daemon::start(
        &lan.ms2,
        &["--config", site.to_str().unwrap(), "mta"],
        &dir,
        "mta-ms2",
    );
    let ms2_ip: IpAddr = lan.ms2.ipv4.into();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !greeting(&lan.client, ms2_ip, 25).is_ok_and(|g| g.contains(MS2_SMTP)) {
        assert!(Instant::now() < deadline, "posta mta: {}", mta.log());
        thread::sleep(Duration::from_millis(50));
    }

    // Both: the VIP added on ms2 by hand while ms1 holds it.
    assert_eq!(who(&lan.ms2, &site, &dir), "mailserver1");
    lan.ms2.ns.ip(&[
        "addr",
        "add",
        &format!("{}/24", lan.vip4),
        "dev",
        Host::INTERFACE,
    ]);
    assert_eq!(who(&lan.ms2, &site, &dir), "both");
    let ms1 = Daemon::watch(&lan.ms1, &site, &dir);
    let ms2 = Daemon::watch(&lan.ms2, &site, &dir);
    // ...and mailserver2's watch gives it up to its rightful owner.
    let mut gaps = Vec::new();
    let gap = failback_gap(&s, Duration::from_secs(30));
    eprintln!("duplicate: ms2 yielded; clients on ms1 {gap:.3} s after");
    assert_eq!(who(&s.lan.ms2, &site, &dir), "mailserver1");
    // Said once `posta failback` ends (after its second announcement burst).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ms2.log().contains("gave the address up") {
        assert!(Instant::now() < deadline, "{}", ms2.log());
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ms1.snapshot()["state"], "serving", "{}", ms1.log());

    // During the first outage: a client that verifies mailserver1's name ("localhost" here)
    // gets a valid certificate through the VIP from mailserver2's mta, over SMTP STARTTLS and
    // POP3S; and after a SIGHUP with a new certificate, the new one.
    let mta_pid = mta.child.id().to_string();
    let mut tls_check: DuringOutage<'_> = Some(Box::new(|s: &Site| {
        let smtp = SocketAddr::new(s.vip(), 25);
        let pop3s = SocketAddr::new(s.vip(), 995);
        for (addr, starttls) in [(smtp, true), (pop3s, false)] {
            let serial = presented_serial(&s.lan.client, addr, starttls, "localhost");
            assert_eq!(serial, "11", "mailserver1's certificate at {addr}");
        }
        ca.issue(&tls, "ms1-vip", "localhost", 0x12);
        own(&vip_cert, 0o600);
        own(&vip_key, 0o600);
        signal_all(std::slice::from_ref(&mta_pid), "-HUP");
        for (addr, starttls) in [(smtp, true), (pop3s, false)] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let serial = presented_serial(&s.lan.client, addr, starttls, "localhost");
                if serial == "12" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "after SIGHUP {addr} still presents serial {serial}"
                );
                thread::sleep(Duration::from_millis(100));
            }
        }
        eprintln!("TLS through the VIP: mailserver1's certificate, and the new one after SIGHUP");
    }));
    for outage in [
        Outage::LinkDown,
        Outage::ServicesKilled,
        Outage::Frozen,
        Outage::LinkDown,
        Outage::ServicesKilled,
    ] {
        cycle(&mut s, &ms2, &ms1, outage, &mut gaps, &mut tls_check);
    }
    assert!(tls_check.is_none(), "the TLS check ran");
    let worst = gaps.iter().copied().fold(0.0, f64::max);
    eprintln!("failback gaps (s): {gaps:?}; worst {worst:.3}");
    assert!(
        worst < 3.0,
        "clients reach ms1 promptly after every failback: {gaps:?}"
    );
    drop(mta);
}
