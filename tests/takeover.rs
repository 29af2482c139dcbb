//! `posta takeover`, `posta failback` and `posta status` as an operator runs them, DNS mode
//! against the harness's real BIND9 (the VIP mode's namespaces are in tests/vip_cli.rs): the
//! record moves and is read back, repeats are no-ops, a stale --expect changes nothing, key
//! trouble is named, hooks run in order, and every change lands in the state file.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::Bind;
use support::run::{Run, posta_command};

const ZONE: &str = "example.test";
const PRIMARY: &str = "10.0.0.25";
const BACKUP: &str = "10.0.0.26";

fn posta(args: &[&str]) -> Run {
    Run::from_output(
        posta_command(env!("CARGO_BIN_EXE_posta"))
            .args(args)
            .output()
            .expect("run posta"),
    )
}

fn bind() -> Bind {
    let zone = format!("{}mail IN A {PRIMARY}\n", Bind::minimal_zone(ZONE));
    Bind::start(ZONE, &zone)
}

/// The record as the server serves it now.
fn served(b: &Bind) -> String {
    let out = Command::new("dig")
        .args([
            "+short",
            "-p",
            &b.port().to_string(),
            "@127.0.0.1",
            &format!("mail.{ZONE}"),
            "A",
        ])
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn key_copy(b: &Bind, dir: &Path) -> PathBuf {
    let key = dir.join("tsig.key");
    fs::copy(b.key_file(), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    key
}

fn dns_args<'a>(
    b: &'a str,
    key: &'a str,
    state: &'a str,
    expect: &'a str,
    to: &'a str,
) -> Vec<&'a str> {
    vec![
        "dns",
        "--server",
        b,
        "--zone",
        ZONE,
        "--name",
        "mail",
        "--expect",
        expect,
        "--to",
        to,
        "--key-file",
        key,
        "--ttl",
        "60",
        "--state-file",
        state,
    ]
}

