//! The arguments of `posta drill`.

use std::path::PathBuf;

use clap::Args;

/// Rehearse the whole failover on this machine, with posta's own parts.
///
/// Builds the seed's network in namespaces (a client; mailserver1 holding the virtual IP;
/// mailserver2 with POP3 and `posta watch`; the friend's relay, MX 30), sends mail, stops
/// mailserver1, and prints each phase as it happens: the watch detecting it, the grace, the
/// takeover, mail accepted by mailserver2 and queued by the relay during the outage,
/// mailserver1 returning, the failback, the migration home. It ends with a reconciliation by
/// Message-ID: sent, in mailserver1's mailbox, lost, duplicated (exit 1 if anything is lost
/// or duplicated). As root it uses network namespaces directly; otherwise it enters an
/// unprivileged user namespace (`unshare -Urnm`) and runs there.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Short intervals and grace (seconds instead of minutes), for a demonstration
    #[arg(long)]
    pub fast: bool,
    /// Messages sent in each phase
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub messages: usize,
    /// Keep the drill's files (logs, Maildirs, site file) here [default: a temporary directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
