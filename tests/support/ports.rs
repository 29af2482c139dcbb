//! Free loopback ports for the servers under test.
//!
//! Why not just "bind 127.0.0.1:0 and release": that hands out ports from the kernel's
//! ephemeral range, where every outgoing loopback connection (ours and other test processes')
//! also takes its local port, so the port can be taken again before the server binds it. We
//! probe random ports *below* the ephemeral range instead, check TCP and UDP are both free
//! (BIND needs both), and never hand the same port out twice, in this process or in any other
//! test process running at the same time.
//!
//! Across processes (cargo-nextest runs each test in its own, several at once): a port handed
//! out is one whose lock file under [`LOCK_DIR`] this process holds an exclusive `flock` on,
//! until it exits. Between one process's check and its server's bind, another process cannot
//! take the lock, so it never picks that port. The kernel drops the locks when the process
//! ends, crash or not, so nothing is left to clean up; the empty files stay for the next run.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fs::{self, File, TryLockError};
use std::hash::BuildHasher;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// Ports below Linux's default ephemeral range (32768–60999) and above well-known services.
const RANGE: std::ops::Range<u16> = 20000..32000;

/// One lock file per port handed out, shared by every test process on the machine.
const LOCK_DIR: &str = "/tmp/posta-test-ports";

/// The ports this process handed out, with their held lock files (never closed: the locks
/// last as long as the process).
static HANDED_OUT: Mutex<Option<HashMap<u16, File>>> = Mutex::new(None);

/// A loopback port that is free for TCP and UDP right now and not handed out yet, here or
/// in another test process that is still running.
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashMap::new);
    fs::create_dir_all(LOCK_DIR).unwrap_or_else(|e| panic!("failed to create {LOCK_DIR}: {e}"));
    let random = RandomState::new();
    for attempt in 0u64..10_000 {
        let span = u64::from(RANGE.end - RANGE.start);
        let port = RANGE.start + (random.hash_one(attempt) % span) as u16;
        if handed.contains_key(&port) {
            continue;
        }
        if let Some(lock) = claim(port)
            && is_free(port)
        {
            handed.insert(port, lock);
            return port;
        }
    }
    panic!("no free loopback port in {RANGE:?}");
}

/// `port`'s lock file, locked by this process; `None` while another process holds it.
fn claim(port: u16) -> Option<File> {
    let path = format!("{LOCK_DIR}/{port}");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("failed to open {path}: {e}"));
    match file.try_lock() {
        Ok(()) => Some(file),
        Err(TryLockError::WouldBlock) => None,
        Err(TryLockError::Error(e)) => panic!("failed to lock {path}: {e}"),
    }
}

/// `n` distinct free ports.
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| free_port())
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}
