use super::*;

const I: Duration = Duration::from_secs(10);

fn tuning(auto: bool) -> Tuning {
    Tuning {
        fall: 3,
        rise: 4,
        grace: Duration::from_secs(300),
        auto_takeover: auto,
        auto_failback: auto,
    }
}

/// Feeds probes every `I` from `start` (in intervals); returns every action with the
/// interval number it came at, and the transitions' target states.
fn run(p: &mut Policy, start: u32, probes: &[bool]) -> (Vec<(u32, Action)>, Vec<&'static str>) {
    let mut actions = Vec::new();
    let mut states = Vec::new();
    for (k, up) in probes.iter().enumerate() {
        let n = start + k as u32;
        let (t, a) = p.step(Event::Probe { at: I * n, up: *up });
        if let Some(t) = t {
            states.push(t.to.name());
        }
        actions.extend(a.into_iter().map(|a| (n, a)));
    }
    (actions, states)
}

#[test]
fn detection_after_fall_then_takeover_right_after_the_grace() {
    let mut p = Policy::new(tuning(true), false);
    let (a, states) = run(&mut p, 0, &[true, false, false]);
    assert!(a.is_empty());
    assert_eq!(states, ["suspect"]);
    let (a, states) = run(&mut p, 3, &[false]);
    assert_eq!(states, ["down"], "down at the third failure");
    assert!(a.is_empty());
    assert_eq!(p.grace_left(I * 3), Some(Duration::from_secs(300)));
    // 300 s of grace at 10 s per probe: nothing until interval 3 + 30.
    let (a, _) = run(&mut p, 4, &[false; 29]);
    assert!(a.is_empty(), "no takeover inside the grace: {a:?}");
    let (a, _) = run(&mut p, 33, &[false]);
    assert_eq!(a, vec![(33, Action::AskWitnesses)]);
    let (_, a) = p.step(Event::Witnesses {
        agree: true,
        detail: String::new(),
    });
    assert_eq!(a, vec![Action::Takeover]);
    // Probes while the takeover runs ask for nothing more.
    let (a, _) = run(&mut p, 34, &[false, false]);
    assert!(a.is_empty());
    let (t, _) = p.step(Event::TakeoverDone {
        ok: true,
        detail: "vip".into(),
    });
    assert_eq!(t.unwrap().to, State::TakenOver);
}

#[test]
fn a_flapping_primary_never_causes_takeover() {
    let mut p = Policy::new(tuning(true), false);
    // Down for 4 probes, up for 1, for an hour: each good probe restarts the grace.
    let pattern: Vec<bool> = (0..360).map(|k| k % 5 == 4).collect();
    let (a, states) = run(&mut p, 0, &pattern);
    assert!(a.is_empty(), "{a:?}");
    assert!(states.contains(&"down") && states.contains(&"healthy"));
}

#[test]
fn witnesses_that_see_the_primary_veto_and_say_so_once() {
    let mut p = Policy::new(tuning(true), false);
    // Down at the third failure (interval 2); the grace ends at interval 32.
    let (a, _) = run(&mut p, 0, &[false; 32]);
    assert!(a.is_empty());
    let (a, _) = run(&mut p, 32, &[false]);
    assert_eq!(a, vec![(32, Action::AskWitnesses)]);
    let (_, a) = p.step(Event::Witnesses {
        agree: false,
        detail: "relay sees it up".into(),
    });
    assert!(matches!(&a[..], [Action::Notify(m)] if m.contains("vetoed")));
    // Asked again at the next probe, but the operator is not told twice.
    let (a, _) = run(&mut p, 33, &[false]);
    assert_eq!(a, vec![(33, Action::AskWitnesses)]);
    let (_, a) = p.step(Event::Witnesses {
        agree: false,
        detail: String::new(),
    });
    assert!(a.is_empty());
    assert_eq!(p.state.name(), "down");
}

