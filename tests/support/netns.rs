//! A LAN in network namespaces for the virtual-IP tests: a client, mailserver1 (`ms1`) and
//! mailserver2 (`ms2`), each with an `eth0` veth into one bridge in a fourth (hub) namespace.
//! Everything is created fresh under unique names and deleted on `Drop`; the root namespace's
//! interfaces and routes are never touched.
//!
//! Addresses: 10.77.X.0/24 and fd77:X::/64 with X unique per LAN in this process (different
//! LANs cannot see each other anyway, but distinct subnets keep captures and logs readable).
//! Hosts are .10/::10 (client), .11/::11 (ms1), .12/::12 (ms2); the virtual IP is .100/::100.
//! MACs are fixed, 02:77:X:00:00:HH with HH the host number, so assertions can name them.
//!
//! In-process library calls run on a dedicated thread that has joined the namespace
//! ([`Netns::block_on`]); sockets opened there stay in it. [`Greeter`] is a real TCP listener on
//! port 25 answering with an SMTP greeting that names its server. Needs root, like
//! `ip netns add`; facts in docs/test-servers.md.

use std::fs;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sched::CloneFlags;

use super::sys::{require_root, require_tool, run, unique_name};

/// The SMTP port the greeters listen on, inside their own namespaces.
pub const SMTP_PORT: u16 = 25;

