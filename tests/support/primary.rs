//! mailserver1 in one call: a Dovecot for `example.org` and a Postfix in front of it that
//! delivers the domain's mail over LMTP, as a typical primary runs. The Postfix offers SMTP AUTH
//! through that Dovecot too.

use super::ca::Ca;
use super::dovecot::Dovecot;
use super::postfix::{Options, Postfix};

/// The primary's mail domain.
pub const DOMAIN: &str = "example.org";

/// Postfix → LMTP → Dovecot. Fields drop in order: Postfix stops before the Dovecot it
/// delivers to.
pub struct Primary {
    pub postfix: Postfix,
    pub dovecot: Dovecot,
}

impl Primary {
    /// Starts Dovecot with `users` (name, password), then Postfix accepting `NAME@example.org`
    /// for each of them and delivering to that Dovecot's LMTP port.
    pub fn start(ca: &Ca, users: &[(&str, &str)]) -> Primary {
        Primary::start_with(Dovecot::start(ca, users), ca, users)
    }

    /// Like [`Primary::start`], with a Dovecot master user (name, password) that may log in
    /// as any of `users` (see `Dovecot::start_with_master`).
    pub fn start_with_master(ca: &Ca, users: &[(&str, &str)], master: (&str, &str)) -> Primary {
        Primary::start_with(Dovecot::start_with_master(ca, users, master), ca, users)
    }

    fn start_with(dovecot: Dovecot, ca: &Ca, users: &[(&str, &str)]) -> Primary {
        let names: Vec<&str> = users.iter().map(|(name, _)| *name).collect();
        let options = Options {
            sasl: Some(&dovecot.auth_socket()),
            lmtp: Some(dovecot.lmtp_port()),
            ..Options::default()
        };
        let postfix = Postfix::start_with(ca, DOMAIN, &names, options);
        Primary { postfix, dovecot }
    }
}
