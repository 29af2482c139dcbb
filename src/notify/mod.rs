//! Telling users (the seed's "inform your users"): after a takeover or a failback, each user
//! gets one short notice through the server that serves them now, from a template in the
//! site's language, at most once per event within the rate limit.
//!
//! - `text`     the shipped templates, the placeholders' words, and what users can see.
//! - `message`  a notice as an RFC 5322 message (MIME UTF-8, encoded-word Subject).
//! - `ledger`   the durable record of who was told what and when, which the rate limit reads.
//! - `send`     sending one event's notices over SMTP, recorded one by one.

pub mod ledger;
pub mod message;
pub mod send;
pub mod text;

pub use message::Notice;
pub use send::{Job, SmtpTransport, Summary, Transport, Undelivered, message_for, send};
pub use text::{View, takeover_notice};
