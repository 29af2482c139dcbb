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
    Migrate(Box<MigrateArgs>),
    Takeover(TakeoverArgs),
    Failback(TakeoverArgs),
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

/// Bring mail home from mailserver2 to mailserver1, losing nothing and duplicating nothing.
///
/// Reads mailserver2 over IMAP (every folder), POP3, or from its Maildirs on disk, and hands
/// INBOX mail to mailserver1 by SMTP or LMTP, so its filters and quotas apply; other folders go
/// by IMAP APPEND with their flags and dates. Messages are identified by UID, UIDL or Maildir
/// unique name, never by the \Seen flag, and each one leaves the source only after mailserver1 accepted it. A journal under --state-dir,
/// fsync'd before every step, lets a run killed at any moment resume without sending anything
/// twice. Messages mailserver1 refuses for good are copied to a local quarantine Maildir and
/// stay on the source. Every run ends with a reconciliation, per account and folder.
///
/// Accounts come from the site file's [[migrate.accounts]] (all, or those named), from its
/// accounts = "all" (the accounts found on this host: the Maildirs under [mta] maildir, else
/// pop3_users, else the recipients file), or from --from for one ad hoc account. With more than
/// one account the report ends with a site summary: a row per account and a totals row.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 everything selected arrived (or --dry-run), 1 something \
did not arrive (quarantined, left on the source, missing or duplicated at mailserver1) or a \
Maildir under the site's [mta] maildir holds mail that no account covers, 2 usage or site-file \
error.\n\n\
Examples:\n  posta migrate --dry-run\n  posta migrate alice bob\n  \
posta migrate --from imaps://alice@mailserver2 --password-file /etc/posta/alice.pw \\\n    \
--to smtp://mailserver1:25 --rcpt alice@example.org \\\n    \
--to-imap imaps://alice@mailserver1 --to-password-file /etc/posta/alice.pw\n  \
posta migrate --source-admin admin --source-admin-password-file /etc/posta/admin.pw \\\n    \
--dest-admin admin --dest-admin-password-file /etc/posta/admin-primary.pw\n  \
posta migrate --from maildir:/var/vmail/%u/Maildir --user alice \\\n    \
--to smtp://mailserver1:25 --rcpt alice@example.org"
)]
pub struct MigrateArgs {
    /// Site-file accounts to migrate (source user names) [default: all]
    #[arg(value_name = "ACCOUNT", conflicts_with = "from")]
    pub accounts: Vec<String>,

    /// Source mailbox: imap://, imaps://, pop3:// or pop3s://user@mailserver2[:port], or
    /// maildir:PATH to read a Maildir on this host (run on mailserver2; no password needed;
    /// `%u` in PATH stands for --user, e.g. maildir:/var/vmail/%u/Maildir)
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,

    /// The account's user with a maildir: source: replaces `%u` in its PATH and names the
    /// account [default: the Maildir's directory name]
    #[arg(long, value_name = "NAME", requires = "from")]
    pub user: Option<String>,

