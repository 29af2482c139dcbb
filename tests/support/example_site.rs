//! `examples/site.toml`, the file users copy, read at test time and changed only where a test
//! site must differ from the example's (addresses, names, paths, fast timings), so a test built
//! on it fails whenever the example would fail a real site.
//!
//! [`ExampleSite::set`] replaces a key the example has and panics if it has no such key: a key
//! renamed or dropped from the example breaks the test instead of silently being added back.
//! [`ExampleSite::insert`] is for keys the example leaves commented out.
//!
//! The one way every integration test makes its site file: [`vip_site`] (tests/site.rs) and
//! [`MigrateSite`] (the migrate tests) are built on [`ExampleSite`] too. Its edits are the
//! library's `posta::config::edit::SiteEdit`, which the drill (src/drill/site.rs) makes its site
//! file with.

use super::ca::Ca;
use posta::config::edit::SiteEdit;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct ExampleSite {
    edit: SiteEdit,
}

impl ExampleSite {
    pub fn load() -> ExampleSite {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site.toml");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let edit = SiteEdit::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()));
        ExampleSite { edit }
    }

    /// The table at dotted `path`; panics if absent.
    fn table_mut(&mut self, path: &str) -> &mut toml::Table {
        self.edit
            .table_mut(path)
            .unwrap_or_else(|e| panic!("examples/site.toml: {e}"))
    }

    /// Replaces `key` (dotted: `dns.ttl`), which the example must have.
    pub fn set(&mut self, key: &str, value: impl Into<toml::Value>) -> &mut Self {
        if let Err(e) = self.edit.set(key, value) {
            panic!("examples/site.toml: {e}");
        }
        self
    }

    /// Adds `key`, which the example only shows commented out.
    pub fn insert(&mut self, key: &str, value: impl Into<toml::Value>) -> &mut Self {
        let (table, name) = SiteEdit::split(key);
        let t = self.table_mut(table);
        assert!(
            !t.contains_key(name),
            "examples/site.toml already has {key}"
        );
        t.insert(name.into(), value.into());
        self
    }

    /// Removes `key` or a whole table, which the example must have.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        if let Err(e) = self.edit.remove(key) {
            panic!("examples/site.toml: {e}");
        }
        self
    }

    /// The value at `key`, for a test that follows what the example says.
    pub fn get(&mut self, key: &str) -> toml::Value {
        let (table, name) = SiteEdit::split(key);
        self.table_mut(table)
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("examples/site.toml has no {key}"))
    }

    /// Moves every path the example keeps under the system directory `from` (`/etc/posta/`)
    /// into `to`, so a test's files sit in its own directory; a key the example gains later
    /// moves too. Panics if the example has no such path.
    pub fn relocate(&mut self, from: &str, to: &Path) -> &mut Self {
        fn walk(v: &mut toml::Value, from: &str, to: &Path) -> usize {
            match v {
                toml::Value::String(s) => match s.strip_prefix(from) {
                    Some(rest) => {
                        *s = to.join(rest).display().to_string();
                        1
                    }
                    None => 0,
                },
                toml::Value::Array(a) => a.iter_mut().map(|v| walk(v, from, to)).sum(),
                toml::Value::Table(t) => t.iter_mut().map(|(_, v)| walk(v, from, to)).sum(),
                _ => 0,
            }
        }
        let moved: usize = self
            .table_mut("")
            .iter_mut()
            .map(|(_, v)| walk(v, from, to))
            .sum();
        assert!(moved > 0, "examples/site.toml has no path under {from}");
        self
    }

    pub fn write(&self, path: &Path) {
        let text = self.edit.render().expect("cannot render the site file");
        fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// The mta's certificates (PEM files) and its POP3S address.
pub struct MtaTls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub vip_cert: &'a Path,
    pub vip_key: &'a Path,
    pub pop3s_listen: &'a str,
    /// The POP3 users file (POP3S needs one).
    pub pop3_users: &'a Path,
}

