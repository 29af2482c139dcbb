//! The reconciliation: per account and folder, what was on the source, what mailserver1
//! accepted, and every message that did not arrive, with the reason. Printed as a table or
//! JSON; any problem makes the run exit non-zero.

use std::fmt::Write as _;

use serde::Serialize;

use super::uncovered::Mailbox;

/// One message that did not simply arrive.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `validity/uid` (IMAP) or the UIDL (POP3).
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub reason: String,
    /// The quarantine copy, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
}

/// One folder of one account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderReport {
    pub folder: String,
    /// Where its messages go: `smtp`, `lmtp` or `imap:NAME`.
    pub destination: String,
    /// Messages on the source at the start that this run had to account for.
    pub source_messages: usize,
    pub source_bytes: u64,
    /// Accepted by mailserver1 during this run.
    pub delivered: usize,
    pub delivered_bytes: u64,
    /// Accepted in an earlier run (the journal says so); still on the source under --keep.
    pub earlier: usize,
    /// Removed from the source during this run, after mailserver1 accepted them.
    pub removed: usize,
    /// Gone from the source before posta read or removed it: its user expunged it meanwhile
    /// (Maildir source, with Dovecot serving the same Maildir).
    pub gone: usize,
    /// Read back from mailserver1 by Message-ID and body hash (None: not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<usize>,
    pub quarantined: Vec<Problem>,
    /// Still on the source: temporary failures that outlasted the retry time, or unknown
    /// outcomes that could not be checked.
    pub left: Vec<Problem>,
    /// Accepted but not found at the destination, or found twice, or altered.
    pub missing: Vec<Problem>,
    pub duplicated: Vec<Problem>,
    /// Not part of this migration, and why (e.g. marked \Deleted, no IMAP login for folders).
    pub skipped: Vec<Problem>,
    /// The destination folder on the wire (INBOX for SMTP/LMTP), for the read-back.
    #[serde(skip)]
    pub dest_folder: String,
    /// What this run delivered, for the read-back.
    #[serde(skip)]
    pub delivered_keys: Vec<(crate::migrate::journal::MessageKey, String)>,
}

impl FolderReport {
    pub fn ok(&self) -> bool {
        self.quarantined.is_empty()
            && self.left.is_empty()
            && self.missing.is_empty()
            && self.duplicated.is_empty()
            && self
                .skipped
                .iter()
                .all(|p| p.reason.starts_with("marked \\Deleted"))
    }
}

/// One account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountReport {
    pub account: String,
    pub source: String,
    pub dry_run: bool,
    pub folders: Vec<FolderReport>,
    /// Why the account could not be migrated at all (login refused, journal locked, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AccountReport {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.folders.iter().all(FolderReport::ok)
    }
}

/// The whole run, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub ok: bool,
    pub accounts: Vec<AccountReport>,
    /// Mailboxes on mailserver2 holding mail that no account of the site file covers: the
    /// run cannot have brought everything home while one is listed.
    pub uncovered: Vec<Mailbox>,
}

impl RunReport {
    pub fn new(accounts: Vec<AccountReport>) -> RunReport {
        RunReport {
            ok: accounts.iter().all(AccountReport::ok),
            accounts,
            uncovered: Vec::new(),
        }
    }

    /// Adds the mailboxes no account covers; any of them makes the run fail.
    pub fn with_uncovered(mut self, uncovered: Vec<Mailbox>) -> RunReport {
        self.ok &= uncovered.is_empty();
        self.uncovered = uncovered;
        self
    }

