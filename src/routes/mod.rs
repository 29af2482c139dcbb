//! One domain over many regional servers, the seed's §11.2 (inkacoca): each office owns its
//! user list; posta writes every server's sendmail tables from those lists, so no local
//! administrator has to tell the switch's administrator about each new user (the seed's
//! "loss of independence"), and proves the result routes as intended.
//!
//! - `build` turns the offices' lists into the switch's and each office's `virtusertable` and
//!   `local-host-names`, reporting users two offices both claim instead of letting one shadow
//!   the other.
//! - `check` evaluates the generated tables with sendmail's semantics (`mta::tables`), hop by
//!   hop between the hosts: every user reaches exactly their office, office-local mail never
//!   visits the switch, and no address loops.

mod build;
mod check;

pub use build::{Conflict, Generated, HostTables, build};
pub use check::{End, Finding, Host, Route, check, route};

/// One office: its server's name and the users it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    /// A short name: `lima`.
    pub name: String,
    /// Its server's mail name: `lima.inkacoca.org`.
    pub host: String,
    /// Local parts, lowercased.
    pub users: Vec<String>,
}

/// The whole organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The shared domain: `inkacoca.org`.
    pub domain: String,
    /// The switch's own name: `switch.inkacoca.org`.
    pub switch: String,
    pub offices: Vec<Office>,
}
