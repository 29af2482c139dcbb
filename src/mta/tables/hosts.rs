//! `local-host-names` (class {w}, FEATURE(use_cw_file)): one fully qualified name per line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{TableError, error, lines, norm_domain, read};

/// The names this host delivers for; case-insensitive, trailing dots ignored.
#[derive(Debug, Clone, Default)]
pub struct LocalHostNames {
    pub path: PathBuf,
    /// Name → line.
    names: BTreeMap<String, usize>,
}

impl LocalHostNames {
    pub fn load(path: &Path) -> Result<Self, TableError> {
        Self::parse(path, &read(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, TableError> {
        let mut names = BTreeMap::new();
        for l in lines(path, text)? {
            if !l.value.is_empty() {
                let m = "one name per line";
                return Err(error(path, l.line, l.value_column, m));
            }
            let name = norm_domain(l.key);
            if name.is_empty() || name.starts_with('.') || name.contains("..") {
                return Err(error(path, l.line, 1, "not a host name"));
            }
            names.entry(name).or_insert(l.line);
        }
        Ok(LocalHostNames {
            path: path.to_path_buf(),
            names,
        })
    }

    /// Builds the set from names given in code (tests, the site file).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let names = names.into_iter().map(|n| (norm_domain(n), 0)).collect();
        LocalHostNames {
            path: PathBuf::new(),
            names,
        }
    }

    /// Whether `domain` is listed. `localhost` is not, unless the file says so: sendmail's
    /// proto.m4 always adds `Cwlocalhost`, but a server facing the internet that takes
    /// `anything@localhost` from anyone makes a mailbox per invented name; Postfix's
    /// `mydestination` holds only what is configured. (A virtusertable value `user@localhost`
    /// still means a local user: see [`LocalHostNames::is_local_target`].)
    pub fn contains(&self, domain: &str) -> bool {
        self.names.contains_key(&norm_domain(domain))
    }

    /// Whether an address an admin wrote (a virtusertable value) at `domain` is delivered here:
    /// a listed name, or `localhost`, the sendmail idiom for "this host's user".
    pub fn is_local_target(&self, domain: &str) -> bool {
        norm_domain(domain) == "localhost" || self.contains(domain)
    }

    /// The line that lists `domain`, when it came from a file.
    pub fn line(&self, domain: &str) -> Option<usize> {
        self.names
            .get(&norm_domain(domain))
            .copied()
            .filter(|&l| l > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_trailing_dot() {
        let h = LocalHostNames::parse(
            Path::new("lhn"),
            "# w\nInkaCoca.org.\n\nswitch.inkacoca.org\n",
        )
        .unwrap();
        assert!(h.contains("inkacoca.ORG"));
        assert!(h.contains("switch.inkacoca.org."));
        assert!(
            !h.contains("localhost"),
            "localhost is ours only when listed"
        );
        assert!(h.is_local_target("localhost") && h.is_local_target("inkacoca.org"));
        assert!(!h.is_local_target("lima.inkacoca.org"));
        let l = LocalHostNames::parse(Path::new("lhn"), "LocalHost.\n").unwrap();
        assert!(l.contains("localhost"));
        assert!(!h.contains("lima.inkacoca.org"));
        assert_eq!(h.line("inkacoca.org"), Some(2));
        let err = LocalHostNames::parse(Path::new("lhn"), "a.org b.org\n").unwrap_err();
        assert_eq!((err.line, err.column), (1, 7));
    }
}
