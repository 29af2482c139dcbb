//! The arguments of `posta mta`, its run flags and its subcommands (explain, passwd).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::parse_duration;

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
