//! The one place that owns DNS sockets: a message out, the matching reply back.
//!
//! Our own UDP/TCP exchange instead of hickory-net's client streams because those verify the
//! reply's TSIG before handing it over and turn BIND's unsigned NOTAUTH/BADSIG or BADKEY answer
//! (RFC 8945 §5.3.2) into "Please file an issue ... truncated HMACs" with the rcode lost
//! (hickory-dns#1981). Here the caller gets the bytes and
//! decides what to trust.
//!
//! UDP first, retransmitting the same bytes every second (a signed update is resent unchanged,
//! never re-signed into a message with two TSIG records: external-dns#6733); TCP when the request
//! does not fit a 512-byte datagram (external-dns#3836) or the reply comes back truncated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::retry::Backoff;

/// Largest request sent over UDP without EDNS (RFC 1035 §4.2.1).
const UDP_LIMIT: usize = 512;
/// Our advertised UDP reply size for queries (the DNS Flag Day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;
/// Time between UDP retransmissions, ±25 % (nsupdate waits 3 s; loopback and LAN answer in ms).
const RETRY: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).with_jitter(0.25);

/// Why an exchange with a DNS server brought back no reply to read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A request that cannot be sent (empty, not encodable) or a transfer that never ends.
    #[error("{0}")]
    Invalid(String),
    /// No reply within the time allowed (UDP retransmitted meanwhile).
    #[error("no answer from DNS server {server} to the {what} within {after:?}")]
    Timeout {
        server: SocketAddr,
        what: String,
        after: Duration,
    },
    /// Socket errors: refused, unreachable, reset.
    #[error("cannot talk to DNS server {server} ({what}): {source}")]
    Io {
        server: SocketAddr,
        what: String,
        source: std::io::Error,
    },
    /// A reply that does not parse as DNS.
    #[error("malformed reply from DNS server {server} to the {what}: {reason}")]
    Malformed {
        server: SocketAddr,
        what: String,
        reason: String,
    },
}

impl WireError {
    /// Whether asking again later may succeed: no answer, a network error or a garbled reply.
    pub fn is_transient(&self) -> bool {
        !matches!(self, WireError::Invalid(_))
    }
}

/// The rcode as dig and nsupdate print it (`FORMERR`, `NOTAUTH`), not hickory's prose.
pub(crate) fn mnemonic(rcode: ResponseCode) -> String {
    let known = match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        other => return format!("rcode {}", u16::from(other)),
    };
    known.to_owned()
}

/// When the whole operation must be over, and how long that was, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub total: Duration,
}

impl Deadline {
    pub fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }
}

/// Sends `request` (a complete DNS message) to `server` and returns the reply's bytes: the
/// first datagram or TCP message with the request's id. `what` names the exchange in errors.
pub(crate) async fn exchange(
    server: SocketAddr,
    request: &[u8],
    deadline: Deadline,
    what: &str,
) -> Result<Vec<u8>, WireError> {
    let io = |source| WireError::Io {
        server,
        what: what.to_owned(),
        source,
    };
    let timeout = || WireError::Timeout {
        server,
        what: what.to_owned(),
        after: deadline.total,
    };
    let id = match request {
        [a, b, ..] => [*a, *b],
        _ => return Err(WireError::Invalid(format!("empty DNS {what}"))),
    };
    if request.len() <= UDP_LIMIT {
        let reply = tokio::time::timeout_at(deadline.at, udp(server, request, id))
            .await
            .map_err(|_| timeout())?
            .map_err(io)?;
        // TC bit: the answer did not fit; ask again over TCP (RFC 7766 §5).
        if reply.get(2).is_none_or(|flags| flags & 0x02 == 0) {
            return Ok(reply);
        }
        tracing::debug!(%server, what, "truncated UDP reply, retrying over TCP");
    }
    tokio::time::timeout_at(deadline.at, tcp(server, request, id))
        .await
        .map_err(|_| timeout())?
        .map_err(io)
}

