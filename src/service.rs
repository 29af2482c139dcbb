//! What a mail service is, as configured and as a client meets it: its scheme, whether and how
//! TLS is used and checked, what a TLS handshake learned, and how an admin identity logs in.
//! Plain types at the bottom of the layers, shared by `config` (which reads them from the site
//! file), `client` (which connects with them) and `health` (which probes with them).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

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

/// What a probe learned about the server's TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsInfo {
    /// "TLSv1.3" or "TLSv1.2".
    pub version: String,
    /// Whether the certificate chain was verified (false only under `--insecure`).
    pub verified: bool,
    /// Whole days until the leaf certificate expires (negative once expired).
    pub cert_days_left: Option<i64>,
    /// When the leaf certificate expires, seconds since the epoch (for `/metrics`).
    pub cert_not_after: Option<i64>,
    /// The leaf certificate's subject, for the report.
    pub cert_subject: Option<String>,
}

/// How an admin identity presents itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdminForm {
    /// SASL PLAIN with an authorization identity when the server offers PLAIN (IMAP
    /// `AUTH=PLAIN`, POP3 `SASL PLAIN`), else the `user*admin` login name.
    #[default]
    Auto,
    /// Only SASL PLAIN with an authorization identity (RFC 4616).
    Plain,
    /// Only `LOGIN user*admin password` (POP3: `USER user*admin`), Dovecot's
    /// `auth_master_user_separator = *`.
    Separator,
}

impl AdminForm {
    /// The site file's and the flag's spelling: `auto`, `plain` or `separator`.
    pub fn parse(text: &str) -> Option<AdminForm> {
        match text {
            "auto" => Some(AdminForm::Auto),
            "plain" => Some(AdminForm::Plain),
            "separator" => Some(AdminForm::Separator),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AdminForm::Auto => "auto",
            AdminForm::Plain => "plain",
            AdminForm::Separator => "separator",
        }
    }
}
