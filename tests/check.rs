//! `posta check` against real Postfix, Dovecot and BIND9 (tests/support starts them on
//! loopback), and against in-process fakes for what real servers never do (tarpits, drops).
//! Each test asserts the exact verdict and exit code.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::run::{Run, posta_command};
use support::{Bind, Ca, Dovecot, Dropper, Postfix, Tarpit, ports};

const DOMAIN: &str = "example.test";

/// Runs the posta binary; a run that hangs past two minutes is killed and fails the test.
fn posta(args: &[&str]) -> Run {
    let child = posta_command(env!("CARGO_BIN_EXE_posta"))
        .args(args)
        .spawn()
        .expect("run posta");
    Run::wait(child, Duration::from_secs(120))
}

fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("{text}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn probe<'a>(v: &'a Value, prefix: &str) -> &'a Value {
    v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no probe {prefix} in {v:#}"))
}

/// A healthy mail server: Postfix (SMTP AUTH through Dovecot) and Dovecot.
struct Mail {
    dovecot: Dovecot,
    postfix: Postfix,
}

fn mail() -> Mail {
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "alice-pw")]);
    let postfix = Postfix::start(ca, DOMAIN, &["alice"], Some(&dovecot.auth_socket()));
    Mail { dovecot, postfix }
}

#[test]
fn healthy_servers_are_ok_over_starttls_with_private_ca() {
    let m = mail();
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path(), "pw", "alice-pw");
    let ca = Ca::get().ca_pem();
    let urls = [
        format!(
            "smtp://127.0.0.1:{}?starttls=require",
            m.postfix.smtp_port()
        ),
        format!(
            "submission://alice@127.0.0.1:{}?starttls=require",
            m.postfix.submission_port()
        ),
        format!(
            "imap://alice@127.0.0.1:{}?starttls=require",
            m.dovecot.imap_port()
        ),
        format!(
            "pop3://alice@127.0.0.1:{}?starttls=require",
            m.dovecot.pop3_port()
        ),
        format!("imaps://alice@127.0.0.1:{}", m.dovecot.imaps_port()),
        format!("pop3s://alice@127.0.0.1:{}", m.dovecot.pop3s_port()),
    ];
    let mut args = vec!["check", "--json", "--ca-file", ca.to_str().unwrap()];
    args.extend(["--password-file", pw.to_str().unwrap()]);
    args.extend(urls.iter().map(String::as_str));
    let run = posta(&args);
    let v = run.json();
    assert_eq!(v["status"], "ok", "{v:#}");
    assert_eq!(run.code, 0);
    assert_eq!(v["probes"].as_array().unwrap().len(), 6);
    for p in v["probes"].as_array().unwrap() {
        assert_eq!(p["status"], "ok", "{p:#}");
        assert_eq!(p["tls"]["verified"], true, "{p:#}");
        assert!(p["tls"]["cert_days_left"].as_i64().unwrap() > 300, "{p:#}");
    }
    let smtp = probe(&v, "smtp://");
    let caps: Vec<&str> = smtp["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(caps.iter().any(|c| c.starts_with("PIPELINING")), "{caps:?}");

    // The same servers in the table and Nagios forms.
    let table = posta(&[
        "check",
        "--ca-file",
        ca.to_str().unwrap(),
        &urls[0],
        &urls[2].replace("alice@", ""),
    ]);
    assert_eq!(table.code, 0, "{}{}", table.stdout, table.stderr);
    assert!(table.stdout.contains("OK: 2 ok"), "{}", table.stdout);
    let nagios = posta(&[
        "check",
        "--nagios",
        "--ca-file",
        ca.to_str().unwrap(),
        &urls[0],
    ]);
    assert_eq!(nagios.code, 0);
    assert!(
        nagios.stdout.starts_with("POSTA OK - 1 ok |"),
        "{}",
        nagios.stdout
    );
    assert!(nagios.stdout.contains("s;;;0"), "{}", nagios.stdout);
}

#[test]
fn wrong_probe_password_is_critical() {
    let m = mail();
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path(), "pw", "not-the-password");
    let ca = Ca::get().ca_pem();
    let imap = format!("imap://alice@127.0.0.1:{}", m.dovecot.imap_port());
    let pop3 = format!("pop3s://alice@127.0.0.1:{}", m.dovecot.pop3s_port());
    let smtp = format!(
        "submission://alice@127.0.0.1:{}",
        m.postfix.submission_port()
    );
    let run = posta(&[
        "check",
        "--json",
        "--ca-file",
        ca.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        &imap,
        &pop3,
        &smtp,
    ]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let v = run.json();
    for p in v["probes"].as_array().unwrap() {
        assert_eq!(p["status"], "critical", "{p:#}");
        assert!(
            p["summary"]
                .as_str()
                .unwrap()
                .contains("authentication failed"),
            "{p:#}"
        );
    }
    assert!(!run.stdout.contains("not-the-password") && !run.stderr.contains("not-the-password"));
}

