//! The table parsers (`mta::tables`, `mta::recipients`, `mta::users`) on hostile text, and
//! what runs on parsed tables: virtusertable resolution, the relay policy, the lint.
//!
//! Input: text, split at NUL bytes into the access table, the virtusertable,
//! local-host-names, the recipients list and the users file (a NUL is a control character,
//! which every table refuses, so the split takes nothing a table could hold). The whole text
//! is also given to every parser. Addresses to resolve come from the text's words with an `@`
//! and a fixed set. Nothing may panic.

#![no_main]

use std::net::IpAddr;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use posta::mta::policy::{Domains, decide};
use posta::mta::recipients::Recipients;
use posta::mta::tables::{Access, LocalHostNames, Outcome, Tables, VirtUser, lint, lint_peers};
use posta::mta::users::Users;

const ADDRESSES: &[&str] = &[
    "diego1@inkacoca.org",
    "usuario_x@inkacoca.org",
    "ana+lists@laorganizacion.org",
    "ana+@laorganizacion.org",
    "user@localhost",
    "postmaster@ours.org.",
    "nobody",
    "@ours.org",
];

fn parts(text: &str) -> [&str; 5] {
    let mut it = text.split('\0');
    std::array::from_fn(|_| it.next().unwrap_or(""))
}

fn check_tables(tables: &Tables, addresses: &[String]) {
    let backed_up: Vec<String> = tables.virtuser.domains().map(str::to_string).collect();
    let _ = lint(tables, &backed_up);
    let _ = lint_peers(tables, tables);
    let domains = Domains {
        local: vec!["local.example".into()],
        relay: vec!["backup.example".into()],
    };
    let ip: IpAddr = "203.0.113.50".parse().expect("ip");
    for a in addresses {
        let r = tables.virtuser.resolve(a, &tables.hosts);
        if let Outcome::Loop(chain) = &r.outcome {
            assert!(chain.len() >= 2, "a loop of one address: {chain:?}");
        }
        let d = decide(tables, ip, Some("helo.example"), "a@b.example", a, &domains);
        assert!(d.trail.last().is_some_and(|s| s.starts_with("decided: ")));
        let _ = tables.access.lookup_to(a);
        let _ = tables.access.lookup_from(a);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("fuzz");
    let mut addresses: Vec<String> = ADDRESSES.iter().map(|s| s.to_string()).collect();
    addresses.extend(
        text.split(|c: char| c.is_whitespace() || c == '\0')
            .filter(|w| w.contains('@') && w.len() <= 128)
            .take(8)
            .map(str::to_string),
    );

    // Each parser on the whole text.
    let access = Access::parse(path, &text);
    let virtuser = VirtUser::parse(path, &text);
    let hosts = LocalHostNames::parse(path, &text);
    if let Ok(h) = &hosts {
        for a in &addresses {
            let _ = h.contains(a);
            let _ = h.line(a);
        }
    }
    if let Ok(r) = Recipients::parse(path, &text) {
        for a in &addresses {
            let _ = r.contains(a);
            let _ = r.covers(a.rsplit_once('@').map_or("", |(_, d)| d));
            let _ = r.judge(a, &Domains::default(), &LocalHostNames::default());
        }
    }
    if let Ok(u) = Users::parse(path, &text) {
        for a in &addresses {
            let _ = u.canonical(a);
        }
    }
    if let (Ok(access), Ok(virtuser), Ok(hosts)) = (access, virtuser, hosts) {
        let tables = Tables {
            access,
            virtuser,
            hosts,
        };
        check_tables(&tables, &addresses);
    }

    // One table each, as a host has them.
    let [a, v, h, r, u] = parts(&text);
    let tables = Tables {
        access: Access::parse(Path::new("fuzz/access"), a).unwrap_or_default(),
        virtuser: VirtUser::parse(Path::new("fuzz/virtusertable"), v).unwrap_or_default(),
        hosts: LocalHostNames::parse(Path::new("fuzz/local-host-names"), h).unwrap_or_default(),
    };
    check_tables(&tables, &addresses);
    if let Ok(r) = Recipients::parse(Path::new("fuzz/recipients"), r) {
        for a in &addresses {
            let _ = r.contains(a);
        }
    }
    let _ = Users::parse(Path::new("fuzz/users"), u);
});
