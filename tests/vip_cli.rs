//! `posta takeover vip` / `posta failback vip [--reclaim]` / `posta status` as an operator runs
//! them, in network namespaces (tests/support/netns.rs): a client, mailserver1 and mailserver2
//! on one bridge, each with an SMTP greeter that names itself. The proof is the client's: whose
//! greeting it gets through the virtual IP, and whose MAC its neighbour entry holds.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::netns::{Host, Lan};
use support::run::Run;

/// Runs posta inside `host`'s namespace.
fn posta(host: &Host, args: &[&str]) -> Run {
    let out = Command::new("ip")
        .args(["netns", "exec", host.ns.name(), env!("CARGO_BIN_EXE_posta")])
        .args(args)
        .env_remove("POSTA_CONFIG")
        .output()
        .expect("run posta in a namespace");
    Run::from_output(out)
}

/// The VIP flags: quick announcements and no second burst, so each command returns at once.
fn vip_args<'a>(
    verb: &'a str,
    address: &'a str,
    state: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        verb,
        "vip",
        "--address",
        address,
        "--dev",
        Host::INTERFACE,
        "--garp-count",
        "2",
        "--garp-interval",
        "20ms",
        "--second-burst",
        "0",
        "--state-file",
        state,
    ];
    a.extend_from_slice(extra);
    a
}

fn assert_serves(lan: &Lan, server: &Host) {
    let address = lan.vip4.into();
    let greeting = lan
        .client
        .smtp_greeting(address)
        .unwrap_or_else(|e| panic!("client: {e}"));
    assert!(
        greeting.starts_with(&format!("220 {} ", server.role)),
        "{greeting:?}"
    );
    assert_eq!(
        lan.client.neighbour(address).as_deref(),
        Some(server.mac.as_str()),
        "{}",
        lan.client.neighbour_line(address)
    );
}

fn state_holder(path: &Path) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["holdings"][0]["holder"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn takeover_failback_and_reclaim_from_the_command_line_and_every_repeat_is_a_no_op() {
    let lan = Lan::new();
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let (s1, s2) = (dir.path().join("ms1.json"), dir.path().join("ms2.json"));
    let (s1, s2) = (s1.to_str().unwrap(), s2.to_str().unwrap());
    let address = format!("{}/24", lan.vip4);

    // mailserver1 holds its address (reclaim also works as "bring it up and announce it").
    let run = posta(
        &lan.ms1,
        &vip_args("failback", &address, s1, &["--reclaim"]),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_serves(&lan, &lan.ms1);

    // While it does, mailserver2 refuses to take it, names ms1's MAC, and changes nothing.
    let refused = posta(&lan.ms2, &vip_args("takeover", &address, s2, &[]));
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains(&lan.ms1.mac), "{refused:?}");
    assert!(!Path::new(s2).exists(), "a refused takeover was recorded");
    assert_serves(&lan, &lan.ms1);

    // mailserver1 dies; the dry run says what would happen and does nothing.
    lan.ms1.link_down();
    let dry = posta(
        &lan.ms2,
        &vip_args("takeover", &address, s2, &["--dry-run"]),
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("ARP probe for"), "{dry:?}");
    assert!(!Path::new(s2).exists());

    let run = posta(&lan.ms2, &vip_args("takeover", &address, s2, &[]));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("SMTP answers at"), "{run:?}");
    assert_serves(&lan, &lan.ms2);
    assert_eq!(state_holder(Path::new(s2)), "backup");
    let again = posta(&lan.ms2, &vip_args("takeover", &address, s2, &[]));
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("already in effect"), "{again:?}");
    let status = posta(&lan.ms2, &["status", "--state-file", s2]);
    assert!(status.stdout.contains("held by mailserver2"), "{status:?}");

    // mailserver1 is back (with its address configured, as after a reboot): mailserver2 lets go,
    // and mailserver1 reclaims, moving the client's cache back at once.
    lan.ms1.link_up();
    let back = posta(&lan.ms2, &vip_args("failback", &address, s2, &[]));
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(state_holder(Path::new(s2)), "primary");
    let again = posta(&lan.ms2, &vip_args("failback", &address, s2, &[]));
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("already in effect"), "{again:?}");
    let reclaim = posta(
        &lan.ms1,
        &vip_args("failback", &address, s1, &["--reclaim"]),
    );
    assert_eq!(reclaim.code, 0, "{reclaim:?}");
    assert_serves(&lan, &lan.ms1);
}

#[test]
fn bad_vip_arguments_are_usage_errors() {
    let lan = Lan::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let s = state.to_str().unwrap();
    let run = posta(&lan.ms2, &vip_args("takeover", "10.0.0.25", s, &[]));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("prefix"), "{run:?}");
    let run = posta(
        &lan.ms2,
        &vip_args("takeover", "10.0.0.25/24", s, &["--reclaim"]),
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("--reclaim belongs to failback"),
        "{run:?}"
    );
    let run = posta(
        &lan.ms2,
        &[
            "takeover",
            "vip",
            "--address",
            "10.0.0.25/24",
            "--dev",
            "nope0",
            "--state-file",
            s,
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("nope0"), "{run:?}");
}

/// mailserver2 that already has the address while mailserver1 answers for it too is in a
/// duplicate, not "already in effect": the takeover fails naming mailserver1's MAC and says
/// which host must give it up. It used to print "already holds the address" and exit 0.
#[test]
fn a_takeover_in_a_duplicate_is_refused() {
    let lan = Lan::new();
    let _g2 = lan.ms2.greeter();
    let dir = tempfile::tempdir().unwrap();
    let s2 = dir.path().join("ms2.json");
    let s2 = s2.to_str().unwrap();
    let address = format!("{}/24", lan.vip4);
    for host in [&lan.ms1, &lan.ms2] {
        host.ns
            .ip(&["addr", "add", &address, "dev", Host::INTERFACE]);
    }
    let run = posta(&lan.ms2, &vip_args("takeover", &address, s2, &[]));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("a duplicate"), "{run:?}");
    assert!(run.stdout.contains(&lan.ms1.mac), "{run:?}");
    assert!(run.stdout.contains("posta failback"), "{run:?}");
    assert!(!Path::new(s2).exists(), "a refused takeover was recorded");
}
