//! The decision at the heart of `posta watch`, as a pure state machine: observations and
//! outcomes in, a transition and the actions to run out. Time is an argument, so every rule
//! is tested without sleeping.
//!
//! The seed's judgment: a primary that is down for a few minutes is better left alone (users
//! would be split between servers, and SMTP senders queue and retry by themselves), so
//! detection (`fall` failed probes) and the takeover grace are separate, and any good probe
//! during the grace starts it over: a flapping primary never causes a takeover. Recovery
//! needs `rise` good probes in a row, and failback happens only after that whole window.
//!
//! While healthy, a due sweep brings home the mail mailserver2 accepted anyway; in every other
//! state it is skipped.
//!
//! States: healthy → suspect → down (grace running) → taken over → primary back (rise
//! running) → failback → healthy.

use std::time::Duration;

use serde::Serialize;

use crate::retry::Backoff;

/// The knobs, from the site file's `[probe]` and `[watch]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Failed probes in a row before the primary counts as down.
    pub fall: u32,
    /// Good probes in a row before a recovered primary counts as back.
    pub rise: u32,
    /// How long the primary must stay down before takeover.
    pub grace: Duration,
    /// Take over by itself when the grace ends; otherwise say so and wait for an operator.
    pub auto_takeover: bool,
    /// Fail back by itself after the rise window; otherwise say so and wait.
    pub auto_failback: bool,
}

/// Where the watch is. `since` is when the state began (time since the daemon started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum State {
    Healthy,
    Suspect {
        failures: u32,
    },
    /// Down: the grace runs from `since`.
    Down {
        #[serde(serialize_with = "secs")]
        since: Duration,
        /// A takeover (or the witnesses' vote) is under way.
        acting: bool,
        /// The operator has been told (manual mode, or a veto), once.
        told: bool,
    },
    TakenOver,
    /// Back: `successes` good probes so far; failback after `rise`.
    PrimaryBack {
        successes: u32,
        acting: bool,
        told: bool,
    },
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Suspect { .. } => "suspect",
            State::Down { .. } => "down",
            State::TakenOver => "taken_over",
            State::PrimaryBack { .. } => "primary_back",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One probe round of the primary at `at`.
    Probe { at: Duration, up: bool },
    /// The clock reached `at` with no new probe (the grace ends between two rounds): the
    /// last round's verdict stands.
    Tick { at: Duration },
    /// The witnesses' answer to [`Action::AskWitnesses`]: true when they all agree the
    /// primary is down (or there are none).
    Witnesses { agree: bool, detail: String },
    /// The outcome of [`Action::Takeover`].
    TakeoverDone { ok: bool, detail: String },
    /// The outcome of [`Action::Failback`].
    FailbackDone { ok: bool, detail: String },
    /// The takeover state changed outside the watch (an operator ran `posta takeover` or
    /// `posta failback`): true when this host now holds the primary's address.
    External { taken_over: bool },
    /// The sweep interval has passed: mail mailserver2 accepted while the primary was up may
    /// be waiting there.
    SweepDue,
    /// This host found another host answering for the address it held and gave it up
    /// (`posta failback`, RFC 5227 §2.4): mailserver1, its rightful owner, has it again.
    Yielded { detail: String },
}

/// What the daemon must do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the witnesses whether they, too, see the primary down.
    AskWitnesses,
    Takeover,
    Failback,
    /// After a failback: flush the mta queue and bring the mail home (`posta migrate`).
    BringMailHome,
    /// While healthy: bring home what mailserver2 accepted meanwhile (`posta migrate`, the
    /// failback's own run and journal). Never in any other state: while the primary is
    /// suspect or down it would fail or, after a takeover, send the mail back to this host.
    Sweep,
    /// Tell the operator (log, hooks) what needs a human.
    Notify(String),
}

/// A state change, for the log, the hooks and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub tuning: Tuning,
    pub state: State,
    /// The latest time an event carried.
    clock: Duration,
    /// Failed takeovers since the primary went down, and when the next may start: a takeover
    /// that fails (a refused compare-and-swap, an address in use) fails again at once, so
    /// retries back off instead of running every probe round.
    takeover_failures: u32,
    retry_at: Duration,
}

/// The first retry waits 5 s; each further failure doubles it, up to 5 minutes. No jitter: one
/// watch retries alone, and the notice names the exact wait ("retrying in 5s").
const RETRY: Backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));

/// The wait before the retry that follows `failures` failed takeovers.
fn backoff(failures: u32) -> Duration {
    RETRY.delay(failures)
}

