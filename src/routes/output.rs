//! Writing a build: one directory per server under the layout's `output`, each file replaced
//! atomically (temporary file, fsync, rename, directory fsync) and only when its text
//! changed, so an unchanged server is not reloaded. `routes.json` records who owns each name;
//! it is written last, and the next build reads it to say what changed and to keep names
//! with the office that had them first.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{Claim, Generated, Owners};

/// The record of the last build.
pub const OWNERS_FILE: &str = "routes.json";

/// Why the last build's record could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PreviousError {
    #[error("{}: {source} (remove it to start afresh)", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// Reads the last build's owners; none before the first build.
pub fn previous(output: &Path) -> Result<Owners, PreviousError> {
    let path = output.join(OWNERS_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|source| PreviousError::Parse {
            path: path.clone(),
            source,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Owners::new()),
        Err(source) => Err(PreviousError::Read { path, source }),
    }
}

/// What changed between two builds, one line per name: `+ ana@d (lima)`, `- luis@d (trujillo)`,
/// `~ rosa@d: lima -> cuzco`.
pub fn changes(domain: &str, before: &Owners, after: &Owners) -> Vec<String> {
    let show = |name: &str, c: &Claim| match &c.renamed_to {
        Some(n) => format!("{}, renamed {n}", c.office),
        None if c.mailbox == name => c.office.clone(),
        None => format!("{}, mailbox {}", c.office, c.mailbox),
    };
    let mut out = Vec::new();
    for (name, c) in after {
        match before.get(name) {
            None => out.push(format!("+ {name}@{domain} ({})", show(name, c))),
            Some(b) if b != c => out.push(format!(
                "~ {name}@{domain}: {} -> {}",
                show(name, b),
                show(name, c)
            )),
            Some(_) => {}
        }
    }
    for (name, c) in before {
        if !after.contains_key(name) {
            out.push(format!("- {name}@{domain} ({})", show(name, c)));
        }
    }
    out
}

/// Offices that would lose more than a quarter of their users (and more than two): most
/// likely a truncated or half-copied list, and applying it would refuse their mail with 550.
pub fn suspicious_removals(before: &Owners, after: &Owners) -> Vec<String> {
    let mut offices: Vec<&str> = before.values().map(|c| c.office.as_str()).collect();
    offices.sort_unstable();
    offices.dedup();
    offices
        .into_iter()
        .filter_map(|o| {
            let had = before.values().filter(|c| c.office == o).count();
            let lost = before
                .iter()
                .filter(|(n, c)| c.office == o && !after.contains_key(*n))
                .count();
            (lost > 2 && lost * 4 > had)
                .then(|| format!("office {o} would lose {lost} of its {had} users"))
        })
        .collect()
}

/// Writes every host's files; returns the names (`switch`, office names) whose files changed.
pub fn write(output: &Path, g: &Generated) -> io::Result<Vec<String>> {
    fs::create_dir_all(output)?;
    let mut changed = Vec::new();
    for h in g.hosts() {
        let dir = output.join(&h.name);
        fs::create_dir_all(&dir)?;
        let absolute = fs::canonicalize(&dir)?;
        let mut any = false;
        for (name, text) in &h.files {
            let text = if *name == "postfix.cf" {
                text.replace("DIR", &absolute.display().to_string())
            } else {
                text.clone()
            };
            any |= replace(&dir.join(name), &text)?;
        }
        if any {
            changed.push(h.name.clone());
        }
    }
    let owners = serde_json::to_string_pretty(&g.owners).map_err(io::Error::other)?;
    replace(&output.join(OWNERS_FILE), &(owners + "\n"))?;
    Ok(changed)
}

/// Replaces `path` with `text` unless it already says that; whether it was replaced. Mode
/// 0644: servers read the tables as their own users. A reader sees the old file or the new,
/// never half ([`crate::durable::replace`]).
pub fn replace(path: &Path, text: &str) -> io::Result<bool> {
    crate::durable::replace_if_changed(path, text.as_bytes(), 0o644)
}

/// A server's reload command that failed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}`: {source}")]
pub struct ReloadError {
    command: String,
    source: super::CommandError,
}

/// Runs a server's reload command (argv, no shell); its output is part of the error.
pub fn reload(argv: &[String]) -> Result<(), ReloadError> {
    if argv.is_empty() {
        return Ok(());
    }
    super::run(argv).map(drop).map_err(|source| ReloadError {
        command: argv.join(" "),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(office: &str) -> Claim {
        Claim {
            office: office.into(),
            mailbox: "x".into(),
            renamed_to: None,
        }
    }

    #[test]
    fn changes_and_removals() {
        let mut a = Owners::new();
        for (n, o) in [("ana", "lima"), ("rosa", "lima"), ("luis", "trujillo")] {
            a.insert(n.into(), claim(o));
        }
        let mut b = a.clone();
        b.remove("luis");
        b.insert("rosa".into(), claim("cuzco"));
        b.insert("inti".into(), claim("cuzco"));
        assert_eq!(
            changes("d", &a, &b),
            [
                "+ inti@d (cuzco, mailbox x)",
                "~ rosa@d: lima, mailbox x -> cuzco, mailbox x",
                "- luis@d (trujillo, mailbox x)"
            ]
        );
        assert!(suspicious_removals(&a, &b).is_empty());
        let mut many = Owners::new();
        for i in 0..8 {
            many.insert(format!("u{i}"), claim("lima"));
        }
        let mut fewer = many.clone();
        for i in 0..3 {
            fewer.remove(&format!("u{i}"));
        }
        assert_eq!(
            suspicious_removals(&many, &fewer),
            ["office lima would lose 3 of its 8 users"]
        );
    }

    #[test]
    fn files_are_replaced_only_when_their_text_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("virtusertable");
        assert!(replace(&p, "a b\n").unwrap());
        assert!(!replace(&p, "a b\n").unwrap());
        assert!(replace(&p, "a c\n").unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "a c\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
