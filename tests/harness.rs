//! Proves each `tests/support` fixture works, with plain std sockets and the servers' own
//! tools, before any posta test relies on it. If this file fails, fix the machine or the
//! fixture first: every other integration test would fail for the same reason.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, UNIX_EPOCH};
use support::postfix::Options;
use support::{Bind, Ca, Dovecot, Dropper, Postfix, Primary, Tarpit, sys};

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

/// Sends `TAG COMMAND` and returns every line up to the tagged reply, which must be OK.
fn imap(conn: &mut BufReader<TcpStream>, tag: &str, command: &str) -> String {
    send(conn, &format!("{tag} {command}\r\n"));
    let mut lines = String::new();
    loop {
        let l = line(conn);
        lines.push_str(&l);
        if let Some(status) = l.strip_prefix(&format!("{tag} ")) {
            assert!(status.starts_with("OK"), "{command}: {lines}");
            return lines;
        }
    }
}

fn imap_login(port: u16, user: &str, password: &str) -> BufReader<TcpStream> {
    let mut conn = connect(port);
    let greeting = line(&mut conn);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    imap(&mut conn, "l", &format!("LOGIN {user} {password}"));
    conn
}

/// Seconds since the epoch of an IMAP date-time such as `04-Mar-2021 05:06:07 +0100`.
fn imap_date_time(text: &str) -> u64 {
    let (date, rest) = text.split_once(' ').expect("no time in date-time");
    let (time, zone) = rest.split_once(' ').expect("no zone in date-time");
    let d: Vec<&str> = date.trim_start().split('-').collect();
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
        .into_iter()
        .chain(["Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])
        .position(|m| m == d[1])
        .expect("bad month") as i64
        + 1;
    let (day, year): (i64, i64) = (d[0].parse().unwrap(), d[2].parse().unwrap());
    // Days from civil (Howard Hinnant's algorithm), proleptic Gregorian, March-based years.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let t: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    let offset: i64 =
        zone[1..3].parse::<i64>().unwrap() * 3600 + zone[3..5].parse::<i64>().unwrap() * 60;
    let offset = if zone.starts_with('-') {
        -offset
    } else {
        offset
    };
    u64::try_from(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2] - offset).unwrap()
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
    // stdin's EOF ends the session: it is closed only once the greeting was read (or the
    // session ended without one), never after a guessed delay. A watchdog ends a session
    // that hangs.
    let pid = child.id();
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let waited = ended.recv_timeout(Duration::from_secs(30));
        if waited == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut l = String::new();
        if stdout.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        seen.extend_from_slice(l.as_bytes());
        if l.starts_with("* OK") || l.starts_with("+OK") {
            break;
        }
    }
    drop(child.stdin.take());
    stdout.read_to_end(&mut seen).unwrap();
    let mut out = child.wait_with_output().expect("openssl s_client failed");
    drop(done);
    watchdog.join().unwrap();
    seen.append(&mut out.stdout);
    out.stdout = seen;
    out
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

#[test]
fn dovecot_serves_seeded_folders_flags_keywords_and_dates_over_imap() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "s3cret")]);
    let when = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let message = |subject: &str| {
        format!("From: bob@sender.test\nTo: alice@example.org\nSubject: {subject}\n\nhello\n")
    };
    dovecot.seed(
        "alice",
        None,
        message("new").as_bytes(),
        "",
        &[],
        when(1_600_000_000),
    );
    dovecot.seed(
        "alice",
        None,
        message("read").as_bytes(),
        "S",
        &[],
        when(1_600_000_100),
    );
    let first = message("first");
    dovecot.seed(
        "alice",
        Some("Projects"),
        first.as_bytes(),
        "FS",
        &["Work", "$Forwarded"],
        when(1_614_834_367),
    );
    dovecot.seed(
        "alice",
        Some("Projects"),
        message("second").as_bytes(),
        "RS",
        &["Later", "Work"],
        when(1_614_834_400),
    );
    dovecot.seed(
        "alice",
        Some("Archive.2020"),
        message("old").as_bytes(),
        "",
        &[],
        when(1_580_000_000),
    );

    let stored = dovecot.messages("alice", Some("Projects"));
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (stored[0].flags.as_str(), stored[0].body.as_slice()),
        ("FS", first.as_bytes())
    );
    assert_eq!(stored[0].keywords, ["Work", "$Forwarded"]);
    assert_eq!(stored[1].keywords, ["Work", "Later"]);

    let mut conn = imap_login(dovecot.imap_port(), "alice", "s3cret");
    let list = imap(&mut conn, "a", "LIST \"\" \"*\"");
    for name in ["INBOX", "Projects", "Archive.2020"] {
        assert!(
            list.contains(&format!(" {name}\r\n")) || list.contains(&format!(" \"{name}\"\r\n")),
            "{name}: {list}"
        );
    }
    let lsub = imap(&mut conn, "b", "LSUB \"\" \"*\"");
    assert!(
        lsub.contains("Projects") && lsub.contains("Archive.2020"),
        "{lsub}"
    );

    let select = imap(&mut conn, "c", "SELECT Projects");
    assert!(select.contains("* 2 EXISTS"), "{select}");
    let fetch = imap(&mut conn, "d", "FETCH 1:2 (FLAGS INTERNALDATE)");
    let replies: Vec<&str> = fetch.lines().filter(|l| l.starts_with("* ")).collect();
    assert_eq!(replies.len(), 2, "{fetch}");
    for (reply, flags, secs) in [
        (
            replies[0],
            ["\\Flagged", "\\Seen", "Work", "$Forwarded"],
            1_614_834_367,
        ),
        (
            replies[1],
            ["\\Answered", "\\Seen", "Later", "Work"],
            1_614_834_400,
        ),
    ] {
        for flag in flags {
            assert!(reply.contains(flag), "{flag} missing: {reply}");
        }
        let date = reply
            .split("INTERNALDATE \"")
            .nth(1)
            .and_then(|d| d.split('"').next());
        assert_eq!(date.map(imap_date_time), Some(secs), "{reply}");
    }
    let inbox = imap(&mut conn, "e", "SELECT INBOX");
    assert!(inbox.contains("* 2 EXISTS"), "{inbox}");
    let fetch = imap(
        &mut conn,
        "f",
        "FETCH 1:2 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    );
    let new = fetch.find("Subject: new").expect("seeded order lost");
    let read = fetch.find("Subject: read").expect("seeded order lost");
    assert!(new < read && fetch.contains("\\Seen"), "{fetch}");
}

