//! Telling users, with real servers: mailserver2 is a Dovecot whose Maildirs a `posta mta`
//! fills (the example's layout), mailserver1 another `posta mta`, and the takeover a DNS-mode
//! one against the harness's BIND, from a site file built on examples/site.toml. On a takeover
//! without a mirror each account of the site file finds exactly one notice in its mailbox on
//! mailserver2; the failback tells them through mailserver1; a second takeover within the rate
//! limit sends none. The assertions read the Maildirs, not the servers' replies.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::example_site::ExampleSite;
use support::maildir::messages;
use support::posta_mta::{PostaMta, path, s};
use support::run::{Run, posta_site};
use support::{Bind, Ca, Dovecot};

const BIN: &str = env!("CARGO_BIN_EXE_posta");
const ZONE: &str = "example.test";
const PRIMARY: &str = "10.0.0.25";
const USERS: [&str; 2] = ["alice", "bob"];

/// A `posta mta` for `ZONE` at `ip` storing into `root` (`%u` the user), owned by `owner` if
/// given.
fn mta(dir: &Path, ip: [u8; 4], root: &Path, owner: Option<&str>) -> PostaMta {
    let rcpts = dir.join(format!("recipients-{}", root.display().to_string().len()));
    let list: Vec<String> = USERS.iter().map(|u| format!("{u}@{ZONE}\n")).collect();
    fs::write(&rcpts, list.concat()).unwrap();
    let mut args = s(&[
        "--hostname",
        &format!("mx.{ZONE}"),
        "--domain",
        ZONE,
        "--maildir",
        &path(root),
        "--recipients",
        &path(&rcpts),
    ]);
    if let Some(owner) = owner {
        args.extend(s(&["--maildir-owner", owner]));
    }
    let addr = std::net::SocketAddr::from((ip, support::ports::free_port()));
    PostaMta::start_at(BIN, dir, addr, &args)
}

