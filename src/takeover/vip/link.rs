//! The interface a virtual IP lives on, and a raw packet socket bound to it (AF_PACKET,
//! packet(7)) that sends and hears whole Ethernet frames of one EtherType.
//!
//! Everything here is opened in the calling thread's network namespace, and stays there: a
//! socket keeps its namespace wherever the task using it later runs.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{LinkAddr, MsgFlags};
use socket2::{Domain, Protocol, Socket, Type};

use super::VipError;
use crate::proto::ether::Mac;

/// `sll_pkttype` of a frame this host sent, looped back to packet sockets (<linux/if_packet.h>).
const PACKET_OUTGOING: u8 = 4;

/// An Ethernet interface: what ARP and neighbour discovery need to know about it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub mac: Mac,
    /// Its AF_PACKET address as getifaddrs(3) reports it: index, hardware type and MAC.
    address: LinkAddr,
}

/// Finds `interface` by name. getifaddrs(3) reports every link with an AF_PACKET address that
/// holds its index and MAC, which is also the one safe way to get a `sockaddr_ll` to send to
/// (nix has no public constructor for one, nix-rust/nix#2059).
pub(super) fn lookup(interface: &str) -> Result<Link, VipError> {
    let entries = nix::ifaddrs::getifaddrs().map_err(|e| VipError::Interfaces {
        interface: interface.to_string(),
        source: e.into(),
    })?;
    let address = entries
        .filter(|entry| entry.interface_name == interface)
        .find_map(|entry| entry.address.and_then(|a| a.as_link_addr().copied()))
        .ok_or_else(|| VipError::NoInterface {
            interface: interface.to_string(),
        })?;
    let not_ethernet = || VipError::NotEthernet {
        interface: interface.to_string(),
    };
    if address.hatype() != nix::libc::ARPHRD_ETHER {
        return Err(not_ethernet());
    }
    let mac = address.addr().ok_or_else(not_ethernet)?;
    Ok(Link {
        mac: Mac(mac),
        address,
    })
}

/// An IPv4 address of `interface` in `not`'s subnet (`prefix`) other than `not` itself: the
/// sender address for asking who holds `not` without probing for it. `None` when it has none
/// (or the list cannot be read).
pub(super) fn other_ipv4(interface: &str, not: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|entry| entry.interface_name == interface)
        .filter_map(|entry| entry.address?.as_sockaddr_in().map(|a| a.ip()))
        .find(|ip| *ip != not && same_subnet(*ip, not, prefix))
}

/// Whether `a` and `b` share their first `prefix` bits.
pub(super) fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

/// The index of `interface`, which need not be Ethernet for address changes.
pub(super) fn index(interface: &str) -> Result<u32, VipError> {
    nix::net::if_::if_nametoindex(interface).map_err(|e| match e {
        Errno::ENODEV => VipError::NoInterface {
            interface: interface.to_string(),
        },
        other => VipError::Interfaces {
            interface: interface.to_string(),
            source: other.into(),
        },
    })
}

/// The name of the interface with `index`, for messages; the index itself if it has vanished.
pub(super) fn name_of(index: u32) -> String {
    nix::net::if_::if_indextoname(index)
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| format!("#{index}"))
}

/// A packet socket for one interface (and, to listen, one EtherType). Blocking: tokio's safe way to
/// poll a raw descriptor (`AsyncFd::new`) is deprecated as unsound since tokio 1.54 and its
/// replacement is `unsafe`, which this crate forbids; so receiving runs on a blocking thread
/// (`spawn_blocking`) with a receive timeout, and sending, which only queues a frame of a few
/// dozen bytes, happens inline under a send timeout.
#[derive(Debug)]
pub(super) struct LinkSocket {
    socket: Socket,
    /// The interface's AF_PACKET address: where frames go, and the index received ones must have.
    address: LinkAddr,
}

/// How long a send may block before it fails: a full transmit queue on a dead link.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

impl LinkSocket {
    /// A socket that only sends. Protocol 0 registers no receive hook, so nothing is queued.
    pub fn sender(link: &Link) -> io::Result<LinkSocket> {
        LinkSocket::open(link, 0)
    }

    /// A socket that also hears every frame of `ethertype` (and only those) on the interface.
    pub fn listener(link: &Link, ethertype: u16) -> io::Result<LinkSocket> {
        LinkSocket::open(link, ethertype)
    }

    /// Needs CAP_NET_RAW. The socket is deliberately not bound: binding a packet socket that
    /// already listens re-registers its hook behind synchronize_net(), an RCU grace period that
    /// cost 10-20 ms on a busy host. Frames go out with sendto(2) to the interface's address
    /// instead, and received frames are filtered by interface in [`LinkSocket::recv_until`].
    fn open(link: &Link, ethertype: u16) -> io::Result<LinkSocket> {
        // packet(7): the protocol is the EtherType in network byte order.
        let protocol = Protocol::from(i32::from(ethertype.to_be()));
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(protocol))?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(LinkSocket {
            socket,
            address: link.address,
        })
    }

    /// Sends one whole frame, Ethernet header included.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // With SOCK_RAW only the interface index of the address matters: the frame carries its
        // own Ethernet header, and its EtherType is read from there.
        let sent = nix::sys::socket::sendto(
            self.socket.as_raw_fd(),
            frame,
            &self.address,
            MsgFlags::empty(),
        )?;
        if sent == frame.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "sent {sent} of {} bytes of a frame",
                frame.len()
            )))
        }
    }

    /// Blocks until another host's frame arrives on this interface (`Some(length)`) or until
    /// `deadline` (`None`). Frames of other interfaces are skipped, and so are frames this host
    /// sent, which come back to packet sockets as PACKET_OUTGOING.
    pub fn recv_until(&self, buf: &mut [u8], deadline: Instant) -> io::Result<Option<usize>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // A zero timeout would mean "forever"; a sub-microsecond rest is rounded up.
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_micros(1))))?;
            match nix::sys::socket::recvfrom::<LinkAddr>(self.socket.as_raw_fd(), buf) {
                Ok((len, from)) => {
                    if from.is_some_and(|a| {
                        a.ifindex() == self.address.ifindex() && a.pkttype() != PACKET_OUTGOING
                    }) {
                        return Ok(Some(len.min(buf.len())));
                    }
                }
                // The timeout expired (EAGAIN) or a signal interrupted: look at the clock again.
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
