//! posta: parse the command line, start logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = posta::cli::Cli::parse();
    posta::cmd::init_logging(&cli);
    let code = posta::cmd::run(cli);
    ExitCode::from(code)
}
