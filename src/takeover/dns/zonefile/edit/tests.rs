use super::*;

const TODAY: Date = (2026, 11, 27);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = list.iter().map(|s| ip(s)).collect();
    v.sort();
    v
}

fn rec(name: &str, ttl: u32) -> Record {
    Record::new("example.test", name, ttl).unwrap()
}

/// The new text of a swap that must succeed.
fn done(file: &str, name: &str, ttl: u32, expect: &[&str], to: &[&str]) -> String {
    match plan(file, &rec(name, ttl), &ips(expect), &ips(to), TODAY) {
        Ok(Outcome::Done { text, .. }) => text,
        other => panic!("expected Done, got {other:?}"),
    }
}

/// The seed's style: tabs, `IN` before the type, blank owners continuing the previous one.
const SEED: &str = "\
$ORIGIN example.test.
$TTL 3600
; archivo de zona de example.test
@\tIN\tSOA\tns1 hostmaster (
\t\t2026010101\t; serial
\t\t3600 900 604800 300 )
\tIN\tNS\tns1
@\tIN\tMX\t10\tmailserver1
\tIN\tMX\t20\tmailserver2
ns1\tIN\tA\t127.0.0.1
mailserver1\tIN\tA\t\t10.0.0.25 ; the primary
\tIN\tTXT\t\"v=spf1 mx -all\"
mailserver2\tIN\tA\t\t10.0.0.26
";

#[test]
fn seed_style_keeps_layout_and_comments_and_bumps_a_date_serial() {
    let text = done(SEED, "mailserver1", 3600, &["10.0.0.25"], &["10.0.0.26"]);
    let want = SEED
        .replace("2026010101", "2026112700")
        .replace("10.0.0.25 ; the primary", "10.0.0.26 ; the primary");
    assert_eq!(text, want);
}

#[test]
fn a_new_ttl_is_written_with_the_lines_own_separator() {
    let text = done(SEED, "mailserver1", 60, &["10.0.0.25"], &["10.0.0.26"]);
    assert!(
        text.contains("\nmailserver1\t60\tIN\tA\t\t10.0.0.26 ; the primary\n"),
        "{text}"
    );
    // The continuation line still belongs to mailserver1 and keeps $TTL.
    assert!(text.contains("\n\tIN\tTXT\t\"v=spf1 mx -all\"\n"), "{text}");
    // Back again: the TTL stays explicit, the address returns.
    let back = done(&text, "mailserver1", 60, &["10.0.0.26"], &["10.0.0.25"]);
    assert!(
        back.contains("\nmailserver1\t60\tIN\tA\t\t10.0.0.25 ; the primary\n"),
        "{back}"
    );
}

#[test]
fn an_explicit_ttl_is_replaced_in_place() {
    let file = "$TTL 60\n@ IN SOA ns1 h 5 60 60 600 60\nmail 3600 IN A 10.0.0.25\n";
    let text = done(file, "mail", 300, &["10.0.0.25"], &["10.0.0.26"]);
    assert_eq!(
        text,
        "$TTL 60\n@ IN SOA ns1 h 6 60 60 600 60\nmail 300 IN A 10.0.0.26\n"
    );
    // Class before or after the TTL, lower-case type, absolute owner in other case.
    let file = "$TTL 60\n@ IN SOA ns1 h 5 60 60 600 60\nMAIL.example.test. IN 3600 a 10.0.0.25\n";
    let text = done(file, "mail", 300, &["10.0.0.25"], &["10.0.0.26"]);
    assert!(
        text.ends_with("MAIL.example.test. IN 300 a 10.0.0.26\n"),
        "{text}"
    );
}

#[test]
fn origin_changes_are_followed() {
    let file = "$TTL 60\n@ IN SOA ns1 h 5 60 60 600 60\n$ORIGIN mail.example.test.\n\
                @ IN A 10.0.0.25\nwww IN A 10.0.0.25\n";
    let text = done(file, "mail", 60, &["10.0.0.25"], &["10.0.0.26"]);
    assert!(
        text.ends_with("@ IN A 10.0.0.26\nwww IN A 10.0.0.25\n"),
        "{text}"
    );
}

