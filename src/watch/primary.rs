//! `posta watch` on mailserver1 (mode "vip"): the VIP's rightful owner watches its own mail
//! services and moves its address out of the way, and back, so that mailserver2's watch can act.
//!
//! Why it exists: mailserver2 never takes an address another host answers for (RFC 5227), and
//! a host whose mail services died but whose kernel runs keeps answering ARP for the VIP. So
//! when every service of this host has been down for half the takeover grace, this side
//! removes the VIP: mailserver2, whose grace ends later, then finds the address free. Half,
//! not all of it: both watches count the grace from their own rounds, and releasing first
//! leaves mailserver2's takeover a clear field; it costs nothing, the services being dead, and
//! if they come back before mailserver2 took over, the address comes back at once.
//!
//! When the services answer again and the VIP is not here, this side waits for nobody to
//! answer for it (mailserver2 released it at its failback), polling fast, then probes, adds and
//! announces it at once: clients move back within a few hundred milliseconds of the release.
//! In a duplicate it keeps the address and announces it (RFC 5227 §2.4's third choice: the
//! owner defends), while mailserver2 yields.
//!
//! The decision is pure ([`Side::step`]); the daemon does the address work.

use std::time::Duration;

/// What this side does after a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to change.
    Stay,
    /// Every service has been down long enough: give the VIP up.
    Release,
    /// The services answer and the VIP is not here: take it back once nobody holds it.
    Reclaim,
}

/// Where this side is, as `posta status` and the state file name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Services up, the VIP here.
    Serving,
    /// Services down, the VIP still here while the (half) grace runs.
    Failing,
    /// Services down, the VIP given up for mailserver2.
    Released,
    /// Services up, the VIP elsewhere: waiting for mailserver2 to release it.
    Reclaiming,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Serving => "serving",
            Phase::Failing => "failing",
            Phase::Released => "released",
            Phase::Reclaiming => "reclaiming",
        }
    }
}

/// The primary side's memory: consecutive failures and since when the services are down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Failed rounds in a row before the services count as down (`[probe] fall`).
    pub fall: u32,
    /// `[probe] takeover_grace`: the VIP goes after half of it.
    pub grace: Duration,
    failures: u32,
    down_since: Option<Duration>,
}

impl Side {
    pub fn new(fall: u32, grace: Duration) -> Side {
        Side {
            fall,
            grace,
            failures: 0,
            down_since: None,
        }
    }

    /// How long the services must stay down before the VIP is released.
    pub fn release_after(&self) -> Duration {
        self.grace / 2
    }

    /// One round at `at`: whether every service answered (`up`) and whether the VIP is
    /// configured here (`here`). Returns the step and the phase it leaves this side in.
    pub fn step(&mut self, at: Duration, up: bool, here: bool) -> (Step, Phase) {
        if up {
            self.failures = 0;
            self.down_since = None;
            return if here {
                (Step::Stay, Phase::Serving)
            } else {
                (Step::Reclaim, Phase::Reclaiming)
            };
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.fall.max(1) && self.down_since.is_none() {
            self.down_since = Some(at);
        }
        if !here {
            return (Step::Stay, Phase::Released);
        }
        match self.down_since {
            Some(since) if at.saturating_sub(since) >= self.release_after() => {
                (Step::Release, Phase::Released)
            }
            _ => (Step::Stay, Phase::Failing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn releases_after_fall_and_half_the_grace_and_a_blip_starts_over() {
        let mut side = Side::new(2, s(4.0));
        assert_eq!(side.step(s(0.0), true, true), (Step::Stay, Phase::Serving));
        assert_eq!(side.step(s(1.0), false, true), (Step::Stay, Phase::Failing));
        // Down from the second failure (t = 2); half the grace is 2 s.
        assert_eq!(side.step(s(2.0), false, true), (Step::Stay, Phase::Failing));
        assert_eq!(side.step(s(3.0), false, true), (Step::Stay, Phase::Failing));
        // A good round starts it all over.
        assert_eq!(side.step(s(3.5), true, true), (Step::Stay, Phase::Serving));
        assert_eq!(side.step(s(4.0), false, true), (Step::Stay, Phase::Failing));
        assert_eq!(side.step(s(5.0), false, true), (Step::Stay, Phase::Failing));
        assert_eq!(
            side.step(s(7.0), false, true),
            (Step::Release, Phase::Released)
        );
        // Released: nothing more to do while the services stay down.
        assert_eq!(
            side.step(s(8.0), false, false),
            (Step::Stay, Phase::Released)
        );
    }

    #[test]
    fn services_back_without_the_address_reclaim_it() {
        let mut side = Side::new(3, s(300.0));
        assert_eq!(
            side.step(s(0.0), true, false),
            (Step::Reclaim, Phase::Reclaiming)
        );
        assert_eq!(side.step(s(1.0), true, true), (Step::Stay, Phase::Serving));
        // The services down while the address is elsewhere: no release to do.
        assert_eq!(
            side.step(s(2.0), false, false),
            (Step::Stay, Phase::Released)
        );
    }
}
