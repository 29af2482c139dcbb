//! The arguments of `posta migrate`, and how it logs in, delivers INBOX mail and treats an
//! unknown outcome.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::parse_duration;

/// Bring mail home from mailserver2 to mailserver1, losing nothing and duplicating nothing.
///
/// Reads mailserver2 over IMAP (every folder), POP3, or from its Maildirs on disk, and hands
/// INBOX mail to mailserver1 by SMTP or LMTP, so its filters and quotas apply; other folders go
/// by IMAP APPEND with their flags and dates. Messages are identified by UID, UIDL or Maildir
/// unique name, never by the \Seen flag, and each one leaves the source only after mailserver1 accepted it. A journal under --state-dir,
/// fsync'd before every step, lets a run killed at any moment resume without sending anything
/// twice. Messages mailserver1 refuses for good are copied to a local quarantine Maildir and
/// stay on the source. Every run ends with a reconciliation, per account and folder.
///
/// Accounts come from the site file's [[migrate.accounts]] (all, or those named), from its
/// accounts = "all" (the accounts found on this host: the Maildirs under [mta] maildir, else
/// pop3_users, else the recipients file), or from --from for one ad hoc account. With more than
/// one account the report ends with a site summary: a row per account and a totals row.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 everything selected arrived (or --dry-run), 1 something \
did not arrive (quarantined, left on the source, missing or duplicated at mailserver1) or a \
Maildir under the site's [mta] maildir holds mail that no account covers, 2 usage or site-file \
error.\n\n\
Examples:\n  posta migrate --dry-run\n  posta migrate alice bob\n  \
posta migrate --from imaps://alice@mailserver2 --password-file /etc/posta/alice.pw \\\n    \
--to smtp://mailserver1:25 --rcpt alice@example.org \\\n    \
--to-imap imaps://alice@mailserver1 --to-password-file /etc/posta/alice.pw\n  \
posta migrate --source-admin admin --source-admin-password-file /etc/posta/admin.pw \\\n    \
--dest-admin admin --dest-admin-password-file /etc/posta/admin-primary.pw\n  \
posta migrate --from maildir:/var/vmail/%u/Maildir --user alice \\\n    \
--to smtp://mailserver1:25 --rcpt alice@example.org"
)]
pub struct MigrateArgs {
    /// Site-file accounts to migrate (source user names) [default: all]
    #[arg(value_name = "ACCOUNT", conflicts_with = "from")]
    pub accounts: Vec<String>,

    /// Source mailbox: imap://, imaps://, pop3:// or pop3s://user@mailserver2[:port], or
    /// maildir:PATH to read a Maildir on this host (run on mailserver2; no password needed;
    /// `%u` in PATH stands for --user, e.g. maildir:/var/vmail/%u/Maildir)
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,

    /// The account's user with a maildir: source: replaces `%u` in its PATH and names the
    /// account [default: the Maildir's directory name]
    #[arg(long, value_name = "NAME", requires = "from")]
    pub user: Option<String>,

