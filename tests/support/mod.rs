//! Test support: starts REAL Postfix, Dovecot and BIND9 instances (plus tiny in-process fakes)
//! on loopback for posta's integration tests. [`Primary`] is mailserver1 in one call: Postfix
//! delivering over LMTP into a Dovecot.
//!
//! Why real servers: posta's job is to talk to the mail servers people actually run, and a fake
//! only proves we agree with ourselves. Each fixture owns a private temp dir, private ports and
//! a unique instance name, so tests run concurrently; each stops its server on `Drop`.
//!
//! Nothing here skips silently: a missing server binary or running as non-root panics with the
//! command that fixes it (`scripts/install-test-deps.sh`). Facts behind the configs live in
//! `docs/test-servers.md`.
//!
//! Each integration test file does `mod support;` and uses only part of this module.
// Each test crate compiles its own copy and uses a subset of it: unused items are expected.
#![allow(dead_code, unused_imports)]

pub mod bind;
pub mod ca;
pub mod dovecot;
pub mod example_site;
pub mod fake;
pub mod lazyfs;
pub mod maildir;
pub mod mirror;
pub mod netns;
pub mod ports;
pub mod posta_mta;
pub mod postfix;
pub mod primary;
pub mod run;
pub mod socketmap;
pub mod sys;

pub use bind::Bind;
pub use ca::Ca;
pub use dovecot::Dovecot;
pub use fake::{Dropper, Tarpit};
pub use maildir::StoredMessage;
pub use postfix::Postfix;
pub use primary::Primary;
