//! Virtual-IP takeover in network namespaces: a client, mailserver1 and mailserver2 on one
//! bridge, each server with a real SMTP listener (tests/support/netns.rs). Library-level: the
//! `posta takeover vip` command tests live with the CLI.
//!
//! What a takeover must achieve is seen from the client: its SMTP connection to the virtual IP
//! is answered by the server that took it, and its neighbour entry for the address shows that
//! server's MAC, without waiting for the entry to expire.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use posta::takeover::vip::{
    self, AnnounceMode, AnnounceSettings, Change, Mac, ProbeOutcome, ProbeSettings, Vip, VipError,
};
use support::netns::{Host, Lan};

fn vip_on(address: impl Into<IpAddr>, prefix: u8, label: Option<&str>) -> Vip {
    Vip::new(
        address.into(),
        prefix,
        Host::INTERFACE,
        label.map(str::to_string),
    )
    .expect("valid test vip")
}

/// A short first burst and no second one: tests look at the client right after.
fn quick() -> AnnounceSettings {
    AnnounceSettings {
        count: 2,
        interval: Duration::from_millis(20),
        mode: AnnounceMode::Request,
        second_burst_after: None,
    }
}

fn add(host: &Host, v: &Vip) -> Change {
    let v = v.clone();
    host.ns
        .block_on(move || async move { vip::add(&v).await })
        .unwrap_or_else(|e| panic!("add on {}: {e}", host.role))
}

fn remove(host: &Host, v: &Vip) -> Change {
    let v = v.clone();
    host.ns
        .block_on(move || async move { vip::remove(&v).await })
        .unwrap_or_else(|e| panic!("remove on {}: {e}", host.role))
}

fn present(host: &Host, v: &Vip) -> bool {
    let v = v.clone();
    host.ns
        .block_on(move || async move { vip::present(&v).await })
        .unwrap_or_else(|e| panic!("present on {}: {e}", host.role))
}

fn probe(host: &Host, v: &Vip, settings: ProbeSettings) -> ProbeOutcome {
    let v = v.clone();
    host.ns
        .block_on(move || async move { vip::probe(&v, &settings).await })
        .unwrap_or_else(|e| panic!("probe on {}: {e}", host.role))
}

/// Announces and waits for the second burst too, if any.
fn announce(host: &Host, v: &Vip, settings: AnnounceSettings) {
    let v = v.clone();
    host.ns
        .block_on(move || async move { vip::announce(&v, &settings).await?.finish().await })
        .unwrap_or_else(|e| panic!("announce on {}: {e}", host.role));
}

fn mac(host: &Host) -> Mac {
    let octets: Vec<u8> = host
        .mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex MAC"))
        .collect();
    Mac(octets.try_into().expect("six octets"))
}

/// The client reaches the virtual IP and is answered by `server`, and its neighbour entry for
/// the address holds `server`'s MAC.
fn assert_client_reaches(lan: &Lan, address: IpAddr, server: &Host) {
    let greeting = lan
        .client
        .smtp_greeting(address)
        .unwrap_or_else(|e| panic!("client to {address}: {e}"));
    assert!(
        greeting.starts_with(&format!("220 {} ", server.role)),
        "client to {address} expected {}'s greeting, got {greeting:?}",
        server.role
    );
    assert_eq!(
        lan.client.neighbour(address).as_deref(),
        Some(server.mac.as_str()),
        "client's neighbour entry for {address} should be {}'s MAC: {}",
        server.role,
        lan.client.neighbour_line(address)
    );
}

/// Right after an announcement, before any traffic could have made the client re-resolve: its
/// entry already holds `server`'s MAC; then the client reaches `server` through the address.
fn assert_moved(lan: &Lan, address: IpAddr, server: &Host) {
    assert_eq!(
        lan.client.neighbour(address).as_deref(),
        Some(server.mac.as_str()),
        "the announcement should have moved the client's entry for {address} to {}: {}",
        server.role,
        lan.client.neighbour_line(address)
    );
    assert_client_reaches(lan, address, server);
}

