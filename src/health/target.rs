//! What to probe: a protocol, an endpoint, TLS policy and an optional probe account.
//!
//! Targets come from the site file or from URLs on the command line
//! (`smtp://host:port`, `imap://user@host?starttls=require`, `pop3s://host`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// The service spoken, with its TLS mode implied by the scheme as in RFC 8314 (implicit TLS ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// SMTP relay, port 25.
    Smtp,
    /// Message submission, port 587 (RFC 6409).
    Submission,
    /// SMTP over implicit TLS, port 465 (RFC 8314).
    Smtps,
    Imap,
    Imaps,
    Pop3,
    Pop3s,
}

impl Scheme {
    pub const ALL: [Scheme; 7] = [
        Scheme::Smtp,
        Scheme::Submission,
        Scheme::Smtps,
        Scheme::Imap,
        Scheme::Imaps,
        Scheme::Pop3,
        Scheme::Pop3s,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Smtp => "smtp",
            Scheme::Submission => "submission",
            Scheme::Smtps => "smtps",
            Scheme::Imap => "imap",
            Scheme::Imaps => "imaps",
            Scheme::Pop3 => "pop3",
            Scheme::Pop3s => "pop3s",
        }
    }

    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Smtp => 25,
            Scheme::Submission => 587,
            Scheme::Smtps => 465,
            Scheme::Imap => 143,
            Scheme::Imaps => 993,
            Scheme::Pop3 => 110,
            Scheme::Pop3s => 995,
        }
    }

    /// TLS from the first byte (no STARTTLS negotiation).
    pub fn implicit_tls(self) -> bool {
        matches!(self, Scheme::Smtps | Scheme::Imaps | Scheme::Pop3s)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// STARTTLS / STLS policy for schemes without implicit TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartTls {
    /// Upgrade when the server offers it; its absence is a WARNING, and no password is sent in clear.
    #[default]
    Auto,
    /// The server must offer it and the upgrade must succeed, else CRITICAL.
    Require,
    /// Never upgrade (the operator chose cleartext, including for the probe login).
    No,
}

impl StartTls {
    pub fn name(self) -> &'static str {
        match self {
            StartTls::Auto => "auto",
            StartTls::Require => "require",
            StartTls::No => "no",
        }
    }

    pub fn parse(s: &str) -> Option<StartTls> {
        match s {
            "auto" => Some(StartTls::Auto),
            "require" | "required" | "yes" => Some(StartTls::Require),
            "no" | "never" => Some(StartTls::No),
            _ => None,
        }
    }
}

/// How server certificates are checked. Verification is on unless `insecure` says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// A PEM file of extra trusted CAs (a private CA), added to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification; the report still shows the certificate's expiry.
    pub insecure: bool,
    /// Name to verify the certificate against when it differs from the host connected to.
    pub server_name: Option<String>,
    /// Days of certificate validity left below which the probe is WARNING.
    pub warn_days: i64,
    /// Days left below which the probe is CRITICAL.
    pub crit_days: i64,
}

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
