//! The records a layout's zone must hold, and the zone file that holds them (seed §11.2: the
//! domain's MX is the switch, each office's subdomain has its own MX and server address).
//!
//! Pure: the caller reads the layout and writes the file. Output is deterministic: the same
//! layout and serial give the same bytes, in layout order (SOA and NS first, then the domain's
//! MX records, then each office).

use std::net::IpAddr;
use std::path::Path;

use super::{Data, Rr, Soa};
use crate::dns::{absolute, in_zone, relative};
use crate::routes::layout::LayoutFile;

/// SOA timers (RFC 1912 §2.2 ranges). The negative-caching TTL (RFC 2308) is short so a name
/// added during a failover is not remembered as missing for long.
const REFRESH: u32 = 3600;
const RETRY: u32 = 900;
const EXPIRE: u32 = 1_209_600;
const MINIMUM: u32 = 300;

/// The planned zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The zone's name, absolute (`inkacoca.org.`).
    pub origin: String,
    /// Every record's TTL (`[dns] ttl`).
    pub ttl: u32,
    /// SOA first; each record with the layout entry it comes from.
    pub entries: Vec<(Rr, String)>,
    /// Addresses the layout gives for names outside the zone, which this zone cannot publish.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn records(&self) -> impl Iterator<Item = &Rr> {
        self.entries.iter().map(|(r, _)| r)
    }
}

/// A layout whose zone cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{name} is inside zone {zone} and named by {used_by}, but nothing in the layout gives \
         it an address: add `address` to its server or an address to its [dns] entry"
    )]
    NoAddress {
        name: String,
        zone: String,
        used_by: String,
    },
    #[error("office {office}: its domain {domain} is outside zone {zone}")]
    OutsideZone {
        office: String,
        domain: String,
        zone: String,
    },
    #[error(
        "conflicting {rtype} records for {name}: {first} ({first_from}) and {second} ({second_from})"
    )]
    Conflict {
        name: String,
        rtype: String,
        first: String,
        first_from: String,
        second: String,
        second_from: String,
    },
}

/// The zone for `layout` with SOA serial `serial`; every problem at once.
pub fn plan(layout: &LayoutFile, serial: u32) -> Result<Plan, Vec<PlanError>> {
    let origin = absolute(&layout.domain);
    let dns = &layout.dns;
    let mut b = Builder {
        plan: Plan {
            origin: origin.clone(),
            ttl: dns.ttl,
            entries: Vec::new(),
            notes: Vec::new(),
        },
        errors: Vec::new(),
    };
    let ns_source = "SOA and name servers";
    // The layout always has a name server: the switch when [dns] ns is empty.
    let mname = dns
        .ns
        .first()
        .map_or_else(|| absolute(&layout.switch.server), |(n, _)| absolute(n));
    b.add(
        ns_source,
        &origin,
        Data::Soa(Soa {
            mname,
            rname: absolute(&dns.hostmaster),
            serial,
            refresh: REFRESH,
            retry: RETRY,
            expire: EXPIRE,
            minimum: MINIMUM,
        }),
    );
    for (ns, addr) in &dns.ns {
        b.add(ns_source, &origin, Data::Ns(absolute(ns)));
        b.address(ns_source, ns, *addr);
    }
    let switch = "the switch";
    let server = &layout.switch.server;
    b.add(
        switch,
        &origin,
        Data::Mx(dns.switch_preference, absolute(server)),
    );
    b.address(switch, server, layout.switch.address);
    for (pref, host, addr) in &dns.mx {
        let source = format!("[dns] mx {pref} {host}");
        b.add(&source, &origin, Data::Mx(*pref, absolute(host)));
        b.address(&source, host, *addr);
    }
    for office in &layout.offices {
        let source = format!("office {}", office.name);
        let domain = absolute(&office.domain);
        if !in_zone(&domain, &origin) {
            b.errors.push(PlanError::OutsideZone {
                office: office.name.clone(),
                domain,
                zone: origin.clone(),
            });
            continue;
        }
        // Seed §11.2: each office's subdomain is MX 10 its own server.
        b.add(
            &source,
            &domain,
            Data::Mx(10, absolute(&office.node.server)),
        );
        b.address(&source, &office.node.server, office.node.address);
    }
    b.check_targets();
    if b.errors.is_empty() {
        Ok(b.plan)
    } else {
        Err(b.errors)
    }
}

struct Builder {
    plan: Plan,
    errors: Vec<PlanError>,
}

