//! `posta watch` in network namespaces (tests/support/netns.rs): mailserver1, mailserver2 and
//! a client on one bridge, mailserver1 holding the virtual IP, SMTP greeters that name their
//! host. The watch runs on mailserver2 with short intervals; what is asserted comes from its
//! state file (transitions with times) and from the client (whose greeting the VIP gives).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::netns::{Host, Lan};

const BIN: &str = env!("CARGO_BIN_EXE_posta");

/// Interval 300 ms, fall 2, rise 3, grace 2 s: detection in ~0.6 s, takeover after 2 s more.
fn site(lan: &Lan, dir: &Path, grace: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"domain = "example.org"
[primary]
name = "mailserver1.example.org"
address = "{ms1}"
services = ["smtp:25?starttls=no"]
[backup]
name = "mailserver2.example.org"
address = "{ms2}"
services = ["smtp:25?starttls=no"]
[takeover]
mode = "vip"
state_file = "{dir}/takeover.json"
[vip]
address = "{vip}/24"
interface = "{dev}"
[probe]
interval = "300ms"
timeout = "250ms"
fall = 2
rise = 3
takeover_grace = "{grace}"
[watch]
auto_takeover = true
auto_failback = true
state_file = "{dir}/watch.json"
{extra}
"#,
        ms1 = lan.ms1.ipv4,
        ms2 = lan.ms2.ipv4,
        vip = lan.vip4,
        dev = Host::INTERFACE,
        dir = dir.display(),
    );
    let path = dir.join("site.toml");
    fs::write(&path, text).unwrap();
    path
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

fn run(host: &Host, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", host.ns.name(), BIN])
        .args(args)
        .env_remove("POSTA_CONFIG")
        .output()
        .unwrap()
}

struct Watch {
    child: Child,
    state: PathBuf,
    log: PathBuf,
}

impl Watch {
    fn start(host: &Host, site: &Path, dir: &Path, extra: &[&str]) -> Watch {
        let log = dir.join(format!("watch-{}.log", host.role));
        let state = dir.join(format!("watch-{}.json", host.role));
        let mut args = vec!["--config", site.to_str().unwrap(), "watch", "--state-file"];
        args.push(state.to_str().unwrap());
        args.extend_from_slice(extra);
        let child = spawn(host, &args, &log);
        let w = Watch { child, state, log };
        w.wait("the first round", Duration::from_secs(20), |s| {
            !s["primary_up"].is_null()
        });
        w
    }