#[test]
fn manual_mode_notifies_and_waits_for_the_operator() {
    let mut p = Policy::new(tuning(false), false);
    let (a, _) = run(&mut p, 0, &[false; 40]);
    let notes: Vec<_> = a
        .iter()
        .filter(|(_, a)| matches!(a, Action::Notify(_)))
        .collect();
    assert_eq!(notes.len(), 1, "{a:?}");
    assert_eq!(notes[0].0, 32, "at the end of the grace");
    let (t, _) = p.step(Event::External { taken_over: true });
    assert_eq!(t.unwrap().to, State::TakenOver);
    // The primary comes back: after the rise window the operator is told to fail back.
    let (a, states) = run(&mut p, 40, &[true, true, true, true, true]);
    assert_eq!(states, ["primary_back"]);
    assert_eq!(a.len(), 1);
    assert!(matches!(&a[0], (43, Action::Notify(m)) if m.contains("posta failback")));
    let (t, a) = p.step(Event::External { taken_over: false });
    assert_eq!(t.unwrap().to, State::Healthy);
    assert_eq!(a, vec![Action::BringMailHome]);
}

#[test]
fn failback_only_after_the_whole_rise_window() {
    let mut p = Policy::new(tuning(true), true);
    // Good, good, bad: the window starts over.
    let (a, states) = run(&mut p, 0, &[true, true, false]);
    assert!(a.is_empty());
    assert_eq!(states, ["primary_back", "taken_over"]);
    let (a, _) = run(&mut p, 3, &[true, true, true]);
    assert!(a.is_empty());
    let (a, _) = run(&mut p, 6, &[true]);
    assert_eq!(a, vec![(6, Action::Failback)]);
    let (a, _) = run(&mut p, 7, &[false, true]);
    assert!(a.is_empty(), "nothing more while the failback runs");
    let (t, a) = p.step(Event::FailbackDone {
        ok: true,
        detail: "vip released".into(),
    });
    assert_eq!(t.unwrap().to, State::Healthy);
    assert_eq!(a, vec![Action::BringMailHome]);
}

#[test]
fn failures_of_actions_are_retried() {
    let mut p = Policy::new(
        Tuning {
            grace: Duration::ZERO,
            fall: 1,
            ..tuning(true)
        },
        false,
    );
    let (a, states) = run(&mut p, 0, &[false]);
    assert_eq!(states, ["down"]);
    assert_eq!(
        a,
        vec![(0, Action::AskWitnesses)],
        "a zero grace ends at once"
    );
    p.step(Event::Witnesses {
        agree: true,
        detail: String::new(),
    });
    let (_, a) = p.step(Event::TakeoverDone {
        ok: false,
        detail: "address in use".into(),
    });
    assert!(
        matches!(&a[..], [Action::Notify(m)] if m.contains("retrying in 5s: address in use")),
        "{a:?}"
    );
    // Not at every probe: the retry waits out a backoff (it used to run each round).
    let (a, _) = run(&mut p, 0, &[false]);
    assert!(a.is_empty(), "{a:?}");
    let (a, _) = run(&mut p, 1, &[false]);
    assert_eq!(a, vec![(1, Action::AskWitnesses)]);
    p.step(Event::Witnesses {
        agree: true,
        detail: String::new(),
    });
    let (_, a) = p.step(Event::TakeoverDone {
        ok: false,
        detail: "address in use".into(),
    });
    assert!(
        matches!(&a[..], [Action::Notify(m)] if m.contains("retrying in 10s")),
        "the wait doubles: {a:?}"
    );
    // Failed at 10 s: nothing before 20 s.
    let (_, a) = p.step(Event::Tick {
        at: Duration::from_secs(19),
    });
    assert!(a.is_empty(), "{a:?}");
    let (a, _) = run(&mut p, 2, &[false]);
    assert_eq!(a, vec![(2, Action::AskWitnesses)]);
}

#[test]
fn backoff_doubles_up_to_five_minutes() {
    assert_eq!(backoff(1), Duration::from_secs(5));
    assert_eq!(backoff(2), Duration::from_secs(10));
    assert_eq!(backoff(7), Duration::from_secs(300));
    assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
}

