//! Mail private on disk (issue 14 item 7): `posta mta` started as root with
//! `--maildir-owner` binds its port, drops to that user, and writes Maildirs a real Dovecot,
//! running mail as that user, serves and modifies: files 0600, directories 0700.
//!
//! The failure it reproduces: the mta ran as root and made `root:root 0755` Maildirs with
//! `0644` files, readable by every local user, and Dovecot (as vmail) could not create its
//! `dovecot-uidlist` in them (`file_dotlock_create(...) failed: Permission denied`).

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use support::posta_mta::{PostaMta, Smtp, message, send_one};
use support::sys::{VMAIL_USER, server_dir, vmail_ids};
use support::{Ca, Dovecot};

const BIN: &str = env!("CARGO_BIN_EXE_posta");

/// Every entry under `root` (itself included) as (path, mode bits, uid, gid, is a directory).
fn tree(root: &Path) -> Vec<(String, u32, u32, u32, bool)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
        out.push((
            p.display().to_string(),
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            m.is_dir(),
        ));
    }
    out.sort();
    out
}

/// The `Uid:` or `Gid:` line of /proc/PID/status: real, effective, saved, filesystem.
fn ids(pid: u32, key: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// Logs in to Dovecot's POP3, takes every message (their bodies) and deletes them all.
fn pop3_take_all(dovecot: &Dovecot, user: &str, password: &str) -> Vec<String> {
    let mut c = Smtp::connect_pop3(dovecot.pop3_port()).unwrap();
    assert!(c.cmd(&format!("USER {user}")).unwrap().starts_with("+OK"));
    let r = c.cmd(&format!("PASS {password}")).unwrap();
    assert!(r.starts_with("+OK"), "{r}\n{}", dovecot_log(dovecot));
    let list = c.multiline("LIST").unwrap();
    let mut bodies = Vec::new();
    for n in 1..=list.len() {
        bodies.push(c.multiline(&format!("RETR {n}")).unwrap().join("\n"));
        let r = c.cmd(&format!("DELE {n}")).unwrap();
        assert!(r.starts_with("+OK"), "DELE {n}: {r}");
    }
    let r = c.cmd("QUIT").unwrap();
    assert!(r.starts_with("+OK"), "QUIT (the expunge): {r}");
    bodies
}

fn dovecot_log(d: &Dovecot) -> String {
    fs::read_to_string(d.log()).unwrap_or_default()
}

/// Fixed by `--maildir-owner`: the mta binds, then setgroups/setgid/setuid to posta-vmail
/// (as Postfix's set_ugid does), and creates Maildir files 0600 and directories 0700, so
/// they are that user's alone and Dovecot, running as it, reads and rewrites them.
#[test]
fn maildirs_belong_to_the_owner_and_dovecot_serves_and_expunges_them() {
    let (uid, gid) = vmail_ids();
    let ca = Ca::get();
    let base = server_dir("posta-mta-owner-");
    // The mta makes the root itself: it must come out the owner's too.
    let root = base.path().join("vmail");
    let dovecot = Dovecot::start_on(ca, &[("ana", "pw-ana")], &root);
    let mta = PostaMta::start(
        BIN,
        base.path(),
        &[
            "--hostname".into(),
            "mailserver2.example.org".into(),
            "--domain".into(),
            "example.org".into(),
            "--maildir".into(),
            root.display().to_string(),
            "--maildir-owner".into(),
            VMAIL_USER.into(),
        ],
    );

    // Sessions never run as root: the port accepts as soon as it is bound, but the first
    // session (its 220) starts only after the drop. From then on real, effective, saved and
    // filesystem ids are the owner's, and no supplementary group of root's is kept.
    let greeted = Smtp::connect(mta.port);
    assert!(greeted.is_ok(), "{}", mta.log_tail());
    let pid = mta.child.id();
    assert_eq!(ids(pid, "Uid:"), vec![uid; 4], "{}", mta.log_tail());
    assert_eq!(ids(pid, "Gid:"), vec![gid; 4], "{}", mta.log_tail());
    let groups = ids(pid, "Groups:");
    assert!(groups.iter().all(|g| *g == gid), "groups {groups:?}");

    for i in 0..2 {
        let m = message(
            &format!("owner-{i}"),
            "carlos@example.net",
            "ana@example.org",
            "hi",
        );
        let r = send_one(mta.port, "carlos@example.net", &["ana@example.org"], &m);
        assert!(
            r.as_ref().is_ok_and(|r| r.starts_with("250")),
            "{r:?}\n{}",
            mta.log_tail()
        );
    }
    let written = tree(&root);
    assert!(
        written.len() >= 7,
        "root, ana, cur/new/tmp, 2 files: {written:#?}"
    );
    for (path, mode, u, g, is_dir) in &written {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(
            (*mode, *u, *g),
            (want, uid, gid),
            "{path}: mode {mode:o} owner {u}:{g}, want {want:o} {uid}:{gid}"
        );
    }

    let first = pop3_take_all(&dovecot, "ana", "pw-ana");
    assert_eq!(first.len(), 2, "{}", dovecot_log(&dovecot));
    assert!(
        first.iter().any(|b| b.contains("owner-0@posta.test")),
        "{first:?}"
    );
    assert!(
        root.join("ana/dovecot-uidlist").is_file(),
        "{}",
        dovecot_log(&dovecot)
    );

    // Delivered after Dovecot made its uidlist: Dovecot must still be able to update it.
    let m = message(
        "owner-late",
        "carlos@example.net",
        "ana@example.org",
        "late",
    );
    let r = send_one(mta.port, "carlos@example.net", &["ana@example.org"], &m);
    assert!(
        r.as_ref().is_ok_and(|r| r.starts_with("250")),
        "{r:?}\n{}",
        mta.log_tail()
    );
    let late: Vec<_> = fs::read_dir(root.join("ana/new")).unwrap().collect();
    assert_eq!(late.len(), 1);
    let meta = late[0].as_ref().unwrap().metadata().unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o600, uid, gid)
    );
    let second = pop3_take_all(&dovecot, "ana", "pw-ana");
    assert_eq!(second.len(), 1, "{}", dovecot_log(&dovecot));
    assert!(second[0].contains("owner-late@posta.test"), "{second:?}");

    // Expunged: nothing left in the mailbox, and Dovecot logged no error doing it.
    for sub in ["new", "cur"] {
        let left: Vec<_> = fs::read_dir(root.join("ana").join(sub)).unwrap().collect();
        assert!(left.is_empty(), "{sub}/ still holds {left:?}");
    }
    let log = dovecot_log(&dovecot);
    assert!(log.contains("expunge"), "no expunge logged:\n{log}");
    for bad in ["Error:", "Fatal:", "Permission denied"] {
        assert!(!log.contains(bad), "Dovecot logged {bad:?}:\n{log}");
    }
}

