//! Taking over mailserver1's address on mailserver2 and giving it back: [`vip`] moves a virtual IP.
pub mod vip;
