//! The Postfix behind scripts/bench/mta.sh: the harness Postfix (tests/support/postfix.rs)
//! accepting for `bench.test` with one mailbox, `rcpt`, delivered by virtual(8) into a Maildir;
//! the same test support code the integration tests use.
//!
//! `mta_bench ENV_FILE` starts it, lifts the per-client limits that would throttle one
//! benchmark client (see [`UNTHROTTLE`]), writes ENV_FILE (shell variables: the SMTP port, the
//! Maildir, the config directory and the log), prints `ready`, then waits until stdin closes
//! and stops Postfix.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use support::sys::{port_open, wait_until};
use support::{Ca, Postfix};

const DOMAIN: &str = "bench.test";
const USER: &str = "rcpt";

/// The harness's main.cf has `mynetworks =` (an internet-facing MX), so anvil's per-client
/// limits apply to 127.0.0.1; smtp-source is one client. Exempting loopback from them matches
/// `posta mta --max-per-ip` raised in the script: neither server refuses the benchmark's own
/// sessions. Postfix's defaults are not otherwise a ceiling here: 20 sessions stay below
/// `default_process_limit` (100) and `in_flow_delay` is already 0 in the harness.
const UNTHROTTLE: &[&str] = &[
    "smtpd_client_event_limit_exceptions = 127.0.0.0/8",
    "smtpd_client_connection_count_limit = 0",
    "smtpd_client_connection_rate_limit = 0",
    "smtpd_client_message_rate_limit = 0",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [env_file] = args.as_slice() else {
        eprintln!("usage: mta_bench ENV_FILE");
        std::process::exit(2);
    };
    let ca = Ca::get();
    let postfix = Postfix::start(ca, DOMAIN, &[USER], None);
    let postconf = |args: &[&str]| {
        let status = Command::new("postconf")
            .arg("-c")
            .arg(postfix.conf())
            .args(args)
            .status()
            .expect("failed to run postconf");
        assert!(status.success(), "postconf {args:?} failed");
    };
    let mut edit = vec!["-e"];
    edit.extend_from_slice(UNTHROTTLE);
    postconf(&edit);
    let reload = Command::new("postfix")
        .arg("-c")
        .arg(postfix.conf())
        .arg("reload")
        .output()
        .expect("failed to run postfix reload");
    assert!(reload.status.success(), "postfix reload failed");
    wait_until(Duration::from_secs(20), || port_open(postfix.smtp_port()))
        .expect("postfix did not listen again after reload");

    let vars = [
        ("POSTFIX_SMTP_PORT", postfix.smtp_port().to_string()),
        (
            "POSTFIX_MAILDIR",
            postfix.maildir(USER).display().to_string(),
        ),
        ("POSTFIX_CONF", postfix.conf().display().to_string()),
        ("POSTFIX_LOG", postfix.log().display().to_string()),
        (
            "POSTFIX_SPOOL",
            postfix.path().join("spool").display().to_string(),
        ),
        ("RCPT", format!("{USER}@{DOMAIN}")),
    ];
    let text: String = vars
        .iter()
        .map(|(name, value)| format!("{name}='{value}'\n"))
        .collect();
    fs::write(env_file, text).expect("failed to write the env file");

    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("failed to write to stdout");
    out.flush().expect("failed to flush stdout");
    let mut rest = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut rest);
    drop(postfix);
}
