//! Where a client connects and how it secures the connection: the part of a mail URL that the
//! migrate drivers (IMAP, POP3, SMTP/LMTP) share. Credentials travel apart, as [`Login`].

use std::time::Duration;

use crate::secret::Secret;
use crate::service::{AdminForm, StartTls, TlsPolicy};

/// A server to talk to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// TLS from the first byte (imaps, pop3s, smtps: RFC 8314).
    pub implicit_tls: bool,
    /// STARTTLS / STLS policy when `implicit_tls` is false. `Auto` upgrades when offered and
    /// then refuses to send a password in clear; `Require` fails without it.
    pub starttls: StartTls,
    pub tls: TlsPolicy,
    /// The longest wait for any one reply. Drivers raise it where an RFC sets a higher minimum
    /// (RFC 5321 §4.5.3.2: 10 minutes for the reply to the final dot).
    pub timeout: Duration,
}

impl Endpoint {
    /// The name TLS verifies the certificate against.
    pub fn tls_name(&self) -> &str {
        self.tls.server_name.as_deref().unwrap_or(&self.host)
    }

    /// `host:port`, for messages and logs.
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A user name and password for IMAP LOGIN, POP3 USER/PASS or SMTP AUTH; or, with `admin`, an
/// admin identity (a Dovecot master user) whose one password opens `user`'s mailbox, so a site
/// migrates every account without knowing any user's password.
#[derive(Debug, Clone)]
pub struct Login {
    /// The mailbox to open.
    pub user: String,
    /// The password of whoever authenticates: `user` itself, or the admin when `admin` is set.
    pub password: Secret,
    /// Honoured by the IMAP and POP3 clients; SMTP AUTH (delivery needs none) takes only a
    /// user's own login.
    pub admin: Option<Admin>,
}

impl Login {
    /// A user's own login.
    pub fn own(user: impl Into<String>, password: Secret) -> Login {
        Login {
            user: user.into(),
            password,
            admin: None,
        }
    }

    /// Who is logging in, for error messages: `alice`, or `alice with admin identity admin`.
    pub fn identity(&self) -> String {
        match &self.admin {
            None => self.user.clone(),
            Some(a) => format!("{} with admin identity {}", self.user, a.user),
        }
    }
}

/// An identity allowed to log in as other users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub user: String,
    pub form: AdminForm,
}
