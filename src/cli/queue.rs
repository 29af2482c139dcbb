//! The arguments of `posta queue` and its subcommands.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Administer the mta's queue: list, show, flush, hold, release, delete, export.
///
/// Works on the queue directory whether or not `posta mta` runs; flush asks the running mta
/// (through its control socket) to try everything now.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue directory [default: the site file's [mta] queue]
    #[arg(long, global = true, value_name = "DIR")]
    pub queue: Option<PathBuf>,
    /// The running mta's control socket [default: the site file's [mta] control_socket, else
    /// /run/posta/mta.sock]
    #[arg(long, global = true, env = "POSTA_CONTROL_SOCKET", value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Print results as JSON
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: QueueCommand,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued messages: id, age, size, sender, recipients, next attempt, last error
    List,
    /// Show one message's envelope, state and headers
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Ask the running mta to deliver now (all, or one domain)
    Flush {
        #[arg(value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Stop delivery attempts for these messages (they also do not expire)
    Hold {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
    /// Put held messages back in the active queue
    Release {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
    /// Remove messages without delivering them or sending a DSN
    Delete {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
    /// Copy queued messages out for manual recovery, as an mbox file or a Maildir
    Export {
        /// mbox or maildir
        #[arg(long, value_enum, default_value_t = ExportFormat::Mbox)]
        format: ExportFormat,
        /// The mbox file or Maildir directory to write (created)
        #[arg(long, value_name = "PATH")]
        to: PathBuf,
        /// Messages to export [default: all, held ones included]
        #[arg(value_name = "ID")]
        ids: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Mbox,
    Maildir,
}
