//! The arguments of `posta completions`.

use clap::Args;

/// Print a shell completion script to stdout.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
