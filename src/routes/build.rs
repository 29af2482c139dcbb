//! The tables, from the offices' lists. Who owns each name is decided once ([`Owners`]);
//! every host's files follow from that, in sendmail's format and in Postfix's.
//!
//! - Switch: `user@domain mailbox@office.domain` for every user, `@switch %1@domain` so
//!   offices can hand it anything, and a final `@domain error:nouser` for unknown users.
//!   Without that reject the seed's pair (`@inkacoca.org %1@switch.inkacoca.org` at an office,
//!   `@switch.inkacoca.org %1@inkacoca.org` at the switch) accepts mail for nobody and
//!   bounces it later, and on a switch that is also an office (the seed allows "any of the
//!   others") passes an unknown user back and forth until the hop count runs out.
//! - Office: `user@domain mailbox` for its own users (delivered there, never via the switch)
//!   and the catch-all `@domain %1@switch` for everyone else.
//!
//! A name two offices claim is not routed until they choose, except that a name already
//! routed by the previous build stays with its owner: another office adding the same name
//! must not take a working address away.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::Layout;

/// One host's generated files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTables {
    /// `switch` or the office's name: the directory the files go to.
    pub name: String,
    /// Its mail name: the switch's host name, or the office's domain.
    pub host: String,
    /// (file name, contents), in the order they are written.
    pub files: Vec<(&'static str, String)>,
}

impl HostTables {
    pub fn file(&self, name: &str) -> &str {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, t)| t.as_str())
    }
}

/// A user name two or more offices claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub user: String,
    pub offices: Vec<String>,
    /// The office that keeps it because the previous build routed it there.
    pub kept_by: Option<String>,
}

impl Conflict {
    /// The choices the seed discusses, spelled out for this user.
    pub fn advice(&self, domain: &str) -> String {
        let numbered: Vec<String> = self
            .offices
            .iter()
            .enumerate()
            .map(|(i, o)| format!("{}{}@{domain} ({o})", self.user, i + 1))
            .collect();
        let aliases: Vec<String> = self
            .offices
            .iter()
            .map(|o| format!("{}.{o}@{domain}", self.user))
            .collect();
        let state = match &self.kept_by {
            Some(o) => format!("still delivered at {o}, which had it first"),
            None => "not routed until they choose".to_string(),
        };
        format!(
            "{u}@{domain} is claimed by {} ({state}): give them numbered names ({}) or \
             office aliases ({}) in the lists (NAME MAILBOX), and keep the old address \
             delivering with a line in the rename map",
            self.offices.join(" and "),
            numbered.join(", "),
            aliases.join(", "),
            u = self.user
        )
    }
}

/// Where a name of the shared domain is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub office: String,
    pub mailbox: String,
    /// For an old name in the rename map: the name it now stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_to: Option<String>,
}

/// Every routed name of the shared domain; kept between builds (`routes.json`).
pub type Owners = BTreeMap<String, Claim>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub switch: HostTables,
    pub offices: Vec<HostTables>,
    pub owners: Owners,
    pub conflicts: Vec<Conflict>,
    /// Rename map lines that could not be honoured, said in words.
    pub problems: Vec<String>,
}

impl Generated {
    /// Every host, the switch first.
    pub fn hosts(&self) -> impl Iterator<Item = &HostTables> {
        std::iter::once(&self.switch).chain(&self.offices)
    }
}