    /// File with the source user's password (owner-only mode)
    #[arg(
        long,
        value_name = "FILE",
        requires = "from",
        conflicts_with = "source_admin"
    )]
    pub password_file: Option<PathBuf>,

    /// Where INBOX mail goes: smtp://mailserver1[:port] or lmtp://host:port
    #[arg(long, value_name = "URL", requires = "from")]
    pub to: Option<String>,

    /// Envelope recipient at mailserver1 [default: each message's Delivered-To / X-Original-To]
    #[arg(long, value_name = "ADDRESS", requires = "from")]
    pub rcpt: Option<String>,

    /// IMAP login on mailserver1 (imap:// or imaps://user@host) for folders, for checking
    /// unknown outcomes after a crash, and for reading the result back
    #[arg(long, value_name = "URL", requires = "from")]
    pub to_imap: Option<String>,

    /// mailserver1's Maildir for each account, when posta runs there (`%u`: the account's
    /// user, or its dest_user in the site file; e.g. /var/vmail/%u/Maildir): settles unknown
    /// outcomes after a crash and reads the result back by tracking id, without any login
    #[arg(long, value_name = "PATH")]
    pub to_maildir: Option<PathBuf>,

    /// File with the password for --to-imap [default: --dest-admin, else --password-file]
    #[arg(long, value_name = "FILE", requires = "to_imap")]
    pub to_password_file: Option<PathBuf>,

    /// Admin identity on mailserver2 (a Dovecot master user) that logs in as every source
    /// user, so no user's password is needed; accounts with their own password file still use
    /// it [default: the site file's source_admin]
    #[arg(long, value_name = "USER", requires = "source_admin_password_file")]
    pub source_admin: Option<String>,

    /// File with the --source-admin password (owner-only mode)
    #[arg(long, value_name = "FILE", requires = "source_admin")]
    pub source_admin_password_file: Option<PathBuf>,

    /// Admin identity on mailserver1 for the IMAP login (--to-imap, folders, the read-back)
    /// [default: the site file's dest_admin]
    #[arg(long, value_name = "USER", requires = "dest_admin_password_file")]
    pub dest_admin: Option<String>,

    /// File with the --dest-admin password (owner-only mode)
    #[arg(long, value_name = "FILE", requires = "dest_admin")]
    pub dest_admin_password_file: Option<PathBuf>,

    /// How an admin identity logs in: auto (SASL PLAIN with the user as authorization identity
    /// when the server offers PLAIN, else LOGIN user*admin), plain, or separator (LOGIN
    /// user*admin: Dovecot's auth_master_user_separator = *) [default: the site file's login,
    /// else auto]
    #[arg(long, value_enum, value_name = "HOW")]
    pub admin_login: Option<AdminVia>,

    /// How INBOX reaches mailserver1: deliver (SMTP/LMTP; filters apply) or append (IMAP;
    /// flags and dates survive)
    #[arg(long, value_enum, default_value_t = InboxVia::Deliver)]
    pub inbox: InboxVia,

    /// Migrate only this folder (repeatable; decoded name, e.g. INBOX or Entwürfe)
    #[arg(long = "folder", value_name = "NAME")]
    pub folders: Vec<String>,

    /// Leave the source untouched; a later run still sends nothing twice
    #[arg(long)]
    pub keep: bool,

    /// Only unread messages (IMAP)
    #[arg(long)]
    pub unseen: bool,

    /// Print, per account and folder, what would move; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print the reconciliation as JSON
    #[arg(long)]
    pub json: bool,

    /// Journals and the quarantine Maildir [default: the site's, else /var/lib/posta/migrate]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Trust the CA certificates in this PEM file, besides the system's
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify TLS certificates (they are verified by default)
    #[arg(long)]
    pub insecure: bool,

    /// Delivery connections per account (each may hold an SMTP and an IMAP session to
    /// mailserver1; Dovecot allows 10 per user and address by default,
    /// mail_max_userip_connections)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: u16,

    /// Accounts delivering at once, each with one session to mailserver2. An account that has
    /// sent everything makes room for the next while it waits for mailserver1 to store its
    /// mail and reads it back, keeping its session for the removals; as many may do so at
    /// once, so sessions to mailserver2 stay at most twice this
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// Delivery connections to mailserver1 across every account: an account starts once its
    /// --connections (or what is left, at least one) are free. The default leaves most of
    /// Postfix's 100 smtpd processes (default_process_limit) to the site's own mail and stays
    /// under its 50 connections per client (smtpd_client_connection_count_limit)
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_primary_connections: u16,

    /// How long temporary failures (4xx, 421, lost connections) are retried
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub retry_for: std::time::Duration,

    /// How long an accepted message may take to show up in mailserver1's mailbox
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub settle: std::time::Duration,

    /// Longest wait for any one reply
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// Skip reading mailserver1 back at the end (the reconciliation then relies on its replies)
    #[arg(long)]
    pub no_verify: bool,

    /// A message sent but never answered (posta killed or the connection lost after the final
    /// dot), when there is no IMAP login on mailserver1 to look for it: keep it on the source
    /// and report it, or resend it (at least once: mailserver1 may then hold it twice, and the
    /// run says how many). With an IMAP login posta looks instead
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = UnknownVia::Keep)]
    pub unknown: UnknownVia,

    /// Name given in EHLO/LHLO and the trace header [default: this host's name]
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,
}

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

/// How an admin identity logs in (`client::AdminForm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdminVia {
    Auto,
    Plain,
    Separator,
}

/// How INBOX mail reaches mailserver1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InboxVia {
    Deliver,
    Append,
}

/// What `posta migrate` does with an unknown outcome it cannot look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnknownVia {
    Keep,
    Resend,
}

/// Work with the site file.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the site file, reporting every problem with file:line:column (exit 2 if any,
    /// or if there is no site file), then check on this host every secret file it names
    /// (owner-only and readable; the error names the section that needs it) and, when this
    /// host has the [backup] address, that the [vip] interface exists
    Check {
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the validated site as a site file with all defaults filled in, which reads back
    /// the same (secret files by path, never their contents)
    Show {
        /// Print the typed site as JSON instead
        #[arg(long)]
        json: bool,
    },
}

