//! The drill's site file: `examples/site.toml`, the file users copy, embedded at compile time
//! and changed only where the drill's LAN differs from the example's (addresses, names, paths,
//! the drill's pace), so the rehearsal fails whenever the example would fail a real site.
//!
//! Every change names a key the example has (or, for `insert`, shows commented out): a key
//! renamed or dropped from the example makes the drill fail, naming it, rather than silently
//! rehearsing a site nobody configures.

use std::path::Path;
use std::time::Duration;

use toml::Value;

use crate::config::edit::SiteEdit;

use super::{DrillError, Pace};

/// The drill LAN's addresses the site file names.
pub struct Addresses<'a> {
    /// mailserver1's service address, the VIP.
    pub vip: &'a str,
    /// mailserver1's own address, which the watch probes.
    pub ms1: &'a str,
    /// The friend's relay (MX 30).
    pub relay: &'a str,
}

/// The example, as shipped.
const EXAMPLE: &str = include_str!("../../examples/site.toml");

/// The drill's mail domain and its hosts' names (the drill's mtas are started with them).
pub const DOMAIN: &str = "example.org";

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The site file for the drill in `dir`: the LAN's addresses, files under `dir`, `pace`'s
/// timings.
pub fn site_file(dir: &Path, lan: &Addresses, pace: Pace) -> Result<String, DrillError> {
    let mut e = SiteEdit::parse(EXAMPLE).map_err(DrillError::ExampleToml)?;
    let d = |name: &str| dir.join(name).display().to_string();
    e.set("domain", DOMAIN)?
        .set("primary.name", format!("mailserver1.{DOMAIN}"))?
        .set("primary.address", lan.vip)?
        .set("primary.probe_address", lan.ms1)?
        // The drill's mtas speak plain SMTP and know no probe account.
        .set("primary.services", vec!["smtp:25?starttls=no"])?
        .remove("primary.probe_user")?
        .remove("primary.probe_password_file")?
        .set("backup.name", format!("mailserver2.{DOMAIN}"))?
        // `posta migrate` on mailserver2 reads its own POP3 service, on loopback there.
        .set("backup.address", "127.0.0.1")?
        .set("backup.services", vec!["pop3:110?starttls=no"])?
        .set("relay.name", format!("mx30.{DOMAIN}"))?
        .set("relay.address", lan.relay)?
        .set("takeover.state_file", d("takeover.json"))?
        // The example logs to syslog, which a drill's host (a container) may not have; a
        // failing post hook would turn the takeover into a reported failure.
        .set("hooks.post_takeover", Value::Array(Vec::new()))?
        .set("vip.address", format!("{}/24", lan.vip))?
        .set("vip.interface", "eth0")?
        .set("vip.label", "eth0:posta")?
        // The drill moves a VIP; the example's [dns] names a TSIG key this machine lacks.
        .remove("dns")?
        .set("probe.interval", ms(pace.interval))?
        .set("probe.timeout", ms(pace.interval * 3 / 4))?
        .set("probe.fall", 3)?
        .set("probe.rise", 3)?
        .set("probe.takeover_grace", ms(pace.grace))?
        .set("probe.helo", format!("mailserver2.{DOMAIN}"))?
        // The drill's mtas use no TLS, so no private CA.
        .remove("tls.ca_file")?
        .set("watch.state_file", d("watch.json"))?
        .set("migrate.state_dir", d("migrate"))?
        // The drill's mailserver1 is a posta mta with no IMAP, and its mailserver2 is read
        // over POP3: there is nothing to mirror, and a mirror could not be told apart there.
        .remove("mirror")?
        .set("migrate.accounts.0.user", "ana")?
        .set("migrate.accounts.0.password_file", d("ana.password"))?
        .set("migrate.accounts.0.deliver_to", format!("ana@{DOMAIN}"))?
        // The drill's mailserver1 is a posta mta: no IMAP login there.
        .remove("migrate.accounts.0.dest_user")?
        .set("mta.hostname", format!("mailserver2.{DOMAIN}"))?
        .set("mta.domains", vec![DOMAIN])?
        .set("mta.maildir", format!("{}/%u", d("ms2")))?
        // The drill's mtas run as whoever runs the drill.
        .remove("mta.maildir_owner")?
        .set("mta.recipients", d("recipients"))?
        // The drill reconciles every message in the mailboxes against what it sent: a notice
        // telling ana of the takeover would be one it did not send (tests/notify.rs covers
        // the notices).
        .remove("notify")?;
    e.render().map_err(DrillError::SiteFile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Table;

    #[test]
    fn the_drill_site_is_the_example_with_the_drills_addresses_and_paths() {
        let lan = Addresses {
            vip: "10.77.252.100",
            ms1: "10.77.252.11",
            relay: "10.77.252.13",
        };
        let pace = Pace {
            interval: Duration::from_millis(500),
            grace: Duration::from_secs(5),
            messages: 1,
        };
        let text = site_file(Path::new("/tmp/d"), &lan, pace).unwrap();
        let site: Table = text.parse().unwrap();
        assert_eq!(site["primary"]["address"].as_str(), Some(lan.vip));
        assert_eq!(site["primary"]["probe_address"].as_str(), Some(lan.ms1));
        // It is a valid site file: what the watch, takeover and migrate read.
        let parsed = crate::config::parse(Path::new("drill-site.toml"), &text);
        assert!(parsed.is_ok(), "{parsed:?}\n{text}");
        assert_eq!(site["probe"]["takeover_grace"].as_str(), Some("5000ms"));
        assert_eq!(site["watch"]["auto_takeover"].as_bool(), Some(true));
        assert!(site.get("dns").is_none());
        // Everything else the example says comes through unchanged.
        let example: Table = EXAMPLE.parse().unwrap();
        assert_eq!(
            site["watch"]["sweep_interval"],
            example["watch"]["sweep_interval"]
        );
        assert_eq!(site["mta"]["retry_max"], example["mta"]["retry_max"]);
    }
}
