//! `posta migrate` SIGKILLed 20 times during a 50-account run with one admin identity on
//! mailserver2 (issue 14, item 6): the run after the last kill exits 0, mailserver2 is empty
//! and mailserver1 holds every message exactly once (read back from disk by Message-ID and
//! body hash). Two read-back paths, one test each: the dest admin's IMAP login on mailserver1,
//! and `--to-maildir` (posta on mailserver1 reading the users' Maildirs, no login there). An
//! outcome a kill left unknown is looked up at mailserver1, and a message journaled delivered
//! but not yet confirmed is looked for before it is removed. The tests print, per kill, the
//! unknown outcomes it left (journal `sending` with no later step) and assert at most one per
//! open delivery connection.

mod support;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use posta::migrate::message::{body_hash, message_id};
use support::example_site::MigrateSite;
use support::run::{Run, posta_command};
use support::{Ca, Dovecot, Primary, StoredMessage};

const ACCOUNTS: usize = 50;
const KILLS: usize = 20;
/// Messages a user gets on mailserver2 when a run finishes before it could be killed.
const MORE: usize = 10;
/// Accounts at once and delivery connections per account: 16 open delivery connections.
const PARALLEL: usize = 8;
const CONNECTIONS: usize = 2;
const SOURCE_ADMIN_PW: &str = "kill-ms2-admin";
const DEST_ADMIN_PW: &str = "kill-ms1-admin";

/// One user's messages on mailserver2: INBOX, then the `Projects` folder.
type Seeded = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// How the runs learn what mailserver1 holds.
#[derive(Clone, Copy, Debug)]
enum ReadBack {
    /// `[migrate] dest_admin`: an IMAP login on mailserver1 as any user. Folders go by APPEND.
    DestAdmin,
    /// `--to-maildir` and no login on mailserver1: INBOX only (a folder's APPEND needs a login),
    /// the tracking id looked up in the user's Maildir on disk.
    ToMaildir,
}

impl ReadBack {
    /// Messages per user in INBOX and in `Projects`: enough that twenty kills 1.5 to 4.5 s
    /// into a run all land during delivery. Without folders' APPEND a run goes several times
    /// faster, so `--to-maildir` needs 200 a user.
    fn seed(self) -> (usize, usize) {
        match self {
            ReadBack::DestAdmin => (36, 4),
            ReadBack::ToMaildir => (200, 0),
        }
    }
}

fn user(n: usize) -> String {
    format!("user{n:02}")
}

fn message(user: &str, i: usize) -> Vec<u8> {
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let rcpt = format!("{user}@example.org");
    let mut m = format!(
        "Return-Path: <sender{i}@example.net>\nDelivered-To: {rcpt}\n\
Message-ID: <kill.{user}.{i}.{nonce}@example.net>\nFrom: sender{i}@example.net\nTo: {rcpt}\n\
Subject: message {i} for {user}\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n"
    );
    for line in 0..30 {
        m.push_str(&format!("line {line} of message {i}: lorem ipsum dolor\n"));
    }
    m.into_bytes()
}

/// The last journal step of every message in `state`'s journals.
fn steps(state: &Path) -> HashMap<String, String> {
    let mut last = HashMap::new();
    let Ok(dir) = fs::read_dir(state.join("journal")) else {
        return last;
    };
    for entry in dir {
        let path = entry.expect("journal dir entry").path();
        if path.extension().is_none_or(|e| e != "journal") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for line in fs::read_to_string(&path).expect("read journal").lines() {
            // A kill can tear the last line; the next run cuts it off, as posta does.
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let key = format!("{name}/{}/{}/{}", v["f"], v["v"], v["id"]);
            last.insert(key, v["s"].as_str().unwrap_or_default().to_owned());
        }
    }
    last
}

fn with_step(steps: &HashMap<String, String>, step: &str) -> HashSet<String> {
    steps
        .iter()
        .filter(|(_, s)| s.as_str() == step)
        .map(|(k, _)| k.clone())
        .collect()
}

