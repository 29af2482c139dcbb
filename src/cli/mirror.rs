//! The arguments of `posta mirror`.

use std::path::PathBuf;

use clap::Args;

use super::parse_duration;

/// Keep a warm copy of every mailbox of mailserver1 on mailserver2.
///
/// One way, incremental, over IMAP with each server's admin identity (the site file's
/// [migrate] dest_admin logs in to mailserver1, source_admin to mailserver2): folders created,
/// renamed and deleted; messages copied byte for byte with their flags and INTERNALDATE; flag
/// and keyword changes; expunges. CONDSTORE/QRESYNC (RFC 7162) are used where offered, so an
/// unchanged folder costs one round trip. A per-account state under --state-dir maps every
/// mailserver1 message to its copy: a message on mailserver2 that the mirror did not copy
/// (mail posta mta stored there) is never touched, and a pass killed at any moment resumes
/// without copying anything twice.
///
/// Accounts are the site file's [[migrate.accounts]] (or accounts = "all"), all or those named.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 every account's pass completed, 1 some account's pass failed \
(see the report), 2 usage or site-file error. Without --once posta mirror passes every \
--interval (and with --idle when an INBOX changes) until SIGTERM or SIGINT, lets a pass in \
progress end, and exits with the last pass's status. It holds the mirror's lock, which posta \
migrate takes to read the map, only during its passes.\n\n\
Examples:\n  posta mirror --once\n  posta mirror --once --json alice bob\n  \
posta mirror --interval 30s\n  posta mirror --idle"
)]
pub struct MirrorArgs {
    /// Site-file accounts to mirror [default: all]
    #[arg(value_name = "ACCOUNT")]
    pub accounts: Vec<String>,

    /// One pass, then exit
    #[arg(long)]
    pub once: bool,

    /// Time between the start of one pass and the next [default: the site's [mirror]
    /// interval, else 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<std::time::Duration>,

    /// Also pass an account within seconds of a change on mailserver1: one more session per
    /// account to mailserver1 IDLEs in INBOX (RFC 2177) and hears of every folder where the
    /// server offers NOTIFY (RFC 5465; Dovecot does), else of INBOX only. The --interval
    /// passes go on. Not with --once
    #[arg(long, conflicts_with = "once")]
    pub idle: bool,

    /// With --idle: leave out of the --interval passes the accounts whose session heard of
    /// every folder and no change since their last pass (each is still passed every 10
    /// intervals). Only where every change on mailserver1 goes through Dovecot (LMTP or
    /// dovecot-lda delivery, IMAP): NOTIFY does not hear of mail another program (procmail,
    /// maildrop) writes into a folder other than INBOX
    #[arg(long, requires = "idle")]
    pub trust_notify: bool,

    /// Print each pass's report as JSON
    #[arg(long)]
    pub json: bool,

    /// The per-account state files [default: the site's [mirror] state_dir, else
    /// /var/lib/posta/mirror]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Accounts mirrored at once; each holds one session to each server, so this caps the
    /// sessions per server
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// Trust the CA certificates in this PEM file, besides the system's
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify TLS certificates (they are verified by default)
    #[arg(long)]
    pub insecure: bool,

    /// Longest wait for any one reply; a pass after a kill also waits this long before it
    /// looks for the killed pass's last batch on mailserver2
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}
