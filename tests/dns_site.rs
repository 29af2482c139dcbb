//! DNS-mode failover on a site built from `examples/site.toml` (tests/support/example_site.rs:
//! only addresses, names, paths and fast timings changed, `mode = "dns"`): mailserver1 and
//! mailserver2 in network namespaces with SMTP greeters that name their host, a private BIND9
//! primary and a secondary (both on port 53 of the client namespace, the NS records naming
//! them), `posta watch` on mailserver2 with the TSIG key. Five outages, mailserver1's link down
//! or its SMTP killed in turn: one UPDATE per takeover and per failback in named's log, the
//! record read back from both authoritative servers (address and TTL) after each, mailserver1's
//! original TTL back after failback, the watch's transitions in order with no flapping, and
//! `posta status` and the failback report saying how long resolvers may still hand out the old
//! address.
//!
//! Namespaces are named `pdn-...` so they never collide with other tests'.

mod support;

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Bind;
use support::example_site::ExampleSite;
use support::netns::{Host, Lan};

const BIN: &str = env!("CARGO_BIN_EXE_posta");
/// The example's domain, zone and names are kept: this BIND serves that zone.
const ZONE: &str = "laorganizacion.org";
const RECORD: &str = "mailserver1.laorganizacion.org";
/// The TTL mailserver1's record has before the first takeover: failback must put it back.
const ORIGINAL_TTL: u64 = 3600;
/// The TTL takeover writes: at most the grace, which `config check` enforces.
const TAKEOVER_TTL: u64 = 5;
const CYCLES: usize = 5;

/// `posta ARGS` in `host`'s namespace, waited for.
fn posta(host: &Host, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", host.ns.name(), BIN])
        .args(args)
        .env_remove("POSTA_CONFIG")
        .output()
        .unwrap()
}

/// `posta watch` on mailserver2, stopped with SIGTERM on drop.
struct Watch {
    child: Child,
    state: PathBuf,
    log: PathBuf,
}