/// Run the bundled mini-MTA: mailserver2's backup MX (MX 20) storing mail in Maildirs, or
/// the friend's relay (MX 30) queueing and forwarding it.
///
/// Accepts mail only for configured domains (never an open relay), decides with sendmail's
/// access, virtusertable and local-host-names files read as text, and answers 250 only once
/// the message is fsync'd: in the user's Maildir (--maildir) or in the queue (--queue), from
/// which it is relayed to --relay-to or to the domain's better MX hosts, retried with backoff
/// for --lifetime and then returned to its sender with a DSN. `RCPT TO:<postmaster>` without a
/// domain is always accepted (RFC 5321 §4.5.1): into the postmaster's Maildir with --maildir,
/// else relayed to postmaster@ the first relay domain. SIGHUP reloads the tables and the
/// certificates (a broken file keeps the old ones); SIGTERM stops accepting and exits. With no flags the site file's
/// [mta] section is used.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
posta mta --listen 0.0.0.0:25 --hostname mailserver2.example.org --domain example.org \\\n    \
--maildir /var/mail/posta --recipients /etc/posta/recipients --pop3-listen 0.0.0.0:110 \\\n    \
--pop3-users /etc/posta/pop3-users --tls-cert cert.pem --tls-key key.pem\n  \
posta mta --listen 0.0.0.0:25 --hostname mx.friend.org --relay-domain example.org \\\n    \
--queue /var/spool/posta --access /etc/mail/access\n  \
posta mta explain --access /etc/mail/access --client 192.0.2.7 --from a@b.net --rcpt ana@example.org"
)]
pub struct MtaArgs {
    #[command(subcommand)]
    pub command: Option<MtaCommand>,
    #[command(flatten)]
    pub run: MtaRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum MtaCommand {
    Explain(ExplainArgs),
    /// Print a POP3 users-file line for USER: the password is read from stdin (one line,
    /// never from the command line) and hashed with SHA512-CRYPT, as `doveadm pw` does
    Passwd {
        /// The user name (the Maildir under --maildir)
        user: String,
    },
}

/// How the relay role reaches the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RelayTlsArg {
    /// STARTTLS required and the certificate verified (the default with --relay-to)
    Require,
    /// STARTTLS when offered, verified when used (the default for MX delivery)
    May,
    /// Plain text (a private link or loopback)
    None,
}