async fn udp(server: SocketAddr, request: &[u8], id: [u8; 2]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from anyone but the server.
    socket.connect(server).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        socket.send(request).await?;
        let resend = Instant::now() + RETRY.delay(1);
        loop {
            match tokio::time::timeout_at(resend, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(received) => {
                    let n = received?;
                    if is_reply_to(&buf[..n], id) {
                        buf.truncate(n);
                        return Ok(buf);
                    }
                }
            }
        }
    }
}

async fn tcp(server: SocketAddr, request: &[u8], id: [u8; 2]) -> std::io::Result<Vec<u8>> {
    let too_long = || std::io::Error::other("request longer than 65535 bytes");
    let len = u16::try_from(request.len()).map_err(|_| too_long())?;
    let mut stream = TcpStream::connect(server).await?;
    stream.set_nodelay(true)?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await?;
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).await?;
        if is_reply_to(&reply, id) {
            return Ok(reply);
        }
    }
}

/// Same id, QR bit set.
fn is_reply_to(reply: &[u8], id: [u8; 2]) -> bool {
    reply.len() >= 12 && reply[..2] == id && reply[2] & 0x80 != 0
}

/// Asks `server` one non-recursive question and returns the parsed reply, whatever its rcode.
pub(crate) async fn query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    deadline: Deadline,
) -> Result<Message, WireError> {
    let what = format!("{rtype} query for {name}");
    let mut msg = Message::query();
    msg.add_query(hickory_proto::op::Query::query(name.clone(), rtype));
    // An authoritative server answers from its zone; no recursion is wanted or expected.
    msg.metadata.recursion_desired = false;
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    msg.set_edns(edns);
    let bytes = msg
        .to_vec()
        .map_err(|e| WireError::Invalid(format!("{what}: {e}")))?;
    let reply = exchange(server, &bytes, deadline, &what).await?;
    Message::from_vec(&reply).map_err(|e| WireError::Malformed {
        server,
        what,
        reason: e.to_string(),
    })
}

/// Most records a zone transfer reads: a server that never sends the closing SOA must not
/// fill memory (a routes zone has tens of records).
const TRANSFER_LIMIT: usize = 100_000;

