//! ARP for IPv4 over Ethernet (RFC 826) as the virtual-IP takeover uses it: the RFC 5227 probe
//! that asks "does anyone hold this address?", the gratuitous announcement that moves every
//! neighbour's cache entry to us, and the rule that says which heard frame means "taken".
//!
//! Frames are built and parsed here with no socket; `takeover::vip` sends and receives them.

use std::net::Ipv4Addr;

use super::ether::{self, ETHERTYPE_ARP, Mac};

/// Length of an ARP packet for IPv4 over Ethernet (hlen 6, plen 4).
pub const PACKET_LEN: usize = 28;

/// Length of a whole frame as we send it: header plus packet (the NIC pads to 60 bytes).
pub const FRAME_LEN: usize = ether::HEADER_LEN + PACKET_LEN;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// ARP REQUEST (1): what probes and `arping -U` announcements send.
    Request,
    /// ARP REPLY (2): `arping -A`; some switches only learn from replies (resource-agents#977).
    Reply,
}

impl Op {
    fn code(self) -> u16 {
        match self {
            Op::Request => 1,
            Op::Reply => 2,
        }
    }
}

/// One ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: Op,
    /// SHA: the MAC of the station the packet speaks for.
    pub sender_mac: Mac,
    /// SPA: its IPv4 address; 0.0.0.0 in a probe.
    pub sender_ip: Ipv4Addr,
    /// THA: the MAC asked about or answered to; zero in a request.
    pub target_mac: Mac,
    /// TPA: the IPv4 address asked about or answered to.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// An ARP probe (RFC 5227 §2.1.1): a request from our MAC with sender IP 0.0.0.0, so that no
    /// neighbour caches anything from it, asking for `address`.
    pub fn probe(own: Mac, address: Ipv4Addr) -> Arp {
        Arp {
            op: Op::Request,
            sender_mac: own,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: Mac::ZERO,
            target_ip: address,
        }
    }

    /// An ordinary request, "who has `address`? tell `sender`" (what `arping` without `-D`
    /// sends): the holder answers as it does to a probe, but no host probing for the address
    /// at the same time mistakes it for a rival probe (RFC 5227 §2.1.1 makes a probe from
    /// another host a conflict; a request from a real sender address is not one).
    pub fn request(own: Mac, sender: Ipv4Addr, address: Ipv4Addr) -> Arp {
        Arp {
            sender_ip: sender,
            ..Arp::probe(own, address)
        }
    }

    /// A gratuitous ARP announcing that `address` is at `own` (RFC 5227 §2.3): sender IP and target
    /// IP are both the address. Linux counts a *reply* as gratuitous only when its target MAC
    /// equals its sender MAC (`arp_is_garp` in net/ipv4/arp.c), so a reply carries our MAC there
    /// too; a request carries zero, as RFC 5227 asks.
    pub fn announcement(own: Mac, address: Ipv4Addr, op: Op) -> Arp {
        Arp {
            op,
            sender_mac: own,
            sender_ip: address,
            target_mac: match op {
                Op::Request => Mac::ZERO,
                Op::Reply => own,
            },
            target_ip: address,
        }
    }

    /// The Ethernet frame carrying this packet, from the sender MAC to `destination`.
    pub fn to_frame(&self, destination: Mac) -> Vec<u8> {
        self.to_frame_from(self.sender_mac, destination)
    }

    /// The Ethernet frame carrying this packet from `source`, which may differ from the sender
    /// MAC: a host announcing another host's address sends from its own MAC, so that switches
    /// keep learning the other host's MAC on the other host's port.
    pub fn to_frame_from(&self, source: Mac, destination: Mac) -> Vec<u8> {
        let mut f = Vec::with_capacity(FRAME_LEN);
        ether::write_header(&mut f, destination, source, ETHERTYPE_ARP);
        f.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        f.extend_from_slice(&PTYPE_IPV4.to_be_bytes());
        f.extend_from_slice(&[6, 4]);
        f.extend_from_slice(&self.op.code().to_be_bytes());
        f.extend_from_slice(&self.sender_mac.0);
        f.extend_from_slice(&self.sender_ip.octets());
        f.extend_from_slice(&self.target_mac.0);
        f.extend_from_slice(&self.target_ip.octets());
        f
    }

    /// Parses a received Ethernet frame; `None` unless it is an IPv4-over-Ethernet ARP request or
    /// reply (trailing padding is fine).
    pub fn parse(frame: &[u8]) -> Option<Arp> {
        let (header, p) = ether::parse(frame)?;
        if header.ethertype != ETHERTYPE_ARP || p.len() < PACKET_LEN {
            return None;
        }
        let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
        if u16_at(0) != HTYPE_ETHERNET || u16_at(2) != PTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
            return None;
        }
        let op = match u16_at(6) {
            1 => Op::Request,
            2 => Op::Reply,
            _ => return None,
        };
        let mac = |i: usize| -> Option<Mac> { Some(Mac(p[i..i + 6].try_into().ok()?)) };
        let ip = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
        Some(Arp {
            op,
            sender_mac: mac(8)?,
            sender_ip: ip(14),
            target_mac: mac(18)?,
            target_ip: ip(24),
        })
    }
}