#[test]
fn dns_takeover_flips_verifies_records_and_repeats_as_a_no_op() {
    let b = bind();
    let dir = tempfile::tempdir().unwrap();
    let key = key_copy(&b, dir.path());
    let state = dir.path().join("state.json");
    let (server, key, state) = (
        b.addr().to_string(),
        key.display().to_string(),
        state.display().to_string(),
    );

    let dry = posta(
        &[
            &["takeover"][..],
            &dns_args(&server, &key, &state, PRIMARY, BACKUP),
            &["--dry-run"],
        ]
        .concat(),
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("UPDATE mail.example.test."), "{dry:?}");
    assert_eq!(served(&b), PRIMARY, "--dry-run changed the record");

    let run = posta(
        &[
            &["takeover"][..],
            &dns_args(&server, &key, &state, PRIMARY, BACKUP),
        ]
        .concat(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(
            "takeover of mail.example.test. A/AAAA done: resolvers may hand out the old \
             address for up to 60 s (the record's TTL)"
        ),
        "{run:?}"
    );
    assert_eq!(served(&b), BACKUP);

    let again = posta(
        &[
            &["takeover"][..],
            &dns_args(&server, &key, &state, PRIMARY, BACKUP),
            &["--json"],
        ]
        .concat(),
    );
    assert_eq!(again.code, 0, "{again:?}");
    let v: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(v["changed"], false, "{again:?}");

    let status = posta(&["status", "--state-file", &state]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains("held by mailserver2 (taken over)"),
        "{status:?}"
    );
    // The record held mailserver1's address with TTL 60 before: caches may keep it that long
    // (counted down from the change).
    assert!(
        status
            .stdout
            .contains("resolvers may hand out the old address for up to "),
        "{status:?}"
    );

    let back = posta(
        &[
            &["failback"][..],
            &dns_args(&server, &key, &state, BACKUP, PRIMARY),
        ]
        .concat(),
    );
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(served(&b), PRIMARY);
    let status = posta(&["status", "--state-file", &state, "--json"]);
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["holdings"][0]["holder"], "primary");
    assert_eq!(v["history"].as_array().unwrap().len(), 2, "{status:?}");
    // After failback the old address is mailserver2's, cached for the TTL takeover wrote.
    assert_eq!(v["holdings"][0]["old_ttl"], 60, "{status:?}");
    let left = v["holdings"][0]["resolvers_may_hand_out_old_for_seconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("no countdown: {status:?}"));
    assert!(left <= 60, "{status:?}");
}

#[test]
fn a_stale_expectation_or_bad_key_changes_nothing_and_says_why() {
    let b = bind();
    let dir = tempfile::tempdir().unwrap();
    let key = key_copy(&b, dir.path());
    let state = dir.path().join("state.json");
    let (server, keys, states) = (
        b.addr().to_string(),
        key.display().to_string(),
        state.display().to_string(),
    );

    let stale = posta(
        &[
            &["takeover"][..],
            &dns_args(&server, &keys, &states, "10.9.9.9", BACKUP),
        ]
        .concat(),
    );
    assert_eq!(stale.code, 1, "{stale:?}");
    assert!(
        stale.stdout.contains(PRIMARY),
        "the error should say what the record holds: {stale:?}"
    );
    assert_eq!(served(&b), PRIMARY);
    assert!(!state.exists(), "a refused takeover was recorded");

    // Same key name, another secret: the server's BADSIG, not hickory's "truncated HMAC".
    let text = fs::read_to_string(&key).unwrap();
    let start = text.find("secret \"").unwrap() + 8;
    let mut bad = text.clone();
    bad.replace_range(
        start..start + 4,
        if &text[start..start + 4] == "AAAA" {
            "BBBB"
        } else {
            "AAAA"
        },
    );
    let bad_key = dir.path().join("bad.key");
    fs::write(&bad_key, bad).unwrap();
    fs::set_permissions(&bad_key, fs::Permissions::from_mode(0o600)).unwrap();
    let sig = posta(
        &[
            &["takeover"][..],
            &dns_args(&server, bad_key.to_str().unwrap(), &states, PRIMARY, BACKUP),
        ]
        .concat(),
    );
    assert_eq!(sig.code, 1, "{sig:?}");
    assert!(!sig.stdout.contains("truncated"), "{sig:?}");

    let unknown = text.replacen(b.key_name(), "nobody-knows-me", 1);
    let unknown_key = dir.path().join("unknown.key");
    fs::write(&unknown_key, unknown).unwrap();
    fs::set_permissions(&unknown_key, fs::Permissions::from_mode(0o600)).unwrap();
    let unk = posta(
        &[
            &["takeover"][..],
            &dns_args(
                &server,
                unknown_key.to_str().unwrap(),
                &states,
                PRIMARY,
                BACKUP,
            ),
        ]
        .concat(),
    );
    assert_eq!(unk.code, 1, "{unk:?}");
    assert_ne!(
        sig.stdout, unk.stdout,
        "wrong secret and unknown key must be told apart"
    );
    assert_eq!(served(&b), PRIMARY);

    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let loose = posta(
        &[
            &["takeover"][..],
            &dns_args(&server, &keys, &states, PRIMARY, BACKUP),
        ]
        .concat(),
    );
    assert_eq!(loose.code, 2, "{loose:?}");
    assert!(loose.stderr.contains("chmod 600"), "{loose:?}");
}

#[test]
fn site_file_takeover_runs_hooks_in_order_with_the_event() {
    let b = bind();
    let dir = tempfile::tempdir().unwrap();
    key_copy(&b, dir.path());
    let log = dir.path().join("hooks.log");
    let hook = |tag: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo {tag} $POSTA_EVENT $POSTA_MODE $POSTA_NEW >> {}\"]",
            log.display()
        )
    };
    let hooks = format!(
        "pre_takeover = [{}, {}]\npost_takeover = [{}]\n",
        hook("first"),
        hook("second"),
        hook("after")
    );
    let site = dns_site_with_hooks(&b, dir.path(), &hooks);
    let config = site.display().to_string();
    let run = posta(&["--config", &config, "takeover"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(served(&b), BACKUP);
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        format!(
            "first pre-takeover dns {BACKUP}\nsecond pre-takeover dns {BACKUP}\nafter post-takeover dns {BACKUP}\n"
        )
    );
    assert!(dir.path().join("state.json").exists());
    // A repeat is a no-op: no hooks run again.
    let again = posta(&["--config", &config, "takeover"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("already in effect"), "{again:?}");
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 3);
    let back = posta(&["--config", &config, "failback"]);
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(served(&b), PRIMARY);
}