/// A named network namespace (`/run/netns/NAME`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Netns {
        run(Command::new(require_tool("ip")).args(["netns", "add", &name]));
        Netns { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args...`; panics with the output if it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        run(Command::new(require_tool("ip"))
            .args(["-n", &self.name])
            .args(args))
    }

    /// Runs `f` on a fresh thread that has joined this namespace, and returns its result.
    pub fn run<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let thread = thread::spawn(move || {
            let ns = fs::File::open(&path).unwrap_or_else(|e| panic!("failed to open {path}: {e}"));
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("failed to join network namespace {path}: {e}"));
            f()
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Runs an async closure on a current-thread tokio runtime inside this namespace; tasks it
    /// spawns run there too and are cancelled when it returns.
    pub fn block_on<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.run(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("failed to build a tokio runtime")
                .block_on(f())
        })
    }

    /// Writes a sysctl under /proc/sys/net, which belongs to the namespace of the writing thread.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = value.to_string();
        self.run(move || {
            fs::write(&path, &value).unwrap_or_else(|e| panic!("failed to write {path}: {e}"))
        });
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new(require_tool("ip"))
            .args(["netns", "del", &self.name])
            .output();
        if let Ok(out) = out
            && !out.status.success()
        {
            eprintln!(
                "failed to delete network namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A host on the LAN: its namespace and `eth0`'s addresses.
#[derive(Debug)]
pub struct Host {
    pub role: &'static str,
    pub ns: Netns,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    /// `eth0`'s MAC as `ip` prints it.
    pub mac: String,
}

impl Host {
    /// The interface every host has on the LAN.
    pub const INTERFACE: &'static str = "eth0";

    /// The MAC this host's neighbour entry for `address` holds (`ip neigh show`), if any.
    pub fn neighbour(&self, address: IpAddr) -> Option<String> {
        let out = self.ns.ip(&[
            "neigh",
            "show",
            &address.to_string(),
            "dev",
            Self::INTERFACE,
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_string)
    }

    /// The whole `ip neigh show` line for `address`, for assertion messages.
    pub fn neighbour_line(&self, address: IpAddr) -> String {
        let out = self.ns.ip(&[
            "neigh",
            "show",
            &address.to_string(),
            "dev",
            Self::INTERFACE,
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Overwrites this host's neighbour entry (`nud stale`, so announcements may replace it).
    pub fn set_neighbour(&self, address: IpAddr, mac: &str) {
        self.ns.ip(&[
            "neigh",
            "replace",
            &address.to_string(),
            "lladdr",
            mac,
            "dev",
            Self::INTERFACE,
            "nud",
            "stale",
        ]);
    }

    /// Takes `eth0` down: the host is gone from the LAN but keeps its addresses (IPv6 too, see
    /// `keep_addr_on_down` in [`Lan::new`]).
    pub fn link_down(&self) {
        self.ns.ip(&["link", "set", Self::INTERFACE, "down"]);
    }

    pub fn link_up(&self) {
        self.ns.ip(&["link", "set", Self::INTERFACE, "up"]);
    }

    /// Connects to `address`:25 from this host and returns the first line the server sends,
    /// then says QUIT; `Err` with the reason if nothing answers within 2 s.
    pub fn smtp_greeting(&self, address: IpAddr) -> Result<String, String> {
        self.ns.run(move || {
            let to = SocketAddr::new(address, SMTP_PORT);
            let timeout = Duration::from_secs(2);
            let stream = TcpStream::connect_timeout(&to, timeout)
                .map_err(|e| format!("failed to connect to {to}: {e}"))?;
            stream
                .set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("no greeting from {to}: {e}"))?;
            let _ = (&stream).write_all(b"QUIT\r\n");
            Ok(line.trim_end().to_string())
        })
    }

    /// Starts an SMTP greeter on every address of this host (port 25, IPv4 and IPv6), like a
    /// mail server listening on 0.0.0.0: it answers on the virtual IP whenever the host holds it.
    pub fn greeter(&self) -> Greeter {
        Greeter::start(&self.ns, self.role)
    }
}

/// A minimal SMTP server: `220 <role> ESMTP posta-test`, 250 to EHLO/HELO, 221 to QUIT.
pub struct Greeter {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Greeter {
    fn start(ns: &Netns, role: &'static str) -> Greeter {
        let stop = Arc::new(AtomicBool::new(false));
        let (bound, listening) = mpsc::channel();
        let path = format!("/run/netns/{}", ns.name());
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let joined = fs::File::open(&path)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())
                });
            // [::]:25 also accepts IPv4 (net.ipv6.bindv6only is 0 in a fresh namespace).
            let listener = joined.and_then(|()| {
                let l = TcpListener::bind(("::", SMTP_PORT)).map_err(|e| e.to_string())?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok(l)
            });
            let listener = match listener {
                Ok(l) => {
                    let _ = bound.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = bound.send(Err(e));
                    return;
                }
            };
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, role),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("greeter {role} failed to accept: {e}"),
                }
            }
        });
        match listening.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("greeter {role} failed to listen on port {SMTP_PORT}: {e}"),
            Err(_) => panic!("greeter {role} thread died before listening"),
        }
        Greeter {
            stop,
            thread: Some(thread),
        }
    }
}

fn serve(stream: TcpStream, role: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut writer = &stream;
    if writer
        .write_all(format!("220 {role} ESMTP posta-test\r\n").as_bytes())
        .is_err()
    {
        return;
    }
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "QUIT" => "221 2.0.0 bye\r\n".to_string(),
            "EHLO" | "HELO" => format!("250 {role}\r\n"),
            _ => "502 5.5.2 not implemented\r\n".to_string(),
        };
        if writer.write_all(reply.as_bytes()).is_err() || verb == "QUIT" {
            return;
        }
        line.clear();
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The three hosts on one bridge. Dropped hosts first, then the hub with the bridge.
#[derive(Debug)]
pub struct Lan {
    pub client: Host,
    pub ms1: Host,
    pub ms2: Host,
    /// The virtual IPv4 address, .100 on the LAN.
    pub vip4: Ipv4Addr,
    /// The virtual IPv6 address, ::100 on the LAN.
    pub vip6: Ipv6Addr,
    pub subnet: u8,
    hub: Netns,
}

impl Lan {
    pub fn new() -> Lan {
        Lan::named("posta-lan")
    }

    /// Like [`Lan::new`], with namespaces named `PREFIX-PID-N-ROLE`: a test file that must not
    /// collide with others running at the same time gives its own prefix.
    pub fn named(prefix: &str) -> Lan {
        require_root();
        let subnet = next_subnet();
        let tag = unique_name(prefix);
        let hub = Netns::create(format!("{tag}-hub"));
        // No STP and no forwarding delay: ports forward at once. No multicast snooping: neighbour
        // discovery multicasts reach every port without an MLD querier on the LAN.
        hub.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ]);
        hub.ip(&["link", "set", "br0", "up"]);
        let host = |role: &'static str, n: u8| {
            let ns = Netns::create(format!("{tag}-{role}"));
            // Without kernel DAD the test addresses are usable as soon as they are added.
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
            // A link going down keeps its IPv6 addresses, as it keeps IPv4 ones: a server that
            // drops off the LAN comes back with its configuration.
            ns.sysctl("net.ipv6.conf.default.keep_addr_on_down", "1");
            ns.sysctl("net.ipv6.conf.all.keep_addr_on_down", "1");
            ns.ip(&["link", "set", "lo", "up"]);
            let port = format!("v-{role}");
            hub.ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                Host::INTERFACE,
                "netns",
                ns.name(),
            ]);
            hub.ip(&["link", "set", &port, "master", "br0"]);
            hub.ip(&["link", "set", &port, "up"]);
            let mac = format!("02:77:{subnet:02x}:00:00:{n:02x}");
            let ipv4 = Ipv4Addr::new(10, 77, subnet, n);
            let ipv6 = Ipv6Addr::new(0xfd77, u16::from(subnet), 0, 0, 0, 0, 0, u16::from(n));
            ns.ip(&["link", "set", Host::INTERFACE, "address", &mac]);
            ns.ip(&["addr", "add", &format!("{ipv4}/24"), "dev", Host::INTERFACE]);
            ns.ip(&[
                "addr",
                "add",
                &format!("{ipv6}/64"),
                "dev",
                Host::INTERFACE,
                "nodad",
            ]);
            ns.ip(&["link", "set", Host::INTERFACE, "up"]);
            Host {
                role,
                ns,
                ipv4,
                ipv6,
                mac,
            }
        };
        Lan {
            client: host("client", 10),
            ms1: host("ms1", 11),
            ms2: host("ms2", 12),
            vip4: Ipv4Addr::new(10, 77, subnet, 100),
            vip6: Ipv6Addr::new(0xfd77, u16::from(subnet), 0, 0, 0, 0, 0, 0x100),
            subnet,
            hub,
        }
    }

    /// The hub namespace holding the bridge `br0`.
    pub fn hub(&self) -> &Netns {
        &self.hub
    }
}

/// X in 10.77.X.0/24: distinct for up to 254 LANs in one test process.
fn next_subnet() -> u8 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id();
    // In 1..=254 by construction.
    (n % 254 + 1) as u8
}
