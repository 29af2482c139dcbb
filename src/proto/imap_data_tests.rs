use super::*;

fn one(wire: &[u8]) -> Data {
    parse(wire.to_vec()).unwrap()
}

fn list(wire: &[u8]) -> MailboxInfo {
    match one(wire) {
        Data::List(m) => m,
        other => panic!("not LIST: {other:?}"),
    }
}

#[test]
fn list_quoted_literal_and_atom_names() {
    let m = list(b"* LIST (\\HasNoChildren) \".\" \"Entw&APw-rfe\"\r\n");
    assert_eq!(
        (m.raw_name.as_str(), m.name.as_str()),
        ("Entw&APw-rfe", "Entwürfe")
    );
    assert_eq!(m.delimiter, Some('.'));
    assert_eq!(m.attributes, ["\\HasNoChildren"]);
    assert!(!m.noselect);

    let m = list(b"* LIST (\\Noselect \\HasChildren) \"/\" {9}\r\nwith \"q\"/\r\n");
    assert_eq!(m.raw_name, "with \"q\"/");
    assert!(m.noselect);

    let m = list(b"* LIST () NIL INBOX\r\n");
    assert_eq!((m.raw_name.as_str(), m.delimiter), ("INBOX", None));

    let m = list(b"* LIST (\\NonExistent) \"\\\\\" \"a\\\\b\"\r\n");
    assert_eq!((m.raw_name.as_str(), m.delimiter), ("a\\b", Some('\\')));
    assert!(m.noselect);

    // LIST-EXTENDED data after the name (RFC 5258 §3.5) is skipped.
    let m = list(b"* LIST (\\Subscribed) \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
    assert_eq!(m.raw_name, "Foo");
}

#[test]
fn list_keeps_names_that_are_not_modified_utf7() {
    let m = list(b"* LIST () \"/\" \"Bad&name\"\r\n");
    assert_eq!(
        (m.raw_name.as_str(), m.name.as_str()),
        ("Bad&name", "Bad&name")
    );
}

#[test]
fn namespace() {
    let Data::Namespace(ns) = one(
        b"* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\" \"X-EXT\" (\"a\"))(\"#public/\" NIL))\r\n",
    ) else {
        panic!("not NAMESPACE");
    };
    assert_eq!(ns.personal, [(String::new(), Some('/'))]);
    assert_eq!(ns.other_users, [("~".to_owned(), Some('/'))]);
    assert_eq!(ns.shared[1], ("#public/".to_owned(), None));
    let Data::Namespace(ns) = one(b"* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n") else {
        panic!("not NAMESPACE");
    };
    assert_eq!(ns.personal, [("INBOX.".to_owned(), Some('.'))]);
    assert!(ns.shared.is_empty());
}

#[test]
fn personal_namespace_filter() {
    let name = |n: &str| list(format!("* LIST () \"/\" \"{n}\"\r\n").as_bytes());
    let ns = |personal: &str, shared: &str| Namespaces {
        personal: vec![(personal.to_owned(), Some('/'))],
        other_users: vec![("~".to_owned(), Some('/'))],
        shared: vec![(shared.to_owned(), Some('/'))],
    };
    let dovecot = ns("", "shared/");
    assert!(dovecot.is_personal(&name("INBOX")));
    assert!(dovecot.is_personal(&name("Projects/2024")));
    assert!(!dovecot.is_personal(&name("shared/bob/INBOX")));
    assert!(!dovecot.is_personal(&name("shared")));
    assert!(!dovecot.is_personal(&name("~bob")));
    let courier = ns("INBOX/", "#shared/");
    assert!(courier.is_personal(&name("inbox")));
    assert!(courier.is_personal(&name("INBOX/Sent")));
    assert!(!courier.is_personal(&name("Archive")));
    assert!(Namespaces::default().is_personal(&name("Anything")));
}

#[test]
fn search_flags_and_numbered() {
    assert_eq!(
        one(b"* SEARCH 2 84 882\r\n"),
        Data::Search(vec![2, 84, 882])
    );
    assert_eq!(one(b"* SEARCH\r\n"), Data::Search(vec![]));
    assert_eq!(one(b"* SEARCH 5 (MODSEQ 9)\r\n"), Data::Search(vec![5]));
    assert_eq!(
        one(b"* FLAGS (\\Seen $Important)\r\n"),
        Data::Flags(vec!["\\Seen".into(), "$Important".into()])
    );
    assert_eq!(one(b"* 4 EXISTS\r\n"), Data::Exists(4));
    assert_eq!(one(b"* 2 EXPUNGE\r\n"), Data::Expunge(2));
    assert_eq!(one(b"* 1 RECENT\r\n"), Data::Other("1 RECENT".into()));
    assert_eq!(
        one(b"* ENABLED UTF8=ACCEPT\r\n"),
        Data::Enabled(vec!["UTF8=ACCEPT".into()])
    );
}

#[test]
fn a_long_search_line_is_fine() {
    let mut wire = b"* SEARCH".to_vec();
    for uid in 1..=3000u32 {
        wire.extend_from_slice(format!(" {uid}").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    assert!(wire.len() > crate::proto::MAX_LINE);
    let Data::Search(uids) = one(&wire) else {
        panic!("not SEARCH");
    };
    assert_eq!(uids.len(), 3000);
}

#[test]
fn status_lines_go_through_the_probe_parser() {
    let Data::Tagged { tag, resp } = one(b"p7 NO [TRYCREATE] Mailbox doesn't exist: X\r\n") else {
        panic!("not tagged");
    };
    assert_eq!(tag, "p7");
    assert_eq!(resp.code.map(|c| c.name), Some("TRYCREATE".into()));
    assert!(matches!(one(b"* BYE shutting down\r\n"), Data::Status(_)));
    assert!(matches!(one(b"+ go ahead\r\n"), Data::Continuation(_)));
    assert!(matches!(
        one(b"* CAPABILITY IMAP4rev1\r\n"),
        Data::Capability(_)
    ));
}

#[test]
fn hostile_data_fails() {
    for wire in [
        &b"* LIST (\\Noselect \"/\" x\r\n"[..],
        b"* LIST () \"//\" x\r\n",
        b"* LIST () \"/\"\r\n",
        b"* LIST () \"/\" {3}\r\n\xff\xfe\xfd\r\n",
        b"* SEARCH 1 x\r\n",
        b"* SEARCH 0\r\n",
        b"* FLAGS (\\Seen\r\n",
        b"* NAMESPACE ((\"\" \"/\")\r\n",
        b"* 4 EXISTS extra\r\n",
        b"* 99999999999 EXISTS\r\n",
        b"garbage\r\n",
    ] {
        assert!(parse(wire.to_vec()).is_err(), "{}", escape(wire));
    }
}

#[test]
fn vanished_and_enabled() {
    let Data::Vanished { earlier, uids } = one(b"* VANISHED (EARLIER) 41,43:116,118,120:211\r\n")
    else {
        panic!("not VANISHED");
    };
    assert!(earlier);
    assert_eq!(uids.ranges(), [(41, 41), (43, 116), (118, 118), (120, 211)]);
    let Data::Vanished { earlier, uids } = one(b"* VANISHED 1:4294967295\r\n") else {
        panic!("not VANISHED");
    };
    assert!(!earlier);
    assert!(uids.contains(4_000_000_000));
    assert_eq!(
        one(b"* ENABLED QRESYNC CONDSTORE\r\n"),
        Data::Enabled(vec!["QRESYNC".into(), "CONDSTORE".into()])
    );
    assert_eq!(one(b"* ENABLED\r\n"), Data::Enabled(Vec::new()));
}

#[test]
fn hostile_vanished_fails() {
    for wire in [
        &b"* VANISHED\r\n"[..],
        b"* VANISHED (LATER) 1\r\n",
        b"* VANISHED (EARLIER)\r\n",
        b"* VANISHED (EARLIER) 1:*\r\n",
        b"* VANISHED 0\r\n",
        b"* VANISHED 1,,2\r\n",
        b"* VANISHED 99999999999\r\n",
        b"* VANISHED 1 2\r\n",
        b"* ENABLED (x)\r\n",
    ] {
        assert!(parse(wire.to_vec()).is_err(), "{}", escape(wire));
    }
}

#[test]
fn what_an_idle_counts_as_a_change() {
    for wire in [
        &b"* 5 EXISTS\r\n"[..],
        b"* 3 EXPUNGE\r\n",
        b"* 2 FETCH (FLAGS (\\Seen))\r\n",
        b"* VANISHED 7:9\r\n",
        // After NOTIFY: another mailbox changed, one was created or renamed.
        b"* STATUS Otra (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1796429596 UNSEEN 1)\r\n",
        b"* LIST () \".\" Otra2 (\"OLDNAME\" (Otra))\r\n",
        // NOTIFY gave up: something changed, not said what.
        b"* OK [NOTIFICATIONOVERFLOW] too many\r\n",
    ] {
        assert!(one(wire).is_mailbox_change(), "{}", escape(wire));
    }
    assert!(one(b"* OK [NOTIFICATIONOVERFLOW] too many\r\n").is_notify_overflow());
    assert!(!one(b"* OK [ALERT] NOTIFICATIONOVERFLOW\r\n").is_notify_overflow());
    for wire in [
        &b"* OK Still here\r\n"[..],
        b"* VANISHED (EARLIER) 7:9\r\n",
        b"* 1 RECENT\r\n",
        b"* FLAGS (\\Seen \\Answered)\r\n",
        b"* CAPABILITY IMAP4rev1 IDLE\r\n",
    ] {
        assert!(!one(wire).is_mailbox_change(), "{}", escape(wire));
    }
}

#[test]
fn status_names_its_mailbox() {
    for (wire, name) in [
        (
            &b"* STATUS Otra (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1796429596 UNSEEN 1)\r\n"[..],
            "Otra",
        ),
        (
            b"* STATUS \"Proyectos.A&APE-o 2026\" ()\r\n",
            "Proyectos.A&APE-o 2026",
        ),
        (
            b"* STATUS INBOX (HIGHESTMODSEQ 18446744073709551615)\r\n",
            "INBOX",
        ),
        (b"* STATUS {4}\r\nOtra (MESSAGES 0)\r\n", "Otra"),
    ] {
        assert_eq!(
            one(wire),
            Data::MailboxStatus(name.into()),
            "{}",
            escape(wire)
        );
    }
    for wire in [
        &b"* STATUS Otra\r\n"[..],
        b"* STATUS Otra (MESSAGES)\r\n",
        b"* STATUS Otra (MESSAGES 1\r\n",
        b"* STATUS Otra (MESSAGES one)\r\n",
        b"* STATUS Otra (MESSAGES 1) extra\r\n",
        b"* STATUS \"\xff\" (MESSAGES 1)\r\n",
    ] {
        assert!(parse(wire.to_vec()).is_err(), "{}", escape(wire));
    }
}
