//! A `posta mta` process for the tests, and a minimal blocking SMTP sender that records what
//! the server answered (the tests decide from the replies what must have been stored).

use super::ports::free_port;
use super::sys::{tail, wait_until};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `posta mta`; killed (SIGKILL) on drop.
pub struct PostaMta {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    /// Its control socket (with a queue): under the test's directory, never /run/posta.
    pub control: PathBuf,
    args: Vec<String>,
    bin: String,
}

impl PostaMta {
    /// Starts `bin mta --listen 127.0.0.1:PORT ARGS...` and waits until it accepts.
    pub fn start(bin: &str, dir: &Path, args: &[String]) -> PostaMta {
        let port = free_port();
        PostaMta::start_on(bin, dir, port, args)
    }

    /// Same, on a given port (a restart keeps its port).
    pub fn start_on(bin: &str, dir: &Path, port: u16, args: &[String]) -> PostaMta {
        PostaMta::start_at(bin, dir, SocketAddr::from(([127, 0, 0, 1], port)), args)
    }

    /// Same, on any local address: `127.0.0.11:2525` for one of several servers sharing a
    /// port the way real ones share 25.
    pub fn start_at(bin: &str, dir: &Path, addr: SocketAddr, args: &[String]) -> PostaMta {
        PostaMta::spawn(bin, dir, addr, args, None)
    }

    /// Same, started as `uid:gid` instead of root (as systemd's `User=` would), on a free port
    /// above 1024.
    pub fn start_as(bin: &str, dir: &Path, args: &[String], (uid, gid): (u32, u32)) -> PostaMta {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        PostaMta::spawn(bin, dir, addr, args, Some((uid, gid)))
    }

    fn spawn(
        bin: &str,
        dir: &Path,
        addr: SocketAddr,
        args: &[String],
        user: Option<(u32, u32)>,
    ) -> PostaMta {
        use std::os::unix::process::CommandExt;
        let port = addr.port();
        let log = dir.join(format!("posta-mta-{}-{port}.log", addr.ip()));
        let control = dir.join(format!("mta-{}-{port}.sock", addr.ip()));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open mta log");
        let mut cmd = Command::new(bin);
        if let Some((uid, gid)) = user {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .args(["mta", "--listen", &addr.to_string()])
            .args(args)
            .env_remove("POSTA_CONFIG")
            .env("POSTA_LOG", "posta=debug")
            .env("POSTA_CONTROL_SOCKET", &control)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn posta mta");
        let mut m = PostaMta {
            child,
            port,
            log,
            control,
            args: args.to_vec(),
            bin: bin.to_string(),
        };
        let open = || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
        if wait_until(Duration::from_secs(20), || {
            open() || m.child.try_wait().ok().flatten().is_some()
        })
        .is_err()
            || m.child.try_wait().ok().flatten().is_some()
        {
            panic!("posta mta did not start; log:\n{}", tail(&m.log, 40));
        }
        m
    }

    /// SIGKILL now, then the same command line again on the same port.
    pub fn kill_and_restart(&mut self, dir: &Path) {
        self.kill();
        let next = PostaMta::start_on(&self.bin, dir, self.port, &self.args);
        *self = next;
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGHUP (reload tables).
    pub fn hup(&self) {
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 60)
    }
}

impl Drop for PostaMta {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One SMTP conversation, blocking, with every reply kept.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    pub fn connect(port: u16) -> Result<Smtp, String> {
        Smtp::open(port, "220")
    }

    /// A POP3 connection (the same line protocol): after its `+OK` greeting.
    pub fn connect_pop3(port: u16) -> Result<Smtp, String> {
        Smtp::open(port, "+OK")
    }

    /// An SMTP connection to any address, after its greeting.
    pub fn connect_at(addr: SocketAddr) -> Result<Smtp, String> {
        Smtp::open_at(addr, "220")
    }

    fn open(port: u16, greeting: &str) -> Result<Smtp, String> {
        Smtp::open_at(SocketAddr::from(([127, 0, 0, 1], port)), greeting)
    }

    fn open_at(addr: SocketAddr, greeting: &str) -> Result<Smtp, String> {
        let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let writer = s.try_clone().map_err(|e| e.to_string())?;
        let mut c = Smtp {
            reader: BufReader::new(s),
            writer,
        };
        let got = c.reply()?;
        if !got.starts_with(greeting) {
            return Err(got);
        }
        Ok(c)
    }

    /// A POP3 multi-line command: the lines between `+OK` and `.`.
    pub fn multiline(&mut self, cmd: &str) -> Result<Vec<String>, String> {
        let first = self.cmd(cmd)?;
        if !first.starts_with("+OK") {
            return Err(first);
        }
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            if self
                .reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err("connection closed".into());
            }
            let line = line.trim_end();
            if line == "." {
                return Ok(out);
            }
            out.push(line.to_string());
        }
    }

    /// Reads one (possibly multi-line) reply; returns its last line.
    pub fn reply(&mut self) -> Result<String, String> {
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(line.trim_end().to_string());
            }
        }
    }

    /// Sends one command line and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Result<String, String> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        self.reply()
    }

    /// Sends raw bytes (no reply read).
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer.write_all(bytes).map_err(|e| e.to_string())
    }

    /// A whole transaction; Ok(reply to the final dot), Err(first refusal or I/O error).
    /// `message` uses CRLF and is dot-stuffed here.
    pub fn send(&mut self, from: &str, rcpts: &[&str], message: &[u8]) -> Result<String, String> {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"))?;
        if !r.starts_with('2') {
            return Err(r);
        }
        let mut accepted = 0;
        let mut last = String::new();
        for rcpt in rcpts {
            last = self.cmd(&format!("RCPT TO:<{rcpt}>"))?;
            if last.starts_with('2') {
                accepted += 1;
            }
        }
        if accepted == 0 {
            let _ = self.cmd("RSET");
            return Err(last);
        }
        let r = self.cmd("DATA")?;
        if !r.starts_with("354") {
            return Err(r);
        }
        let mut data = Vec::with_capacity(message.len() + 16);
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        self.raw(&data)?;
        self.reply()
    }
}

/// EHLO then one transaction on a fresh connection.
pub fn send_one(port: u16, from: &str, rcpts: &[&str], message: &[u8]) -> Result<String, String> {
    let mut c = Smtp::connect(port)?;
    let ehlo = c.cmd("EHLO client.test")?;
    if !ehlo.starts_with("250") {
        return Err(ehlo);
    }
    let r = c.send(from, rcpts, message);
    let _ = c.cmd("QUIT");
    r
}

/// A test message with a unique Message-ID, CRLF line ends.
pub fn message(id: &str, from: &str, to: &str, body: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: test {id}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{id}@posta.test>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// `["--flag", "value"]` as the owned argument list `PostaMta::start` takes.
pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Waits until `ok`, failing with the mta's log after `limit`.
pub fn wait_mta(mta: &PostaMta, what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; mta log:\n{}",
            mta.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