    fn snapshot(&self) -> Value {
        fs::read(&self.state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
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
                fs::read_to_string(&self.log).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// When the watch entered `state` (the last such transition).
    fn entered(s: &Value, state: &str) -> Option<f64> {
        s["transitions"]
            .as_array()?
            .iter()
            .rev()
            .find(|t| t["to"] == state)
            .and_then(|t| t["at"].as_f64())
    }
}

impl Drop for Watch {
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

fn holds_vip(lan: &Lan, host: &Host) -> bool {
    let out = host.ns.ip(&["-4", "addr", "show", "dev", Host::INTERFACE]);
    String::from_utf8_lossy(&out.stdout).contains(&format!("{}/24", lan.vip4))
}

fn greeting(lan: &Lan) -> String {
    lan.client
        .smtp_greeting(lan.vip4.into())
        .unwrap_or_else(|e| e)
}

#[test]
fn host_death_is_detected_taken_over_after_the_grace_and_failed_back_after_the_rise() {
    let lan = Lan::new();
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let site = site(&lan, dir.path(), "2s", "");
    lan.ms1.ns.ip(&[
        "addr",
        "add",
        &format!("{}/24", lan.vip4),
        "dev",
        Host::INTERFACE,
    ]);
    assert!(greeting(&lan).starts_with("220 ms1 "), "{}", greeting(&lan));
    let watch = Watch::start(&lan.ms2, &site, dir.path(), &[]);
    assert_eq!(watch.snapshot()["state"], "healthy");

    // mailserver1 dies (its link goes down with it).
    let killed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    lan.ms1.link_down();
    let s = watch.wait("takeover", Duration::from_secs(60), |s| {
        s["state"] == "taken_over"
    });
    let down = Watch::entered(&s, "down").expect("went down");
    let taken = Watch::entered(&s, "taken_over").expect("took over");
    // fall = 2 failed rounds at 300 ms: at least one interval after the death, and promptly.
    assert!(down - killed >= 0.3, "down only after fall x interval: {s}");
    assert!(down - killed < 10.0, "detected promptly: {s}");
    assert!(
        taken - down >= 2.0,
        "no takeover before the grace ended: {s}"
    );
    assert!(taken - down < 30.0, "takeover right after the grace: {s}");
    assert!(holds_vip(&lan, &lan.ms2));
    assert!(greeting(&lan).starts_with("220 ms2 "), "{}", greeting(&lan));

    // mailserver1 comes back without its address (mailserver2 holds it now).
    lan.ms1.ns.ip(&[
        "addr",
        "del",
        &format!("{}/24", lan.vip4),
        "dev",
        Host::INTERFACE,
    ]);
    lan.ms1.link_up();
    let s = watch.wait("failback", Duration::from_secs(60), |s| {
        s["state"] == "healthy" && Watch::entered(s, "healthy").is_some()
    });
    let back = Watch::entered(&s, "primary_back").expect("primary back");
    let healthy = Watch::entered(&s, "healthy").expect("healthy");
    assert!(
        healthy - back >= 0.6,
        "failback only after the rise window: {s}"
    );
    assert!(
        !holds_vip(&lan, &lan.ms2),
        "mailserver2 released the address"
    );
    // mailserver1 takes its address back, as its post-failback hook or its operator would.
    let vip = format!("{}/24", lan.vip4);
    let reclaim = run(
        &lan.ms1,
        &[
            "failback",
            "vip",
            "--reclaim",
            "--address",
            &vip,
            "--dev",
            Host::INTERFACE,
            "--state-file",
            dir.path().join("ms1.json").to_str().unwrap(),
        ],
    );
    assert!(reclaim.status.success(), "{reclaim:?}");
    assert!(greeting(&lan).starts_with("220 ms1 "), "{}", greeting(&lan));

    // posta status reads the daemon's state.
    let status = run(
        &lan.ms2,
        &[
            "--config",
            site.to_str().unwrap(),
            "status",
            "--watch-state-file",
            watch.state.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("watch: healthy"), "{text}");
}

#[test]
fn a_flapping_primary_never_causes_takeover() {
    let lan = Lan::new();
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let site = site(&lan, dir.path(), "3s", "");
    let watch = Watch::start(&lan.ms2, &site, dir.path(), &[]);
    // Down 1.5 s, up 0.6 s, for 15 s: detected down every time, never for the whole grace.
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        lan.ms1.link_down();
        thread::sleep(Duration::from_millis(1500));
        lan.ms1.link_up();
        thread::sleep(Duration::from_millis(600));
    }
    let s = watch.snapshot();
    let to: Vec<&str> = s["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["to"].as_str())
        .collect();
    assert!(to.contains(&"down"), "the outages were detected: {s}");
    assert!(!to.contains(&"taken_over"), "no takeover: {s}");
    assert!(!holds_vip(&lan, &lan.ms2));
}

#[test]
fn a_witness_that_still_sees_the_primary_vetoes_the_takeover() {
    let lan = Lan::new();
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let witness_addr = format!("{}:9725", lan.client.ipv4);
    let site = site(
        &lan,
        dir.path(),
        "1s",
        &format!("witnesses = [\"http://{witness_addr}\"]"),
    );
    let witness = Watch::start(
        &lan.client,
        &site,
        dir.path(),
        &["--witness", "--listen", &witness_addr],
    );
    let watch = Watch::start(&lan.ms2, &site, dir.path(), &[]);
    // Only mailserver2 loses its way to mailserver1.
    lan.ms2
        .ns
        .ip(&["route", "add", "blackhole", &format!("{}/32", lan.ms1.ipv4)]);
    watch.wait("down", Duration::from_secs(30), |s| s["state"] == "down");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        assert_ne!(watch.snapshot()["state"], "taken_over");
        thread::sleep(Duration::from_millis(100));
    }
    assert!(!holds_vip(&lan, &lan.ms2));
    let log = fs::read_to_string(&watch.log).unwrap();
    assert!(log.contains("takeover vetoed"), "{log}");
    assert_eq!(witness.snapshot()["primary_up"], true);
}

/// Service hygiene without namespaces: one watch per site, /metrics and /status served,
/// SIGHUP with a broken site file keeps the old one, SIGTERM stops cleanly.
#[test]
fn one_instance_metrics_reload_and_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::ports::free_port();
    let http = support::ports::free_port();
    let site = dir.path().join("site.toml");
    let text = format!(
        r#"domain = "example.org"
[primary]
name = "mailserver1.example.org"
address = "127.0.0.1"
services = ["smtp:{port}?starttls=no"]
[backup]
name = "mailserver2.example.org"
address = "127.0.0.2"
[takeover]
mode = "dns"
state_file = "{d}/takeover.json"
[dns]
server = "127.0.0.1:53"
zone = "example.org"
name = "mail.example.org"
tsig_key_file = "{d}/key"
[probe]
interval = "200ms"
timeout = "150ms"
fall = 2
takeover_grace = "1h"
[watch]
listen = "127.0.0.1:{http}"
state_file = "{d}/watch.json"
"#,
        d = dir.path().display()
    );
    fs::write(
        dir.path().join("key"),
        "key k { algorithm hmac-sha256; secret \"c2VjcmV0\"; };\n",
    )
    .unwrap();
    fs::set_permissions(
        dir.path().join("key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::write(&site, &text).unwrap();
    let log = dir.path().join("watch.log");
    let start = |log: &Path| {
        let out = fs::File::create(log).unwrap();
        Command::new(BIN)
            .args(["--config", site.to_str().unwrap(), "watch"])
            .env_remove("POSTA_CONFIG")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap()
    };
    let mut first = start(&log);
    let state = dir.path().join("watch.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fs::read_to_string(&state).is_ok_and(|s| s.contains("\"down\"")) {
        assert!(
            Instant::now() < deadline,
            "{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // A second watch for the same site refuses to start.
    let second = Command::new(BIN)
        .args(["--config", site.to_str().unwrap(), "watch"])
        .env_remove("POSTA_CONFIG")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another posta watch"));
    // /metrics and /status.
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    let metrics = get("/metrics");
    assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
    assert!(
        metrics.contains("posta_watch_state{state=\"down\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("posta_watch_grace_remaining_seconds"),
        "{metrics}"
    );
    assert!(get("/status").contains("\"primary_up\":false"));
    assert!(get("/nothing").starts_with("HTTP/1.0 404"));
    // A broken site file on SIGHUP is refused and the old one kept.
    fs::write(&site, text.replace("fall = 2", "fall = \"two\"")).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &first.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&log)
        .is_ok_and(|l| l.contains("reload failed, keeping the old site file"))
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(first.try_wait().unwrap().is_none(), "still running");
    // SIGTERM: stops after the current round.
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = first.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        fs::read_to_string(&log)
            .unwrap()
            .contains("posta watch stopped")
    );
}

/// A DNS takeover that the compare-and-swap refuses (the record holds an address nobody
/// expected): the watch logs the child's reason, which `posta takeover` prints on stdout, and
/// waits out a backoff before retrying. It used to log an empty reason and retry every round.
#[test]
fn a_refused_dns_takeover_is_logged_with_its_reason_and_backs_off() {
    let bind = support::Bind::start(
        "example.org",
        &(support::Bind::minimal_zone("example.org") + "mail 60 IN A 10.9.9.9\n"),
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("tsig.key");
    fs::copy(bind.key_file(), &key).unwrap();
    fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let port = support::ports::free_port();
    let site = dir.path().join("site.toml");
    fs::write(
        &site,
        format!(
            r#"domain = "example.org"
[primary]
name = "mailserver1.example.org"
address = "127.0.0.1"
services = ["smtp:{port}?starttls=no", "imap:{port}"]
[backup]
name = "mailserver2.example.org"
address = "127.0.0.2"
[takeover]
mode = "dns"
state_file = "{d}/takeover.json"
[dns]
server = "{server}"
zone = "example.org"
name = "mail.example.org"
ttl = 1
tsig_key_file = "{d}/tsig.key"
[probe]
interval = "200ms"
timeout = "150ms"
fall = 1
takeover_grace = "1s"
[watch]
auto_takeover = true
state_file = "{d}/watch.json"
"#,
            d = dir.path().display(),
            server = bind.addr(),
        ),
    )
    .unwrap();
    let log = dir.path().join("watch.log");
    let out = fs::File::create(&log).unwrap();
    let mut child = Command::new(BIN)
        .args(["--config", site.to_str().unwrap(), "watch"])
        .env_remove("POSTA_CONFIG")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains("takeover failed, retrying in 5s") || Instant::now() > deadline {
            break text;
        }
        thread::sleep(Duration::from_millis(100));
    };
    // Watch two more probe rounds' worth of log: no second takeover inside the 5 s backoff.
    thread::sleep(Duration::from_millis(1000));
    let later = fs::read_to_string(&log).unwrap_or_default();
    child.kill().unwrap();
    child.wait().unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("takeover failed, retrying in 5s"))
        .unwrap_or_else(|| panic!("no failed takeover logged: {text}"));
    assert!(
        line.contains("10.9.9.9"),
        "the reason names what the record holds: {line}"
    );
    assert_eq!(
        later.matches("command=takeover").count(),
        1,
        "one takeover, then the backoff: {later}"
    );
    // Probe failures and the move to down name the services that failed.
    let down = text
        .lines()
        .find(|l| l.contains("to=down"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        down.contains("primary smtp://") && down.contains("primary imap://"),
        "{down}"
    );
}

/// Puts the virtual IP on `host`, as mailserver1's own configuration (or an operator) does.
fn add_vip(lan: &Lan, host: &Host) {
    host.ns.ip(&[
        "addr",
        "add",
        &format!("{}/24", lan.vip4),
        "dev",
        Host::INTERFACE,
    ]);
}

/// `posta status` on `host`, as JSON and as the table.
fn status(host: &Host, site: &Path, dir: &Path) -> (Value, String) {
    let none = dir.join("no-watch.json");
    let args = |json: bool| {
        let mut a = vec![
            "--config",
            site.to_str().unwrap(),
            "status",
            "--watch-state-file",
            none.to_str().unwrap(),
        ];
        if json {
            a.push("--json");
        }
        run(host, &a)
    };
    let (json, table) = (args(true), args(false));
    assert!(json.status.success(), "{json:?}");
    assert!(table.status.success(), "{table:?}");
    (
        serde_json::from_slice(&json.stdout).unwrap(),
        String::from_utf8_lossy(&table.stdout).into_owned(),
    )
}

/// `GET path` from inside `host`'s namespace; the response's body.
fn http_get(host: &Host, addr: &str, path: &str) -> String {
    let (addr, request) = (
        addr.parse::<std::net::SocketAddr>().unwrap(),
        format!("GET {path} HTTP/1.0\r\n\r\n"),
    );
    host.ns.run(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split_once("\r\n\r\n").unwrap().1.to_string()
    })
}

/// Waits until the watch's log contains `needle`; the log.
fn wait_log(watch: &Watch, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = fs::read_to_string(&watch.log).unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{log}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Who answers for the VIP, from an ARP probe that counts every answer: `posta status` used to
/// say "held by mailserver1" from the state file when nobody held it, and said nothing while
/// both hosts did. Now status names nobody, mailserver1 (by the MAC its own address answers
/// with) and both; a witness, which never acts, shows the duplicate in /metrics; and
/// mailserver2's watch gives the address up to mailserver1, its rightful owner (RFC 5227 §2.4),
/// saying so once.
#[test]
fn status_and_metrics_name_who_answers_for_the_vip_and_the_backup_yields_a_duplicate() {
    let lan = Lan::new();
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let site = site(&lan, dir.path(), "1h", "");

    let (s, table) = status(&lan.ms2, &site, dir.path());
    assert_eq!(s["vip_holders"]["who"], "nobody", "{s}");
    assert_eq!(s["vip_holders"]["count"], 0, "{s}");
    assert!(table.contains("nobody answers for"), "{table}");

    add_vip(&lan, &lan.ms1);
    for host in [&lan.ms2, &lan.client] {
        let (s, table) = status(host, &site, dir.path());
        assert_eq!(s["vip_holders"]["who"], "mailserver1", "{}: {s}", host.role);
        assert_eq!(s["vip_holders"]["mailserver1_mac"], lan.ms1.mac.as_str());
        assert!(table.contains("mailserver1 answers for"), "{table}");
    }

    add_vip(&lan, &lan.ms2);
    for host in [&lan.ms2, &lan.client] {
        let (s, table) = status(host, &site, dir.path());
        assert_eq!(s["vip_holders"]["who"], "both", "{}: {s}", host.role);
        assert_eq!(s["vip_holders"]["count"], 2, "{s}");
        assert!(table.contains("BOTH: 2 hosts answer for"), "{table}");
    }
    let (s, table) = status(&lan.ms2, &site, dir.path());
    assert_eq!(s["vip_holders"]["this_host"], true, "{s}");
    assert_eq!(s["vip_holders"]["others"][0], lan.ms1.mac.as_str(), "{s}");
    assert!(table.contains("this host is mailserver2"), "{table}");

    let listen = format!("{}:9725", lan.client.ipv4);
    let witness = Watch::start(
        &lan.client,
        &site,
        dir.path(),
        &["--witness", "--listen", &listen],
    );
    witness.wait("the duplicate", Duration::from_secs(30), |s| {
        s["vip_holders"]["who"] == "both"
    });
    let metrics = http_get(&lan.client, &listen, "/metrics");
    for line in ["posta_vip_holders 2", "posta_vip_holder{who=\"both\"} 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }

    let watch = Watch::start(&lan.ms2, &site, dir.path(), &[]);
    watch.wait("the address given up", Duration::from_secs(30), |s| {
        s["vip_holders"]["who"] == "mailserver1"
    });
    assert!(!holds_vip(&lan, &lan.ms2), "mailserver2 still holds it");
    assert!(holds_vip(&lan, &lan.ms1), "mailserver1 keeps it");
    let log = wait_log(&watch, "gave the address up", Duration::from_secs(10));
    let error = log
        .lines()
        .find(|l| l.contains("BOTH: 2 hosts answer"))
        .unwrap_or_else(|| panic!("the duplicate was not logged:\n{log}"));
    assert!(error.contains("ERROR"), "{error}");
    assert!(error.contains("gives it up (RFC 5227 §2.4)"), "{error}");
    witness.wait("mailserver1 alone", Duration::from_secs(30), |s| {
        s["vip_holders"]["who"] == "mailserver1"
    });
    let metrics = http_get(&lan.client, &listen, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "posta_vip_holder{who=\"mailserver1\"} 1"),
        "{metrics}"
    );
    // Said once per change, not every round.
    let log = fs::read_to_string(&watch.log).unwrap();
    assert_eq!(log.matches("BOTH: 2 hosts answer").count(), 1, "{log}");
    let (s, _) = status(&lan.ms2, &site, dir.path());
    assert_eq!(s["vip_holders"]["who"], "mailserver1", "{s}");
}

/// A takeover never proceeds while mailserver1 still answers for the address (here its mail
/// service is dead but its host is up): the watch's takeover is refused, naming its MAC. Once
/// the host is gone the takeover happens and status says this host holds it; when mailserver1
/// comes back with the address still configured (a reboot), mailserver2 finds the duplicate
/// and gives the address up at once, not after the rise window (50 rounds here).
#[test]
fn no_takeover_while_mailserver1_answers_and_the_backup_yields_when_it_returns() {
    let lan = Lan::new();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let site = site(&lan, dir.path(), "1s", "");
    let text = fs::read_to_string(&site)
        .unwrap()
        .replace("rise = 3", "rise = 50");
    fs::write(&site, text).unwrap();
    add_vip(&lan, &lan.ms1);
    let watch = Watch::start(&lan.ms2, &site, dir.path(), &[]);

    let log = wait_log(
        &watch,
        "takeover failed, retrying in",
        Duration::from_secs(60),
    );
    let refused = log
        .lines()
        .find(|l| l.contains("takeover failed, retrying in"))
        .unwrap();
    assert!(refused.contains(&lan.ms1.mac), "{refused}");
    assert!(
        !holds_vip(&lan, &lan.ms2),
        "taken while mailserver1 answers"
    );
    let s = watch.snapshot();
    assert_eq!(s["state"], "down", "{s}");
    assert_eq!(s["vip_holders"]["who"], "mailserver1", "{s}");

    lan.ms1.link_down();
    watch.wait("the takeover", Duration::from_secs(60), |s| {
        s["state"] == "taken_over"
    });
    watch.wait("this host answering", Duration::from_secs(30), |s| {
        s["vip_holders"]["who"] == "this_host"
    });
    let (s, table) = status(&lan.ms2, &site, dir.path());
    assert_eq!(s["vip_holders"]["who"], "this_host", "{s}");
    assert!(table.contains("this host is mailserver2"), "{table}");

    let _g1 = lan.ms1.greeter();
    lan.ms1.link_up();
    let s = watch.wait("the address given up", Duration::from_secs(60), |s| {
        s["state"] == "healthy"
    });
    let reason = s["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["to"] == "healthy")
        .map(|t| t["reason"].to_string())
        .unwrap();
    assert!(reason.contains("gave it up"), "{reason}");
    assert!(!holds_vip(&lan, &lan.ms2));
    let (s, _) = status(&lan.ms2, &site, dir.path());
    assert_eq!(s["vip_holders"]["who"], "mailserver1", "{s}");
}

/// Failback on mailserver2 hands clients to mailserver1 at once, with nothing from posta on
/// mailserver1: it sees mailserver1's MAC answer for the VIP and announces the VIP at that MAC.
/// With nobody answering it says so, with the command that fixes it, and still succeeds (the
/// address is off this host as asked).
#[test]
fn failback_announces_the_vip_at_mailserver1s_mac_and_says_when_nobody_holds_it() {
    let lan = Lan::named("pfb-fb");
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let site = site(&lan, dir.path(), "1h", "");
    let config = site.to_str().unwrap();
    add_vip(&lan, &lan.ms1);
    assert!(greeting(&lan).starts_with("220 ms1 "), "{}", greeting(&lan));

    // mailserver1 drops off the LAN with its address configured; mailserver2 takes over and
    // the client's cache learns mailserver2's MAC.
    lan.ms1.link_down();
    let take = run(&lan.ms2, &["--config", config, "takeover"]);
    assert!(take.status.success(), "{take:?}");
    assert!(greeting(&lan).starts_with("220 ms2 "), "{}", greeting(&lan));
    assert_eq!(
        lan.client.neighbour(lan.vip4.into()).as_deref(),
        Some(lan.ms2.mac.as_str())
    );

    // mailserver1 is back, silent: only mailserver2's failback can move the client.
    lan.ms1.link_up();
    let back = run(&lan.ms2, &["--config", config, "failback", "--json"]);
    let done = Instant::now();
    assert!(back.status.success(), "{back:?}");
    let report: Value = serde_json::from_slice(&back.stdout).unwrap();
    let steps = report["steps"].to_string();
    assert!(
        steps.contains(&format!("at mailserver1's MAC {}", lan.ms1.mac)),
        "{report}"
    );
    assert!(greeting(&lan).starts_with("220 ms1 "), "{}", greeting(&lan));
    eprintln!(
        "client on mailserver1 {:.3} s after posta failback exited",
        done.elapsed().as_secs_f64()
    );
    assert_eq!(
        lan.client.neighbour(lan.vip4.into()).as_deref(),
        Some(lan.ms1.mac.as_str()),
        "{}",
        lan.client.neighbour_line(lan.vip4.into())
    );
    // The bridge still has mailserver1's MAC on mailserver1's port: the announcement left
    // from mailserver2's own MAC.
    let fdb = bridge_port_of(&lan, &lan.ms1.mac);
    assert_eq!(fdb.as_deref(), Some("v-ms1"), "bridge fdb");

    // Nobody holds it after the release: said, with the fix.
    lan.ms1.ns.ip(&[
        "addr",
        "del",
        &format!("{}/24", lan.vip4),
        "dev",
        Host::INTERFACE,
    ]);
    let take = run(&lan.ms2, &["--config", config, "takeover"]);
    assert!(take.status.success(), "{take:?}");
    let back = run(&lan.ms2, &["--config", config, "failback", "--json"]);
    assert!(back.status.success(), "{back:?}");
    let report: Value = serde_json::from_slice(&back.stdout).unwrap();
    let remaining = report["remaining"].to_string();
    assert!(remaining.contains("nobody answers for"), "{report}");
    assert!(
        remaining.contains("posta failback vip --reclaim"),
        "{report}"
    );
    assert!(
        String::from_utf8_lossy(&back.stderr).contains("ERROR"),
        "logged at ERROR: {back:?}"
    );
}

/// The bridge port on which the hub's bridge has learned `mac` (`bridge fdb`).
fn bridge_port_of(lan: &Lan, mac: &str) -> Option<String> {
    let out = Command::new("bridge")
        .args(["-n", lan.hub().name(), "fdb", "show", "br", "br0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(mac))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
}

/// After a failback the watch brings the mail home with `posta migrate`; here that migration
/// cannot finish (mailserver2's IMAPS, its source, is a port nobody listens on, so it retries
/// connection refused with backoff), and mailserver1 dies again meanwhile. The probe rounds go
/// on beside the migration: the second outage is recorded down while it still runs, and the
/// takeover, after the grace, waits for it only as long as its bounded `--retry-for` (the
/// sweep interval, 10 s). The site's post_takeover hook is `/bin/false`: each takeover is done
/// all the same (taken_over, the VIP here, no retry), and the hook's failure is logged.
#[test]
fn a_second_outage_while_the_mail_comes_home_is_detected_and_taken_over() {
    let lan = Lan::named("pwm");
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = d.join("alice.pw");
    fs::write(&pw, "alice-pw\n").unwrap();
    fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let extra = format!(
        r#"sweep_interval = "10s"
[hooks]
post_takeover = [["/bin/false"]]
timeout = "5s"
[migrate]
state_dir = "{d}/migrate"
[[migrate.accounts]]
user = "alice"
password_file = "{pw}"
deliver_to = "alice@example.org"
"#,
        d = d.display(),
        pw = pw.display(),
    );
    let site = site(&lan, d, "2s", &extra);
    // mailserver2's IMAPS, the migration's source: nobody listens there.
    let text = fs::read_to_string(&site).unwrap();
    let backup = format!(
        "address = \"{}\"\nservices = [\"smtp:25?starttls=no\"]",
        lan.ms2.ipv4
    );
    assert!(text.contains(&backup), "{text}");
    let text = text.replace(
        &backup,
        &format!(
            "address = \"{}\"\nservices = [\"smtp:25?starttls=no\", \"imaps:1993\"]",
            lan.ms2.ipv4
        ),
    );
    fs::write(&site, text).unwrap();
    add_vip(&lan, &lan.ms1);
    let watch = Watch::start(&lan.ms2, &site, d, &[]);

    // The first outage: taken over although the post hook fails.
    lan.ms1.link_down();
    watch.wait("the first takeover", Duration::from_secs(60), |s| {
        s["state"] == "taken_over"
    });
    assert!(holds_vip(&lan, &lan.ms2));
    let log = wait_log(
        &watch,
        "the change is in effect, but post-takeover hook /bin/false failed",
        Duration::from_secs(10),
    );
    assert!(!log.contains("takeover failed"), "{log}");

    // mailserver1 returns without its address: failback, then the mail comes home.
    lan.ms1.ns.ip(&[
        "addr",
        "del",
        &format!("{}/24", lan.vip4),
        "dev",
        Host::INTERFACE,
    ]);
    lan.ms1.link_up();
    let s = watch.wait("the failback", Duration::from_secs(60), |s| {
        s["state"] == "healthy" && Watch::entered(s, "primary_back").is_some()
    });
    let healthy = Watch::entered(&s, "healthy").expect("healthy");
    wait_log(&watch, "migrate --retry-for 10s", Duration::from_secs(10));
    // ... and mailserver1 dies again while the migration retries.
    lan.ms1.link_down();
    let s = watch.wait("the second takeover", Duration::from_secs(90), |s| {
        s["state"] == "taken_over" && Watch::entered(s, "down").is_some_and(|t| t > healthy)
    });
    let down = Watch::entered(&s, "down").expect("down");
    let taken = Watch::entered(&s, "taken_over").expect("taken over");
    let log = fs::read_to_string(&watch.log).unwrap();
    // The order the log tells: the migration started, the outage was recorded down while it
    // still ran, the takeover waited for it, it ended unfinished, then the takeover ran.
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}"))
    };
    let started = at("migrate --retry-for 10s");
    let second_down = started
        + log[started..]
            .find("to=down")
            .unwrap_or_else(|| panic!("no second down in the log:\n{log}"));
    let waited = at("waiting for bringing the mail home to end before the takeover");
    let unfinished = at("posta migrate did not finish");
    assert!(
        started < second_down && second_down < waited && waited < unfinished,
        "{log}"
    );
    // Detected while the migration ran: it retries for up to 10 s from the failback.
    assert!(
        down - healthy < 10.0,
        "down recorded while the migration still ran: {s}"
    );
    assert!(taken - down >= 2.0, "no takeover before the grace: {s}");
    // The grace, then at most the migration's retry window, then the takeover itself (about
    // 6 s here: ARP probe and announcements), with a generous margin for a loaded machine.
    let bound = 2.0 + 10.0 + 20.0;
    println!(
        "second outage: down {:.1} s after the failback, taken over {:.1} s after down",
        down - healthy,
        taken - down
    );
    assert!(taken - down < bound, "took {:.1} s: {s}", taken - down);
    assert!(holds_vip(&lan, &lan.ms2));
    assert!(greeting(&lan).starts_with("220 ms2 "), "{}", greeting(&lan));
}
