//! DNS takeover through the library against a real BIND9 (tests/support/bind.rs): a signed
//! compare-and-swap UPDATE, verification read back from the authoritative server, the errors an
//! operator meets (wrong secret, unknown key, key without permission, stale --expect), and the
//! zone-file mode checked by named-checkzone and served by named after a reload.
//!
//! What the record holds is also read with `dig`, so the tests do not only agree with ourselves.

mod support;

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use posta::takeover::dns::{self, DnsError, Record, Swap, read_key_file, zonefile};
use support::Bind;
use support::sys::{require_tool, run};

const ZONE: &str = "example.test";
const TIMEOUT: Duration = Duration::from_secs(5);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

/// The harness zone plus mailserver1's record with a long TTL, as before a site lowers it.
fn start() -> Bind {
    Bind::start(
        ZONE,
        &(Bind::minimal_zone(ZONE) + "mail 3600 IN A 10.0.0.25\n"),
    )
}

fn rec() -> Record {
    Record::new(ZONE, "mail", 60).unwrap()
}

/// `dig +short` for the record, sorted: the record as a stock tool sees it.
fn dig(bind: &Bind, rtype: &str) -> Vec<String> {
    let out = run(Command::new(require_tool("dig"))
        .args(["@127.0.0.1", "-p", &bind.port().to_string()])
        .args([&format!("mail.{ZONE}"), rtype, "+short", "+norecurse"]));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn serial(bind: &Bind) -> u32 {
    let out = run(Command::new(require_tool("dig")).args([
        "@127.0.0.1",
        "-p",
        &bind.port().to_string(),
        ZONE,
        "SOA",
        "+short",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// A copy of `key` with its name and/or secret replaced, mode 0600.
fn doctored_key(dir: &Path, key: &Path, name: Option<&str>, secret: Option<&str>) -> PathBuf {
    let mut text = fs::read_to_string(key).unwrap();
    if let Some(name) = name {
        text = text.replace("posta-test-key", name);
    }
    if let Some(secret) = secret {
        let start = text.find("secret \"").unwrap() + "secret \"".len();
        let end = start + text[start..].find('"').unwrap();
        text.replace_range(start..end, secret);
    }
    let path = dir.join("doctored.key");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[tokio::test]
async fn takeover_verify_repeat_and_failback() {
    let bind = start();
    let key = read_key_file(&bind.key_file()).unwrap();
    let (a, b) = (ips(&["10.0.0.25"]), ips(&["10.0.0.26"]));

    let started = Instant::now();
    let swap = dns::swap(bind.addr(), &key, &rec(), &a, &b, TIMEOUT)
        .await
        .unwrap();
    let Swap::Done { before } = &swap else {
        panic!("expected Done, got {swap:?}")
    };
    assert_eq!(before.serial, 1);
    assert_eq!(before.addrs, a);
    assert_eq!(before.ttl, Some(3600));
    let v = dns::verify(bind.addr(), &rec(), &b, swap.before(), TIMEOUT)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(v.consistent, "{v:#?}");
    assert_eq!(v.servers.len(), 1, "{v:#?}");
    let seen = v.servers[0].seen.as_ref().unwrap();
    assert_eq!(v.servers[0].ns.to_string(), "ns1.example.test.");
    assert_eq!(v.servers[0].addr, Some(bind.addr()));
    assert!(seen.serial > 1, "serial {} did not increase", seen.serial);
    assert_eq!(seen.ttl, Some(60));
    // The old record's TTL: caches may hold 10.0.0.25 for up to an hour.
    assert_eq!(v.convergence, Duration::from_secs(3600));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(dig(&bind, "A"), ["10.0.0.26"]);

    // Again: the record already holds the new address. Nothing changes.
    let serial_after = serial(&bind);
    let again = dns::swap(bind.addr(), &key, &rec(), &a, &b, TIMEOUT)
        .await
        .unwrap();
    assert!(matches!(again, Swap::AlreadyDone { .. }), "{again:?}");
    assert_eq!(serial(&bind), serial_after);

    // Failback: the same call with the roles reversed.
    let back = dns::swap(bind.addr(), &key, &rec(), &b, &a, TIMEOUT)
        .await
        .unwrap();
    assert!(matches!(back, Swap::Done { .. }), "{back:?}");
    let v = dns::verify(bind.addr(), &rec(), &a, back.before(), TIMEOUT)
        .await
        .unwrap();
    assert!(v.consistent, "{v:#?}");
    // Now the old record (10.0.0.26) had TTL 60.
    assert_eq!(v.convergence, Duration::from_secs(60));
    assert_eq!(dig(&bind, "A"), ["10.0.0.25"]);
}

#[tokio::test]
async fn stale_expect_changes_nothing_and_names_what_is_there() {
    let bind = start();
    let key = read_key_file(&bind.key_file()).unwrap();
    let e = dns::swap(
        bind.addr(),
        &key,
        &rec(),
        &ips(&["10.0.0.99"]),
        &ips(&["10.0.0.26"]),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    let DnsError::NotExpected { found, .. } = &e else {
        panic!("expected NotExpected, got {e:?}")
    };
    assert_eq!(found, &ips(&["10.0.0.25"]));
    assert_eq!(
        e.to_string(),
        format!(
            "mail.example.test. holds 10.0.0.25 at {}, not the expected 10.0.0.99: nothing was \
             changed",
            bind.addr()
        )
    );
    assert!(!e.is_transient());
    assert_eq!(dig(&bind, "A"), ["10.0.0.25"]);
    assert_eq!(serial(&bind), 1);
}

#[tokio::test]
async fn key_problems_are_told_apart() {
    let bind = start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (ips(&["10.0.0.25"]), ips(&["10.0.0.26"]));
    let wrong_secret = doctored_key(
        dir.path(),
        &bind.key_file(),
        None,
        Some("d3Jvbmctc2VjcmV0LWZvci10aGUtdGVzdC1rZXktMTIzNDU="),
    );
    let key = read_key_file(&wrong_secret).unwrap();
    let e = dns::swap(bind.addr(), &key, &rec(), &a, &b, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::BadSignature { .. }), "{e:?}");
    let bad_sig = e.to_string();
    assert!(bad_sig.contains("NOTAUTH/BADSIG"), "{bad_sig}");
    assert!(
        bad_sig.contains("does not match the server's key posta-test-key"),
        "{bad_sig}"
    );
    assert!(!bad_sig.contains("truncated"), "{bad_sig}");

    let unknown = doctored_key(dir.path(), &bind.key_file(), Some("nobody-knows-me"), None);
    let key = read_key_file(&unknown).unwrap();
    let e = dns::swap(bind.addr(), &key, &rec(), &a, &b, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::UnknownKey { .. }), "{e:?}");
    let bad_key = e.to_string();
    assert!(
        bad_key.contains("does not know TSIG key nobody-knows-me"),
        "{bad_key}"
    );
    assert_ne!(bad_sig, bad_key);

    // Known to named, valid signature, but not in allow-update.
    let key = read_key_file(&bind.other_key_file()).unwrap();
    let e = dns::swap(bind.addr(), &key, &rec(), &a, &b, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::Refused { .. }), "{e:?}");
    assert!(
        e.to_string().contains("allow-update / update-policy"),
        "{e}"
    );

    assert_eq!(dig(&bind, "A"), ["10.0.0.25"]);
    assert_eq!(serial(&bind), 1);
    for e in [bad_sig, bad_key] {
        let secret = fs::read_to_string(bind.key_file()).unwrap();
        let secret = secret.split('"').nth(3).unwrap().to_owned();
        assert!(!e.contains(&secret), "{e}");
    }
}

#[tokio::test]
async fn dual_stack_takeover_counts_negative_caching() {
    let bind = Bind::start(
        ZONE,
        &(Bind::minimal_zone(ZONE) + "mail 60 IN A 10.0.0.25\n"),
    );
    let key = read_key_file(&bind.key_file()).unwrap();
    let to = ips(&["10.0.0.26", "2001:db8::26"]);
    let swap = dns::swap(
        bind.addr(),
        &key,
        &rec(),
        &ips(&["10.0.0.25"]),
        &to,
        TIMEOUT,
    )
    .await
    .unwrap();
    let v = dns::verify(bind.addr(), &rec(), &to, swap.before(), TIMEOUT)
        .await
        .unwrap();
    assert!(v.consistent, "{v:#?}");
    // The minimal zone's SOA: TTL 60, MINIMUM 60; a cache that was told "no AAAA" keeps that.
    assert_eq!(v.negative_ttl, 60);
    assert_eq!(dig(&bind, "AAAA"), ["2001:db8::26"]);
    // An --expect that leaves out the AAAA is not what the name holds.
    let e = dns::swap(
        bind.addr(),
        &key,
        &rec(),
        &ips(&["10.0.0.26"]),
        &ips(&["10.0.0.25"]),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("holds 10.0.0.26, 2001:db8::26"),
        "{e}"
    );
    let back = dns::swap(
        bind.addr(),
        &key,
        &rec(),
        &to,
        &ips(&["10.0.0.25"]),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(matches!(back, Swap::Done { .. }));
    assert!(dig(&bind, "AAAA").is_empty());
}

#[tokio::test]
async fn wrong_zone_is_not_authoritative() {
    let bind = start();
    let key = read_key_file(&bind.key_file()).unwrap();
    let other = Record::new("other.test", "mail", 60).unwrap();
    let e = dns::swap(
        bind.addr(),
        &key,
        &other,
        &ips(&["10.0.0.25"]),
        &ips(&["10.0.0.26"]),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(!e.is_transient(), "{e:?}");
    // named REFUSEs questions about a zone it does not serve: caught before any update is sent.
    assert!(matches!(e, DnsError::Lame { .. }), "{e:?}");
    assert!(e.to_string().contains("other.test"), "{e}");
}

/// 60 AAAA records: the UPDATE is over 512 bytes and the AAAA answer over the 1232-byte EDNS
/// size, so both go over TCP (the update directly, the query after a truncated UDP reply).
#[tokio::test]
async fn large_updates_and_answers_go_over_tcp() {
    let bind = start();
    let key = read_key_file(&bind.key_file()).unwrap();
    let many: Vec<IpAddr> = (1..=60).map(|i| ip(&format!("2001:db8::{i:x}"))).collect();
    let a = ips(&["10.0.0.25"]);
    let swap = dns::swap(bind.addr(), &key, &rec(), &a, &many, TIMEOUT)
        .await
        .unwrap();
    assert!(matches!(swap, Swap::Done { .. }), "{swap:?}");
    let v = dns::verify(bind.addr(), &rec(), &many, swap.before(), TIMEOUT)
        .await
        .unwrap();
    assert!(v.consistent, "{:?}", v.problems());
    assert_eq!(dig(&bind, "AAAA").len(), 60);
    let back = dns::swap(bind.addr(), &key, &rec(), &many, &a, TIMEOUT)
        .await
        .unwrap();
    assert!(matches!(back, Swap::Done { .. }), "{back:?}");
    assert!(dig(&bind, "AAAA").is_empty());
}

/// The seed's zone-file style (tabs, `IN` before the type, owners left blank to continue the
/// previous one) around mailserver1, with a multi-line SOA and comments.
const SEED_ZONE: &str = "\
$ORIGIN example.test.
$TTL 3600
; archivo de zona de example.test
@\tIN\tSOA\tns1 hostmaster (
\t\t2026010101\t; serial
\t\t3600 900 604800 300 )
\tIN\tNS\tns1
@\tIN\tMX\t10\tmailserver1
\tIN\tMX\t20\tmailserver2
\tIN\tMX\t30\temail-friend-store.com.
ns1\tIN\tA\t127.0.0.1
mailserver1\tIN\tA\t\t10.0.0.25 ; the primary
\tIN\tTXT\t\"v=spf1 mx -all\"
mailserver2\tIN\tA\t\t10.0.0.26
";

fn checkzone(path: &Path) {
    run(Command::new(require_tool("named-checkzone"))
        .args([ZONE])
        .arg(path));
}

#[tokio::test]
async fn zone_file_swap_reload_verify_and_back() {
    let bind = Bind::start_static(ZONE, SEED_ZONE);
    let path = bind.zone_file();
    checkzone(&path);
    let rec = Record::new(ZONE, "mailserver1", 60).unwrap();
    let (a, b) = (ips(&["10.0.0.25"]), ips(&["10.0.0.26"]));

    let swap = zonefile::swap(&path, &rec, &a, &b).unwrap();
    let Swap::Done { before } = &swap else {
        panic!("expected Done, got {swap:?}")
    };
    assert_eq!(before.serial, 2026010101);
    assert_eq!(before.ttl, Some(3600));
    checkzone(&path);
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("mailserver1\t60\tIN\tA\t\t10.0.0.26 ; the primary"),
        "{text}"
    );
    assert!(text.contains("\tIN\tTXT\t\"v=spf1 mx -all\""), "{text}");
    // named still owns its file.
    let meta = fs::metadata(&path).unwrap();
    let bind_uid = support::sys::user_ids("bind").0;
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), bind_uid);

    // The operator's reload command, then verification against the server.
    run(Command::new("sh").args(["-c", &bind.reload_command()]));
    let v = wait_consistent(&bind, &rec, &b, &swap).await;
    let seen = v.servers[0].seen.as_ref().unwrap();
    assert!(seen.serial > 2026010101, "{v:#?}");
    assert_eq!(seen.ttl, Some(60));
    assert_eq!(v.convergence, Duration::from_secs(3600));

    // Again: nothing to do, the file is untouched.
    let again = zonefile::swap(&path, &rec, &a, &b).unwrap();
    assert!(matches!(again, Swap::AlreadyDone { .. }), "{again:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), text);

    // Failback.
    let back = zonefile::swap(&path, &rec, &b, &a).unwrap();
    assert!(matches!(back, Swap::Done { .. }));
    checkzone(&path);
    run(Command::new("sh").args(["-c", &bind.reload_command()]));
    wait_consistent(&bind, &rec, &a, &back).await;
}

/// named reloads asynchronously after SIGHUP: poll the verification for a few seconds.
async fn wait_consistent(
    bind: &Bind,
    rec: &Record,
    want: &[IpAddr],
    swap: &Swap,
) -> dns::Verification {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = dns::verify(bind.addr(), rec, want, swap.before(), TIMEOUT)
            .await
            .unwrap();
        if v.consistent {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "named did not serve {want:?} after reload: {:?}\n{}",
            v.problems(),
            support::sys::tail(&bind.log(), 20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The TTL of the record as `dig` sees it (one A record).
fn dig_ttl(bind: &Bind) -> u32 {
    let out = run(Command::new(require_tool("dig"))
        .args(["@127.0.0.1", "-p", &bind.port().to_string()])
        .args([
            &format!("mail.{ZONE}"),
            "A",
            "+noall",
            "+answer",
            "+norecurse",
        ]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `posta takeover|failback dns` with flags only (no site file), and its exit code and output.
fn posta_dns(
    bind: &Bind,
    state: &Path,
    verb: &str,
    expect: &str,
    to: &str,
    extra: &[&str],
) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posta"))
        .env_remove("POSTA_CONFIG")
        .args([
            verb,
            "dns",
            "--server",
            &bind.addr().to_string(),
            "--zone",
            ZONE,
        ])
        .args([
            "--name",
            "mail",
            "--expect",
            expect,
            "--to",
            to,
            "--key-file",
        ])
        .arg(bind.key_file())
        .arg("--state-file")
        .arg(state)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

#[test]
fn dry_run_reads_the_record_and_failback_restores_its_ttl() {
    let bind = start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("takeover.json");
    // A dry run compares like the real run: it used to exit 0 here without reading anything.
    let (code, text) = posta_dns(
        &bind,
        &state,
        "takeover",
        "10.0.0.99",
        "10.0.0.26",
        &["--dry-run"],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("10.0.0.25"), "{text}");
    let (code, text) = posta_dns(
        &bind,
        &state,
        "takeover",
        "10.0.0.25",
        "10.0.0.26",
        &["--dry-run"],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("holds 10.0.0.25"), "{text}");
    assert_eq!(dig(&bind, "A"), ["10.0.0.25"]);

    let (code, text) = posta_dns(
        &bind,
        &state,
        "takeover",
        "10.0.0.25",
        "10.0.0.26",
        &["--ttl", "60"],
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(dig(&bind, "A"), ["10.0.0.26"]);
    assert_eq!(dig_ttl(&bind), 60);
    // Failback writes the TTL the record had before the takeover (recorded in the state file),
    // not the short one the takeover wrote: it used to leave 60 (or the site's ttl) behind.
    let (code, text) = posta_dns(&bind, &state, "failback", "10.0.0.26", "10.0.0.25", &[]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(dig(&bind, "A"), ["10.0.0.25"]);
    assert_eq!(dig_ttl(&bind), 3600);
}
