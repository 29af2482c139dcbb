//! `posta mta`'s route lookup against a real BIND9 (tests/support/bind.rs): MX records for a
//! domain we back up (MX 20 behind a primary at 10), one where we are the best MX (a loop),
//! a null MX, an implicit MX, a dangling MX host and NXDOMAIN, each asked through a resolver
//! pointed at that named. Transient failures come from a name outside named's zone (REFUSED)
//! and from a port where no server listens.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::proto::rr::Name;
use posta::mta::route::{Candidate, Host, LookupOptions, Route, RouteError, Router, SelfIdentity};
use support::Bind;
use support::ports::free_port;

const ZONE: &str = "route.test";

fn zone() -> String {
    Bind::minimal_zone(ZONE)
        + "\
backup IN MX 10 mx1
backup IN MX 20 mx2
backup IN MX 30 friend
best IN MX 10 mx2
best IN MX 20 friend
nullmx IN MX 0 .
implicit IN A 127.0.0.40
dangling IN MX 10 nowhere
mx1 IN A 127.0.0.10
mx1 IN AAAA 2001:db8::10
mx2 IN A 127.0.0.20
friend IN A 127.0.0.30
"
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// mx2.route.test: known by name, and by address for the smarthost check.
fn me() -> SelfIdentity {
    SelfIdentity {
        names: vec![name("mx2.route.test")],
        addrs: vec!["127.0.0.20".parse::<IpAddr>().unwrap()],
    }
}

fn router(port: u16) -> Router {
    Router::new(
        me(),
        &LookupOptions {
            port: 2525,
            nameserver: Some(support::sys::loopback(port)),
            timeout: Duration::from_secs(2),
        },
    )
    .unwrap()
}

fn shown(c: &[Candidate]) -> Vec<String> {
    c.iter().map(|c| format!("{} {}", c.host, c.addr)).collect()
}

async fn mx(r: &Router, domain: &str) -> Result<Vec<Candidate>, RouteError> {
    r.route(&Route::Mx, &name(domain)).await
}

#[tokio::test]
async fn mx_routes_from_a_real_zone() {
    let bind = Bind::start_static(ZONE, &zone());
    let r = router(bind.port());

    // Backup MX at 20: only the primary at 10, both its addresses, on the configured port.
    let c = mx(&r, "backup.route.test").await.unwrap();
    assert_eq!(
        shown(&c),
        [
            "mx1.route.test 127.0.0.10:2525",
            "mx1.route.test [2001:db8::10]:2525"
        ]
    );

    // Not an MX of it (a domain we merely relay for): every host, by preference.
    let stranger = Router::new(
        SelfIdentity::default(),
        &LookupOptions {
            nameserver: Some(bind.addr()),
            ..LookupOptions::default()
        },
    )
    .unwrap();
    let c = mx(&stranger, "backup.route.test").await.unwrap();
    assert_eq!(
        shown(&c),
        [
            "mx1.route.test 127.0.0.10:25",
            "mx1.route.test [2001:db8::10]:25",
            "mx2.route.test 127.0.0.20:25",
            "friend.route.test 127.0.0.30:25"
        ]
    );

    // We are the best MX: the mail would loop, a permanent 5.4.6.
    let e = mx(&r, "best.route.test").await.unwrap_err();
    assert!(
        matches!(e, RouteError::LoopsBack { preference: 10, .. }),
        "{e}"
    );
    assert!(!e.is_transient());
    assert_eq!(e.status().to_string(), "5.4.6");

    let e = mx(&r, "nullmx.route.test").await.unwrap_err();
    assert!(matches!(e, RouteError::NullMx { .. }), "{e}");
    assert_eq!(e.status().to_string(), "5.1.10");

    let e = mx(&r, "nosuch.route.test").await.unwrap_err();
    assert!(matches!(e, RouteError::NoSuchDomain { .. }), "{e}");
    assert!(!e.is_transient());
    assert_eq!(e.status().to_string(), "5.1.2");

    // No MX records: the domain's own address, RFC 5321 §5.1.
    let c = mx(&r, "implicit.route.test").await.unwrap();
    assert_eq!(shown(&c), ["implicit.route.test 127.0.0.40:2525"]);

    // The only MX host does not exist: nothing to try, and nothing to retry.
    let e = mx(&r, "dangling.route.test").await.unwrap_err();
    assert!(matches!(e, RouteError::NoAddress { .. }), "{e}");
    assert!(!e.is_transient());

    // named is not authoritative for it and does not recurse: REFUSED, try again later.
    let e = mx(&r, "elsewhere.example").await.unwrap_err();
    assert!(matches!(e, RouteError::Dns { .. }), "{e}");
    assert!(e.is_transient());
    assert_eq!(e.status().to_string(), "4.4.3");
}

#[tokio::test]
async fn smarthost_routes_from_a_real_zone() {
    let bind = Bind::start_static(ZONE, &zone());
    let r = router(bind.port());
    let domain = name("backup.route.test");
    let smarthost = |host: &str, port| Route::Smarthost {
        host: Host::Name(name(host)),
        port,
    };

    // No MX lookup: the fixed host's addresses on its own port, even for a domain we are
    // the best MX of.
    let c = r
        .route(&smarthost("mx1.route.test", 587), &name("best.route.test"))
        .await
        .unwrap();
    assert_eq!(
        shown(&c),
        [
            "mx1.route.test 127.0.0.10:587",
            "mx1.route.test [2001:db8::10]:587"
        ]
    );
    let c = r
        .route(
            &Route::Smarthost {
                host: Host::Ip("192.0.2.1".parse().unwrap()),
                port: 25,
            },
            &domain,
        )
        .await
        .unwrap();
    assert_eq!(shown(&c), ["192.0.2.1 192.0.2.1:25"]);

    // A misconfigured smarthost keeps the mail queued.
    for host in ["nowhere.route.test", "mx2.route.test"] {
        let e = r.route(&smarthost(host, 25), &domain).await.unwrap_err();
        assert!(matches!(e, RouteError::Smarthost { .. }), "{e}");
        assert!(e.is_transient(), "{e}");
    }
}

#[tokio::test]
async fn no_name_server_is_a_transient_failure() {
    let r = Router::new(
        me(),
        &LookupOptions {
            port: 25,
            nameserver: Some(support::sys::loopback(free_port())),
            timeout: Duration::from_millis(500),
        },
    )
    .unwrap();
    let e = mx(&r, "backup.route.test").await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(matches!(e, RouteError::Dns { .. }), "{e}");
}
