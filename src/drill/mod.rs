//! `posta drill`: the seed's whole scenario rehearsed on one machine from posta's own parts.
//!
//! Network namespaces on one bridge: a client, mailserver1 (`posta mta`, holding the virtual
//! IP), mailserver2 (`posta mta` with POP3, and `posta watch`), and the friend's relay (MX 30,
//! `posta mta` queueing for the domain). Mail is sent; mailserver1 stops; the watch detects
//! it, waits out the grace and takes over; mail sent meanwhile lands on mailserver2, directly
//! or through the relay; mailserver1 returns; the watch fails back and `posta migrate` brings
//! the mail home; mailserver1 takes its address back. The drill ends with a reconciliation by
//! Message-ID: sent, in mailserver1's mailbox, lost, duplicated. The site file every posta
//! in the drill reads is `examples/site.toml` with the drill's addresses, names, paths and
//! pace (`site`), so the drill rehearses what users configure.

mod error;
mod lan;
mod send;
mod site;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub use error::DrillError;
use lan::{Lan, Node};

/// How long the phases take.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub interval: Duration,
    pub grace: Duration,
    pub messages: usize,
}

/// What the drill found.
#[derive(Debug, Default)]
pub struct Reconciliation {
    pub sent: usize,
    pub home: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Prints one phase line with the time since the drill started.
struct Clock(Instant);

impl Clock {
    fn say(&self, what: &str) {
        println!("[{:>7.2}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

fn wait(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Result<(), DrillError> {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() > deadline {
            return Err(DrillError::Timeout {
                what: what.to_string(),
                limit,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn watch_state(path: &Path) -> String {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["state"].as_str().map(String::from))
        .unwrap_or_default()
}

/// Message-IDs of the messages in a Maildir, with their counts.
fn message_ids(maildir: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            if let Some(id) = text
                .lines()
                .take_while(|l| !l.is_empty() && *l != "\r")
                .find_map(|l| l.strip_prefix("Message-ID: "))
            {
                *ids.entry(id.trim().to_string()).or_insert(0) += 1;
            }
        }
    }
    ids
}

/// Runs the drill in `dir` (kept for inspection) with `exe` as posta.
pub fn run(exe: &Path, dir: &Path, pace: Pace) -> Result<Reconciliation, DrillError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(DrillError::NotRoot);
    }
    let clock = Clock(Instant::now());
    let lan = Lan::build()?;
    clock.say(&format!(
        "LAN up: client {}, mailserver1 {} (VIP {}), mailserver2 {}, relay (MX 30) {}",
        lan.client.ip, lan.ms1.ip, lan.vip, lan.ms2.ip, lan.relay.ip
    ));
    let secret = format!("drill-{}", std::process::id());
    let file = |name: &str| dir.join(name);
    fs::write(file("ana.password"), &secret).map_err(DrillError::file(file("ana.password")))?;
    let users = format!("ana:{}\n", crate::mta::users::hash_password(&secret));
    fs::write(file("pop3-users"), users).map_err(DrillError::file(file("pop3-users")))?;
    for f in ["ana.password", "pop3-users"] {
        fs::set_permissions(file(f), fs::Permissions::from_mode(0o600))
            .map_err(DrillError::file(file(f)))?;
    }
    let recipients = format!("ana@{}\n", site::DOMAIN);
    fs::write(file("recipients"), recipients).map_err(DrillError::file(file("recipients")))?;
    let site = dir.join("site.toml");
    let addresses = site::Addresses {
        vip: &lan.vip,
        ms1: &lan.ms1.ip,
        relay: &lan.relay.ip,
    };
    let text = site::site_file(dir, &addresses, pace)?;
    fs::write(&site, text).map_err(DrillError::file(&site))?;
    let (m1, m2, queue) = (dir.join("ms1"), dir.join("ms2"), dir.join("relay-queue"));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let mta_args = |name: &str, maildir: &Path, extra: &[&str]| {
        let mut a = s(&["mta", "--listen", "0.0.0.0:25", "--hostname", name]);
        a.extend(s(&["--domain", "example.org", "--maildir"]));
        a.push(maildir.display().to_string());
        a.extend(s(extra));
        a
    };
    let mut procs = Procs(Vec::new());
    let log = |n: &Node, what: &str| dir.join(format!("{}-{what}.log", n.role));
    lan.vip_on(&lan.ms1, true)?;
    let ms1_args = mta_args("mailserver1.example.org", &m1, &[]);
    let ms1 = lan.spawn(&lan.ms1, exe, &ms1_args, &log(&lan.ms1, "mta"))?;
    let pop3 = ["--pop3-listen", "127.0.0.1:110", "--pop3-users"];
    let mut ms2_args = mta_args("mailserver2.example.org", &m2, &pop3);
    ms2_args.push(dir.join("pop3-users").display().to_string());
    procs
        .0
        .push(lan.spawn(&lan.ms2, exe, &ms2_args, &log(&lan.ms2, "mta"))?);
    let mut relay_args = s(&[
        "mta",
        "--listen",
        "0.0.0.0:25",
        "--hostname",
        "mx30.laorganizacion.org",
    ]);
    relay_args.extend(s(&["--relay-domain", "example.org", "--queue"]));
    relay_args.push(queue.display().to_string());
    relay_args.extend(s(&[
        "--relay-to",
        &format!("{}:25", lan.vip),
        "--relay-tls",
        "none",
    ]));
    relay_args.extend(s(&[
        "--retry-min",
        "1s",
        "--retry-max",
        "2s",
        "--control-socket",
    ]));
    relay_args.push(dir.join("relay-mta.sock").display().to_string());
    procs
        .0
        .push(lan.spawn(&lan.relay, exe, &relay_args, &log(&lan.relay, "mta"))?);
    let ms1_proc = Procs(vec![ms1]);
    for n in [&lan.ms1, &lan.ms2, &lan.relay] {
        let ip = n.ip.clone();
        wait(
            &format!("{} to accept SMTP", n.role),
            Duration::from_secs(20),
            || send::greeting(&lan.client.ns, &ip).is_ok(),
        )?;
    }
    clock.say("mailserver1, mailserver2 and the relay accept mail");
    // The same command and site file on both servers, as the README installs them: each
    // finds which one it is. mailserver1's keeps its own state file (one filesystem here).
    let ms1_state = dir.join("ms1-watch.json");
    let mut ms1_watch_args = s(&["--config", &site.display().to_string(), "watch"]);
    ms1_watch_args.extend(s(&["--state-file", &ms1_state.display().to_string()]));
    procs
        .0
        .push(lan.spawn(&lan.ms1, exe, &ms1_watch_args, &log(&lan.ms1, "watch"))?);
    wait(
        "posta watch on mailserver1 to start",
        Duration::from_secs(20),
        || watch_state(&ms1_state) == "serving",
    )?;
    let watch_args = s(&["--config", &site.display().to_string(), "watch"]);
    procs
        .0
        .push(lan.spawn(&lan.ms2, exe, &watch_args, &log(&lan.ms2, "watch"))?);
    let state_path = dir.join("watch.json");
    wait("posta watch to start", Duration::from_secs(20), || {
        watch_state(&state_path) == "healthy"
    })?;
    clock.say(&format!(
        "posta watch on mailserver2: probing mailserver1 every {:?}, grace {:?}; on \
         mailserver1: watching its own services",
        pace.interval, pace.grace
    ));

    let mut sent = Vec::new();
    let n = pace.messages;
    sent.extend(send::batch(&lan.client.ns, &lan.vip, "before", n)?);
    clock.say(&format!("{n} messages sent to mailserver1 through the VIP"));

    // mailserver1 fails: its mta dies, then its link.
    drop(ms1_proc); // kills mailserver1's mta
    let down_at = Instant::now();
    wait(
        "mailserver1's watch to give the VIP up",
        pace.grace + Duration::from_secs(60),
        || watch_state(&ms1_state) == "released",
    )?;
    clock.say("mailserver1's watch sees its mta dead and gives the VIP up");
    lan.set_link(&lan.ms1, false)?;
    clock.say("mailserver1 stops (its mta killed, then its link down)");
    sent.extend(send::batch(&lan.client.ns, &lan.relay.ip, "relay", n)?);
    clock.say(&format!(
        "{n} messages accepted by the relay (MX 30) while mailserver1 is down"
    ));
    wait(
        "the watch to see mailserver1 down",
        Duration::from_secs(60),
        || watch_state(&state_path) == "down",
    )?;
    clock.say(&format!(
        "the watch declares mailserver1 down after {:.1}s; the grace runs",
        down_at.elapsed().as_secs_f64()
    ));
    wait("the takeover", pace.grace + Duration::from_secs(60), || {
        watch_state(&state_path) == "taken_over"
    })?;
    clock.say(&format!(
        "takeover: mailserver2 holds the VIP, {:.1}s after mailserver1 stopped",
        down_at.elapsed().as_secs_f64()
    ));
    sent.extend(send::batch(&lan.client.ns, &lan.vip, "outage", n)?);
    clock.say(&format!(
        "{n} messages sent through the VIP, accepted by mailserver2"
    ));
    let flushed = queue.join("active");
    wait(
        "the relay to hand its queue to mailserver2",
        Duration::from_secs(60),
        || fs::read_dir(&flushed).is_ok_and(|d| d.count() == 0),
    )?;
    clock.say("the relay's queue went to mailserver2 (now behind the VIP)");

    // mailserver1 returns; its watch gave the address up (mailserver2 holds it).
    lan.set_link(&lan.ms1, true)?;
    let ms1 = lan.spawn(&lan.ms1, exe, &ms1_args, &log(&lan.ms1, "mta"))?;
    procs.0.push(ms1);
    let ms1_ip = lan.ms1.ip.clone();
    wait(
        "mailserver1's mta to accept again",
        Duration::from_secs(20),
        || send::greeting(&lan.client.ns, &ms1_ip).is_ok(),
    )?;
    clock.say("mailserver1 is back");
    wait("the failback", Duration::from_secs(120), || {
        let s = watch_state(&state_path);
        s == "healthy"
    })?;
    clock.say("failback: mailserver2 released the VIP after the rise window; posta migrate runs");
    wait(
        "mailserver1's watch to reclaim the VIP",
        Duration::from_secs(30),
        || watch_state(&ms1_state) == "serving",
    )?;
    clock.say("mailserver1 holds the VIP again: its watch reclaimed and announced it");
    let total = sent.len();
    let home = m1.join("ana");
    let _ = wait("the mail to come home", Duration::from_secs(120), || {
        message_ids(&home).len() >= total && message_ids(&m2.join("ana")).is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    let found = message_ids(&home);
    let rec = Reconciliation {
        sent: total,
        home: found.values().sum(),
        lost: sent
            .iter()
            .filter(|id| !found.contains_key(*id))
            .cloned()
            .collect(),
        duplicated: found
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| id.clone())
            .collect(),
    };
    clock.say("reconciliation done");
    drop(procs);
    Ok(rec)
}

/// Where a drill keeps its files unless told.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("posta-drill-{}", std::process::id()))
}
