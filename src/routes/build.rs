//! The tables, in sendmail's text format.
//!
//! - Switch: `user@domain user@office.host` for every user, `@switch %1@domain` so offices can
//!   hand it anything, and a final `@domain error:nouser` for unknown users. Without that reject,
//!   the seed's own pair (`@inkacoca.org %1@switch.inkacoca.org` at the office,
//!   `@switch.inkacoca.org %1@inkacoca.org` at the switch) passes an unknown user back and
//!   forth until the hop count runs out.
//! - Office: `user@domain user` for its own users (delivered here, never via the switch) and
//!   the catch-all `@domain %1@switch` for everyone else.

use std::collections::BTreeMap;

use super::Layout;

/// One host's generated files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTables {
    /// `switch` or the office's name.
    pub name: String,
    pub host: String,
    pub virtusertable: String,
    pub local_host_names: String,
}

/// A user name two or more offices claim: not routed until the offices choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub user: String,
    pub offices: Vec<String>,
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
        format!(
            "{u}@{domain} is claimed by {}: rename to numbered names ({}) or to office aliases ({}), \
             and keep the old address delivering with a rename entry",
            self.offices.join(" and "),
            numbered.join(", "),
            aliases.join(", "),
            u = self.user
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub switch: HostTables,
    pub offices: Vec<HostTables>,
    pub conflicts: Vec<Conflict>,
}

/// Builds every host's tables from the layout.
pub fn build(layout: &Layout) -> Generated {
    let d = layout.domain.to_ascii_lowercase();
    let sw = layout.switch.to_ascii_lowercase();
    let mut owners: BTreeMap<String, Vec<&super::Office>> = BTreeMap::new();
    for o in &layout.offices {
        for u in &o.users {
            owners.entry(u.to_ascii_lowercase()).or_default().push(o);
        }
    }
    let conflicts: Vec<Conflict> = owners
        .iter()
        .filter(|(_, os)| os.len() > 1)
        .map(|(u, os)| Conflict {
            user: u.clone(),
            offices: os.iter().map(|o| o.name.clone()).collect(),
        })
        .collect();
    let mut switch_vt = format!(
        "# Written by posta routes build: the switch for {d}. Do not edit; edit the offices' lists.\n"
    );
    for (u, os) in &owners {
        match os.as_slice() {
            [o] => switch_vt.push_str(&format!("{u}@{d}\t{u}@{}\n", o.host)),
            _ => switch_vt.push_str(&format!(
                "# {u}@{d}: claimed by {}; not routed until they choose\n",
                os.iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    switch_vt.push_str(&format!(
        "# Offices hand the switch everything not theirs as user@{sw}.\n@{sw}\t%1@{d}\n\
         # Unknown users are refused here: without this the office and switch catch-alls loop.\n\
         @{d}\terror:nouser 550 5.1.1 user unknown\n"
    ));
    let switch = HostTables {
        name: "switch".into(),
        host: sw.clone(),
        virtusertable: switch_vt,
        local_host_names: format!("{d}\n{sw}\n"),
    };
    let offices = layout
        .offices
        .iter()
        .map(|o| {
            let mut vt = format!(
                "# Written by posta routes build: office {} of {d}. Its users stay here.\n",
                o.name
            );
            for u in &o.users {
                let u = u.to_ascii_lowercase();
                if owners.get(&u).is_some_and(|os| os.len() == 1) {
                    vt.push_str(&format!("{u}@{d}\t{u}\n"));
                } else {
                    vt.push_str(&format!(
                        "# {u}@{d}: claimed by another office too\n{u}@{d}\t{u}\n"
                    ));
                }
            }
            vt.push_str(&format!(
                "# Everyone else: through the switch.\n@{d}\t%1@{sw}\n"
            ));
            HostTables {
                name: o.name.clone(),
                host: o.host.to_ascii_lowercase(),
                virtusertable: vt,
                local_host_names: format!("{d}\n{}\n", o.host.to_ascii_lowercase()),
            }
        })
        .collect();
    Generated {
        switch,
        offices,
        conflicts,
    }
}