impl Watch {
    fn start(host: &Host, site: &Path, dir: &Path) -> Watch {
        let (log, state) = (dir.join("watch.log"), dir.join("watch.json"));
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", host.ns.name(), BIN])
            .args(["--config", site.to_str().unwrap(), "watch"])
            .env_remove("POSTA_CONFIG")
            .env("POSTA_LOG", "posta=info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
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

    /// The transitions in `s`, (`at`, `from->to`, reason). The state file keeps only the last
    /// 20; [`History::add`] keeps them all.
    fn transitions(s: &Value) -> Vec<(f64, String, String)> {
        let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
        s["transitions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        let at = t["at"].as_f64().unwrap_or(0.0);
                        (
                            at,
                            format!("{}->{}", text(&t["from"]), text(&t["to"])),
                            text(&t["reason"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last transition into `state` after `after` (seconds since the epoch): its reason.
    fn entered_after(s: &Value, state: &str, after: f64) -> Option<String> {
        Self::transitions(s)
            .into_iter()
            .rev()
            .find(|(at, t, _)| *at > after && t.ends_with(&format!("->{state}")))
            .map(|(_, _, reason)| reason)
    }
}

/// Every transition the watch made, gathered from its state file as the test goes.
#[derive(Default)]
struct History(Vec<(f64, String, String)>);

impl History {
    fn add(&mut self, s: &Value) {
        let last = self.0.last().map_or(0.0, |t| t.0);
        self.0
            .extend(Watch::transitions(s).into_iter().filter(|t| t.0 > last));
    }
}

fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
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

/// (addresses, TTL) of mailserver1's A record as `server` serves it, asked without recursion.
fn record(server: &Bind) -> (Vec<String>, Vec<u64>) {
    let out = server.dig(&[RECORD, "A", "+norecurse", "+noall", "+answer"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut addrs = Vec::new();
    let mut ttls = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 5, "unexpected dig line {line:?}");
        ttls.push(f[1].parse().unwrap());
        addrs.push(f[4].to_string());
    }
    (addrs, ttls)
}

/// Both authoritative servers serve `addr` with TTL `ttl` (the secondary once NOTIFY and the
/// transfer have run; posta's own read-back waited for it already, so this is at once).
fn assert_served(servers: &[&Bind], addr: Ipv4Addr, ttl: u64, when: &str) {
    for s in servers {
        assert_eq!(
            record(s),
            (vec![addr.to_string()], vec![ttl]),
            "{when}: {} serves the wrong record",
            s.addr()
        );
    }
}

/// `posta status` on mailserver2: (JSON, table).
fn status(host: &Host, site: &Path) -> (Value, String) {
    let json = posta(
        host,
        &["--config", site.to_str().unwrap(), "status", "--json"],
    );
    let table = posta(host, &["--config", site.to_str().unwrap(), "status"]);
    assert!(json.status.success(), "{json:?}");
    assert!(table.status.success(), "{table:?}");
    (
        serde_json::from_slice(&json.stdout).unwrap(),
        String::from_utf8_lossy(&table.stdout).into_owned(),
    )
}

/// The number of UPDATEs named applied that set the record to `addr` (one "adding an RR"
/// line per UPDATE: the record has one address).
fn updates_to(log: &Path, addr: Ipv4Addr) -> usize {
    let text = fs::read_to_string(log).unwrap();
    text.lines()
        .filter(|l| {
            l.contains("updating zone")
                && l.contains("adding an RR")
                && l.contains(&format!("A {addr}"))
        })
        .count()
}

#[test]
fn five_dns_outage_cycles_on_the_example_site() {
    let lan = Lan::named("pdn");
    let subnet = lan.subnet;
    let (dns1, dns2) = (
        Ipv4Addr::new(10, 77, subnet, 53),
        Ipv4Addr::new(10, 77, subnet, 54),
    );
    for a in [dns1, dns2] {
        lan.client
            .ns
            .ip(&["addr", "add", &format!("{a}/24"), "dev", Host::INTERFACE]);
    }
    let zone = format!(
        "$ORIGIN {ZONE}.\n$TTL 60\n\
         @ IN SOA ns1 hostmaster 1 60 60 600 60\n\
         @ IN NS ns1\n@ IN NS ns2\n\
         ns1 IN A {dns1}\nns2 IN A {dns2}\n\
         mailserver1 {ORIGINAL_TTL} IN A {ms1}\n",
        ms1 = lan.ms1.ipv4
    );
    let ns1 = Bind::start_in(lan.client.ns.name(), dns1, ZONE, &zone, &[dns2]);
    let ns2 = Bind::start_secondary_in(lan.client.ns.name(), dns2, ZONE, dns1);
    let servers = [&ns1, &ns2];
    assert_served(&servers, lan.ms1.ipv4, ORIGINAL_TTL, "before");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = |name: &str, text: &str| {
        let p = d.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    };
    let key = secret("tsig.key", &fs::read_to_string(ns1.key_file()).unwrap());
    let alice = secret("alice.password", "alice-secret\n");
    let recipients = d.join("recipients");
    fs::write(&recipients, "alice@laorganizacion.org\n").unwrap();
    let hooks = d.join("hooks.log");
    let p = |s: &str| d.join(s).display().to_string();

    let mut ex = ExampleSite::load();
    ex.set("primary.address", lan.ms1.ipv4.to_string())
        .set("primary.probe_address", lan.ms1.ipv4.to_string())
        // The greeters speak plain SMTP on 25 and know no probe account.
        .set("primary.services", vec!["smtp:25?starttls=no"])
        .remove("primary.probe_user")
        .remove("primary.probe_password_file")
        .set("backup.address", lan.ms2.ipv4.to_string())
        .set("takeover.mode", "dns")
        .set("takeover.state_file", p("takeover.json"))
        .remove("vip")
        .set("dns.server", dns1.to_string())
        .set("dns.ttl", TAKEOVER_TTL as i64)
        .set("dns.tsig_key_file", key)
        .set("probe.interval", "300ms")
        .set("probe.timeout", "250ms")
        .set("probe.fall", 2)
        .set("probe.rise", 3)
        .set("probe.takeover_grace", format!("{TAKEOVER_TTL}s"))
        .set(
            "tls.ca_file",
            support::Ca::get().ca_pem().display().to_string(),
        )
        .set("watch.state_file", p("watch.json"))
        // Sweeps would run `posta migrate` against a mailserver2 with no IMAP: noise here.
        .set("watch.sweep_interval", "off")
        .set("migrate.state_dir", p("migrate"))
        // The example's alternative for posta on mailserver2: read the Maildirs on disk. Its
        // default, mailserver2's IMAP, is absent here, and `posta migrate` would retry it for
        // a minute after each failback (the watch's bound with sweeps off), which the next
        // cycle's takeover would wait for.
        .insert("migrate.source", "maildir")
        // [mirror] refuses a Maildir source (its copies are known by IMAP UID only).
        .remove("mirror")
        .set("mta.maildir", p("vmail/%u/Maildir"))
        .set("mta.recipients", recipients.display().to_string())
        .set("migrate.accounts.0.password_file", alice)
        // Notices would be mail in alice's mailbox this test did not send (tests/notify.rs
        // covers them).
        .remove("notify");
    // The example's logger hook needs a syslog socket this machine lacks; a hook that writes
    // down each takeover instead, so the test counts them.
    let hook = toml::Value::Array(vec![toml::Value::Array(vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("echo \"$POSTA_EVENT $POSTA_NEW\" >> {}", hooks.display()).into(),
    ])]);
    ex.set("hooks.post_takeover", hook);
    let site = d.join("site.toml");
    ex.write(&site);
    let site_s = site.to_str().unwrap();

    let check = posta(&lan.ms2, &["--config", site_s, "config", "check"]);
    assert!(check.status.success(), "{check:?}");

    let mut g1 = Some(lan.ms1.greeter());
    let _g2 = lan.ms2.greeter();
    let started = Instant::now();
    let watch = Watch::start(&lan.ms2, &site, d);
    assert_eq!(watch.snapshot()["state"], "healthy");

    let mut history = History::default();
    for cycle in 0..CYCLES {
        let link = cycle % 2 == 0;
        let how = if link { "link down" } else { "SMTP killed" };
        let outage = epoch();
        if link {
            lan.ms1.link_down();
        } else {
            g1 = None;
        }
        let s = watch.wait(
            &format!("takeover {cycle} ({how})"),
            Duration::from_secs(40),
            |s| {
                s["state"] == "taken_over"
                    && Watch::entered_after(s, "taken_over", outage).is_some()
            },
        );
        history.add(&s);
        let reason = Watch::entered_after(&s, "taken_over", outage).unwrap();
        assert!(
            reason.contains(&format!(
                "resolvers may hand out the old address for up to {ORIGINAL_TTL} s"
            )),
            "cycle {cycle}: the takeover's report: {reason}"
        );
        assert_served(
            &servers,
            lan.ms2.ipv4,
            TAKEOVER_TTL,
            &format!("after takeover {cycle}"),
        );
        let (j, table) = status(&lan.ms2, &site);
        let h = &j["holdings"][0];
        assert_eq!(h["holder"], "backup", "{j}");
        assert_eq!(h["original_ttl"], ORIGINAL_TTL, "{j}");
        assert_eq!(h["old_ttl"], ORIGINAL_TTL, "{j}");
        let left = h["resolvers_may_hand_out_old_for_seconds"]
            .as_u64()
            .unwrap();
        assert!(left <= ORIGINAL_TTL && left > ORIGINAL_TTL - 60, "{j}");
        assert!(
            table.contains("resolvers may hand out the old address for up to"),
            "{table}"
        );
        // mailserver1 stays down for a while: no failback, no second UPDATE.
        thread::sleep(Duration::from_millis(1500));
        let s = watch.snapshot();
        history.add(&s);
        assert_eq!(
            s["state"], "taken_over",
            "failback while mailserver1 is down: {s}"
        );

        let back = epoch();
        if link {
            lan.ms1.link_up();
        } else {
            g1 = Some(lan.ms1.greeter());
        }
        let s = watch.wait(&format!("failback {cycle}"), Duration::from_secs(40), |s| {
            s["state"] == "healthy" && Watch::entered_after(s, "healthy", back).is_some()
        });
        history.add(&s);
        let reason = Watch::entered_after(&s, "healthy", back).unwrap();
        assert!(
            reason.contains(&format!(
                "resolvers may hand out the old address for up to {TAKEOVER_TTL} s (the record's TTL)"
            )),
            "cycle {cycle}: the failback report: {reason}"
        );
        assert_served(
            &servers,
            lan.ms1.ipv4,
            ORIGINAL_TTL,
            &format!("after failback {cycle}"),
        );
        let (j, table) = status(&lan.ms2, &site);
        let h = &j["holdings"][0];
        assert_eq!(h["holder"], "primary", "{j}");
        assert_eq!(h["old_ttl"], TAKEOVER_TTL, "{j}");
        assert!(
            table.contains("resolvers may hand out the old address for up to")
                || table.contains(&format!("(its TTL, {TAKEOVER_TTL} s, has run out)")),
            "{table}"
        );
    }
    let took = started.elapsed();
    drop(g1);

    // One UPDATE per takeover and one per failback, none refused or repeated.
    let log = ns1.log();
    let named = fs::read_to_string(&log).unwrap();
    assert_eq!(updates_to(&log, lan.ms2.ipv4), CYCLES, "{named}");
    assert_eq!(updates_to(&log, lan.ms1.ipv4), CYCLES, "{named}");
    // Every signed UPDATE that reached named: no refused one, no retry, no failed prerequisite.
    let signed = named
        .lines()
        .filter(|l| l.contains("signer \"posta-test-key\" approved"));
    assert_eq!(signed.count(), 2 * CYCLES, "{named}");
    for refused in ["update failed", "prerequisite not satisfied", "REFUSED"] {
        assert!(!named.contains(refused), "{refused}: {named}");
    }
    // The post-takeover hook ran once per outage.
    let ran = fs::read_to_string(&hooks).unwrap();
    assert_eq!(ran.lines().count(), CYCLES, "{ran}");
    // The watch went round the same way every time: no flapping.
    history.add(&watch.snapshot());
    let seen: Vec<&str> = history.0.iter().map(|t| t.1.as_str()).collect();
    let one = [
        "healthy->suspect",
        "suspect->down",
        "down->taken_over",
        "taken_over->primary_back",
        "primary_back->healthy",
    ];
    let want: Vec<&str> = (0..CYCLES).flat_map(|_| one).collect();
    assert_eq!(seen, want, "{:#?}", history.0);
    println!("{CYCLES} DNS outage cycles took {took:?}");
}
