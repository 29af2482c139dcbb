//! `posta mta`'s POP3 server in-process on 127.0.0.1:0 over a temp Maildir root, driven by
//! posta's own POP3 client (the one `posta migrate --from pop3://` drains with), over STLS and
//! implicit TLS, and by raw sockets for what a polite client never sends. Also: a password hash
//! made by Dovecot's `doveadm pw` verifies.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use posta::client::pop3::{Pop3Client, Pop3Error};
use posta::client::{Endpoint, Login};
use posta::health::{StartTls, TlsPolicy};
use posta::mta::pop3::{PlaintextAuth, Pop3Config, ServeError, serve};
use posta::mta::users::{Users, hash_password};
use posta::secret::Secret;
use support::Ca;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One server instance; [`Server::stop`] shuts it down and waits.
struct Server {
    port: u16,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Server {
    async fn start(cfg: Pop3Config) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::new(cfg), async {
            let _ = stopped.await;
        }));
        Server { port, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server did not stop within 10 s");
        result.expect("server task panicked").expect("serve failed");
    }
}

/// A Maildir root with users alice and bob (password "pw") and the users file.
struct Site {
    dir: tempfile::TempDir,
    users: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        let text = format!(
            "# posta POP3 users\nalice:{}\nbob:{}::::\n",
            hash_password("pw"),
            hash_password("pw")
        );
        fs::write(&users, text).unwrap();
        fs::set_permissions(&users, fs::Permissions::from_mode(0o600)).unwrap();
        fs::create_dir(dir.path().join("mail")).unwrap();
        Site { dir, users }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    fn config(&self, implicit_tls: bool) -> Pop3Config {
        let mut cfg = Pop3Config::new(self.root(), Users::load(&self.users).expect("users"));
        cfg.tls = Some(acceptor());
        cfg.implicit_tls = implicit_tls;
        cfg.failed_login_delay = Duration::from_millis(10);
        cfg
    }

    /// Delivers `data` into `user`'s new/ as `name`.
    fn deliver(&self, user: &str, name: &str, data: &[u8]) -> PathBuf {
        let md = self.root().join(user);
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(md.join(sub)).unwrap();
        }
        let path = md.join("new").join(name);
        fs::write(&path, data).unwrap();
        path
    }

    fn files(&self, user: &str) -> Vec<String> {
        let mut names = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = fs::read_dir(self.root().join(user).join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().into_string().unwrap();
                if !name.starts_with('.') {
                    names.push(format!("{sub}/{name}"));
                }
            }
        }
        names.sort();
        names
    }
}

/// The certificates `posta mta` loads, from the test CA's leaf for 127.0.0.1.
fn acceptor() -> std::sync::Arc<posta::mta::tls::Tls> {
    use posta::mta::tls::{CertFiles, Identities, Tls};
    let ca = Ca::get();
    let own = CertFiles {
        cert: ca.cert_pem(),
        key: ca.key_pem(),
    };
    let tls = Tls::load(Identities { own, vip: None }).expect("server TLS config");
    std::sync::Arc::new(tls)
}

fn endpoint(port: u16, implicit_tls: bool, starttls: StartTls) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        implicit_tls,
        starttls,
        tls: TlsPolicy {
            ca_file: Some(Ca::get().ca_pem()),
            ..TlsPolicy::default()
        },
        timeout: Duration::from_secs(10),
    }
}

fn login(user: &str, password: &str) -> Login {
    Login::own(user, Secret::new(password))
}

/// Connects and logs in, retrying while the previous session of this user still holds the
/// maildrop (its connection closed a moment ago; the server notices at its next read).
async fn session(ep: &Endpoint, user: &str) -> Pop3Client {
    for _ in 0..50 {
        let mut client = Pop3Client::connect(ep).await.expect("connect");
        match client.login(&login(user, "pw")).await {
            Ok(()) => return client,
            Err(Pop3Error::Auth { status, .. }) if status.text.starts_with("[IN-USE]") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("login as {user}: {e}"),
        }
    }
    panic!("maildrop of {user} stayed locked");
}

/// Bare LF → CRLF, a missing last line end added: what RETR must send for a stored file.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = b'\n';
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if prev != b'\n' {
        out.extend_from_slice(b"\r\n");
    }
    out
}

