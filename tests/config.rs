//! `posta config check`: every problem located at once, exit 2; loose secret files refused,
//! named with the section that needs them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn write_example(dir: &Path) -> String {
    let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/site.toml"))
        .unwrap()
        .replace("/etc/posta/", &format!("{}/", dir.display()));
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
    text
}

fn config_check(path: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posta"))
        .args(["--config", path.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_example_site_file_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    fs::write(&path, write_example(dir.path())).unwrap();
    let (code, stdout, stderr) = config_check(&path);
    assert_eq!(code, 0, "{stderr}");
    // Not mailserver2 (no 192.0.2.20 here): it says it did not look for eth0.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains("eth0 not checked"), "{stdout}");
    assert_eq!(lines[1], format!("{}: ok", path.display()));
}

#[test]
fn three_mistakes_give_three_located_errors_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = write_example(dir.path())
        .replace("address = \"192.0.2.20\"", "address = \"mailserver2\"")
        .replace("rise = 6", "rise = -1")
        .replace("mode = \"vip\"", "mode = \"arp\"");
    let path = dir.path().join("site.toml");
    fs::write(&path, &text).unwrap();
    let (code, _, stderr) = config_check(&path);
    assert_eq!(code, 2, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    let at = |needle: &str| {
        let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        format!("{}:{line}:", path.display())
    };
    assert!(lines[0].starts_with(&at("\"mailserver2\"")), "{stderr}");
    assert!(lines[0].contains("is not an IP address"), "{stderr}");
    assert!(lines[1].starts_with(&at("mode = \"arp\"")), "{stderr}");
    assert!(
        lines[1].contains("unknown takeover mode \"arp\""),
        "{stderr}"
    );
    assert!(lines[2].starts_with(&at("rise = -1")), "{stderr}");
    assert_eq!(lines[3], format!("{}: 3 problems", path.display()));
}

#[test]
fn group_readable_secret_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    fs::write(&path, write_example(dir.path())).unwrap();
    let secret = dir.path().join("secrets/probe.password");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, stderr) = config_check(&path);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`probe_password_file` in [primary]: refusing secret file {}: mode 0644 lets group or others read it; run: chmod 600",
            secret.display()
        )),
        "{stderr}"
    );
}

#[test]
fn missing_site_file_is_a_clear_site_file_error() {
    let (code, _, stderr) = config_check(Path::new("/nonexistent/site.toml"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read site file /nonexistent/site.toml"),
        "{stderr}"
    );
}

#[test]
fn dns_ttl_longer_than_the_grace_is_refused_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let text = write_example(dir.path()).replace("ttl = 60", "ttl = 3600");
    let path = dir.path().join("site.toml");
    fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l == "ttl = 3600").unwrap() + 1;
    let (code, _, stderr) = config_check(&path);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:{line}:7: `ttl`: 3600s is longer than [probe] `takeover_grace` 5m: resolvers would keep the old address longer than the grace", path.display())),
        "{stderr}"
    );
    // Takeover loads the same validated site, so it never writes the 3600 s TTL either.
    let out = Command::new(env!("CARGO_BIN_EXE_posta"))
        .args(["--config", path.to_str().unwrap(), "takeover", "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("resolvers would keep the old address"),
        "{stderr}"
    );
}
