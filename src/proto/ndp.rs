//! IPv6 neighbour discovery (RFC 4861) as the virtual-IP takeover uses it: the duplicate address
//! detection probe of RFC 4862 §5.4.2 (a neighbour solicitation from `::`), the unsolicited
//! neighbour advertisement with the override flag of RFC 4861 §7.2.6 that moves neighbours' cache
//! entries to us, and the rule that says which heard message means "taken".
//!
//! Whole Ethernet frames (IPv6 header and ICMPv6 checksum included) are built here, because the
//! probe must come from the unspecified address, which a raw ICMPv6 socket cannot send from.

use std::net::Ipv6Addr;

use super::ether::{self, ETHERTYPE_IPV6, Mac};

const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// RFC 4861 §7.1: receivers drop neighbour discovery messages whose hop limit is not 255, so that
/// they cannot come from off-link.
const HOP_LIMIT: u8 = 255;
const TYPE_SOLICITATION: u8 = 135;
const TYPE_ADVERTISEMENT: u8 = 136;
const OPTION_TARGET_LINK_ADDRESS: u8 = 2;

/// Advertisement flag R: the sender is a router.
pub const FLAG_ROUTER: u8 = 0x80;
/// Advertisement flag S: this answers a solicitation.
pub const FLAG_SOLICITED: u8 = 0x40;
/// Advertisement flag O: replace the link-layer address a neighbour has cached.
pub const FLAG_OVERRIDE: u8 = 0x20;

/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast group of `address` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let o = address.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet group address an IPv6 multicast address maps to (RFC 2464 §7): 33:33 followed
/// by its last 32 bits.
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The duplicate address detection probe for `target`: a neighbour solicitation from `::` to the
/// target's solicited-node group, with no source link-layer address option (RFC 4861 §7.1.1
/// forbids one from `::`). A holder answers with an advertisement to all nodes.
pub fn dad_probe(own: Mac, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let mut icmp = vec![TYPE_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    frame(
        own,
        multicast_mac(group),
        Ipv6Addr::UNSPECIFIED,
        group,
        icmp,
    )
}

/// An unsolicited neighbour advertisement for `target` to all nodes, with the override flag and
/// our MAC as target link-layer address, so neighbours that have an entry for the address replace
/// the old MAC (RFC 4861 §7.2.6, §7.2.5). Its source is the target itself, as Linux does when it
/// answers a probe for one of its addresses.
pub fn unsolicited_advertisement(own: Mac, target: Ipv6Addr) -> Vec<u8> {
    unsolicited_advertisement_for(own, own, target)
}

/// The same advertisement on behalf of `holder`: its MAC in the target link-layer address
/// option, the frame sent from `own` (a forged Ethernet source would teach switches that the
/// holder's MAC sits on our port).
pub fn unsolicited_advertisement_for(own: Mac, holder: Mac, target: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![TYPE_ADVERTISEMENT, 0, 0, 0, FLAG_OVERRIDE, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[OPTION_TARGET_LINK_ADDRESS, 1]);
    icmp.extend_from_slice(&holder.0);
    frame(own, multicast_mac(ALL_NODES), target, ALL_NODES, icmp)
}

/// Wraps an ICMPv6 message (checksum field zero) in IPv6 and Ethernet, filling in the checksum.
fn frame(own: Mac, to: Mac, source: Ipv6Addr, destination: Ipv6Addr, mut icmp: Vec<u8>) -> Vec<u8> {
    let sum = checksum(source, destination, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = Vec::with_capacity(ether::HEADER_LEN + IPV6_HEADER_LEN + icmp.len());
    ether::write_header(&mut f, to, own, ETHERTYPE_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    // Neighbour discovery messages are a few dozen bytes; the cast cannot truncate.
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[NEXT_HEADER_ICMPV6, HOP_LIMIT]);
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&destination.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The ICMPv6 checksum (RFC 4443 §2.3): the one's complement sum over the pseudo-header of
/// RFC 8200 §8.1 and the message. With the checksum field zeroed it gives the value to write;
/// over a received message it gives 0 when the checksum is right.
fn checksum(source: Ipv6Addr, destination: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |&lo| u64::from(lo));
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above leaves at most 16 bits.
    !(sum as u16)
}

/// A neighbour discovery message heard on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// The Ethernet source of the frame.
    pub from: Mac,
    /// The IPv6 source address (`::` for a duplicate address detection probe).
    pub source: Ipv6Addr,
    /// What it says.
    pub message: Message,
}

/// The two neighbour discovery messages the takeover cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// "Who has `target`?" (type 135).
    Solicitation { target: Ipv6Addr },
    /// "`target` is at `target_mac`" (type 136).
    Advertisement {
        target: Ipv6Addr,
        /// R, S and O in the top three bits ([`FLAG_ROUTER`], ...).
        flags: u8,
        /// The target link-layer address option, if present.
        target_mac: Option<Mac>,
    },
}

