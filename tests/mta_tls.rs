//! `posta mta` as mailserver1 over TLS: while mailserver2 holds the VIP, clients that verify
//! mailserver1's name must get mailserver1's certificate there (SMTP STARTTLS, POP3S), chosen
//! by the local address or by SNI, while mailserver2's own address keeps its own; SIGHUP
//! reloads the certificate files.
//!
//! The mta listens on 127.0.0.1 (its own address) and 127.0.0.9 (the VIP). The client is
//! `openssl s_client` with `-verify_return_error -verify_hostname`, which fails the handshake
//! unless the chain verifies for the name, and prints the certificate for its serial.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::ca::Ca;
use support::ports::free_port;
use support::posta_mta::PostaMta;
use support::sys::{require_tool, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_posta");
const OWN: [u8; 4] = [127, 0, 0, 1];
const VIP: [u8; 4] = [127, 0, 0, 9];

/// How the client reaches the server: STARTTLS on SMTP, or TLS from the first byte (POP3S).
#[derive(Clone, Copy)]
enum Mode {
    Smtp,
    Pop3s,
}

/// The serial (hex, as `openssl x509 -serial` prints it) of the certificate the server at
/// `addr` presents to a client that verifies `name` against the test CA and sends `sni`;
/// `Err` with openssl's words when the chain does not verify for the name.
fn presented(
    addr: SocketAddr,
    mode: Mode,
    name: &str,
    sni: Option<&str>,
) -> Result<String, String> {
    let openssl = require_tool("openssl");
    let mut cmd = Command::new(&openssl);
    cmd.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        "-verify_return_error",
    ])
    .args(["-verify_hostname", name, "-CAfile"])
    .arg(Ca::get().ca_pem());
    match sni {
        Some(sni) => cmd.args(["-servername", sni]),
        None => cmd.arg("-noservername"),
    };
    if let Mode::Smtp = mode {
        cmd.args(["-starttls", "smtp"]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("failed to run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !text.contains("Verify return code: 0 (ok)") {
        return Err(format!("{text}\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or("no certificate shown")?;
    let end = text
        .find("-----END CERTIFICATE-----")
        .ok_or("no certificate end")?;
    let pem = &text[begin..end + "-----END CERTIFICATE-----".len()];
    let mut x509 = Command::new(&openssl)
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("failed to run openssl x509");
    use std::io::Write;
    x509.stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write pem");
    let out = x509.wait_with_output().expect("openssl x509");
    let serial = String::from_utf8_lossy(&out.stdout);
    Ok(serial.trim().trim_start_matches("serial=").to_string())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Starts the mta on both addresses with mailserver2's own certificate and mailserver1's for
/// the VIP; returns it and its SMTP and POP3S ports.
fn start(dir: &Path, own: (&Path, &Path), vip: (&Path, &Path)) -> (PostaMta, u16, u16) {
    let maildir = dir.join("mail");
    fs::create_dir_all(maildir.join("ana")).unwrap();
    let users = dir.join("pop3-users");
    let line = format!("ana:{}\n", posta::mta::users::hash_password("pw-ana"));
    fs::write(&users, line).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&users, fs::Permissions::from_mode(0o600)).unwrap();
    let port = free_port();
    let pop3s = free_port();
    let at = |ip: [u8; 4], port: u16| SocketAddr::from((ip, port)).to_string();
    let args: Vec<String> = [
        "--listen",
        &at(VIP, port),
        "--domain",
        "example.test",
        "--maildir",
        &s(&maildir),
        "--pop3-users",
        &s(&users),
        "--pop3s-listen",
        &at(OWN, pop3s),
        "--pop3s-listen",
        &at(VIP, pop3s),
        "--tls-cert",
        &s(own.0),
        "--tls-key",
        &s(own.1),
        "--vip-tls-cert",
        &s(vip.0),
        "--vip-tls-key",
        &s(vip.1),
        "--vip-address",
        "127.0.0.9",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mta = PostaMta::start_at(BIN, dir, SocketAddr::from((OWN, port)), &args);
    (mta, port, pop3s)
}

/// Fails without the fix (one certificate for every address): the VIP presented
/// mailserver2's, "certificate is not valid for name mailserver1"; the local address (and
/// SNI) now picks mailserver1's.
#[test]
fn the_vip_presents_mailserver1s_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::get();
    let (own_cert, own_key) = ca.issue(dir.path(), "ms2", "mailserver2.test", 0x22);
    let (vip_cert, vip_key) = ca.issue(dir.path(), "ms1", "mailserver1.test", 0x11);
    let (mta, port, pop3s) = start(dir.path(), (&own_cert, &own_key), (&vip_cert, &vip_key));
    let log = || mta.log_tail();
    let (own, vip) = (SocketAddr::from((OWN, port)), SocketAddr::from((VIP, port)));
    let (own3, vip3) = (
        SocketAddr::from((OWN, pop3s)),
        SocketAddr::from((VIP, pop3s)),
    );

    for (addr, mode) in [(vip, Mode::Smtp), (vip3, Mode::Pop3s)] {
        let got = presented(addr, mode, "mailserver1.test", None);
        assert_eq!(got.as_deref(), Ok("11"), "{addr}: {}", log());
        // SNI naming mailserver2 at the VIP still gets the VIP's certificate (Dovecot's
        // `local` block wins over `local_name` the same way).
        let other = presented(addr, mode, "mailserver1.test", Some("mailserver2.test"));
        assert_eq!(other.as_deref(), Ok("11"), "{addr} with SNI");
    }
    for (addr, mode) in [(own, Mode::Smtp), (own3, Mode::Pop3s)] {
        let got = presented(addr, mode, "mailserver2.test", None);
        assert_eq!(got.as_deref(), Ok("22"), "{addr}: {}", log());
        let wrong = presented(addr, mode, "mailserver1.test", None);
        assert!(
            wrong.is_err(),
            "{addr} verified as mailserver1 with its own certificate"
        );
        // A client asking for mailserver1 by SNI on the own address gets its certificate.
        let sni = presented(addr, mode, "mailserver1.test", Some("mailserver1.test"));
        assert_eq!(sni.as_deref(), Ok("11"), "{addr} by SNI: {}", log());
    }
}

/// Fails without the fix (certificates read once at start): after new files and SIGHUP the
/// VIP still presented the old serial; SIGHUP now reloads them, and broken files keep the old
/// ones.
#[test]
fn sighup_reloads_certificates_and_keeps_them_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::get();
    let (own_cert, own_key) = ca.issue(dir.path(), "ms2", "mailserver2.test", 0x22);
    let (vip_cert, vip_key) = ca.issue(dir.path(), "ms1", "mailserver1.test", 0x11);
    let (mta, port, pop3s) = start(dir.path(), (&own_cert, &own_key), (&vip_cert, &vip_key));
    let vip = SocketAddr::from((VIP, port));
    let vip3 = SocketAddr::from((VIP, pop3s));
    let own = SocketAddr::from((OWN, port));
    assert_eq!(
        presented(vip, Mode::Smtp, "mailserver1.test", None).as_deref(),
        Ok("11")
    );

    ca.issue(dir.path(), "ms1", "mailserver1.test", 0x12);
    ca.issue(dir.path(), "ms2", "mailserver2.test", 0x23);
    mta.hup();
    let renewed = wait_until(Duration::from_secs(20), || {
        presented(vip, Mode::Smtp, "mailserver1.test", None).as_deref() == Ok("12")
    });
    assert!(
        renewed.is_ok(),
        "no new certificate after SIGHUP: {}",
        mta.log_tail()
    );
    let pop = presented(vip3, Mode::Pop3s, "mailserver1.test", None);
    assert_eq!(pop.as_deref(), Ok("12"));
    let mine = presented(own, Mode::Smtp, "mailserver2.test", None);
    assert_eq!(mine.as_deref(), Ok("23"));

    fs::write(&vip_cert, "not a certificate\n").unwrap();
    mta.hup();
    let said = wait_until(Duration::from_secs(20), || {
        mta.log_tail().contains("keeping the old certificates")
    });
    assert!(
        said.is_ok(),
        "no word on the broken file: {}",
        mta.log_tail()
    );
    let kept = presented(vip, Mode::Smtp, "mailserver1.test", None);
    assert_eq!(kept.as_deref(), Ok("12"), "{}", mta.log_tail());
}
