//! DNS as every part of posta speaks it: names (parsed fully qualified, made absolute or
//! relative to a zone) and the wire exchange with one server (a message out, the matching reply
//! back; queries and zone transfers). The takeover's record swap and verification, the routes
//! zone check and the site file's validation all build on it.

mod name;
mod wire;

pub use name::{NameError, absolute, in_zone, parse_name, relative};
pub use wire::WireError;
pub(crate) use wire::{Deadline, exchange, mnemonic, query, transfer};
