//! What to probe: a protocol, an endpoint, TLS policy and an optional probe account.
//!
//! Targets come from the site file or from URLs on the command line
//! (`smtp://host:port`, `imap://user@host?starttls=require`, `pop3s://host`).

use std::time::Duration;

use crate::secret::Secret;
pub use crate::service::{Scheme, StartTls, TlsPolicy};

/// SMTP AUTH mechanism for the probe account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMechanism {
    /// PLAIN when offered, else LOGIN.
    #[default]
    Auto,
    Plain,
    Login,
}

/// A probe account: logs in, proving the server's authentication and mail store work.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub password: Secret,
    pub mechanism: AuthMechanism,
}

/// One thing to probe.
#[derive(Debug, Clone)]
pub struct Target {
    /// How the target is named in reports.
    pub label: String,
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub starttls: StartTls,
    pub tls: TlsPolicy,
    pub account: Option<Account>,
    /// The whole probe must finish within this, or it is CRITICAL (a tarpit never hangs a check).
    pub timeout: Duration,
    /// Name given in EHLO.
    pub helo: String,
    /// Names that belong to other hosts (mailserver2, this host): an SMTP greeting that names
    /// one came from them, not from the server probed, so it never counts as that server up.
    pub foreign_names: Vec<String>,
}

impl Target {
    /// The name TLS verifies the certificate against.
    pub fn tls_name(&self) -> &str {
        self.tls.server_name.as_deref().unwrap_or(&self.host)
    }
}