    /// The human table plus one line per problem message.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let dry = self.accounts.iter().any(|a| a.dry_run);
        if dry {
            let _ = writeln!(out, "dry run: nothing was changed\n");
            let _ = writeln!(
                out,
                "{:<16} {:<24} {:<16} {:>8} {:>12}",
                "ACCOUNT", "FOLDER", "TO", "MESSAGES", "BYTES"
            );
        } else {
            let _ = writeln!(
                out,
                "{:<16} {:<24} {:<16} {:>7} {:>9} {:>7} {:>7} {:>8} {:>5} {:>5}",
                "ACCOUNT",
                "FOLDER",
                "TO",
                "SOURCE",
                "DELIVERED",
                "EARLIER",
                "REMOVED",
                "VERIFIED",
                "QUAR",
                "LEFT"
            );
        }
        for a in &self.accounts {
            if let Some(e) = &a.error {
                let _ = writeln!(out, "{:<16} error: {e}", a.account);
                continue;
            }
            for f in &a.folders {
                if dry {
                    let _ = writeln!(
                        out,
                        "{:<16} {:<24} {:<16} {:>8} {:>12}",
                        a.account, f.folder, f.destination, f.source_messages, f.source_bytes
                    );
                    continue;
                }
                let verified = f.verified.map_or("-".to_owned(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    "{:<16} {:<24} {:<16} {:>7} {:>9} {:>7} {:>7} {:>8} {:>5} {:>5}",
                    a.account,
                    f.folder,
                    f.destination,
                    f.source_messages,
                    f.delivered,
                    f.earlier,
                    f.removed,
                    verified,
                    f.quarantined.len(),
                    f.left.len()
                );
            }
        }
        for a in &self.accounts {
            for f in &a.folders {
                let groups = [
                    ("quarantined", &f.quarantined),
                    ("left on source", &f.left),
                    ("missing at destination", &f.missing),
                    ("duplicated at destination", &f.duplicated),
                    ("skipped", &f.skipped),
                ];
                for (what, list) in groups {
                    for p in list {
                        let _ = write!(
                            out,
                            "{} {} uid {}: {what}: {}",
                            a.account, f.folder, p.uid, p.reason
                        );
                        if let Some(m) = &p.message_id {
                            let _ = write!(out, " (Message-ID {m})");
                        }
                        if let Some(q) = &p.quarantine {
                            let _ = write!(out, "; copy in {q}");
                        }
                        out.push('\n');
                    }
                }
            }
        }
        for m in &self.uncovered {
            let _ = writeln!(
                out,
                "{}: {} message(s) in {}: no account covers this mailbox; add it to \
                 [[migrate.accounts]]",
                m.user, m.messages, m.maildir
            );
        }
        if !dry {
            let _ = writeln!(
                out,
                "{}",
                if self.ok {
                    "result: everything selected arrived"
                } else {
                    "result: NOT everything arrived (see above); the source keeps what did not"
                }
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarantined_message_makes_the_run_fail_and_is_named() {
        let mut f = FolderReport {
            folder: "INBOX".into(),
            destination: "smtp".into(),
            source_messages: 2,
            delivered: 1,
            ..Default::default()
        };
        f.quarantined.push(Problem {
            uid: "7/2".into(),
            message_id: Some("<x@y>".into()),
            reason: "550 5.1.1 user unknown".into(),
            quarantine: Some("/q/new/a.posta".into()),
        });
        let r = RunReport::new(vec![AccountReport {
            account: "alice".into(),
            folders: vec![f],
            ..Default::default()
        }]);
        assert!(!r.ok);
        let t = r.table();
        assert!(t.contains("alice INBOX uid 7/2: quarantined: 550 5.1.1 user unknown (Message-ID <x@y>); copy in /q/new/a.posta"), "{t}");
        assert!(t.contains("NOT everything arrived"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(
            json["accounts"][0]["folders"][0]["quarantined"][0]["uid"],
            "7/2"
        );
    }

    #[test]
    fn an_uncovered_mailbox_makes_the_run_fail_and_is_named() {
        let r = RunReport::new(vec![AccountReport {
            account: "alice".into(),
            folders: vec![FolderReport::default()],
            ..Default::default()
        }]);
        assert!(r.ok);
        let r = r.with_uncovered(vec![Mailbox {
            user: "postmaster".into(),
            maildir: "/var/vmail/postmaster/Maildir".into(),
            messages: 3,
        }]);
        assert!(!r.ok);
        let t = r.table();
        assert!(
            t.contains(
                "postmaster: 3 message(s) in /var/vmail/postmaster/Maildir: no account covers"
            ),
            "{t}"
        );
        assert!(t.contains("NOT everything arrived"), "{t}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["uncovered"][0]["user"], "postmaster");
        assert_eq!(json["uncovered"][0]["messages"], 3);
    }

    #[test]
    fn deleted_messages_skipped_do_not_fail_the_run() {
        let mut f = FolderReport::default();
        f.skipped.push(Problem {
            uid: "1/1".into(),
            message_id: None,
            reason: "marked \\Deleted on the source".into(),
            quarantine: None,
        });
        assert!(f.ok());
        f.skipped.push(Problem {
            uid: "1/2".into(),
            message_id: None,
            reason: "folder needs an IMAP login on mailserver1".into(),
            quarantine: None,
        });
        assert!(!f.ok());
    }
}