    /// File with the source user's password (owner-only mode)
    #[arg(
        long,
        value_name = "FILE",
        requires = "from",
        conflicts_with = "source_admin"
    )]
    pub password_file: Option<PathBuf>,

    /// Where INBOX mail goes: smtp://mailserver1[:port] or lmtp://host:port
    #[arg(long, value_name = "URL", requires = "from")]
    pub to: Option<String>,

    /// Envelope recipient at mailserver1 [default: each message's Delivered-To / X-Original-To]
    #[arg(long, value_name = "ADDRESS", requires = "from")]
    pub rcpt: Option<String>,

    /// IMAP login on mailserver1 (imap:// or imaps://user@host) for folders, for checking
    /// unknown outcomes after a crash, and for reading the result back
    #[arg(long, value_name = "URL", requires = "from")]
    pub to_imap: Option<String>,

    /// mailserver1's Maildir for each account, when posta runs there (`%u`: the account's
    /// user, or its dest_user in the site file; e.g. /var/vmail/%u/Maildir): settles unknown
    /// outcomes after a crash and reads the result back by tracking id, without any login
    #[arg(long, value_name = "PATH")]
    pub to_maildir: Option<PathBuf>,

    /// File with the password for --to-imap [default: --dest-admin, else --password-file]
    #[arg(long, value_name = "FILE", requires = "to_imap")]
    pub to_password_file: Option<PathBuf>,

    /// Admin identity on mailserver2 (a Dovecot master user) that logs in as every source
    /// user, so no user's password is needed; accounts with their own password file still use
    /// it [default: the site file's source_admin]
    #[arg(long, value_name = "USER", requires = "source_admin_password_file")]
    pub source_admin: Option<String>,

    /// File with the --source-admin password (owner-only mode)
    #[arg(long, value_name = "FILE", requires = "source_admin")]
    pub source_admin_password_file: Option<PathBuf>,

    /// Admin identity on mailserver1 for the IMAP login (--to-imap, folders, the read-back)
    /// [default: the site file's dest_admin]
    #[arg(long, value_name = "USER", requires = "dest_admin_password_file")]
    pub dest_admin: Option<String>,

    /// File with the --dest-admin password (owner-only mode)
    #[arg(long, value_name = "FILE", requires = "dest_admin")]
    pub dest_admin_password_file: Option<PathBuf>,

    /// How an admin identity logs in: auto (SASL PLAIN with the user as authorization identity
    /// when the server offers PLAIN, else LOGIN user*admin), plain, or separator (LOGIN
    /// user*admin: Dovecot's auth_master_user_separator = *) [default: the site file's login,
    /// else auto]
    #[arg(long, value_enum, value_name = "HOW")]
    pub admin_login: Option<AdminVia>,

    /// How INBOX reaches mailserver1: deliver (SMTP/LMTP; filters apply) or append (IMAP;
    /// flags and dates survive)
    #[arg(long, value_enum, default_value_t = InboxVia::Deliver)]
    pub inbox: InboxVia,

    /// Migrate only this folder (repeatable; decoded name, e.g. INBOX or Entwürfe)
    #[arg(long = "folder", value_name = "NAME")]
    pub folders: Vec<String>,

    /// Leave the source untouched; a later run still sends nothing twice
    #[arg(long)]
    pub keep: bool,

    /// Only unread messages (IMAP)
    #[arg(long)]
    pub unseen: bool,

    /// Print, per account and folder, what would move; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// After a failback, with [mirror]: first carry back to mailserver1 what users did on
    /// mailserver2 to the mirror's copies (flags, moves between folders, deletions, folders
    /// created, renamed or deleted), then bring new mail home as always. Lifts the mirror's
    /// hold (set by the takeover) once every account's return completed
    #[arg(long = "return", conflicts_with_all = ["from", "dry_run"])]
    pub carry_back: bool,

    /// Print the reconciliation as JSON
    #[arg(long)]
    pub json: bool,

    /// Journals and the quarantine Maildir [default: the site's, else /var/lib/posta/migrate]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Trust the CA certificates in this PEM file, besides the system's
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify TLS certificates (they are verified by default)
    #[arg(long)]
    pub insecure: bool,

    /// Delivery connections per account (each may hold an SMTP and an IMAP session to
    /// mailserver1; Dovecot allows 10 per user and address by default,
    /// mail_max_userip_connections)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: u16,

    /// Accounts delivering at once, each with one session to mailserver2. An account that has
    /// sent everything makes room for the next while it waits for mailserver1 to store its
    /// mail and reads it back, keeping its session for the removals; as many may do so at
    /// once, so sessions to mailserver2 stay at most twice this
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// Delivery connections to mailserver1 across every account: an account starts once its
    /// --connections (or what is left, at least one) are free. The default leaves most of
    /// Postfix's 100 smtpd processes (default_process_limit) to the site's own mail and stays
    /// under its 50 connections per client (smtpd_client_connection_count_limit)
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_primary_connections: u16,

    /// How long temporary failures (4xx, 421, lost connections) are retried
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub retry_for: std::time::Duration,

    /// How long an accepted message may take to show up in mailserver1's mailbox
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub settle: std::time::Duration,

    /// Longest wait for any one reply
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// Do not check what mailserver1 stored against the source (body hash, copies): the
    /// reconciliation then relies on its replies, and a confirmation before removal reads
    /// headers only
    #[arg(long)]
    pub no_verify: bool,

    /// A message sent but never answered (posta killed or the connection lost after the final
    /// dot), when there is no IMAP login on mailserver1 to look for it: keep it on the source
    /// and report it, or resend it (at least once: mailserver1 may then hold it twice, and the
    /// run says how many). With an IMAP login posta looks instead
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = UnknownVia::Keep)]
    pub unknown: UnknownVia,

    /// Name given in EHLO/LHLO and the trace header [default: this host's name]
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,
}

/// How an admin identity logs in (`client::AdminForm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdminVia {
    Auto,
    Plain,
    Separator,
}

/// How INBOX mail reaches mailserver1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InboxVia {
    Deliver,
    Append,
}

/// What `posta migrate` does with an unknown outcome it cannot look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnknownVia {
    Keep,
    Resend,
}
