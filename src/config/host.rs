//! What `posta config check` looks at on this host beyond the file's text: every secret file
//! (owner-only, readable) and, on mailserver2, the interface that receives the VIP.
//!
//! Loading the site never does this: a secret is read only by the feature that needs it, so a
//! loose migration password stops `posta migrate` for that account and nothing else.

use std::fs::File;
use std::net::IpAddr;

use super::{Located, Role, Site, TakeoverMode};
use crate::secret;

/// Problems (each makes `config check` fail) and notes (what was checked, or why not).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostCheck {
    pub problems: Vec<Located>,
    pub notes: Vec<Located>,
}

/// Checks the site's secret files and, when this host is mailserver2, its VIP interface.
pub fn check_host(site: &Site) -> HostCheck {
    let mut out = check_vip_interface(site);
    for s in &site.secrets {
        let readable = secret::check_permissions(&s.path).and_then(|()| {
            File::open(&s.path)
                .map(drop)
                .map_err(|source| secret::SecretError::Read {
                    path: s.path.clone(),
                    source,
                })
        });
        if let Err(e) = readable {
            out.problems.push(Located {
                message: format!("{}: {e}", s.needed_by),
                ..s.at.clone()
            });
        }
    }
    out
}

/// On mailserver2 (the host with the [backup] address), whether the [vip] interface exists;
/// elsewhere a note saying why it was not looked for.
pub fn check_vip_interface(site: &Site) -> HostCheck {
    let mut out = HostCheck::default();
    if let (TakeoverMode::Vip, Some(vip), Some(at)) =
        (site.takeover, &site.vip, &site.vip_interface_at)
    {
        let name = &vip.interface;
        let backup = site.backup.probe_target();
        let line = |message: String| Located {
            message,
            ..at.clone()
        };
        if !local_addresses().contains(&backup) {
            // The file is shared by both hosts; only mailserver2 adds the VIP.
            out.notes.push(line(format!(
                "{}: {name} not checked: this host does not have the [backup] address {backup}; \
                 run `posta config check` on mailserver2",
                at.message
            )));
        } else if nix::net::if_::if_nametoindex(name.as_str()).is_ok() {
            out.notes
                .push(line(format!("{}: {name} exists on this host", at.message)));
        } else {
            out.problems.push(line(format!(
                "{}: this host (mailserver2, {backup}) has no interface {name:?}: a takeover \
                 would fail when it is needed",
                at.message
            )));
        }
    }
    out
}

/// Which of the site's two mail servers this host is: the one whose own address (its
/// `probe_address`, else `address`) is configured here. The VIP never counts, since it moves
/// between them, and neither does a loopback address, which every host has. `None` on any
/// other host (a witness, an operator's machine).
pub fn this_host(site: &Site) -> Option<Role> {
    let here = local_addresses();
    let vip = site.vip.as_ref().map(|v| v.address);
    [&site.primary, &site.backup]
        .into_iter()
        .map(|s| (s.role, s.probe_target()))
        .find(|(_, a)| Some(*a) != vip && !a.is_loopback() && here.contains(a))
        .map(|(role, _)| role)
}

/// The addresses configured on this host's interfaces (none if they cannot be listed).
fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}
