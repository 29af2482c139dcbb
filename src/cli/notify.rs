//! The arguments of `posta notify`.

use clap::{Args, ValueEnum};

/// Show the notice posta sends users after a takeover or a failback ([notify] in the site file).
///
/// After a takeover or failback that succeeded, `posta takeover` and `posta failback` (and so
/// `posta watch`) send each user a short notice through the server that serves them now: what
/// happened, since when, and what they can see. A takeover sends the mirror-missing notice
/// while mailserver2 holds no copy of the mailboxes (their folders and older mail stayed on
/// mailserver1), else the takeover notice. Each event tells a user at most once within the
/// rate limit.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["test", "send_test"]))]
pub struct NotifyArgs {
    /// Print exactly the message USER would be sent, headers and body, and send nothing: an
    /// address, or the user of a [[migrate.accounts]] entry
    #[arg(long, value_name = "USER")]
    pub test: Option<String>,

    /// Send USER that message through the server that serves users now (mailserver2 while the
    /// takeover state says it holds mailserver1's address, else mailserver1); not recorded,
    /// so the rate limit neither counts nor stops it
    #[arg(long, value_name = "USER")]
    pub send_test: Option<String>,

    /// The notice to show [default: the one a takeover sends now]
    #[arg(long, value_enum)]
    pub event: Option<EventArg>,
}

/// A notice, as `--event` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventArg {
    Takeover,
    Failback,
    MirrorMissing,
}