/// Parses a received Ethernet frame; `None` unless it is a well-formed neighbour solicitation or
/// advertisement: IPv6 with ICMPv6 as the next header, hop limit 255 and a correct checksum.
pub fn parse(frame: &[u8]) -> Option<Heard> {
    let (header, ip) = ether::parse(frame)?;
    if header.ethertype != ETHERTYPE_IPV6 || ip.len() < IPV6_HEADER_LEN || ip[0] >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if ip[6] != NEXT_HEADER_ICMPV6 || ip[7] != HOP_LIMIT {
        return None;
    }
    let addr = |i: usize| -> Option<Ipv6Addr> {
        let octets: [u8; 16] = ip.get(i..i + 16)?.try_into().ok()?;
        Some(Ipv6Addr::from(octets))
    };
    let (source, destination) = (addr(8)?, addr(24)?);
    let icmp = ip.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len)?;
    if icmp.len() < 24 || icmp[1] != 0 || checksum(source, destination, icmp) != 0 {
        return None;
    }
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[8..24]).ok()?);
    let message = match icmp[0] {
        TYPE_SOLICITATION => Message::Solicitation { target },
        TYPE_ADVERTISEMENT => Message::Advertisement {
            target,
            flags: icmp[4] & (FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE),
            target_mac: link_address_option(&icmp[24..], OPTION_TARGET_LINK_ADDRESS)?,
        },
        _ => return None,
    };
    Some(Heard {
        from: header.source,
        source,
        message,
    })
}

/// Finds an Ethernet link-layer address option of `kind`. `None` if the options are malformed
/// (a zero length, RFC 4861 §4.6, makes the whole message invalid), `Some(None)` if absent.
fn link_address_option(mut options: &[u8], kind: u8) -> Option<Option<Mac>> {
    let mut found = None;
    while !options.is_empty() {
        let len = usize::from(*options.get(1)?) * 8;
        if len == 0 || len > options.len() {
            return None;
        }
        let (option, rest) = options.split_at(len);
        if option[0] == kind {
            found = Some(Mac(option.get(2..8)?.try_into().ok()?));
        }
        options = rest;
    }
    Some(found)
}

/// Whether a message heard while probing for `address` means someone else has it, and who.
///
/// An advertisement for the address is the holder answering our probe (or announcing itself);
/// a duplicate address detection probe for it from another MAC means another host is about to
/// take it (RFC 4862 §5.4.3), which we also treat as taken. Our own frames never count.
pub fn conflict(heard: &Heard, address: Ipv6Addr, own: Mac) -> Option<Mac> {
    let probes = heard.from != own
        && matches!(heard.message, Message::Solicitation { target }
            if target == address && heard.source == Ipv6Addr::UNSPECIFIED);
    holder(heard, address, own).or(probes.then_some(heard.from))
}

