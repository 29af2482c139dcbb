//! Virtual-IP takeover mechanics: probe for a holder, add or remove the address, announce it.
//!
//! The takeover on mailserver2 is [`probe`] (refuse if [`ProbeOutcome::Held`]), [`add`],
//! [`announce`]; failback is [`remove`] there, then [`holders`] to see mailserver1 answer and
//! [`announce_for`] with mailserver1's MAC so clients' caches move back at once; on
//! mailserver1, `--reclaim` (or its own watch) does [`add`] and [`announce`] itself. Every step
//! is idempotent.
//!
//! Why each step exists (docs/failover.md §1):
//! - The probe is RFC 5227's, which none of keepalived, ucarp or IPaddr2 (`run_arping` is off)
//!   do before adding: if mailserver1 still answers for the address, taking it would give the
//!   LAN two holders. The default is fast for a LAN (200 ms); [`ProbeSettings::RFC5227`] is the
//!   RFC's own, slow timing. RFC 5227's random initial delay (PROBE_WAIT) is left out on purpose:
//!   it avoids synchronised probes among many booting hosts, not a problem one operator has.
//! - Linux sends no gratuitous ARP when an address is added, so neighbours keep mailserver1's
//!   MAC until their entries expire; the announcement bursts (keepalived's 5 + 5 after 5 s,
//!   IPaddr2's 5 × 200 ms) move them within one frame.
//!
//! Frames are built in [`crate::proto::arp`] and [`crate::proto::ndp`] and sent on AF_PACKET
//! sockets; addresses change over rtnetlink. Each call opens its sockets in the calling thread's
//! network namespace. Needs CAP_NET_ADMIN and CAP_NET_RAW ([`VipError::is_permission`]).

mod announce;
mod error;
pub mod holders;
mod link;
mod netlink;
mod probe;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use crate::proto::ether::Mac;
pub use announce::Announcement;
pub use error::VipError;
pub use holders::{Holders, Who, holders};

/// Longest interface name Linux accepts (IFNAMSIZ - 1); labels share the limit.
const MAX_NAME: usize = 15;
/// Bounds that keep every computed instant finite and catch settings typed in the wrong unit.
const MAX_PROBES: u32 = 100;
const MAX_ANNOUNCEMENTS: u32 = 1000;
const MAX_STEP: Duration = Duration::from_secs(60);
const MAX_SECOND_BURST_DELAY: Duration = Duration::from_secs(3600);

/// A virtual IP: the address mailserver1 answers on and mailserver2 takes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// A unicast IPv4 or IPv6 address.
    pub address: IpAddr,
    /// Prefix length it is configured with (at most 32 for IPv4, 128 for IPv6).
    pub prefix: u8,
    /// The Ethernet interface it lives on, e.g. `eth0`.
    pub interface: String,
    /// IPv4 only: an ifconfig-style alias label such as `eth0:mail` (IFA_LABEL); it must start
    /// with the interface name, as ip-address(8) requires, and fit in 15 bytes.
    pub label: Option<String>,
}

impl Vip {
    /// A checked virtual IP.
    pub fn new(
        address: IpAddr,
        prefix: u8,
        interface: impl Into<String>,
        label: Option<String>,
    ) -> Result<Vip, VipError> {
        let vip = Vip {
            address,
            prefix,
            interface: interface.into(),
            label,
        };
        vip.check()?;
        Ok(vip)
    }

    /// Refuses what the kernel would refuse or misread. Every operation calls it, since the
    /// fields are public.
    pub fn check(&self) -> Result<(), VipError> {
        let (max_prefix, unicast) = match self.address {
            IpAddr::V4(ip) => (
                32,
                !(ip.is_unspecified()
                    || ip.is_multicast()
                    || ip.is_broadcast()
                    || ip.is_loopback()),
            ),
            IpAddr::V6(ip) => (
                128,
                !(ip.is_unspecified() || ip.is_multicast() || ip.is_loopback()),
            ),
        };
        if !unicast {
            return Err(self.invalid("not a unicast address a host can hold"));
        }
        if self.prefix > max_prefix {
            return Err(self.invalid(format!("prefix longer than /{max_prefix}")));
        }
        if self.interface.is_empty() || self.interface.len() > MAX_NAME {
            return Err(self.invalid(format!("interface name must be 1 to {MAX_NAME} bytes")));
        }
        if let Some(label) = &self.label {
            if self.address.is_ipv6() {
                return Err(self.invalid("labels exist for IPv4 addresses only"));
            }
            if !label.starts_with(&self.interface) || label.len() > MAX_NAME {
                return Err(self.invalid(format!(
                    "label {label:?} must start with the interface name and fit in {MAX_NAME} bytes"
                )));
            }
        }
        Ok(())
    }

