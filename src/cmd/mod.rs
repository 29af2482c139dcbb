//! One file per subcommand; orchestration only. Each returns the process exit code.
//!
//! Exit codes: 0 success, 1 failure, 2 usage or site-file error; `check` uses the Nagios codes
//! (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

mod check;
mod completions;
mod config;
mod dns;
mod drill;
mod keepalived;
mod migrate;
mod mirror;
mod mta;
mod notify;
mod queue;
mod routes;
mod status;
mod takeover;
mod watch;

use std::io::{self, Write};
use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

/// Exit code for a failed command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error or an invalid site file.
pub const EXIT_USAGE: u8 = 2;

/// Runs the parsed command line to completion.
pub fn run(cli: Cli) -> u8 {
    let config = cli.config.clone();
    match cli.command {
        Command::Check(args) => runtime().block_on(check::execute(config, args)),
        Command::Migrate(args) => runtime().block_on(migrate::execute(config, *args)),
        Command::Mirror(args) => runtime().block_on(mirror::execute(config, args)),
        Command::Takeover(args) => runtime().block_on(takeover::execute(config, args, false)),
        Command::Failback(args) => runtime().block_on(takeover::execute(config, args, true)),
        Command::Notify(args) => runtime().block_on(notify::execute(config, args)),
        Command::Status(args) => runtime().block_on(status::execute(config, args)),
        Command::Watch(args) => runtime().block_on(watch::execute(config, args)),
        Command::Drill(args) => drill::execute(args),
        Command::Keepalived(cmd) => runtime().block_on(keepalived::execute(config, cmd)),
        Command::Config(cmd) => config::execute(&site_path(config), cmd),
        Command::Mta(args) => mta::execute(config, *args),
        Command::Queue(args) => queue::execute(config, args),
        Command::Routes(args) => routes::execute(args),
        Command::Dns(args) => dns::execute(args),
        Command::Completions(args) => completions::execute(args),
    }
}

/// Takes an exclusive lock on `path` (created, with its directory) for as long as the file is
/// held: one daemon per queue or site. `busy` says who holds it when it is taken.
fn exclusive_lock(path: &std::path::Path, busy: &str) -> Result<std::fs::File, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.try_lock()
        .map_err(|_| format!("{busy} (it holds {})", path.display()))?;
    Ok(file)
}

/// The site file named by `--config`/`POSTA_CONFIG`, else the default location.
fn site_path(config: Option<PathBuf>) -> PathBuf {
    config.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH))
}

fn runtime() -> tokio::runtime::Runtime {
    // Probes are I/O bound and few; two workers match the machines posta runs on.
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Migration futures nest protocol sessions; debug builds need more than 2 MiB.
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("posta: cannot start the async runtime: {e}");
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    }
}

/// Diagnostics go to stderr; stdout carries results only. `POSTA_LOG` overrides the level
/// with an env-filter directive (e.g. `posta=trace`). `migrate` logs its progress at info.
pub fn init_logging(cli: &Cli) {
    let (format, verbose) = (cli.log_format, cli.verbose);
    let level = match verbose {
        0 if matches!(
            cli.command,
            Command::Migrate(_) | Command::Mirror(_) | Command::Mta(_) | Command::Watch(_)
        ) =>
        {
            "posta=info"
        }
        0 => "posta=warn",
        1 => "posta=debug",
        _ => "posta=trace",
    };
    let filter = EnvFilter::try_from_env("POSTA_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Prints to stdout; a closed pipe (`posta check | head -1`) is not an error.
fn print(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
