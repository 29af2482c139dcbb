//! The site file as an administrator sets it up (issue 15): `examples/site.toml` with paths
//! moved into a temporary directory and the addresses pointed at loopback, run through the
//! real `posta` binary. A loose secret blocks only the feature that reads it, the probes
//! never count mailserver2's own answer as mailserver1, `config check` looks at this host,
//! and `config show` prints a site file that reads back the same.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::posta_mta::PostaMta;
use support::run::{Run, posta_command};
use support::sys::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_posta");

fn posta(site: &Path, args: &[&str]) -> Run {
    let child = posta_command(BIN)
        .arg("--config")
        .arg(site)
        .args(args)
        .spawn()
        .expect("run posta");
    Run::wait(child, Duration::from_secs(120))
}

/// The example in `dir`: /etc/posta paths moved there, its secret files created (0600), the
/// VIP on `lo`, and `edit` applied to the text.
fn example(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/site.toml"))
        .unwrap()
        .replace("/etc/posta/", &format!("{}/", dir.display()))
        .replace("/var/lib/posta/", &format!("{}/", dir.display()))
        .replace("interface = \"eth0\"", "interface = \"lo\"")
        .replace("label = \"eth0:posta\"", "label = \"lo:posta\"");
    for name in [
        "secrets/probe.password",
        "secrets/tsig.key",
        "secrets/alice.password",
        "ca.pem",
    ] {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "x\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = dir.join("site.toml");
    fs::write(&path, edit(text)).unwrap();
    path
}

/// The example with mailserver1 probed at 127.0.0.1:`port` (SMTP only, no probe account).
fn probing_loopback(dir: &Path, port: u16) -> PathBuf {
    example(dir, |t| {
        t.replace(
            "probe_address = \"192.0.2.11\"",
            "probe_address = \"127.0.0.1\"",
        )
        .replace(
            "services = [\"smtp\", \"submission?starttls=require\", \"imap\", \"pop3\"]",
            &format!("services = [\"smtp:{port}?starttls=no\"]"),
        )
        .replace("probe_user = \"probe@laorganizacion.org\"\n", "")
        .replace(
            &format!(
                "probe_password_file = \"{}/secrets/probe.password\"\n",
                dir.display()
            ),
            "",
        )
    })
}

/// A `posta mta` that greets as `hostname`.
fn mta(dir: &Path, hostname: &str) -> PostaMta {
    let mail = dir.join("mail");
    fs::create_dir_all(&mail).unwrap();
    let args: Vec<String> = [
        "--hostname",
        hostname,
        "--domain",
        "laorganizacion.org",
        "--maildir",
        &format!("{}/%u/Maildir", mail.display()),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    PostaMta::start(BIN, dir, &args)
}

#[test]
fn a_loose_migration_password_blocks_neither_takeover_nor_check() {
    // Before: every secret was checked when the site loaded, so alice's 0644 password made
    // `takeover --dry-run` exit 2 and `check --nagios primary` UNKNOWN (3). Fixed: loading
    // opens no secret; only `posta migrate` reads it, and `config check` reports it.
    let dir = tempfile::tempdir().unwrap();
    let server = mta(dir.path(), "mailserver1.laorganizacion.org");
    let site = probing_loopback(dir.path(), server.port);
    let password = dir.path().join("secrets/alice.password");
    fs::set_permissions(&password, fs::Permissions::from_mode(0o644)).unwrap();

    let takeover = posta(&site, &["takeover", "--dry-run"]);
    assert_eq!(takeover.code, 0, "{takeover:?}");

    let check = posta(&site, &["check", "--nagios", "primary"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(check.stdout.starts_with("POSTA OK"), "{check:?}");

    let config = posta(&site, &["config", "check"]);
    assert_eq!(config.code, 2, "{config:?}");
    let text = fs::read_to_string(&site).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("alice.password"))
        .unwrap()
        + 1;
    let expected = format!(
        "{}:{line}:17: `password_file` in [[migrate.accounts]]: refusing secret file {}: mode 0644",
        site.display(),
        password.display()
    );
    assert!(config.stderr.contains(&expected), "{config:?}");

    let migrate = posta(&site, &["migrate", "--dry-run"]);
    assert_eq!(migrate.code, 2, "{migrate:?}");
    assert!(
        migrate
            .stderr
            .contains("(`password_file` in [[migrate.accounts]] user \"alice\")"),
        "{migrate:?}"
    );
}

#[test]
fn a_greeting_with_mailserver2s_name_never_counts_as_the_primary() {
    // Before: any 220 counted as mailserver1 up, so mailserver2 probing an address it held
    // itself saw "the primary answers" and failed back. Fixed: a greeting naming another
    // host of the site (here the backup's name) is CRITICAL, in `check` and in the watch.
    let dir = tempfile::tempdir().unwrap();
    let ourselves = mta(dir.path(), "mailserver2.laorganizacion.org");
    let site = probing_loopback(dir.path(), ourselves.port);

    let check = posta(&site, &["check", "--nagios", "primary"]);
    assert_eq!(check.code, 2, "{check:?}");
    assert!(check.stdout.starts_with("POSTA CRITICAL"), "{check:?}");
    assert!(
        check
            .stdout
            .contains("the greeting names mailserver2.laorganizacion.org, not this server"),
        "{check:?}"
    );

    // The watch, with fast timings and nothing automatic, sees the primary down.
    let fast = fs::read_to_string(&site)
        .unwrap()
        .replace("interval = \"10s\"", "interval = \"200ms\"")
        .replace("timeout = \"5s\"", "timeout = \"200ms\"")
        .replace("fall = 3", "fall = 1")
        .replace("auto_takeover = true", "auto_takeover = false")
        .replace("auto_failback = true", "auto_failback = false");
    fs::write(&site, fast).unwrap();
    let state = dir.path().join("watch.json");
    let mut watch = posta_command(BIN)
        .arg("--config")
        .arg(&site)
        .arg("watch")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run posta watch");
    let seen = wait_until(Duration::from_secs(60), || {
        fs::read_to_string(&state).is_ok_and(|t| t.contains("\"state\": \"down\""))
    });
    let _ = watch.kill();
    let _ = watch.wait();
    let snapshot = fs::read_to_string(&state).unwrap_or_default();
    assert!(seen.is_ok(), "{snapshot}");
    assert!(snapshot.contains("\"primary_up\": false"), "{snapshot}");
    assert!(
        snapshot.contains("the greeting names mailserver2.laorganizacion.org"),
        "{snapshot}"
    );

    // The same probe against a server that greets as mailserver1 is OK.
    let primary = mta(dir.path(), "mailserver1.laorganizacion.org");
    let site = probing_loopback(dir.path(), primary.port);
    let check = posta(&site, &["check", "--nagios", "primary"]);
    assert_eq!(check.code, 0, "{check:?}");
}

#[test]
fn config_check_refuses_a_layout_that_probes_only_the_vip() {
    let dir = tempfile::tempdir().unwrap();
    let site = example(dir.path(), |t| {
        t.replace("probe_address = \"192.0.2.11\"\n", "")
    });
    let config = posta(&site, &["config", "check"]);
    assert_eq!(config.code, 2, "{config:?}");
    let text = fs::read_to_string(&site).unwrap();
    let line = text
        .lines()
        .position(|l| l == "address = \"192.0.2.10\"")
        .unwrap()
        + 1;
    assert!(
        config.stderr.contains(&format!(
            "{}:{line}:11: [primary] is probed at 192.0.2.10, the [vip] address",
            site.display()
        )),
        "{config:?}"
    );
    assert!(config.stderr.contains("would probe itself"), "{config:?}");
}

#[test]
fn config_check_looks_for_the_vip_interface_on_mailserver2() {
    // This host is mailserver2 when it has the [backup] address: 127.0.0.1 here.
    let as_backup = |interface: &'static str| {
        move |t: String| {
            t.replace("address = \"192.0.2.20\"", "address = \"127.0.0.1\"")
                .replace(
                    "interface = \"lo\"",
                    &format!("interface = \"{interface}\""),
                )
                .replace("label = \"lo:posta\"\n", "")
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let site = example(dir.path(), as_backup("lo"));
    let config = posta(&site, &["config", "check"]);
    assert_eq!(config.code, 0, "{config:?}");
    assert!(
        config
            .stdout
            .contains("`interface` in [vip]: lo exists on this host"),
        "{config:?}"
    );

    let site = example(dir.path(), as_backup("nosuch0"));
    let config = posta(&site, &["config", "check"]);
    assert_eq!(config.code, 2, "{config:?}");
    let text = fs::read_to_string(&site).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("interface ="))
        .unwrap()
        + 1;
    assert!(
        config.stderr.contains(&format!(
            "{}:{line}:13: `interface` in [vip]: this host (mailserver2, 127.0.0.1) has no interface \"nosuch0\"",
            site.display()
        )),
        "{config:?}"
    );

    // A watch that may take over by itself refuses to start there, rather than failing at
    // the takeover.
    let watch = posta(&site, &["watch"]);
    assert_eq!(watch.code, 2, "{watch:?}");
    assert!(
        watch.stderr.contains("has no interface \"nosuch0\""),
        "{watch:?}"
    );

    // Elsewhere (mailserver1, a laptop) it says why it did not look.
    let site = example(dir.path(), |t| t);
    let config = posta(&site, &["config", "check"]);
    assert_eq!(config.code, 0, "{config:?}");
    assert!(
        config
            .stdout
            .contains("lo not checked: this host does not have the [backup] address 192.0.2.20"),
        "{config:?}"
    );
}

#[test]
fn config_show_prints_a_site_file_that_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let site = example(dir.path(), |t| t);
    let shown = posta(&site, &["config", "show"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("[hooks]"), "{}", shown.stdout);
    assert!(shown.stdout.contains("[watch]"), "{}", shown.stdout);
    let again = dir.path().join("shown.toml");
    fs::write(&again, &shown.stdout).unwrap();
    let check = posta(&again, &["config", "check"]);
    assert_eq!(check.code, 0, "{check:?}");
    let twice = posta(&again, &["config", "show"]);
    assert_eq!(twice.code, 0, "{twice:?}");
    assert_eq!(twice.stdout, shown.stdout);
}

#[test]
fn no_site_file_is_a_site_file_error() {
    let run = posta(Path::new("/nonexistent/site.toml"), &["config", "check"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot read site file /nonexistent/site.toml"),
        "{run:?}"
    );
}
