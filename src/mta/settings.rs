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
    /// primary. The default for a smarthost.
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
    /// Whose the Maildirs are, and who the mta runs as once its ports are bound.
    pub owner: Option<super::owner::Owner>,
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
    /// mailserver1's certificate and key, presented while this host answers for it: on
    /// connections to `vip_address` and to clients naming it by SNI.
    pub vip_tls_cert: Option<PathBuf>,
    pub vip_tls_key: Option<PathBuf>,
    pub vip_address: Option<std::net::IpAddr>,
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
            owner: None,
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
            vip_tls_cert: None,
            vip_tls_key: None,
            vip_address: None,
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
    pub fn validate(&self) -> Result<(), SettingsError> {
        let conflict = |why| Err(SettingsError::Conflict(why));
        if self.listen.is_empty() {
            return conflict("nothing to listen on: give --listen or [mta] listen");
        }
        if self.maildir.is_none() && self.queue.is_none() {
            return conflict(
                "mail has nowhere to go: give --maildir (local delivery) and/or --queue (relay)",
            );
        }
        if !self.domains.relay.is_empty() && self.queue.is_none() {
            return conflict("relay domains need a queue (--queue DIR)");
        }
        if !self.domains.local.is_empty() && self.maildir.is_none() {
            return conflict("local domains need Maildirs (--maildir DIR)");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return conflict("--tls-cert and --tls-key go together");
        }
        if self.verify_recipients && self.queue.is_none() {
            return conflict(
                "--verify-recipients asks the next hop of the relay: it needs --queue",
            );
        }
        if self.pop3.is_some() && self.maildir.is_none() {
            return conflict("the POP3 server reads the Maildirs: give --maildir");
        }
        for d in &self.domains.relay {
            relay_domain("--relay-domain", d)?;
        }
        // A 0 here would mean "no clients" or "no mail"; in Postfix's message_size_limit and
        // smtpd_client_connection_count_limit it means "no limit". Either reading may be what
        // the admin expected, so neither is guessed (taking it as 1 hid the mistake).
        for (flag, n, why) in [
            (
                "--max-connections",
                self.max_connections,
                "0 would refuse every client",
            ),
            (
                "--max-per-ip",
                self.max_per_ip,
                "0 would refuse every client",
            ),
            (
                "--max-recipients",
                self.limits.max_recipients,
                "0 would refuse every recipient",
            ),
            (
                "--max-message-size",
                self.limits.max_message_size as usize,
                "0 would refuse every message",
            ),
        ] {
            if n == 0 {
                return Err(SettingsError::Zero { flag, why });
            }
        }
        Ok(())
    }
}

/// Settings that cannot work; each names the flag to fix (the site file's `[mta]` key has
/// the same name with underscores).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{flag} must be at least 1: {why}")]
    Zero {
        flag: &'static str,
        why: &'static str,
    },
    #[error("{flag} {domain:?}: {why}")]
    Domain {
        flag: &'static str,
        domain: String,
        why: &'static str,
    },
}

/// A domain as given to `flag`, lowercased without its trailing dot, or why it is no domain:
/// LDH labels (RFC 1035 §2.3.1), at most 253 characters.
pub fn domain(flag: &'static str, raw: &str) -> Result<String, SettingsError> {
    let d = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if !super::tables::is_ldh_domain(&d) {
        return Err(SettingsError::Domain {
            flag,
            domain: raw.to_string(),
            why: "not a domain name",
        });
    }
    Ok(d)
}

/// [`domain`] for a domain whose mail is relayed: one label (`com`, `org`) is a whole
/// top-level domain, and relaying for it makes this server an open relay for every domain
/// under it. Public suffixes of two labels (`co.uk`) cannot be told from `example.org`
/// without the public suffix list; one label can.
pub fn relay_domain(flag: &'static str, raw: &str) -> Result<String, SettingsError> {
    let d = domain(flag, raw)?;
    if !d.contains('.') {
        return Err(SettingsError::Domain {
            flag,
            domain: raw.to_string(),
            why: "a top-level domain: relaying for it would relay for every domain under it",
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_only() -> Settings {
        let mut s = Settings::new("mx2.example.test".into());
        s.listen = vec!["127.0.0.1:25".parse().unwrap()];
        s.queue = Some(PathBuf::from("/var/spool/posta"));
        s.domains.relay = vec!["example.test".into()];
        s
    }

    #[test]
    fn zero_limits_are_refused_by_flag() {
        assert_eq!(relay_only().validate(), Ok(()));
        let mut s = relay_only();
        s.max_connections = 0;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.starts_with("--max-connections must be at least 1"), "{e}");
        let mut s = relay_only();
        s.limits.max_message_size = 0;
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("--max-message-size must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn relay_domains_must_be_below_a_top_level_domain() {
        assert_eq!(
            relay_domain("--relay-domain", "Example.TEST."),
            Ok("example.test".into())
        );
        for bad in [
            "com",
            "COM.",
            "",
            ".",
            "exa mple.test",
            "a..b",
            "-a.test",
            "a_b.test",
        ] {
            assert!(relay_domain("--relay-domain", bad).is_err(), "{bad:?}");
        }
        let e = relay_domain("--relay-domain", "com")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--relay-domain \"com\": a top-level domain"),
            "{e}"
        );
        assert_eq!(domain("--domain", "localhost"), Ok("localhost".into()));
        let mut s = relay_only();
        s.domains.relay.push("org".into());
        assert!(s.validate().is_err());
    }
}
