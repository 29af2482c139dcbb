use super::*;

fn opts(tls: bool) -> SessionOptions {
    SessionOptions {
        tls,
        stls_available: true,
        plaintext_auth: false,
    }
}

fn text(step: &Step) -> String {
    String::from_utf8_lossy(&step.reply).into_owned()
}

fn messages() -> Vec<MessageInfo> {
    vec![
        MessageInfo {
            size: 120,
            uid: "1700000000.M1P2.host".into(),
        },
        MessageInfo {
            size: 30,
            uid: "1700000001.M1P2.host".into(),
        },
    ]
}

/// A session logged in over TLS with two messages.
fn logged_in() -> Session {
    let mut s = Session::new(opts(true));
    assert_eq!(text(&s.feed(b"USER alice\r\n")), "+OK send PASS\r\n");
    let step = s.feed(b"PASS two words\r\n");
    assert_eq!(
        step.action,
        Action::Authenticate {
            user: "alice".into(),
            password: Secret::new("two words")
        }
    );
    assert!(step.reply.is_empty());
    let step = s.authenticated(LoginResult::Ok(messages()));
    assert_eq!(text(&step), "+OK maildrop has 2 messages (150 octets)\r\n");
    assert!(s.is_authenticated());
    s
}

#[test]
fn parses_commands() {
    assert_eq!(parse_command(b"stat\r\n").unwrap(), Command::Stat);
    assert_eq!(parse_command(b"LIST\n").unwrap(), Command::List(None));
    assert_eq!(
        parse_command(b"list 3\r\n").unwrap(),
        Command::List(Some(3))
    );
    assert_eq!(parse_command(b"TOP 1 0\r\n").unwrap(), Command::Top(1, 0));
    assert_eq!(parse_command(b"RETR  2\r\n").unwrap(), Command::Retr(2));
    assert_eq!(
        parse_command(b"AUTH plain =\r\n").unwrap(),
        Command::Auth {
            mechanism: Some("PLAIN".into()),
            initial: Some("=".into())
        }
    );
    for bad in [
        &b"RETR 0\r\n"[..],
        b"RETR -1\r\n",
        b"RETR 99999999999\r\n",
        b"RETR x\r\n",
        b"RETR\r\n",
        b"TOP 1\r\n",
        b"TOP 1 -2\r\n",
        b"STAT x\r\n",
        b"USER\r\n",
        b"USER a b\r\n",
        b"PASS\r\n",
        b"STAT",
        b"ST\0AT\r\n",
        b"\xff\xfe\r\n",
        b"\r\n",
        b"FROB\r\n",
    ] {
        assert!(parse_command(bad).is_err(), "{}", escape(bad));
    }
}

#[test]
fn capa_depends_on_tls_and_state() {
    let mut clear = Session::new(opts(false));
    let capa = text(&clear.feed(b"CAPA\r\n"));
    assert!(capa.starts_with("+OK"), "{capa}");
    assert!(capa.contains("\r\nSTLS\r\n"), "{capa}");
    assert!(!capa.contains("USER"), "{capa}");
    assert!(capa.ends_with("\r\n.\r\n"), "{capa}");
    clear.tls_started();
    let capa = text(&clear.feed(b"CAPA\r\n"));
    assert!(
        capa.contains("\r\nUSER\r\n") && capa.contains("SASL PLAIN"),
        "{capa}"
    );
    assert!(!capa.contains("STLS"), "{capa}");
    let mut s = logged_in();
    let capa = text(&s.feed(b"CAPA\r\n"));
    for cap in [
        "TOP",
        "UIDL",
        "PIPELINING",
        "RESP-CODES",
        "IMPLEMENTATION posta",
    ] {
        assert!(capa.contains(cap), "{cap}: {capa}");
    }
    assert!(!capa.contains("USER"), "{capa}");
}

#[test]
fn cleartext_login_refused_unless_allowed() {
    let mut s = Session::new(opts(false));
    let step = s.feed(b"USER alice\r\n");
    assert!(
        text(&step).starts_with("-ERR [AUTH] cleartext"),
        "{}",
        text(&step)
    );
    let step = s.feed(b"AUTH PLAIN AGFsaWNlAHB3\r\n");
    assert!(text(&step).starts_with("-ERR [AUTH]"));
    assert_eq!(step.action, Action::None);
    let mut local = Session::new(SessionOptions {
        plaintext_auth: true,
        ..opts(false)
    });
    assert_eq!(text(&local.feed(b"USER alice\r\n")), "+OK send PASS\r\n");
}

