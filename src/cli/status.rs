//! The arguments of `posta status`.

use std::path::PathBuf;

use clap::Args;

/// Show who holds mailserver1's address or record, and the recent takeovers and failbacks.
///
/// For a virtual IP, also who answers for it now, from an ARP probe that counts every host
/// answering (needs CAP_NET_RAW): nobody, this host, mailserver1 (by the MAC its own address
/// answers with), another host, or both (a duplicate address).
///
/// With a watch daemon, its state, probes and last sweep. With the site's [mta] maildir or
/// queue, what waits on this host for mailserver1: messages, bytes and the oldest's age
/// (counted now; at most 100,000 files per place, then "≥").
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,

    /// State file [default: the site's [takeover] state_file, else /var/lib/posta/takeover.json]
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// The watch daemon's state file [default: the site's [watch] state_file, else
    /// /var/lib/posta/watch.json]
    #[arg(long, value_name = "FILE")]
    pub watch_state_file: Option<PathBuf>,
}
