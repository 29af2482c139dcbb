//! A line-oriented client connection over TCP that can be upgraded to TLS in place (STARTTLS,
//! STLS). It owns the socket and nothing else: what the lines mean is `proto`'s business.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::tls::{TlsSetup, describe_handshake_error, tls_info};
use crate::proto::{LineBuffer, ProtoError, escape};
use crate::service::TlsInfo;

/// What went wrong on the connection. Messages are lowercase fragments; the probe adds the step.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("connection refused by {addr}")]
    Refused { addr: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("server closed the connection")]
    Closed,
    #[error("{0}")]
    Malformed(ProtoError),
    #[error("network error: {0}")]
    Io(#[from] io::Error),
    /// A handshake failure, already described for people by `tls::describe_handshake_error`.
    #[error("{0}")]
    Tls(String),
    /// The connection died during the handshake (closed or reset, no TLS error): a server
    /// restarting or killing its processes, as likely to work on the next connection as any
    /// other lost connection.
    #[error("{0}")]
    TlsInterrupted(String),
    #[error(
        "server sent {0} bytes after its STARTTLS reply, before the TLS handshake; refusing to \
         upgrade (STARTTLS command injection, CVE-2011-0411)"
    )]
    Injection(usize),
    #[error("connection is already using TLS")]
    AlreadyTls,
}

impl ConnError {
    /// Whether a new connection later may succeed: name resolution, refusals, resets and
    /// closes are; malformed replies, TLS failures and STARTTLS injection are not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnError::Resolve { .. }
                | ConnError::Refused { .. }
                | ConnError::Connect { .. }
                | ConnError::Closed
                | ConnError::TlsInterrupted(_)
                | ConnError::Io(_)
        )
    }
}

/// A failed handshake: a TLS error (certificate, protocol) is the server's configuration and
/// permanent; a bare I/O error is the connection lost, transient.
fn handshake_error(err: &io::Error, name: &str) -> ConnError {
    let described = describe_handshake_error(err, name);
    let tls = err
        .get_ref()
        .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some());
    if tls {
        ConnError::Tls(described)
    } else {
        ConnError::TlsInterrupted(described)
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only between taking the TCP stream for a handshake and getting the TLS stream back; a
    /// failed handshake leaves the connection here, and every use then reports it closed.
    Gone,
}

/// One client connection.
pub struct Conn {
    stream: Stream,
    buf: LineBuffer,
    /// Read scratch space, on the heap: a 16 KiB array in `fill` would sit in every future
    /// that awaits a read, and nested futures overflowed a worker thread's stack.
    scratch: Box<[u8]>,
}

/// One TLS record's worth: a whole record per read.
const READ_CHUNK: usize = 16 * 1024;

