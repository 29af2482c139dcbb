//! A Postfix lookup table served from the test process over the socketmap protocol
//! (socketmap_table(5), Sendmail's netstring protocol), so a test changes Postfix's answers
//! at once, even inside SMTP sessions already open: smtpd asks on every lookup, whereas it reads
//! a texthash table once per process, and `postfix reload` only reaches new sessions.
//!
//! Request `LEN:NAME KEY,`; reply `LEN:OK VALUE,` or `LEN:NOTFOUND ,` (netstrings). Postfix
//! sends a socketmap only the full key, as it does a regexp table, so the server itself tries
//! what access(5) tries in an indexed table for `user@domain`: the address, `domain`, `user@`.

use super::fake::Fake;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

type Table = Arc<Mutex<HashMap<String, String>>>;

pub struct SocketMap {
    table: Table,
    listener: Fake,
}

impl SocketMap {
    /// Starts serving an empty table on a loopback port.
    pub fn start() -> SocketMap {
        let table = Table::default();
        let shared = table.clone();
        let listener = Fake::start(move |stream| {
            let table = shared.clone();
            // One thread per smtpd process; it ends when that process closes the connection.
            thread::spawn(move || {
                let _ = serve(stream, &table);
            });
        });
        SocketMap { table, listener }
    }

    /// The table's name in Postfix's main.cf, e.g. `socketmap:inet:127.0.0.1:PORT:NAME`.
    pub fn postfix_name(&self, name: &str) -> String {
        format!("socketmap:inet:127.0.0.1:{}:{name}", self.listener.port)
    }

    /// Replaces the table with `text` in texthash syntax: `KEY VALUE` lines, `#` comments and
    /// blank lines ignored. Keys match case-insensitively, as Postfix folds lookup keys.
    pub fn set(&self, text: &str) {
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (key, value) = l
                    .split_once(char::is_whitespace)
                    .unwrap_or_else(|| panic!("table line {l:?} has no value"));
                (key.to_lowercase(), value.trim().to_owned())
            })
            .collect();
        *self.table.lock().unwrap_or_else(PoisonError::into_inner) = entries;
    }
}

fn serve(stream: TcpStream, table: &Mutex<HashMap<String, String>>) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_netstring(&mut reader)? {
        let request = String::from_utf8_lossy(&request);
        let key = request
            .split_once(' ')
            .map_or(String::new(), |(_, key)| key.to_lowercase());
        let candidates = match key.rsplit_once('@') {
            Some((user, domain)) => vec![key.clone(), domain.to_owned(), format!("{user}@")],
            None => vec![key],
        };
        let found = {
            let entries = table.lock().unwrap_or_else(PoisonError::into_inner);
            candidates.iter().find_map(|k| entries.get(k)).cloned()
        };
        let reply = found.map_or_else(|| "NOTFOUND ".to_owned(), |value| format!("OK {value}"));
        writer.write_all(format!("{}:{reply},", reply.len()).as_bytes())?;
    }
    Ok(())
}

/// One netstring, or None at a clean end of stream.
fn read_netstring(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Vec<u8>>> {
    let mut length = Vec::new();
    if reader.read_until(b':', &mut length)? == 0 {
        return Ok(None);
    }
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "not a netstring");
    let length: usize = std::str::from_utf8(length.strip_suffix(b":").ok_or_else(invalid)?)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(invalid)?;
    let mut body = vec![0; length + 1];
    reader.read_exact(&mut body)?;
    if body.pop() != Some(b',') {
        return Err(invalid());
    }
    Ok(Some(body))
}
