//! The arguments of `posta watch`.

use std::path::PathBuf;

use clap::Args;

/// Run the health-check daemon on mailserver2: probe mailserver1, decide, act.
///
/// Every [probe] interval the primary's services are probed as `posta check primary` does.
/// After `fall` failed rounds the primary is down and the takeover grace starts; any good
/// round ends it (a flapping primary never causes a takeover). When the grace ends, with
/// `[watch] auto_takeover = true` and the witnesses agreeing, it runs `posta takeover`;
/// otherwise it says so and waits for an operator. Once it holds the address, `rise` good
/// rounds in a row mean the primary is back; then `posta failback` (with auto_failback) and,
/// after it, `posta queue flush` and `posta migrate`. While healthy, every [watch]
/// sweep_interval (default 1m; "off" disables) it runs the same `posta migrate` to bring home
/// mail mailserver2 accepted anyway, one at a time; a takeover or failback waits for a sweep
/// to end, and a failed sweep is retried at the next interval. Every transition runs the [hooks]
/// on_transition commands, in order, each time-limited. SIGHUP reloads the site file (a bad
/// one keeps the old); SIGTERM stops between rounds, never inside a takeover.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only probe and report (for another host's witness): never take over or fail back
    #[arg(long)]
    pub witness: bool,
    /// Serve /metrics and /status here [default: the site's [watch] listen; none]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// State file [default: the site's [watch] state_file, else /var/lib/posta/watch.json]
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
}