/// A DNS-mode site file in `dir` for the test zone on `b`, whose `[hooks]` table holds `hooks`
/// (TOML lines) and a 5 s timeout.
fn dns_site_with_hooks(b: &Bind, dir: &Path, hooks: &str) -> PathBuf {
    let site = dir.join("site.toml");
    fs::write(
        &site,
        format!(
            r#"domain = "{ZONE}"
[primary]
name = "mail.{ZONE}"
address = "{PRIMARY}"
services = ["smtp"]
[backup]
name = "mail2.{ZONE}"
address = "{BACKUP}"
services = ["smtp"]
[takeover]
mode = "dns"
state_file = "state.json"
[dns]
server = "{server}"
zone = "{ZONE}"
name = "mail.{ZONE}"
ttl = 60
tsig_key_file = "tsig.key"
[hooks]
{hooks}timeout = "5s"
"#,
            server = b.addr(),
        ),
    )
    .unwrap();
    site
}

/// A post hook that fails runs after the record moved and the move was recorded: the takeover
/// is done (exit 0, the record served, the holder recorded), and the hook's failure is a
/// warning in the steps, the verdict, `--json` and on stderr, never a failed takeover.
#[test]
fn a_failing_post_hook_is_a_warning_on_a_takeover_that_is_done() {
    let b = bind();
    let dir = tempfile::tempdir().unwrap();
    key_copy(&b, dir.path());
    let site = dns_site_with_hooks(
        &b,
        dir.path(),
        "post_takeover = [[\"/bin/false\"]]\npost_failback = [[\"/bin/false\"]]\n",
    );
    let config = site.display().to_string();
    let run = posta(&["--config", &config, "takeover"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(served(&b), BACKUP);
    assert!(
        run.stdout.contains("FAILED  post-takeover hooks"),
        "{run:?}"
    );
    let verdict = run.stdout.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with(&format!("takeover of mail.{ZONE}"))
            && verdict.contains(" done: ")
            && verdict.contains("with a warning: the change is in effect, but post-takeover hook"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("posta: warning: the change is in effect, but"),
        "{run:?}"
    );
    let state: Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["holdings"][0]["holder"], "backup", "{state}");
    // --json carries the warning and no error.
    let back = posta(&["--config", &config, "failback", "--json"]);
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(served(&b), PRIMARY);
    let out: Value = serde_json::from_str(&back.stdout).unwrap();
    assert!(out.get("error").is_none(), "{out}");
    assert_eq!(out["changed"], true, "{out}");
    let warning = out["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.starts_with("the change is in effect, but"), "{out}");
    assert!(back.stderr.contains("posta: warning:"), "{back:?}");
}

#[test]
fn zone_file_takeover_edits_reloads_and_verifies() {
    let zone = format!("{}mail IN A {PRIMARY}\n", Bind::minimal_zone(ZONE));
    let b = Bind::start_static(ZONE, &zone);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let file = b.zone_file().display().to_string();
    let reload = b.reload_command();
    let server = b.addr().to_string();
    let mut owned: Vec<String> = [
        "takeover",
        "dns",
        "--server",
        &server,
        "--zone",
        ZONE,
        "--name",
        "mail",
        "--expect",
        PRIMARY,
        "--to",
        BACKUP,
        "--ttl",
        "60",
        "--zone-file",
        &file,
        "--state-file",
        state.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // `--reload=WORD`: the command's own words may start with a dash (kill -HUP PID).
    owned.extend(reload.split_whitespace().map(|w| format!("--reload={w}")));
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    let run = posta(&args);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("bump the SOA serial"), "{run:?}");
    assert_eq!(served(&b), BACKUP);
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(BACKUP) && !text.contains(&format!("A {PRIMARY}")),
        "{text}"
    );
    let check = Command::new("named-checkzone")
        .args([ZONE, &file])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let again = posta(&args);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("already in effect"), "{again:?}");
}