/// The example site with this test's servers: mailserver1's SMTP on `ms1`, mailserver2's on
/// `ms2` (127.0.0.2 and 127.0.0.1), mailserver1's A record on `b`, and the two accounts.
fn site(dir: &Path, b: &Bind, ms1: u16, ms2: u16) -> PathBuf {
    let key = dir.join("tsig.key");
    fs::copy(b.key_file(), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let accounts: Vec<toml::Value> = USERS
        .iter()
        .map(|u| {
            let mut t = toml::Table::new();
            t.insert("user".into(), (*u).into());
            t.insert(
                "password_file".into(),
                dir.join(format!("{u}.password"))
                    .display()
                    .to_string()
                    .into(),
            );
            t.insert("deliver_to".into(), format!("{u}@{ZONE}").into());
            toml::Value::Table(t)
        })
        .collect();
    let mut ex = ExampleSite::load();
    ex.set("domain", ZONE)
        .set("primary.name", format!("mail.{ZONE}"))
        .set("primary.address", PRIMARY)
        .set("primary.probe_address", "127.0.0.2")
        .set("primary.services", vec![format!("smtp:{ms1}")])
        .set("backup.name", format!("mail2.{ZONE}"))
        .set("backup.address", "127.0.0.1")
        .set("backup.services", vec![format!("smtp:{ms2}")])
        .set("takeover.mode", "dns")
        .set("dns.server", b.addr().to_string())
        .set("dns.zone", ZONE)
        .set("dns.name", format!("mail.{ZONE}"))
        .set("dns.tsig_key_file", key.display().to_string())
        .set("hooks.post_takeover", toml::Value::Array(Vec::new()))
        .set("tls.ca_file", Ca::get().ca_pem().display().to_string())
        .set("migrate.accounts", accounts)
        .set("notify.from", format!("postmaster@{ZONE}"))
        .relocate("/etc/posta/", dir)
        .relocate("/var/lib/posta/", &dir.join("state"));
    let site = dir.join("site.toml");
    ex.write(&site);
    site
}

/// The notices in `user`'s INBOX under `root`.
fn notices(root: &Path, user: &str) -> Vec<String> {
    messages(&root.join(user).join("Maildir"), None)
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

/// The `notified` part of a `--json` report.
fn notified(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    report["notified"].clone()
}

fn posta(site: &Path, args: &[&str]) -> Run {
    posta_site(BIN, site, args)
}

#[test]
fn each_account_is_told_once_per_event_through_the_server_that_serves_it() {
    let ca = Ca::get();
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<(&str, &str)> = USERS.iter().map(|u| (*u, "pw")).collect();
    // mailserver2: Dovecot serves the Maildirs its posta mta delivers into.
    let ms2 = Dovecot::start(ca, &users);
    let ms2_root = ms2.path().join("mail");
    let ms2_mta = mta(
        dir.path(),
        [127, 0, 0, 1],
        &ms2_root.join("%u/Maildir"),
        Some(support::sys::VMAIL_USER),
    );
    let ms1_root = dir.path().join("ms1");
    let ms1_mta = mta(
        dir.path(),
        [127, 0, 0, 2],
        &ms1_root.join("%u/Maildir"),
        None,
    );
    let b = Bind::start(
        ZONE,
        &format!("{}mail IN A {PRIMARY}\n", Bind::minimal_zone(ZONE)),
    );
    let site = site(dir.path(), &b, ms1_mta.port, ms2_mta.port);

    // What a notice looks like, sent to no one.
    let preview = posta(&site, &["notify", "--test", "alice"]);
    assert_eq!(preview.code, 0, "{preview:?}");
    assert!(
        preview.stdout.contains(&format!("To: alice@{ZONE}\r\n")),
        "{preview:?}"
    );
    assert!(
        preview.stdout.contains("Subject: =?UTF-8?B?"),
        "{preview:?}"
    );
    assert!(USERS.iter().all(|u| notices(&ms2_root, u).is_empty()));

    let taken = posta(&site, &["takeover", "--json"]);
    let n = notified(&taken);
    assert_eq!(n["event"], "mirror_missing", "{taken:?}");
    assert_eq!(n["via"], format!("127.0.0.1:{}", ms2_mta.port), "{taken:?}");
    assert_eq!(
        (n["notified"].as_u64(), n["rate_limited"].as_u64()),
        (Some(2), Some(0)),
        "{n}"
    );
    for user in USERS {
        let got = notices(&ms2_root, user);
        assert_eq!(got.len(), 1, "{user}: {got:?}\n{}", ms2_mta.log_tail());
        let notice = &got[0];
        assert!(notice.contains(&format!("To: {user}@{ZONE}")), "{notice}");
        assert!(
            notice.contains(&format!("From: postmaster@{ZONE}")),
            "{notice}"
        );
        assert!(
            notice.contains("Message-ID: <posta.mirror_missing."),
            "{notice}"
        );
        assert!(
            notice.contains("Content-Type: text/plain; charset=utf-8"),
            "{notice}"
        );
        // The seed's message: the folders stayed on mailserver1 (quoted-printable: the ASCII
        // words are as written).
        assert!(
            notice.contains("se quedaron en el servidor principal"),
            "{notice}"
        );
        assert!(
            notices(&ms1_root, user).is_empty(),
            "{user} told through mailserver1"
        );
    }

    // Failback: told through mailserver1, which serves them again.
    let back = posta(&site, &["failback", "--json"]);
    let n = notified(&back);
    assert_eq!(n["event"], "failback", "{back:?}");
    assert_eq!(n["notified"].as_u64(), Some(2), "{n}");
    for user in USERS {
        let got = notices(&ms1_root, user);
        assert_eq!(got.len(), 1, "{user}: {got:?}");
        assert!(
            got[0].contains("Message-ID: <posta.failback."),
            "{}",
            got[0]
        );
        assert_eq!(notices(&ms2_root, user).len(), 1);
    }

    // A second takeover within the rate limit: done, and no one is told again.
    let again = posta(&site, &["takeover"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again
            .stdout
            .contains("0 notified, 2 skipped by the rate limit, 0 failed"),
        "{again:?}"
    );
    for user in USERS {
        assert_eq!(notices(&ms2_root, user).len(), 1, "{user} told twice");
    }
    // A test notice goes through the server that serves users now (mailserver2 again), past
    // the rate limit and unrecorded.
    let test = posta(&site, &["notify", "--send-test", "alice"]);
    assert_eq!(test.code, 0, "{test:?}");
    assert!(
        test.stdout
            .contains(&format!("via 127.0.0.1:{}", ms2_mta.port)),
        "{test:?}"
    );
    assert_eq!(notices(&ms2_root, "alice").len(), 2);
    assert_eq!(notices(&ms2_root, "bob").len(), 1);
    let record = fs::read_to_string(dir.path().join("state/notify.json")).unwrap();
    assert!(
        record.contains("mirror_missing") && record.contains("failback"),
        "{record}"
    );
}

/// Notices that cannot go (mailserver2's SMTP is down) are a warning on a takeover that is
/// done, never a failed takeover; nothing is recorded, so a later run tells them.
#[test]
fn a_notice_that_cannot_go_is_a_warning_and_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let ms1_root = dir.path().join("ms1");
    let ms1_mta = mta(
        dir.path(),
        [127, 0, 0, 2],
        &ms1_root.join("%u/Maildir"),
        None,
    );
    let down = support::ports::free_port();
    let b = Bind::start(
        ZONE,
        &format!("{}mail IN A {PRIMARY}\n", Bind::minimal_zone(ZONE)),
    );
    let site = site(dir.path(), &b, ms1_mta.port, down);
    let taken = posta(&site, &["takeover"]);
    assert_eq!(taken.code, 0, "{taken:?}");
    assert!(
        taken
            .stdout
            .contains("0 notified, 0 skipped by the rate limit, 2 failed"),
        "{taken:?}"
    );
    assert!(
        taken.stderr.contains(
            "posta: warning: the change is in effect, but 2 mirror_missing notices failed"
        ),
        "{taken:?}"
    );
    assert!(
        taken
            .stdout
            .contains("with a warning: the change is in effect"),
        "{taken:?}"
    );
    let record = dir.path().join("state/notify.json");
    assert!(!record.exists() || !fs::read_to_string(&record).unwrap().contains(ZONE));
}
