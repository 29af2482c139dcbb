//! Address changes over rtnetlink (rtnetlink(7)): dump, add with label and prefix, delete. Each
//! call opens its own netlink socket in the calling thread's network namespace.
//!
//! Idempotency is decided from a dump before changing anything, and the kernel's answer still
//! wins a race: EEXIST on add means already there, EADDRNOTAVAIL on delete means not there.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::{AddressMessageBuilder, Handle};

use super::link;
use super::{Change, Vip, VipError};

/// One configured instance of an address, from the dump.
#[derive(Debug, Clone, Copy)]
struct Configured {
    index: u32,
    prefix: u8,
    flags: AddressFlags,
}

impl Configured {
    /// Usable for traffic: an IPv6 address still in (or failed) duplicate address detection is
    /// on the interface but answers nothing.
    fn usable(&self) -> bool {
        !self
            .flags
            .intersects(AddressFlags::Tentative | AddressFlags::Dadfailed)
    }
}

/// Whether the address is on the interface with this prefix and usable.
pub(super) async fn present(vip: &Vip) -> Result<bool, VipError> {
    vip.check()?;
    let index = link::index(&vip.interface)?;
    let found = configured(&connect(vip)?, vip).await?;
    Ok(found
        .iter()
        .any(|c| c.index == index && c.prefix == vip.prefix && c.usable()))
}

/// Adds the address; `AlreadyThere` if it is on the interface with this prefix already.
pub(super) async fn add(vip: &Vip) -> Result<Change, VipError> {
    vip.check()?;
    let index = link::index(&vip.interface)?;
    let handle = connect(vip)?;
    if let Some(existing) = mine(vip, index, &configured(&handle, vip).await?)? {
        tracing::debug!(%vip, flags = ?existing.flags, "address already configured");
        return Ok(Change::AlreadyThere);
    }
    let mut request = handle.address().add(index, vip.address, vip.prefix);
    let message = request.message_mut();
    if let Some(label) = &vip.label {
        message
            .attributes
            .push(AddressAttribute::Label(label.clone()));
    }
    if vip.address.is_ipv6() {
        // Our own probe has just looked for a holder; kernel DAD would keep the address
        // tentative, unusable, for another second or more. keepalived adds VIPs nodad too.
        message.header.flags |= AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match request.execute().await.map_err(to_io) {
        Ok(()) => Ok(Change::Done),
        Err(e) if e.raw_os_error() == Some(nix::libc::EEXIST) => Ok(Change::AlreadyThere),
        Err(source) => Err(netlink_error("add", vip, source)),
    }
}

/// Removes the address; `NotThere` if it is not on the interface.
pub(super) async fn remove(vip: &Vip) -> Result<Change, VipError> {
    vip.check()?;
    let index = link::index(&vip.interface)?;
    let handle = connect(vip)?;
    let found = configured(&handle, vip).await?;
    let Some(existing) = found.iter().find(|c| c.index == index) else {
        return Ok(Change::NotThere);
    };
    if existing.prefix != vip.prefix {
        return Err(mismatch(vip, existing.prefix));
    }
    let message = match vip.address {
        IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, vip.prefix)
            .build(),
        IpAddr::V6(ip) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(ip, vip.prefix)
            .build(),
    };
    match handle.address().del(message).execute().await.map_err(to_io) {
        Ok(()) => Ok(Change::Done),
        Err(e) if e.raw_os_error() == Some(nix::libc::EADDRNOTAVAIL) => Ok(Change::NotThere),
        Err(source) => Err(netlink_error("remove", vip, source)),
    }
}

/// The existing instance on our interface, if any; an error if it has another prefix or the
/// address lives on another interface of this host.
fn mine(vip: &Vip, index: u32, found: &[Configured]) -> Result<Option<Configured>, VipError> {
    if let Some(here) = found.iter().find(|c| c.index == index) {
        return if here.prefix == vip.prefix {
            Ok(Some(*here))
        } else {
            Err(mismatch(vip, here.prefix))
        };
    }
    match found.first() {
        Some(elsewhere) => Err(VipError::OtherInterface {
            address: vip.address.to_string(),
            interface: vip.interface.clone(),
            other: link::name_of(elsewhere.index),
        }),
        None => Ok(None),
    }
}

fn mismatch(vip: &Vip, configured: u8) -> VipError {
    VipError::PrefixMismatch {
        address: vip.address.to_string(),
        interface: vip.interface.clone(),
        configured,
        wanted: vip.prefix,
    }
}

fn connect(vip: &Vip) -> Result<Handle, VipError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| netlink_error("open netlink for", vip, e))?;
    // Ends by itself once every handle is dropped.
    tokio::spawn(connection);
    Ok(handle)
}

/// Every interface's instance of the address, from one dump of its family.
async fn configured(handle: &Handle, vip: &Vip) -> Result<Vec<Configured>, VipError> {
    let mut request = handle.address().get();
    request.message_mut().header.family = match vip.address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let mut dump = request.execute();
    let mut found = Vec::new();
    while let Some(message) = dump
        .try_next()
        .await
        .map_err(|e| netlink_error("list addresses to find", vip, to_io(e)))?
    {
        if local_address(&message) == Some(vip.address) {
            found.push(Configured {
                index: message.header.index,
                prefix: message.header.prefix_len,
                flags: flags(&message),
            });
        }
    }
    Ok(found)
}

/// The host's own address in a dumped message: IFA_LOCAL when present (IPv4; with a peer, IFA_ADDRESS is the
/// peer's), else IFA_ADDRESS (IPv6), as ip-address(8) reads it.
fn local_address(message: &AddressMessage) -> Option<IpAddr> {
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}

/// IFA_FLAGS (32 bits) when present, else the header's 8-bit flags.
fn flags(message: &AddressMessage) -> AddressFlags {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Flags(f) => Some(*f),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(message.header.flags.bits())))
}

/// The kernel's errno as an io::Error; other rtnetlink failures keep their text.
fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn netlink_error(action: &'static str, vip: &Vip, source: io::Error) -> VipError {
    VipError::Netlink {
        action,
        vip: vip.to_string(),
        source,
    }
}