#[test]
fn ipv4_takeover_failback_and_reclaim_move_the_client() {
    let lan = Lan::new();
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let v = vip_on(lan.vip4, 24, Some("eth0:mail"));

    // mailserver1 serves the address; the client has been talking to it and caches its MAC.
    assert_eq!(add(&lan.ms1, &v), Change::Done);
    assert_client_reaches(&lan, v.address, &lan.ms1);

    // mailserver1 dies (its link goes away; it still has the address configured).
    lan.ms1.link_down();
    assert_eq!(
        probe(&lan.ms2, &v, ProbeSettings::default()),
        ProbeOutcome::Free
    );
    assert!(!present(&lan.ms2, &v));
    assert_eq!(add(&lan.ms2, &v), Change::Done);
    assert!(present(&lan.ms2, &v));
    let label = lan
        .ms2
        .ns
        .ip(&["-4", "addr", "show", "dev", "eth0", "label", "eth0:mail"]);
    assert!(
        String::from_utf8_lossy(&label.stdout).contains(&format!("{}/24", lan.vip4)),
        "address carries its label: {}",
        String::from_utf8_lossy(&label.stdout)
    );
    // The client still has mailserver1's MAC: only the announcement moves it.
    assert_eq!(lan.client.neighbour(v.address), Some(lan.ms1.mac.clone()));
    announce(&lan.ms2, &v, quick());
    assert_moved(&lan, v.address, &lan.ms2);

    // Repeating the takeover changes nothing.
    assert_eq!(add(&lan.ms2, &v), Change::AlreadyThere);
    assert!(present(&lan.ms2, &v));

    // mailserver1 is back: failback removes the alias from mailserver2 (twice: a no-op) ...
    lan.ms1.link_up();
    assert_eq!(remove(&lan.ms2, &v), Change::Done);
    assert_eq!(remove(&lan.ms2, &v), Change::NotThere);
    assert!(!present(&lan.ms2, &v));
    // ... and the client still points at mailserver2 until mailserver1 reclaims.
    assert_eq!(lan.client.neighbour(v.address), Some(lan.ms2.mac.clone()));
    assert_eq!(add(&lan.ms1, &v), Change::AlreadyThere);
    announce(&lan.ms1, &v, quick());
    assert_moved(&lan, v.address, &lan.ms1);
}

#[test]
fn probe_names_the_mac_still_holding_the_address() {
    let lan = Lan::new();
    let v4 = vip_on(lan.vip4, 24, None);
    let v6 = vip_on(lan.vip6, 64, None);
    assert_eq!(add(&lan.ms1, &v4), Change::Done);
    assert_eq!(add(&lan.ms1, &v6), Change::Done);

    for v in [&v4, &v6] {
        assert_eq!(
            probe(&lan.ms2, v, ProbeSettings::default()),
            ProbeOutcome::Held { mac: mac(&lan.ms1) },
            "{v}"
        );
        // Probing changed nothing on mailserver2.
        assert!(!present(&lan.ms2, v), "{v}");
        // The holder probing for its own address hears only itself.
        assert_eq!(
            probe(&lan.ms1, v, ProbeSettings::default()),
            ProbeOutcome::Free,
            "{v}"
        );
    }

    // A disabled probe (no frames, no wait) returns at once without looking.
    let skip = ProbeSettings {
        count: 0,
        interval: Duration::from_millis(50),
        wait: Duration::ZERO,
    };
    assert_eq!(probe(&lan.ms2, &v4, skip), ProbeOutcome::Free);

    // The address the client uses for mailserver2 itself is held, by mailserver2's own MAC
    // from the client's point of view.
    let ms2_own = vip_on(lan.ms2.ipv4, 24, None);
    assert_eq!(
        probe(&lan.client, &ms2_own, ProbeSettings::default()),
        ProbeOutcome::Held { mac: mac(&lan.ms2) }
    );
}

#[test]
fn ipv6_takeover_with_unsolicited_advertisements() {
    let lan = Lan::new();
    let _g1 = lan.ms1.greeter();
    let _g2 = lan.ms2.greeter();
    let v = vip_on(lan.vip6, 64, None);

    assert_eq!(add(&lan.ms1, &v), Change::Done);
    assert!(
        present(&lan.ms1, &v),
        "added without kernel DAD, so usable at once"
    );
    assert_client_reaches(&lan, v.address, &lan.ms1);

    lan.ms1.link_down();
    assert_eq!(
        probe(&lan.ms2, &v, ProbeSettings::default()),
        ProbeOutcome::Free
    );
    assert_eq!(add(&lan.ms2, &v), Change::Done);
    assert_eq!(add(&lan.ms2, &v), Change::AlreadyThere);
    assert!(present(&lan.ms2, &v));
    assert_eq!(lan.client.neighbour(v.address), Some(lan.ms1.mac.clone()));
    announce(&lan.ms2, &v, quick());
    assert_moved(&lan, v.address, &lan.ms2);

    lan.ms1.link_up();
    assert_eq!(remove(&lan.ms2, &v), Change::Done);
    assert_eq!(remove(&lan.ms2, &v), Change::NotThere);
    assert_eq!(add(&lan.ms1, &v), Change::AlreadyThere);
    announce(&lan.ms1, &v, quick());
    assert_moved(&lan, v.address, &lan.ms1);
}

