//! "The address is here now": bursts of gratuitous ARP (IPv4) or unsolicited neighbour
//! advertisements (IPv6), the second burst in the background.

use std::net::IpAddr;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::link::{self, LinkSocket};
use super::{AnnounceMode, AnnounceSettings, Vip, VipError};
use crate::proto::ether::Mac;
use crate::proto::{arp, ndp};

/// The background part of an announcement: the second burst, if one was asked for.
///
/// Dropping it leaves the burst running for as long as the tokio runtime lives; a command about
/// to exit should [`finish`](Announcement::finish) it first, or the runtime's shutdown cancels it.
#[derive(Debug)]
#[must_use = "the second burst is cancelled when the runtime shuts down: await finish() before exiting"]
pub struct Announcement {
    vip: String,
    second: Option<JoinHandle<Result<(), VipError>>>,
}

impl Announcement {
    /// Whether a second burst was scheduled and has not completed yet.
    pub fn is_pending(&self) -> bool {
        self.second.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Waits for the second burst (at once if there is none) and returns how it went.
    pub async fn finish(self) -> Result<(), VipError> {
        match self.second {
            None => Ok(()),
            Some(handle) => handle.await.map_err(|e| VipError::Unfinished {
                vip: self.vip,
                reason: e.to_string(),
            })?,
        }
    }

    /// Cancels the second burst, e.g. because the address is being removed again.
    pub fn cancel(self) {
        if let Some(handle) = self.second {
            handle.abort();
        }
    }
}

/// Announces the address at `holder`'s MAC, this interface's own when `None`; the frames
/// always leave from this interface's MAC.
pub(super) async fn announce(
    vip: &Vip,
    settings: &AnnounceSettings,
    holder: Option<Mac>,
) -> Result<Announcement, VipError> {
    vip.check()?;
    settings.check(vip)?;
    let link = link::lookup(&vip.interface)?;
    let holder = holder.unwrap_or(link.mac);
    let frame = match vip.address {
        IpAddr::V4(ip) => {
            let op = match settings.mode {
                AnnounceMode::Request => arp::Op::Request,
                AnnounceMode::Reply => arp::Op::Reply,
            };
            let garp = arp::Arp::announcement(holder, ip, op);
            garp.to_frame_from(link.mac, Mac::BROADCAST)
        }
        IpAddr::V6(ip) => ndp::unsolicited_advertisement_for(link.mac, holder, ip),
    };
    let socket = LinkSocket::sender(&link).map_err(|source| VipError::Link {
        action: "open a raw socket for announcing",
        interface: vip.interface.clone(),
        source,
    })?;
    let start = Instant::now();
    let burst = Burst {
        socket,
        frame,
        count: settings.count,
        interval: settings.interval,
        interface: vip.interface.clone(),
    };
    burst.send(start).await?;
    tracing::debug!(%vip, %holder, count = settings.count, "first announcement burst sent");
    let second = settings.second_burst_after.map(|after| {
        let name = vip.to_string();
        tokio::spawn(async move {
            burst.send(start + after).await?;
            tracing::debug!(vip = %name, "second announcement burst sent");
            Ok(())
        })
    });
    Ok(Announcement {
        vip: vip.to_string(),
        second,
    })
}

/// One frame sent `count` times, `interval` apart. It owns its socket so the second burst can
/// run in a task on any thread while still sending in the namespace it was opened in.
struct Burst {
    socket: LinkSocket,
    frame: Vec<u8>,
    count: u32,
    interval: Duration,
    interface: String,
}

impl Burst {
    async fn send(&self, start: Instant) -> Result<(), VipError> {
        for i in 0..self.count {
            sleep_until(start + self.interval * i).await;
            self.socket
                .send(&self.frame)
                .map_err(|source| VipError::Link {
                    action: "send an announcement",
                    interface: self.interface.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}