    fn invalid(&self, reason: impl Into<String>) -> VipError {
        VipError::Invalid {
            vip: self.to_string(),
            reason: reason.into(),
        }
    }
}

/// `10.0.0.25/24 on eth0`, or `... on eth0 (label eth0:mail)`.
impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} on {}", self.address, self.prefix, self.interface)?;
        if let Some(label) = &self.label {
            write!(f, " (label {label})")?;
        }
        Ok(())
    }
}

/// How to probe for a holder before adding the address.
///
/// `count` probes `interval` apart, then `wait` after the last for late answers; an answer at any
/// point ends the probe. `count` 0 sends nothing and only listens for `wait` (for unsolicited
/// announcements), so `count` 0 with `wait` 0 skips the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    pub count: u32,
    pub interval: Duration,
    pub wait: Duration,
}

impl ProbeSettings {
    /// RFC 5227 §1.1's own timing: PROBE_NUM 3 probes, PROBE_MIN 1 s apart, ANNOUNCE_WAIT 2 s.
    /// About 4 s: for links where a holder may answer slowly (busy or bridged Wi-Fi).
    pub const RFC5227: ProbeSettings = ProbeSettings {
        count: 3,
        interval: Duration::from_secs(1),
        wait: Duration::from_secs(2),
    };

    /// How long a probe that hears no answer takes.
    pub fn duration(&self) -> Duration {
        self.interval
            .saturating_mul(self.count.saturating_sub(1))
            .saturating_add(self.wait)
    }

    fn check(&self, vip: &Vip) -> Result<(), VipError> {
        if self.count > MAX_PROBES || self.interval > MAX_STEP || self.wait > MAX_STEP {
            return Err(vip.invalid(format!(
                "probe settings beyond {MAX_PROBES} probes or {}s steps",
                MAX_STEP.as_secs()
            )));
        }
        Ok(())
    }
}

/// A LAN answers an ARP request in well under a millisecond: 3 probes 50 ms apart and 100 ms of
/// waiting after the last (200 ms in all) tolerate a lost frame and a busy holder.
impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            count: 3,
            interval: Duration::from_millis(50),
            wait: Duration::from_millis(100),
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Nobody answered for the address.
    Free,
    /// A host with this MAC answered for the address (or is probing for it at the same time):
    /// mailserver1 still holds it, or another backup is taking it.
    Held { mac: Mac },
}

/// Which ARP operation gratuitous ARP uses (IPv6 advertisements have one form only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnounceMode {
    /// ARP REQUEST, like `arping -U`, keepalived and IPaddr2: every stack updates from it.
    #[default]
    Request,
    /// ARP REPLY, like `arping -A`: for switches that learn only from replies
    /// (resource-agents#977); some networks mishandle it (kube-vip PR #82).
    Reply,
}

/// How to announce the address once it is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceSettings {
    /// Frames per burst.
    pub count: u32,
    /// Time between frames of a burst.
    pub interval: Duration,
    pub mode: AnnounceMode,
    /// When the second burst starts, counted from the start of the first, as keepalived's
    /// `vrrp_garp_master_delay` is; `None` for one burst. It catches neighbours and switches
    /// that missed the first one (a port still coming up, a dropped broadcast).
    pub second_burst_after: Option<Duration>,
}

impl AnnounceSettings {
    fn check(&self, vip: &Vip) -> Result<(), VipError> {
        if self.count > MAX_ANNOUNCEMENTS
            || self.interval > MAX_STEP
            || self
                .second_burst_after
                .is_some_and(|d| d > MAX_SECOND_BURST_DELAY)
        {
            return Err(vip.invalid(format!(
                "announce settings beyond {MAX_ANNOUNCEMENTS} frames, {}s between frames or \
                 {}s before the second burst",
                MAX_STEP.as_secs(),
                MAX_SECOND_BURST_DELAY.as_secs()
            )));
        }
        Ok(())
    }
}

/// IPaddr2's 5 frames 200 ms apart, and keepalived's second burst 5 s later.
impl Default for AnnounceSettings {
    fn default() -> Self {
        AnnounceSettings {
            count: 5,
            interval: Duration::from_millis(200),
            mode: AnnounceMode::Request,
            second_burst_after: Some(Duration::from_secs(5)),
        }
    }
}

