//! Taking over mailserver1's role: its DNS record (`dns`) or its address (`vip`).
pub mod dns;
pub mod vip;