impl Builder {
    fn add(&mut self, source: &str, name: &str, data: Data) {
        let entries = &self.plan.entries;
        if entries
            .iter()
            .any(|(r, _)| r.name == name && r.data == data)
        {
            return;
        }
        // An address or an office's MX is one value per name: a second, different one from
        // elsewhere in the layout is a mistake. The domain's MX and NS sets are lists.
        let single = matches!(data, Data::A(_) | Data::Aaaa(_))
            || (matches!(data, Data::Mx(..)) && name != self.plan.origin);
        let clash = entries.iter().find(|(r, from)| {
            single && r.name == name && r.data.rtype() == data.rtype() && from != source
        });
        if let Some((r, from)) = clash {
            self.errors.push(PlanError::Conflict {
                name: name.to_string(),
                rtype: data.rtype().to_string(),
                first: r.data.to_string(),
                first_from: from.clone(),
                second: data.to_string(),
                second_from: source.to_string(),
            });
            return;
        }
        self.plan.entries.push((
            Rr {
                name: name.to_string(),
                ttl: self.plan.ttl,
                data,
            },
            source.to_string(),
        ));
    }

    fn address(&mut self, source: &str, host: &str, addr: Option<IpAddr>) {
        let Some(addr) = addr else { return };
        let name = absolute(host);
        if !in_zone(&name, &self.plan.origin) {
            self.plan.notes.push(format!(
                "{name} ({source}) is outside the zone: its address {addr} is not published here"
            ));
            return;
        }
        let data = match addr {
            IpAddr::V4(a) => Data::A(a),
            IpAddr::V6(a) => Data::Aaaa(a),
        };
        self.add(source, &name, data);
    }

    /// Every in-zone NS and MX target needs an address in the zone, or mail and delegation
    /// to it fail (RFC 1912 §2.4 glue; RFC 5321 §5.1 MX target lookups).
    fn check_targets(&mut self) {
        let mut reported: Vec<String> = Vec::new();
        for (r, _) in &self.plan.entries {
            let Some(target) = r.data.target() else {
                continue;
            };
            let has_address = self
                .plan
                .entries
                .iter()
                .any(|(a, _)| a.name == target && matches!(a.data, Data::A(_) | Data::Aaaa(_)));
            if has_address
                || !in_zone(target, &self.plan.origin)
                || reported.iter().any(|t| t == target)
            {
                continue;
            }
            reported.push(target.to_string());
            self.errors.push(PlanError::NoAddress {
                name: target.to_string(),
                zone: self.plan.origin.clone(),
                used_by: format!("the {} record of {}", r.data.rtype(), r.name),
            });
        }
    }
}

/// The zone file: a header naming the layout, `$ORIGIN` and `$TTL`, then one aligned line per
/// record with names relative to the origin, grouped under a comment naming their source.
pub fn render(plan: &Plan, layout_path: &Path) -> String {
    let origin = &plan.origin;
    let width = plan
        .records()
        .map(|r| relative(&r.name, origin).len())
        .max()
        .unwrap_or(1);
    let mut out = format!(
        "; zone {origin} written by posta dns plan from {}\n\
         ; edit the layout and plan again rather than this file\n",
        layout_path.display()
    );
    for note in &plan.notes {
        out.push_str(&format!("; note: {note}\n"));
    }
    out.push_str(&format!("$ORIGIN {origin}\n$TTL {}\n", plan.ttl));
    let mut last = None;
    for (r, source) in &plan.entries {
        if last != Some(source) {
            out.push_str(&format!("\n; {source}\n"));
            last = Some(source);
        }
        out.push_str(&format!(
            "{:<width$} IN {:<5} {}\n",
            relative(&r.name, origin),
            r.data.rtype(),
            r.data.relative_to(origin)
        ));
    }
    out
}

