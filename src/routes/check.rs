//! Proof by evaluation: each address is followed hop by hop through the hosts' tables with
//! sendmail's semantics (`mta::tables::VirtUser::resolve`), the way the mail would travel.

use std::path::Path;

use crate::mta::tables::{LocalHostNames, Outcome, TableError, Tables, VirtUser};

/// Where one address ended up, and the hosts it visited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub hops: Vec<String>,
    pub end: End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Delivered to `user` at `host`.
    Delivered { host: String, user: String },
    /// Refused with this reply.
    Refused(String),
    /// Came back to a host with an address it had already seen.
    Loop,
    /// Left the organization (no host of ours owns the domain).
    Left(String),
}

/// A problem `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub address: String,
    pub from: String,
    pub problem: String,
}

/// One host: its name (the one mail is addressed to) and its tables.
pub struct Host {
    pub name: String,
    pub tables: Tables,
}

impl Host {
    pub fn parse(
        name: &str,
        virtusertable: &str,
        local_host_names: &str,
    ) -> Result<Host, TableError> {
        let vt_path = format!("{name}/virtusertable");
        let lhn_path = format!("{name}/local-host-names");
        Ok(Host {
            name: name.to_string(),
            tables: Tables {
                access: Default::default(),
                virtuser: VirtUser::parse(Path::new(&vt_path), virtusertable)?,
                hosts: LocalHostNames::parse(Path::new(&lhn_path), local_host_names)?,
            },
        })
    }
}

/// The host that receives mail for `name`: the one called that, else one that lists it in its
/// local-host-names (a switch sharing a server with an office answers to both names). The
/// shared domain goes to `mx`.
fn find<'a>(hosts: &'a [Host], domain: &str, mx: &str, name: &str) -> Option<&'a Host> {
    let name = if name.eq_ignore_ascii_case(domain) {
        mx
    } else {
        name
    };
    hosts
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .or_else(|| hosts.iter().find(|h| h.tables.hosts.contains(name)))
}

/// Follows `addr` from host `start`. Mail for `domain` from outside goes to `mx` (the switch).
pub fn route(hosts: &[Host], domain: &str, mx: &str, start: &str, addr: &str) -> Route {
    let mut hops = vec![start.to_string()];
    let mut seen: Vec<(String, String)> = Vec::new();
    let (mut here, mut addr) = (start.to_string(), addr.to_ascii_lowercase());
    let end = |hops: Vec<String>, end: End| Route { hops, end };
    for _ in 0..20 {
        if seen.contains(&(here.clone(), addr.clone())) {
            return end(hops, End::Loop);
        }
        seen.push((here.clone(), addr.clone()));
        let Some(host) = hosts.iter().find(|h| h.name.eq_ignore_ascii_case(&here)) else {
            return end(hops, End::Left(addr));
        };
        let t = &host.tables;
        let next = match t.virtuser.resolve(&addr, &t.hosts).outcome {
            Outcome::Local(user) => {
                return end(hops, End::Delivered { host: here, user });
            }
            Outcome::Error(reply) => return end(hops, End::Refused(reply.to_string())),
            Outcome::Loop(_) => return end(hops, End::Loop),
            Outcome::NoMatch => {
                let (local, d) = addr.rsplit_once('@').unwrap_or((addr.as_str(), ""));
                if t.hosts.contains(d) {
                    let user = local.to_string();
                    return end(hops, End::Delivered { host: here, user });
                }
                addr.clone()
            }
            Outcome::Forward(next) => next,
        };
        let d = next.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        let there = match find(hosts, domain, mx, &d) {
            Some(h) => h.name.clone(),
            None => d,
        };
        hops.push(there.clone());
        if there == here {
            // Routed onward, to itself: sendmail's "MX list points back to" this host.
            return end(hops, End::Loop);
        }
        here = there;
        addr = next;
    }
    end(hops, End::Loop)
}

/// The users each host's own tables deliver locally: `(name, host)`. A switch maps names
/// on, so only a switch that is also an office has users here.
pub fn office_users(hosts: &[Host], domain: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for h in hosts {
        let t = &h.tables;
        for key in t.virtuser.keys() {
            let Some((user, d)) = key.rsplit_once('@') else {
                continue;
            };
            if user.is_empty() || !d.eq_ignore_ascii_case(domain) {
                continue;
            }
            if let Outcome::Local(_) = t.virtuser.resolve(key, &t.hosts).outcome {
                out.push((user.to_string(), h.name.clone()));
            }
        }
    }
    out.sort();
    out
}