/// What an idempotent add or remove did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The address was added or removed just now.
    Done,
    /// Add found the address on the interface with this prefix already.
    AlreadyThere,
    /// Remove found no such address on the interface.
    NotThere,
}

/// Probes for a holder of the address on its interface: RFC 5227 ARP probes from our MAC with
/// sender IP 0.0.0.0 for IPv4, duplicate address detection solicitations from `::` for IPv6.
/// Our own frames are ignored. Needs CAP_NET_RAW.
pub async fn probe(vip: &Vip, settings: &ProbeSettings) -> Result<ProbeOutcome, VipError> {
    probe::probe(vip, settings).await
}

/// Every other host's MAC that answers for the address during the whole probe window, each
/// once: unlike [`probe`], the first answer does not end it, and another host merely probing
/// does not count. For IPv4 the question is an ordinary ARP request from another address of
/// the interface when it has one (sender 0.0.0.0 otherwise): asked every round by the watch,
/// an RFC 5227 probe would look like a rival to a takeover probing at the same moment. IPv6
/// asks with a duplicate address detection probe. Our own frames are ignored. Needs
/// CAP_NET_RAW.
pub async fn answering(vip: &Vip, settings: &ProbeSettings) -> Result<Vec<Mac>, VipError> {
    probe::answering(vip, settings).await
}

/// Whether the address is configured on the interface with this prefix and usable (for IPv6: not
/// tentative, not failed duplicate address detection), from a netlink dump.
pub async fn present(vip: &Vip) -> Result<bool, VipError> {
    netlink::present(vip).await
}

/// Adds the address (prefix, and label if any) to the interface over netlink; IPv6 addresses are
/// added without kernel duplicate address detection, [`probe`] having done it. Idempotent:
/// [`Change::AlreadyThere`] if it is there with this prefix; an error if it is there with another
/// prefix or on another interface. Does not announce. Needs CAP_NET_ADMIN.
pub async fn add(vip: &Vip) -> Result<Change, VipError> {
    netlink::add(vip).await
}

/// Removes the address from the interface over netlink. Idempotent: [`Change::NotThere`] if it
/// is not on the interface; an error if it is there with another prefix. Needs CAP_NET_ADMIN.
pub async fn remove(vip: &Vip) -> Result<Change, VipError> {
    netlink::remove(vip).await
}

/// Announces that the address is at this interface's MAC: gratuitous ARP for IPv4, unsolicited
/// neighbour advertisements with the override flag to all nodes for IPv6. Returns once the first
/// burst is sent; the second runs in a tokio task that the returned [`Announcement`] can await or
/// cancel. Does not check that the address is configured. Needs CAP_NET_RAW.
pub async fn announce(vip: &Vip, settings: &AnnounceSettings) -> Result<Announcement, VipError> {
    announce::announce(vip, settings, None).await
}

/// Announces that the address is at `holder`'s MAC, on its behalf: what mailserver2 sends
/// right after it gives the address back, so that clients' caches move to mailserver1 at once
/// instead of after their entries expire (40 s and more), whether or not anything runs on
/// mailserver1. The ARP sender (or IPv6 target link-layer) address is `holder`; the Ethernet
/// source stays this interface's MAC, since a forged source would teach the switch that
/// `holder` sits on this host's port. The caller must have seen `holder` answer for the
/// address: announcing a MAC that does not hold it would send clients nowhere. Same bursts
/// and background second burst as [`announce`]. Needs CAP_NET_RAW.
pub async fn announce_for(
    vip: &Vip,
    holder: Mac,
    settings: &AnnounceSettings,
) -> Result<Announcement, VipError> {
    announce::announce(vip, settings, Some(holder)).await
}

/// Whether this host is on the VIP's LAN: an IPv4 VIP's interface has another address in its
/// subnet (IPv6: the interface exists). A witness elsewhere would hear nobody answer and
/// report it as if clients did too.
pub fn on_link(vip: &Vip) -> bool {
    match vip.address {
        IpAddr::V4(ip) => link::other_ipv4(&vip.interface, ip, vip.prefix).is_some(),
        IpAddr::V6(_) => link::index(&vip.interface).is_ok(),
    }
}

/// The MAC address of an Ethernet interface in this network namespace.
pub fn interface_mac(interface: &str) -> Result<Mac, VipError> {
    Ok(link::lookup(interface)?.mac)
}

#[cfg(test)]
mod tests;