const LF_MESSAGE: &[u8] = b"From: a@example.org\nSubject: lf\n\n.leading dot\n..two dots\n.\nend\n";
const CRLF_MESSAGE: &[u8] =
    b"From: b@example.org\r\nSubject: crlf\r\n\r\nline 1\r\n.dot\r\nline 3\r\nline 4\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn serves_maildir_over_stls_and_implicit_tls() {
    let site = Site::new();
    site.deliver("alice", "1700000001.M1P1.test", LF_MESSAGE);
    site.deliver("alice", "1700000002.M1P1.test,S=80", CRLF_MESSAGE);
    site.deliver("alice", ".hidden", b"not a message\n");
    let stls = Server::start(site.config(false)).await;
    let ep = endpoint(stls.port, false, StartTls::Require);

    let mut client = session(&ep, "alice").await;
    let uidl = client.uidl().await.unwrap();
    assert_eq!(
        uidl,
        [
            (1, "1700000001.M1P1.test".to_owned()),
            (2, "1700000002.M1P1.test,S=80".to_owned())
        ]
    );
    let list = client.list().await.unwrap();
    let mut got = Vec::new();
    for (n, _) in &list {
        client.send_retr(*n).await.unwrap();
    }
    for _ in &list {
        got.push(client.read_retr().await.unwrap());
    }
    assert_eq!(got, [crlf(LF_MESSAGE), CRLF_MESSAGE.to_vec()]);
    for ((_, size), body) in list.iter().zip(&got) {
        assert_eq!(*size, body.len() as u64, "LIST size must equal RETR octets");
    }
    client.quit().await.unwrap();
    assert_eq!(
        site.files("alice").len(),
        2,
        "QUIT without DELE deletes nothing"
    );
    stls.stop().await;

    // Restart on implicit TLS, after another reader moved message 1 to cur/: same UIDL.
    let first = site.root().join("alice/new/1700000001.M1P1.test");
    fs::rename(
        &first,
        site.root().join("alice/cur/1700000001.M1P1.test:2,S"),
    )
    .unwrap();
    // The POP3S config is a clone of the STLS one, as `posta mta` makes it.
    let base = site.config(false);
    let mut cfg = base.clone();
    cfg.implicit_tls = true;
    let tls = Server::start(cfg).await;
    let ep = endpoint(tls.port, true, StartTls::Require);
    let mut client = session(&ep, "alice").await;
    assert_eq!(client.uidl().await.unwrap(), uidl);
    client.send_retr(1).await.unwrap();
    assert_eq!(client.read_retr().await.unwrap(), crlf(LF_MESSAGE));
    client.quit().await.unwrap();
    // Reloading the users on the original config reaches the clone serving POP3S.
    base.set_users(Users::default());
    let mut client = Pop3Client::connect(&ep).await.unwrap();
    let err = client.login(&login("alice", "pw")).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Auth { .. }), "{err}");
    tls.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dele_quit_removes_and_a_dropped_session_removes_nothing() {
    let site = Site::new();
    for i in 1..=3 {
        site.deliver("bob", &format!("170000000{i}.M1P1.test"), LF_MESSAGE);
    }
    let server = Server::start(site.config(false)).await;
    let ep = endpoint(server.port, false, StartTls::Require);

    // DELE, then the connection drops: nothing deleted.
    let mut client = session(&ep, "bob").await;
    client.dele(1).await.unwrap();
    drop(client);
    let mut client = session(&ep, "bob").await;
    assert_eq!(client.list().await.unwrap().len(), 3);
    assert_eq!(site.files("bob").len(), 3);

    // DELE 1, DELE 2, QUIT: those two files are gone, the third stays.
    client.dele(1).await.unwrap();
    client.dele(2).await.unwrap();
    client.quit().await.unwrap();
    assert_eq!(site.files("bob"), ["new/1700000003.M1P1.test"]);

    // Draining as migrate does: every message, DELE each, QUIT. The maildrop is free the
    // moment QUIT is answered: no IN-USE for a client that comes straight back.
    let mut client = Pop3Client::connect(&ep).await.unwrap();
    client.login(&login("bob", "pw")).await.unwrap();
    let uidl = client.uidl().await.unwrap();
    assert_eq!(uidl, [(1, "1700000003.M1P1.test".to_owned())]);
    client.send_retr(1).await.unwrap();
    assert_eq!(client.read_retr().await.unwrap(), crlf(LF_MESSAGE));
    client.dele(1).await.unwrap();
    client.quit().await.unwrap();
    assert!(site.files("bob").is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_refused() {
    let site = Site::new();
    site.deliver("alice", "1700000001.M1P1.test", LF_MESSAGE);
    let server = Server::start(site.config(false)).await;
    let ep = endpoint(server.port, false, StartTls::Require);

    let mut client = Pop3Client::connect(&ep).await.unwrap();
    let err = client.login(&login("alice", "wrong")).await.unwrap_err();
    assert!(
        matches!(&err, Pop3Error::Auth { status, .. } if status.text.starts_with("[AUTH]")),
        "{err}"
    );
    let mut client = Pop3Client::connect(&ep).await.unwrap();
    let err = client.login(&login("mallory", "pw")).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Auth { .. }), "{err}");

    // A second session for a locked maildrop: IN-USE, which the client calls transient.
    let first = session(&ep, "alice").await;
    let mut second = Pop3Client::connect(&ep).await.unwrap();
    let err = second.login(&login("alice", "pw")).await.unwrap_err();
    assert!(
        matches!(&err, Pop3Error::Auth { status, .. } if status.text.starts_with("[IN-USE]")),
        "{err}"
    );
    assert!(err.is_transient());
    first.quit().await.unwrap();
    server.stop().await;

    // Cleartext: with PlaintextAuth::Never even loopback must use TLS; CAPA offers no USER.
    let mut cfg = site.config(false);
    cfg.plaintext_auth = PlaintextAuth::Never;
    let server = Server::start(cfg).await;
    let mut client = Pop3Client::connect(&endpoint(server.port, false, StartTls::No))
        .await
        .unwrap();
    let err = client.login(&login("alice", "pw")).await.unwrap_err();
    assert!(matches!(err, Pop3Error::NoUserLogin { .. }), "{err}");
    let mut raw = Raw::connect(server.port).await;
    let reply = raw.cmd("USER alice").await;
    assert!(reply.starts_with("-ERR [AUTH]"), "{reply}");
    let reply = raw.cmd("AUTH PLAIN AGFsaWNlAHB3").await;
    assert!(reply.starts_with("-ERR [AUTH]"), "{reply}");
    server.stop().await;
}