/// Today's date (UTC) as a `YYYYMMDD01` serial (RFC 1912 §2.2).
pub fn today_serial() -> u32 {
    let d = time::OffsetDateTime::now_utc().date();
    let ymd = u32::try_from(d.year()).unwrap_or(0) * 10_000
        + u32::from(u8::from(d.month())) * 100
        + u32::from(d.day());
    ymd * 100 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
domain = "inkacoca.org"

[switch]
server = "switch"
address = "18.1.3.41"

[[office]]
name = "lima"
server = "lima-mail"
address = "18.1.3.40"
users = "lima.txt"

[[office]]
name = "trujillo"
server = "tru-mail"
address = "18.1.4.40"
users = "trujillo.txt"
"#;

    fn layout(text: &str) -> LayoutFile {
        LayoutFile::parse(Path::new("/etc/posta/routes.toml"), text).unwrap()
    }

    #[test]
    fn renders_the_seeds_zone() {
        let p = plan(&layout(SEED), 2026112801).unwrap();
        let text = render(&p, Path::new("/etc/posta/routes.toml"));
        assert_eq!(
            text,
            "; zone inkacoca.org. written by posta dns plan from /etc/posta/routes.toml\n\
             ; edit the layout and plan again rather than this file\n\
             $ORIGIN inkacoca.org.\n\
             $TTL 3600\n\
             \n\
             ; SOA and name servers\n\
             @         IN SOA   switch hostmaster 2026112801 3600 900 1209600 300\n\
             @         IN NS    switch\n\
             switch    IN A     18.1.3.41\n\
             \n\
             ; the switch\n\
             @         IN MX    10 switch\n\
             \n\
             ; office lima\n\
             lima      IN MX    10 lima-mail\n\
             lima-mail IN A     18.1.3.40\n\
             \n\
             ; office trujillo\n\
             trujillo  IN MX    10 tru-mail\n\
             tru-mail  IN A     18.1.4.40\n"
        );
        assert_eq!(
            text,
            render(
                &plan(&layout(SEED), 2026112801).unwrap(),
                Path::new("/etc/posta/routes.toml")
            )
        );
    }

    #[test]
    fn dns_section_adds_name_servers_backups_and_glue() {
        let text = format!(
            "{SEED}\n[dns]\nttl = 300\nns = [\"ns1 18.1.3.2\", \"ns.isp.example\"]\n\
             hostmaster = \"hostmaster\"\n\
             mx = [\"20 mailserver2 2001:db8::42\", \"30 mx.laorganizacion.org 192.0.2.30\"]\n"
        );
        let p = plan(&layout(&text), 1).unwrap();
        let lines: Vec<String> = p
            .records()
            .map(|r| format!("{} {} {}", r.name, r.data.rtype(), r.data))
            .collect();
        assert!(lines.contains(&"inkacoca.org. SOA ns1.inkacoca.org. hostmaster.inkacoca.org. 1 3600 900 1209600 300".to_string()), "{lines:?}");
        assert!(lines.contains(&"inkacoca.org. NS ns.isp.example.".to_string()));
        assert!(lines.contains(&"ns1.inkacoca.org. A 18.1.3.2".to_string()));
        assert!(lines.contains(&"mailserver2.inkacoca.org. AAAA 2001:db8::42".to_string()));
        assert!(lines.contains(&"inkacoca.org. MX 30 mx.laorganizacion.org.".to_string()));
        assert!(p.records().all(|r| r.ttl == 300));
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(
            p.notes[0].contains("mx.laorganizacion.org."),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn an_office_whose_domain_is_its_server_gets_one_mx_and_one_address() {
        let text = SEED.replace("server = \"lima-mail\"\n", "");
        let p = plan(&layout(&text), 1).unwrap();
        let lima: Vec<String> = p
            .records()
            .filter(|r| r.name == "lima.inkacoca.org.")
            .map(|r| format!("{} {}", r.data.rtype(), r.data))
            .collect();
        assert_eq!(lima, ["MX 10 lima.inkacoca.org.", "A 18.1.3.40"]);
    }

    #[test]
    fn reports_every_problem() {
        let text = SEED
            .replace("address = \"18.1.3.40\"\n", "")
            .replace("server = \"tru-mail\"", "server = \"switch\"")
            + "\n[[office]]\nname = \"cuzco\"\ndomain = \"cuzco.example.net\"\nusers = \"c.txt\"\n";
        let errors = plan(&layout(&text), 1).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert_eq!(
            text[0],
            "conflicting A records for switch.inkacoca.org.: 18.1.3.41 (SOA and name servers) \
             and 18.1.4.40 (office trujillo)"
        );
        assert_eq!(
            text[1],
            "office cuzco: its domain cuzco.example.net. is outside zone inkacoca.org."
        );
        assert!(
            text[2].starts_with(
                "lima-mail.inkacoca.org. is inside zone inkacoca.org. and named by the MX record \
                 of lima.inkacoca.org., but nothing"
            ),
            "{text:?}"
        );
    }

    #[test]
    fn the_example_layout_plans() {
        let text = include_str!("../../examples/routes.toml");
        let l = LayoutFile::parse(Path::new("examples/routes.toml"), text).unwrap();
        let p = plan(&l, 1).unwrap();
        assert!(
            p.records()
                .any(|r| r.data == Data::Ns("ns1.inkacoca.org.".into()))
        );
        assert_eq!(
            p.records().filter(|r| r.data.rtype() == "MX").count(),
            3 + l.offices.len()
        );
    }

    #[test]
    fn serial_is_a_date() {
        let s = today_serial();
        assert_eq!(s % 100, 1);
        assert!((2_020_010_101..2_100_010_101).contains(&s), "{s}");
    }
}
