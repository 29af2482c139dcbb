//! Ethernet II framing (IEEE 802.3 with an EtherType) for the frames the virtual-IP takeover sends
//! and hears: just the 14-byte header and a MAC address type that prints the way `ip link` does.

use std::fmt;

/// Length of an Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;

/// EtherType of ARP (RFC 826).
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// EtherType of IPv6 (RFC 2464).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A 48-bit Ethernet (MAC) address; displays as `02:00:5e:10:00:01`, like `ip link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff, every station on the link.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00, "unknown" in an ARP request's target hardware address.
    pub const ZERO: Mac = Mac([0; 6]);

    /// The six octets, first transmitted first.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this is a group (multicast or broadcast) address: the I/G bit of the first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl From<[u8; 6]> for Mac {
    fn from(octets: [u8; 6]) -> Mac {
        Mac(octets)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The header of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Who the frame is for (a station, a multicast group or everyone).
    pub destination: Mac,
    /// The station that sent it.
    pub source: Mac,
    /// What the payload is ([`ETHERTYPE_ARP`], [`ETHERTYPE_IPV6`], ...).
    pub ethertype: u16,
}

/// Appends a header to `frame`.
pub fn write_header(frame: &mut Vec<u8>, destination: Mac, source: Mac, ethertype: u16) {
    frame.extend_from_slice(&destination.0);
    frame.extend_from_slice(&source.0);
    frame.extend_from_slice(&ethertype.to_be_bytes());
}

/// Splits a frame into its header and payload; `None` if it is shorter than a header. The payload
/// may carry the padding that brings short frames to Ethernet's 60-byte minimum.
pub fn parse(frame: &[u8]) -> Option<(Header, &[u8])> {
    let (head, payload) = frame.split_at_checked(HEADER_LEN)?;
    let header = Header {
        destination: Mac(head[0..6].try_into().ok()?),
        source: Mac(head[6..12].try_into().ok()?),
        ethertype: u16::from_be_bytes([head[12], head[13]]),
    };
    Some((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_displays_like_ip_link() {
        assert_eq!(
            Mac([0x02, 0, 0x5e, 0x10, 0xab, 0x01]).to_string(),
            "02:00:5e:10:ab:01"
        );
        assert!(Mac::BROADCAST.is_multicast());
        assert!(Mac([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!Mac([0x02, 0, 0, 0, 0, 1]).is_multicast());
    }

    #[test]
    fn header_round_trip() {
        let mut f = Vec::new();
        write_header(
            &mut f,
            Mac::BROADCAST,
            Mac([2, 0, 0, 0, 0, 1]),
            ETHERTYPE_ARP,
        );
        f.extend_from_slice(b"payload");
        let (h, payload) = parse(&f).unwrap();
        assert_eq!(h.destination, Mac::BROADCAST);
        assert_eq!(h.source, Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(h.ethertype, ETHERTYPE_ARP);
        assert_eq!(payload, b"payload");
        assert!(parse(&f[..13]).is_none());
    }
}