#[derive(Debug, Clone, Default, Args)]
pub struct MtaRunArgs {
    /// Address to accept SMTP on, e.g. 0.0.0.0:25 (repeatable)
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<std::net::SocketAddr>,
    /// This server's name: greeting, Received headers, and finding itself in MX lists
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// A domain delivered here: local to the Maildirs with --maildir, else relayed (repeatable).
    /// `localhost` is not one unless given here or in local-host-names
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Vec<String>,
    /// A domain (and its subdomains) queued and relayed, like `To:DOMAIN RELAY` (repeatable);
    /// a top-level domain (one label, such as `com`) is refused
    #[arg(long, value_name = "DOMAIN")]
    pub relay_domain: Vec<String>,
    /// Root of the users' Maildirs: user U's mail goes to DIR/U/new, or a Dovecot-style
    /// template such as /var/vmail/%u/Maildir
    #[arg(long, value_name = "DIR")]
    pub maildir: Option<PathBuf>,
    /// Who the Maildirs belong to (Dovecot's mail user, e.g. vmail): started as root, the mta
    /// binds its ports, then runs as this user and group for good, so files are 0600 and
    /// directories 0700, its own; started as that user, it goes on as it is
    #[arg(long, value_name = "USER[:GROUP]")]
    pub maildir_owner: Option<String>,
    /// The durable queue for relayed mail
    #[arg(long, value_name = "DIR")]
    pub queue: Option<PathBuf>,
    /// The control socket `posta queue flush` reaches this mta by, kept out of the queue
    /// directory [default: /run/posta/mta.sock]
    #[arg(long, env = "POSTA_CONTROL_SOCKET", value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Relay everything queued to this host instead of looking up MX records
    #[arg(long, value_name = "HOST:PORT")]
    pub relay_to: Option<String>,
    /// TLS towards the next hop [default: require with --relay-to, may for MX delivery]
    #[arg(long, value_enum, value_name = "MODE")]
    pub relay_tls: Option<RelayTlsArg>,
    /// Trust the CA certificates in this PEM file for the next hop, besides the system's
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Port of MX hosts (25; for tests)
    #[arg(long, value_name = "PORT", hide = true)]
    pub mx_port: Option<u16>,
    /// Ask this DNS server for MX records instead of the system's resolver (for tests)
    #[arg(long, value_name = "ADDR", hide = true)]
    pub dns_server: Option<std::net::SocketAddr>,
    /// sendmail's access file, as text
    #[arg(long, value_name = "FILE")]
    pub access: Option<PathBuf>,
    /// sendmail's virtusertable, as text
    #[arg(long, value_name = "FILE")]
    pub virtusertable: Option<PathBuf>,
    /// sendmail's local-host-names (class w)
    #[arg(long, value_name = "FILE")]
    pub local_host_names: Option<PathBuf>,
    /// Valid recipients (user@domain or @domain per line): others get 550 at RCPT. The list
    /// covers every --domain, --relay-domain (subdomains included), local-host-names name and
    /// every domain it names (subdomains included), as Postfix's relay_recipient_maps
    #[arg(long, value_name = "FILE")]
    pub recipients: Option<PathBuf>,
    /// Check relayed recipients that no --recipients list covers with the next hop (the
    /// primary) and cache the answers for 31 days: while the primary is down, known users are
    /// accepted and unknown ones get 450, never a late bounce
    #[arg(long)]
    pub verify_recipients: bool,
    /// Serve the Maildirs over POP3 on this address (STLS offered with a certificate)
    #[arg(long, value_name = "ADDR")]
    pub pop3_listen: Vec<std::net::SocketAddr>,
    /// Serve POP3 over implicit TLS (POP3S) on this address
    #[arg(long, value_name = "ADDR")]
    pub pop3s_listen: Vec<std::net::SocketAddr>,
    /// POP3 users: user:{SHA512-CRYPT}hash lines (Dovecot passwd-file format), owner-only
    #[arg(long, value_name = "FILE")]
    pub pop3_users: Option<PathBuf>,
    /// Simultaneous POP3 sessions from one address, of the 100 POP3 slots [default: 20]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pop3_max_per_ip: Option<u64>,
    /// Certificate chain (PEM) for STARTTLS, STLS and POP3S
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM, owner-only) for --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// mailserver1's certificate chain (PEM), presented on connections to --vip-address and
    /// to clients asking by SNI for a name it covers; SIGHUP reloads it with --tls-cert
    #[arg(long, value_name = "FILE", requires_all = ["vip_tls_key", "tls_cert"])]
    pub vip_tls_cert: Option<PathBuf>,
    /// Private key (PEM, owner-only) for --vip-tls-cert
    #[arg(long, value_name = "FILE", requires = "vip_tls_cert")]
    pub vip_tls_key: Option<PathBuf>,
    /// The VIP: connections to this local address get --vip-tls-cert whatever their SNI
    /// [default: the site file's [vip] address]
    #[arg(long, value_name = "IP", requires = "vip_tls_cert")]
    pub vip_address: Option<std::net::IpAddr>,
    /// Largest message accepted, in bytes, at least 1 [default: 52428800]
    #[arg(long, value_name = "BYTES")]
    pub max_message_size: Option<u64>,
    /// Recipients per message, at least 1 [default: 100]
    #[arg(long, value_name = "N")]
    pub max_recipients: Option<usize>,
    /// Simultaneous connections, at least 1 [default: 200]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Simultaneous connections from one address, at least 1 [default: 50, as Postfix]
    #[arg(long, value_name = "N")]
    pub max_per_ip: Option<usize>,
    /// Time allowed for each command line, and for the client to take each reply (POP3
    /// replies too; POP3's idle limit stays RFC 1939's 10 minutes) [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// First retry of a deferred message; doubles per attempt [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retry_min: Option<std::time::Duration>,
    /// Longest wait between retries [default: 1h6m40s, Postfix's 4000s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retry_max: Option<std::time::Duration>,
    /// Give up and return the message to its sender after this [default: 5d]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lifetime: Option<std::time::Duration>,
    /// Answer 452 to new mail when the spool's filesystem has less free space [default: 104857600]
    #[arg(long, value_name = "BYTES")]
    pub min_free: Option<u64>,
}