#[test]
fn dovecot_lmtp_delivers_into_the_users_maildir() {
    let dovecot = Dovecot::start(Ca::get(), &[("alice", "s3cret")]);
    let mut lmtp = connect(dovecot.lmtp_port());
    let reply = |conn: &mut BufReader<TcpStream>| {
        let mut all = line(conn);
        while all.lines().last().unwrap_or_default().as_bytes().get(3) == Some(&b'-') {
            all.push_str(&line(conn));
        }
        all
    };
    assert!(reply(&mut lmtp).starts_with("220"));
    for (command, expect) in [
        ("LHLO client.test", "250"),
        ("MAIL FROM:<bob@sender.test>", "250"),
        ("RCPT TO:<alice@example.org>", "250"),
        ("RCPT TO:<nobody@example.org>", "550"),
        ("DATA", "354"),
        ("Subject: over lmtp\r\n\r\nhello\r\n.", "250"),
    ] {
        send(&mut lmtp, &format!("{command}\r\n"));
        let got = reply(&mut lmtp);
        assert!(got.starts_with(expect), "{command}: {got}");
    }
    let stored = dovecot.messages("alice", None);
    assert_eq!(stored.len(), 1);
    let body = String::from_utf8_lossy(&stored[0].body);
    assert!(
        body.contains("Subject: over lmtp") && body.contains("Delivered-To: alice"),
        "{body}"
    );
}

#[test]
fn primary_postfix_delivers_over_lmtp_and_rejects_unknown_users() {
    let primary = Primary::start(Ca::get(), &[("alice", "s3cret")]);
    let out = output(
        Command::new(sys::require_tool("swaks"))
            .args(["--server", "127.0.0.1"])
            .args(["--port", &primary.postfix.smtp_port().to_string()])
            .args(["--from", "bob@sender.test", "--to", "alice@example.org"])
            .args(["--header", "Subject: via postfix"]),
    );
    assert!(out.status.success(), "{}", text(&out));
    let delivered = sys::wait_until(Duration::from_secs(10), || {
        primary.dovecot.messages("alice", None).len() == 1
    });
    assert!(
        delivered.is_ok(),
        "nothing delivered; postfix log:\n{}\ndovecot log:\n{}",
        sys::tail(&primary.postfix.log(), 20),
        sys::tail(&primary.dovecot.log(), 20)
    );
    let mut conn = imap_login(primary.dovecot.imap_port(), "alice", "s3cret");
    let fetch = imap(&mut conn, "a", "EXAMINE INBOX");
    assert!(fetch.contains("* 1 EXISTS"), "{fetch}");
    let fetch = imap(&mut conn, "b", "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
    assert!(fetch.contains("Subject: via postfix"), "{fetch}");

    let unknown = primary.postfix.rcpt_reply("nobody@example.org");
    assert!(unknown.starts_with("550 5.1.1"), "{unknown}");
}

#[test]
fn postfix_recipient_access_answers_at_once_until_cleared() {
    let postfix = Postfix::start_with(Ca::get(), "example.test", &["alice"], Options::default());
    assert!(postfix.rcpt_reply("alice@example.test").starts_with("250"));
    // A session opened before the change sees it at its next RCPT.
    let mut open = connect(postfix.smtp_port());
    for command in [
        "",
        "HELO client.test\r\n",
        "MAIL FROM:<bob@sender.test>\r\n",
    ] {
        send(&mut open, command);
        let reply = line(&mut open);
        assert!(reply.starts_with('2'), "{command}: {reply}");
    }
    postfix.set_recipient_access("alice@example.test 452 4.2.2 mailbox busy\n");
    send(&mut open, "RCPT TO:<alice@example.test>\r\n");
    let busy = line(&mut open);
    assert!(
        busy.starts_with("452 4.2.2") && busy.contains("mailbox busy"),
        "{busy}"
    );
    let busy = postfix.rcpt_reply("ALICE@example.test");
    assert!(busy.starts_with("452 4.2.2"), "{busy}");
    // Domain entries work as in an indexed access(5) table.
    postfix.set_recipient_access("example.test 451 4.3.0 try later");
    let later = postfix.rcpt_reply("alice@example.test");
    assert!(later.starts_with("451 4.3.0"), "{later}");
    postfix.set_recipient_access("");
    send(&mut open, "RCPT TO:<alice@example.test>\r\n");
    let ok = line(&mut open);
    assert!(ok.starts_with("250"), "{ok}");
    let ok = postfix.rcpt_reply("alice@example.test");
    assert!(ok.starts_with("250"), "{ok}");
}