/// Where the example's hosts and files are in tests/site.rs's layout (mode "vip").
pub struct VipLayout<'a> {
    /// Stands in for /etc/posta, /var/lib/posta and /var/vmail.
    pub dir: &'a Path,
    /// mailserver1's name (the test CA's leaf is for `localhost`).
    pub primary_name: &'a str,
    /// The VIP (the example's `[primary] address`), its prefix and interface.
    pub vip: &'a str,
    pub prefix: u8,
    pub interface: &'a str,
    /// mailserver1's own address (`probe_address`) and mailserver2's.
    pub ms1: &'a str,
    pub ms2: &'a str,
    /// The mail domain (the example's laorganizacion.org).
    pub domain: &'a str,
    /// The probe account's password and the CA that signed the servers' certificates.
    pub probe_password: &'a str,
    pub ca_file: &'a Path,
    /// The Maildirs' owner (the example's `vmail`).
    pub maildir_owner: &'a str,
    /// `[mta]` TLS: mailserver2's own certificate and mailserver1's for the VIP, and the POP3S
    /// listener; `None` leaves the example's TLS keys commented out.
    pub mta_tls: Option<MtaTls<'a>>,
    /// `[probe]`: interval, timeout, fall, rise, takeover_grace.
    pub interval: &'a str,
    pub timeout: &'a str,
    pub fall: u32,
    pub rise: u32,
    pub grace: &'a str,
}

/// Writes the example as a VIP-mode site in `layout` and the files it names (secrets 0600, the
/// recipients list) under `layout.dir`; returns the site file's path.
pub fn vip_site(layout: &VipLayout) -> PathBuf {
    let dir = layout.dir;
    let domain = layout.domain;
    let mut ex = ExampleSite::load();
    // Names and addresses. `[dns] name` is mailserver1's record inside the zone: it keeps the
    // example's host name, in the test's domain.
    ex.set("domain", domain)
        .set("primary.name", layout.primary_name)
        .set("primary.address", layout.vip)
        .set("primary.probe_address", layout.ms1)
        .set("primary.probe_user", format!("probe@{domain}"))
        .set("backup.name", format!("mailserver2.{domain}"))
        .set("backup.address", layout.ms2)
        .set("vip.address", format!("{}/{}", layout.vip, layout.prefix))
        .set("vip.interface", layout.interface)
        .set("vip.label", format!("{}:posta", layout.interface))
        .set("dns.zone", domain)
        .set("dns.name", format!("mailserver1.{domain}"))
        .set("probe.helo", format!("mailserver2.{domain}"))
        .set("migrate.accounts.0.deliver_to", format!("alice@{domain}"))
        .set("mta.hostname", format!("mailserver2.{domain}"))
        .set("mta.domains", vec![domain])
        // Paths.
        .set("tls.ca_file", layout.ca_file.display().to_string())
        .relocate("/etc/posta/", dir)
        .relocate("/var/lib/posta/", dir)
        .relocate("/var/vmail/", &dir.join("vmail"))
        .set("mta.maildir_owner", layout.maildir_owner)
        // Timings.
        .set("probe.interval", layout.interval)
        .set("probe.timeout", layout.timeout)
        .set("probe.fall", i64::from(layout.fall))
        .set("probe.rise", i64::from(layout.rise))
        .set("probe.takeover_grace", layout.grace)
        // `[dns]` (unused in mode "vip") must still pass `config check`: a TTL within the grace.
        .set("dns.ttl", 1)
        // No sweep while healthy: the cycles follow each other within seconds, and a takeover
        // waits for a sweep in flight (src/watch/daemon.rs), which would make their timing
        // depend on migrate's, not on the watch's.
        .set("watch.sweep_interval", "off")
        // mailserver2 has no IMAP/POP3 server here: posta migrate reads the mta's Maildirs,
        // the example's documented alternative.
        .insert("migrate.source", "maildir")
        // [mirror] refuses a Maildir source (its copies are known by IMAP UID only), and
        // mailserver1 here has no IMAP to mirror.
        .remove("mirror")
        // The layout's tests count the mail in alice's mailbox: a notice telling her of each
        // takeover would be mail they did not send (tests/notify.rs covers the notices).
        .remove("notify");
    if let Some(tls) = &layout.mta_tls {
        let path = |p: &Path| p.display().to_string();
        ex.insert("mta.tls_cert", path(tls.cert))
            .insert("mta.tls_key", path(tls.key))
            .insert("mta.vip_tls_cert", path(tls.vip_cert))
            .insert("mta.vip_tls_key", path(tls.vip_key))
            .insert("mta.pop3_users", path(tls.pop3_users))
            .insert("mta.pop3s_listen", vec![tls.pop3s_listen]);
    }
    let secrets = dir.join("secrets");
    fs::create_dir_all(&secrets).expect("create secrets dir");
    for (name, content) in [
        ("probe.password", format!("{}\n", layout.probe_password)),
        ("alice.password", "alice-password\n".to_string()),
        (
            "tsig.key",
            "key \"posta-test\" {\n\talgorithm hmac-sha256;\n\tsecret \"cG9zdGEtdGVzdC1zZWNyZXQ=\";\n};\n"
                .to_string(),
        ),
    ] {
        let path = secrets.join(name);
        fs::write(&path, content).expect("write secret");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod secret");
    }
    fs::write(
        dir.join("recipients"),
        format!("alice@{domain}\nprobe@{domain}\npostmaster@{domain}\n"),
    )
    .expect("write recipients");
    let path = dir.join("site.toml");
    ex.write(&path);
    path
}

