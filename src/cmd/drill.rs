//! `posta drill`: run the rehearsal and print the reconciliation.

use std::time::Duration;

use super::{EXIT_FAILURE, print};
use crate::cli::DrillArgs;
use crate::drill::{self, Pace};

/// Set in the drill re-run inside a user namespace, so it does not try again.
const INNER: &str = "POSTA_DRILL_USERNS";

/// Without root: the same drill in an unprivileged user namespace (`unshare -Urnm`), where
/// it is root over its own network namespaces, with a private /run for `ip netns`.
fn rerun_in_user_namespace(args: &DrillArgs, exe: &std::path::Path) -> u8 {
    use std::os::unix::process::CommandExt;
    let mut inner: Vec<String> = vec![
        "drill".into(),
        "--messages".into(),
        args.messages.to_string(),
    ];
    if args.fast {
        inner.push("--fast".into());
    }
    if let Some(d) = &args.dir {
        inner.push("--dir".into());
        inner.push(d.display().to_string());
    }
    let err = std::process::Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "--mount",
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg("mount -t tmpfs tmpfs /run && exec \"$0\" \"$@\"")
        .arg(exe)
        .args(&inner)
        .env(INNER, "1")
        .exec();
    eprintln!(
        "posta drill: not root, and cannot enter a user namespace with unshare ({err}); run it \
         as root, or enable unprivileged user namespaces"
    );
    EXIT_FAILURE
}

pub fn execute(args: DrillArgs) -> u8 {
    if !nix::unistd::Uid::effective().is_root() && std::env::var_os(INNER).is_none() {
        return match std::env::current_exe() {
            Ok(exe) => rerun_in_user_namespace(&args, &exe),
            Err(e) => {
                eprintln!("posta drill: cannot find this program: {e}");
                EXIT_FAILURE
            }
        };
    }
    let pace = if args.fast {
        Pace {
            interval: Duration::from_millis(500),
            grace: Duration::from_secs(5),
            messages: args.messages,
        }
    } else {
        // The seed's judgment: minutes of downtime are ridden out. A drill shortens the
        // minutes to tens of seconds so it ends in a few minutes.
        Pace {
            interval: Duration::from_secs(2),
            grace: Duration::from_secs(30),
            messages: args.messages,
        }
    };
    let dir = args.dir.clone().unwrap_or_else(drill::default_dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("posta drill: cannot create {}: {e}", dir.display());
        return EXIT_FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("posta drill: cannot find this program: {e}");
            return EXIT_FAILURE;
        }
    };
    println!("posta drill: files in {}", dir.display());
    let result = drill::run(&exe, &dir, pace);
    if args.dir.is_none()
        && result
            .as_ref()
            .is_ok_and(|r| r.lost.is_empty() && r.duplicated.is_empty())
    {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match result {
        Ok(r) => {
            print(&format!(
                "\nreconciliation:\n  sent                        {}\n  in mailserver1's mailbox    {}\n  lost                        {}\n  duplicated                  {}\n",
                r.sent,
                r.home,
                r.lost.len(),
                r.duplicated.len()
            ));
            for id in &r.lost {
                print(&format!("  lost: {id}\n"));
            }
            for id in &r.duplicated {
                print(&format!("  duplicated: {id}\n"));
            }
            if r.lost.is_empty() && r.duplicated.is_empty() && r.home == r.sent {
                print("nothing lost, nothing duplicated\n");
                0
            } else {
                EXIT_FAILURE
            }
        }
        Err(e) => {
            eprintln!("posta drill: {e} (logs in {})", dir.display());
            EXIT_FAILURE
        }
    }
}