/// A queue an earlier run left as root (its lock, a state file) becomes the owner's before the
/// drop, so the relay role runs unprivileged too; relayed mail is queued 0600, the owner's,
/// in 0700 directories, and `posta queue flush` (run by root) still reaches the control socket.
#[test]
fn a_root_owned_queue_is_handed_to_the_owner_before_the_drop() {
    let (uid, gid) = vmail_ids();
    let base = server_dir("posta-mta-owner-q-");
    let queue = base.path().join("queue");
    fs::create_dir_all(queue.join("state")).unwrap();
    fs::write(queue.join("lock"), b"").unwrap();
    fs::write(queue.join("state/left-by-root.json"), b"{}").unwrap();
    let mta = PostaMta::start(
        BIN,
        base.path(),
        &[
            "--hostname".into(),
            "mx.friend.test".into(),
            "--relay-domain".into(),
            "example.org".into(),
            "--queue".into(),
            queue.display().to_string(),
            "--relay-to".into(),
            "127.0.0.1:9".into(),
            "--relay-tls".into(),
            "none".into(),
            "--retry-min".into(),
            "1h".into(),
            "--maildir-owner".into(),
            VMAIL_USER.into(),
        ],
    );
    assert!(Smtp::connect(mta.port).is_ok(), "{}", mta.log_tail());
    assert_eq!(
        ids(mta.child.id(), "Uid:"),
        vec![uid; 4],
        "{}",
        mta.log_tail()
    );
    let m = message("owner-q", "carlos@example.net", "ana@example.org", "queued");
    let r = send_one(mta.port, "carlos@example.net", &["ana@example.org"], &m);
    assert!(
        r.as_ref().is_ok_and(|r| r.starts_with("250")),
        "{r:?}\n{}",
        mta.log_tail()
    );
    let queued: Vec<_> = fs::read_dir(queue.join("active")).unwrap().collect();
    assert_eq!(queued.len(), 1, "{}", mta.log_tail());
    for (path, mode, u, g, is_dir) in tree(&queue) {
        assert_eq!((u, g), (uid, gid), "{path} is {u}:{g}");
        let new = path.contains("/active") || path.ends_with("/tmp") || path.ends_with("/hold");
        if is_dir && new {
            assert_eq!(mode, 0o700, "{path}: {mode:o}");
        }
        if path.contains("/active/") {
            assert_eq!(mode, 0o600, "{path}: {mode:o}");
        }
    }
    let flush = std::process::Command::new(BIN)
        .args(["queue", "--queue"])
        .arg(&queue)
        .arg("--control-socket")
        .arg(&mta.control)
        .arg("flush")
        .env_remove("POSTA_CONFIG")
        .output()
        .unwrap();
    assert!(
        flush.status.success(),
        "posta queue flush: {}\n{}",
        String::from_utf8_lossy(&flush.stderr),
        mta.log_tail()
    );
}