/// A zone transfer (AXFR, RFC 5936) over TCP: every reply message until the one that closes the
/// zone with its SOA, or the first one whose rcode is not NOERROR (REFUSED when the server does
/// not allow transfers), which is returned last for the caller to read.
pub(crate) async fn transfer(
    server: SocketAddr,
    zone: &Name,
    deadline: Deadline,
) -> Result<Vec<Message>, WireError> {
    let what = format!("AXFR of {zone}");
    let mut msg = Message::query();
    msg.add_query(hickory_proto::op::Query::query(
        zone.clone(),
        RecordType::AXFR,
    ));
    msg.metadata.recursion_desired = false;
    let request = msg
        .to_vec()
        .map_err(|e| WireError::Invalid(format!("{what}: {e}")))?;
    let id = msg.metadata.id.to_be_bytes();
    let io = |source| WireError::Io {
        server,
        what: what.clone(),
        source,
    };
    let read = async {
        let len = u16::try_from(request.len())
            .map_err(|_| io(std::io::Error::other("request longer than 65535 bytes")))?;
        let mut stream = TcpStream::connect(server).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&request);
        stream.write_all(&framed).await.map_err(io)?;
        let (mut messages, mut records, mut soas) = (Vec::new(), 0usize, 0usize);
        loop {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await.map_err(io)?;
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut reply).await.map_err(io)?;
            if !is_reply_to(&reply, id) {
                continue;
            }
            let m = Message::from_vec(&reply).map_err(|e| WireError::Malformed {
                server,
                what: what.clone(),
                reason: e.to_string(),
            })?;
            let failed = m.metadata.response_code != hickory_proto::op::ResponseCode::NoError;
            // The transfer opens and closes with the zone's SOA (RFC 5936 §2.2); a first
            // message that does not open with it is not a transfer.
            let opens = records > 0
                || m.answers
                    .first()
                    .is_some_and(|r| r.record_type() == RecordType::SOA);
            records += m.answers.len();
            soas += m
                .answers
                .iter()
                .filter(|r| r.record_type() == RecordType::SOA)
                .count();
            messages.push(m);
            if failed || !opens || soas >= 2 {
                return Ok(messages);
            }
            if records > TRANSFER_LIMIT {
                return Err(WireError::Invalid(format!(
                    "{what} from {server}: more than {TRANSFER_LIMIT} records without the \
                     closing SOA"
                )));
            }
        }
    };
    tokio::time::timeout_at(deadline.at, read)
        .await
        .map_err(|_| WireError::Timeout {
            server,
            what: what.clone(),
            after: deadline.total,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_must_match_id_and_be_a_response() {
        let mut reply = vec![0u8; 12];
        reply[..2].copy_from_slice(&[0x12, 0x34]);
        assert!(!is_reply_to(&reply, [0x12, 0x34]), "QR bit clear");
        reply[2] = 0x80;
        assert!(is_reply_to(&reply, [0x12, 0x34]));
        assert!(!is_reply_to(&reply, [0x12, 0x35]));
        assert!(
            !is_reply_to(&reply[..11], [0x12, 0x34]),
            "shorter than a header"
        );
    }

    /// A TCP server that reads one request and answers with `replies` built for its id.
    async fn tcp_server(
        replies: Vec<Vec<hickory_proto::rr::Record>>,
        rcode: ResponseCode,
    ) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.unwrap();
            let mut req = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut req).await.unwrap();
            let id = Message::from_vec(&req).unwrap().metadata.id;
            for answers in replies {
                let mut m = Message::response(id, hickory_proto::op::OpCode::Query);
                m.metadata.response_code = rcode;
                m.add_answers(answers);
                let bytes = m.to_vec().unwrap();
                let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
                framed.extend_from_slice(&bytes);
                s.write_all(&framed).await.unwrap();
            }
            // Hold the connection open: the reader must stop at the closing SOA by itself.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        addr
    }

    #[tokio::test]
    async fn a_transfer_ends_at_the_closing_soa_or_the_first_error() {
        use hickory_proto::rr::rdata::{A, SOA};
        use hickory_proto::rr::{RData, Record};
        let zone = Name::from_ascii("example.test.").unwrap();
        let soa = Record::from_rdata(
            zone.clone(),
            60,
            RData::SOA(SOA::new(zone.clone(), zone.clone(), 1, 60, 60, 600, 60)),
        );
        let a = Record::from_rdata(zone.clone(), 60, RData::A(A::new(192, 0, 2, 1)));
        let deadline = || Deadline::after(Duration::from_secs(3));
        let server = tcp_server(
            vec![vec![soa.clone(), a], vec![soa.clone()]],
            ResponseCode::NoError,
        )
        .await;
        let messages = transfer(server, &zone, deadline()).await.unwrap();
        assert_eq!(messages.len(), 2);
        let server = tcp_server(vec![vec![]], ResponseCode::Refused).await;
        let messages = transfer(server, &zone, deadline()).await.unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].metadata.response_code, ResponseCode::Refused);
        // Never closed: the deadline ends it.
        let server = tcp_server(vec![vec![soa]], ResponseCode::NoError).await;
        let e = transfer(server, &zone, Deadline::after(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert!(matches!(e, WireError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("AXFR of example.test."), "{e}");
    }

    #[tokio::test]
    async fn silent_server_times_out_with_the_deadline() {
        // A bound UDP socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = silent.local_addr().unwrap();
        let name = Name::from_ascii("example.test.").unwrap();
        let deadline = Deadline::after(Duration::from_millis(150));
        let e = query(server, &name, RecordType::SOA, deadline)
            .await
            .unwrap_err();
        assert!(matches!(e, WireError::Timeout { .. }), "{e}");
        assert!(e.is_transient());
        assert!(e.to_string().contains("SOA query for example.test."), "{e}");
    }
}