#[test]
fn fewer_addresses_drop_later_lines_and_more_add_lines_after_the_last() {
    let file = "$TTL 60\n@ IN SOA ns1 h 5 60 60 600 60\nmail\tIN\tA\t10.0.0.25\n\
                \tIN\tA\t10.0.0.27\n\tIN\tMX\t10 mail\nwww IN A 10.0.0.1\n";
    let text = done(
        file,
        "mail",
        60,
        &["10.0.0.25", "10.0.0.27"],
        &["10.0.0.26"],
    );
    assert!(
        text.ends_with("mail\tIN\tA\t10.0.0.26\n\tIN\tMX\t10 mail\nwww IN A 10.0.0.1\n"),
        "{text}"
    );
    let more = done(
        &text,
        "mail",
        60,
        &["10.0.0.26"],
        &["10.0.0.26", "2001:db8::26"],
    );
    assert!(
        more.ends_with(
            "mail\tIN\tA\t10.0.0.26\nmail\tIN\tAAAA\t2001:db8::26\n\tIN\tMX\t10 mail\nwww IN A 10.0.0.1\n"
        ),
        "{more}"
    );
}

#[test]
fn added_lines_leave_the_comment_behind() {
    let text = done(
        SEED,
        "mailserver1",
        3600,
        &["10.0.0.25"],
        &["10.0.0.26", "10.0.0.27"],
    );
    assert!(
        text.contains(
            "mailserver1\tIN\tA\t\t10.0.0.26 ; the primary\nmailserver1\tIN\tA\t\t10.0.0.27\n\tIN\tTXT"
        ),
        "{text}"
    );
}

#[test]
fn a_family_change_rewrites_the_type() {
    let file = "$TTL 60\n@ IN SOA ns1 h 5 60 60 600 60\nmail IN A 10.0.0.25\n";
    let text = done(file, "mail", 60, &["10.0.0.25"], &["2001:db8::26"]);
    assert!(text.ends_with("mail IN AAAA 2001:db8::26\n"), "{text}");
}

#[test]
fn a_deleted_owner_line_hands_its_name_to_the_continuation() {
    let file = "$TTL 60\n@ IN SOA ns1 h 5 60 60 600 60\nmail IN A 10.0.0.25\n\tIN TXT \"x\"\n\
                mail IN AAAA 2001:db8::25\n\tIN MX 10 mx\n";
    let text = done(
        file,
        "mail",
        60,
        &["10.0.0.25", "2001:db8::25"],
        &["10.0.0.26"],
    );
    assert!(
        text.ends_with("mail IN A 10.0.0.26\n\tIN TXT \"x\"\nmail\tIN MX 10 mx\n"),
        "{text}"
    );
}