/// Checks every user each office delivers locally ([`office_users`]), from outside (the
/// switch) and from every office: delivered exactly at their office; from their own office
/// without visiting the switch; an unknown user refused where it arrives, never looped
/// or accepted to bounce later.
pub fn check(hosts: &[Host], domain: &str, mx: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let starts: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    // Mail from outside arrives at the switch.
    let origin = |from: &str| {
        if from.eq_ignore_ascii_case(mx) {
            format!("outside (at {from})")
        } else {
            from.to_string()
        }
    };
    let users = office_users(hosts, domain);
    let mut claimed: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (u, h) in &users {
        claimed.entry(u).or_default().push(h);
    }
    for (u, hs) in claimed.iter().filter(|(_, hs)| hs.len() > 1) {
        out.push(Finding {
            address: format!("{u}@{domain}"),
            from: hs.join(", "),
            problem: format!(
                "delivered locally by {}: one address, two users",
                hs.join(" and ")
            ),
        });
    }
    for (user, office) in &users {
        let addr = format!("{user}@{domain}");
        for from in &starts {
            let r = route(hosts, domain, mx, from, &addr);
            let problem = match &r.end {
                End::Delivered { host, .. } if host.eq_ignore_ascii_case(office) => {
                    if from.eq_ignore_ascii_case(office) && r.hops.len() > 1 {
                        Some(format!("office-local mail travels {}", r.hops.join(" -> ")))
                    } else {
                        None
                    }
                }
                End::Delivered { host, .. } => Some(format!(
                    "delivered at {host}, not at {office} ({})",
                    r.hops.join(" -> ")
                )),
                End::Refused(reply) => Some(format!("refused: {reply}")),
                End::Loop => Some(format!("loops: {}", r.hops.join(" -> "))),
                End::Left(a) => Some(format!("leaves the organization as {a}")),
            };
            if let Some(problem) = problem {
                out.push(Finding {
                    address: addr.clone(),
                    from: origin(from),
                    problem,
                });
            }
        }
    }
    let unknown = format!("posta-check-unknown-user@{domain}");
    for from in &starts {
        let r = route(hosts, domain, mx, from, &unknown);
        let how = match r.end {
            End::Refused(_) => continue,
            End::Loop => format!("loops: {}", r.hops.join(" -> ")),
            End::Delivered { host, .. } => format!(
                "accepted at {host} ({}), to bounce later from there",
                r.hops.join(" -> ")
            ),
            End::Left(a) => format!("leaves the organization as {a}"),
        };
        out.push(Finding {
            address: unknown.clone(),
            from: origin(from),
            problem: format!("an unknown user is not refused: {how}"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Owners, build};
    use super::*;
    use crate::mta::tables::fixtures::{REGION, SWITCH};

    const D: &str = "inkacoca.org";
    const SW: &str = "switch.inkacoca.org";

    fn hosts(g: &super::super::Generated) -> Vec<Host> {
        g.hosts()
            .map(|t| {
                Host::parse(&t.host, t.file("virtusertable"), t.file("local-host-names")).unwrap()
            })
            .collect()
    }

    #[test]
    fn generated_tables_route_everyone_home_and_refuse_strangers() {
        let g = build(&super::super::build::tests::seed(), &Owners::new(), "t");
        let hs = hosts(&g);
        let users = office_users(&hs, D);
        assert_eq!(users.len(), 6, "{users:?}"); // the two diegos wait for a choice
        let found = check(&hs, D, SW);
        assert!(found.is_empty(), "{found:#?}");
        // Office-local: one hop. Across offices: office -> switch -> office.
        let r = route(&hs, D, SW, "lima.inkacoca.org", "ana@inkacoca.org");
        assert_eq!(r.hops, ["lima.inkacoca.org"]);
        let r = route(&hs, D, SW, "lima.inkacoca.org", "inti@inkacoca.org");
        assert_eq!(r.hops, ["lima.inkacoca.org", SW, "cuzco.inkacoca.org"]);
        assert_eq!(
            r.end,
            End::Delivered {
                host: "cuzco.inkacoca.org".into(),
                user: "inti".into()
            }
        );
        let r = route(&hs, D, SW, SW, "diego@inkacoca.org");
        assert!(matches!(r.end, End::Refused(_)), "{r:?}");
    }

    #[test]
    fn the_seeds_own_tables_lose_independence_and_accept_strangers() {
        let hs = vec![
            Host::parse(SW, SWITCH, "inkacoca.org\nswitch.inkacoca.org\n").unwrap(),
            Host::parse(
                "iquitos.inkacoca.org",
                REGION,
                "inkacoca.org\niquitos.inkacoca.org\n",
            )
            .unwrap(),
        ];
        let found = check(&hs, D, SW);
        // Nobody told the switch's administrator about usuario_x: mail from outside stays at
        // the switch, which has no mailbox for it (the seed's "loss of independence").
        assert!(
            found.iter().any(|f| f.address.starts_with("usuario_x")
                && f.problem.contains("delivered at switch.inkacoca.org")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|f| f.from == "iquitos.inkacoca.org"
                && f.problem
                    .contains("an unknown user is not refused: accepted at switch")),
            "{found:#?}"
        );
    }

    #[test]
    fn the_seeds_catch_all_pair_loops_on_a_switch_that_is_also_an_office() {
        // "aunque podría ser cualquiera de los otros": Iquitos's server is also the switch.
        let hs = vec![
            Host::parse(
                "iquitos.inkacoca.org",
                &format!("{REGION}{SWITCH}"),
                "inkacoca.org\niquitos.inkacoca.org\nswitch.inkacoca.org\n",
            )
            .unwrap(),
        ];
        let found = check(&hs, D, "iquitos.inkacoca.org");
        assert!(
            found
                .iter()
                .any(|f| f.problem == "an unknown user is not refused: loops: iquitos.inkacoca.org"),
            "{found:#?}"
        );
    }
}
