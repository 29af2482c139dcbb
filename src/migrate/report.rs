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
    /// Accepted by mailserver1 (250) but not found in its mailbox within --settle: bounced or
    /// lost after the 250. Kept on the source.
    pub unconfirmed: Vec<Problem>,
    /// Unknown outcomes sent again under `--unknown resend`: mailserver1 may hold these twice.
    pub resent_unknown: usize,
    /// Accepted but not found at the destination, or found twice, or altered.
    pub missing: Vec<Problem>,
    pub duplicated: Vec<Problem>,
    /// Not part of this migration, and why (e.g. marked \Deleted, no IMAP login for folders).
    pub skipped: Vec<Problem>,
    /// Copies `posta mirror` made of mailserver1's messages: left in place, never sent back.
    pub mirror_copies: usize,
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
            && self.unconfirmed.is_empty()
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

/// Counts for one account, or summed over the site (the summary's rows and its totals row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Accounts counted, and those that fully arrived.
    pub accounts: usize,
    pub accounts_ok: usize,
    pub source_messages: usize,
    pub source_bytes: u64,
    pub delivered: usize,
    pub delivered_bytes: u64,
    pub earlier: usize,
    pub removed: usize,
    /// Read back at mailserver1 (folders not read back count none).
    pub verified: usize,
    pub quarantined: usize,
    pub left: usize,
    pub missing: usize,
    pub duplicated: usize,
}

impl Counts {
    pub fn of(a: &AccountReport) -> Counts {
        let mut c = Counts {
            accounts: 1,
            accounts_ok: usize::from(a.ok()),
            ..Counts::default()
        };
        for f in &a.folders {
            c.source_messages += f.source_messages;
            c.source_bytes += f.source_bytes;
            c.delivered += f.delivered;
            c.delivered_bytes += f.delivered_bytes;
            c.earlier += f.earlier;
            c.removed += f.removed;
            c.verified += f.verified.unwrap_or(0);
            c.quarantined += f.quarantined.len();
            c.left += f.left.len();
            c.missing += f.missing.len();
            c.duplicated += f.duplicated.len();
        }
        c
    }

    fn add(mut self, o: &Counts) -> Counts {
        self.accounts += o.accounts;
        self.accounts_ok += o.accounts_ok;
        self.source_messages += o.source_messages;
        self.source_bytes += o.source_bytes;
        self.delivered += o.delivered;
        self.delivered_bytes += o.delivered_bytes;
        self.earlier += o.earlier;
        self.removed += o.removed;
        self.verified += o.verified;
        self.quarantined += o.quarantined;
        self.left += o.left;
        self.missing += o.missing;
        self.duplicated += o.duplicated;
        self
    }

    /// Messages that did not simply arrive.
    fn problems(&self) -> usize {
        self.quarantined + self.left + self.missing + self.duplicated
    }
}

/// The whole run, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub ok: bool,
    /// Every account summed: the site-wide view.
    pub totals: Counts,
    /// Wall-clock time of the run, in seconds.
    pub elapsed_secs: f64,
    pub accounts: Vec<AccountReport>,
    /// Mailboxes on mailserver2 holding mail that no account of the site file covers: the
    /// run cannot have brought everything home while one is listed.
    pub uncovered: Vec<Mailbox>,
}

impl RunReport {
    pub fn new(accounts: Vec<AccountReport>, elapsed: std::time::Duration) -> RunReport {
        RunReport {
            ok: accounts.iter().all(AccountReport::ok),
            totals: accounts
                .iter()
                .map(Counts::of)
                .fold(Counts::default(), |t, c| t.add(&c)),
            elapsed_secs: elapsed.as_secs_f64(),
            accounts,
            uncovered: Vec::new(),
        }
    }