/// Whether a packet heard while probing for `address` means someone else has it, and who.
///
/// RFC 5227 §2.1.1: any ARP request or reply whose sender IP is the address means it is in use
/// (the holder's answer to our probe, or its own announcement); a probe from another MAC for the
/// same address means another host wants it right now (a second backup taking over), which we
/// also treat as taken. Our own frames never count: `own` is our interface's MAC.
pub fn conflict(arp: &Arp, address: Ipv4Addr, own: Mac) -> Option<Mac> {
    let probes = arp.sender_mac != own
        && arp.op == Op::Request
        && arp.sender_ip == Ipv4Addr::UNSPECIFIED
        && arp.target_ip == address;
    holder(arp, address, own).or(probes.then_some(arp.sender_mac))
}

/// Who, if anyone, this frame shows holding `address`: a request or reply from another MAC
/// whose sender IP is the address (an answer to a probe, or an announcement). Unlike
/// [`conflict`], another host's probe for the address is not a holder: two hosts asking "who
/// holds it?" at once must not count each other.
pub fn holder(arp: &Arp, address: Ipv4Addr, own: Mac) -> Option<Mac> {
    (arp.sender_mac != own && arp.sender_ip == address).then_some(arp.sender_mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: Mac = Mac([0x02, 0, 0, 0x77, 1, 0x12]);
    const OTHER: Mac = Mac([0x02, 0, 0, 0x77, 1, 0x11]);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 100);

    #[test]
    fn probe_frame_bytes() {
        let f = Arp::probe(OWN, VIP).to_frame(Mac::BROADCAST);
        let expected: Vec<u8> = [
            &[0xff; 6][..],                  // to everyone
            &OWN.0,                          // from us
            &[0x08, 0x06],                   // ARP
            &[0, 1, 0x08, 0x00, 6, 4, 0, 1], // Ethernet/IPv4, request
            &OWN.0,                          // sender MAC
            &[0, 0, 0, 0],                   // sender IP 0.0.0.0 (RFC 5227 §2.1.1)
            &[0; 6],                         // target MAC unknown
            &[10, 77, 1, 100],               // target IP
        ]
        .concat();
        assert_eq!(f, expected);
        assert_eq!(f.len(), FRAME_LEN);
    }

    #[test]
    fn announcement_frames() {
        let req = Arp::announcement(OWN, VIP, Op::Request).to_frame(Mac::BROADCAST);
        assert_eq!(&req[20..22], &[0, 1]);
        assert_eq!(&req[28..32], &VIP.octets()); // sender IP
        assert_eq!(&req[32..38], &[0; 6]);
        assert_eq!(&req[38..42], &VIP.octets()); // target IP
        let rep = Arp::announcement(OWN, VIP, Op::Reply).to_frame(Mac::BROADCAST);
        assert_eq!(&rep[20..22], &[0, 2]);
        assert_eq!(
            &rep[32..38],
            &OWN.0,
            "Linux needs tha == sha for a gratuitous reply"
        );
    }

    #[test]
    fn an_announcement_on_behalf_of_another_host_leaves_from_our_mac() {
        let f = Arp::announcement(OTHER, VIP, Op::Request).to_frame_from(OWN, Mac::BROADCAST);
        assert_eq!(&f[6..12], &OWN.0, "Ethernet source: the sending host");
        assert_eq!(
            &f[22..28],
            &OTHER.0,
            "ARP sender MAC: the host it speaks for"
        );
        assert_eq!(Arp::parse(&f).map(|a| a.sender_mac), Some(OTHER));
    }

    #[test]
    fn parse_round_trip_with_padding() {
        let arp = Arp::announcement(OTHER, VIP, Op::Reply);
        let mut f = arp.to_frame(OWN);
        f.resize(60, 0);
        assert_eq!(Arp::parse(&f), Some(arp));
    }

    #[test]
    fn parse_refuses_other_frames() {
        let f = Arp::probe(OWN, VIP).to_frame(Mac::BROADCAST);
        assert!(Arp::parse(&f[..41]).is_none(), "truncated");
        let mut ipv6 = f.clone();
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert!(Arp::parse(&ipv6).is_none(), "not ARP");
        let mut op3 = f.clone();
        op3[21] = 3;
        assert!(Arp::parse(&op3).is_none(), "RARP request");
        let mut plen = f.clone();
        plen[19] = 16;
        assert!(Arp::parse(&plen).is_none(), "not IPv4");
        assert!(Arp::parse(&[]).is_none());
    }

    #[test]
    fn holder_reply_is_a_conflict() {
        // What Linux answers to a probe: a reply from the VIP, to our MAC and 0.0.0.0.
        let reply = Arp {
            op: Op::Reply,
            sender_mac: OTHER,
            sender_ip: VIP,
            target_mac: OWN,
            target_ip: Ipv4Addr::UNSPECIFIED,
        };
        assert_eq!(conflict(&reply, VIP, OWN), Some(OTHER));
        let garp = Arp::announcement(OTHER, VIP, Op::Request);
        assert_eq!(conflict(&garp, VIP, OWN), Some(OTHER));
        let their_probe = Arp::probe(OTHER, VIP);
        assert_eq!(conflict(&their_probe, VIP, OWN), Some(OTHER));
        // Counting holders: the answer and the announcement hold it, a second prober does not.
        assert_eq!(holder(&reply, VIP, OWN), Some(OTHER));
        assert_eq!(holder(&garp, VIP, OWN), Some(OTHER));
        assert_eq!(holder(&their_probe, VIP, OWN), None);
        assert_eq!(holder(&reply, VIP, OTHER), None, "our own answer");
        // Asking from a real address is not a rival probe for a host taking the address.
        let asking = Arp::request(OTHER, Ipv4Addr::new(10, 77, 1, 12), VIP);
        assert_eq!(conflict(&asking, VIP, OWN), None);
        assert_eq!(asking.target_ip, VIP);
    }

    #[test]
    fn unrelated_or_own_frames_are_not() {
        assert_eq!(conflict(&Arp::probe(OWN, VIP), VIP, OWN), None);
        let own_garp = Arp::announcement(OWN, VIP, Op::Request);
        assert_eq!(conflict(&own_garp, VIP, OWN), None);
        // Someone merely asking who has the VIP (from their own address) does not hold it.
        let question = Arp {
            op: Op::Request,
            sender_mac: OTHER,
            sender_ip: Ipv4Addr::new(10, 77, 1, 10),
            target_mac: Mac::ZERO,
            target_ip: VIP,
        };
        assert_eq!(conflict(&question, VIP, OWN), None);
        let other_address = Arp::announcement(OTHER, Ipv4Addr::new(10, 77, 1, 11), Op::Request);
        assert_eq!(conflict(&other_address, VIP, OWN), None);
    }
}