fn assert_exactly_once(seeded: &[Vec<u8>], stored: &[StoredMessage], what: &str) {
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    for m in stored {
        let id = message_id(&m.body).expect("stored message without Message-ID");
        got.entry(id).or_default().push(body_hash(&m.body));
    }
    let mut lost = 0;
    let mut doubled = 0;
    for m in seeded {
        match got.get(&message_id(m).unwrap()).map(Vec::len) {
            None => lost += 1,
            Some(1) => {}
            Some(_) => doubled += 1,
        }
    }
    assert_eq!((lost, doubled), (0, 0), "{what}: lost, doubled");
    for m in seeded {
        let id = message_id(m).unwrap();
        assert_eq!(got[&id], vec![body_hash(m)], "{what}: {id} altered");
    }
    assert_eq!(stored.len(), seeded.len(), "{what}: extra messages");
}

fn spawn(args: &[String], log: &Path) -> Child {
    posta_command(env!("CARGO_BIN_EXE_posta"))
        .args(args)
        .stderr(fs::File::create(log).expect("create log"))
        .spawn()
        .expect("run posta")
}

#[test]
fn fifty_accounts_killed_twenty_times_end_with_the_source_empty_and_nothing_lost_or_doubled() {
    killed_twenty_times(ReadBack::DestAdmin);
}

#[test]
fn fifty_accounts_killed_twenty_times_with_to_maildir_end_with_the_source_empty() {
    killed_twenty_times(ReadBack::ToMaildir);
}