#[test]
fn stls_flow() {
    let mut s = Session::new(opts(false));
    let step = s.feed(b"STLS\r\n");
    assert_eq!(step.action, Action::StartTls);
    assert!(text(&step).starts_with("+OK"));
    s.tls_started();
    assert!(text(&s.feed(b"STLS\r\n")).starts_with("-ERR"));
    let mut none = Session::new(SessionOptions {
        stls_available: false,
        ..opts(false)
    });
    assert!(text(&none.feed(b"STLS\r\n")).starts_with("-ERR"));
}

#[test]
fn auth_plain_initial_and_continuation() {
    // base64("\0alice\0pw")
    let mut s = Session::new(opts(true));
    let step = s.feed(b"AUTH PLAIN AGFsaWNlAHB3\r\n");
    assert_eq!(
        step.action,
        Action::Authenticate {
            user: "alice".into(),
            password: Secret::new("pw")
        }
    );
    let mut s = Session::new(opts(true));
    let step = s.feed(b"AUTH PLAIN\r\n");
    assert_eq!(text(&step), "+ \r\n");
    assert_eq!(s.line_limit(), MAX_AUTH_LINE);
    assert_eq!(s.redact(b"AGFsaWNlAHB3\r\n"), "<SASL response redacted>");
    let step = s.feed(b"AGFsaWNlAHB3\r\n");
    assert!(matches!(step.action, Action::Authenticate { .. }));
    // Cancel, junk, another authzid.
    let mut s = Session::new(opts(true));
    s.feed(b"AUTH PLAIN\r\n");
    assert!(text(&s.feed(b"*\r\n")).starts_with("-ERR"));
    assert!(text(&s.feed(b"AUTH PLAIN !!!\r\n")).starts_with("-ERR [AUTH]"));
    // base64("bob\0alice\0pw")
    assert!(text(&s.feed(b"AUTH PLAIN Ym9iAGFsaWNlAHB3\r\n")).starts_with("-ERR [AUTH]"));
    assert!(text(&s.feed(b"AUTH CRAM-MD5\r\n")).starts_with("-ERR"));
    assert!(text(&s.feed(b"APOP alice 0123\r\n")).starts_with("-ERR APOP"));
    let list = text(&s.feed(b"AUTH\r\n"));
    assert_eq!(list, "+OK\r\nPLAIN\r\n.\r\n");
}

#[test]
fn redaction() {
    let s = Session::new(opts(true));
    assert_eq!(s.redact(b"pass hunter2\r\n"), "PASS <redacted>");
    assert_eq!(
        s.redact(b"AUTH PLAIN AGFsaWNlAHB3\r\n"),
        "AUTH PLAIN <redacted>"
    );
    assert_eq!(s.redact(b"RETR 1\r\n"), "RETR 1\\r\\n");
}

#[test]
fn failed_logins_then_close() {
    let mut s = Session::new(opts(true));
    for i in 1..=MAX_FAILED_LOGINS {
        s.feed(b"USER alice\r\n");
        assert!(matches!(
            s.feed(b"PASS x\r\n").action,
            Action::Authenticate { .. }
        ));
        let step = s.authenticated(LoginResult::Failed);
        assert_eq!(text(&step), "-ERR [AUTH] authentication failed\r\n");
        assert_eq!(step.action == Action::Close, i == MAX_FAILED_LOGINS);
    }
    let mut s = Session::new(opts(true));
    s.feed(b"USER alice\r\n");
    s.feed(b"PASS x\r\n");
    assert!(text(&s.authenticated(LoginResult::InUse)).starts_with("-ERR [IN-USE]"));
    assert!(!s.is_authenticated());
    assert!(text(&s.feed(b"PASS x\r\n")).starts_with("-ERR send USER first"));
}