/// Who, if anyone, this message shows holding `address`: an advertisement for it from another
/// MAC. Another host's duplicate address detection probe is not a holder (see [`conflict`]).
pub fn holder(heard: &Heard, address: Ipv6Addr, own: Mac) -> Option<Mac> {
    if heard.from == own {
        return None;
    }
    match heard.message {
        Message::Advertisement {
            target, target_mac, ..
        } if target == address => Some(target_mac.unwrap_or(heard.from)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const A: Mac = Mac([2, 0, 0, 0, 0, 0x0a]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);

    /// What Linux 6.x sent from 02:00:00:00:00:0b, which holds fd00::1, when 02:..:0a probed for
    /// it (captured from a packet socket in a network namespace).
    const KERNEL_NA: &str = "33330000000102000000000b86dd6000000000203afffd0000000000000000000000\
                             00000001ff02000000000000000000000000000188005a9120000000fd00000000000\
                             0000000000000000001020102000000000b";

    /// Linux's own duplicate address detection probe for fd00::1:2:3 from 02:..:0a, with the
    /// RFC 7527 nonce option.
    const KERNEL_DAD: &str = "3333ff02000302000000000a86dd6000000000203aff0000000000000000000000\
                              0000000000ff0200000000000000000001ff0200038700886c00000000fd00000000\
                              00000000000001000200030e01ffead8dd0e5e";

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn our_advertisement_is_byte_for_byte_what_linux_sends() {
        assert_eq!(
            unsolicited_advertisement(B, ip("fd00::1")),
            hex(KERNEL_NA),
            "same addresses, flags (override only), option and checksum"
        );
    }

    #[test]
    fn an_advertisement_on_behalf_of_another_host_leaves_from_our_mac() {
        let f = unsolicited_advertisement_for(A, B, ip("fd00::1"));
        assert_eq!(&f[6..12], &A.0, "Ethernet source: the sending host");
        assert_eq!(
            &f[f.len() - 6..],
            &B.0,
            "target link-layer address: the holder"
        );
        // The same bytes but the source MAC as the holder's own advertisement.
        let mut own = unsolicited_advertisement(B, ip("fd00::1"));
        own[6..12].copy_from_slice(&A.0);
        assert_eq!(f, own);
    }

    #[test]
    fn parses_kernel_messages() {
        let na = parse(&hex(KERNEL_NA)).unwrap();
        assert_eq!(na.from, B);
        assert_eq!(na.source, ip("fd00::1"));
        assert_eq!(
            na.message,
            Message::Advertisement {
                target: ip("fd00::1"),
                flags: FLAG_OVERRIDE,
                target_mac: Some(B)
            }
        );
        let ns = parse(&hex(KERNEL_DAD)).unwrap();
        assert_eq!(ns.from, A);
        assert_eq!(ns.source, Ipv6Addr::UNSPECIFIED);
        assert_eq!(
            ns.message,
            Message::Solicitation {
                target: ip("fd00::1:2:3")
            }
        );
    }

    #[test]
    fn our_probe_matches_linux_up_to_the_nonce() {
        let ours = dad_probe(A, ip("fd00::1:2:3"));
        let kernel = hex(KERNEL_DAD);
        assert_eq!(ours.len(), 14 + 40 + 24);
        assert_eq!(ours[..18], kernel[..18], "Ethernet and IPv6 first word");
        assert_eq!(ours[19], 24, "payload length without the nonce option");
        assert_eq!(
            ours[20..54],
            kernel[20..54],
            "next header, hop limit, :: and group"
        );
        assert_eq!(ours[54], 135);
        assert_eq!(ours[58..78], kernel[58..78], "reserved and target");
        let heard = parse(&ours).unwrap();
        assert_eq!(heard.source, Ipv6Addr::UNSPECIFIED);
        assert_eq!(
            heard.message,
            Message::Solicitation {
                target: ip("fd00::1:2:3")
            }
        );
    }

    #[test]
    fn multicast_mapping() {
        assert_eq!(solicited_node(ip("fd77:1::100")), ip("ff02::1:ff00:100"));
        assert_eq!(
            multicast_mac(ip("ff02::1:ff00:100")),
            Mac([0x33, 0x33, 0xff, 0, 1, 0])
        );
    }

    #[test]
    fn refuses_damaged_or_foreign_frames() {
        let good = hex(KERNEL_NA);
        let mut bad_sum = good.clone();
        bad_sum[57] ^= 1;
        assert!(parse(&bad_sum).is_none(), "checksum");
        let mut hop = good.clone();
        hop[21] = 64;
        assert!(parse(&hop).is_none(), "hop limit must be 255");
        let mut udp = good.clone();
        udp[20] = 17;
        assert!(parse(&udp).is_none(), "not ICMPv6");
        assert!(parse(&good[..good.len() - 1]).is_none(), "truncated");
        let mut zero_option = good.clone();
        zero_option[79] = 0;
        let sum = checksum(ip("fd00::1"), ALL_NODES, &{
            let mut m = zero_option[54..].to_vec();
            m[2..4].copy_from_slice(&[0, 0]);
            m
        });
        zero_option[56..58].copy_from_slice(&sum.to_be_bytes());
        assert!(parse(&zero_option).is_none(), "option of length 0");
        let mut echo = dad_probe(A, ip("fd00::1"));
        echo[54] = 128;
        assert!(parse(&echo).is_none(), "echo request");
    }

    #[test]
    fn conflicts() {
        let vip = ip("fd00::1");
        let holder_na = parse(&hex(KERNEL_NA)).unwrap();
        assert_eq!(conflict(&holder_na, vip, A), Some(B));
        assert_eq!(conflict(&holder_na, vip, B), None, "our own advertisement");
        assert_eq!(
            conflict(&holder_na, ip("fd00::2"), A),
            None,
            "another address"
        );
        let probe = parse(&dad_probe(A, vip)).unwrap();
        assert_eq!(conflict(&probe, vip, B), Some(A), "someone else probing");
        assert_eq!(conflict(&probe, vip, A), None, "our own probe");
        assert_eq!(
            holder(&holder_na, vip, A),
            Some(B),
            "counting holders: the answer"
        );
        assert_eq!(
            holder(&probe, vip, B),
            None,
            "counting holders: not a second prober"
        );
        // An ordinary solicitation (from a real address) is a neighbour asking, not holding.
        let asking = Heard {
            from: A,
            source: ip("fd00::10"),
            message: Message::Solicitation { target: vip },
        };
        assert_eq!(conflict(&asking, vip, B), None);
        // Without a target link-layer option the frame's source names the holder.
        let bare = Heard {
            from: A,
            source: vip,
            message: Message::Advertisement {
                target: vip,
                flags: FLAG_SOLICITED,
                target_mac: None,
            },
        };
        assert_eq!(conflict(&bare, vip, B), Some(A));
    }
}
