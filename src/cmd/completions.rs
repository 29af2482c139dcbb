//! `posta completions SHELL`: a completion script on stdout.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub fn execute(args: CompletionsArgs) -> u8 {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "posta", &mut out);
    super::print(&String::from_utf8_lossy(&out));
    0
}
