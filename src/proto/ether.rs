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

/// Reads `02:00:5e:10:00:01` (either case), as [`Mac`] displays and `ip link` prints it.
impl std::str::FromStr for Mac {
    type Err = BadMac;

    fn from_str(text: &str) -> Result<Mac, BadMac> {
        let bad = || BadMac(text.to_string());
        let mut octets = [0u8; 6];
        let mut parts = text.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            Some(_) => Err(bad()),
            None => Ok(Mac(octets)),
        }
    }
}

/// Text that is not a MAC address written as six colon-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (six hex octets separated by colons)")]
pub struct BadMac(pub String);

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
    fn mac_text_round_trips_and_bad_text_is_refused() {
        let mac: Mac = "02:77:0A:00:00:0b".parse().unwrap();
        assert_eq!(mac, Mac([2, 0x77, 10, 0, 0, 11]));
        assert_eq!(mac.to_string().parse::<Mac>(), Ok(mac));
        for bad in [
            "",
            "02:77:0a:00:00",
            "02:77:0a:00:00:0b:0c",
            "2:77:0a:00:00:0b",
            "zz:77:0a:00:00:0b",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

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
