use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn v4(prefix: u8, label: Option<&str>) -> Result<Vip, VipError> {
    Vip::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 25)),
        prefix,
        "eth0",
        label.map(str::to_string),
    )
}

#[test]
fn vip_checks() {
    assert!(v4(24, None).is_ok());
    assert!(v4(32, Some("eth0:mail")).is_ok());
    assert!(v4(24, Some("eth0")).is_ok());
    let err = |r: Result<Vip, VipError>| r.unwrap_err().to_string();
    assert_eq!(
        err(v4(33, None)),
        "invalid virtual ip 10.0.0.25/33 on eth0: prefix longer than /32"
    );
    assert!(err(v4(24, Some("eth1:mail"))).contains("must start with the interface name"));
    assert!(err(v4(24, Some("eth0:much-too-long"))).contains("fit in 15 bytes"));
    let six = |a: Ipv6Addr, p, label: Option<&str>| {
        Vip::new(IpAddr::V6(a), p, "eth0", label.map(str::to_string))
    };
    assert!(six("fd00::25".parse().unwrap(), 64, None).is_ok());
    assert!(err(six("fd00::25".parse().unwrap(), 129, None)).contains("/128"));
    assert!(err(six("fd00::25".parse().unwrap(), 64, Some("eth0:x"))).contains("IPv4"));
    for bad in [
        "0.0.0.0",
        "224.0.0.18",
        "255.255.255.255",
        "127.0.0.1",
        "::",
        "ff02::1",
        "::1",
    ] {
        let r = Vip::new(bad.parse().unwrap(), 24, "eth0", None);
        assert!(err(r).contains("not a unicast address"), "{bad}");
    }
    let long = Vip::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 25)),
        24,
        "x".repeat(16),
        None,
    );
    assert!(err(long).contains("1 to 15 bytes"));
    let empty = Vip::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 25)), 24, "", None);
    assert!(empty.is_err());
}

#[test]
fn vip_display_names_address_and_interface() {
    assert_eq!(v4(24, None).unwrap().to_string(), "10.0.0.25/24 on eth0");
    assert_eq!(
        v4(24, Some("eth0:mail")).unwrap().to_string(),
        "10.0.0.25/24 on eth0 (label eth0:mail)"
    );
}

#[test]
fn default_settings() {
    let p = ProbeSettings::default();
    assert_eq!(p.duration(), Duration::from_millis(200));
    assert_eq!(ProbeSettings::RFC5227.duration(), Duration::from_secs(4));
    let zero = ProbeSettings {
        count: 0,
        interval: Duration::from_millis(50),
        wait: Duration::ZERO,
    };
    assert_eq!(zero.duration(), Duration::ZERO);
    let a = AnnounceSettings::default();
    assert_eq!(
        (a.count, a.interval, a.mode, a.second_burst_after),
        (
            5,
            Duration::from_millis(200),
            AnnounceMode::Request,
            Some(Duration::from_secs(5))
        )
    );
}

#[test]
fn settings_bounds() {
    let vip = v4(24, None).unwrap();
    let huge = ProbeSettings {
        count: 3,
        interval: Duration::from_secs(3600),
        wait: Duration::ZERO,
    };
    assert!(
        huge.check(&vip)
            .unwrap_err()
            .to_string()
            .contains("probe settings")
    );
    assert!(ProbeSettings::RFC5227.check(&vip).is_ok());
    let flood = AnnounceSettings {
        count: 1_000_000,
        ..AnnounceSettings::default()
    };
    assert!(flood.check(&vip).is_err());
    let late = AnnounceSettings {
        second_burst_after: Some(Duration::from_secs(86_400)),
        ..AnnounceSettings::default()
    };
    assert!(late.check(&vip).is_err());
    assert!(AnnounceSettings::default().check(&vip).is_ok());
}

#[test]
fn interface_lookup_errors() {
    assert!(matches!(
        interface_mac("posta-nonesuch"),
        Err(VipError::NoInterface { .. })
    ));
    assert_eq!(
        interface_mac("lo").unwrap_err().to_string(),
        "interface lo is not an ethernet interface: arp and neighbour discovery need one"
    );
}

#[test]
fn subnets() {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    assert!(link::same_subnet(ip("10.77.1.12"), ip("10.77.1.100"), 24));
    assert!(!link::same_subnet(ip("10.77.2.12"), ip("10.77.1.100"), 24));
    assert!(link::same_subnet(ip("192.0.2.1"), ip("10.0.0.1"), 0));
    assert!(!link::same_subnet(ip("10.0.0.2"), ip("10.0.0.1"), 32));
}
