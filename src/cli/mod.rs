//! The command line, defined once: `--help`, the man pages and the shell completions all come
//! from these types (doc comments are the help text).

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
#[cfg(test)]
mod tests;
mod watch;

pub use check::CheckArgs;
pub use completions::CompletionsArgs;
pub use config::ConfigCommand;
pub use dns::{ZoneArgs, ZoneCommand};
pub use drill::DrillArgs;
pub use keepalived::{KeepalivedCommand, PairRole};
pub use migrate::{AdminVia, InboxVia, MigrateArgs, UnknownVia};
pub use mirror::MirrorArgs;
pub use mta::{ExplainArgs, MtaArgs, MtaCommand, MtaRunArgs, RelayTlsArg};
pub use notify::{EventArg, NotifyArgs};
pub use queue::{ExportFormat, QueueArgs, QueueCommand};
pub use routes::{RoutesArgs, RoutesBuildArgs, RoutesCheckArgs, RoutesCommand};
pub use status::StatusArgs;
pub use takeover::{DnsArgs, GarpMode, ModeArgs, TakeoverArgs, VipArgs};
pub use watch::WatchArgs;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Keeps an organization's mail flowing when its primary mail server fails.
///
/// posta probes mailserver1 (MX 10), mailserver2 (MX 20) and the remote relay (MX 30) the way a
/// mail administrator would, and reports in a form people, scripts and Nagios can read.
#[derive(Debug, Parser)]
#[command(
    name = "posta",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit status: 0 success, 1 failure, 2 usage or site-file error; \
`posta check` uses the Nagios codes 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."
)]
pub struct Cli {
    /// Site file describing the mail servers [default: /etc/posta/site.toml]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "POSTA_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Format of diagnostics on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(CheckArgs),
    Migrate(Box<MigrateArgs>),
    Mirror(MirrorArgs),
    Takeover(TakeoverArgs),
    Failback(TakeoverArgs),
    Notify(NotifyArgs),
    Status(StatusArgs),
    Watch(WatchArgs),
    Drill(DrillArgs),
    #[command(subcommand)]
    Keepalived(KeepalivedCommand),
    #[command(subcommand)]
    Config(ConfigCommand),
    Mta(Box<MtaArgs>),
    Queue(QueueArgs),
    Routes(RoutesArgs),
    Dns(ZoneArgs),
    Completions(CompletionsArgs),
}

fn parse_duration(text: &str) -> Result<std::time::Duration, crate::config::DurationError> {
    crate::config::parse_duration(text)
}
