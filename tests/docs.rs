//! The committed man pages and completions must match the clap definitions, and the README's
//! Dependencies section must match Cargo.toml.
//! Refresh the man pages and completions with `POSTA_UPDATE_DOCS=1 cargo test --test docs`.

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        fs::read(&p).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn committed_man_pages_and_completions_are_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (man, completions) = (root.join("man"), root.join("completions"));
    if std::env::var_os("POSTA_UPDATE_DOCS").is_some() {
        let _ = fs::remove_dir_all(&man);
        let _ = fs::remove_dir_all(&completions);
        posta::docs::write(&man, &completions).unwrap();
    }
    let fresh = tempfile::tempdir().unwrap();
    let (fresh_man, fresh_completions) =
        (fresh.path().join("man"), fresh.path().join("completions"));
    posta::docs::write(&fresh_man, &fresh_completions).unwrap();
    for (committed, generated) in [(&man, &fresh_man), (&completions, &fresh_completions)] {
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let (a, b) = (files(committed), files(generated));
        assert_eq!(
            names(&a),
            names(&b),
            "{} is stale: run POSTA_UPDATE_DOCS=1 cargo test --test docs",
            committed.display()
        );
        for ((name, old), (_, new)) in a.iter().zip(&b) {
            assert!(
                old == new,
                "{}/{name} is stale: run POSTA_UPDATE_DOCS=1 cargo test --test docs",
                committed.display()
            );
        }
    }
    assert!(man.join("posta.1").is_file());
    assert!(man.join("posta-check.1").is_file());
}

/// The README's Dependencies section names every crate in `[dependencies]` (backticked), and
/// its table lists no crate that is not there, so the two cannot drift apart.
#[test]
fn readme_names_every_dependency() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deps: Vec<&String> = manifest["dependencies"]
        .as_table()
        .expect("[dependencies] is a table")
        .keys()
        .collect();
    assert!(deps.len() > 10, "read only {} dependencies", deps.len());
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("\n## Dependencies\n")
        .expect("README.md has a ## Dependencies section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    let missing: Vec<_> = deps
        .iter()
        .filter(|d| !section.contains(&format!("`{d}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's Dependencies section does not name {missing:?}"
    );
    let listed: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name))
        .collect();
    let extra: Vec<_> = listed
        .iter()
        .filter(|n| !deps.iter().any(|d| d == *n))
        .collect();
    assert!(
        extra.is_empty(),
        "README.md's Dependencies table lists {extra:?}, which Cargo.toml does not depend on"
    );
    assert_eq!(listed.len(), deps.len(), "one table row per dependency");
}