/// Administer the mta's queue: list, show, flush, hold, release, delete, export.
///
/// Works on the queue directory whether or not `posta mta` runs; flush asks the running mta
/// (through its control socket) to try everything now.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue directory [default: the site file's [mta] queue]
    #[arg(long, global = true, value_name = "DIR")]
    pub queue: Option<PathBuf>,
    /// The running mta's control socket [default: the site file's [mta] control_socket, else
    /// /run/posta/mta.sock]
    #[arg(long, global = true, env = "POSTA_CONTROL_SOCKET", value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Print results as JSON
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: QueueCommand,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued messages: id, age, size, sender, recipients, next attempt, last error
    List,
    /// Show one message's envelope, state and headers
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Ask the running mta to deliver now (all, or one domain)
    Flush {
        #[arg(value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Stop delivery attempts for these messages (they also do not expire)
    Hold {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
    /// Put held messages back in the active queue
    Release {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
    /// Remove messages without delivering them or sending a DSN
    Delete {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
    /// Copy queued messages out for manual recovery, as an mbox file or a Maildir
    Export {
        /// mbox or maildir
        #[arg(long, value_enum, default_value_t = ExportFormat::Mbox)]
        format: ExportFormat,
        /// The mbox file or Maildir directory to write (created)
        #[arg(long, value_name = "PATH")]
        to: PathBuf,
        /// Messages to export [default: all, held ones included]
        #[arg(value_name = "ID")]
        ids: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Mbox,
    Maildir,
}

/// Explain what sendmail's tables decide for one recipient, like `sendmail -bt`.
///
/// Reads the access, virtusertable and local-host-names files as admins write them (before
/// makemap) and prints the verdict and the trail: each entry consulted, with file:line. No
/// DNS is done, so Connect: entries match the client address only; the HELO name is never
/// used for access. Exit status: 0 accepted (also for DISCARD), 1 rejected, 2 a table has
/// an error (reported as file:line:column).
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The access table (FEATURE access_db), as text
    #[arg(long, value_name = "FILE")]
    pub access: Option<PathBuf>,
    /// The virtusertable, as text
    #[arg(long, value_name = "FILE")]
    pub virtusertable: Option<PathBuf>,
    /// The local-host-names file (class w)
    #[arg(long, value_name = "FILE")]
    pub local_host_names: Option<PathBuf>,
    /// IP address of the connecting client
    #[arg(long, value_name = "IP")]
    pub client: std::net::IpAddr,
    /// Name the client gave in HELO/EHLO (reported only)
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,
    /// Envelope sender (MAIL FROM); empty or <> for the null sender
    #[arg(long, value_name = "ADDRESS")]
    pub from: String,
    /// Envelope recipient (RCPT TO)
    #[arg(long, value_name = "ADDRESS")]
    pub rcpt: String,
    /// Print the verdict, the trail and lint warnings as JSON
    #[arg(long)]
    pub json: bool,
}

/// Print a shell completion script to stdout.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, crate::config::DurationError> {
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

/// One domain over regional servers (the seed's inkacoca): build every server's tables from
/// the offices' own user lists, and prove they route.
///
/// The layout file names the domain, the switch, each office and where its list lives; see
/// `posta routes build --help` for what is written.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
posta routes build --layout /etc/posta/routes.toml\n  \
posta routes build --watch\n  \
posta routes check\n  \
posta routes check --tables /srv/old-tables --domain inkacoca.org --switch switch.inkacoca.org")]
pub struct RoutesArgs {
    /// The layout file [default: /etc/posta/routes.toml]
    #[arg(long, global = true, env = "POSTA_LAYOUT", value_name = "FILE")]
    pub layout: Option<PathBuf>,
    #[command(subcommand)]
    pub command: RoutesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Write the switch's and each office's tables from the offices' lists: sendmail's
    /// virtusertable, local-host-names and mailertable, Postfix's virtual and transport maps
    /// and the main.cf lines that use them; says what changed and reloads the servers whose
    /// tables changed
    Build(RoutesBuildArgs),
    /// Prove by evaluation that every user reaches exactly their office, office-local mail
    /// stays local, unknown users are refused and nothing loops
    Check(RoutesCheckArgs),
}

#[derive(Debug, Args)]
pub struct RoutesBuildArgs {
    /// Print what would change and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep running: rebuild whenever the layout, a list or the rename map changes
    #[arg(long)]
    pub watch: bool,
    /// How often --watch looks at the files
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Apply a build that takes many users away from an office (refused by default: a
    /// truncated list would otherwise refuse their mail)
    #[arg(long)]
    pub allow_removals: bool,
    /// Do not run the servers' reload commands
    #[arg(long)]
    pub no_reload: bool,
}

#[derive(Debug, Args)]
pub struct RoutesCheckArgs {
    /// Check these sendmail tables instead of the layout's output: one directory per server,
    /// named by its mail name, holding virtusertable and local-host-names
    #[arg(long, value_name = "DIR", requires_all = ["domain", "switch"])]
    pub tables: Option<PathBuf>,
    /// The shared domain (with --tables)
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The switch's mail name, where the domain's MX points (with --tables)
    #[arg(long, value_name = "NAME")]
    pub switch: Option<String>,
    /// Print the route of one address from every server
    #[arg(long, value_name = "ADDRESS")]
    pub trace: Option<String>,
}

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
