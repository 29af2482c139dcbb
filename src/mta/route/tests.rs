use super::*;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mx(preference: u16, host: &str, addrs: &[&str]) -> Mx {
    Mx {
        preference,
        host: name(host),
        addrs: addrs.iter().map(|a| ip(a)).collect(),
    }
}

fn domain() -> Name {
    name("laorganizacion.org.")
}

/// mailserver2, the backup MX, known by name only.
fn me() -> SelfIdentity {
    SelfIdentity {
        names: vec![name("mailserver2.laorganizacion.org")],
        addrs: vec![ip("192.0.2.99")],
    }
}

/// The seed's layout: primary 10, us 20, the friend 30.
fn seed_layout() -> Vec<Mx> {
    vec![
        mx(30, "relay.email-friend-store.com.", &["198.51.100.30"]),
        mx(20, "mailserver2.laorganizacion.org.", &["192.0.2.20"]),
        mx(
            10,
            "mailserver1.laorganizacion.org.",
            &["192.0.2.10", "2001:db8::10"],
        ),
    ]
}

fn addrs(c: &[Candidate]) -> Vec<String> {
    c.iter().map(|c| c.addr.to_string()).collect()
}

#[test]
fn not_an_mx_of_the_domain_tries_every_host_by_preference() {
    let c = select(seed_layout(), &domain(), &SelfIdentity::default(), 25).unwrap();
    assert_eq!(
        addrs(&c),
        [
            "192.0.2.10:25",
            "[2001:db8::10]:25",
            "192.0.2.20:25",
            "198.51.100.30:25"
        ]
    );
    assert_eq!(c[0].host.to_string(), "mailserver1.laorganizacion.org");
}

#[test]
fn backup_mx_relays_only_to_more_preferred_hosts() {
    let c = select(seed_layout(), &domain(), &me(), 2525).unwrap();
    assert_eq!(addrs(&c), ["192.0.2.10:2525", "[2001:db8::10]:2525"]);
}

#[test]
fn we_are_recognised_by_address_too() {
    let me = SelfIdentity {
        names: vec![name("other-name.example")],
        addrs: vec![ip("192.0.2.20")],
    };
    let c = select(seed_layout(), &domain(), &me, 25).unwrap();
    assert_eq!(addrs(&c), ["192.0.2.10:25", "[2001:db8::10]:25"]);
}

#[test]
fn names_compare_without_case_or_trailing_dot() {
    let me = SelfIdentity {
        names: vec![name("MailServer2.LaOrganizacion.org")],
        addrs: Vec::new(),
    };
    assert!(me.is_me(&name("mailserver2.laorganizacion.org."), &[]));
    assert!(!me.is_me(&name("mailserver1.laorganizacion.org."), &[]));
}

#[test]
fn the_friend_at_30_relays_to_10_and_20_but_never_to_itself() {
    let friend = SelfIdentity {
        names: vec![name("relay.email-friend-store.com")],
        addrs: Vec::new(),
    };
    let c = select(seed_layout(), &domain(), &friend, 25).unwrap();
    assert_eq!(
        addrs(&c),
        ["192.0.2.10:25", "[2001:db8::10]:25", "192.0.2.20:25"]
    );
}

#[test]
fn best_mx_is_a_loop() {
    let mxs = vec![
        mx(20, "mailserver2.laorganizacion.org.", &["192.0.2.20"]),
        mx(30, "relay.email-friend-store.com.", &["198.51.100.30"]),
    ];
    let e = select(mxs, &domain(), &me(), 25).unwrap_err();
    assert_eq!(
        e,
        RouteError::LoopsBack {
            domain: domain(),
            preference: 20
        }
    );
    assert!(!e.is_transient());
    assert_eq!(e.status().to_string(), "5.4.6");
    assert!(e.to_string().contains("loops back to myself"));
}

#[test]
fn an_mx_of_equal_preference_is_not_used() {
    let mxs = vec![
        mx(10, "mailserver1.laorganizacion.org.", &["192.0.2.10"]),
        mx(10, "mailserver2.laorganizacion.org.", &["192.0.2.20"]),
    ];
    let e = select(mxs, &domain(), &me(), 25).unwrap_err();
    assert!(matches!(e, RouteError::LoopsBack { preference: 10, .. }));
}

