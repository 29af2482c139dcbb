//! Free loopback ports for the servers under test.
//!
//! Why not just "bind 127.0.0.1:0 and release": that hands out ports from the kernel's
//! ephemeral range, where every outgoing loopback connection (ours and other test processes')
//! also takes its local port, so the port can be taken again before the server binds it. We
//! probe random ports *below* the ephemeral range instead, check TCP and UDP are both free
//! (BIND needs both), and never hand the same port out twice in this process.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// Ports below Linux's default ephemeral range (32768–60999) and above well-known services.
const RANGE: std::ops::Range<u16> = 20000..32000;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that is free for TCP and UDP right now and not yet handed out here.
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    let random = RandomState::new();
    for attempt in 0u64..10_000 {
        let span = u64::from(RANGE.end - RANGE.start);
        let port = RANGE.start + (random.hash_one(attempt) % span) as u16;
        if !handed.contains(&port) && is_free(port) {
            handed.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {RANGE:?}");
}

/// `n` distinct free ports.
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| free_port())
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}