#[test]
fn second_burst_and_reply_mode_reach_the_client() {
    let lan = Lan::new();
    let v = vip_on(lan.vip4, 24, None);
    assert_eq!(add(&lan.ms2, &v), Change::Done);
    lan.client.set_neighbour(v.address, &lan.ms1.mac);

    let settings = AnnounceSettings {
        count: 1,
        interval: Duration::from_millis(10),
        mode: AnnounceMode::Reply,
        second_burst_after: Some(Duration::from_millis(600)),
    };
    let client = &lan.client;
    let before_second = {
        let v = v.clone();
        let ms1_mac = lan.ms1.mac.clone();
        let client_ns = client.ns.name().to_string();
        lan.ms2.ns.block_on(move || async move {
            let announcement = vip::announce(&v, &settings).await?;
            assert!(announcement.is_pending(), "second burst scheduled");
            // Between bursts, point the client back at mailserver1 behind the library's back:
            // only the second burst can fix it.
            let first = neighbour_in(&client_ns, v.address);
            set_neighbour_in(&client_ns, v.address, &ms1_mac);
            announcement.finish().await?;
            Ok::<_, VipError>(first)
        })
    }
    .unwrap_or_else(|e| panic!("announce: {e}"));
    assert_eq!(
        before_second.as_deref(),
        Some(lan.ms2.mac.as_str()),
        "first burst (ARP reply)"
    );
    assert_eq!(
        client.neighbour(v.address).as_deref(),
        Some(lan.ms2.mac.as_str()),
        "second burst: {}",
        client.neighbour_line(v.address)
    );

    // A cancelled second burst sends nothing more.
    lan.client.set_neighbour(v.address, &lan.ms1.mac);
    let v2 = v.clone();
    lan.ms2
        .ns
        .block_on(move || async move {
            let settings = AnnounceSettings {
                count: 0,
                second_burst_after: Some(Duration::from_millis(100)),
                ..AnnounceSettings::default()
            };
            vip::announce(&v2, &settings).await.map(|a| a.cancel())
        })
        .unwrap_or_else(|e| panic!("announce: {e}"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client.neighbour(v.address), Some(lan.ms1.mac.clone()));
}

fn neighbour_in(ns: &str, address: IpAddr) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            ns,
            "neigh",
            "show",
            &address.to_string(),
            "dev",
            Host::INTERFACE,
        ])
        .output()
        .expect("ip neigh show");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

fn set_neighbour_in(ns: &str, address: IpAddr, mac: &str) {
    let status = std::process::Command::new("ip")
        .args([
            "-n",
            ns,
            "neigh",
            "replace",
            &address.to_string(),
            "lladdr",
            mac,
        ])
        .args(["dev", Host::INTERFACE, "nud", "stale"])
        .status()
        .expect("ip neigh replace");
    assert!(status.success());
}

#[test]
fn refusals_name_the_address_and_interface() {
    let lan = Lan::new();
    let ms2 = &lan.ms2;
    let run = |v: Vip, op: &'static str| {
        ms2.ns.block_on(move || async move {
            match op {
                "add" => vip::add(&v).await.map(|_| ()),
                "remove" => vip::remove(&v).await.map(|_| ()),
                "probe" => vip::probe(&v, &ProbeSettings::default()).await.map(|_| ()),
                _ => vip::announce(&v, &AnnounceSettings::default())
                    .await
                    .map(|a| a.cancel()),
            }
        })
    };

    // mailserver2's own address is configured as /24: /32 would configure it twice.
    let own = vip_on(ms2.ipv4, 32, None);
    let e = run(own.clone(), "add").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{0} is already on eth0 as {0}/24, not /32: remove it or use /24",
            ms2.ipv4
        )
    );
    assert!(!e.is_permission());
    assert!(matches!(
        run(own, "remove"),
        Err(VipError::PrefixMismatch { .. })
    ));

    // The address on another interface of the host.
    ms2.ns.ip(&[
        "link", "add", "extra0", "type", "veth", "peer", "name", "extra1",
    ]);
    ms2.ns
        .ip(&["addr", "add", &format!("{}/24", lan.vip4), "dev", "extra0"]);
    let v = vip_on(lan.vip4, 24, None);
    assert_eq!(
        run(v.clone(), "add").unwrap_err().to_string(),
        format!(
            "{} is already on interface extra0, not eth0: remove it there first",
            lan.vip4
        )
    );
    assert_eq!(
        ms2.ns
            .block_on(move || async move { vip::remove(&v).await })
            .unwrap(),
        Change::NotThere,
        "remove leaves another interface's address alone"
    );

    // A missing interface, for each operation.
    let missing = Vip {
        interface: "eth9".into(),
        ..vip_on(lan.vip4, 24, None)
    };
    for op in ["add", "remove", "probe", "announce"] {
        assert_eq!(
            run(missing.clone(), op).unwrap_err().to_string(),
            "interface eth9 not found",
            "{op}"
        );
    }
    // Probing and announcing need Ethernet; addresses may live anywhere.
    let on_lo = Vip {
        interface: "lo".into(),
        ..vip_on(lan.vip4, 32, None)
    };
    assert!(matches!(
        run(on_lo.clone(), "probe"),
        Err(VipError::NotEthernet { .. })
    ));
    assert!(matches!(
        run(on_lo, "announce"),
        Err(VipError::NotEthernet { .. })
    ));
}
