//! Warnings about tables that sendmail accepts but that do something the admin likely did not
//! mean: untagged RELAY (also opens Connect: relaying), a backed-up domain delivered locally,
//! virtusertable loops, within one host and between two hosts (seed §11.2.2).

use std::fmt;
use std::path::PathBuf;

use super::{Action, Outcome, Tables};

/// Local part used to probe catch-all entries for unknown users.
const PROBE: &str = "posta-lint-unknown-user";

/// One lint finding, located at a table line when there is one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Lints one host's tables; `backed_up_domains` are the domains this host is backup MX for.
pub fn lint(tables: &Tables, backed_up_domains: &[String]) -> Vec<Warning> {
    let mut out = Vec::new();
    let access = &tables.access;
    for e in access.entries() {
        if e.tag.is_none() && e.action == Action::Relay && !e.key.contains('@') {
            out.push(Warning {
                path: access.path.clone(),
                line: Some(e.line),
                message: format!(
                    "untagged `{k} RELAY` also acts as `Connect:{k} RELAY`: any client whose \
                     reverse DNS or address falls under {k} may relay anywhere; write `To:{k} RELAY`",
                    k = e.key
                ),
            });
        }
    }
    for d in backed_up_domains {
        if tables.hosts.contains(d) {
            out.push(Warning {
                path: tables.hosts.path.clone(),
                line: tables.hosts.line(d),
                message: format!(
                    "backed-up domain {d} is in local-host-names: mail for it is delivered here \
                     instead of being forwarded"
                ),
            });
        }
    }
    let vt = &tables.virtuser;
    for d in vt.domains().filter(|d| !tables.hosts.contains(d)) {
        out.push(Warning {
            path: vt.path.clone(),
            line: None,
            message: format!(
                "virtusertable domain {d} is not in local-host-names: sendmail consults these \
                 entries only if {d} is in VIRTUSER_DOMAIN (class {{VirtHost}})"
            ),
        });
    }
    for d in vt.domains() {
        let r = vt.resolve(&format!("{PROBE}@{d}"), &tables.hosts);
        if let Outcome::Loop(chain) = r.outcome {
            out.push(Warning {
                path: vt.path.clone(),
                line: r.line,
                message: format!(
                    "virtusertable loop for unknown users: {}",
                    chain.join(" -> ")
                ),
            });
        }
    }
    out
}

/// Follows an unknown user at every virtusertable domain of `a` across both hosts: a result
/// forwarded to a domain the other host owns continues there (seed §11.2.2: the region's
/// catch-all to the switch and the switch's reverse mapping ping-pong for unknown users).
pub fn lint_peers(a: &Tables, b: &Tables) -> Vec<Warning> {
    let mut out = Vec::new();
    for d in a.virtuser.domains() {
        let mut chain = vec![format!("{PROBE}@{d}")];
        let mut here = a;
        let mut lines = Vec::new();
        while chain.len() < 20 {
            let Some(addr) = chain.last().cloned() else {
                break;
            };
            let r = here.virtuser.resolve(&addr, &here.hosts);
            if let Some(l) = r.line {
                lines.push(format!("{}:{l}", here.virtuser.path.display()));
            }
            let Outcome::Forward(next) = r.outcome else {
                break;
            };
            let other = if std::ptr::eq(here, a) { b } else { a };
            let owned = next
                .rsplit_once('@')
                .is_some_and(|(_, nd)| other.hosts.contains(nd) || other.virtuser.has_domain(nd));
            if !owned {
                break;
            }
            let looped = chain.contains(&next);
            chain.push(next);
            if looped {
                out.push(Warning {
                    path: a.virtuser.path.clone(),
                    line: None,
                    message: format!(
                        "unknown users loop between the two hosts: {} (entries {})",
                        chain.join(" -> "),
                        lines.join(", ")
                    ),
                });
                break;
            }
            here = other;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::fixtures::{REGION, SWITCH};
    use super::super::{Access, LocalHostNames, VirtUser};
    use super::*;

    fn tables(access: &str, vt: &str, hosts: &str) -> Tables {
        Tables {
            access: Access::parse(Path::new("access"), access).unwrap(),
            virtuser: VirtUser::parse(Path::new("virtusertable"), vt).unwrap(),
            hosts: LocalHostNames::parse(Path::new("local-host-names"), hosts).unwrap(),
        }
    }

    #[test]
    fn untagged_relay_and_backed_up_local() {
        let t = tables(
            "laorganizacion.org RELAY\nTo:ok.org RELAY\n",
            "",
            "laorganizacion.org\n",
        );
        let w = lint(&t, &["laorganizacion.org".into()]);
        assert_eq!(w.len(), 2);
        assert!(
            w[0].to_string()
                .starts_with("access:1: untagged `laorganizacion.org RELAY`")
        );
        assert!(w[0].message.contains("Connect:laorganizacion.org RELAY"));
        assert!(
            w[1].to_string()
                .starts_with("local-host-names:1: backed-up domain")
        );
    }

    #[test]
    fn single_table_loop() {
        let t = tables("", "@a.org %1@b.org\n@b.org %1@a.org\n", "a.org\nb.org\n");
        let w = lint(&t, &[]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].to_string()
                .starts_with("virtusertable:2: virtusertable loop"),
            "{w:?}"
        );
    }

    #[test]
    fn seed_catch_all_pair_loops_between_region_and_switch() {
        let region = tables("", REGION, "inkacoca.org\n");
        let switch = tables("", SWITCH, "switch.inkacoca.org\n");
        assert!(lint(&region, &[]).is_empty());
        // The switch keys inkacoca.org without listing it: a VIRTUSER_DOMAIN in sendmail.
        let w = lint(&switch, &[]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].message
                .contains("domain inkacoca.org is not in local-host-names")
        );
        let w = lint_peers(&region, &switch);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].message
                .contains("@switch.inkacoca.org -> posta-lint-unknown-user@inkacoca.org")
        );
    }
}
