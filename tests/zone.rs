//! `posta dns plan` and `posta dns verify` against a real BIND9 (tests/support/bind.rs): the
//! seed's five offices and switch (§11.2) planned into a zone file that named-checkzone accepts
//! and named serves; verify clean, then exactly one drift after one record is changed, by zone
//! transfer and, with transfers refused, by queries.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::Bind;
use support::run::{Run, posta_command};
use support::sys::{require_tool, run};

const ZONE: &str = "inkacoca.org";
const SERIAL: &str = "2026010101";
const LIMIT: Duration = Duration::from_secs(60);

/// The seed's offices: name, server, address.
const OFFICES: [(&str, &str, &str); 5] = [
    ("lima", "lima-mail", "18.1.3.40"),
    ("trujillo", "tru-mail", "18.1.4.40"),
    ("cuzco", "cuzco-mail", "18.1.5.40"),
    ("iquitos", "iqui-mail", "18.1.6.40"),
    ("pmaldonado", "pto-mail", "18.1.7.40"),
];

/// The layout file, with an empty user list per office, in `dir`.
fn layout(dir: &Path) -> PathBuf {
    let mut text = format!(
        "domain = \"{ZONE}\"\noutput = \"out\"\n\n[switch]\nserver = \"switch\"\n\
         address = \"18.1.3.41\"\n"
    );
    for (name, server, address) in OFFICES {
        fs::write(dir.join(format!("{name}.txt")), "").unwrap();
        text.push_str(&format!(
            "\n[[office]]\nname = \"{name}\"\nserver = \"{server}\"\naddress = \"{address}\"\n\
             users = \"{name}.txt\"\n"
        ));
    }
    let path = dir.join("routes.toml");
    fs::write(&path, text).unwrap();
    path
}

fn posta(args: &[&str]) -> Run {
    let mut c = posta_command(env!("CARGO_BIN_EXE_posta"));
    c.args(args);
    Run::wait(c.spawn().expect("failed to start posta"), LIMIT)
}

/// Plans the zone into `dir/zone.db`, checks it with named-checkzone and returns its text.
fn plan(dir: &Path) -> String {
    let layout = layout(dir);
    let out = dir.join("zone.db");
    let r = posta(&[
        "dns",
        "plan",
        "--layout",
        layout.to_str().unwrap(),
        "--serial",
        SERIAL,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("wrote zone inkacoca.org. in "),
        "{r:?}"
    );
    let check =
        run(Command::new(require_tool("named-checkzone")).args([ZONE, out.to_str().unwrap()]));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("OK"),
        "{check:?}"
    );
    let text = fs::read_to_string(&out).unwrap();
    let stdout = posta(&[
        "dns",
        "plan",
        "--layout",
        layout.to_str().unwrap(),
        "--serial",
        SERIAL,
    ]);
    assert_eq!(stdout.code, 0, "{stdout:?}");
    assert_eq!(stdout.stdout, text, "stdout and --out write the same zone");
    for (name, server, address) in OFFICES {
        assert!(text.contains(&format!("{name} ")), "{text}");
        assert!(text.contains(&format!("MX    10 {server}\n")), "{text}");
        assert!(text.contains(&format!("A     {address}\n")), "{text}");
    }
    text
}

fn verify(dir: &Path, bind: &Bind, json: bool) -> Run {
    let layout = dir.join("routes.toml");
    let server = bind.addr().to_string();
    let mut args = vec![
        "dns",
        "verify",
        "--layout",
        layout.to_str().unwrap(),
        "--server",
        &server,
    ];
    if json {
        args.push("--json");
    }
    posta(&args)
}