/// The systemd unit's model: started as the owner itself (never root), the mta goes on as it
/// and writes the same private Maildirs into a root the administrator gave that user.
#[test]
fn started_as_the_owner_it_runs_as_it_and_writes_private_maildirs() {
    let (uid, gid) = vmail_ids();
    let base = server_dir("posta-mta-owner-u-");
    let root = base.path().join("vmail");
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
    let mta = PostaMta::start_as(
        BIN,
        base.path(),
        &[
            "--hostname".into(),
            "mailserver2.example.org".into(),
            "--domain".into(),
            "example.org".into(),
            "--maildir".into(),
            root.display().to_string(),
            "--maildir-owner".into(),
            VMAIL_USER.into(),
        ],
        (uid, gid),
    );
    let m = message("owner-u", "carlos@example.net", "ana@example.org", "hi");
    let r = send_one(mta.port, "carlos@example.net", &["ana@example.org"], &m);
    assert!(
        r.as_ref().is_ok_and(|r| r.starts_with("250")),
        "{r:?}\n{}",
        mta.log_tail()
    );
    assert_eq!(ids(mta.child.id(), "Uid:"), vec![uid; 4]);
    for (path, mode, u, g, is_dir) in tree(&root.join("ana")) {
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!((mode, u, g), (want, uid, gid), "{path}: {mode:o} {u}:{g}");
    }
}

/// Started as some other unprivileged user, the mta cannot write as the owner: it refuses to
/// start and says how to run it, rather than answer 451 to every message.
#[test]
fn started_as_another_user_it_refuses_to_start() {
    vmail_ids();
    let (uid, gid) = support::sys::user_ids("nobody");
    let base = server_dir("posta-mta-owner-n-");
    let out = std::process::Command::new(BIN)
        .args(["mta", "--listen", "127.0.0.1:0", "--domain", "example.org"])
        .arg("--maildir")
        .arg(base.path().join("vmail"))
        .args(["--maildir-owner", VMAIL_USER])
        .env_remove("POSTA_CONFIG")
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "runs as uid {uid} gid {gid}, not as the Maildir owner {VMAIL_USER}"
        )),
        "{err}"
    );
    assert!(
        !base.path().join("vmail").exists(),
        "nothing made before the refusal"
    );
}
