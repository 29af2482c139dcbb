//! `posta mta explain` on table files in a temp dir: exit codes, and the output names the
//! deciding file:line.

use std::path::Path;
use std::process::{Command, Output};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn explain(dir: &Path, client: &str, rcpt: &str, extra: &[&str]) -> Output {
    let access = dir.join("access");
    let vt = dir.join("virtusertable");
    let lhn = dir.join("local-host-names");
    Command::new(env!("CARGO_BIN_EXE_posta"))
        .args(["mta", "explain", "--access"])
        .arg(&access)
        .arg("--virtusertable")
        .arg(&vt)
        .arg("--local-host-names")
        .arg(&lhn)
        .args([
            "--client",
            client,
            "--helo",
            "mx.example",
            "--from",
            "a@b.net",
        ])
        .args(["--rcpt", rcpt])
        .args(extra)
        .output()
        .unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "access",
        "# friend server\nlaorganizacion.org\tRELAY\n",
    );
    write(
        dir.path(),
        "virtusertable",
        "usuario_x@inkacoca.org usuario_x@localhost\n@inkacoca.org %1@switch.inkacoca.org\n",
    );
    write(dir.path(), "local-host-names", "inkacoca.org\n");
    dir
}

#[test]
fn relay_accepted_with_the_deciding_line() {
    let dir = setup();
    let out = explain(
        dir.path(),
        "203.0.113.5",
        "ana@mail.laorganizacion.org",
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("accept: relay"), "{stdout}");
    let access = dir.path().join("access");
    assert!(
        stdout.contains(&format!("{}:2: laorganizacion.org RELAY", access.display())),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("untagged `laorganizacion.org RELAY`"),
        "{stderr}"
    );
}

#[test]
fn virtusertable_forward_and_open_relay_rejected() {
    let dir = setup();
    let out = explain(dir.path(), "203.0.113.5", "diego1@InkaCoca.org.", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("forward to diego1@switch.inkacoca.org"),
        "{stdout}"
    );
    assert!(
        stdout.contains("virtusertable:2: @inkacoca.org"),
        "{stdout}"
    );
    for rcpt in ["x@other.com", "x%other.com@inkacoca.org", "x@[192.0.2.1]"] {
        let out = explain(dir.path(), "203.0.113.5", rcpt, &["--json"]);
        assert_eq!(out.status.code(), Some(1), "{rcpt}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["verdict"]["reject"]["code"].as_u64().unwrap() >= 550,
            "{v}"
        );
        assert!(v["trail"].as_array().unwrap().len() > 2);
    }
}

#[test]
fn table_error_is_located() {
    let dir = setup();
    write(dir.path(), "access", "ok.org RELAY\nbad.org MAYBE\n");
    let out = explain(dir.path(), "203.0.113.5", "x@ok.org", &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("access:2:9: unknown action"), "{stderr}");
}
