//! The valid-recipient list for backed-up and local domains (Postfix's relay_recipient_maps):
//! one address per line, `#` comments, an optional second column ignored so a Postfix
//! `relay_recipients` file works as it is. `@domain` accepts every user of the domain, which
//! turns the list off for it (and brings back backscatter).
//!
//! Without this list a backup MX accepts mail for users that do not exist and must bounce it
//! later, to forged senders; with it, unknown users get 550 at RCPT, as Postfix's
//! relay_recipient_maps answers for everything relay_domains matches.
//!
//! A domain the list names covers its subdomains too: with `ana@example.org` listed,
//! `ana@sub.example.org` and `root@mx2.example.org` are unknown users, not unrestricted ones
//! (Postfix's `parent_domain_matches_subdomains`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::policy::Domains;
use super::tables::{LocalHostNames, TableError, error, lines, norm_domain, read, within};

#[derive(Debug, Clone, Default)]
pub struct Recipients {
    pub path: PathBuf,
    addresses: BTreeSet<String>,
    domains: BTreeSet<String>,
}

impl Recipients {
    pub fn load(path: &Path) -> Result<Recipients, TableError> {
        Recipients::parse(path, &read(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Recipients, TableError> {
        let mut r = Recipients {
            path: path.to_path_buf(),
            ..Recipients::default()
        };
        for l in lines(path, text)? {
            match l.key.rsplit_once('@') {
                Some(("", d)) if !d.is_empty() => {
                    r.domains.insert(norm_domain(d));
                }
                Some((local, d)) if !local.is_empty() && !d.is_empty() => {
                    r.addresses.insert(format!(
                        "{}@{}",
                        local.to_ascii_lowercase(),
                        norm_domain(d)
                    ));
                }
                _ => return Err(error(path, l.line, 1, "expected user@domain or @domain")),
            }
        }
        Ok(r)
    }

    /// Whether the list says anything about this domain or a parent of it (else it does not
    /// restrict it).
    pub fn covers(&self, domain: &str) -> bool {
        let mut named = self.addresses.iter().filter_map(|a| a.rsplit_once('@'));
        self.domains.iter().any(|z| within(domain, z)) || named.any(|(_, z)| within(domain, z))
    }

    /// What the list says about `rcpt`: `None` when it does not cover the domain, else whether
    /// the address is on it. Like Postfix's relay_recipient_maps (every address relay_domains
    /// matches) and virtual_mailbox_maps, a list covers every configured domain (local ones,
    /// relay ones with their subdomains, local-host-names) and every domain it names, with
    /// its subdomains.
    pub fn judge(&self, rcpt: &str, domains: &Domains, hosts: &LocalHostNames) -> Option<bool> {
        let (_, domain) = rcpt.rsplit_once('@')?;
        let covered = self.covers(domain)
            || domains.relay.iter().any(|z| within(domain, z))
            || domains
                .local
                .iter()
                .any(|z| norm_domain(z) == norm_domain(domain))
            || hosts.contains(domain);
        covered.then(|| self.contains(rcpt))
    }

    /// The listed addresses (`local@domain`, lowercased); `@domain` wildcards name no one.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.addresses.iter().map(String::as_str)
    }

    /// Whether `local@domain` is a valid recipient.
    pub fn contains(&self, address: &str) -> bool {
        let Some((local, domain)) = address.rsplit_once('@') else {
            return false;
        };
        let d = norm_domain(domain);
        self.domains.contains(&d)
            || self
                .addresses
                .contains(&format!("{}@{d}", local.to_ascii_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_domains_and_postfix_format() {
        let r = Recipients::parse(
            Path::new("rcpts"),
            "# users\nAna@Example.org x\nbo@example.org\n@lists.example.org\n",
        )
        .unwrap();
        assert!(r.contains("ana@EXAMPLE.ORG."));
        assert!(r.contains("anyone@lists.example.org"));
        assert!(!r.contains("carl@example.org"));
        assert!(r.covers("example.org") && r.covers("lists.example.org"));
        assert!(!r.covers("other.org") && !r.covers("badexample.org"));
        // Subdomains of a listed domain are covered, and their users are not on the list.
        assert!(r.covers("sub.example.org") && r.covers("mx2.example.org"));
        assert!(!r.contains("ana@sub.example.org") && !r.contains("root@mx2.example.org"));
        // `@domain` accepts that domain only.
        assert!(!r.contains("x@sub.lists.example.org"));
        let e = Recipients::parse(Path::new("rcpts"), "ok@a.org\nnot-an-address\n").unwrap_err();
        assert_eq!(e.to_string(), "rcpts:2:1: expected user@domain or @domain");
    }

    /// Postfix's relay_recipient_maps covers everything relay_domains matches, subdomains
    /// included; the list also covers local domains and local-host-names.
    #[test]
    fn judged_for_every_configured_domain() {
        let r = Recipients::parse(Path::new("rcpts"), "ana@example.test\n").unwrap();
        let domains = Domains {
            local: vec!["ours.test".into()],
            relay: vec!["example.test".into(), "friend.test".into()],
        };
        let hosts = LocalHostNames::from_names(["localhost"]);
        let judge = |a: &str| r.judge(a, &domains, &hosts);
        assert_eq!(judge("Ana@Example.Test."), Some(true));
        for unknown in [
            "nobody@example.test",
            "ana@sub.example.test",
            "root@mx2.example.test",
            "ana@friend.test",
            "x@ours.test",
            "x@localhost",
        ] {
            assert_eq!(judge(unknown), Some(false), "{unknown}");
        }
        // Not configured and not named: the list says nothing (the verifier may ask).
        for free in ["x@sub.ours.test", "x@other.test", "postmaster"] {
            assert_eq!(judge(free), None, "{free}");
        }
    }
}
