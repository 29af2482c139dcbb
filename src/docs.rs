//! Man pages and shell completions generated from the clap definitions in [`crate::cli`].
//!
//! They are committed under `man/` and `completions/` so packagers need no build step; a test
//! regenerates them and fails when the committed copies are stale
//! (`POSTA_UPDATE_DOCS=1 cargo test --test docs` refreshes them).

use std::fs;
use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Writes `posta.1` and one page per subcommand into `man_dir`, completions into `completions_dir`.
pub fn write(man_dir: &Path, completions_dir: &Path) -> io::Result<()> {
    fs::create_dir_all(man_dir)?;
    fs::create_dir_all(completions_dir)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), man_dir)?;
    for (shell, file) in [
        (Shell::Bash, "posta.bash"),
        (Shell::Zsh, "_posta"),
        (Shell::Fish, "posta.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "posta", &mut out);
        fs::write(completions_dir.join(file), out)?;
    }
    Ok(())
}
