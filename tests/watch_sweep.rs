//! The backup drains while the primary is healthy (issue 14, item 4): mail that MX 20 accepts
//! while mailserver1 is up (senders pick it for their own reasons: greylisting, a timeout, a
//! route flap) used to stay on mailserver2 until the next failback, which may never come.
//!
//! mailserver1 is Postfix → LMTP → Dovecot (tests/support's `Primary`); mailserver2 is
//! `posta mta` delivering into Maildirs that a Dovecot serves over IMAP, the source `posta
//! migrate` reads. `posta watch` runs with a 2 s sweep interval and sees mailserver1 healthy.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::posta_mta::{PostaMta, message, send_one};
use support::run::{Run, posta_command};
use support::sys::{VMAIL_USER, server_dir};
use support::{Ca, Dovecot, Primary, StoredMessage};

const BIN: &str = env!("CARGO_BIN_EXE_posta");
const USERS: [(&str, &str); 1] = [("alice", "alice-pw")];

/// The site: mailserver1's SMTP probed (and migrated to), mailserver2's IMAP the source, the
/// mta's Maildirs under `[mta] maildir`, alice the one account, a sweep every 2 s.
fn site(dir: &Path, root: &Path, primary: &Primary, source: &Dovecot, http: u16) -> PathBuf {
    let pw = dir.join("alice.pw");
    fs::write(&pw, "alice-pw\n").expect("write password file");
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).expect("chmod");
    let path = dir.join("site.toml");
    fs::write(
        &path,
        format!(
            r#"domain = "example.org"
[primary]
name = "localhost"
address = "127.0.0.1"
services = ["smtp:{smtp}"]
[backup]
name = "localhost"
address = "127.0.0.2"
services = ["imaps:{src}"]
[takeover]
mode = "vip"
state_file = "{dir}/takeover.json"
[vip]
address = "192.0.2.9/32"
interface = "lo"
[probe]
interval = "1s"
timeout = "1s"
fall = 3
[tls]
ca_file = "{ca}"
[watch]
state_file = "{dir}/watch.json"
sweep_interval = "2s"
listen = "127.0.0.1:{http}"
[mta]
maildir = "{root}"
[migrate]
state_dir = "state"
[[migrate.accounts]]
user = "alice"
password_file = "{pw}"
deliver_to = "alice@example.org"
"#,
            smtp = primary.postfix.smtp_port(),
            src = source.imaps_port(),
            ca = Ca::get().ca_pem().display(),
            dir = dir.display(),
            root = root.display(),
            pw = pw.display(),
        ),
    )
    .expect("write site file");
    path
}

/// `GET /metrics` from the watch.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("ask for /metrics");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read /metrics");
    body
}

/// `posta status --json` with the site file.
fn status(site: &Path) -> Value {
    let child = posta_command(BIN)
        .arg("--config")
        .arg(site)
        .args(["status", "--json"])
        .spawn()
        .expect("run posta status");
    let run = Run::wait(child, Duration::from_secs(60));
    assert_eq!(run.code, 0, "{run:?}");
    run.json()
}

/// The messages waiting under the mta's Maildirs, as `posta status --json` counts them.
fn waiting(status: &Value) -> u64 {
    status["waiting"]["maildir"]["messages"]
        .as_u64()
        .unwrap_or_else(|| panic!("no waiting count in {status}"))
}

/// A running `posta watch`, stopped with SIGTERM (then killed) on drop.
struct Watch {
    child: Child,
    state: PathBuf,
    log: PathBuf,
}

