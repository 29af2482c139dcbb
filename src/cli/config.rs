//! The subcommands of `posta config`.

use clap::Subcommand;

/// Work with the site file.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the site file, reporting every problem with file:line:column (exit 2 if any,
    /// or if there is no site file), then check on this host every secret file it names
    /// (owner-only and readable; the error names the section that needs it) and, when this
    /// host has the [backup] address, that the [vip] interface exists
    Check {
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the validated site as a site file with all defaults filled in, which reads back
    /// the same (secret files by path, never their contents)
    Show {
        /// Print the typed site as JSON instead
        #[arg(long)]
        json: bool,
    },
}