#[test]
fn untrusted_certificate_is_critical_and_says_so() {
    let m = mail();
    let other = Ca::other().ca_pem();
    let imaps = format!("imaps://127.0.0.1:{}", m.dovecot.imaps_port());
    let smtp = format!("smtp://127.0.0.1:{}", m.postfix.smtp_port());
    let run = posta(&[
        "check",
        "--json",
        "--ca-file",
        other.to_str().unwrap(),
        &imaps,
        &smtp,
    ]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let v = run.json();
    for p in v["probes"].as_array().unwrap() {
        assert_eq!(p["status"], "critical", "{p:#}");
        let s = p["summary"].as_str().unwrap();
        assert!(s.contains("not trusted"), "{s}");
    }
    // --insecure says what it skipped and lets the probe pass.
    let run = posta(&["check", "--json", "--insecure", &imaps]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json()["probes"][0]["tls"]["verified"], false);
}

#[test]
fn stopped_dovecot_is_critical_while_postfix_stays_ok() {
    // A Postfix whose SMTP AUTH goes through Dovecot really does fail once Dovecot is gone;
    // this Postfix authenticates nobody, so only Dovecot's own services go down.
    let mut dovecot = Dovecot::start(Ca::get(), &[("alice", "alice-pw")]);
    let postfix = Postfix::start(Ca::get(), DOMAIN, &["alice"], None);
    let ca = Ca::get().ca_pem();
    let imap = format!("imap://127.0.0.1:{}", dovecot.imap_port());
    let pop3 = format!("pop3://127.0.0.1:{}", dovecot.pop3_port());
    let smtp = format!("smtp://127.0.0.1:{}", postfix.smtp_port());
    dovecot.stop();
    let run = posta(&[
        "check",
        "--json",
        "--ca-file",
        ca.to_str().unwrap(),
        &imap,
        &pop3,
        &smtp,
    ]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let v = run.json();
    assert_eq!(probe(&v, "imap://")["status"], "critical");
    assert_eq!(probe(&v, "pop3://")["status"], "critical");
    assert!(
        probe(&v, "imap://")["summary"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(probe(&v, "smtp://")["status"], "ok");
    let nagios = posta(&[
        "check",
        "--nagios",
        "--ca-file",
        ca.to_str().unwrap(),
        &imap,
        &smtp,
    ]);
    assert_eq!(nagios.code, 2);
    assert!(
        nagios
            .stdout
            .starts_with("POSTA CRITICAL - 1 critical, 1 ok:"),
        "{}",
        nagios.stdout
    );
}

#[test]
fn nothing_listening_is_critical() {
    let port = ports::free_port();
    let run = posta(&["check", "--nagios", &format!("pop3://127.0.0.1:{port}")]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.contains("connection refused"), "{}", run.stdout);
}

#[test]
fn tarpit_is_critical_within_its_timeout() {
    let tarpit = Tarpit::start();
    let url = format!("smtp://127.0.0.1:{}", tarpit.port());
    let run = posta(&["check", "--json", "--timeout", "2s", &url]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let p = &run.json()["probes"][0];
    assert_eq!(p["status"], "critical");
    assert!(
        p["summary"]
            .as_str()
            .unwrap()
            .contains("timed out after 2s"),
        "{p:#}"
    );
    let latency = p["latency"].as_f64().unwrap();
    assert!(
        latency >= 2.0,
        "the probe gave up before its timeout: {latency}"
    );
}

#[test]
fn drop_after_greeting_is_critical() {
    let smtp = Dropper::start(b"220 fake.test ESMTP\r\n");
    let imap = Dropper::start(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
    let pop3 = Dropper::start(b"+OK ready\r\n");
    let run = posta(&[
        "check",
        "--json",
        "--timeout",
        "5s",
        &format!("smtp://127.0.0.1:{}", smtp.port()),
        &format!("imap://127.0.0.1:{}", imap.port()),
        &format!("pop3://127.0.0.1:{}", pop3.port()),
    ]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    for p in run.json()["probes"].as_array().unwrap() {
        assert_eq!(p["status"], "critical", "{p:#}");
        assert!(
            p["summary"]
                .as_str()
                .unwrap()
                .contains("closed the connection"),
            "{p:#}"
        );
    }
}

#[test]
fn bad_urls_are_unknown_with_a_clear_message() {
    let run = posta(&["check", "gopher://127.0.0.1"]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("unknown scheme \"gopher\""),
        "{}",
        run.stderr
    );
    let run = posta(&["check", "--nagios", "imap://alice:secret@127.0.0.1"]);
    assert_eq!(run.code, 3);
    assert!(run.stdout.starts_with("POSTA UNKNOWN - "), "{}", run.stdout);
    assert!(!run.stdout.contains("secret@"), "{}", run.stdout);
}

/// A site file for the harness servers, as an administrator would write it.
fn site_file(dir: &Path, m: &Mail, bind: Option<&Bind>, grace: &str) -> PathBuf {
    let pw = secret_file(dir, "probe.pw", "alice-pw");
    let dns = match bind {
        Some(b) => {
            let key = dir.join("tsig.key");
            fs::copy(b.key_file(), &key).unwrap();
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
            format!(
                "[takeover]\nmode = \"dns\"\n[dns]\nserver = \"{}\"\nzone = \"{DOMAIN}\"\nname = \"mailserver1.{DOMAIN}\"\nttl = 60\ntsig_key_file = \"tsig.key\"\n",
                b.addr()
            )
        }
        None => {
            "[takeover]\nmode = \"vip\"\n[vip]\naddress = \"127.0.0.9/8\"\ninterface = \"lo\"\n"
                .into()
        }
    };
    let text = format!(
        r#"domain = "{DOMAIN}"
[primary]
name = "localhost"
address = "127.0.0.1"
services = ["smtp:{smtp}?starttls=require", "submission:{sub}", "imap:{imap}", "pop3s:{pop3s}"]
probe_user = "alice"
probe_password_file = "probe.pw"
[backup]
name = "localhost"
address = "127.0.0.2"
services = ["smtp:{smtp}"]
[probe]
timeout = "5s"
takeover_grace = "{grace}"
[tls]
ca_file = "{ca}"
{dns}"#,
        smtp = m.postfix.smtp_port(),
        sub = m.postfix.submission_port(),
        imap = m.dovecot.imap_port(),
        pop3s = m.dovecot.pop3s_port(),
        ca = Ca::get().ca_pem().display(),
    );
    let _ = pw;
    let path = dir.join("site.toml");
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn site_roles_are_probed_from_the_site_file() {
    let m = mail();
    let dir = tempfile::tempdir().unwrap();
    let site = site_file(dir.path(), &m, None, "5m");
    let run = posta(&[
        "--config",
        site.to_str().unwrap(),
        "check",
        "--json",
        "primary",
    ]);
    let v = run.json();
    assert_eq!(run.code, 0, "{v:#}");
    assert_eq!(v["probes"].as_array().unwrap().len(), 4);
    assert!(
        probe(&v, "primary submission://")["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "auth" && s["status"] == "ok"),
        "{v:#}"
    );
    // The backup's address (127.0.0.2) has nothing on the SMTP port: CRITICAL.
    let run = posta(&[
        "--config",
        site.to_str().unwrap(),
        "check",
        "--nagios",
        "backup",
    ]);
    assert_eq!(run.code, 2, "{}", run.stdout);
}

fn seed_zone(a_ttl: u32) -> String {
    format!(
        "@ 3600 IN MX 10 mailserver1\n@ 3600 IN MX 20 mailserver2\n\
         mailserver1 {a_ttl} IN A 127.0.0.1\nmailserver2 3600 IN A 127.0.0.2\n"
    )
}

#[test]
fn dns_layout_is_checked_against_a_real_bind() {
    let m = mail();
    let dir = tempfile::tempdir().unwrap();
    let body = Bind::minimal_zone(DOMAIN) + &seed_zone(60);
    let bind = Bind::start(DOMAIN, &body);
    let mut site = site_file(dir.path(), &m, Some(&bind), "5m");
    let text = fs::read_to_string(&site)
        .unwrap()
        .replace(
            "name = \"localhost\"\naddress = \"127.0.0.1\"",
            &format!("name = \"mailserver1.{DOMAIN}\"\naddress = \"127.0.0.1\""),
        )
        .replace(
            "name = \"localhost\"\naddress = \"127.0.0.2\"",
            &format!("name = \"mailserver2.{DOMAIN}\"\naddress = \"127.0.0.2\""),
        );
    fs::write(&site, &text).unwrap();
    let run = posta(&["--config", site.to_str().unwrap(), "check", "--json", "dns"]);
    let v = run.json();
    assert_eq!(run.code, 0, "{v:#}");
    assert_eq!(v["probes"][0]["status"], "ok");

    // A takeover grace shorter than the served A record's TTL: clients would keep the old
    // address. (The site's own `ttl`, what takeover writes, must fit the grace to load at all.)
    let text = text
        .replace("takeover_grace = \"5m\"", "takeover_grace = \"30s\"")
        .replace("ttl = 60", "ttl = 30");
    site = dir.path().join("short.toml");
    fs::write(&site, text).unwrap();
    let run = posta(&["--config", site.to_str().unwrap(), "check", "--json", "dns"]);
    let v = run.json();
    assert_eq!(run.code, 1, "{v:#}");
    let summary = v["probes"][0]["summary"].as_str().unwrap();
    assert!(
        summary.contains("TTL 60s exceeds the takeover grace 30s"),
        "{summary}"
    );
}
