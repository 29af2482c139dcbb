//! The arguments of `posta dns`: the zone for a routes layout.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// The zone for a routes layout: plan it, and compare it with what the name server says.
#[derive(Debug, Args)]
pub struct ZoneArgs {
    /// The layout file [default: /etc/posta/routes.toml]
    #[arg(long, global = true, env = "POSTA_LAYOUT", value_name = "FILE")]
    pub layout: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ZoneCommand,
}

#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Write the zone file for the layout: SOA and NS, the domain's MX records (the switch
    /// and any backups), the switch's address, each office's subdomain MX and its server's
    /// address
    Plan {
        /// Write here (atomically) instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The SOA serial [default: today's YYYYMMDD01]
        #[arg(long, value_name = "N")]
        serial: Option<u32>,
    },
    /// Compare the live zone with the plan (AXFR when the server allows it, otherwise queries
    /// for each planned name) and list every difference; exit 1 when there is drift
    Verify {
        /// The authoritative server to ask [default: [dns] server, else the first NS address]
        #[arg(long, value_name = "ADDR[:PORT]")]
        server: Option<String>,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
}
