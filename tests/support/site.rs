//! The migrate tests' site file, derived from examples/site.toml: the file an administrator
//! starts from, with both servers moved to loopback and the test's ports, CA, Maildir root,
//! `[migrate]` keys and accounts put in. Deriving it (rather than writing a short one in each
//! test) keeps the example loadable by the migrate path and every key the tests do not name at
//! the example's value.
//!
//! Every substitution must find its text: when the example changes, the helper fails loudly
//! instead of leaving a mailserver1.laorganizacion.org in a test's site file.

use super::ca::Ca;
use std::fs;
use std::path::{Path, PathBuf};

/// What a migrate test puts into the example site file.
pub struct MigrateSite<'a> {
    /// `[primary] services` (mailserver1, probed at 127.0.0.1), e.g. `["smtp:2525"]`.
    pub primary: &'a [String],
    /// `[backup] services` (mailserver2 at 127.0.0.2).
    pub backup: &'a [String],
    /// `[mta] maildir`: mailserver2's Maildir root. None drops the key, so no run looks for
    /// Maildirs on this machine.
    pub maildir: Option<&'a Path>,
    /// Keys added under `[migrate]` (source, source_admin, dest_admin, ...).
    pub migrate: &'a str,
    /// The `[[migrate.accounts]]` tables, in place of the example's one.
    pub accounts: &'a str,
}

impl MigrateSite<'_> {
    /// Writes `dir/site.toml`. The example's paths under /etc/posta and /var/lib/posta move
    /// into `dir`, `[migrate] state_dir` is `dir/state`, so relative password files and the
    /// journal sit next to the site file as the tests expect.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let example =
            fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/site.toml"))
                .expect("read examples/site.toml");
        // The table at the start of a line: a comment above it names it too.
        let start = 1 + example
            .find("\n[[migrate.accounts]]")
            .expect("examples/site.toml: an example account");
        let end = start
            + example[start..]
                .find("\n[mta]")
                .expect("examples/site.toml: [mta] after the accounts");
        let mut text = format!("{}{}{}", &example[..start], self.accounts, &example[end..]);
        let list = |services: &[String]| {
            let quoted: Vec<String> = services.iter().map(|s| format!("\"{s}\"")).collect();
            format!("services = [{}]", quoted.join(", "))
        };
        let maildir = match self.maildir {
            Some(root) => format!("maildir = \"{}\"\n", root.display()),
            None => String::new(),
        };
        for (from, to) in [
            // The servers' names: the test CA's certificate is for localhost.
            (
                "name = \"mailserver1.laorganizacion.org\"",
                "name = \"localhost\"",
            ),
            (
                "name = \"mailserver2.laorganizacion.org\"",
                "name = \"localhost\"",
            ),
            (
                "probe_address = \"192.0.2.11\"",
                "probe_address = \"127.0.0.1\"",
            ),
            (
                "services = [\"smtp\", \"submission?starttls=require\", \"imap\", \"pop3\"]",
                &list(self.primary),
            ),
            ("address = \"192.0.2.20\"", "address = \"127.0.0.2\""),
            (
                "services = [\"smtp\", \"imap\", \"pop3\"]",
                &list(self.backup),
            ),
            (
                "ca_file = \"/etc/posta/ca.pem\"",
                &format!("ca_file = \"{}\"", Ca::get().ca_pem().display()),
            ),
            ("maildir = \"/var/vmail/%u/Maildir\"\n", &maildir),
            (
                "state_dir = \"/var/lib/posta/migrate\"",
                "state_dir = \"state\"",
            ),
            ("[migrate]\n", &format!("[migrate]\n{}", self.migrate)),
        ] {
            assert!(
                text.contains(from),
                "examples/site.toml no longer has {from:?}: update tests/support/site.rs"
            );
            // The first only: [dns] keeps mailserver1's name, [mta] its hostname.
            text = text.replacen(from, to, 1);
        }
        let dir_slash = format!("{}/", dir.display());
        let text = text
            .replace("/etc/posta/", &dir_slash)
            .replace("/var/lib/posta/", &dir_slash);
        let path = dir.join("site.toml");
        fs::write(&path, text).expect("write site file");
        path
    }
}
