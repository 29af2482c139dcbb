//! `scripts/install-test-deps.sh` where the packages are missing, which CI's machine (it has
//! them all) never exercises: the script runs with stub `dpkg-query`, `apt-get` and
//! `debconf-set-selections` first on PATH, so nothing is installed, and with its policy-rc.d in
//! a temporary directory.
//!
//! The bug this keeps fixed: with a policy-rc.d already present, the EXIT trap's
//! `[ "$created_policy" = yes ] && rm ...` returned 1 under `set -e`, so the README's test
//! command failed on its first run on a fresh machine and passed on the second.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn stub(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs the script with every package reported missing; returns (exit code, stderr+stdout,
/// what apt-get was asked).
fn run(dir: &Path, policy: &Path) -> (i32, String, String) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let apt_log = dir.join("apt.log");
    stub(&bin, "dpkg-query", "exit 1");
    stub(&bin, "debconf-set-selections", "cat >/dev/null");
    // While "installing", the policy file must be in place (no daemon may start).
    stub(
        &bin,
        "apt-get",
        &format!(
            "echo \"$* policy=$(test -x {} && echo present || echo absent)\" >> {}",
            policy.display(),
            apt_log.display()
        ),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/install-test-deps.sh"
        ))
        .env("PATH", path)
        .env("POSTA_POLICY_RC_D", policy)
        .output()
        .expect("run install-test-deps.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        text,
        fs::read_to_string(apt_log).unwrap_or_default(),
    )
}

#[test]
fn installs_and_exits_0_whether_or_not_policy_rc_d_existed() {
    // Root only: the script refuses to install as anyone else (and says so).
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "run the tests as root (scripts/test.sh)"
    );
    // A policy-rc.d the admin had: kept, and the install exits 0.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n# the admin's own\n").unwrap();
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755)).unwrap();
    let (code, text, apt) = run(dir.path(), &policy);
    assert_eq!(code, 0, "{text}");
    assert!(apt.contains("install") && apt.contains("postfix"), "{apt}");
    assert!(apt.contains("policy=present"), "{apt}");
    assert!(
        fs::read_to_string(&policy)
            .unwrap()
            .contains("the admin's own"),
        "the admin's policy-rc.d is left alone"
    );
    // None before: created for the install, removed after it, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy-rc.d");
    let (code, text, apt) = run(dir.path(), &policy);
    assert_eq!(code, 0, "{text}");
    assert!(apt.contains("policy=present"), "{apt}");
    assert!(!policy.exists(), "the policy-rc.d it created is removed");
}
