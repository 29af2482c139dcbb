//! The site file a test runs with, made from `examples/site.toml` itself: only addresses,
//! names, paths and the timings are substituted, each by an exact match that must be found, so
//! an example that changes under a test fails loudly instead of testing something else.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the example's hosts and files are in the test's layout.
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
    /// `[probe]`: interval, timeout, fall, rise, takeover_grace.
    pub interval: &'a str,
    pub timeout: &'a str,
    pub fall: u32,
    pub rise: u32,
    pub grace: &'a str,
}

/// Replaces every `from` by `to`, which must be there.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "examples/site.toml no longer contains {from:?}: update tests/support/site_layout.rs"
    );
    text.replace(from, to)
}

/// Writes the site file and the files it names (secrets 0600, the recipients list) under
/// `layout.dir`; returns the site file's path.
pub fn vip_site(layout: &VipLayout) -> PathBuf {
    let example = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/site.toml"))
        .expect("read examples/site.toml");
    let dir = layout.dir.display().to_string();
    // `[primary] name` only, the first: `[dns] name` (the record, inside the zone) keeps it.
    let from = "name = \"mailserver1.laorganizacion.org\"\n";
    let mut t = swap(&example, from, from).replacen(
        from,
        &format!("name = \"{}\"\n", layout.primary_name),
        1,
    );
    for (from, to) in [
        // Names and addresses.
        (
            "address = \"192.0.2.10\"\n",
            format!("address = \"{}\"\n", layout.vip),
        ),
        (
            "probe_address = \"192.0.2.11\"",
            format!("probe_address = \"{}\"", layout.ms1),
        ),
        (
            "address = \"192.0.2.20\"",
            format!("address = \"{}\"", layout.ms2),
        ),
        (
            "address = \"192.0.2.10/24\"",
            format!("address = \"{}/{}\"", layout.vip, layout.prefix),
        ),
        (
            "interface = \"eth0\"",
            format!("interface = \"{}\"", layout.interface),
        ),
        (
            "label = \"eth0:posta\"",
            format!("label = \"{}:posta\"", layout.interface),
        ),
        ("laorganizacion.org", layout.domain.to_string()),
        // Paths.
        (
            "ca_file = \"/etc/posta/ca.pem\"",
            format!("ca_file = \"{}\"", layout.ca_file.display()),
        ),
        ("/etc/posta/", format!("{dir}/")),
        ("/var/lib/posta/", format!("{dir}/")),
        ("/var/vmail/", format!("{dir}/vmail/")),
        (
            "maildir_owner = \"vmail\"",
            format!("maildir_owner = \"{}\"", layout.maildir_owner),
        ),
        // Timings.
        (
            "interval = \"10s\"",
            format!("interval = \"{}\"", layout.interval),
        ),
        (
            "timeout = \"5s\"",
            format!("timeout = \"{}\"", layout.timeout),
        ),
        ("fall = 3", format!("fall = {}", layout.fall)),
        ("rise = 6", format!("rise = {}", layout.rise)),
        (
            "takeover_grace = \"5m\"",
            format!("takeover_grace = \"{}\"", layout.grace),
        ),
        // `[dns]` (unused in mode "vip") must still pass `config check`: a TTL within the grace.
        ("ttl = 60\n", "ttl = 1\n".into()),
        // No sweep while healthy: the cycles follow each other within seconds, and a takeover
        // waits for a sweep in flight (src/watch/daemon.rs), which would make their timing
        // depend on migrate's, not on the watch's.
        ("sweep_interval = \"1m\"", "sweep_interval = \"off\"".into()),
        // mailserver2 has no IMAP/POP3 server here: posta migrate reads the mta's Maildirs,
        // the example's documented alternative.
        ("# source = \"maildir\"", "source = \"maildir\"".into()),
    ] {
        t = swap(&t, from, &to);
    }
    let secrets = layout.dir.join("secrets");
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
        layout.dir.join("recipients"),
        format!("alice@{d}\nprobe@{d}\npostmaster@{d}\n", d = layout.domain),
    )
    .expect("write recipients");
    let path = layout.dir.join("site.toml");
    fs::write(&path, t).expect("write site file");
    path
}
