//! `posta takeover` / `posta failback`: move mailserver1's address to mailserver2 and back, by
//! virtual IP or by DNS record, verified, idempotent and recorded.
//!
//! - `vip`     the mechanics of a virtual IP: ARP probe, netlink add/remove, announcements.
//! - `dns`     RFC 2136 + TSIG compare-and-swap of the A/AAAA record, zone files, verification.
//! - `action`  the frame around them: lock, no-op detection, hooks, undo, verify, record.
//! - `hooks`   ordered, synchronous, time-limited commands before and after each action.
//! - `state`   the state file: who holds what, and the history of changes.

pub mod action;
pub mod dns;
pub mod hooks;
pub mod state;
pub mod vip;
