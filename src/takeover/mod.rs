//! Taking over mailserver1's role: its DNS record (`dns`).
pub mod dns;
