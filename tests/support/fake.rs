//! In-process misbehaving servers on 127.0.0.1:0 for failure-path tests: a tarpit that
//! accepts and never speaks (probe timeouts), and a dropper that greets and hangs up
//! (half-dead servers). std threads, so they work with or without a tokio runtime.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Accepts connections and keeps them open without ever writing a byte.
pub struct Tarpit(Fake);

/// Writes a fixed greeting to each connection, then closes it.
pub struct Dropper(Fake);

impl Tarpit {
    pub fn start() -> Tarpit {
        let mut held = Vec::new();
        Tarpit(Fake::start(move |stream| held.push(stream)))
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }
}

impl Dropper {
    pub fn start(greeting: &[u8]) -> Dropper {
        let greeting = greeting.to_vec();
        Dropper(Fake::start(move |mut stream| {
            let _ = stream.write_all(&greeting);
            let _ = stream.shutdown(Shutdown::Both);
        }))
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }
}

/// A nonblocking accept loop polled every 10 ms so Drop can stop it without a wake-up trick.
/// Also the listener of [`super::socketmap::SocketMap`].
pub(super) struct Fake {
    pub(super) port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    pub(super) fn start(mut on_accept: impl FnMut(TcpStream) + Send + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("failed to bind fake server");
        listener
            .set_nonblocking(true)
            .expect("failed to make listener nonblocking");
        let port = listener.local_addr().expect("no local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        on_accept(stream);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            // Dropping `on_accept` here closes any connections a tarpit still holds.
        });
        Fake {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