impl Policy {
    /// Starts healthy, or taken over when this host already holds the address.
    pub fn new(tuning: Tuning, taken_over: bool) -> Policy {
        let state = if taken_over {
            State::TakenOver
        } else {
            State::Healthy
        };
        Policy {
            tuning,
            state,
            clock: Duration::ZERO,
            takeover_failures: 0,
            retry_at: Duration::ZERO,
        }
    }

    /// Grace left while down (zero once it ended), for status and metrics.
    pub fn grace_left(&self, now: Duration) -> Option<Duration> {
        match self.state {
            State::Down { since, .. } => {
                Some(self.tuning.grace.saturating_sub(now.saturating_sub(since)))
            }
            _ => None,
        }
    }

    /// Applies one event.
    pub fn step(&mut self, event: Event) -> (Option<Transition>, Vec<Action>) {
        if let Event::Probe { at, .. } | Event::Tick { at } = event {
            self.clock = self.clock.max(at);
        }
        let failed_takeover = matches!(event, Event::TakeoverDone { ok: false, .. });
        let from = self.state;
        let (to, reason, actions) = self.next(event);
        self.state = to;
        if !matches!(to, State::Down { .. }) {
            self.takeover_failures = 0;
            self.retry_at = Duration::ZERO;
        } else if failed_takeover && matches!(from, State::Down { .. }) {
            self.takeover_failures += 1;
            self.retry_at = self.clock + backoff(self.takeover_failures);
        }
        let changed = std::mem::discriminant(&from) != std::mem::discriminant(&to);
        let t = changed.then_some(Transition { from, to, reason });
        (t, actions)
    }

    fn next(&self, event: Event) -> (State, String, Vec<Action>) {
        let tn = &self.tuning;
        let stay = |s: State| (s, String::new(), Vec::new());
        match (self.state, event) {
            // ---- detection -----------------------------------------------------------------
            (State::Healthy, Event::Probe { up: true, .. }) => stay(State::Healthy),
            (State::Healthy, Event::SweepDue) => {
                (State::Healthy, String::new(), vec![Action::Sweep])
            }
            (State::Healthy | State::Suspect { .. }, Event::Probe { at, up: false }) => {
                let failures = match self.state {
                    State::Suspect { failures } => failures + 1,
                    _ => 1,
                };
                let n = tn.fall.max(1);
                if failures >= n {
                    let down = State::Down {
                        since: at,
                        acting: false,
                        told: false,
                    };
                    let why = format!(
                        "{failures} failed probes in a row; takeover grace {:?} starts",
                        tn.grace
                    );
                    // A zero grace ends now.
                    self.down_tick(down, at, why)
                } else if failures == 1 {
                    (
                        State::Suspect { failures },
                        format!("a failed probe; down after {n} in a row"),
                        Vec::new(),
                    )
                } else {
                    stay(State::Suspect { failures })
                }
            }
            (State::Suspect { .. }, Event::Probe { up: true, .. }) => (
                State::Healthy,
                "a good probe: the failure was a blip".into(),
                Vec::new(),
            ),
            // ---- down, grace running --------------------------------------------------------
            (State::Down { since, .. }, Event::Probe { at, up: true }) => {
                let reason = if at.saturating_sub(since) < tn.grace {
                    "the primary answered again before the grace ended: no takeover"
                } else {
                    "the primary answered again after the grace, before any takeover succeeded: \
                     no takeover"
                };
                (State::Healthy, reason.into(), Vec::new())
            }
            (s @ State::Down { .. }, Event::Probe { at, up: false } | Event::Tick { at }) => {
                self.down_tick(s, at, String::new())
            }
            (
                State::Down {
                    since,
                    acting: true,
                    told,
                },
                Event::Witnesses { agree, detail },
            ) => {
                if agree {
                    let s = State::Down {
                        since,
                        acting: true,
                        told,
                    };
                    (s, String::new(), vec![Action::Takeover])
                } else {
                    let s = State::Down {
                        since,
                        acting: false,
                        told: true,
                    };
                    let mut actions = Vec::new();
                    if !told {
                        actions.push(Action::Notify(format!(
                            "takeover vetoed: a witness still sees the primary ({detail})"
                        )));
                    }
                    (s, String::new(), actions)
                }
            }
            (State::Down { .. }, Event::TakeoverDone { ok: true, detail }) => {
                (State::TakenOver, format!("took over: {detail}"), Vec::new())
            }
            (State::Down { since, told, .. }, Event::TakeoverDone { ok: false, detail }) => (
                State::Down {
                    since,
                    acting: false,
                    told,
                },
                String::new(),
                vec![Action::Notify(format!(
                    "takeover failed, retrying in {:?}: {detail}",
                    backoff(self.takeover_failures + 1)
                ))],
            ),
            // ---- taken over, waiting for the primary --------------------------------------
            (State::TakenOver, Event::Probe { up: false, .. }) => stay(State::TakenOver),
            (State::TakenOver, Event::Probe { up: true, .. }) => self.back_tick(1, false, false),
            (
                State::PrimaryBack {
                    successes,
                    acting,
                    told,
                },
                Event::Probe { up: true, .. },
            ) => self.back_tick(successes + 1, acting, told),
            (State::PrimaryBack { acting: false, .. }, Event::Probe { up: false, .. }) => (
                State::TakenOver,
                "the primary failed again inside the rise window".into(),
                Vec::new(),
            ),
            (s @ State::PrimaryBack { acting: true, .. }, Event::Probe { .. }) => stay(s),
            (State::PrimaryBack { .. }, Event::FailbackDone { ok: true, detail }) => (
                State::Healthy,
                format!("failed back: {detail}"),
                vec![Action::BringMailHome],
            ),
            (
                State::PrimaryBack {
                    successes, told, ..
                },
                Event::FailbackDone { ok: false, detail },
            ) => (
                State::PrimaryBack {
                    successes,
                    acting: false,
                    told,
                },
                String::new(),
                vec![Action::Notify(format!("failback failed: {detail}"))],
            ),
            // ---- an operator acted ----------------------------------------------------------
            (
                State::TakenOver | State::PrimaryBack { .. },
                Event::External { taken_over: false },
            ) => (
                State::Healthy,
                "an operator failed back".into(),
                vec![Action::BringMailHome],
            ),
            (State::TakenOver | State::PrimaryBack { .. }, Event::Yielded { detail }) => (
                State::Healthy,
                format!(
                    "another host answered for the address this host held, and this host gave \
                     it up: {detail}"
                ),
                vec![Action::BringMailHome],
            ),
            (s, Event::External { taken_over: true })
                if !matches!(s, State::TakenOver | State::PrimaryBack { .. }) =>
            {
                (State::TakenOver, "an operator took over".into(), Vec::new())
            }
            (s, _) => stay(s),
        }
    }