#[test]
fn every_transition_says_why() {
    let mut p = Policy::new(tuning(true), false);
    let (t, _) = p.step(Event::Probe { at: I, up: false });
    let t = t.unwrap();
    assert_eq!(t.to.name(), "suspect");
    assert_eq!(t.reason, "a failed probe; down after 3 in a row");
    // Answering after the grace ended is not "before the grace ended".
    run(&mut p, 2, &[false, false]);
    let (t, _) = p.step(Event::Probe {
        at: I * 40,
        up: true,
    });
    let t = t.unwrap();
    assert_eq!(t.to.name(), "healthy");
    assert!(t.reason.contains("after the grace"), "{}", t.reason);
}

#[test]
fn the_grace_ends_on_time_between_two_probes() {
    let mut p = Policy::new(tuning(true), false);
    run(&mut p, 0, &[false, false, false]);
    // Down at 20 s; the grace ends at 320 s, between the probes at 320 and 330.
    let (_, a) = p.step(Event::Tick {
        at: Duration::from_secs(319),
    });
    assert!(a.is_empty());
    let (_, a) = p.step(Event::Tick {
        at: Duration::from_secs(320),
    });
    assert_eq!(a, vec![Action::AskWitnesses]);
    // A tick never moves a healthy watch.
    let mut h = Policy::new(tuning(true), false);
    let (t, a) = h.step(Event::Tick {
        at: Duration::from_secs(999),
    });
    assert!(t.is_none() && a.is_empty());
}

/// A sweep runs only while healthy: while the primary is suspect or down it would fail, and
/// after a takeover the primary's address leads back to this host. A due sweep never moves the
/// state either.
#[test]
fn a_sweep_runs_only_while_healthy_and_changes_nothing() {
    let sweep = |p: &mut Policy| {
        let before = p.state;
        let (t, a) = p.step(Event::SweepDue);
        assert!(t.is_none(), "a sweep moved {before:?}: {t:?}");
        assert_eq!(p.state, before);
        a
    };
    let mut p = Policy::new(tuning(true), false);
    assert_eq!(sweep(&mut p), vec![Action::Sweep]);
    let mut seen = Vec::new();
    // suspect, down (grace running), down (witnesses asked), taken over, primary back.
    run(&mut p, 0, &[false]);
    seen.push((p.state.name(), sweep(&mut p)));
    run(&mut p, 1, &[false, false]);
    seen.push((p.state.name(), sweep(&mut p)));
    run(&mut p, 3, &[false; 31]);
    seen.push((p.state.name(), sweep(&mut p)));
    p.step(Event::Witnesses {
        agree: true,
        detail: String::new(),
    });
    seen.push((p.state.name(), sweep(&mut p)));
    p.step(Event::TakeoverDone {
        ok: true,
        detail: "vip".into(),
    });
    seen.push((p.state.name(), sweep(&mut p)));
    run(&mut p, 40, &[true]);
    seen.push((p.state.name(), sweep(&mut p)));
    // A started-up watch that finds the address held is taken over from the start.
    let mut held = Policy::new(tuning(true), true);
    seen.push((held.state.name(), sweep(&mut held)));
    let names: Vec<&str> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "suspect",
            "down",
            "down",
            "down",
            "taken_over",
            "primary_back",
            "taken_over"
        ]
    );
    for (state, actions) in &seen {
        assert!(actions.is_empty(), "{state}: {actions:?}");
    }
    // Failed back: healthy again, and sweeping again.
    run(&mut p, 41, &[true, true, true]);
    let (t, a) = p.step(Event::FailbackDone {
        ok: true,
        detail: "vip".into(),
    });
    assert_eq!(t.map(|t| t.to), Some(State::Healthy));
    assert_eq!(a, vec![Action::BringMailHome]);
    assert_eq!(sweep(&mut p), vec![Action::Sweep]);
}

/// Taken over, then mailserver1 answers for the address again: this host yields it and is
/// healthy again, bringing the mail home; a yield in any other state changes nothing.
#[test]
fn yielding_the_address_ends_the_takeover() {
    let mut p = Policy::new(tuning(true), true);
    let (t, a) = p.step(Event::Yielded {
        detail: "failback done".into(),
    });
    let t = t.expect("a transition");
    assert_eq!((t.from, t.to), (State::TakenOver, State::Healthy));
    assert!(
        t.reason.contains("gave it up: failback done"),
        "{}",
        t.reason
    );
    assert_eq!(a, vec![Action::BringMailHome]);
    let (t, a) = p.step(Event::Yielded {
        detail: "again".into(),
    });
    assert!(t.is_none() && a.is_empty(), "{t:?} {a:?}");
}

