//! Client credentials in the two forms an admin identity takes on the wire: SASL PLAIN with an
//! authorization identity (RFC 4616 §2), sent by IMAP AUTHENTICATE (RFC 3501 §6.2.2, with the
//! initial response of RFC 4959), POP3 AUTH (RFC 5034) and SMTP AUTH (RFC 4954); and the
//! `user*admin` login name of Dovecot master users (`auth_master_user_separator = *`, UW-IMAP's
//! convention), for servers that do not offer PLAIN.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::ProtoError;

/// The separator between the mailbox and the admin in a master-user login name. Dovecot has
/// none by default; `*` is the one its documentation and UW-IMAP use.
pub const MASTER_SEPARATOR: char = '*';

/// The base64 PLAIN response `authzid NUL authcid NUL password` (RFC 4616 §2). `authzid` is the
/// mailbox to act as (empty: the authcid's own); `authcid` is who proves it with `password`.
/// NUL separates the fields, so none may contain one, and RFC 4616 forbids empty authcid and
/// password.
pub fn plain(authzid: &str, authcid: &str, password: &str) -> Result<String, ProtoError> {
    if [authzid, authcid, password]
        .iter()
        .any(|f| f.contains('\0'))
    {
        return Err(ProtoError::BadArgument(
            "user name or password contains NUL, which SASL PLAIN cannot carry".into(),
        ));
    }
    if authcid.is_empty() || password.is_empty() {
        return Err(ProtoError::BadArgument(
            "SASL PLAIN needs a user name and a password".into(),
        ));
    }
    Ok(B64.encode(format!("{authzid}\0{authcid}\0{password}")))
}

/// `user*admin`: Dovecot logs `admin` in (checking its password) and opens `user`'s mailbox.
/// A user name that holds the separator would be split in the wrong place, so it is refused.
pub fn master_login(user: &str, admin: &str) -> Result<String, ProtoError> {
    if user.contains(MASTER_SEPARATOR) || admin.contains(MASTER_SEPARATOR) {
        return Err(ProtoError::BadArgument(format!(
            "user name {user:?} or admin {admin:?} contains the master user separator \
             {MASTER_SEPARATOR:?}"
        )));
    }
    Ok(format!("{user}{MASTER_SEPARATOR}{admin}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_carries_the_authorization_identity() {
        // RFC 4616 §2's own example: authzid "Ursel", authcid "Kurt", password "xipj3plmq".
        let b64 = plain("Ursel", "Kurt", "xipj3plmq").unwrap();
        assert_eq!(B64.decode(&b64).unwrap(), b"Ursel\0Kurt\0xipj3plmq");
        // Without an authzid: the first NUL still leads (the SMTP AUTH probe's form).
        assert_eq!(
            plain("", "probe", "s3cret").unwrap(),
            "AHByb2JlAHMzY3JldA=="
        );
    }

    #[test]
    fn plain_refuses_nul_and_empty_fields() {
        assert!(plain("alice\0x", "admin", "pw").is_err());
        assert!(plain("alice", "ad\0min", "pw").is_err());
        assert!(plain("alice", "admin", "p\0w").is_err());
        assert!(plain("alice", "", "pw").is_err());
        assert!(plain("alice", "admin", "").is_err());
    }

    #[test]
    fn master_login_joins_with_the_separator() {
        assert_eq!(master_login("alice", "admin").unwrap(), "alice*admin");
        assert!(master_login("a*b", "admin").is_err());
        assert!(master_login("alice", "ad*min").is_err());
    }
}