/// What a migrate test puts into the example: both servers on loopback with the test's
/// ports, CA, Maildir root, `[migrate]` keys and accounts. Deriving it (rather than writing a
/// short one in each test) keeps the example loadable by the migrate path and every key the
/// tests do not name at the example's value.
pub struct MigrateSite<'a> {
    /// `[primary] services` (mailserver1, probed at 127.0.0.1), e.g. `["smtp:2525"]`.
    pub primary: &'a [String],
    /// `[backup] services` (mailserver2 at 127.0.0.2).
    pub backup: &'a [String],
    /// `[mta] maildir`: mailserver2's Maildir root. None drops the key, so no run looks for
    /// Maildirs on this machine.
    pub maildir: Option<&'a Path>,
    /// Keys the example shows commented out under `[migrate]` (source, source_admin,
    /// dest_admin, accounts, ...), as TOML.
    pub migrate: &'a str,
    /// The `[[migrate.accounts]]` tables, as TOML, in place of the example's one; empty: none
    /// (with `accounts = "all"` in `migrate`).
    pub accounts: &'a str,
}

impl MigrateSite<'_> {
    /// Writes `dir/site.toml`. The example's paths under /etc/posta and /var/lib/posta move
    /// into `dir`, `[migrate] state_dir` is `dir/state`, so relative password files and the
    /// journal sit next to the site file as the tests expect.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let toml_of = |what: &str, text: &str| {
            text.parse::<toml::Table>()
                .unwrap_or_else(|e| panic!("the test's {what} are not TOML: {e}\n{text}"))
        };
        let mut ex = ExampleSite::load();
        // The servers' names: the test CA's certificate is for localhost. [dns] keeps
        // mailserver1's name, [mta] its hostname.
        ex.set("primary.name", "localhost")
            .set("primary.probe_address", "127.0.0.1")
            .set("primary.services", self.primary.to_vec())
            .set("backup.name", "localhost")
            .set("backup.address", "127.0.0.2")
            .set("backup.services", self.backup.to_vec())
            .set("tls.ca_file", Ca::get().ca_pem().display().to_string())
            .set("migrate.state_dir", "state")
            .relocate("/etc/posta/", dir)
            .relocate("/var/lib/posta/", dir);
        match self.maildir {
            Some(root) => ex.set("mta.maildir", root.display().to_string()),
            None => ex.remove("mta.maildir"),
        };
        match toml_of("accounts", self.accounts).remove("migrate") {
            Some(toml::Value::Table(mut m)) => {
                let accounts = m
                    .remove("accounts")
                    .expect("the test's accounts: [[migrate.accounts]] tables");
                ex.set("migrate.accounts", accounts)
            }
            None if self.accounts.trim().is_empty() => ex.remove("migrate.accounts"),
            _ => panic!("the test's accounts: [[migrate.accounts]] tables"),
        };
        let migrate = toml_of("[migrate] keys", self.migrate);
        // [mirror] refuses a Maildir source (its copies are known by IMAP UID only).
        if migrate.get("source").and_then(toml::Value::as_str) == Some("maildir") {
            ex.remove("mirror");
        }
        for (key, value) in migrate {
            ex.insert(&format!("migrate.{key}"), value);
        }
        let path = dir.join("site.toml");
        ex.write(&path);
        path
    }
}