#[test]
fn transaction_commands() {
    let mut s = logged_in();
    assert_eq!(text(&s.feed(b"STAT\r\n")), "+OK 2 150\r\n");
    assert_eq!(text(&s.feed(b"LIST\r\n")), "+OK\r\n1 120\r\n2 30\r\n.\r\n");
    assert_eq!(text(&s.feed(b"LIST 2\r\n")), "+OK 2 30\r\n");
    assert_eq!(
        text(&s.feed(b"UIDL\r\n")),
        "+OK\r\n1 1700000000.M1P2.host\r\n2 1700000001.M1P2.host\r\n.\r\n"
    );
    assert!(text(&s.feed(b"LIST 3\r\n")).starts_with("-ERR no such message"));
    assert_eq!(
        s.feed(b"RETR 2\r\n").action,
        Action::Retrieve {
            index: 1,
            top: None
        }
    );
    assert_eq!(
        s.feed(b"TOP 1 5\r\n").action,
        Action::Retrieve {
            index: 0,
            top: Some(5)
        }
    );
    assert_eq!(text(&s.feed(b"DELE 1\r\n")), "+OK message 1 deleted\r\n");
    assert!(text(&s.feed(b"DELE 1\r\n")).contains("already deleted"));
    assert!(text(&s.feed(b"RETR 1\r\n")).contains("already deleted"));
    assert_eq!(text(&s.feed(b"STAT\r\n")), "+OK 1 30\r\n");
    assert_eq!(text(&s.feed(b"LIST\r\n")), "+OK\r\n2 30\r\n.\r\n");
    assert!(text(&s.feed(b"RSET\r\n")).starts_with("+OK maildrop has 2"));
    assert_eq!(text(&s.feed(b"STAT\r\n")), "+OK 2 150\r\n");
    assert_eq!(text(&s.feed(b"NOOP\r\n")), "+OK\r\n");
    assert!(text(&s.feed(b"USER bob\r\n")).starts_with("-ERR"));
    assert!(text(&s.feed(b"STLS\r\n")).starts_with("-ERR"));
    s.feed(b"DELE 2\r\n");
    let step = s.feed(b"QUIT\r\n");
    assert_eq!(step.action, Action::Commit { deleted: vec![1] });
    assert!(step.reply.is_empty());
    assert!(text(&s.feed(b"STAT\r\n")).starts_with("-ERR"));
    let step = s.committed(Ok::<(), &str>(()));
    assert!(text(&step).starts_with("+OK"));
    assert_eq!(step.action, Action::Close);
    let failed = logged_in().committed(Err("unlink: permission denied"));
    assert!(text(&failed).starts_with("-ERR [SYS/TEMP] some deleted messages not removed"));
}

#[test]
fn commands_refused_in_the_wrong_state() {
    let mut s = Session::new(opts(true));
    for cmd in [&b"STAT\r\n"[..], b"RETR 1\r\n", b"DELE 1\r\n", b"NOOP\r\n"] {
        assert!(text(&s.feed(cmd)).starts_with("-ERR"), "{}", escape(cmd));
    }
    let step = s.feed(b"QUIT\r\n");
    assert_eq!(step.action, Action::Close);
    assert!(text(&step).starts_with("+OK"));
}

#[test]
fn hostile_input_closes_after_too_many_bad_commands() {
    let mut s = Session::new(opts(false));
    let junk: [&[u8]; 4] = [
        b"\x00\x01\x02\r\n",
        b"\xff\xff\r\n",
        b"GET / HTTP/1.1\r\n",
        b"\r\n",
    ];
    let mut closed_at = None;
    for i in 1..=100u32 {
        let step = s.feed(junk[i as usize % junk.len()]);
        assert!(text(&step).starts_with("-ERR"));
        if step.action == Action::Close {
            closed_at = Some(i);
            break;
        }
    }
    assert_eq!(closed_at, Some(MAX_BAD_COMMANDS));
    let mut s = Session::new(opts(false));
    let step = s.line_too_long();
    assert_eq!(step.action, Action::Close);
    assert_eq!(text(&step), "-ERR line too long\r\n");
}

#[test]
fn normalization_and_sizes() {
    let cases: [&[u8]; 8] = [
        b"",
        b"a\nb\n",
        b"a\r\nb\r\n",
        b"mixed\nline\r\n",
        b"no end",
        b"cr end\r",
        b"bare\rcr\n",
        b"\n\n",
    ];
    for data in cases {
        let n = normalize(data);
        assert_eq!(normalized_len(data), n.len() as u64, "{}", escape(data));
        assert!(n.is_empty() || n.ends_with(b"\r\n"));
    }
    assert_eq!(normalize(b"a\nb\r\nc"), b"a\r\nb\r\nc\r\n");
    assert_eq!(normalize(b"a\nb\n"), normalize(b"a\r\nb\r\n"));
}