/// A raw client for what the real one does not send.
struct Raw {
    io: BufReader<TcpStream>,
}

impl Raw {
    async fn connect(port: u16) -> Raw {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut raw = Raw {
            io: BufReader::new(tcp),
        };
        let greeting = raw.line().await;
        assert!(greeting.starts_with("+OK"), "{greeting}");
        raw
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.io.read_line(&mut line))
            .await
            .expect("reply within 10 s")
            .unwrap();
        line
    }

    async fn cmd(&mut self, cmd: &str) -> String {
        self.io
            .get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .unwrap();
        self.line().await
    }

    /// The rest of a multi-line reply, up to and including the `.` line.
    async fn multi(&mut self) -> String {
        let mut all = String::new();
        loop {
            let line = self.line().await;
            assert!(
                !line.is_empty(),
                "connection closed inside a multi-line reply"
            );
            all.push_str(&line);
            if line == ".\r\n" {
                return all;
            }
        }
    }

    /// Everything until the server closes.
    async fn rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.io.read_to_end(&mut out))
            .await
            .expect("server closes within 10 s")
            .unwrap_or_default();
        out
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn top_rset_and_pipelined_raw_commands() {
    let site = Site::new();
    site.deliver("alice", "1700000001.M1P1.test", CRLF_MESSAGE);
    site.deliver("alice", "1700000002.M1P1.test", LF_MESSAGE);
    // Loopback may log in without TLS by default.
    let server = Server::start(site.config(false)).await;
    let mut raw = Raw::connect(server.port).await;
    assert!(raw.cmd("CAPA").await.starts_with("+OK"));
    let capa = raw.multi().await;
    for cap in ["TOP", "UIDL", "USER", "SASL PLAIN", "STLS", "PIPELINING"] {
        assert!(capa.contains(cap), "{cap} missing: {capa}");
    }
    assert_eq!(raw.cmd("USER alice").await, "+OK send PASS\r\n");
    let reply = raw.cmd("PASS pw").await;
    assert!(reply.starts_with("+OK maildrop has 2 messages"), "{reply}");
    assert!(raw.cmd("TOP 1 1").await.starts_with("+OK"));
    assert_eq!(
        raw.multi().await,
        "From: b@example.org\r\nSubject: crlf\r\n\r\nline 1\r\n.\r\n"
    );
    assert!(raw.cmd("TOP 2 0").await.starts_with("+OK"));
    assert_eq!(
        raw.multi().await,
        "From: a@example.org\r\nSubject: lf\r\n\r\n.\r\n"
    );
    assert!(raw.cmd("DELE 1").await.starts_with("+OK"));
    assert_eq!(
        raw.cmd("STAT").await,
        format!("+OK 1 {}\r\n", crlf(LF_MESSAGE).len())
    );
    assert!(raw.cmd("RSET").await.starts_with("+OK"));
    let both = CRLF_MESSAGE.len() + crlf(LF_MESSAGE).len();
    assert_eq!(raw.cmd("STAT").await, format!("+OK 2 {both}\r\n"));
    // Pipelined: three commands in one write, three replies in order.
    raw.io
        .get_mut()
        .write_all(b"NOOP\r\nLIST 2\r\nRETR 9\r\n")
        .await
        .unwrap();
    assert_eq!(raw.line().await, "+OK\r\n");
    assert_eq!(
        raw.line().await,
        format!("+OK 2 {}\r\n", crlf(LF_MESSAGE).len())
    );
    assert!(raw.line().await.starts_with("-ERR no such message"));
    // A file removed behind the server's back after the snapshot.
    fs::remove_file(site.root().join("alice/new/1700000001.M1P1.test")).unwrap();
    assert_eq!(raw.cmd("RETR 1").await, "-ERR message removed\r\n");
    assert!(raw.cmd("QUIT").await.starts_with("+OK"));
    assert_eq!(site.files("alice").len(), 1, "RSET undid the DELE");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_clients_are_cut_off() {
    let site = Site::new();
    let server = Server::start(site.config(false)).await;

    // An endless line: one -ERR, then the connection closes.
    let mut raw = Raw::connect(server.port).await;
    let _ = raw.io.get_mut().write_all(&[b'A'; 5000]).await;
    let rest = raw.rest().await;
    assert_eq!(rest, b"-ERR line too long\r\n");

    // A thousand junk commands: the server hangs up after a few.
    let mut raw = Raw::connect(server.port).await;
    let mut junk = Vec::new();
    for i in 0..1000u32 {
        junk.extend_from_slice(&[0xff, 0x00, (i % 251) as u8, b'\r', b'\n']);
        junk.extend_from_slice(b"GET / HTTP/1.1\r\n");
    }
    let _ = raw.io.get_mut().write_all(&junk).await;
    let rest = String::from_utf8(raw.rest().await).unwrap();
    let replies: Vec<&str> = rest.lines().collect();
    assert!(replies.len() <= 10, "{rest}");
    assert!(replies.iter().all(|l| l.starts_with("-ERR")), "{rest}");
    assert!(
        rest.ends_with("-ERR too many bad commands, closing\r\n"),
        "{rest}"
    );

    // STLS with a command smuggled behind it in the same packet: no handshake, closed.
    let mut raw = Raw::connect(server.port).await;
    let _ = raw.io.get_mut().write_all(b"STLS\r\nCAPA\r\n").await;
    let rest = raw.rest().await;
    assert_eq!(rest, b"+OK begin TLS negotiation\r\n");

    // The server still serves well-behaved clients afterwards.
    let mut raw = Raw::connect(server.port).await;
    assert!(raw.cmd("QUIT").await.starts_with("+OK"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_idle_sessions_without_deleting() {
    let site = Site::new();
    site.deliver("alice", "1700000001.M1P1.test", LF_MESSAGE);
    let server = Server::start(site.config(false)).await;
    let mut raw = Raw::connect(server.port).await;
    raw.cmd("USER alice").await;
    assert!(raw.cmd("PASS pw").await.starts_with("+OK"));
    assert!(raw.cmd("DELE 1").await.starts_with("+OK"));
    server.stop().await;
    let rest = raw.rest().await;
    assert_eq!(rest, b"-ERR [SYS/TEMP] server shutting down\r\n");
    assert_eq!(site.files("alice").len(), 1);
}

/// The users file takes what Dovecot's `doveadm pw` writes, so one file serves both.
#[test]
fn doveadm_hash_verifies() {
    let doveadm = support::sys::require_tool("doveadm");
    let out = Command::new(&doveadm)
        .args(["pw", "-s", "SHA512-CRYPT", "-p", "secret"])
        .output()
        .unwrap_or_else(|e| {
            panic!("failed to run doveadm (install it with scripts/install-test-deps.sh): {e}")
        });
    assert!(
        out.status.success(),
        "doveadm pw failed ({}): {}; scripts/install-test-deps.sh installs Dovecot",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"), "{hash}");
    let users = Users::parse(Path::new("users"), &format!("carol:{hash}\n")).unwrap();
    assert!(users.verify("carol", &Secret::new("secret")));
    assert!(!users.verify("carol", &Secret::new("Secret")));
}

/// Runs a server on its own thread and runtime, for tests that block on a child process.
fn start_on_thread(cfg: Pop3Config) -> (u16, oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            serve(listener, Arc::new(cfg), async {
                let _ = stopped.await;
            })
            .await
            .expect("serve failed");
        });
    });
    let port = port_rx.recv().expect("server thread started");
    (port, stop, thread)
}

/// The acceptance test of issue 5 item 4: `posta migrate --from pop3s://` drains posta's own
/// POP3 server into a real mailserver1 (Postfix + Dovecot): every message arrives once, with
/// its body intact, and the Maildir is empty afterwards (DELE then QUIT removed the files).
#[test]
fn posta_migrate_drains_the_pop3_server() {
    use posta::migrate::message::{body_hash, message_id};
    let ca = Ca::get();
    let primary = support::Primary::start(ca, &[("alice", "pw")]);
    let site = Site::new();
    let mut seeded = Vec::new();
    for i in 0..40 {
        let mut m = format!(
            "Delivered-To: alice@example.org\nMessage-ID: <pop3srv-{i}@example.net>\n\
             From: s{i}@example.net\n\
             To: alice@example.org\nSubject: message {i}\n\n"
        );
        for line in 0..50 {
            m.push_str(if line % 7 == 0 {
                ".dot line\n"
            } else {
                "body line\n"
            });
        }
        let m = m.into_bytes();
        site.deliver("alice", &format!("1700000{i:03}.M1P1.test"), &m);
        seeded.push(m);
    }
    let (port, stop, thread) = start_on_thread(site.config(true));
    let password = site.dir.path().join("password");
    fs::write(&password, "pw").unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    let path = |p: &Path| p.display().to_string();
    let child = support::run::posta_command(env!("CARGO_BIN_EXE_posta"))
        .args([
            "migrate",
            "--from",
            &format!("pop3s://alice@127.0.0.1:{port}"),
            "--password-file",
            &path(&password),
            "--to",
            &format!("smtp://127.0.0.1:{}", primary.postfix.smtp_port()),
            "--to-imap",
            &format!("imaps://alice@127.0.0.1:{}", primary.dovecot.imaps_port()),
            "--ca-file",
            &path(&ca.ca_pem()),
            "--state-dir",
            &path(&site.dir.path().join("state")),
            "--settle",
            "45s",
            "--json",
        ])
        .spawn()
        .expect("run posta");
    let run = support::run::Run::wait(child, Duration::from_secs(300));
    let _ = stop.send(());
    thread.join().expect("server thread");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(site.files("alice").is_empty(), "{:?}", site.files("alice"));

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let got = primary.dovecot.messages("alice", None);
        if got.len() >= seeded.len() || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(stored.len(), seeded.len());
    let mut got: Vec<(String, String)> = stored
        .iter()
        .map(|m| (message_id(&m.body).unwrap(), body_hash(&m.body)))
        .collect();
    let mut want: Vec<(String, String)> = seeded
        .iter()
        .map(|m| (message_id(m).unwrap(), body_hash(m)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_are_logged_out_and_extra_connections_refused() {
    let site = Site::new();
    site.deliver("alice", "1700000001.M1P1.test", LF_MESSAGE);
    let mut cfg = site.config(false);
    cfg.timeout = Duration::from_secs(1);
    cfg.max_connections = 1;
    let server = Server::start(cfg).await;
    let mut raw = Raw::connect(server.port).await;
    raw.cmd("USER alice").await;
    assert!(raw.cmd("PASS pw").await.starts_with("+OK"));
    assert!(raw.cmd("DELE 1").await.starts_with("+OK"));

    // The one slot is taken: the next client is told to come back later.
    let mut extra = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), extra.read_to_end(&mut reply))
        .await
        .expect("refusal within 10 s")
        .unwrap();
    assert_eq!(
        reply,
        b"-ERR [SYS/TEMP] too many connections, try again later\r\n"
    );

    // Idle past the timeout: autologout, no UPDATE state, so the DELE is forgotten.
    let rest = raw.rest().await;
    assert_eq!(rest, b"-ERR autologout timer expired\r\n");
    assert_eq!(site.files("alice").len(), 1);
    server.stop().await;
}

/// Mail that posta's own SMTP server delivered into the Maildirs is what POP3 serves: the
/// two halves of `posta mta` agree on where a user's mail lives and on its bytes.
#[tokio::test(flavor = "multi_thread")]
async fn serves_what_the_smtp_server_delivered() {
    use posta::mta::server::{Mta, serve as smtp_serve};
    use posta::mta::settings::Settings;
    let site = Site::new();
    let mut settings = Settings::new("mx2.example.org".into());
    settings.maildir = Some(site.root());
    settings.domains.local = vec!["example.org".into()];
    let (flush, _flush_rx) = tokio::sync::mpsc::unbounded_channel();
    let mta = Mta::new(settings, Default::default(), None, None, None, None, flush).expect("mta");
    let (smtp_stop, smtp_stopped) = tokio::sync::watch::channel(false);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp_port = listener.local_addr().unwrap().port();
    let smtp = tokio::spawn(smtp_serve(listener, Arc::new(mta), smtp_stopped));

    let mut raw = BufReader::new(TcpStream::connect(("127.0.0.1", smtp_port)).await.unwrap());
    let mut expect = async |send: &str, code: &str| {
        if !send.is_empty() {
            raw.get_mut().write_all(send.as_bytes()).await.unwrap();
        }
        // Multi-line replies: read until the line with a space after the code.
        loop {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(10), raw.read_line(&mut line))
                .await
                .expect("SMTP reply within 10 s")
                .unwrap();
            assert!(line.starts_with(code), "{send:?} got {line:?}");
            if line.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        }
    };
    expect("", "220").await;
    expect("EHLO client.example.net\r\n", "250").await;
    expect("MAIL FROM:<s@example.net>\r\n", "250").await;
    expect("RCPT TO:<alice@example.org>\r\n", "250").await;
    expect("DATA\r\n", "354").await;
    let body = "Message-ID: <via-smtp@example.net>\r\nSubject: via smtp\r\n\r\n..dot\r\nend\r\n";
    expect(&format!("{body}.\r\n"), "250").await;
    expect("QUIT\r\n", "221").await;
    let _ = smtp_stop.send(true);
    smtp.await.unwrap().unwrap();

    let files = site.files("alice");
    assert_eq!(files.len(), 1, "{files:?}");
    let stored = fs::read(site.root().join("alice").join(&files[0])).unwrap();
    let server = Server::start(site.config(false)).await;
    let mut client = session(&endpoint(server.port, false, StartTls::Require), "alice").await;
    let uidl = client.uidl().await.unwrap();
    let base = files[0].trim_start_matches("new/");
    assert_eq!(uidl, [(1, base.split(":2,").next().unwrap().to_owned())]);
    let list = client.list().await.unwrap();
    client.send_retr(1).await.unwrap();
    let got = client.read_retr().await.unwrap();
    assert_eq!(got, crlf(&stored));
    assert_eq!(list, [(1, got.len() as u64)]);
    let text = String::from_utf8(got).unwrap();
    assert!(
        text.ends_with("Subject: via smtp\r\n\r\n.dot\r\nend\r\n"),
        "{text}"
    );
    client.dele(1).await.unwrap();
    client.quit().await.unwrap();
    assert!(site.files("alice").is_empty());
    server.stop().await;
}
