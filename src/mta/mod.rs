//! The mini-MTA for the backup-MX role (issue 5): mailserver2 storing mail in its users'
//! Maildirs while mailserver1 is down (MX 20), or a friend's server queueing and relaying for
//! our domain (MX 30).
//!
//! - `tables`   sendmail's access, virtusertable and local-host-names, read as text.
//! - `policy`   the relay decision made from them, sans-I/O, with a `sendmail -bt` style trail.
//! - `session`  one SMTP session as a state machine with no I/O.
//! - `server`   the tokio listener that drives sessions: limits, timeouts, STARTTLS.
//! - `store`    group-committed fsyncs before 250; `maildir` and `spool` say where files go.
//! - `relay`    the queue runner: routes, retries with backoff, per-destination down state.

pub mod control;
pub mod maildir;
pub mod policy;
pub mod recipients;
pub mod relay;
pub mod server;
pub mod session;
pub mod settings;
pub mod spool;
pub mod store;
pub mod tables;
pub mod tls;