/// Decides who owns each name, then writes every host's tables. `previous` is the last
/// build's [`Owners`] (empty on the first build). `source` names the layout in the headers.
pub fn build(layout: &Layout, previous: &Owners, source: &str) -> Generated {
    let d = layout.domain.to_ascii_lowercase();
    let sw = layout.switch.to_ascii_lowercase();
    let mut claims: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for o in &layout.offices {
        for u in &o.users {
            claims
                .entry(u.name.as_str())
                .or_default()
                .push((o.name.as_str(), u.mailbox.as_str()));
        }
    }
    let mut owners = Owners::new();
    let mut conflicts = Vec::new();
    for (name, cs) in &claims {
        let claim = |(office, mailbox): (&str, &str)| Claim {
            office: office.to_string(),
            mailbox: mailbox.to_string(),
            renamed_to: None,
        };
        if let [one] = cs.as_slice() {
            owners.insert(name.to_string(), claim(*one));
            continue;
        }
        let kept = previous
            .get(*name)
            .filter(|p| p.renamed_to.is_none())
            .and_then(|p| cs.iter().find(|(o, _)| *o == p.office));
        if let Some(k) = kept {
            owners.insert(name.to_string(), claim(*k));
        }
        conflicts.push(Conflict {
            user: name.to_string(),
            offices: cs.iter().map(|(o, _)| o.to_string()).collect(),
            kept_by: kept.map(|(o, _)| o.to_string()),
        });
    }
    let mut problems = Vec::new();
    for (old, new) in &layout.renames {
        if let Some(c) = claims.get(old.as_str()) {
            let offices: Vec<&str> = c.iter().map(|(o, _)| *o).collect();
            problems.push(format!(
                "rename {old} -> {new} ignored: {old} is a user of {} now",
                offices.join(", ")
            ));
            continue;
        }
        // A rename of a rename follows the chain to a current user.
        let mut target = new.as_str();
        let mut steps = 0;
        while let Some((_, next)) = layout.renames.iter().find(|(o, _)| o == target) {
            target = next;
            steps += 1;
            if steps > layout.renames.len() {
                break;
            }
        }
        match owners.get(target).filter(|c| c.renamed_to.is_none()) {
            Some(c) => {
                let c = Claim {
                    renamed_to: Some(target.to_string()),
                    ..c.clone()
                };
                owners.insert(old.clone(), c);
            }
            None => problems.push(format!(
                "rename {old} -> {new} ignored: {target} is nobody's user"
            )),
        }
    }

    let header = |what: &str| {
        format!(
            "# Written by posta routes build from {source}: {what}.\n\
             # Do not edit: change the offices' lists and build again.\n"
        )
    };
    let office_domain: BTreeMap<&str, String> = layout
        .offices
        .iter()
        .map(|o| (o.name.as_str(), o.domain.to_ascii_lowercase()))
        .collect();

    // The switch.
    let what = format!("the switch of {d}");
    let (mut vt, mut virt) = (header(&what), header(&what));
    for (name, c) in &owners {
        let to = format!("{}@{}", c.mailbox, office_domain[c.office.as_str()]);
        // Neither makemap nor Postfix allows a comment after a value.
        let note = c.renamed_to.as_ref().map_or(String::new(), |n| {
            format!("# {name}@{d} was renamed {n}@{d}\n")
        });
        let _ = writeln!(vt, "{note}{name}@{d}\t{to}");
        let _ = writeln!(virt, "{note}{name}@{d}\t{to}");
    }
    for c in conflicts.iter().filter(|c| c.kept_by.is_none()) {
        let line = format!(
            "# {}@{d}: claimed by {}; not routed until they choose\n",
            c.user,
            c.offices.join(", ")
        );
        vt.push_str(&line);
        virt.push_str(&line);
    }
    let _ = write!(
        vt,
        "# Offices hand the switch everything not theirs as user@{sw}.\n@{sw}\t%1@{d}\n\
         # Unknown users are refused here, not bounced later nor passed back.\n\
         @{d}\terror:nouser 550 5.1.1 user unknown\n"
    );
    // Postfix rejects unknown users of a virtual alias domain at RCPT by itself.
    let _ = write!(
        virt,
        "# Offices hand the switch everything not theirs as user@{sw}.\n@{sw}\t@{d}\n"
    );
    let (mut mt, mut tr) = (header(&what), header(&what));
    for o in &layout.offices {
        let od = o.domain.to_ascii_lowercase();
        let _ = writeln!(mt, "{od}\t{}", mailertable_hop(&o.next_hop));
        let _ = writeln!(tr, "{od}\tsmtp:{}", o.next_hop);
    }
    let switch = HostTables {
        name: "switch".into(),
        host: sw.clone(),
        files: vec![
            ("virtusertable", vt),
            ("local-host-names", format!("{}{d}\n{sw}\n", header(&what))),
            ("mailertable", mt),
            ("virtual", virt),
            ("transport", tr),
            ("postfix.cf", postfix_cf(&[&d, &sw])),
        ],
    };

    // The offices.
    let offices = layout
        .offices
        .iter()
        .map(|o| {
            let od = o.domain.to_ascii_lowercase();
            let what = format!("office {} of {d}", o.name);
            let (mut vt, mut virt) = (header(&what), header(&what));
            for (name, c) in owners.iter().filter(|(_, c)| c.office == o.name) {
                let _ = writeln!(vt, "{name}@{d}\t{}", c.mailbox);
                let _ = writeln!(virt, "{name}@{d}\t{}@{od}", c.mailbox);
            }
            let _ = write!(vt, "# Everyone else: through the switch.\n@{d}\t%1@{sw}\n");
            let _ = write!(virt, "# Everyone else: through the switch.\n@{d}\t@{sw}\n");
            let hop = &layout.switch_next_hop;
            HostTables {
                name: o.name.clone(),
                host: od.clone(),
                files: vec![
                    ("virtusertable", vt),
                    ("local-host-names", format!("{}{d}\n{od}\n", header(&what))),
                    (
                        "mailertable",
                        format!("{}{sw}\t{}\n", header(&what), mailertable_hop(hop)),
                    ),
                    ("virtual", virt),
                    ("transport", format!("{}{sw}\tsmtp:{hop}\n", header(&what))),
                    ("postfix.cf", postfix_cf(&[&d])),
                ],
            }
        })
        .collect();
    Generated {
        switch,
        offices,
        owners,
        conflicts,
        problems,
    }
}

/// sendmail's mailertable has no port: `[host]:port` keeps the host, and the port belongs in
/// the esmtp mailer's definition.
fn mailertable_hop(hop: &str) -> String {
    let host = hop
        .split_once("]:")
        .map_or(hop, |(h, _)| &hop[..h.len() + 1]);
    format!("esmtp:{host}")
}