/// Bringing the mail home after a failback is no state of its own: the daemon runs it beside
/// the probe rounds, so the policy is healthy at once and judges every round as usual. A
/// second outage while the migration still runs is detected after `fall` and taken over right
/// after the grace (the daemon's takeover then waits for the migration, bounded by its
/// `--retry-for`); with no outage the watch stays healthy and sweeps.
#[test]
fn a_second_outage_while_the_mail_comes_home_is_detected_and_taken_over() {
    let mut p = Policy::new(tuning(true), true);
    let (a, _) = run(&mut p, 0, &[true; 4]);
    assert_eq!(a, vec![(3, Action::Failback)]);
    let (t, a) = p.step(Event::FailbackDone {
        ok: true,
        detail: "vip released".into(),
    });
    assert_eq!(t.unwrap().to, State::Healthy);
    assert_eq!(a, vec![Action::BringMailHome]);
    // The migration runs; mailserver1 fails again at interval 5: suspect, then down at the
    // third failure (interval 7), with the grace counted from there.
    let (a, states) = run(&mut p, 4, &[true, false, false, false]);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(states, ["suspect", "down"]);
    assert_eq!(p.grace_left(I * 7), Some(Duration::from_secs(300)));
    // A sweep due while down is skipped: it would fail, and the migration still runs anyway.
    let (_, a) = p.step(Event::SweepDue);
    assert!(a.is_empty());
    let (a, _) = run(&mut p, 8, &[false; 29]);
    assert!(a.is_empty(), "no takeover inside the grace: {a:?}");
    let (a, _) = run(&mut p, 37, &[false]);
    assert_eq!(a, vec![(37, Action::AskWitnesses)]);
    let (_, a) = p.step(Event::Witnesses {
        agree: true,
        detail: String::new(),
    });
    assert_eq!(a, vec![Action::Takeover]);
    let (t, _) = p.step(Event::TakeoverDone {
        ok: true,
        detail: "vip".into(),
    });
    assert_eq!(t.unwrap().to, State::TakenOver);
}

#[test]
fn failback_then_the_mail_comes_home_and_the_watch_stays_healthy() {
    let mut p = Policy::new(tuning(true), true);
    run(&mut p, 0, &[true; 4]);
    let (_, a) = p.step(Event::FailbackDone {
        ok: true,
        detail: "vip released".into(),
    });
    assert_eq!(a, vec![Action::BringMailHome]);
    let (a, states) = run(&mut p, 4, &[true; 10]);
    assert!(a.is_empty() && states.is_empty(), "{a:?} {states:?}");
    assert_eq!(p.state, State::Healthy);
    let (_, a) = p.step(Event::SweepDue);
    assert_eq!(a, vec![Action::Sweep]);
}

/// A takeover whose post hook failed is done (`posta takeover` exits 0 with a warning):
/// taken over, no retry, no "takeover failed".
#[test]
fn a_takeover_done_with_a_warning_is_taken_over() {
    let mut p = Policy::new(
        Tuning {
            grace: Duration::ZERO,
            ..tuning(true)
        },
        false,
    );
    let (a, _) = run(&mut p, 0, &[false; 3]);
    assert_eq!(a, vec![(2, Action::AskWitnesses)]);
    p.step(Event::Witnesses {
        agree: true,
        detail: String::new(),
    });
    let (t, a) = p.step(Event::TakeoverDone {
        ok: true,
        detail: "takeover of 10.0.0.25 done, with a warning: the change is in effect, but \
                 post-takeover hook /bin/false failed (exit status: 1)"
            .into(),
    });
    let t = t.unwrap();
    assert_eq!(t.to, State::TakenOver);
    assert!(t.reason.contains("with a warning"), "{t:?}");
    assert!(a.is_empty());
}
