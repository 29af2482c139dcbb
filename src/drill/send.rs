//! The drill's client: SMTP from inside the client's namespace, on a thread that joined it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use super::DrillError;

/// Runs `f` on a thread inside network namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, DrillError> + Send + 'static,
) -> Result<T, DrillError> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).map_err(DrillError::file(&path))?;
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|source| DrillError::Namespace { path, source })?;
        f()
    })
    .join()
    .map_err(|_| DrillError::Panicked)?
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn open(ip: &str) -> Result<Client, DrillError> {
        let shown = format!("{ip}:25");
        let io = |source| DrillError::Connect {
            addr: shown.clone(),
            source,
        };
        let addr: SocketAddr = shown.parse().map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not an IP address",
            ))
        })?;
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let writer = s.try_clone().map_err(io)?;
        let mut c = Client {
            reader: BufReader::new(s),
            writer,
        };
        c.expect("", "220")?;
        Ok(c)
    }

    /// Sends `line` (unless empty) and reads one reply, which must start with `code`.
    fn expect(&mut self, line: &str, code: &str) -> Result<String, DrillError> {
        let addr = self
            .writer
            .peer_addr()
            .map_or_else(|_| "the server".to_string(), |a| a.to_string());
        let io = |source| DrillError::Connect {
            addr: addr.clone(),
            source,
        };
        if !line.is_empty() {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .map_err(io)?;
        }
        loop {
            let mut reply = String::new();
            if self.reader.read_line(&mut reply).map_err(io)? == 0 {
                return Err(DrillError::Closed(line.to_string()));
            }
            if reply.as_bytes().get(3) == Some(&b'-') {
                continue;
            }
            return if reply.starts_with(code) {
                Ok(reply)
            } else {
                Err(DrillError::Reply {
                    line: line.to_string(),
                    reply: reply.trim_end().to_string(),
                })
            };
        }
    }
}

/// The server's greeting at `ip`:25, from inside `ns`.
pub fn greeting(ns: &str, ip: &str) -> Result<(), DrillError> {
    let ip = ip.to_string();
    in_ns(ns, move || Client::open(&ip).map(|_| ()))
}

/// Sends `n` messages to ana@example.org through `ip`; returns the Message-IDs that got 250.
pub fn batch(ns: &str, ip: &str, phase: &str, n: usize) -> Result<Vec<String>, DrillError> {
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
                .map_err(|source| DrillError::Connect {
                    addr: ip.clone(),
                    source,
                })?;
            c.expect("", "250")?;
            ids.push(id);
        }
        let _ = c.expect("QUIT", "221");
        Ok(ids)
    })
}
