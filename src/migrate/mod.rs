//! `posta migrate`: bring the mail that piled up on mailserver2 home to mailserver1, losing
//! nothing and duplicating nothing.
//!
//! - `journal`   per-account record of each message's step, fsync'd before the step it enables.
//! - `message`   envelope, Message-ID, body hash and the trace header, from the raw bytes.

pub mod journal;
pub mod message;
