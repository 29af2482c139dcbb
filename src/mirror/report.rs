//! What a mirror pass did, per account and in total, as a table or JSON.

use std::time::Duration;

use serde::Serialize;

/// Counters of one account's pass (and, summed, of the site's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub folders: usize,
    pub folders_unchanged: usize,
    pub folders_created: usize,
    pub folders_renamed: usize,
    pub folders_deleted: usize,
    pub copied: usize,
    pub copied_bytes: u64,
    /// Copies found on mailserver2 after a kill (or a lost state) and taken into the map.
    pub adopted: usize,
    pub flags_changed: usize,
    pub expunged: usize,
    /// Copies an interrupted pass's APPEND stored after a resume had looked for them and
    /// copied the same messages again: removed, the resume's copies kept.
    pub late_doubles: usize,
    /// Folders whose map was rebuilt by content after a UIDVALIDITY change.
    pub rebuilt: usize,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.folders += o.folders;
        self.folders_unchanged += o.folders_unchanged;
        self.folders_created += o.folders_created;
        self.folders_renamed += o.folders_renamed;
        self.folders_deleted += o.folders_deleted;
        self.copied += o.copied;
        self.copied_bytes += o.copied_bytes;
        self.adopted += o.adopted;
        self.flags_changed += o.flags_changed;
        self.expunged += o.expunged;
        self.late_doubles += o.late_doubles;
        self.rebuilt += o.rebuilt;
    }
}

/// One account's pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountReport {
    pub account: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// Folders removed on mailserver1 whose mailserver2 folder holds mail that is not the
    /// mirror's: the copies went, the folder and that mail stayed.
    pub folders_kept: Vec<String>,
    pub seconds: f64,
    /// Why the pass stopped; None: it completed.
    pub error: Option<String>,
}

/// A pass over every account.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Every account's pass completed.
    pub ok: bool,
    pub accounts: Vec<AccountReport>,
    pub totals: Counts,
    pub accounts_ok: usize,
    pub seconds: f64,
}

impl RunReport {
    pub fn new(accounts: Vec<AccountReport>, took: Duration) -> RunReport {
        let mut totals = Counts::default();
        for a in &accounts {
            totals.add(&a.counts);
        }
        let accounts_ok = accounts.iter().filter(|a| a.error.is_none()).count();
        RunReport {
            ok: accounts_ok == accounts.len(),
            accounts_ok,
            accounts,
            totals,
            seconds: took.as_secs_f64(),
        }
    }

    /// One line per account and a total, for people.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<24} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>8} {:>8}  {}\n",
            "ACCOUNT",
            "FOLDERS",
            "CREATED",
            "RENAMED",
            "DELETED",
            "COPIED",
            "FLAGS",
            "EXPUNGED",
            "TIME",
            "RESULT"
        );
        let row = |name: &str, c: &Counts, secs: f64, result: &str| {
            format!(
                "{:<24} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>8} {:>7.1}s  {}\n",
                name,
                c.folders,
                c.folders_created,
                c.folders_renamed,
                c.folders_deleted,
                c.copied + c.adopted,
                c.flags_changed,
                c.expunged,
                secs,
                result
            )
        };
        for a in &self.accounts {
            let mut result = match &a.error {
                None => "ok".to_owned(),
                Some(e) => format!("FAILED: {e}"),
            };
            if !a.folders_kept.is_empty() {
                result.push_str(&format!(
                    " (kept, holding mail not the mirror's: {})",
                    a.folders_kept.join(", ")
                ));
            }
            out.push_str(&row(&a.account, &a.counts, a.seconds, &result));
        }
        let total = format!("{} of {} ok", self.accounts_ok, self.accounts.len());
        out.push_str(&row("TOTAL", &self.totals, self.seconds, &total));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_table() {
        let a = AccountReport {
            account: "alice".into(),
            counts: Counts {
                folders: 3,
                copied: 5,
                expunged: 1,
                ..Counts::default()
            },
            ..AccountReport::default()
        };
        let b = AccountReport {
            account: "bob".into(),
            counts: Counts {
                folders: 2,
                copied: 1,
                ..Counts::default()
            },
            error: Some("mailserver1: connection refused".into()),
            ..AccountReport::default()
        };
        let r = RunReport::new(vec![a, b], Duration::from_millis(1500));
        assert!(!r.ok);
        assert_eq!(
            (r.totals.folders, r.totals.copied, r.accounts_ok),
            (5, 6, 1)
        );
        let t = r.table();
        assert!(t.contains("FAILED: mailserver1: connection refused"), "{t}");
        assert!(t.contains("1 of 2 ok"), "{t}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["accounts"][0]["copied"], 5);
        assert_eq!(json["totals"]["expunged"], 1);
    }
}
