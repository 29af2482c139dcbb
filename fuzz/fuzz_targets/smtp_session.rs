//! The SMTP server session (`mta::session`) driven as `mta::server` drives it, with hostile
//! client bytes, plus the command parser and the relay policy on every address the client
//! sends. Input: one flag byte, 16 bytes the driver's answers are chosen from (cycled), then
//! the client's byte stream, framed into lines with the server's limits.
//!
//! Checked beyond "no panic": every reply is CRLF-terminated lines of `NNN[ -]text` in
//! printable ASCII (RFC 5321 §4.2: no SMTPUTF8 is offered); the message handed to the store is
//! our Received header followed by exactly the client's data, dot-unstuffed, bare CR and LF
//! stored as CRLF, ended only by a dot line after CRLF; its recipients are exactly the ones
//! accepted; STARTTLS is never offered twice;
//! the policy never relays for a domain the tables do not allow.

#![no_main]

use std::net::IpAddr;
use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use posta::mta::policy::{Accept, Domains, Verdict, decide};
use posta::mta::session::{Limits, Session, Step, StoreError};
use posta::mta::tables::{Access, LocalHostNames, Reply, Tables, VirtUser};
use posta::proto::LineBuffer;
use posta::proto::dotstuff::MAX_DATA_LINE;
use posta::proto::smtp_server::{self, Command, MAX_COMMAND_LINE};

const ACCESS: &str = "laorganizacion.org RELAY\nTo:relayed.org RELAY\nConnect:10.1 RELAY\n\
Connect:10.2 REJECT\nFrom:spammer.net DISCARD\nTo:no@ours.org ERROR:5.1.1:550 gone\n\
To:tmp@ours.org ERROR:\"4.2.2:450 mailbox full\"\n";
const VIRTUSER: &str = "usuario_x@inkacoca.org usuario_x@localhost\n\
@inkacoca.org %1@switch.inkacoca.org\ninfo@ours.org boss\n@a.org %1@b.org\n@b.org %1@a.org\n\
gone@ours.org error:5.1.1:550 no such user\n";
const HOSTS: &str = "ours.org\ninkacoca.org\na.org\n";

/// Domains the fixed tables and `DOMAINS` let anyone relay to (with subdomains).
const RELAY_DOMAINS: &[&str] = &["laorganizacion.org", "relayed.org", "backup.example"];

static TABLES: LazyLock<Tables> = LazyLock::new(|| Tables {
    access: Access::parse(Path::new("fuzz/access"), ACCESS).expect("access"),
    virtuser: VirtUser::parse(Path::new("fuzz/virtusertable"), VIRTUSER).expect("virtuser"),
    hosts: LocalHostNames::parse(Path::new("fuzz/local-host-names"), HOSTS).expect("hosts"),
});

static DOMAINS: LazyLock<Domains> = LazyLock::new(|| Domains {
    local: vec!["local.example".into()],
    relay: vec!["backup.example".into()],
});

const CLIENTS: [&str; 6] = [
    "203.0.113.50",
    "10.1.2.3",
    "10.2.2.3",
    "127.0.0.1",
    "2001:db8::25",
    "::1",
];

struct Choices<'a> {
    pool: &'a [u8],
    next: usize,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.pool[self.next % self.pool.len()];
        self.next += 1;
        b
    }
}

fn next_id() -> String {
    "FUZZ0001".into()
}

/// Every reply line is `NNN`, a space or a dash, printable ASCII, CRLF; the last one a space.
fn check_reply(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    assert!(
        bytes.ends_with(b"\r\n"),
        "reply not CRLF-terminated: {bytes:?}"
    );
    let body = &bytes[..bytes.len() - 2];
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    for (i, l) in lines.iter().enumerate() {
        let l = if i + 1 < lines.len() {
            l.strip_suffix(b"\r")
                .unwrap_or_else(|| panic!("bare LF in reply: {bytes:?}"))
        } else {
            l
        };
        assert!(l.len() >= 4, "short reply line {l:?} in {bytes:?}");
        assert!(l[..3].iter().all(u8::is_ascii_digit), "no code: {bytes:?}");
        assert!(matches!(l[0], b'2'..=b'5'), "bad code: {bytes:?}");
        assert!(l[3] == b' ' || l[3] == b'-', "bad separator: {bytes:?}");
        assert!(
            l[4..]
                .iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)),
            "reply text is not printable ASCII: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let last = lines.last().expect("one line");
    assert_eq!(
        last[3], b' ',
        "reply ends with a continuation line: {bytes:?}"
    );
}

