//! "Does anyone hold this address?": RFC 5227 ARP probes for IPv4, duplicate address detection
//! probes (RFC 4862 §5.4.2) for IPv6, and listening for the holder's answer.

use std::net::IpAddr;
use std::time::Instant;

use super::link::{self, LinkSocket};
use super::{ProbeOutcome, ProbeSettings, Vip, VipError};
use crate::proto::ether::{ETHERTYPE_ARP, ETHERTYPE_IPV6, Mac};
use crate::proto::{arp, ndp};

/// Big enough for any frame on a standard-MTU link; longer ones are cut, and are not ARP or
/// neighbour discovery anyway.
const FRAME_BUF: usize = 2048;

pub(super) async fn probe(vip: &Vip, settings: &ProbeSettings) -> Result<ProbeOutcome, VipError> {
    let heard = run(vip, settings, Listen::FirstConflict).await?;
    Ok(match heard.first() {
        Some(&mac) => ProbeOutcome::Held { mac },
        None => ProbeOutcome::Free,
    })
}

/// Every other MAC that answers for the address within the whole probe window, each once, in
/// the order heard.
pub(super) async fn answering(vip: &Vip, settings: &ProbeSettings) -> Result<Vec<Mac>, VipError> {
    run(vip, settings, Listen::EveryHolder).await
}

/// What a probe listens for, and whether the first one ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    /// Before taking the address: any holder, or another host probing for it at the same time,
    /// is enough to refuse, so the first ends the probe.
    FirstConflict,
    /// Counting holders: answers only (two hosts probing at once must not count each other),
    /// collected until the window ends, so a duplicate shows as two MACs.
    EveryHolder,
}

async fn run(vip: &Vip, settings: &ProbeSettings, mode: Listen) -> Result<Vec<Mac>, VipError> {
    vip.check()?;
    settings.check(vip)?;
    let link = link::lookup(&vip.interface)?;
    if settings.count == 0 && settings.wait.is_zero() {
        return Ok(Vec::new());
    }
    let (ethertype, frame) = match vip.address {
        IpAddr::V4(ip) => {
            // Counting holders asks from this host's own address when it has one: the watch
            // asks every round, and an RFC 5227 probe (sender 0.0.0.0) would make a takeover
            // or reclaim probing at the same moment on another host see a rival and refuse.
            let sender = match mode {
                Listen::EveryHolder => link::other_ipv4(&vip.interface, ip, vip.prefix),
                Listen::FirstConflict => None,
            };
            let arp = match sender {
                Some(sender) => arp::Arp::request(link.mac, sender, ip),
                None => arp::Arp::probe(link.mac, ip),
            };
            (ETHERTYPE_ARP, arp.to_frame(Mac::BROADCAST))
        }
        IpAddr::V6(ip) => (ETHERTYPE_IPV6, ndp::dad_probe(link.mac, ip)),
    };
    // Opened here, in the caller's network namespace; the blocking thread inherits none.
    let socket = LinkSocket::listener(&link, ethertype).map_err(|source| VipError::Link {
        action: "open a raw socket for probing",
        interface: vip.interface.clone(),
        source,
    })?;
    let (vip, settings) = (vip.clone(), *settings);
    let interface = vip.interface.clone();
    // If the caller gives up, the thread still runs to the probe's end (200 ms by default).
    tokio::task::spawn_blocking(move || listen(&socket, &frame, &vip, &settings, link.mac, mode))
        .await
        .map_err(|e| VipError::Link {
            action: "run the probe",
            interface,
            source: std::io::Error::other(e.to_string()),
        })?
}

/// Sends `count` probes `interval` apart and listens from before the first until `wait` after
/// the last; with [`Listen::FirstConflict`] the first answer ends it.
fn listen(
    socket: &LinkSocket,
    frame: &[u8],
    vip: &Vip,
    settings: &ProbeSettings,
    own: Mac,
    mode: Listen,
) -> Result<Vec<Mac>, VipError> {
    let link_error = |action, source| VipError::Link {
        action,
        interface: vip.interface.clone(),
        source,
    };
    let start = Instant::now();
    let deadline = start + settings.duration();
    let mut buf = vec![0; FRAME_BUF];
    let mut sent = 0;
    let mut heard: Vec<Mac> = Vec::new();
    loop {
        let next = if sent < settings.count {
            start + settings.interval * sent
        } else {
            deadline
        };
        match socket
            .recv_until(&mut buf, next)
            .map_err(|e| link_error("receive frames", e))?
        {
            Some(len) => {
                if let Some(mac) = answer(vip.address, &buf[..len], own, mode)
                    && !heard.contains(&mac)
                {
                    tracing::debug!(%vip, %mac, sent, "probe answered: address held");
                    heard.push(mac);
                    if mode == Listen::FirstConflict {
                        return Ok(heard);
                    }
                }
            }
            None if sent == settings.count => {
                tracing::debug!(%vip, sent, answers = heard.len(), "probe window over");
                return Ok(heard);
            }
            None => {
                socket
                    .send(frame)
                    .map_err(|e| link_error("send a probe", e))?;
                sent += 1;
            }
        }
    }
}

/// Who, if anyone, this frame says holds (or, for [`Listen::FirstConflict`], wants) the address.
fn answer(address: IpAddr, frame: &[u8], own: Mac, mode: Listen) -> Option<Mac> {
    match (address, mode) {
        (IpAddr::V4(ip), Listen::FirstConflict) => arp::conflict(&arp::Arp::parse(frame)?, ip, own),
        (IpAddr::V4(ip), Listen::EveryHolder) => arp::holder(&arp::Arp::parse(frame)?, ip, own),
        (IpAddr::V6(ip), Listen::FirstConflict) => ndp::conflict(&ndp::parse(frame)?, ip, own),
        (IpAddr::V6(ip), Listen::EveryHolder) => ndp::holder(&ndp::parse(frame)?, ip, own),
    }
}