#[test]
fn our_lowest_preference_counts_when_we_appear_twice() {
    let mut mxs = seed_layout();
    mxs.push(mx(5, "mx-alias.laorganizacion.org.", &["192.0.2.99"]));
    let e = select(mxs, &domain(), &me(), 25).unwrap_err();
    assert!(matches!(e, RouteError::LoopsBack { preference: 5, .. }));
}

#[test]
fn null_mx_is_a_permanent_failure() {
    let e = select(vec![mx(0, ".", &[])], &domain(), &me(), 25).unwrap_err();
    assert_eq!(e, RouteError::NullMx { domain: domain() });
    assert!(!e.is_transient());
    assert_eq!(e.status().to_string(), "5.1.10");
}

#[test]
fn a_null_mx_beside_real_ones_is_ignored() {
    let mxs = vec![mx(0, ".", &[]), mx(10, "mx.example.", &["192.0.2.1"])];
    let c = select(mxs, &domain(), &me(), 25).unwrap();
    assert_eq!(addrs(&c), ["192.0.2.1:25"]);
}

#[test]
fn hosts_without_addresses_are_skipped_and_addresses_tried_once() {
    let mxs = vec![
        mx(10, "gone.example.", &[]),
        mx(20, "a.example.", &["192.0.2.1"]),
        mx(30, "b.example.", &["192.0.2.1", "192.0.2.2"]),
    ];
    let c = select(mxs, &domain(), &me(), 25).unwrap();
    assert_eq!(addrs(&c), ["192.0.2.1:25", "192.0.2.2:25"]);
    assert_eq!(c[0].host.to_string(), "a.example");
    let e = select(vec![mx(10, "gone.example.", &[])], &domain(), &me(), 25).unwrap_err();
    assert_eq!(e, RouteError::NoAddress { domain: domain() });
    assert_eq!(e.status().to_string(), "5.4.4");
}

#[test]
fn equal_preferences_keep_input_order_in_select() {
    let mxs = vec![
        mx(10, "b.example.", &["192.0.2.2"]),
        mx(10, "a.example.", &["192.0.2.1"]),
    ];
    let c = select(mxs, &domain(), &me(), 25).unwrap();
    assert_eq!(addrs(&c), ["192.0.2.2:25", "192.0.2.1:25"]);
}

#[test]
fn shuffle_ties_randomizes_only_within_a_preference() {
    let layout = || {
        vec![
            mx(20, "c.example.", &[]),
            mx(10, "a.example.", &[]),
            mx(10, "b.example.", &[]),
            mx(30, "d.example.", &[]),
        ]
    };
    let mut firsts = std::collections::HashSet::new();
    for seed in 0..64 {
        let mut mxs = layout();
        shuffle_ties(&mut mxs, seed);
        let prefs: Vec<u16> = mxs.iter().map(|m| m.preference).collect();
        assert_eq!(prefs, [10, 10, 20, 30]);
        firsts.insert(mxs[0].host.to_string());
        let mut again = layout();
        shuffle_ties(&mut again, seed);
        assert_eq!(mxs, again, "same seed, same order");
    }
    assert_eq!(firsts.len(), 2, "both MX 10 hosts come first for some seed");
}

#[test]
fn dns_and_smarthost_failures_are_transient() {
    let e = RouteError::Dns {
        name: domain(),
        reason: "request timed out".into(),
    };
    assert!(e.is_transient());
    assert_eq!(e.status().to_string(), "4.4.3");
    let e = RouteError::Smarthost {
        host: "mailserver1.laorganizacion.org".into(),
        reason: "no A or AAAA record".into(),
    };
    assert!(e.is_transient());
    let e = RouteError::NoSuchDomain { domain: domain() };
    assert!(!e.is_transient());
    assert_eq!(e.status().to_string(), "5.1.2");
}

#[test]
fn hosts_display_without_the_root_dot() {
    assert_eq!(Host::Name(name("mx.example.")).to_string(), "mx.example");
    assert_eq!(Host::Ip(ip("2001:db8::1")).to_string(), "2001:db8::1");
}