#[test]
fn already_done_and_not_expected_change_nothing() {
    let r = rec("mailserver1", 60);
    match plan(SEED, &r, &ips(&["10.0.0.24"]), &ips(&["10.0.0.25"]), TODAY) {
        Ok(Outcome::AlreadyDone { current }) => {
            assert_eq!(current.addrs, ips(&["10.0.0.25"]));
            assert_eq!(current.serial, 2026010101);
            assert_eq!(current.ttl, Some(3600));
            assert_eq!(current.negative_ttl, 300);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        plan(SEED, &r, &ips(&["10.0.0.99"]), &ips(&["10.0.0.26"]), TODAY),
        Err(Refusal::NotExpected(ips(&["10.0.0.25"])))
    );
    let absent = rec("nobody", 60);
    assert_eq!(
        plan(
            SEED,
            &absent,
            &ips(&["10.0.0.99"]),
            &ips(&["10.0.0.26"]),
            TODAY
        ),
        Err(Refusal::NotExpected(vec![]))
    );
}

#[test]
fn edits_that_would_move_other_ttls_are_refused() {
    // No $TTL and an SOA with a TTL (RFC 1035 semantics): `www` takes its TTL from the
    // record before it, which the edit would change.
    let file = "@ 600 IN SOA ns1 h 5 60 60 600 60\nmail 3600 IN A 10.0.0.25\nwww IN A 10.0.0.1\n";
    match plan(
        file,
        &rec("mail", 60),
        &ips(&["10.0.0.25"]),
        &ips(&["10.0.0.26"]),
        TODAY,
    ) {
        Err(Refusal::Unsafe(m)) => {
            let m = m.to_string();
            assert!(m.contains("www.example.test. 3600 A"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // The same zone with the TTL unchanged is fine.
    let text = done(file, "mail", 3600, &["10.0.0.25"], &["10.0.0.26"]);
    assert!(text.contains("mail 3600 IN A 10.0.0.26\n"), "{text}");
}

#[test]
fn broken_zones_are_refused_with_a_line() {
    let r = rec("mail", 60);
    let go = |file: &str| plan(file, &r, &ips(&["10.0.0.25"]), &ips(&["10.0.0.26"]), TODAY);
    assert_eq!(
        go("$TTL 60\nmail IN A 10.0.0.25\n"),
        Err(Refusal::Syntax(
            1,
            "no SOA record for zone example.test.".into()
        ))
    );
    assert_eq!(
        go("$TTL 60\n@ IN SOA ns1 h 5 60 60 600 60\nmail IN A 10.0.0.256\n"),
        Err(Refusal::Syntax(3, "bad A record".into()))
    );
    assert_eq!(
        go("$TTL 60\n@ IN SOA ns1 h x 60 60 600 60\nmail IN A 10.0.0.25\n"),
        Err(Refusal::Syntax(2, "the SOA serial is not a number".into()))
    );
}

#[test]
fn crlf_files_stay_crlf() {
    let file = "$TTL 60\r\n@ IN SOA ns1 h 5 60 60 600 60\r\nmail IN A 10.0.0.25\r\n";
    let text = done(file, "mail", 60, &["10.0.0.25"], &["10.0.0.26"]);
    assert_eq!(
        text,
        "$TTL 60\r\n@ IN SOA ns1 h 6 60 60 600 60\r\nmail IN A 10.0.0.26\r\n"
    );
}

#[test]
fn serials() {
    // YYYYMMDDnn: today's first, or the next number on the same day.
    assert_eq!(next_serial(2026010101, TODAY), 2026112700);
    assert_eq!(next_serial(2026112700, TODAY), 2026112701);
    assert_eq!(next_serial(2026112799, TODAY), 2026112800);
    // A date serial from the future (clock behind): still increases.
    assert_eq!(next_serial(2027010100, TODAY), 2027010101);
    // Plain counters and RFC 1982 wrap-around (0 skipped).
    assert_eq!(next_serial(1, TODAY), 2);
    assert_eq!(next_serial(99999, TODAY), 100000);
    assert_eq!(next_serial(u32::MAX, TODAY), 1);
    // Looks numeric but not like a date (month 13).
    assert_eq!(next_serial(2026130101, TODAY), 2026130102);
}

/// Never a panic, whatever the file: every prefix of the seed zone, and the seed with each
/// troublesome character put at each position, gives an outcome or a refusal.
#[test]
fn mangled_zones_never_panic() {
    let r = rec("mailserver1", 60);
    let (expect, to) = (ips(&["10.0.0.25"]), ips(&["10.0.0.26", "2001:db8::26"]));
    for end in 0..=SEED.len() {
        let _ = plan(&SEED[..end], &r, &expect, &to, TODAY);
    }
    for at in 0..=SEED.len() {
        for c in ["(", ")", "\"", "\\", ";", "\n", "\t", "@", "$TTL", "é"] {
            let mangled = format!("{}{c}{}", &SEED[..at], &SEED[at..]);
            let _ = plan(&mangled, &r, &expect, &to, TODAY);
        }
    }
}