#[test]
fn retr_is_stuffed_and_size_matches() {
    let data = b"Subject: x\n\n.dot\n..two\nlast";
    let wire = render_message(data, None);
    let size = normalized_len(data);
    assert_eq!(
        wire,
        format!("+OK {size} octets\r\nSubject: x\r\n\r\n..dot\r\n...two\r\nlast\r\n.\r\n")
            .as_bytes()
    );
    // Unstuffing what we send gives back exactly `size` octets.
    let mut u = super::super::dotstuff::Unstuffer::new();
    let mut got = None;
    for l in wire.split_inclusive(|&b| b == b'\n').skip(1) {
        got = u.feed(l).unwrap();
    }
    assert_eq!(got.unwrap().message.len() as u64, size);
}

#[test]
fn top_sends_header_and_k_lines() {
    let data = b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n";
    assert_eq!(
        render_message(data, Some(0)),
        b"+OK top of message follows\r\nA: 1\r\nB: 2\r\n\r\n.\r\n"
    );
    assert_eq!(
        render_message(data, Some(2)),
        b"+OK top of message follows\r\nA: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n"
    );
    assert_eq!(
        render_message(data, Some(99)),
        b"+OK top of message follows\r\nA: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n"
    );
    // No body at all: the whole header.
    assert_eq!(
        render_message(b"A: 1\nB: 2", Some(0)),
        b"+OK top of message follows\r\nA: 1\r\nB: 2\r\n.\r\n"
    );
}

/// Unstuffs a multi-line reply as a strict client does (lines end at CRLF, `.` CRLF alone
/// ends the data): the data and what followed the terminator.
fn client_reads(wire: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::new();
    let mut rest = wire;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let (line, after) = rest.split_at(i + 2);
        rest = after;
        if line == b".\r\n" {
            return (data, rest.to_vec());
        }
        data.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    panic!("no terminator in {}", escape(wire));
}

#[test]
fn bare_lf_and_cr_before_a_dot_never_end_the_data_early() {
    let cases: &[&[u8]] = &[
        b"a\n.\r\nb",
        b"a\r.\r\nb",
        b"a\n.\nb\n",
        b"a\r.\rb\r",
        b"a\r\n.\r\n.\n.\r",
        b"\n.\n",
        b".\r",
        b"x\r\r\n.\n\r.",
        b"..\n.\r\n..",
    ];
    for &data in cases {
        let wire = render_message(data, None);
        let body = &wire[wire.iter().position(|&b| b == b'\n').unwrap() + 1..];
        // Only CRLF line ends on the wire: no bare CR or LF for any client to split on.
        for (i, &b) in body.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(
                    body.get(i + 1),
                    Some(&b'\n'),
                    "bare CR in {}",
                    escape(&wire)
                );
            }
            if b == b'\n' {
                assert_eq!(body[i - 1], b'\r', "bare LF in {}", escape(&wire));
            }
        }
        // Every line beginning with '.' is stuffed, so the one terminator is the last line.
        let (got, after) = client_reads(body);
        assert!(
            after.is_empty(),
            "data after the terminator: {}",
            escape(&wire)
        );
        assert_eq!(got, normalize(data), "{}", escape(data));
        assert_eq!(got.len() as u64, normalized_len(data));
        // Fed in pieces of any size, the same bytes.
        for piece in 1..4 {
            let mut render = Render::new(None);
            let mut streamed = retr_status(normalized_len(data), None);
            for chunk in data.chunks(piece) {
                render.feed(chunk, &mut streamed);
            }
            render.finish(&mut streamed);
            assert_eq!(streamed, wire, "pieces of {piece}: {}", escape(data));
        }
    }
    assert_eq!(normalize(b"a\rb"), b"a\r\nb\r\n");
}

#[test]
fn top_in_pieces_matches_top_whole() {
    let data = b"A: 1\nB: 2\n\nl1\n.l2\rl3\r\nl4";
    for k in 0..6 {
        let whole = render_message(data, Some(k));
        let mut render = Render::new(Some(k));
        let mut streamed = retr_status(0, Some(k));
        for chunk in data.chunks(3) {
            render.feed(chunk, &mut streamed);
        }
        render.finish(&mut streamed);
        assert_eq!(streamed, whole, "TOP 1 {k}");
    }
    assert_eq!(
        render_message(data, Some(2)),
        b"+OK top of message follows\r\nA: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n"
    );
}