/// The main.cf lines that put the maps to use; `DIR` is replaced by the output directory
/// when written. texthash: needs no postmap; `postfix reload` rereads it.
fn postfix_cf(alias_domains: &[&str]) -> String {
    format!(
        "# Add to main.cf (postconf -e), or include with: postconf -e \"$(grep -v '^#' THIS)\"\n\
         # The office's own domain stays in mydestination or virtual_mailbox_domains.\n\
         virtual_alias_domains = {}\n\
         virtual_alias_maps = texthash:DIR/virtual\n\
         transport_maps = texthash:DIR/transport\n",
        alias_domains.join(", ")
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{Office, User};
    use super::*;

    pub(crate) fn seed() -> Layout {
        let office = |name: &str, users: &[&str]| Office {
            name: name.into(),
            domain: format!("{name}.inkacoca.org"),
            next_hop: format!("[{name}-mail.inkacoca.org]"),
            users: users
                .iter()
                .map(|u| {
                    let (name, mailbox) = u.split_once(' ').unwrap_or((u, u));
                    User {
                        name: name.into(),
                        mailbox: mailbox.into(),
                    }
                })
                .collect(),
        };
        Layout {
            domain: "inkacoca.org".into(),
            switch: "switch.inkacoca.org".into(),
            switch_next_hop: "[127.0.0.1]:2525".into(),
            offices: vec![
                office("lima", &["diego", "ana", "rosa"]),
                office("trujillo", &["luis"]),
                office("cuzco", &["diego", "inti"]),
                office("iquitos", &["maria"]),
                office("pmaldonado", &["jose"]),
            ],
            renames: Vec::new(),
        }
    }

    #[test]
    fn conflicts_are_not_routed_until_chosen_and_a_routed_name_is_kept() {
        let g = build(&seed(), &Owners::new(), "routes.toml");
        assert_eq!(g.conflicts.len(), 1);
        assert_eq!(g.conflicts[0].kept_by, None);
        assert!(!g.owners.contains_key("diego"));
        assert!(
            g.conflicts[0]
                .advice("inkacoca.org")
                .contains("diego1@inkacoca.org (lima)")
        );
        assert!(!g.switch.file("virtusertable").contains("\ndiego@"));
        assert!(!g.offices[0].file("virtusertable").contains("\ndiego@"));
        // Lima had diego first: Cuzco adding one must not take it away.
        let mut before = seed();
        before.offices[2].users.retain(|u| u.name != "diego");
        let first = build(&before, &Owners::new(), "routes.toml");
        let g = build(&seed(), &first.owners, "routes.toml");
        assert_eq!(g.owners["diego"].office, "lima");
        assert_eq!(g.conflicts[0].kept_by.as_deref(), Some("lima"));
        assert!(
            g.switch
                .file("virtusertable")
                .contains("diego@inkacoca.org\tdiego@lima.inkacoca.org\n")
        );
        assert!(!g.offices[2].file("virtusertable").contains("\ndiego@"));
    }

    #[test]
    fn numbered_names_and_renames_keep_old_addresses_delivering() {
        let mut l = seed();
        l.offices[0].users[0] = User {
            name: "diego1".into(),
            mailbox: "diego".into(),
        };
        l.offices[2].users[0] = User {
            name: "diego2".into(),
            mailbox: "diego".into(),
        };
        l.renames = vec![
            ("diego".into(), "diego1".into()),
            ("ana".into(), "x".into()),
            ("old".into(), "nobody".into()),
        ];
        let g = build(&l, &Owners::new(), "routes.toml");
        assert!(g.conflicts.is_empty());
        let sw = g.switch.file("virtusertable");
        assert!(
            sw.contains("diego1@inkacoca.org\tdiego@lima.inkacoca.org\n"),
            "{sw}"
        );
        assert!(
            sw.contains("diego2@inkacoca.org\tdiego@cuzco.inkacoca.org\n"),
            "{sw}"
        );
        assert!(
            sw.contains(
                "renamed diego1@inkacoca.org\ndiego@inkacoca.org\tdiego@lima.inkacoca.org\n"
            ),
            "{sw}"
        );
        let lima = g.offices[0].file("virtusertable");
        assert!(lima.contains("diego@inkacoca.org\tdiego\n"), "{lima}");
        assert!(lima.contains("diego1@inkacoca.org\tdiego\n"), "{lima}");
        assert_eq!(g.problems.len(), 2, "{:?}", g.problems);
        assert!(g.problems[0].contains("ana is a user of lima"));
        assert!(g.problems[1].contains("nobody is nobody's user"));
        let virt = g.offices[2].file("virtual");
        assert!(virt.contains("diego2@inkacoca.org\tdiego@cuzco.inkacoca.org\n"));
        assert!(virt.contains("@inkacoca.org\t@switch.inkacoca.org\n"));
        assert_eq!(
            g.switch.file("transport").lines().nth(2),
            Some("lima.inkacoca.org\tsmtp:[lima-mail.inkacoca.org]")
        );
        assert_eq!(
            g.offices[0].file("mailertable").lines().nth(2),
            Some("switch.inkacoca.org\tesmtp:[127.0.0.1]")
        );
    }
}
