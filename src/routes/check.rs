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

/// Follows `addr` from host `start`. Mail for `domain` from outside goes to `mx` (the switch).
pub fn route(hosts: &[Host], domain: &str, mx: &str, start: &str, addr: &str) -> Route {
    let find = |name: &str| hosts.iter().find(|h| h.name.eq_ignore_ascii_case(name));
    let mut hops = vec![start.to_string()];
    let mut seen: Vec<(String, String)> = Vec::new();
    let (mut here, mut addr) = (start.to_string(), addr.to_ascii_lowercase());
    for _ in 0..20 {
        if seen.contains(&(here.clone(), addr.clone())) {
            return Route {
                hops,
                end: End::Loop,
            };
        }
        seen.push((here.clone(), addr.clone()));
        let Some(host) = find(&here) else {
            return Route {
                hops,
                end: End::Left(addr),
            };
        };
        let t = &host.tables;
        let r = t.virtuser.resolve(&addr, &t.hosts);
        let next = match r.outcome {
            Outcome::Local(user) => {
                return Route {
                    hops,
                    end: End::Delivered { host: here, user },
                };
            }
            Outcome::Error(reply) => {
                return Route {
                    hops,
                    end: End::Refused(reply.to_string()),
                };
            }
            Outcome::Loop(_) => {
                return Route {
                    hops,
                    end: End::Loop,
                };
            }
            Outcome::NoMatch => {
                let (local, d) = addr.rsplit_once('@').unwrap_or((addr.as_str(), ""));
                if t.hosts.contains(d) {
                    return Route {
                        hops,
                        end: End::Delivered {
                            host: here,
                            user: local.to_string(),
                        },
                    };
                }
                addr.clone()
            }
            Outcome::Forward(next) => next,
        };
        let d = next.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        // The domain's MX is the switch; a host name is that host.
        here = if d.eq_ignore_ascii_case(domain) {
            mx.to_string()
        } else {
            d
        };
        addr = next;
        hops.push(here.clone());
    }
    Route {
        hops,
        end: End::Loop,
    }
}

/// Checks every user of every office from outside and from every office: delivered exactly
/// at their office; from their own office without visiting the switch; an unknown user is
/// refused, never looped.
pub fn check(hosts: &[Host], domain: &str, mx: &str, users: &[(String, String)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let starts: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    for (user, office) in users {
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
                End::Delivered { host, .. } => {
                    Some(format!("delivered at {host}, not at {office}"))
                }
                End::Refused(reply) => Some(format!("refused: {reply}")),
                End::Loop => Some(format!("loops: {}", r.hops.join(" -> "))),
                End::Left(a) => Some(format!("leaves the organization as {a}")),
            };
            if let Some(problem) = problem {
                out.push(Finding {
                    address: addr.clone(),
                    from: from.to_string(),
                    problem,
                });
            }
        }
    }
    let unknown = format!("posta-check-unknown-user@{domain}");
    for from in &starts {
        let r = route(hosts, domain, mx, from, &unknown);
        if !matches!(r.end, End::Refused(_)) {
            let how = match r.end {
                End::Loop => format!("loops: {}", r.hops.join(" -> ")),
                other => format!("{other:?}"),
            };
            out.push(Finding {
                address: unknown.clone(),
                from: from.to_string(),
                problem: format!("an unknown user is not refused: {how}"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Layout, Office, build};
    use super::*;

    fn seed_layout() -> Layout {
        let office = |name: &str, users: &[&str]| Office {
            name: name.into(),
            host: format!("{name}.inkacoca.org"),
            users: users.iter().map(|u| u.to_string()).collect(),
        };
        Layout {
            domain: "inkacoca.org".into(),
            switch: "switch.inkacoca.org".into(),
            offices: vec![
                office("lima", &["diego", "ana", "rosa"]),
                office("trujillo", &["luis"]),
                office("cuzco", &["diego", "inti"]),
                office("iquitos", &["maria"]),
                office("puertomaldonado", &["jose"]),
            ],
        }
    }

    fn hosts(g: &super::super::Generated) -> Vec<Host> {
        std::iter::once(&g.switch)
            .chain(&g.offices)
            .map(|t| Host::parse(&t.host, &t.virtusertable, &t.local_host_names).unwrap())
            .collect()
    }

    #[test]
    fn generated_tables_route_everyone_home_and_refuse_strangers() {
        let layout = seed_layout();
        let g = build(&layout);
        assert_eq!(g.conflicts.len(), 1);
        assert_eq!(g.conflicts[0].user, "diego");
        assert!(
            g.conflicts[0]
                .advice("inkacoca.org")
                .contains("diego1@inkacoca.org (lima)")
        );
        let hs = hosts(&g);
        let users: Vec<(String, String)> = layout
            .offices
            .iter()
            .flat_map(|o| o.users.iter().map(move |u| (u.clone(), o.host.clone())))
            .filter(|(u, _)| u != "diego")
            .collect();
        let found = check(&hs, "inkacoca.org", "switch.inkacoca.org", &users);
        assert!(found.is_empty(), "{found:#?}");
        // Office-local: one hop. Across offices: office -> switch -> office.
        let r = route(
            &hs,
            "inkacoca.org",
            "switch.inkacoca.org",
            "lima.inkacoca.org",
            "ana@inkacoca.org",
        );
        assert_eq!(r.hops, ["lima.inkacoca.org"]);
        let r = route(
            &hs,
            "inkacoca.org",
            "switch.inkacoca.org",
            "lima.inkacoca.org",
            "inti@inkacoca.org",
        );
        assert_eq!(
            r.hops,
            [
                "lima.inkacoca.org",
                "switch.inkacoca.org",
                "cuzco.inkacoca.org"
            ]
        );
        assert_eq!(
            r.end,
            End::Delivered {
                host: "cuzco.inkacoca.org".into(),
                user: "inti".into()
            }
        );
    }

    #[test]
    fn the_seeds_own_tables_lose_independence_and_do_not_refuse_strangers() {
        use crate::mta::tables::fixtures::{REGION, SWITCH};
        let hs = vec![
            Host::parse(
                "switch.inkacoca.org",
                SWITCH,
                "inkacoca.org\nswitch.inkacoca.org\n",
            )
            .unwrap(),
            Host::parse(
                "iquitos.inkacoca.org",
                REGION,
                "inkacoca.org\niquitos.inkacoca.org\n",
            )
            .unwrap(),
        ];
        let users = vec![("usuario_x".to_string(), "iquitos.inkacoca.org".to_string())];
        let found = check(&hs, "inkacoca.org", "switch.inkacoca.org", &users);
        // The switch's administrator was never told about usuario_x: mail from outside stays
        // at the switch, which has no mailbox for it (the seed's "loss of independence").
        assert!(
            found.iter().any(|f| f.address.starts_with("usuario_x")
                && f.problem.contains("delivered at switch.inkacoca.org")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.problem.contains("an unknown user is not refused")),
            "{found:#?}"
        );
    }
}
