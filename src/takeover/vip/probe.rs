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
    vip.check()?;
    settings.check(vip)?;
    let link = link::lookup(&vip.interface)?;
    if settings.count == 0 && settings.wait.is_zero() {
        return Ok(ProbeOutcome::Free);
    }
    let (ethertype, frame) = match vip.address {
        IpAddr::V4(ip) => (
            ETHERTYPE_ARP,
            arp::Arp::probe(link.mac, ip).to_frame(Mac::BROADCAST),
        ),
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
    tokio::task::spawn_blocking(move || listen(&socket, &frame, &vip, &settings, link.mac))
        .await
        .map_err(|e| VipError::Link {
            action: "run the probe",
            interface,
            source: std::io::Error::other(e.to_string()),
        })?
}

/// Sends `count` probes `interval` apart and listens from before the first until `wait` after
/// the last; the first answer ends it.
fn listen(
    socket: &LinkSocket,
    frame: &[u8],
    vip: &Vip,
    settings: &ProbeSettings,
    own: Mac,
) -> Result<ProbeOutcome, VipError> {
    let link_error = |action, source| VipError::Link {
        action,
        interface: vip.interface.clone(),
        source,
    };
    let start = Instant::now();
    let deadline = start + settings.duration();
    let mut buf = vec![0; FRAME_BUF];
    let mut sent = 0;
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
                if let Some(mac) = conflict(vip.address, &buf[..len], own) {
                    tracing::debug!(%vip, %mac, sent, "probe answered: address held");
                    return Ok(ProbeOutcome::Held { mac });
                }
            }
            None if sent == settings.count => {
                tracing::debug!(%vip, sent, "probe unanswered: address free");
                return Ok(ProbeOutcome::Free);
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

/// Who, if anyone, this frame says holds the address.
fn conflict(address: IpAddr, frame: &[u8], own: Mac) -> Option<Mac> {
    match address {
        IpAddr::V4(ip) => arp::conflict(&arp::Arp::parse(frame)?, ip, own),
        IpAddr::V6(ip) => ndp::conflict(&ndp::parse(frame)?, ip, own),
    }
}
