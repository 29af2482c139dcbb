//! The drill's client: SMTP from inside the client's namespace, on a thread that joined it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

/// Runs `f` on a thread inside network namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("cannot join {path}: {e}"))?;
        f()
    })
    .join()
    .map_err(|_| "the client thread panicked".to_string())?
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn open(ip: &str) -> Result<Client, String> {
        let addr: SocketAddr = format!("{ip}:25")
            .parse()
            .map_err(|e| format!("{ip}: {e}"))?;
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("{addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let writer = s.try_clone().map_err(|e| e.to_string())?;
        let mut c = Client {
            reader: BufReader::new(s),
            writer,
        };
        c.expect("", "220")?;
        Ok(c)
    }

    /// Sends `line` (unless empty) and reads one reply, which must start with `code`.
    fn expect(&mut self, line: &str, code: &str) -> Result<String, String> {
        if !line.is_empty() {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .map_err(|e| e.to_string())?;
        }
        loop {
            let mut reply = String::new();
            if self
                .reader
                .read_line(&mut reply)
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err(format!("connection closed after {line:?}"));
            }
            if reply.as_bytes().get(3) == Some(&b'-') {
                continue;
            }
            return if reply.starts_with(code) {
                Ok(reply)
            } else {
                Err(format!("{line:?} got {}", reply.trim_end()))
            };
        }
    }
}

/// The server's greeting at `ip`:25, from inside `ns`.
pub fn greeting(ns: &str, ip: &str) -> Result<(), String> {
    let ip = ip.to_string();
    in_ns(ns, move || Client::open(&ip).map(|_| ()))
}

/// Sends `n` messages to ana@example.org through `ip`; returns the Message-IDs that got 250.
pub fn batch(ns: &str, ip: &str, phase: &str, n: usize) -> Result<Vec<String>, String> {
    let (ip, phase) = (ip.to_string(), phase.to_string());
    in_ns(ns, move || {
        let mut c = Client::open(&ip)?;
        c.expect("EHLO client.drill", "250")?;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("<drill-{phase}-{i}@posta.drill>");
            c.expect("MAIL FROM:<carlos@laorganizacion.org>", "250")?;
            c.expect("RCPT TO:<ana@example.org>", "250")?;
            c.expect("DATA", "354")?;
            let body = format!(
                "From: carlos@laorganizacion.org\r\nTo: ana@example.org\r\n\
                 Subject: drill {phase} {i}\r\nMessage-ID: {id}\r\n\r\n\
                 Sent during the drill's {phase} phase.\r\n.\r\n"
            );
            c.writer
                .write_all(body.as_bytes())
                .map_err(|e| e.to_string())?;
            c.expect("", "250")?;
            ids.push(id);
        }
        let _ = c.expect("QUIT", "221");
        Ok(ids)
    })
}
