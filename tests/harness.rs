//! Proves each `tests/support` fixture works, with plain std sockets and the servers' own
//! tools, before any posta test relies on it. If this file fails, fix the machine or the
//! fixture first: every other integration test would fail for the same reason.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::{Bind, Ca, Dovecot, Dropper, Postfix, Tarpit, sys};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(port: u16) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(sys::loopback(port)).expect("failed to connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    BufReader::new(stream)
}

fn line(conn: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    let n = conn.read_line(&mut l).expect("failed to read line");
    assert!(n > 0, "server closed the connection");
    l
}

fn send(conn: &mut BufReader<TcpStream>, text: &str) {
    conn.get_mut()
        .write_all(text.as_bytes())
        .expect("failed to write");
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn ca_leaf_chains_only_to_its_own_ca() {
    let verify = |ca: &Ca, leaf: &Ca| {
        output(
            Command::new("openssl")
                .args(["verify", "-purpose", "sslserver", "-CAfile"])
                .arg(ca.ca_pem())
                .arg(leaf.cert_pem()),
        )
    };
    let ok = verify(Ca::get(), Ca::get());
    assert!(ok.status.success(), "{}", text(&ok));
    let untrusted = verify(Ca::get(), Ca::other());
    assert!(!untrusted.status.success(), "{}", text(&untrusted));
}

#[test]
fn dovecot_speaks_imap_and_pop3_and_logs_in() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "s3cret")]);

    let mut imap = connect(dovecot.imap_port());
    let greeting = line(&mut imap);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    assert!(greeting.contains("STARTTLS"), "{greeting}");
    send(&mut imap, "a LOGIN alice s3cret\r\n");
    let reply = line(&mut imap);
    assert!(reply.starts_with("a OK"), "{reply}");

    let mut pop3 = connect(dovecot.pop3_port());
    let greeting = line(&mut pop3);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    send(&mut pop3, "CAPA\r\n");
    let mut capa = String::new();
    while !capa.ends_with(".\r\n") {
        capa.push_str(&line(&mut pop3));
    }
    assert!(capa.contains("STLS"), "{capa}");

    // Implicit TLS with a certificate that verifies against the test CA.
    for port in [dovecot.imaps_port(), dovecot.pop3s_port()] {
        let out = tls_client(port, Ca::get());
        assert!(out.status.success(), "{}", text(&out));
        let t = text(&out);
        assert!(t.contains("* OK") || t.contains("+OK"), "{t}");
    }
}

fn tls_client(port: u16, ca: &Ca) -> Output {
    let mut child = Command::new("openssl")
        // -quiet implies -ign_eof; -no_ign_eof makes stdin's EOF end the session.
        .args(["s_client", "-quiet", "-no_ign_eof", "-verify_return_error"])
        .args(["-verify_hostname"])
        .args([
            "localhost",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(ca.ca_pem())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to run openssl s_client");
    // Let the greeting arrive before stdin's EOF ends the session.
    std::thread::sleep(Duration::from_millis(300));
    drop(child.stdin.take());
    child.wait_with_output().expect("openssl s_client failed")
}

#[test]
fn postfix_delivers_to_maildir() {
    let postfix = Postfix::start(Ca::get(), "example.test", &["alice"], None);

    let mut smtp = connect(postfix.smtp_port());
    let greeting = line(&mut smtp);
    assert!(greeting.starts_with("220"), "{greeting}");
    send(&mut smtp, "EHLO client.test\r\n");
    let mut ehlo = line(&mut smtp);
    while !ehlo.lines().last().unwrap_or_default().starts_with("250 ") {
        ehlo.push_str(&line(&mut smtp));
    }
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    send(&mut smtp, "QUIT\r\n");

    let out = output(
        Command::new(sys::require_tool("swaks"))
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &postfix.smtp_port().to_string(),
            ])
            .args(["--from", "bob@sender.test", "--to", "alice@example.test"])
            .args(["--header", "Subject: harness"]),
    );
    assert!(out.status.success(), "{}", text(&out));
    let new = postfix.maildir("alice").join("new");
    let delivered = sys::wait_until(Duration::from_secs(10), || files_in(&new) == 1);
    assert!(
        delivered.is_ok(),
        "no mail in {}; postfix log:\n{}",
        new.display(),
        sys::tail(&postfix.log(), 20)
    );
}

#[test]
fn postfix_smtp_auth_goes_through_dovecot() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "s3cret")]);
    let postfix = Postfix::start(
        Ca::get(),
        "example.test",
        &["alice"],
        Some(&dovecot.auth_socket()),
    );
    let swaks = |password: &str| {
        output(
            Command::new(sys::require_tool("swaks"))
                .args(["--server", "127.0.0.1"])
                .args(["--port", &postfix.submission_port().to_string()])
                .args(["--from", "alice@example.test", "--to", "carol@far.test"])
                .args(["--tls", "--tls-verify", "--tls-ca-path"])
                .arg(Ca::get().ca_pem())
                .args(["--auth", "PLAIN", "--auth-user", "alice"])
                .args(["--auth-password", password, "--quit-after", "AUTH"]),
        )
    };
    let good = swaks("s3cret");
    assert!(good.status.success(), "{}", text(&good));
    assert!(text(&good).contains("235 "), "{}", text(&good));
    let bad = swaks("wrong");
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(text(&bad).contains("535 "), "{}", text(&bad));
}

#[test]
fn bind_answers_soa_and_accepts_signed_update() {
    let bind = Bind::start("example.test", &Bind::minimal_zone("example.test"));
    let port = bind.port().to_string();
    let dig = |name: &str, rtype: &str| {
        let out =
            output(Command::new("dig").args(["@127.0.0.1", "-p", &port, name, rtype, "+short"]));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(dig("example.test", "SOA").starts_with("ns1.example.test."));

    let script = format!(
        "server 127.0.0.1 {port}\nzone example.test\n\
         update add www.example.test. 60 A 127.0.0.2\nsend\n"
    );
    let mut child = Command::new(sys::require_tool("nsupdate"))
        .arg("-k")
        .arg(bind.key_file())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to run nsupdate");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(dig("www.example.test", "A"), "127.0.0.2");
    assert_eq!(bind.addr(), sys::loopback(bind.port()));
    assert_eq!(bind.key_name(), "posta-test-key");
}

#[test]
fn tarpit_never_speaks_and_dropper_hangs_up() {
    let tarpit = Tarpit::start();
    let mut stream = TcpStream::connect(sys::loopback(tarpit.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = stream
        .read(&mut [0; 16])
        .expect_err("tarpit wrote something");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );

    let dropper = Dropper::start(b"220 going away\r\n");
    let mut stream = TcpStream::connect(sys::loopback(dropper.port())).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("dropper did not close");
    assert_eq!(got, b"220 going away\r\n");
}
