//! posta under keepalived, for sites that outgrow one pair or already run VRRP: keepalived
//! elects the holder of the address, posta does the mail-specific parts around it.
//!
//! - `posta check --nagios primary` is the `vrrp_script` on mailserver1: when its own
//!   services fail `fall` times, it leaves MASTER and mailserver2 takes the address.
//! - `posta keepalived fifo` reads keepalived's `vrrp_notify_fifo`: one long-lived reader that
//!   gets every transition as a line, in the order keepalived saw them (docs/failover.md
//!   §1.1). On mailserver2 becoming MASTER it runs the takeover hooks and records the takeover
//!   (so `posta status` and `posta watch` know); on leaving MASTER it runs the failback hooks,
//!   records it, then flushes the mta queue and starts `posta migrate` without waiting for it.
//! - `posta keepalived notify` does the same as a plain `notify` script, which keepalived
//!   forks once per transition without waiting; [`super::notify_queue`] puts those back in
//!   arrival order.
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

/// A line keepalived writes to its notify FIFO, `INSTANCE "VI_1" MASTER 100`: the kind
/// (`INSTANCE` or `GROUP`), the name and the state word; `None` for a line of another shape.
/// The state word is kept as written: keepalived also writes words posta does not act on
/// (`MASTER_RX_LOWER_PRI`, priority changes).
pub fn parse_fifo_line(line: &str) -> Option<(&str, &str, &str)> {
    let (kind, rest) = line.trim_end().split_once(' ')?;
    let rest = rest.strip_prefix('"')?;
    let (name, rest) = rest.split_once('"')?;
    let state = rest.split_whitespace().next()?;
    Some((kind, name, state))
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

/// keepalived was asked for on a site without a virtual IP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keepalived moves a virtual IP: the site file needs a [vip] table")]
pub struct NoVip;

/// A keepalived.conf for one of the pair. mailserver1 tracks its own services with
/// `posta check --nagios primary`; the check's `fall` covers the takeover grace (keepalived
/// has no grace of its own), so a short outage does not move the address.
pub fn config(
    site: &Site,
    primary: bool,
    exe: &Path,
    site_file: &Path,
    router_id: u8,
    fifo: &Path,
) -> Result<String, NoVip> {
    let vip = site.vip.as_ref().ok_or(NoVip)?;
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
    let role = if primary { "primary" } else { "backup" };
    // The FIFO, not a `notify` script: keepalived forks notify scripts per event without
    // waiting, so they can overlap and run out of order; the FIFO's one reader gets the
    // events in order (docs/failover.md §1.1). keepalived creates the FIFO, passes its name as
    // the reader's last argument and ends the reader with SIGTERM when it stops.
    let _ = writeln!(
        c,
        "global_defs {{\n  router_id posta_{}\n  enable_script_security\n  script_user root\n  vrrp_notify_fifo {}\n  vrrp_notify_fifo_script \"{exe} --config {cfg} keepalived fifo --role {role}\"\n}}",
        if primary { "ms1" } else { "ms2" },
        fifo.display(),
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

    #[test]
    fn fifo_lines_as_keepalived_writes_them() {
        assert_eq!(
            parse_fifo_line("INSTANCE \"VI_1\" MASTER 100\n"),
            Some(("INSTANCE", "VI_1", "MASTER"))
        );
        assert_eq!(
            parse_fifo_line("GROUP \"mail pair\" BACKUP"),
            Some(("GROUP", "mail pair", "BACKUP"))
        );
        for bad in [
            "",
            "INSTANCE",
            "INSTANCE VI_1 MASTER 100",
            "INSTANCE \"VI_1 MASTER",
            "INSTANCE \"VI_1\"",
        ] {
            assert_eq!(parse_fifo_line(bad), None, "{bad:?}");
        }
    }
}