    /// One row per account and a totals row, with the rate: what a site of many accounts
    /// reads instead of the folder rows.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let row = |out: &mut String, name: &str, c: &Counts| {
            let _ = writeln!(
                out,
                "{:<24} {:>8} {:>9} {:>7} {:>7} {:>8} {:>8} {:>10}",
                name,
                c.source_messages,
                c.delivered,
                c.earlier,
                c.removed,
                c.verified,
                c.problems(),
                indicatif::HumanBytes(c.delivered_bytes).to_string()
            );
        };
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>9} {:>7} {:>7} {:>8} {:>8} {:>10}",
            "ACCOUNT", "SOURCE", "DELIVERED", "EARLIER", "REMOVED", "VERIFIED", "PROBLEMS", "BYTES"
        );
        for a in &self.accounts {
            let c = Counts::of(a);
            let name = if a.error.is_some() {
                format!("{} (error)", a.account)
            } else {
                a.account.clone()
            };
            row(&mut out, &name, &c);
        }
        let t = &self.totals;
        row(
            &mut out,
            &format!("TOTAL {}/{} ok", t.accounts_ok, t.accounts),
            t,
        );
        let secs = self.elapsed_secs.max(0.001);
        let _ = writeln!(
            out,
            "{} messages, {} in {:.1}s: {:.1} msg/s, {}/s",
            t.delivered,
            indicatif::HumanBytes(t.delivered_bytes),
            self.elapsed_secs,
            t.delivered as f64 / secs,
            indicatif::HumanBytes((t.delivered_bytes as f64 / secs) as u64)
        );
        out
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
                if f.mirror_copies > 0 {
                    let _ = writeln!(
                        out,
                        "{} {}: {} mirror copies, left in place",
                        a.account, f.folder, f.mirror_copies
                    );
                }
                let groups = [
                    ("quarantined", &f.quarantined),
                    ("left on source", &f.left),
                    ("not confirmed at mailserver1", &f.unconfirmed),
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
        let resent: usize = self
            .accounts
            .iter()
            .flat_map(|a| &a.folders)
            .map(|f| f.resent_unknown)
            .sum();
        if resent > 0 {
            let _ = writeln!(
                out,
                "{resent} message(s) with an unknown outcome sent again (--unknown resend): \
                 mailserver1 may hold them twice"
            );
        }
        for m in &self.uncovered {
            let _ = writeln!(
                out,
                "{}: {} message(s) in {}: no account covers this mailbox; add it to \
                 [[migrate.accounts]]",
                m.user, m.messages, m.maildir
            );
        }
        if !dry && self.accounts.len() > 1 {
            out.push('\n');
            out.push_str(&self.summary());
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
        let r = RunReport::new(
            vec![AccountReport {
                account: "alice".into(),
                folders: vec![f],
                ..Default::default()
            }],
            std::time::Duration::ZERO,
        );
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
        let r = RunReport::new(
            vec![AccountReport {
                account: "alice".into(),
                folders: vec![FolderReport::default()],
                ..Default::default()
            }],
            std::time::Duration::ZERO,
        );
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
    fn an_unconfirmed_message_fails_the_run_and_resent_ones_are_counted() {
        let mut f = FolderReport {
            folder: "INBOX".into(),
            resent_unknown: 2,
            ..Default::default()
        };
        let r = RunReport::new(
            vec![AccountReport {
                account: "alice".into(),
                folders: vec![f.clone()],
                ..Default::default()
            }],
            std::time::Duration::ZERO,
        );
        assert!(r.ok, "a resend is not a failure");
        assert!(
            r.table()
                .contains("2 message(s) with an unknown outcome sent again (--unknown resend)"),
            "{}",
            r.table()
        );
        f.unconfirmed.push(Problem {
            uid: "7/3".into(),
            message_id: None,
            reason: "accepted by mailserver1 but not in its mailbox".into(),
            quarantine: None,
        });
        let r = RunReport::new(
            vec![AccountReport {
                account: "alice".into(),
                folders: vec![f],
                ..Default::default()
            }],
            std::time::Duration::ZERO,
        );
        assert!(!r.ok);
        assert!(
            r.table().contains(
                "alice INBOX uid 7/3: not confirmed at mailserver1: accepted by mailserver1"
            ),
            "{}",
            r.table()
        );
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

    #[test]
    fn the_site_summary_sums_every_account_with_a_totals_row() {
        let folder = |name: &str, n: usize, verified| FolderReport {
            folder: name.into(),
            source_messages: n,
            delivered: n,
            delivered_bytes: 1000 * n as u64,
            removed: n,
            verified,
            ..Default::default()
        };
        let alice = AccountReport {
            account: "alice".into(),
            folders: vec![
                folder("INBOX", 120, Some(120)),
                folder("Projects", 80, None),
            ],
            ..Default::default()
        };
        let mut bob = AccountReport {
            account: "bob".into(),
            folders: vec![folder("INBOX", 10, Some(9))],
            ..Default::default()
        };
        bob.folders[0].missing.push(Problem {
            uid: "1/3".into(),
            message_id: None,
            reason: "not found".into(),
            quarantine: None,
        });
        let carol = AccountReport {
            account: "carol".into(),
            error: Some("login refused".into()),
            ..Default::default()
        };
        let r = RunReport::new(vec![alice, bob, carol], std::time::Duration::from_secs(2));
        let t = &r.totals;
        assert_eq!(
            (t.accounts, t.accounts_ok, t.source_messages, t.delivered),
            (3, 1, 210, 210)
        );
        assert_eq!(
            (t.verified, t.missing, t.delivered_bytes),
            (129, 1, 210_000)
        );
        let s = r.summary();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 6, "{s}");
        assert!(
            lines[0].starts_with("ACCOUNT") && lines[0].contains("DELIVERED"),
            "{s}"
        );
        assert!(
            lines[1].starts_with("alice") && lines[1].contains(" 200 "),
            "{s}"
        );
        assert!(lines[3].starts_with("carol (error)"), "{s}");
        assert!(
            lines[4].starts_with("TOTAL 1/3 ok") && lines[4].contains(" 210 "),
            "{s}"
        );
        assert!(
            lines[5].contains("210 messages") && lines[5].contains("105.0 msg/s"),
            "{s}"
        );
        assert!(r.table().contains("TOTAL 1/3 ok"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["totals"]["delivered"], 210);
        assert_eq!(json["totals"]["accounts_ok"], 1);
        assert_eq!(json["elapsed_secs"], 2.0);
    }
}
