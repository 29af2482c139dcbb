//! What can go wrong moving a virtual IP, worded so the operator knows what to do next.

use std::io;

/// A failed virtual-IP operation. Every message names the address or the interface.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    /// The virtual IP or the probe/announce settings cannot be used as given.
    #[error("invalid virtual ip {vip}: {reason}")]
    Invalid { vip: String, reason: String },
    /// No interface of that name in this network namespace.
    #[error("interface {interface} not found")]
    NoInterface { interface: String },
    /// The interface has no 6-byte hardware address (loopback, tunnels): ARP cannot run there.
    #[error(
        "interface {interface} is not an ethernet interface: arp and neighbour discovery need one"
    )]
    NotEthernet { interface: String },
    /// Listing the interfaces (getifaddrs(3), if_nametoindex(3)) failed.
    #[error("failed to look up interface {interface}: {source}")]
    Interfaces {
        interface: String,
        source: io::Error,
    },
    /// The address is on the interface already, with another prefix length: adding ours would
    /// configure it twice, removing it would remove something we did not add.
    #[error(
        "{address} is already on {interface} as {address}/{configured}, not /{wanted}: \
         remove it or use /{configured}"
    )]
    PrefixMismatch {
        address: String,
        interface: String,
        configured: u8,
        wanted: u8,
    },
    /// The address is configured on another interface of this host.
    #[error("{address} is already on interface {other}, not {interface}: remove it there first")]
    OtherInterface {
        address: String,
        interface: String,
        other: String,
    },
    /// A netlink request (address dump, add, delete) failed.
    #[error("failed to {action} {vip}: {source}{}", hint(.source, "CAP_NET_ADMIN"))]
    Netlink {
        action: &'static str,
        vip: String,
        source: io::Error,
    },
    /// A raw link-layer socket (ARP or neighbour discovery frames) failed.
    #[error("failed to {action} on {interface}: {source}{}", hint(.source, "CAP_NET_RAW"))]
    Link {
        action: &'static str,
        interface: String,
        source: io::Error,
    },
    /// The background second announcement burst panicked or was cancelled.
    #[error("the second announcement burst for {vip} did not complete: {reason}")]
    Unfinished { vip: String, reason: String },
}

impl VipError {
    /// The kernel refused for lack of privilege: the operator must run as root, or grant the
    /// binary CAP_NET_ADMIN (address changes) and CAP_NET_RAW (ARP/NDP frames).
    pub fn is_permission(&self) -> bool {
        match self {
            VipError::Netlink { source, .. } | VipError::Link { source, .. } => {
                is_permission(source)
            }
            _ => false,
        }
    }
}

fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == nix::libc::EPERM || code == nix::libc::EACCES)
}

fn hint(e: &io::Error, capability: &str) -> String {
    if is_permission(e) {
        format!(" (run as root or with {capability})")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_say_what_to_do() {
        let e = VipError::Netlink {
            action: "add",
            vip: "10.0.0.5/24 on eth0".into(),
            source: io::Error::from_raw_os_error(nix::libc::EPERM),
        };
        assert!(e.is_permission());
        assert_eq!(
            e.to_string(),
            "failed to add 10.0.0.5/24 on eth0: Operation not permitted (os error 1) \
             (run as root or with CAP_NET_ADMIN)"
        );
        let e = VipError::Link {
            action: "open an arp socket",
            interface: "eth0".into(),
            source: io::Error::from_raw_os_error(nix::libc::ENETDOWN),
        };
        assert!(!e.is_permission());
        assert_eq!(
            e.to_string(),
            "failed to open an arp socket on eth0: Network is down (os error 100)"
        );
    }
}