fn killed_twenty_times(read_back: ReadBack) {
    let (inbox_n, folder_n) = read_back.seed();
    let ca = Ca::get();
    let names: Vec<String> = (0..ACCOUNTS).map(user).collect();
    let own: Vec<(String, String)> = names
        .iter()
        .map(|u| (u.clone(), format!("{u}-own-secret")))
        .collect();
    let users: Vec<(&str, &str)> = own.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    let source = Dovecot::start_with_master(ca, &users, ("admin", SOURCE_ADMIN_PW));
    let primary = Primary::start_with_master(ca, &users, ("admin", DEST_ADMIN_PW));
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, pw) in [("src.pw", SOURCE_ADMIN_PW), ("dst.pw", DEST_ADMIN_PW)] {
        let path = dir.path().join(name);
        fs::write(&path, format!("{pw}\n")).expect("write password file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let t = SystemTime::now();
    let mut seeded: HashMap<String, Seeded> = HashMap::new();
    for u in &names {
        let inbox: Vec<_> = (0..inbox_n).map(|i| message(u, i)).collect();
        let folder: Vec<_> = (0..folder_n).map(|i| message(u, 1000 + i)).collect();
        for (i, m) in inbox.iter().enumerate() {
            source.seed(u, None, m, if i % 4 == 0 { "S" } else { "" }, &[], t);
        }
        for m in &folder {
            source.seed(u, Some("Projects"), m, "FS", &[], t);
        }
        seeded.insert(u.clone(), (inbox, folder));
    }
    let accounts: String = names
        .iter()
        .map(|u| {
            format!("[[migrate.accounts]]\nuser = \"{u}\"\ndeliver_to = \"{u}@example.org\"\n")
        })
        .collect();
    let migrate = format!(
        "source_admin = {{ user = \"admin\", password_file = \"src.pw\" }}\n{}",
        match read_back {
            ReadBack::DestAdmin =>
                "dest_admin = { user = \"admin\", password_file = \"dst.pw\" }\n",
            ReadBack::ToMaildir => "",
        }
    );
    let site = MigrateSite {
        primary: &[
            format!("smtp:{}", primary.postfix.smtp_port()),
            format!("imaps:{}", primary.dovecot.imaps_port()),
        ],
        backup: &[format!("imaps:{}", source.imaps_port())],
        maildir: None,
        migrate: &migrate,
        accounts: &accounts,
    }
    .write(dir.path());
    let state: PathBuf = dir.path().join("state");
    let to_maildir = primary.dovecot.path().join("mail/%u/Maildir");
    let mut args: Vec<String> = [
        "--config",
        &site.display().to_string(),
        "migrate",
        "--json",
        "--settle",
        "45s",
        "--parallel",
        &PARALLEL.to_string(),
        "--connections",
        &CONNECTIONS.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let ReadBack::ToMaildir = read_back {
        args.extend(["--to-maildir".into(), to_maildir.display().to_string()]);
    }
    let log = dir.path().join("posta.log");

    // A cheap pseudo-random sequence (no rand crate): delays between 1.5 and 4.5 s, long enough
    // for a run to get past its logins (eight accounts at once, TLS, on a loaded machine) and
    // into delivery.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut per_kill = Vec::new();
    let mut unknown_before: HashSet<String> = HashSet::new();
    let mut completed_early = 0;
    while per_kill.len() < KILLS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(1500 + x % 3000);
        let mut child = spawn(&args, &log);
        thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            // A quiet machine moves everything before the twentieth kill: that run must have
            // succeeded, and new mail reaching mailserver2 gives the next runs work to be
            // killed in (the final check counts it too).
            assert!(status.success(), "{}", fs::read_to_string(&log).unwrap());
            completed_early += 1;
            assert!(
                completed_early <= KILLS,
                "runs keep finishing before they can be killed"
            );
            for u in &names {
                let inbox = &mut seeded.get_mut(u).expect("seeded").0;
                for _ in 0..MORE {
                    let m = message(u, inbox.len());
                    source.seed(u, None, &m, "", &[], t);
                    inbox.push(m);
                }
            }
            println!("{read_back:?}: a run finished before its kill; {MORE} more messages a user");
            continue;
        }
        child.kill().expect("SIGKILL posta");
        child.wait().unwrap();
        let now = steps(&state);
        let unknown = with_step(&now, "sending");
        let new_unknown = unknown.difference(&unknown_before).count();
        let unconfirmed = with_step(&now, "delivered").len();
        per_kill.push(new_unknown);
        println!(
            "{read_back:?} kill {:2} after {:4} ms: {new_unknown} new unknown outcome(s), {} unknown in all, \
             {unconfirmed} delivered and not yet confirmed",
            per_kill.len(),
            delay.as_millis(),
            unknown.len(),
        );
        unknown_before = unknown;
    }
    let started = Instant::now();
    let run = Run::wait(spawn(&args, &log), Duration::from_secs(600));
    let run = Run {
        stderr: fs::read_to_string(&log).unwrap_or_default(),
        ..run
    };
    let total: usize = per_kill.iter().sum();
    let open = PARALLEL * CONNECTIONS;
    println!(
        "{read_back:?}: {KILLS} kills: {total} unknown outcomes ({:.2} per kill, at most {} in one kill; {open} \
         open delivery connections); the final run took {:?}",
        total as f64 / KILLS as f64,
        per_kill.iter().max().unwrap(),
        started.elapsed()
    );
    assert_eq!(run.code, 0, "after {KILLS} kills: {run:?}");
    assert_eq!(run.json()["ok"], true);
    for (i, n) in per_kill.iter().enumerate() {
        assert!(
            *n <= open,
            "kill {}: {n} unknown outcomes, more than one per open delivery connection ({open})",
            i + 1
        );
    }
    for u in &names {
        let (inbox, folder) = &seeded[u];
        let deadline = Instant::now() + Duration::from_secs(60);
        while primary.dovecot.messages(u, None).len() < inbox.len() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        assert_exactly_once(
            inbox,
            &primary.dovecot.messages(u, None),
            &format!("{u} INBOX"),
        );
        let stored = primary.dovecot.messages(u, Some("Projects"));
        assert_exactly_once(folder, &stored, &format!("{u} Projects"));
        assert!(stored.iter().all(|m| m.flags == "FS"), "{u}: flags kept");
        assert!(source.messages(u, None).is_empty(), "{u}: source INBOX");
        assert!(
            source.messages(u, Some("Projects")).is_empty(),
            "{u}: source Projects"
        );
    }
    let postfix_log = fs::read_to_string(primary.postfix.log()).unwrap_or_default();
    assert!(
        !postfix_log.contains("status=bounced"),
        "Postfix bounced something"
    );
}
