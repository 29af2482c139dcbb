//! `posta mta` against clients that abuse its resources, as the real process on loopback:
//! clients that never read what they are sent (write deadlines), many connections from one
//! address (per-address limits), and big messages (memory stays bounded).

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use support::posta_mta::PostaMta;

const BIN: &str = env!("CARGO_BIN_EXE_posta");

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A TCP connection from `from` (any 127/8 address) to `port` on 127.0.0.1, with a small
/// receive buffer so that a client that does not read stops the server's writes early.
fn connect_from(from: Ipv4Addr, port: u16) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind a loopback source address");
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .expect("connect");
    let tcp: TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
    tcp
}

/// Reads one line (the server's first reply line).
fn first_line(tcp: &TcpStream) -> String {
    let mut line = String::new();
    let _ = BufReader::new(tcp).read_line(&mut line);
    line
}

/// Writes `chunk` again and again without ever reading, until the server closes the
/// connection (a write fails with a reset or broken pipe) or `limit` passes. Whether the
/// server closed it.
fn pipeline_until_closed(mut tcp: TcpStream, chunk: &[u8], limit: Duration) -> bool {
    tcp.set_write_timeout(Some(Duration::from_millis(500)))
        .expect("SO_SNDTIMEO");
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match tcp.write(chunk) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Item 3 of issue 13: 20 clients from 4 addresses pipeline EHLOs and never read, filling
/// every slot; a fifth address is refused while they hold them. Fix: every write is bounded by
/// --timeout (and the session deadline), as Postfix's smtpd_timeout bounds sending a reply,
/// so the server drops them and the fifth address is served.
#[test]
fn smtp_clients_that_never_read_are_cut_by_the_write_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let mta = PostaMta::start(
        BIN,
        dir.path(),
        &s(&[
            "--hostname",
            "mx2.example.org",
            "--domain",
            "example.org",
            "--maildir",
            &path(&mail),
            "--max-per-ip",
            "5",
            "--max-connections",
            "20",
            "--timeout",
            "5s",
        ]),
    );
    let port = mta.port;
    let timeout = Duration::from_secs(5);
    let ehlos = b"EHLO abuser.test\r\n".repeat(4096);
    let mut clients = Vec::new();
    for a in 0..4u8 {
        for _ in 0..5 {
            let tcp = connect_from(Ipv4Addr::new(127, 0, 0, 2 + a), port);
            let greeting = first_line(&tcp);
            assert!(
                greeting.starts_with("220"),
                "client from 127.0.0.{} not admitted: {greeting:?}",
                2 + a
            );
            clients.push(tcp);
        }
    }
    let started = Instant::now();
    let pipelines: Vec<_> = clients
        .into_iter()
        .map(|tcp| {
            let ehlos = ehlos.clone();
            thread::spawn(move || pipeline_until_closed(tcp, &ehlos, 3 * timeout))
        })
        .collect();
    // While they hold every slot, a fifth address is turned away: the lockout is real.
    let refused = first_line(&connect_from(Ipv4Addr::new(127, 0, 0, 6), port));
    assert!(
        refused.starts_with("421"),
        "expected 421 while 20 slots are held, got {refused:?}"
    );
    for (i, p) in pipelines.into_iter().enumerate() {
        assert!(
            p.join().unwrap(),
            "client {i} still connected after {:?} (3 x --timeout); mta log:\n{}",
            started.elapsed(),
            mta.log_tail()
        );
    }
    // The slots are given back: the fifth address gets its greeting and an EHLO answer.
    let mut served = None;
    let deadline = Instant::now() + 3 * timeout;
    while Instant::now() < deadline {
        let tcp = connect_from(Ipv4Addr::new(127, 0, 0, 6), port);
        let greeting = first_line(&tcp);
        if greeting.starts_with("220") {
            served = Some(tcp);
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut tcp = served.expect("127.0.0.6 never got a 220 after the slots were freed");
    tcp.write_all(b"EHLO fifth.test\r\n").unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let mut last = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "closed after EHLO"
        );
        if line.as_bytes().get(3) != Some(&b'-') {
            last = line;
            break;
        }
    }
    assert!(last.starts_with("250"), "EHLO answered {last:?}");
}
