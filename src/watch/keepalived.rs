//! posta under keepalived, for sites that outgrow one pair or already run VRRP: keepalived
//! elects the holder of the address, posta does the mail-specific parts around it.
//!
//! - `posta check --nagios primary` is the `vrrp_script` on mailserver1: when its own
//!   services fail `fall` times, it leaves MASTER and mailserver2 takes the address.
//! - `posta keepalived notify` is the `notify` script: on mailserver2 becoming MASTER it runs
//!   the takeover hooks and records the takeover (so `posta status` and `posta watch` know);
//!   on leaving MASTER it runs the failback hooks, then flushes the mta queue and runs
//!   `posta migrate`, in that order, one notification at a time (keepalived may start them
//!   concurrently; notes: "unordered notify scripts").
//! - `posta keepalived config` writes the keepalived.conf that wires this up from the site file.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Site;

/// The state keepalived says an instance or group moved to (its notify script's third argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpState {
    Master,
    Backup,
    Fault,
    Stop,
    Deleted,
}

impl VrrpState {
    pub fn parse(s: &str) -> Option<VrrpState> {
        Some(match s.to_ascii_uppercase().as_str() {
            "MASTER" => VrrpState::Master,
            "BACKUP" => VrrpState::Backup,
            "FAULT" => VrrpState::Fault,
            "STOP" => VrrpState::Stop,
            "DELETED" => VrrpState::Deleted,
            _ => return None,
        })
    }
}

/// What this host does about a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// mailserver2 now holds the address: takeover hooks, record.
    Takeover,
    /// mailserver2 no longer holds it: failback hooks, record, queue flush, migrate.
    Failback,
    Nothing,
}

/// The decision: only mailserver2 acts, and only when the holding changes (repeats and
/// mailserver1's own transitions change nothing).
pub fn decide(this_is_backup: bool, held: bool, to: VrrpState) -> Step {
    match (this_is_backup, held, to) {
        (true, false, VrrpState::Master) => Step::Takeover,
        (
            true,
            true,
            VrrpState::Backup | VrrpState::Fault | VrrpState::Stop | VrrpState::Deleted,
        ) => Step::Failback,
        _ => Step::Nothing,
    }
}

/// A keepalived.conf for one of the pair. mailserver1 tracks its own services with
/// `posta check --nagios primary`; the check's `fall` covers the takeover grace (keepalived
/// has no grace of its own), so a short outage does not move the address.
pub fn config(
    site: &Site,
    primary: bool,
    exe: &Path,
    site_file: &Path,
    router_id: u8,
) -> Result<String, String> {
    let vip = site
        .vip
        .as_ref()
        .ok_or("keepalived moves a virtual IP: the site file needs a [vip] table")?;
    let interval = site.probe.interval.as_secs().max(1);
    let timeout = site.probe.timeout.as_secs().max(1);
    let grace_rounds = (site.probe.takeover_grace.as_secs() / interval) as u32;
    let fall = site.probe.fall.max(1) + grace_rounds;
    let (exe, cfg) = (exe.display(), site_file.display());
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by `posta keepalived config` for {}.",
        if primary {
            "mailserver1"
        } else {
            "mailserver2"
        }
    );
    let _ = writeln!(
        c,
        "global_defs {{\n  router_id posta_{}\n  enable_script_security\n  script_user root\n}}",
        if primary { "ms1" } else { "ms2" }
    );
    if primary {
        let _ = writeln!(
            c,
            "# Down after fall = {} failed checks ({} of the probe plus {} for the {}s takeover grace).",
            fall,
            site.probe.fall,
            grace_rounds,
            site.probe.takeover_grace.as_secs()
        );
        let _ = writeln!(
            c,
            "vrrp_script posta_primary {{\n  script \"{exe} --config {cfg} check --nagios primary\"\n  interval {interval}\n  timeout {timeout}\n  fall {fall}\n  rise {}\n}}",
            site.probe.rise.max(1)
        );
    }
    let _ = writeln!(c, "vrrp_instance posta {{");
    let _ = writeln!(c, "  state {}", if primary { "MASTER" } else { "BACKUP" });
    let _ = writeln!(c, "  interface {}", vip.interface);
    let _ = writeln!(c, "  virtual_router_id {router_id}");
    let _ = writeln!(c, "  priority {}", if primary { 150 } else { 100 });
    let _ = writeln!(c, "  advert_int 1");
    let _ = writeln!(
        c,
        "  virtual_ipaddress {{\n    {}/{} dev {}\n  }}",
        vip.address, vip.prefix, vip.interface
    );
    if primary {
        let _ = writeln!(c, "  track_script {{\n    posta_primary\n  }}");
    }
    let role = if primary { "primary" } else { "backup" };
    let _ = writeln!(
        c,
        "  notify \"{exe} --config {cfg} keepalived notify --role {role}\""
    );
    let _ = writeln!(c, "}}");
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mailserver2_acts_and_only_on_a_change() {
        use VrrpState::*;
        assert_eq!(decide(true, false, Master), Step::Takeover);
        assert_eq!(decide(true, true, Master), Step::Nothing, "a repeat");
        for s in [Backup, Fault, Stop, Deleted] {
            assert_eq!(decide(true, true, s), Step::Failback);
            assert_eq!(decide(true, false, s), Step::Nothing);
            assert_eq!(decide(false, false, s), Step::Nothing);
        }
        assert_eq!(decide(false, false, Master), Step::Nothing);
        assert_eq!(VrrpState::parse("master"), Some(Master));
        assert_eq!(VrrpState::parse("BOGUS"), None);
    }
}