impl Conn {
    /// Resolves `host` and connects to the first address that accepts, with TCP_NODELAY: each
    /// command goes out in one write, and Nagle plus delayed ACK would add 40 ms per round trip.
    pub async fn connect(host: &str, port: u16) -> Result<Conn, ConnError> {
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| ConnError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect();
        let mut last = ConnError::Resolve {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        };
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    tcp.set_nodelay(true)?;
                    tracing::debug!(%addr, "connected");
                    return Ok(Conn {
                        stream: Stream::Plain(tcp),
                        buf: LineBuffer::new(),
                        scratch: vec![0; READ_CHUNK].into_boxed_slice(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    last = ConnError::Refused {
                        addr: addr.to_string(),
                    };
                }
                Err(source) => {
                    last = ConnError::Connect {
                        addr: addr.to_string(),
                        source,
                    };
                }
            }
        }
        Err(last)
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    async fn fill(&mut self) -> Result<(), ConnError> {
        let chunk = &mut self.scratch;
        let n = match &mut self.stream {
            Stream::Plain(s) => {
                quickack(s);
                s.read(chunk).await?
            }
            Stream::Tls(s) => {
                quickack(s.get_ref().0);
                s.read(chunk).await?
            }
            Stream::Gone => return Err(ConnError::Closed),
        };
        if n == 0 {
            return Err(ConnError::Closed);
        }
        self.buf.extend(&self.scratch[..n]);
        Ok(())
    }

    /// Reads one line, terminator included, refusing lines over [`crate::proto::MAX_LINE`].
    pub async fn read_line(&mut self) -> Result<Vec<u8>, ConnError> {
        self.read_line_within(crate::proto::MAX_LINE).await
    }

    /// [`Conn::read_line`] with another line limit (see [`crate::proto::LineBuffer::next_line_limited`]).
    pub async fn read_line_within(&mut self, limit: usize) -> Result<Vec<u8>, ConnError> {
        loop {
            if let Some(line) = self
                .buf
                .next_line_limited(limit)
                .map_err(ConnError::Malformed)?
            {
                tracing::debug!("S: {}", escape(&line));
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// Reads one line of message data up to `max` octets, terminator included. Mail has lines
    /// far beyond [`crate::proto::MAX_LINE`] (RFC 5322 §2.1.1 only asks for 998 octets, and
    /// generated HTML ignores even that), so message transfer needs its own bound. Logged at
    /// trace, not debug: these lines are people's mail, not protocol.
    pub async fn read_line_limited(&mut self, max: usize) -> Result<Vec<u8>, ConnError> {
        loop {
            if let Some(line) = self
                .buf
                .next_line_limited(max)
                .map_err(ConnError::Malformed)?
            {
                tracing::trace!("S: {}", escape(&line));
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// Reads exactly `n` bytes (an IMAP literal's data).
    pub async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ConnError> {
        loop {
            if let Some(data) = self.buf.take(n) {
                tracing::debug!("S: <{n} bytes of literal data>");
                return Ok(data);
            }
            self.fill().await?;
        }
    }

    /// Writes a whole command in one write. `shown` is what the log may say instead (credentials
    /// redacted by the command itself).
    pub async fn send(&mut self, bytes: &[u8], shown: &str) -> Result<(), ConnError> {
        tracing::debug!("C: {}", escape(shown.as_bytes()));
        match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).await?,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                // rustls buffers plaintext; flush makes it a TLS record on the wire now.
                s.flush().await?;
            }
            Stream::Gone => return Err(ConnError::Closed),
        }
        Ok(())
    }

    /// Runs the TLS handshake on this connection: right after connecting (implicit TLS) or after
    /// the server accepted STARTTLS/STLS.
    pub async fn start_tls(&mut self, setup: &TlsSetup) -> Result<TlsInfo, ConnError> {
        // RFC 3207 §4.2 / RFC 2595 §3.1: nothing received before the handshake may be used
        // after it. Bytes already here were sent in clear, possibly injected by a third party.
        if self.buf.pending() > 0 {
            return Err(ConnError::Injection(self.buf.pending()));
        }
        let tcp = match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Plain(tcp) => tcp,
            other => {
                self.stream = other;
                return Err(ConnError::AlreadyTls);
            }
        };
        let tls = setup
            .connector
            .connect(setup.name.clone(), tcp)
            .await
            .map_err(|e| handshake_error(&e, &setup.name.to_str()))?;
        let info = tls_info(tls.get_ref().1, setup.verified);
        tracing::debug!(version = %info.version, "TLS established");
        self.stream = Stream::Tls(Box::new(tls));
        Ok(info)
    }
}

/// Acknowledge what arrives at once instead of after the 40 ms delayed-ACK timer. A server
/// that writes one reply in two segments (OpenSSL sends TLS 1.3 session tickets apart from
/// Postfix's next reply) has Nagle hold the second until the first is acknowledged; a probe
/// that waits for that reply would stall. Linux clears the flag as it goes, so it is set
/// before every read; failure to set it only costs time.
fn quickack(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_cut_by_the_server_is_transient_and_a_tls_error_is_not() {
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        let cut = handshake_error(&eof, "mx");
        assert!(cut.is_transient(), "{cut}");
        assert!(cut.to_string().contains("closed"), "{cut}");
        let bad = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let refused = handshake_error(&bad, "mx");
        assert!(!refused.is_transient(), "{refused}");
    }
}
