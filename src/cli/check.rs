//! The arguments of `posta check`.

use std::path::PathBuf;

use clap::Args;

use super::parse_duration;

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
