//! The committed man pages and completions must match the clap definitions.
//! Refresh them with `POSTA_UPDATE_DOCS=1 cargo test --test docs`.

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
