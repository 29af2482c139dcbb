//! A scripted in-process server on 127.0.0.1:0 for what real servers will not do on demand
//! (421 mid-transaction, garbage replies, hanging up after the dot). Each script runs in its own
//! task and asserts what the client sent; awaiting the returned handle fails the test if the
//! script panicked. It also records where each read ended, which shows whether the client sent
//! pipelined commands in one write (RFC 2920).
// Each test crate uses a subset.
#![allow(dead_code)]

use std::future::Future;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The server side of one connection.
pub struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    /// Reads once from the socket; returns exactly the bytes that read delivered (empty at EOF,
    /// and on a reset: a client that gives up on a hostile reply may leave it unread).
    pub async fn read_once(&mut self) -> Vec<u8> {
        let mut chunk = vec![0u8; 65536];
        let n = self.stream.read(&mut chunk).await.unwrap_or(0);
        chunk.truncate(n);
        self.buf.extend_from_slice(&chunk);
        chunk
    }

    /// The next line without CRLF; `None` once the client closed the connection.
    pub async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line);
                return Some(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            if self.read_once().await.is_empty() {
                return None;
            }
        }
    }

    /// The next line, which must start with `prefix`.
    pub async fn expect(&mut self, prefix: &str) -> String {
        let line = self.line().await.unwrap_or_default();
        assert!(
            line.starts_with(prefix),
            "fake server expected {prefix:?}, client sent {line:?}"
        );
        line
    }

    /// Whether bytes the client sent are waiting beyond the lines taken so far.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Reads SMTP DATA up to and including the CRLF.CRLF that ends it.
    pub async fn data(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.windows(5).position(|w| w == b"\r\n.\r\n") {
                return self.buf.drain(..i + 5).collect();
            }
            assert!(!self.read_once().await.is_empty(), "client closed in DATA");
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("fake server write");
    }
}

/// Listens on 127.0.0.1:0 and runs `script` on the first connection.
pub async fn serve<F, Fut>(script: F) -> (u16, JoinHandle<()>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake server");
    let port = listener.local_addr().expect("fake server address").port();
    let handle = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("fake server accept");
        script(Peer {
            stream,
            buf: Vec::new(),
        })
        .await;
    });
    (port, handle)
}
