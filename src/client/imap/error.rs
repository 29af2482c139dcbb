//! What can go wrong in an IMAP session, worded for the operator and sorted for the caller: a
//! migration retries a transient error later and reports the rest (STYLE.md §5).

use crate::client::ConnError;
use crate::proto::ProtoError;
use crate::proto::imap::{Cond, StatusResp};

/// Response codes (RFC 5530 §3, RFC 3501 §7.1) that say "try again later": the server or the
/// mailbox is busy or broken for now, or a quota or limit is hit that an operator may lift.
const TRANSIENT_CODES: &[&str] = &[
    "UNAVAILABLE",
    "INUSE",
    "SERVERBUG",
    "OVERQUOTA",
    "LIMIT",
    "EXPUNGEISSUED",
];

/// An IMAP client failure. Messages are lowercase and name the command or server.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// No TCP connection (refused, unreachable, name not resolved).
    #[error("cannot connect to IMAP server {server}: {source}")]
    Connect { server: String, source: ConnError },
    /// Certificate or handshake problems, already described by `client::tls`.
    #[error("TLS with IMAP server {server} failed: {reason}")]
    Tls { server: String, reason: String },
    /// `StartTls::Require`, and the server has no STARTTLS (or greeted with PREAUTH in clear).
    #[error("IMAP server {server} does not offer STARTTLS, but TLS is required")]
    NoStartTls { server: String },
    /// `StartTls::Auto` found no STARTTLS; LOGIN would expose the password.
    #[error(
        "refusing to send the password for {user} in clear text to IMAP server {server}: it \
         offers no STARTTLS (use imaps, or set starttls to no if clear text is really meant)"
    )]
    Cleartext { server: String, user: String },
    /// The server announced LOGINDISABLED (RFC 3501 §6.2.3).
    #[error("IMAP server {server} refuses LOGIN on this connection (LOGINDISABLED)")]
    LoginDisabled { server: String },
    /// LOGIN or AUTHENTICATE answered NO or BAD: wrong credentials (or an admin identity not
    /// allowed to act for the user), unless the code says UNAVAILABLE. `identity` names both
    /// the mailbox and the admin, so the operator knows whose password to check.
    #[error("IMAP {command} as {identity} failed: {resp}")]
    Auth {
        command: &'static str,
        identity: String,
        resp: StatusResp,
    },
    /// A tagged NO or BAD: `command` is what was asked, e.g. `SELECT "Projects"`.
    #[error("IMAP {command} failed: {resp}")]
    Rejected { command: String, resp: StatusResp },
    /// An untagged BYE outside LOGOUT: the server is closing the session (RFC 3501 §7.1.5).
    #[error("IMAP server {server} ended the session: * {resp}")]
    Bye { server: String, resp: StatusResp },
    /// No progress within `Endpoint::timeout`; the session is then unusable.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        waiting_for: String,
        after: std::time::Duration,
    },
    /// The connection failed during `command` (closed, reset, STARTTLS injection).
    #[error("IMAP {command}: {source}")]
    Conn { command: String, source: ConnError },
    /// A reply that breaks the grammar or our limits (line length, literal size).
    #[error("malformed IMAP reply to {command}: {reason}")]
    Malformed { command: String, reason: ProtoError },
    /// A caller value that cannot go on the wire (a flag with a space, a bad date).
    #[error("cannot send IMAP {command}: {reason}")]
    Argument { command: String, reason: ProtoError },
    /// The server lacks an extension the caller asked for (`IDLE`); the caller does without.
    #[error("IMAP server {server} does not offer {capability}")]
    Unsupported {
        server: String,
        capability: &'static str,
    },
    /// An earlier timeout, lost connection or malformed reply left the session out of step;
    /// only a new connection helps.
    #[error("IMAP session with {server} is unusable after an earlier error")]
    Unusable { server: String },
}

impl ImapError {
    /// Whether trying again later (on a new connection) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ImapError::Connect { source, .. } | ImapError::Conn { source, .. } => {
                source.is_transient()
            }
            ImapError::Bye { .. } | ImapError::Timeout { .. } | ImapError::Unusable { .. } => true,
            // Dovecot says `NO [UNAVAILABLE]` when its auth backend is down.
            ImapError::Auth { resp, .. } | ImapError::Rejected { resp, .. } => {
                resp.cond == Cond::No
                    && resp
                        .code
                        .as_ref()
                        .is_some_and(|c| TRANSIENT_CODES.contains(&c.name.as_str()))
            }
            ImapError::Tls { .. }
            | ImapError::NoStartTls { .. }
            | ImapError::Cleartext { .. }
            | ImapError::LoginDisabled { .. }
            | ImapError::Malformed { .. }
            | ImapError::Argument { .. }
            | ImapError::Unsupported { .. } => false,
        }
    }

    /// The response code of a refused command (`TRYCREATE`, `OVERQUOTA`, ...), uppercased.
    pub fn code(&self) -> Option<&str> {
        match self {
            ImapError::Auth { resp, .. } | ImapError::Rejected { resp, .. } => {
                resp.code.as_ref().map(|c| c.name.as_str())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::imap::Code;

    fn resp(cond: Cond, code: Option<&str>) -> StatusResp {
        StatusResp {
            cond,
            code: code.map(|c| Code {
                name: c.to_owned(),
                args: String::new(),
            }),
            text: "x".into(),
        }
    }

    fn rejected(cond: Cond, code: Option<&str>) -> ImapError {
        ImapError::Rejected {
            command: "APPEND \"INBOX\"".into(),
            resp: resp(cond, code),
        }
    }

    #[test]
    fn transience_follows_response_codes() {
        assert!(rejected(Cond::No, Some("OVERQUOTA")).is_transient());
        assert!(rejected(Cond::No, Some("INUSE")).is_transient());
        assert!(!rejected(Cond::No, Some("TRYCREATE")).is_transient());
        assert!(!rejected(Cond::No, None).is_transient());
        assert!(!rejected(Cond::Bad, Some("UNAVAILABLE")).is_transient());
        assert_eq!(
            rejected(Cond::No, Some("TRYCREATE")).code(),
            Some("TRYCREATE")
        );
        let auth = |code| ImapError::Auth {
            command: "AUTHENTICATE PLAIN",
            identity: "alice with admin identity admin".into(),
            resp: resp(Cond::No, code),
        };
        assert!(!auth(Some("AUTHENTICATIONFAILED")).is_transient());
        assert!(auth(Some("UNAVAILABLE")).is_transient());
        assert_eq!(
            auth(None).to_string(),
            "IMAP AUTHENTICATE PLAIN as alice with admin identity admin failed: NO x"
        );
    }

    #[test]
    fn connection_trouble_is_transient_tls_trouble_is_not() {
        let conn = |source| ImapError::Conn {
            command: "NOOP".into(),
            source,
        };
        assert!(conn(ConnError::Closed).is_transient());
        assert!(!conn(ConnError::Injection(5)).is_transient());
        let timeout = ImapError::Timeout {
            waiting_for: "the greeting".into(),
            after: std::time::Duration::from_secs(30),
        };
        assert!(timeout.is_transient());
        assert_eq!(
            timeout.to_string(),
            "timed out after 30s waiting for the greeting"
        );
        assert_eq!(
            rejected(Cond::No, None).to_string(),
            "IMAP APPEND \"INBOX\" failed: NO x"
        );
    }
}
