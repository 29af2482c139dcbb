//! The mini-MTA for the backup-MX role (issue 5): mailserver2 storing mail in its users'
//! Maildirs while mailserver1 is down (MX 20), or a friend's server queueing and relaying for
//! our domain (MX 30).
//!
//! - `tables`   sendmail's access, virtusertable and local-host-names, read as text.
//! - `policy`   the relay decision made from them, sans-I/O, with a `sendmail -bt` style trail.
//! - `session`  one SMTP session as a state machine with no I/O.
//! - `server`   the tokio listener that drives sessions: limits, timeouts, STARTTLS.
//! - `store`    group-committed fsyncs before 250; `maildir` and `spool` say where files go.
//! - `owner`    whose the Maildirs are, and dropping root to that user after binding.
//! - `relay`    the queue runner: retries with backoff, per-destination down state, flush.
//! - `route`    where a queued message goes next: a smarthost, or the domain's MX hosts more
//!   preferred than us (never back to ourselves).
//! - `dsn`      the RFC 3464 notice for mail the relay cannot deliver.
//! - `wake`     what wakes the queue runner (a message queued, ETRN, a flush).
//! - `control`  the control socket `posta queue flush` reaches (under /run/posta, never in
//!   the queue directory).
//! - `verify`   recipients of backed-up domains checked with the primary and cached.
//! - `users`    the POP3 users file (Dovecot passwd-file format, SHA512-CRYPT hashes).
//! - `pop3`     the POP3 server over the same Maildirs (`proto::pop3_server` is its protocol).

pub mod control;
pub mod dsn;
pub mod maildir;
pub mod owner;
pub mod policy;
pub mod pop3;
pub mod recipients;
pub mod relay;
pub mod route;
pub mod server;
pub mod session;
pub mod settings;
pub mod spool;
pub mod store;
pub mod tables;
pub mod tls;
pub mod users;
pub mod verify;
pub mod wake;
