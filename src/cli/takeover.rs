//! The arguments of `posta takeover` and `posta failback`: the mode and its ad hoc settings.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::parse_duration;

/// Move mailserver1's address to this host (takeover) or give it back (failback).
///
/// vip: an RFC 5227 ARP probe (refusing when anyone still answers for the address, unless
/// --force), the address added to the interface, gratuitous ARP / unsolicited neighbour
/// advertisements, then a check that SMTP answers through it. Failback removes it; with
/// --reclaim, run on mailserver1, it re-adds and announces it there.
///
/// dns: one TSIG-signed RFC 2136 UPDATE that replaces the A/AAAA record only if it still holds
/// the expected address (compare-and-swap), then a read-back from every authoritative server
/// and the worst-case client convergence time. Failback is the reverse swap.
///
/// Without a mode the site file's [takeover] mode is used; flags override the site file.
/// Repeating a completed action changes nothing and says so. Every change is recorded in the
/// state file (see posta status); hooks from the site's [hooks] run before and after.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 done or already in effect, 1 refused or failed (the \
output says what is still in place), 2 usage or site-file error.\n\n\
Examples:\n  posta takeover --dry-run\n  posta takeover vip --address 10.0.0.25/24 --dev eth0\n  \
posta failback vip --address 10.0.0.25/24 --dev eth0 --reclaim\n  \
posta takeover dns --server 127.0.0.1:5353 --zone example.test --name mail \\\n    \
--expect 10.0.0.25 --to 10.0.0.26 --key-file /etc/posta/tsig.key --ttl 60"
)]
pub struct TakeoverArgs {
    #[command(subcommand)]
    pub mode: Option<ModeArgs>,

    /// Print the exact actions; change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Print the outcome as JSON
    #[arg(long, global = true)]
    pub json: bool,

    /// State file [default: the site's [takeover] state_file, else /var/lib/posta/takeover.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// Limit for each step (probe, update, verification)
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// The takeover mode and its ad hoc settings.
#[derive(Debug, Subcommand)]
pub enum ModeArgs {
    /// Virtual IP: mailserver2 takes mailserver1's address as an alias
    Vip(VipArgs),
    /// DNS: mailserver1's A record is rewritten to mailserver2's address
    Dns(DnsArgs),
}

#[derive(Debug, Args)]
pub struct VipArgs {
    /// The address and prefix, e.g. 10.0.0.25/24 [default: the site's [vip] address]
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub address: Option<String>,

    /// The interface [default: the site's [vip] interface]
    #[arg(long, value_name = "IF")]
    pub dev: Option<String>,

    /// Address label, e.g. eth0:posta [default: the site's, else none]
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,

    /// Take the address even if a host answers the ARP probe
    #[arg(long)]
    pub force: bool,

    /// Failback run on mailserver1: re-add and announce the address here
    #[arg(long)]
    pub reclaim: bool,

    /// ARP probes to send before taking the address (0 skips the probe)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub probe_count: u32,

    /// Time between ARP probes
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = parse_duration)]
    pub probe_interval: std::time::Duration,

    /// Time to wait for an answer after the last probe
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub probe_wait: std::time::Duration,

    /// Gratuitous ARP packets per burst
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub garp_count: u32,

    /// Time between gratuitous ARP packets
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    pub garp_interval: std::time::Duration,

    /// Gratuitous ARP as requests or replies (some switches only learn from one kind)
    #[arg(long, value_enum, default_value_t = GarpMode::Request)]
    pub garp_mode: GarpMode,

    /// Delay of the second burst, for caches that missed the first; 0 sends none
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub second_burst: std::time::Duration,

    /// SMTP port checked through the address [default: the primary's smtp service, else 25]
    #[arg(long, value_name = "PORT")]
    pub smtp_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GarpMode {
    Request,
    Reply,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The zone's primary authoritative server, host:port [default: the site's [dns] server]
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,

    /// The zone [default: the site's]
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,

    /// The record's name, relative to the zone or absolute [default: the site's]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The address(es) the record must hold now [default: the primary's (takeover) or the
    /// backup's (failback)]
    #[arg(long, value_name = "ADDR")]
    pub expect: Vec<std::net::IpAddr>,

    /// The address(es) it will hold [default: the backup's (takeover) or the primary's]
    #[arg(long, value_name = "ADDR")]
    pub to: Vec<std::net::IpAddr>,

    /// BIND-format TSIG key file, owner-only [default: the site's tsig_key_file]
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// TTL of the written record [default: the site's, else 300; failback: the TTL the record had
    /// before the takeover, as recorded in the state file]
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u32>,

    /// Edit this static zone file instead of sending an UPDATE [default: the site's zone_file]
    #[arg(long, value_name = "FILE", requires = "reload")]
    pub zone_file: Option<PathBuf>,

    /// Command that makes the server load the edited zone (one argument per --reload)
    #[arg(long, value_name = "ARG")]
    pub reload: Vec<String>,
}