/// Every line ending as CRLF: CRLF, bare CR and bare LF each become one CRLF.
fn crlf_only(bytes: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = bytes
        .split(|&b| b == b'\n')
        .map(|part| part.strip_suffix(b"\r").unwrap_or(part).to_vec())
        .collect::<Vec<_>>()
        .join(&b'\n');
    let mut out = Vec::new();
    for b in text {
        match b {
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
    }
    out
}

fn code(bytes: &[u8]) -> Option<&[u8]> {
    bytes.get(..3)
}

/// The domain a relay decision is about, normalized independently of the policy code.
fn rcpt_domain(rcpt: &str) -> Option<String> {
    let s = rcpt.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    let (_, d) = s.rsplit_once('@')?;
    Some(d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase())
}

fn verdict(choice: u8, policy: &Verdict, rcpt: &str) -> Verdict {
    match choice % 8 {
        0 => Verdict::Accept(Accept::Local(rcpt.split('@').next().unwrap_or("").into())),
        1 => Verdict::Accept(Accept::Relay),
        2 => Verdict::Accept(Accept::Forward(format!("fwd-{rcpt}"))),
        3 => Verdict::Reject(Reply {
            code: if choice & 0x10 != 0 { 450 } else { 550 },
            dsn: (choice & 0x20 != 0).then(|| "5.1.1".to_string()),
            text: "user unknown".into(),
        }),
        4 => Verdict::Discard,
        // The policy's own answer, as the server gives it (most of the time).
        _ => policy.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let (flags, pool, stream) = (data[0], &data[1..17], &data[17..]);
    let mut choices = Choices { pool, next: 0 };
    let ip: IpAddr = CLIENTS[usize::from(flags >> 2) % CLIENTS.len()]
        .parse()
        .expect("ip");
    let limits = if flags & 0x80 != 0 {
        Limits {
            hostname: "mx.fuzz.example".into(),
            max_message_size: 300,
            max_recipients: 3,
            max_hops: 2,
            max_errors: 4,
            max_junk: 3,
        }
    } else {
        Limits::default()
    };
    let max_size = limits.max_message_size;
    let max_rcpts = limits.max_recipients;
    let starttls = flags & 1 != 0;
    let mut session = Session::new(limits, ip, starttls, next_id);
    let mut tls = false;
    if flags & 2 != 0 {
        session = session.with_tls();
        tls = true;
    }
    check_reply(&session.greeting());

    let mut input = LineBuffer::new();
    input.extend(stream);
    // The model: recipients accepted in the current transaction, and the data so far.
    let mut accepted: Vec<String> = Vec::new();
    let mut discarded = 0usize;
    let mut body: Option<(Vec<u8>, u64)> = None;
    // Whether the last data line ended in CRLF: only then can a dot line end the data.
    let mut at_line_start = true;
    loop {
        let in_data = session.in_data();
        assert_eq!(in_data, body.is_some(), "DATA state diverged");
        let limit = if in_data {
            MAX_DATA_LINE
        } else {
            MAX_COMMAND_LINE
        };
        let line = match input.next_line_limited(limit) {
            Ok(Some(line)) => line,
            // The connection closes with a partial line pending: nothing more happens.
            Ok(None) => return,
            Err(_) => {
                let (Step::Reply(b) | Step::Close(b)) = session.line_too_long() else {
                    panic!("line_too_long asked for something other than a reply");
                };
                check_reply(&b);
                return;
            }
        };
        let parsed = smtp_server::parse(&line);
        let ended = in_data && at_line_start && line == b".\r\n";
        if let Some((data, size)) = body.as_mut()
            && !ended
        {
            let content = if at_line_start {
                line.strip_prefix(b".").unwrap_or(&line)
            } else {
                &line[..]
            };
            let content = crlf_only(content);
            *size += content.len() as u64;
            data.extend_from_slice(&content);
            at_line_start = line.ends_with(b"\r\n");
        }
        let step = session.line(&line);
        if !in_data {
            match &parsed {
                Ok(Command::Rset | Command::Ehlo(_) | Command::Helo(_)) => {
                    accepted.clear();
                    discarded = 0;
                }
                Ok(Command::Mail { .. }) => {
                    if matches!(&step, Step::Reply(r) if code(r) == Some(b"250")) {
                        accepted.clear();
                        discarded = 0;
                    }
                }
                _ => {}
            }
        }
        match step {
            Step::Reply(r) => {
                check_reply(&r);
                if !in_data && matches!(parsed, Ok(Command::Data)) && code(&r) == Some(b"354") {
                    assert!(
                        !accepted.is_empty() || discarded > 0,
                        "DATA without recipients"
                    );
                    body = Some((Vec::new(), 0));
                    at_line_start = true;
                }
                if in_data && !ended {
                    assert!(r.is_empty(), "reply to a data line: {r:?}");
                }
                if ended {
                    let (_, size) = body.take().expect("in data");
                    let c = code(&r);
                    assert!(c == Some(b"552") || c == Some(b"554"), "end of data: {r:?}");
                    assert!(c != Some(b"552") || size > max_size, "552 under the limit");
                    accepted.clear();
                    discarded = 0;
                }
            }
            Step::Close(r) => {
                check_reply(&r);
                return;
            }
            Step::StartTls(r) => {
                check_reply(&r);
                assert!(starttls && !tls, "STARTTLS accepted when not offered");
                session.tls_started();
                tls = true;
                accepted.clear();
                discarded = 0;
            }
            Step::CheckRcpt { from, rcpt } => {
                assert!(!in_data);
                let decision = decide(&TABLES, ip, Some(session.helo()), &from, &rcpt, &DOMAINS);
                assert!(!decision.trail.is_empty());
                if decision.verdict == Verdict::Accept(Accept::Relay)
                    && ip.to_string() != CLIENTS[1]
                {
                    let d = rcpt_domain(&rcpt).unwrap_or_default();
                    assert!(
                        RELAY_DOMAINS
                            .iter()
                            .any(|r| d == *r || d.ends_with(&format!(".{r}"))),
                        "open relay: {rcpt:?} from {ip}: {:?}",
                        decision.trail
                    );
                }
                let v = verdict(choices.byte(), &decision.verdict, &rcpt);
                match &v {
                    Verdict::Accept(_) => accepted.push(rcpt.clone()),
                    Verdict::Discard => discarded += 1,
                    Verdict::Reject(_) => {}
                }
                assert!(
                    accepted.len() + discarded <= max_rcpts,
                    "too many recipients"
                );
                let r = session.rcpt_checked(v);
                check_reply(&r);
            }
            Step::Store(t) => {
                assert!(ended, "store before the end of data");
                let (data, size) = body.take().expect("in data");
                assert!(size <= max_size, "message over the limit stored");
                assert!(t.message.ends_with(&data), "message data altered");
                let header = &t.message[..t.message.len() - data.len()];
                assert!(header.starts_with(b"Received: from "), "no Received header");
                assert!(header.ends_with(b"\r\n"), "Received header not ended");
                for l in header[..header.len() - 2].split(|&b| b == b'\n') {
                    assert!(
                        !l.contains(&b'\r') || l.ends_with(b"\r"),
                        "bare CR in Received"
                    );
                }
                for l in header
                    .split(|&b| b == b'\n')
                    .skip(1)
                    .filter(|l| !l.is_empty())
                {
                    assert!(
                        l.starts_with(b"\t"),
                        "Received header line not folded: {header:?}"
                    );
                }
                let got: Vec<&str> = t.recipients.iter().map(|r| r.address.as_str()).collect();
                assert_eq!(
                    got, accepted,
                    "stored recipients differ from the accepted ones"
                );
                assert_eq!(t.discarded, discarded);
                accepted.clear();
                discarded = 0;
                let result = match choices.byte() % 3 {
                    0 => Ok(()),
                    1 => Err(StoreError::DiskFull),
                    _ => Err(StoreError::Failed),
                };
                let r = session.stored(result, &t.id);
                check_reply(&r);
            }
            Step::Etrn { domain, reply } => {
                assert!(!domain.contains(['\r', '\n']));
                check_reply(&reply);
            }
        }
    }
});