    /// Down and still failing: when the grace is over, ask the witnesses (auto) or tell the
    /// operator (manual), once.
    fn down_tick(&self, s: State, at: Duration, reason: String) -> (State, String, Vec<Action>) {
        let State::Down {
            since,
            acting,
            told,
        } = s
        else {
            return (s, reason, Vec::new());
        };
        let over = at.saturating_sub(since) >= self.tuning.grace;
        if !over || acting || at < self.retry_at {
            return (s, reason, Vec::new());
        }
        let (acting, told, actions) = act_or_tell(
            self.tuning.auto_takeover,
            told,
            Action::AskWitnesses,
            "the primary has been down for the whole grace: run `posta takeover`",
        );
        (
            State::Down {
                since,
                acting,
                told,
            },
            reason,
            actions,
        )
    }

    fn back_tick(&self, successes: u32, acting: bool, told: bool) -> (State, String, Vec<Action>) {
        let reason = if successes == 1 {
            format!(
                "the primary answers; failback after {} good probes",
                self.tuning.rise
            )
        } else {
            String::new()
        };
        if successes < self.tuning.rise.max(1) || acting {
            let s = State::PrimaryBack {
                successes,
                acting,
                told,
            };
            return (s, reason, Vec::new());
        }
        let (acting, told, actions) = act_or_tell(
            self.tuning.auto_failback,
            told,
            Action::Failback,
            "the primary has been healthy for the whole rise window: run `posta failback`",
        );
        let s = State::PrimaryBack {
            successes,
            acting,
            told,
        };
        (s, reason, actions)
    }
}

/// A window has ended: act when allowed to (acting from now on), else tell the operator
/// once. Returns the new (acting, told) flags and the actions.
fn act_or_tell(auto: bool, told: bool, act: Action, tell: &str) -> (bool, bool, Vec<Action>) {
    if auto {
        return (true, told, vec![act]);
    }
    let actions = if told {
        Vec::new()
    } else {
        vec![Action::Notify(tell.into())]
    };
    (false, true, actions)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
