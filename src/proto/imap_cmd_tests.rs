use super::*;

fn wire(cmd: &Command<'_>) -> Vec<(bool, Vec<u8>)> {
    cmd.parts
        .iter()
        .map(|p| (p.wait, p.bytes.to_vec()))
        .collect()
}

#[test]
fn quoted_and_literal_arguments() {
    let cmd = Command::build("p3", "SELECT", LiteralMode::Sync)
        .astring("a \"b\\\"")
        .finish();
    assert_eq!(
        wire(&cmd),
        [(false, b"p3 SELECT \"a \\\"b\\\\\\\"\"\r\n".to_vec())]
    );

    let cmd = Command::build("p4", "CREATE", LiteralMode::Sync)
        .astring("Entwürfe")
        .finish();
    assert_eq!(
        wire(&cmd),
        [
            (false, b"p4 CREATE {9}\r\n".to_vec()),
            (true, "Entwürfe".as_bytes().to_vec()),
            (false, b"\r\n".to_vec()),
        ]
    );
    assert_eq!(cmd.shown, "p4 CREATE {9} <9 octets>");

    let cmd = Command::build("p5", "CREATE", LiteralMode::Sync)
        .astring("a\r\nb")
        .finish();
    assert!(cmd.parts[1].wait, "CR/LF go in a literal, never raw");
}

#[test]
fn append_literal_modes() {
    let body = b"Subject: x\r\n\r\nhi\r\n";
    let append = |mode| {
        Command::build("p6", "APPEND", mode)
            .astring("INBOX")
            .raw("(\\Seen)")
            .literal(body)
            .finish()
    };
    assert_eq!(
        wire(&append(LiteralMode::Plus)),
        [
            (false, b"p6 APPEND \"INBOX\" (\\Seen) {18+}\r\n".to_vec()),
            (false, body.to_vec()),
            (false, b"\r\n".to_vec()),
        ]
    );
    let sync = append(LiteralMode::Sync);
    assert_eq!(
        sync.parts[0].bytes.as_ref(),
        b"p6 APPEND \"INBOX\" (\\Seen) {18}\r\n"
    );
    assert!(sync.parts[1].wait);
    let big = vec![b'x'; 5000];
    let minus = Command::build("p7", "APPEND", LiteralMode::Minus)
        .literal(&big)
        .finish();
    assert!(
        minus.parts[1].wait,
        "LITERAL- allows non-sync only up to 4096"
    );
    assert!(!append(LiteralMode::Minus).parts[1].wait);
}

#[test]
fn literal_mode_from_capabilities() {
    let caps = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        LiteralMode::from_capabilities(&caps(&["literal+"])),
        LiteralMode::Plus
    );
    assert_eq!(
        LiteralMode::from_capabilities(&caps(&["LITERAL-"])),
        LiteralMode::Minus
    );
    assert_eq!(
        LiteralMode::from_capabilities(&caps(&["IMAP4rev1"])),
        LiteralMode::Sync
    );
}

#[test]
fn uid_sets() {
    assert_eq!(uid_set(&[1, 2, 3, 4, 5, 9]).as_deref(), Some("1:5,9"));
    assert_eq!(uid_set(&[9, 3, 3, 1, 2, 0]).as_deref(), Some("1:3,9"));
    assert_eq!(uid_set(&[7]).as_deref(), Some("7"));
    assert_eq!(
        uid_set(&[4294967295, 4294967294]).as_deref(),
        Some("4294967294:4294967295")
    );
    assert_eq!(uid_set(&[]), None);
    assert_eq!(uid_set(&[0]), None);
}

#[test]
fn flags_for_append() {
    let flags = ["\\Seen", "\\Recent", "$Important", "\\Flagged"].map(String::from);
    assert_eq!(flag_list(&flags).unwrap(), "(\\Seen $Important \\Flagged)");
    assert_eq!(flag_list(&[]).unwrap(), "()");
    for bad in ["a b", "x)", "\\", "", "\"q\"", "a\r\n"] {
        assert!(flag_list(&[bad.to_owned()]).is_err(), "{bad:?}");
    }
}

#[test]
fn date_times() {
    assert!(check_date_time("17-Jul-1996 02:44:25 -0700").is_ok());
    assert!(check_date_time(" 1-Jan-2024 00:00:00 +0000").is_ok());
    for bad in [
        "17-Jul-1996 02:44:25",
        "17-July-1996 02:44:25 -0700",
        "17-Jul-1996 02:44:25 0700 ",
        "17-Jul-1996 02:44:25 -0700\"",
        "1996-07-17T02:44:25Z",
        "17-Jül-1996 02:44:25 -070",
    ] {
        assert!(check_date_time(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn header_search() {
    assert_eq!(
        search_header("X-Posta-Id", "abc \"1\"").unwrap(),
        "HEADER \"X-Posta-Id\" \"abc \\\"1\\\"\""
    );
    assert!(search_header("X Id", "a").is_err());
    assert!(search_header("X-Id:", "a").is_err());
    assert!(search_header("X-Id", "a\r\nb").is_err());
    assert!(search_header("X-Id", "ä").is_err());
    assert!(check_criteria("UNSEEN\r\nA1 LOGOUT").is_err());
    assert_eq!(check_criteria("UNSEEN").unwrap(), "UNSEEN");
}

#[test]
fn authenticate_plain_inline_or_after_the_challenge() {
    let ir = Command::authenticate_plain("p2", "AGFkbWluAHB3", true);
    assert_eq!(
        wire(&ir),
        [(false, b"p2 AUTHENTICATE PLAIN AGFkbWluAHB3\r\n".to_vec())]
    );
    let two = Command::authenticate_plain("p2", "AGFkbWluAHB3", false);
    assert_eq!(
        wire(&two),
        [
            (false, b"p2 AUTHENTICATE PLAIN\r\n".to_vec()),
            (true, b"AGFkbWluAHB3\r\n".to_vec())
        ]
    );
    for cmd in [ir, two] {
        assert_eq!(cmd.shown, "p2 AUTHENTICATE PLAIN <redacted>");
    }
}