/// Rewrites the served zone with `edit` applied and a higher serial, reloads named, and waits
/// until verify sees a change (named reloads in the background).
fn change_zone(dir: &Path, bind: &Bind, edit: impl Fn(&str) -> String) -> Run {
    let text = fs::read_to_string(bind.zone_file()).unwrap();
    let changed = edit(&text).replace(SERIAL, "2026010102");
    assert_ne!(changed, edit(&text), "the serial is in the zone");
    // fs::write keeps the file's owner (bind) and mode.
    fs::write(bind.zone_file(), changed).unwrap();
    run(Command::new("sh").args(["-c", &bind.reload_command()]));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = verify(dir, bind, false);
        if r.code != 0 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The drift lines of a human verify report.
fn drift_lines(r: &Run) -> Vec<&str> {
    r.stdout
        .lines()
        .filter(|l| {
            ["missing:", "extra:", "changed:", "ttl:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .collect()
}

#[test]
fn planned_zone_is_served_clean_and_one_changed_record_is_one_drift_by_axfr() {
    let dir = tempfile::tempdir().unwrap();
    let zone = plan(dir.path());
    let bind = Bind::start_static_transfer(ZONE, &zone, true);

    let r = verify(dir.path(), &bind, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("clean: zone inkacoca.org. at "),
        "{r:?}"
    );
    assert!(r.stdout.contains("by AXFR"), "{r:?}");
    let j = verify(dir.path(), &bind, true).json();
    assert_eq!(j["method"], "axfr", "{j}");
    assert_eq!(j["clean"], true, "{j}");
    assert_eq!(
        j["record_sets"], 14,
        "SOA, NS, MX and the switch's A; MX and A per office"
    );

    let r = change_zone(dir.path(), &bind, |z| z.replace("18.1.3.40", "18.1.3.99"));
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        drift_lines(&r),
        ["changed: lima-mail.inkacoca.org. A: plan 18.1.3.40, live 18.1.3.99"],
        "{r:?}"
    );
    assert!(
        r.stdout.contains("1 drift(s) in zone inkacoca.org."),
        "{r:?}"
    );
    let j = verify(dir.path(), &bind, true);
    assert_eq!(j.code, 1, "{j:?}");
    let j = j.json();
    assert_eq!(j["drift"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["drift"][0]["kind"], "changed", "{j}");
    assert_eq!(j["drift"][0]["live"][0], "18.1.3.99", "{j}");
}

#[test]
fn refused_transfer_falls_back_to_queries_which_see_a_stray_record() {
    let dir = tempfile::tempdir().unwrap();
    let zone = plan(dir.path());
    let bind = Bind::start_static_transfer(ZONE, &zone, false);

    let r = verify(dir.path(), &bind, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("by queries (AXFR failed: "), "{r:?}");
    let j = verify(dir.path(), &bind, true).json();
    assert_eq!(j["method"], "queries", "{j}");
    assert!(j["axfr_error"].as_str().unwrap().contains("REFUSED"), "{j}");

    let r = change_zone(dir.path(), &bind, |z| {
        format!("{z}cuzco IN TXT \"left over\"\n")
    });
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        drift_lines(&r),
        ["extra: cuzco.inkacoca.org. TXT \"left over\""],
        "{r:?}"
    );
    assert!(r.stdout.contains("by queries"), "{r:?}");
}

#[test]
fn layout_errors_are_located_and_a_silent_server_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = layout(dir.path());
    let good = fs::read_to_string(&path).unwrap();
    fs::write(&path, good.replace("\"18.1.5.40\"", "\"18.1.5\"")).unwrap();
    let r = posta(&["dns", "plan", "--layout", path.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    let located = format!("{}:", path.display());
    assert!(r.stderr.starts_with(&located), "{r:?}");
    assert!(
        r.stderr.contains("\"18.1.5\" is not an IP address"),
        "{r:?}"
    );

    // An in-zone MX target with no address anywhere: a plan error, exit 2.
    fs::write(&path, good.replace("address = \"18.1.5.40\"\n", "")).unwrap();
    let r = posta(&["dns", "plan", "--layout", path.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("cuzco-mail.inkacoca.org. is inside zone"),
        "{r:?}"
    );

    // Nobody answers: no TCP listener, and a UDP socket that never replies.
    fs::write(&path, &good).unwrap();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let r = posta(&[
        "dns",
        "verify",
        "--layout",
        path.to_str().unwrap(),
        "--server",
        &server,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("cannot read zone inkacoca.org. from"),
        "{r:?}"
    );
    let r = posta(&[
        "dns",
        "verify",
        "--layout",
        path.to_str().unwrap(),
        "--server",
        "nowhere",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
}