impl Watch {
    fn start(site: &Path, dir: &Path) -> Watch {
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
        Watch {
            child,
            state: dir.join("watch.json"),
            log,
        }
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

    /// Waits (generously: a loaded 2-core machine) until `ok` holds of the snapshot.
    fn wait(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
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

/// Waits until mailserver1's INBOX for alice holds `n` messages (Postfix delivers after it
/// accepts), then a moment more so that a late duplicate would be seen. Says (not asserts)
/// how long after `since` the n-th arrived.
fn await_inbox(primary: &Primary, n: usize, watch: &Watch, since: Instant) -> Vec<StoredMessage> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while primary.dovecot.messages("alice", None).len() < n {
        assert!(
            Instant::now() < deadline,
            "mailserver1 holds {} of {n}; watch log:\n{}",
            primary.dovecot.messages("alice", None).len(),
            watch.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("message {n} at mailserver1 {:?} after", since.elapsed());
    thread::sleep(Duration::from_secs(1));
    primary.dovecot.messages("alice", None)
}

fn once(stored: &[StoredMessage], id: &str) -> usize {
    let needle = format!("Message-ID: <{id}@posta.test>");
    stored
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.body).contains(&needle))
        .count()
}

/// Before the fix the watch migrated only after a failback: a message MX 20 took while
/// mailserver1 was healthy stayed on mailserver2. The watch now runs the failback's `posta
/// migrate` every `sweep_interval` while healthy, so it reaches mailserver1, once.
#[test]
fn mail_accepted_by_mx20_while_the_primary_is_healthy_is_swept_home_once() {
    let ca = Ca::get();
    let base = server_dir("posta-sweep-");
    let root = base.path().join("vmail");
    let source = Dovecot::start_on(ca, &USERS, &root);
    let primary = Primary::start(ca, &USERS);
    let mta = PostaMta::start(
        BIN,
        base.path(),
        &[
            "--hostname".into(),
            "mailserver2.example.org".into(),
            "--domain".into(),
            "example.org".into(),
            "--maildir".into(),
            root.display().to_string(),
            "--maildir-owner".into(),
            VMAIL_USER.into(),
        ],
    );
    let http = support::ports::free_port();
    let site = site(base.path(), &root, &primary, &source, http);

    // MX 20 takes a message while mailserver1 is up; status says it waits there.
    let first = message("sweep-1", "carlos@example.net", "alice@example.org", "one");
    let r = send_one(
        mta.port,
        "carlos@example.net",
        &["alice@example.org"],
        &first,
    );
    assert!(
        r.as_ref().is_ok_and(|r| r.starts_with("250")),
        "{r:?}\n{}",
        mta.log_tail()
    );
    let before = status(&site);
    assert_eq!(waiting(&before), 1, "{before}");
    assert!(
        before["waiting"]["maildir"]["oldest"].as_u64().is_some(),
        "{before}"
    );

    let watch = Watch::start(&site, base.path());
    // The first sweep comes one interval after the watch starts.
    let stored = await_inbox(&primary, 1, &watch, Instant::now());
    assert_eq!(once(&stored, "sweep-1"), 1, "{:?}", stored.len());
    assert!(source.messages("alice", None).is_empty());
    let s = watch.wait("a successful sweep recorded", |s| {
        s["last_sweep"]["ok"] == true
    });
    assert_eq!(s["state"], "healthy", "{s}");
    assert_eq!(s["sweep_interval_seconds"], 2.0, "{s}");

    // Sweeps go on at every interval: a later message goes home too, and nothing twice.
    let second = message("sweep-2", "dana@example.net", "alice@example.org", "two");
    let r = send_one(
        mta.port,
        "dana@example.net",
        &["alice@example.org"],
        &second,
    );
    assert!(r.as_ref().is_ok_and(|r| r.starts_with("250")), "{r:?}");
    let stored = await_inbox(&primary, 2, &watch, Instant::now());
    assert_eq!(stored.len(), 2);
    assert_eq!((once(&stored, "sweep-1"), once(&stored, "sweep-2")), (1, 1));
    assert!(source.messages("alice", None).is_empty());

    // Nothing waits any more, as status and the watch's own count say.
    let after = status(&site);
    assert_eq!(waiting(&after), 0, "{after}");
    let s = watch.wait("the watch's count at zero", |s| {
        s["waiting"]["maildir"]["messages"] == 0
    });
    assert!(s["sweeps_total"].as_u64() >= Some(2), "{s}");
    let m = metrics(http);
    for line in [
        "posta_waiting_messages{where=\"maildir\"} 0",
        "posta_watch_sweep_interval_seconds 2",
        "posta_watch_last_sweep_success 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
    }
}
