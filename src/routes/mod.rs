//! One domain over many regional servers, the seed's §11.2 (inkacoca): each office owns its
//! user list; posta writes every server's tables from those lists, so no local administrator
//! has to tell the switch's administrator about each new user (the seed's "loss of
//! independence"), and proves the result routes as intended.
//!
//! - `layout` reads the layout file: the domain, the switch, the offices and their lists.
//! - `lists` reads each office's list in the format it already keeps, and the rename map.
//! - `build` turns the lists into the switch's and each office's tables, in sendmail's format
//!   (`virtusertable`, `local-host-names`, `mailertable`) and Postfix's (`virtual`,
//!   `transport`, a `main.cf` fragment), reporting users two offices both claim instead of
//!   letting one shadow the other.
//! - `output` writes them atomically, says what changed since the last build, and reloads
//!   the servers whose tables changed.
//! - `check` evaluates sendmail tables with sendmail's semantics (`mta::tables`), hop by hop
//!   between the hosts: every user reaches exactly their office, office-local mail never
//!   visits the switch, and no address loops.

mod build;
mod check;
pub mod layout;
pub mod lists;
pub mod output;

pub use build::{Claim, Conflict, Generated, HostTables, Owners, build};
pub use check::{End, Finding, Host, Route, check, office_users, route};

/// One user of an office: the name in the shared domain, and the office's mailbox for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `diego2` in `diego2@inkacoca.org`.
    pub name: String,
    /// The account at the office: `diego`.
    pub mailbox: String,
}

/// One office: its mail domain, how the switch reaches it, and the users it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    /// A short name: `lima`.
    pub name: String,
    /// Its own mail domain: `lima.inkacoca.org`.
    pub domain: String,
    /// Where the switch hands it mail, in Postfix's nexthop form: `[lima-mail.inkacoca.org]`
    /// or `[127.0.0.1]:2526`.
    pub next_hop: String,
    pub users: Vec<User>,
}

/// The whole organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The shared domain: `inkacoca.org`.
    pub domain: String,
    /// The switch's own name: `switch.inkacoca.org`.
    pub switch: String,
    /// Where the offices hand the switch mail (nexthop form).
    pub switch_next_hop: String,
    pub offices: Vec<Office>,
    /// Old names that keep delivering: (old, new).
    pub renames: Vec<(String, String)>,
}

impl Layout {
    /// Reads every office's list and the rename map named by the layout file.
    pub fn read(file: &layout::LayoutFile) -> Result<Layout, lists::ListError> {
        let mut offices = Vec::new();
        for o in &file.offices {
            let users = lists::read(&o.users, o.format, &[&file.domain, &o.domain])?;
            offices.push(Office {
                name: o.name.clone(),
                domain: o.domain.clone(),
                next_hop: next_hop(&o.node),
                users,
            });
        }
        let renames = match &file.renames {
            Some(p) => lists::read_renames(p)?,
            None => Vec::new(),
        };
        Ok(Layout {
            domain: file.domain.clone(),
            switch: file.switch.server.clone(),
            switch_next_hop: next_hop(&file.switch),
            offices,
            renames,
        })
    }
}

/// Runs `argv` (no shell) to completion: its standard output, or why it failed (its
/// standard error included). Office lists are read and servers reloaded this way.
fn run(argv: &[String]) -> Result<Vec<u8>, CommandError> {
    let (program, args) = argv.split_first().ok_or(CommandError::Empty)?;
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| CommandError::Start {
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(CommandError::Failed {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Why a list command or a reload command failed; its stderr is part of the message.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("empty command")]
    Empty,
    #[error("cannot run {program}: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("{status}: {stderr}")]
    Failed {
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// `[server]`, or `[address]:port` when the layout says where its SMTP listens.
fn next_hop(node: &layout::Node) -> String {
    match node.smtp {
        Some(a) if a.port() == 25 => format!("[{}]", a.ip()),
        Some(a) => format!("[{}]:{}", a.ip(), a.port()),
        None => format!("[{}]", node.server),
    }
}
