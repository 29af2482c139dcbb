//! The subcommands of `posta keepalived`.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

/// posta under keepalived (VRRP): keepalived elects who holds the address, posta checks the
/// primary for it and does the mail work around each change.
#[derive(Debug, Subcommand)]
pub enum KeepalivedCommand {
    /// Print a keepalived.conf for this host from the site file: a vrrp_script running
    /// `posta check --nagios primary` on mailserver1 (its fall covers the takeover grace),
    /// the VIP, and `posta keepalived fifo` reading keepalived's vrrp_notify_fifo
    Config {
        /// Which of the pair this configuration is for
        #[arg(long, value_enum)]
        role: PairRole,
        /// VRRP router id shared by the pair (1-255)
        #[arg(long, default_value_t = 51, value_parser = clap::value_parser!(u8).range(1..))]
        router_id: u8,
        /// The FIFO keepalived writes its events to (it creates it; one per keepalived)
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/run/posta-keepalived.fifo"
        )]
        fifo: PathBuf,
    },
    /// keepalived's vrrp_notify_fifo_script: reads `INSTANCE "name" STATE priority` lines from
    /// the FIFO and handles them one at a time, in the order keepalived wrote them. On
    /// mailserver2 becoming MASTER: takeover hooks, recorded; leaving MASTER: failback hooks,
    /// recorded, then the mta queue flushed and `posta migrate` started (a takeover arriving
    /// while it runs is handled at once). Runs until keepalived ends it with SIGTERM
    Fifo {
        /// Which of the pair this host is
        #[arg(long, value_enum)]
        role: PairRole,
        /// The FIFO (keepalived passes it as the last argument)
        fifo: PathBuf,
    },
    /// keepalived's plain notify script, for a keepalived.conf that does not use the FIFO:
    /// `notify "posta keepalived notify --role backup"`. keepalived starts one per transition
    /// without waiting; each queues its notification and they are handled one at a time in
    /// the order they reached posta, as `fifo` does. Prefer `fifo`: processes keepalived
    /// starts within a few milliseconds may reach posta in either order
    Notify {
        /// Which of the pair this host is
        #[arg(long, value_enum)]
        role: PairRole,
        /// GROUP or INSTANCE (keepalived's first argument)
        kind: String,
        /// The group's or instance's name
        name: String,
        /// MASTER, BACKUP, FAULT, STOP or DELETED
        state: String,
        /// The priority (keepalived's fourth argument; unused)
        priority: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PairRole {
    /// mailserver1 (MASTER, priority 150, tracks its own services)
    Primary,
    /// mailserver2 (BACKUP, priority 100)
    Backup,
}
