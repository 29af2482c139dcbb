//! `accounts = "all"`: the accounts of mailserver2, found where `posta mta` keeps them, so an
//! administrator of 500 mailboxes lists none of them (issue 14: mail for users missing from a
//! hand-written list stayed on mailserver2).
//!
//! The first of these the site has, in this order, is the list: the user directories under
//! `[mta] maildir` (where the mail is), the users of `[mta] pop3_users` (who may read it), the
//! local parts `[mta] recipients` lists for `[mta] domains` (who may receive it). One source,
//! not their union: a recipients file also names aliases (postmaster@ forwarded elsewhere)
//! that have no mailbox, and logging in as one fails the run. A source absent from this host
//! (posta migrate run elsewhere than the mta) is passed over for the next.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

use crate::config::MtaSection;
use crate::mta::recipients::Recipients;
use crate::mta::tables::TableError;
use crate::mta::users::{Users, UsersError};

/// Why the accounts could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot list the Maildirs under {path}: {source}")]
    Maildirs { path: PathBuf, source: io::Error },
    #[error("cannot read the pop3_users file: {0}")]
    Users(#[from] UsersError),
    #[error("cannot read the recipients file: {0}")]
    Recipients(#[from] TableError),
    #[error(
        "accounts = \"all\" found nothing to list them from on this host: [mta] maildir, \
         pop3_users and recipients are all unset or absent ({0}); run posta migrate on \
         mailserver2 or list [[migrate.accounts]]"
    )]
    Nowhere(String),
}

/// Where the accounts were found, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Maildirs(PathBuf),
    Pop3Users(PathBuf),
    Recipients(PathBuf),
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Maildirs(p) => write!(f, "the Maildirs under {}", p.display()),
            Found::Pop3Users(p) => write!(f, "the pop3_users file {}", p.display()),
            Found::Recipients(p) => write!(f, "the recipients file {}", p.display()),
        }
    }
}

/// The site's accounts, sorted, and where they came from. Blocking: call it off the runtime.
pub fn accounts(mta: Option<&MtaSection>) -> Result<(Vec<String>, Found), DiscoverError> {
    let none = MtaSection::default();
    let mta = mta.unwrap_or(&none);
    let mut tried = Vec::new();
    if let Some(root) = &mta.maildir {
        match super::uncovered::users(root) {
            Ok(users) => {
                let names = users.into_iter().map(|(user, _)| user).collect();
                return Ok((names, Found::Maildirs(root.clone())));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tried.push(format!("no {}", root.display()));
            }
            Err(source) => {
                return Err(DiscoverError::Maildirs {
                    path: root.clone(),
                    source,
                });
            }
        }
    }
    if let Some(path) = present(&mta.pop3_users, &mut tried) {
        let users = Users::load(&path)?;
        let names: BTreeSet<&str> = users.names().collect();
        let names = names.into_iter().map(str::to_owned).collect();
        return Ok((names, Found::Pop3Users(path)));
    }
    if let Some(path) = present(&mta.recipients, &mut tried) {
        let list = Recipients::load(&path)?;
        let names = local_parts(&list, &mta.domains);
        return Ok((names, Found::Recipients(path)));
    }
    if tried.is_empty() {
        tried.push("none set".into());
    }
    Err(DiscoverError::Nowhere(tried.join(", ")))
}

/// `path` when it is set and exists here; otherwise notes why not in `tried`.
fn present(path: &Option<PathBuf>, tried: &mut Vec<String>) -> Option<PathBuf> {
    let path = path.as_ref()?;
    if path.exists() {
        Some(path.clone())
    } else {
        tried.push(format!("no {}", path.display()));
        None
    }
}

/// The local parts the list names in `domains` (compared without case or a trailing dot), once
/// each, sorted. Addresses in other domains (relayed ones) have no mailbox here.
fn local_parts(list: &Recipients, domains: &[String]) -> Vec<String> {
    let ours = |d: &str| {
        let d = d.trim_end_matches('.');
        domains
            .iter()
            .any(|z| z.trim_end_matches('.').eq_ignore_ascii_case(d))
    };
    let names: BTreeSet<String> = list
        .addresses()
        .filter_map(|a| a.rsplit_once('@'))
        .filter(|(_, d)| ours(d))
        .map(|(local, _)| local.to_owned())
        .collect();
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn mta(dir: &Path) -> MtaSection {
        MtaSection {
            maildir: Some(dir.join("vmail/%u/Maildir")),
            pop3_users: Some(dir.join("users")),
            recipients: Some(dir.join("recipients")),
            domains: vec!["laorganizacion.org".into()],
            ..MtaSection::default()
        }
    }

    #[test]
    fn maildirs_come_first_then_users_then_recipients() {
        let t = tempfile::tempdir().unwrap();
        let m = mta(t.path());
        let hash = crate::mta::users::hash_password("pw");
        fs::write(
            t.path().join("users"),
            format!("carol:{hash}\nbob:{hash}\n"),
        )
        .unwrap();
        fs::set_permissions(t.path().join("users"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(
            t.path().join("recipients"),
            "Dave@LaOrganizacion.org\nerin@friend.example\n@laorganizacion.org\n\
             dave@laorganizacion.org.\n",
        )
        .unwrap();

        // No Maildir root on this host: the users file is the list.
        let (names, found) = accounts(Some(&m)).unwrap();
        assert_eq!(names, ["bob", "carol"]);
        assert_eq!(found, Found::Pop3Users(t.path().join("users")));

        // The Maildirs, when there: every user directory, with mail or not.
        for user in ["alice", "zoe"] {
            fs::create_dir_all(t.path().join("vmail").join(user).join("Maildir/new")).unwrap();
        }
        fs::create_dir_all(t.path().join("vmail/.posta-spill")).unwrap();
        let (names, found) = accounts(Some(&m)).unwrap();
        assert_eq!(names, ["alice", "zoe"]);
        assert!(matches!(found, Found::Maildirs(_)));

        // Only recipients: local parts of our domains, once each; no wildcard, no relay.
        let only = MtaSection {
            maildir: None,
            pop3_users: None,
            ..m.clone()
        };
        let (names, _) = accounts(Some(&only)).unwrap();
        assert_eq!(names, ["dave"]);
    }

    #[test]
    fn nothing_to_list_from_says_what_was_tried() {
        let t = tempfile::tempdir().unwrap();
        let e = accounts(Some(&mta(t.path()))).unwrap_err().to_string();
        assert!(e.contains("found nothing") && e.contains("/users"), "{e}");
        let e = accounts(None).unwrap_err().to_string();
        assert!(e.contains("none set"), "{e}");
    }

    #[test]
    fn a_broken_users_file_is_an_error_not_an_empty_list() {
        let t = tempfile::tempdir().unwrap();
        let m = mta(t.path());
        fs::write(t.path().join("users"), "alice:{PLAIN}x\n").unwrap();
        fs::set_permissions(t.path().join("users"), fs::Permissions::from_mode(0o600)).unwrap();
        let e = accounts(Some(&m)).unwrap_err();
        assert!(matches!(e, DiscoverError::Users(_)), "{e}");
    }
}
