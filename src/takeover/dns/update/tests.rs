use std::path::Path;

use hickory_proto::op::MessageType;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, make_tsig_record};

use super::*;
use crate::takeover::dns::parse_key_file;

const SECRET: &str = "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGVzdGluZy0xMjM0NTY=";

fn key() -> TsigKey {
    let text = format!("key \"posta-key\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};");
    parse_key_file(&text, Path::new("/etc/posta/tsig.key")).unwrap()
}

fn rec() -> Record {
    Record::new("example.test", "mail", 60).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn server() -> SocketAddr {
    "127.0.0.1:5353".parse().unwrap()
}

/// (class, type, ttl, rdata as text) of each record, for readable assertions.
fn rows(records: &[Rr]) -> Vec<(DNSClass, RecordType, u32, String)> {
    records
        .iter()
        .map(|r| {
            let data = match &r.data {
                RData::Update0(_) => "-".to_owned(),
                d => d.to_string(),
            };
            (r.dns_class, r.record_type(), r.ttl, data)
        })
        .collect()
}

#[test]
fn update_says_exactly_expect_then_replaces_with_to() {
    let msg = build(&rec(), &[ip("10.0.0.25")], &[ip("10.0.0.26")]);
    assert_eq!(msg.metadata.op_code, OpCode::Update);
    assert_eq!(msg.zones().len(), 1);
    assert_eq!(msg.zones()[0].name().to_string(), "example.test.");
    assert_eq!(msg.zones()[0].query_type(), RecordType::SOA);
    use DNSClass::{ANY, IN, NONE};
    use RecordType::{A, AAAA};
    assert_eq!(
        rows(msg.prerequisites()),
        vec![(IN, A, 0, "10.0.0.25".into()), (NONE, AAAA, 0, "-".into()),]
    );
    assert_eq!(
        rows(msg.updates()),
        vec![
            (ANY, A, 0, "-".into()),
            (ANY, AAAA, 0, "-".into()),
            (IN, A, 60, "10.0.0.26".into()),
        ]
    );
    assert!(
        msg.prerequisites()
            .iter()
            .chain(msg.updates())
            .all(|r| r.name.to_string() == "mail.example.test.")
    );
}

#[test]
fn dual_stack_swap_survives_the_wire() {
    let expect = normalize(&[ip("2001:db8::25"), ip("10.0.0.25")]);
    let to = normalize(&[ip("10.0.0.26"), ip("2001:db8::26")]);
    let mut msg = build(&rec(), &expect, &to);
    msg.finalize(key().signer(), 1_800_000_000).unwrap();
    let bytes = msg.to_vec().unwrap();
    let back = Message::from_vec(&bytes).unwrap();
    use DNSClass::{ANY, IN};
    use RecordType::{A, AAAA};
    assert_eq!(
        rows(back.prerequisites()),
        vec![
            (IN, A, 0, "10.0.0.25".into()),
            (IN, AAAA, 0, "2001:db8::25".into()),
        ]
    );
    assert_eq!(
        rows(back.updates()),
        vec![
            (ANY, A, 0, "-".into()),
            (ANY, AAAA, 0, "-".into()),
            (IN, A, 60, "10.0.0.26".into()),
            (IN, AAAA, 60, "2001:db8::26".into()),
        ]
    );
    let sig = back.signature.expect("signed");
    assert_eq!(sig.name.to_string(), "posta-key.");
    assert_eq!(sig.data.algorithm, TsigAlgorithm::HmacSha256);
    assert!(bytes.len() < 512, "fits one datagram: {}", bytes.len());
}

#[test]
fn requests_that_would_delete_or_compare_nothing_are_refused() {
    let r = rec();
    let a = [ip("10.0.0.25")];
    let e = check_request(&r, &a, &[]).unwrap_err().to_string();
    assert!(e.contains("refusing to leave it without A/AAAA"), "{e}");
    let e = check_request(&r, &[], &a).unwrap_err().to_string();
    assert!(e.contains("needs the address it replaces"), "{e}");
    let e = check_request(&r, &a, &a).unwrap_err().to_string();
    assert!(e.contains("nothing to swap"), "{e}");
    assert!(check_request(&r, &a, &[ip("10.0.0.26")]).is_ok());
}

/// A reply as BIND sends it: `rcode`, and a TSIG record carrying `error` (unsigned: no MAC).
fn reply(rcode: ResponseCode, error: Option<TsigError>, other: Vec<u8>) -> Message {
    let mut m = Message::new(7, MessageType::Response, OpCode::Update);
    m.metadata.response_code = rcode;
    if error.is_some() {
        let tsig = TSIG::new(
            TsigAlgorithm::HmacSha256,
            1_800_000_000,
            300,
            Vec::new(),
            7,
            error,
            other,
        );
        let name = Name::from_ascii("posta-key.").unwrap();
        m.signature = Some(Box::new(make_tsig_record(name, tsig)));
    }
    // Through the wire format, as the real reply comes.
    Message::from_vec(&m.to_vec().unwrap()).unwrap()
}

fn judge(reply: &Message, verified: Result<(), SignatureError>) -> Result<Outcome, DnsError> {
    let (key, rec) = (key(), rec());
    let ctx = Context {
        server: server(),
        key: &key,
        rec: &rec,
        what: "update of mail.example.test. in zone example.test.",
    };
    interpret(reply, verified, &ctx, 1_800_000_000)
}

#[test]
fn notauth_badsig_is_the_secret_and_badkey_the_name() {
    let e = judge(
        &reply(ResponseCode::NotAuth, Some(TsigError::BadSig), vec![]),
        Ok(()),
    )
    .unwrap_err();
    assert!(matches!(e, DnsError::BadSignature { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "DNS server 127.0.0.1:5353 rejects the update's signature (NOTAUTH/BADSIG): the TSIG \
         secret in /etc/posta/tsig.key does not match the server's key posta-key"
    );
    let e = judge(
        &reply(ResponseCode::NotAuth, Some(TsigError::BadKey), vec![]),
        Ok(()),
    )
    .unwrap_err();
    assert!(matches!(e, DnsError::UnknownKey { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("does not know TSIG key posta-key with algorithm hmac-sha256"),
        "{e}"
    );
    assert!(!e.is_transient());
}

#[test]
fn badtime_reports_the_skew_from_the_servers_clock() {
    let server_clock: u64 = 1_800_000_000 + 420;
    let other = server_clock.to_be_bytes()[2..].to_vec();
    let e = judge(
        &reply(ResponseCode::NotAuth, Some(TsigError::BadTime), other),
        Ok(()),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DnsError::ClockSkew {
                skew: Some(420),
                fudge: 300,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("420s ahead"), "{e}");
}

#[test]
fn rcodes_without_tsig_errors() {
    let r = |rcode| reply(rcode, None, vec![]);
    assert_eq!(
        judge(&r(ResponseCode::NoError), Ok(())).unwrap(),
        Outcome::Applied
    );
    assert_eq!(
        judge(
            &r(ResponseCode::NXRRSet),
            Err(SignatureError::Invalid("unsigned".into()))
        )
        .unwrap(),
        Outcome::PrerequisiteFailed
    );
    assert_eq!(
        judge(
            &r(ResponseCode::YXRRSet),
            Err(SignatureError::Invalid("unsigned".into()))
        )
        .unwrap(),
        Outcome::PrerequisiteFailed
    );
    let e = judge(&r(ResponseCode::Refused), Ok(())).unwrap_err();
    assert!(
        e.to_string().contains("allow-update / update-policy"),
        "{e}"
    );
    assert!(matches!(
        judge(&r(ResponseCode::NotAuth), Ok(())),
        Err(DnsError::NotAuthoritative { .. })
    ));
    let e = judge(&r(ResponseCode::ServFail), Ok(())).unwrap_err();
    assert!(e.is_transient(), "{e}");
    let e = judge(&r(ResponseCode::FormErr), Ok(())).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "answered FORMERR to the update of mail.example.test. in zone example.test."
        ),
        "{e}"
    );
}

#[test]
fn success_without_a_valid_signature_is_not_believed() {
    let e = judge(
        &reply(ResponseCode::NoError, None, vec![]),
        Err(SignatureError::Invalid("no TSIG".into())),
    )
    .unwrap_err();
    assert!(matches!(e, DnsError::Unverified { .. }), "{e}");
}

#[test]
fn server_time_needs_six_bytes() {
    assert_eq!(server_time(&[0, 0, 0, 0, 1, 0]), Some(256));
    assert_eq!(server_time(&[1, 2]), None);
}
