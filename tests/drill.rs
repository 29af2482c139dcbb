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

/// Not as root: the drill enters an unprivileged user namespace by itself and passes the same.
#[test]
fn the_drill_runs_without_root_in_a_user_namespace() {
    require_root(); // to become an unprivileged user for the test
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // A copy the unprivileged user can surely reach (the checkout may sit under /root).
    let exe = dir.path().join("posta");
    std::fs::copy(env!("CARGO_BIN_EXE_posta"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(support::sys::require_tool("setpriv"))
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(&exe)
        .args(["drill", "--fast", "--messages", "3", "--dir"])
        .arg(dir.path().join("drill"))
        .env_remove("POSTA_CONFIG")
        .output()
        .unwrap();
    let run = Run::from_output(out);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("in mailserver1's mailbox    9"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("nothing lost, nothing duplicated"),
        "{run:?}"
    );
}
