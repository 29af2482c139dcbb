//! The README's main command: start a private Postfix and Dovecot on loopback (the same test
//! support code the integration tests use), write a site file for them, and run `posta check`.
//!
//! `demo --serve FILE` only starts the servers, writes their ports to FILE as shell variables,
//! and keeps them running until stdin closes (used by scripts/bench/check.sh).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use support::{Ca, Dovecot, Postfix};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ca = Ca::get();
    let dovecot = Dovecot::start(ca, &[("alice", "alice-pw")]);
    let postfix = Postfix::start(ca, "example.test", &["alice"], Some(&dovecot.auth_socket()));
    let dir = tempfile::tempdir().expect("create a temp dir");
    let pw = dir.path().join("probe.pw");
    fs::write(&pw, "alice-pw\n").expect("write the probe password");
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).expect("chmod the password");

    // Each service once: the ports file and the site file are both made from this list.
    let services = [
        ("smtp", postfix.smtp_port()),
        ("submission", postfix.submission_port()),
        ("imap", dovecot.imap_port()),
        ("pop3", dovecot.pop3_port()),
        ("imaps", dovecot.imaps_port()),
        ("pop3s", dovecot.pop3s_port()),
    ];

    if let ["--serve", file] = args.as_slice() {
        let mut vars: String = services
            .iter()
            .map(|(name, port)| format!("{}_PORT={port}\n", name.to_uppercase()))
            .collect();
        vars += &format!(
            "CA_FILE={}\nPASSWORD_FILE={}\n",
            ca.ca_pem().display(),
            pw.display()
        );
        fs::write(file, vars).expect("write the ports file");
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        return;
    }

    // STARTTLS is required on port 25: the demo's Postfix offers it, so its absence is an error.
    let listed: Vec<String> = services
        .iter()
        .map(|(name, port)| match *name {
            "smtp" => format!("\"{name}:{port}?starttls=require\""),
            _ => format!("\"{name}:{port}\""),
        })
        .collect();
    let site = dir.path().join("site.toml");
    let text = format!(
        r#"# mailserver1 is the private Postfix + Dovecot this demo started on loopback.
domain = "example.test"
[primary]
name = "localhost"
address = "127.0.0.1"
services = [{}]
probe_user = "alice"
probe_password_file = "probe.pw"
[backup]
name = "localhost"
address = "127.0.0.2"
[takeover]
mode = "vip"
[vip]
address = "127.0.0.1/8"
interface = "lo"
[tls]
ca_file = "{}"
"#,
        listed.join(", "),
        ca.ca_pem().display(),
    );
    fs::write(&site, text).expect("write the site file");
    let posta = posta_binary();
    for args in [
        vec!["config", "check"],
        vec!["check", "primary"],
        vec!["check", "--nagios", "primary"],
    ] {
        println!("\n$ posta --config {} {}", site.display(), args.join(" "));
        let status = Command::new(&posta)
            .arg("--config")
            .arg(&site)
            .args(&args)
            .status()
            .expect("run posta");
        println!("(exit status {})", status.code().unwrap_or(-1));
    }
}

/// The posta binary built beside this example (target/<profile>/posta).
fn posta_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("locate the demo binary");
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .expect("the demo runs from target/<profile>/examples");
    profile_dir.join("posta")
}
