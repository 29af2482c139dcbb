//! What one `posta mta` runs with, typed and validated once, whether it came from the site
//! file's `[mta]` section or from command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::policy::Domains;
use super::session::Limits;

/// Where `posta mta` serves its control socket and `posta queue` looks for it: systemd's
/// `RuntimeDirectory=posta`, so the queue directory holds only mail and state.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/posta/mta.sock";

/// Where the relay role sends queued mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// The recipient domain's MX hosts with a lower preference than ours (RFC 5321 §5.1).
    Mx {
        /// Our own names, to find ourselves in the MX list.
        me: Vec<String>,
        /// Port to connect to (25; tests use others).
        port: u16,
    },
    /// A fixed host (Postfix `relay:[host]:port`), no MX lookup.
    Smarthost { host: String, port: u16 },
}

/// TLS towards the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTls {
    /// STARTTLS required, certificate verified: a backup must not hand queued mail to a spoofed
    /// primary (notes §7 item 15). The default for a smarthost.
    Require,
    /// STARTTLS when offered, verified when used; plain otherwise (opportunistic, the MX default).
    May,
    /// Plain text (loopback tests, or a primary reached over a private link).
    None,
}

/// Retry schedule of the queue.
#[derive(Debug, Clone)]
pub struct Retry {
    /// First retry after this, doubling per attempt up to `max_backoff` (Postfix: 300 s / 4000 s).
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// After this the message is returned with a DSN (sendmail and Postfix: 5 days).
    pub lifetime: Duration,
    /// How often the runner looks at the queue.
    pub tick: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            min_backoff: Duration::from_secs(300),
            max_backoff: Duration::from_secs(4000),
            lifetime: Duration::from_secs(5 * 86_400),
            tick: Duration::from_secs(1),
        }
    }
}

/// The POP3 side, for a backup without Dovecot.
#[derive(Debug, Clone)]
pub struct Pop3 {
    pub listen: Vec<SocketAddr>,
    pub users: PathBuf,
    /// Implicit TLS (RFC 8314, POP3S) on these.
    pub listen_tls: Vec<SocketAddr>,
    /// Sessions at once from one client address.
    pub max_per_ip: usize,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    pub limits: Limits,
    pub domains: Domains,
    /// Local delivery: users' Maildirs under this root.
    pub maildir: Option<PathBuf>,
    /// Store-and-forward: the queue directory.
    pub queue: Option<PathBuf>,
    /// The queue's control socket (`posta queue flush`), outside the queue directory.
    pub control_socket: PathBuf,
    pub next_hop: NextHop,
    pub relay_tls: RelayTls,
    /// Extra CA for the next hop's certificate (otherwise the system roots).
    pub ca_file: Option<PathBuf>,
    /// Ask only this DNS server for MX records (tests); otherwise the system resolver.
    pub nameserver: Option<SocketAddr>,
    pub access: Option<PathBuf>,
    pub virtusertable: Option<PathBuf>,
    pub local_host_names: Option<PathBuf>,
    pub recipients: Option<PathBuf>,
    /// Relayed recipients no list covers are checked with the next hop and cached.
    pub verify_recipients: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub pop3: Option<Pop3>,
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// A whole command line must arrive within this (RFC 5321 §4.5.3.2: 5 minutes).
    pub timeout: Duration,
    /// A connection lives at most this long, however it trickles (slowloris).
    pub max_session: Duration,
    /// Free space below this on the spool's filesystem: 452 to new mail, never 5xx.
    pub min_free: u64,
    pub retry: Retry,
    /// Parallel deliveries from the queue.
    pub relay_connections: usize,
}

impl Settings {
    /// Defaults for everything but where mail goes.
    pub fn new(hostname: String) -> Settings {
        Settings {
            listen: Vec::new(),
            limits: Limits {
                hostname: hostname.clone(),
                ..Limits::default()
            },
            domains: Domains::default(),
            maildir: None,
            queue: None,
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            next_hop: NextHop::Mx {
                me: vec![hostname],
                port: 25,
            },
            relay_tls: RelayTls::May,
            ca_file: None,
            nameserver: None,
            access: None,
            virtusertable: None,
            local_host_names: None,
            recipients: None,
            verify_recipients: false,
            tls_cert: None,
            tls_key: None,
            pop3: None,
            max_connections: 200,
            max_per_ip: 50,
            timeout: Duration::from_secs(300),
            max_session: Duration::from_secs(3600),
            min_free: 100 << 20,
            retry: Retry::default(),
            relay_connections: 8,
        }
    }

    /// Refuses settings that cannot work or would make an open relay.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err("nothing to listen on: give --listen or [mta] listen".into());
        }
        if self.maildir.is_none() && self.queue.is_none() {
            return Err(
                "mail has nowhere to go: give --maildir (local delivery) and/or --queue (relay)"
                    .into(),
            );
        }
        if !self.domains.relay.is_empty() && self.queue.is_none() {
            return Err("relay domains need a queue (--queue DIR)".into());
        }
        if !self.domains.local.is_empty() && self.maildir.is_none() {
            return Err("local domains need Maildirs (--maildir DIR)".into());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together".into());
        }
        if self.verify_recipients && self.queue.is_none() {
            return Err(
                "--verify-recipients asks the next hop of the relay: it needs --queue".into(),
            );
        }
        if self.pop3.is_some() && self.maildir.is_none() {
            return Err("the POP3 server reads the Maildirs: give --maildir".into());
        }
        if self.domains.relay.iter().any(|d| d.is_empty() || d == ".") {
            return Err("an empty relay domain would relay everything".into());
        }
        Ok(())
    }
}
