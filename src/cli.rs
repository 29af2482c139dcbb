//! The command line, defined once: `--help`, the man pages and the shell completions all come
//! from these types (doc comments are the help text).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    #[command(subcommand)]
    Config(ConfigCommand),
    Completions(CompletionsArgs),
}

/// Probe mail servers: SMTP, submission, SMTPS, IMAP(S), POP3(S) and the domain's DNS.
///
/// Every probe runs concurrently with its own timeout and speaks the protocol as an operator
/// would: greeting, capabilities, STARTTLS with certificate verification and days to expiry,
/// optional login with a probe account, and a polite goodbye. Verdicts come from reply codes
/// and capabilities, never from banner text.
///
/// Targets are site-file roles (primary, backup, relay, dns; all of them when none is named)
/// or URLs: smtp://host[:port], submission://, smtps://, imap://user@host, imaps://, pop3://,
/// pop3s://. URL options: ?starttls=auto|require|no (default auto: use STARTTLS when offered),
/// ?auth=plain|login, ?tls_name=NAME (verify the certificate for NAME).
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the worst probe).\n\n\
Examples:\n  posta check primary\n  posta check --nagios primary\n  \
posta check --ca-file ca.pem smtp://127.0.0.1:10025 imap://alice@127.0.0.1:10143 --password-file pw"
)]
pub struct CheckArgs {
    /// primary, backup, relay, dns, or a URL such as imap://alice@mail.example.org
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// File with the probe account's password, for URLs that name a user (owner-only mode)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Trust the CA certificates in this PEM file, besides the system's
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify TLS certificates (they are verified by default)
    #[arg(long)]
    pub insecure: bool,

    /// Limit for each probe, e.g. 5s [default: the site file's probe timeout, else 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// Name to give in EHLO [default: the site file's, else this host's name]
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,

    /// Print one JSON object with every probe's status, latency and details
    #[arg(long, conflicts_with = "nagios")]
    pub json: bool,

    /// Print one Nagios status line with perfdata (for Nagios, Icinga, keepalived vrrp_script)
    #[arg(long)]
    pub nagios: bool,
}

/// Work with the site file.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the site file, reporting every problem with file:line:column (exit 2 if any)
    Check {
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the validated site with all defaults filled in (secrets are never printed)
    Show {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

/// Print a shell completion script to stdout.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_and_nagios_conflict() {
        let r = Cli::try_parse_from(["posta", "check", "--json", "--nagios"]);
        assert!(r.is_err());
    }
}
