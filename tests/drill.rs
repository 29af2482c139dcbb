//! `posta drill --fast` as the README runs it (as root): every phase printed, and a
//! reconciliation with nothing lost and nothing duplicated.

mod support;

use support::run::{Run, posta_command};
use support::sys::require_root;

#[test]
fn the_drill_runs_every_phase_and_loses_nothing() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = posta_command(env!("CARGO_BIN_EXE_posta"))
        .args(["drill", "--fast", "--messages", "5", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let run = Run::from_output(out);
    assert_eq!(run.code, 0, "{run:?}");
    for phase in [
        "messages sent to mailserver1 through the VIP",
        "mailserver1 stops",
        "accepted by the relay (MX 30)",
        "the watch declares mailserver1 down",
        "takeover: mailserver2 holds the VIP",
        "accepted by mailserver2",
        "mailserver1 is back",
        "failback",
        "mailserver1 holds the VIP again",
    ] {
        assert!(
            run.stdout.contains(phase),
            "missing phase {phase:?}: {run:?}"
        );
    }
    assert!(
        run.stdout.contains("sent                        15"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("in mailserver1's mailbox    15"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("nothing lost, nothing duplicated"),
        "{run:?}"
    );
}
