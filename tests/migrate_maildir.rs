//! `posta migrate` reading mailserver2's Maildirs on disk (issue 14, item 2): the site file's
//! `[migrate] source = "maildir"` over the Maildirs under `[mta] maildir`, no password at all.
//! mailserver2's Maildirs are served by a real Dovecot at the same time (`Dovecot::start_on`),
//! mailserver1 is Postfix → LMTP → Dovecot with a master user for the folders' APPEND and the
//! read-back (tests/support's `Primary`). Outcomes are checked on disk by Message-ID and body
//! hash.

mod support;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use posta::migrate::message::{body_hash, message_id};
use support::example_site::MigrateSite;
use support::run::{Run, posta_command};
use support::sys::{server_dir, vmail_ids};
use support::{Ca, Dovecot, Primary, StoredMessage};

const DEST_ADMIN_PW: &str = "ms1-admin-pw";
/// Maildir++ folders besides INBOX, as `posta mta`'s users' clients make them.
const FOLDERS: [&str; 2] = ["Sent", "Archive.2024"];
/// Dovecot's own files in a Maildir root that posta must leave as they are.
const DOVECOT_FILES: [&str; 3] = ["dovecot-uidlist", "dovecot.index.log", "subscriptions"];

struct Scene {
    source: Dovecot,
    primary: Primary,
    dir: tempfile::TempDir,
    root: PathBuf,
    users: Vec<String>,
    /// Per user and folder (None: INBOX): the messages seeded on mailserver2.
    seeded: HashMap<(String, Option<&'static str>), Vec<Vec<u8>>>,
}

impl Scene {
    /// `users` with `per_folder` messages in INBOX and in each of [`FOLDERS`]; in the folders
    /// every third is flagged and seen, the rest seen. mailserver2's Dovecot serves them and
    /// has already opened every folder once, so its own files exist.
    fn start(users: usize, per_folder: usize) -> Scene {
        let ca = Ca::get();
        let dir = server_dir("posta-maildir-");
        let root = dir.path().join("vmail");
        let (uid, gid) = vmail_ids();
        let users: Vec<String> = (0..users).map(|i| format!("user{i:02}")).collect();
        let pws: Vec<(String, String)> = users
            .iter()
            .map(|u| (u.clone(), format!("{u}-own-secret")))
            .collect();
        let pairs: Vec<(&str, &str)> = pws.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
        fs::create_dir_all(&root).expect("create root");
        chown(&root, Some(uid), Some(gid)).expect("chown root");
        for user in &users {
            let maildir = root.join(user);
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(maildir.join(sub)).expect("create Maildir");
                chown(maildir.join(sub), Some(uid), Some(gid)).expect("chown Maildir");
            }
            chown(&maildir, Some(uid), Some(gid)).expect("chown Maildir");
        }
        let source = Dovecot::start_on(ca, &pairs, &root);
        let primary = Primary::start_with_master(ca, &pairs, ("admin", DEST_ADMIN_PW));
        let pw = dir.path().join("dest-admin.pw");
        fs::write(&pw, format!("{DEST_ADMIN_PW}\n")).expect("write password file");
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut seeded = HashMap::new();
        let t = SystemTime::now();
        for (n, user) in users.iter().enumerate() {
            let rcpt = format!("{user}@example.org");
            for folder in [None, Some(FOLDERS[0]), Some(FOLDERS[1])] {
                let ms: Vec<Vec<u8>> = (0..per_folder)
                    .map(|i| message(n * 10_000 + folder_no(folder) * 1000 + i, &rcpt))
                    .collect();
                for (i, m) in ms.iter().enumerate() {
                    let flags = match (folder, i % 3) {
                        (None, 0) => "S",
                        (None, _) => "",
                        (Some(_), 0) => "FS",
                        (Some(_), _) => "S",
                    };
                    source.seed(user, folder, m, flags, &[], t);
                }
                seeded.insert((user.clone(), folder), ms);
            }
            // A client's session: Dovecot writes its uidlist and index for every folder.
            let mut imap = Imap::login(source.imap_port(), user, &format!("{user}-own-secret"));
            for f in ["INBOX", FOLDERS[0], FOLDERS[1]] {
                imap.run(&format!("SELECT {f}"));
            }
            imap.run("LOGOUT");
        }
        Scene {
            source,
            primary,
            dir,
            root,
            users,
            seeded,
        }
    }

    /// The site file: `[mta] maildir` is the source root, `[migrate] source = "maildir"`,
    /// accounts without any password, and a dest admin on mailserver1.
    fn site(&self) -> PathBuf {
        let accounts: String = self
            .users
            .iter()
            .map(|u| {
                format!("[[migrate.accounts]]\nuser = \"{u}\"\ndeliver_to = \"{u}@example.org\"\n")
            })
            .collect();
        MigrateSite {
            primary: &[
                format!("smtp:{}", self.primary.postfix.smtp_port()),
                format!("imaps:{}", self.primary.dovecot.imaps_port()),
            ],
            backup: &[format!("imaps:{}", self.source.imaps_port())],
            maildir: Some(&self.root),
            migrate: "source = \"maildir\"\n\
                      dest_admin = { user = \"admin\", password_file = \"dest-admin.pw\" }\n",
            accounts: &accounts,
        }
        .write(self.dir.path())
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--config".into(),
            self.site().display().to_string(),
            "migrate".into(),
            "--json".into(),
            "--settle".into(),
            "45s".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Every message stored at mailserver1 for `user`, all folders, once Postfix has
    /// delivered at least `n` (it delivers after it accepts), then a moment more to see late
    /// duplicates.
    fn await_dest(&self, user: &str, n: usize) -> Vec<StoredMessage> {
        let all = || {
            let mut v = self.primary.dovecot.messages(user, None);
            for f in FOLDERS {
                v.extend(self.primary.dovecot.messages(user, Some(f)));
            }
            v
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while all().len() < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        thread::sleep(Duration::from_millis(500));
        all()
    }

    fn source_left(&self, user: &str) -> usize {
        let mut n = self.source.messages(user, None).len();
        for f in FOLDERS {
            n += self.source.messages(user, Some(f)).len();
        }
        n
    }

    fn seeded_of(&self, user: &str) -> Vec<Vec<u8>> {
        [None, Some(FOLDERS[0]), Some(FOLDERS[1])]
            .iter()
            .flat_map(|f| self.seeded[&(user.to_owned(), *f)].clone())
            .collect()
    }

    /// The lines of mailserver2's Dovecot log that report an error.
    fn dovecot_errors(&self) -> Vec<String> {
        fs::read_to_string(self.source.log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Error") || l.contains("Panic") || l.contains("Fatal"))
            .map(str::to_owned)
            .collect()
    }
}

fn folder_no(folder: Option<&str>) -> usize {
    match folder {
        None => 0,
        Some(f) => 1 + FOLDERS.iter().position(|g| *g == f).unwrap_or(0),
    }
}

fn message(i: usize, rcpt: &str) -> Vec<u8> {
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut m = format!(
        "Return-Path: <sender{i}@example.net>\nDelivered-To: {rcpt}\n\
Message-ID: <maildir{i}.{nonce}@example.net>\nFrom: sender{i}@example.net\nTo: {rcpt}\n\
Subject: message {i}\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n"
    );
    for line in 0..30 {
        m.push_str(&format!("line {line} of message {i}: lorem ipsum dolor\n"));
    }
    m.into_bytes()
}

fn posta(args: &[String], log: &Path) -> Run {
    let child = posta_command(env!("CARGO_BIN_EXE_posta"))
        .args(args)
        .stderr(fs::File::create(log).expect("create log"))
        .spawn()
        .expect("run posta");
    let mut run = Run::wait(child, Duration::from_secs(600));
    run.stderr = fs::read_to_string(log).expect("read log");
    run
}

/// Each seeded message exactly once among `stored`, unchanged, and nothing else.
fn assert_exactly_once(seeded: &[Vec<u8>], stored: &[StoredMessage]) {
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    for m in stored {
        let id = message_id(&m.body).expect("stored message without Message-ID");
        got.entry(id).or_default().push(body_hash(&m.body));
    }
    for m in seeded {
        let id = message_id(m).unwrap();
        assert_eq!(
            got.get(&id),
            Some(&vec![body_hash(m)]),
            "{id}: missing, changed or doubled"
        );
    }
    assert_eq!(stored.len(), seeded.len(), "unexpected extra messages");
}

/// A plain IMAP session for the tests' "user's client": one command at a time, responses
/// read to the tagged line.
struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: usize,
}

impl Imap {
    fn login(port: u16, user: &str, password: &str) -> Imap {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Dovecot");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut imap = Imap {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            tag: 0,
        };
        let mut greeting = String::new();
        imap.reader.read_line(&mut greeting).unwrap();
        let done = imap.run(&format!("LOGIN {user} {password}"));
        assert!(done.last().unwrap().contains(" OK"), "{done:?}");
        imap
    }

    /// Sends `command`, returns every response line, the tagged one last.
    fn run(&mut self, command: &str) -> Vec<String> {
        self.try_run(command)
            .unwrap_or_else(|lines| panic!("Dovecot closed the session during {command}: {lines}"))
    }

    /// Like [`Imap::run`]; `Err` with what Dovecot said last (its `* BYE` line) when it ended
    /// the session instead of answering.
    fn try_run(&mut self, command: &str) -> Result<Vec<String>, String> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let closed = |lines: &[String]| {
            lines
                .iter()
                .rfind(|l| l.starts_with("* BYE"))
                .cloned()
                .unwrap_or_else(|| format!("EOF after {lines:?}"))
        };
        if write!(self.writer, "{tag} {command}\r\n").is_err() {
            return Err(closed(&[]));
        }
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(closed(&lines)),
                Ok(_) => {}
            }
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line.trim_end().to_owned());
            if done {
                return Ok(lines);
            }
        }
    }

    /// The UIDs of the selected folder.
    fn uids(&mut self) -> Result<Vec<u32>, String> {
        Ok(self
            .try_run("UID SEARCH ALL")?
            .iter()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .flat_map(|l| l.split_whitespace().filter_map(|n| n.parse().ok()))
            .collect())
    }
}

/// INBOX and two folders for three users, some read, some flagged, migrated with no password
/// for mailserver2: every message once at mailserver1, folders by APPEND with their flags,
/// mailserver2's Maildirs emptied of mail and Dovecot's own files left as they were.
#[test]
fn a_maildir_source_migrates_every_folder_with_flags_and_no_password() {
    let scene = Scene::start(3, 6);
    let before: Vec<(PathBuf, Vec<u8>)> = scene
        .users
        .iter()
        .flat_map(|u| DOVECOT_FILES.map(|f| scene.root.join(u).join(f)))
        .map(|p| {
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    let run = posta(&scene.args(&[]), &scene.dir.path().join("posta.log"));
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["ok"], true, "{run:?}");
    for account in report["accounts"].as_array().unwrap() {
        assert!(
            account["source"].as_str().unwrap().starts_with("maildir-"),
            "{account}"
        );
        for f in account["folders"].as_array().unwrap() {
            assert_eq!(f["verified"], 6, "read back at mailserver1: {f}");
            assert_eq!(f["removed"], 6, "{f}");
        }
    }
    for user in &scene.users {
        let seeded = scene.seeded_of(user);
        assert_exactly_once(&seeded, &scene.await_dest(user, seeded.len()));
        for f in FOLDERS {
            let stored = scene.primary.dovecot.messages(user, Some(f));
            assert_eq!(stored.len(), 6, "{user} {f}");
            assert_eq!(
                stored.iter().filter(|m| m.flags == "FS").count(),
                2,
                "{user} {f}: flags kept"
            );
            assert_eq!(stored.iter().filter(|m| m.flags == "S").count(), 4);
        }
        assert_eq!(scene.source_left(user), 0, "{user}'s Maildir not emptied");
        for f in FOLDERS {
            let marker = scene.root.join(user).join(format!(".{f}/maildirfolder"));
            assert!(marker.is_file(), "{} removed", marker.display());
        }
    }
    for (path, bytes) in before {
        assert_eq!(
            fs::read(&path).ok(),
            Some(bytes),
            "{} changed by posta",
            path.display()
        );
    }
    // The trace header says how the message came: read from disk, not over IMAP.
    let one = &scene.primary.dovecot.messages("user00", Some("Sent"))[0];
    let text = String::from_utf8_lossy(&one.body);
    assert!(text.contains(" with local (posta-"), "{text}");
    assert!(
        scene.dovecot_errors().is_empty(),
        "{:?}",
        scene.dovecot_errors()
    );
}

/// Users in the acceptance run (issue 14: "`posta mta`'s Maildirs for 50 users, while a
/// Dovecot serves them and a client flags and moves messages during the run").
const CLIENT_USERS: usize = 50;
/// Mail clients at once, each cycling over its share of the users with one session per user
/// kept open: enough to move mail in every user's Maildir throughout the run without 50
/// sessions hammering a 2-core machine.
const CLIENTS: usize = 5;

/// One user's mail client: a session kept open, one round at a time of flagging every third
/// message of a folder and MOVEing one to the other folder.
struct Client {
    port: u16,
    user: String,
    imap: Option<Imap>,
    round: usize,
}

impl Client {
    /// One round; `Err(line)` when Dovecot ended the session (its `* BYE` line, or EOF). The
    /// next round logs in again, as a real client does.
    fn round(&mut self) -> Result<bool, String> {
        self.round += 1;
        let (from, to) = if self.round.is_multiple_of(2) {
            ("INBOX", FOLDERS[1])
        } else {
            (FOLDERS[1], "INBOX")
        };
        let user = &self.user;
        let imap = self
            .imap
            .get_or_insert_with(|| Imap::login(self.port, user, &format!("{user}-own-secret")));
        let result = (|| {
            imap.try_run(&format!("SELECT {from}"))?;
            let uids = imap.uids()?;
            for uid in uids.iter().step_by(3) {
                imap.try_run(&format!("UID STORE {uid} +FLAGS (\\Flagged \\Seen)"))?;
            }
            match uids.get(self.round % uids.len().max(1)) {
                Some(uid) => {
                    let done = imap.try_run(&format!("UID MOVE {uid} {to}"))?;
                    Ok(done.last().is_some_and(|l| l.contains(" OK")))
                }
                None => Ok(false),
            }
        })();
        if result.is_err() {
            self.imap = None;
        }
        result
    }
}

/// Fifty users of `posta mta`'s Maildirs. While posta migrates, five mail clients flag
/// messages and MOVE some between INBOX and a folder in every user's Maildir through
/// mailserver2's Dovecot, each cycling over ten users. A message renamed for its flags or
/// moved to `cur/` is found again by its unique name; one moved to another folder (Dovecot
/// links it there under a new name) is known by its file, kept in the journal, and removed
/// there once delivered instead of being sent again. After the clients stop, a second run
/// takes what the moves hid from the first. Every message is at mailserver1 exactly once
/// (Message-ID and body hash), no mail file is left on mailserver2, and Dovecot logged no
/// error. A session Dovecot ends with `* BYE` is logged in again, as a mail client does, and
/// counted.
#[test]
fn fifty_users_with_clients_flagging_and_moving_mail_during_the_run_get_every_message_once() {
    let started = Instant::now();
    let scene = Scene::start(CLIENT_USERS, 30);
    eprintln!("seeded {} users in {:?}", CLIENT_USERS, started.elapsed());
    let stop = Arc::new(AtomicBool::new(false));
    let moves = Arc::new(AtomicUsize::new(0));
    let byes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for share in scene.users.chunks(CLIENT_USERS / CLIENTS) {
        let (stop, moves, byes) = (stop.clone(), moves.clone(), byes.clone());
        let port = scene.source.imap_port();
        let mut sessions: Vec<Client> = share
            .iter()
            .map(|user| Client {
                port,
                user: user.clone(),
                imap: None,
                round: 0,
            })
            .collect();
        clients.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for c in &mut sessions {
                    match c.round() {
                        Ok(true) => {
                            moves.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(bye) => byes.lock().unwrap().push(format!("{}: {bye}", c.user)),
                    }
                }
            }
            for c in &mut sessions {
                if let Some(imap) = c.imap.as_mut() {
                    let _ = imap.try_run("LOGOUT");
                }
            }
        }));
    }
    let t = Instant::now();
    let first = posta(
        &scene.args(&["--parallel", "8"]),
        &scene.dir.path().join("first.log"),
    );
    let first_took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    // What a move hid from the first run (into a folder it had already done) is still on
    // mailserver2; the first run must not have lost or doubled anything either way.
    assert!(matches!(first.code, 0 | 1), "{first:?}");
    let t = Instant::now();
    let second = posta(&scene.args(&[]), &scene.dir.path().join("second.log"));
    let second_took = t.elapsed();
    assert_eq!(second.code, 0, "{second:?}");
    let gone: u64 = [&first, &second]
        .iter()
        .flat_map(|r| r.json()["accounts"].as_array().unwrap().clone())
        .flat_map(|a| a["folders"].as_array().unwrap().clone())
        .map(|f| f["gone"].as_u64().unwrap_or(0))
        .sum();
    let byes = byes.lock().unwrap().clone();
    eprintln!(
        "first run {first_took:?}, second run {second_took:?}; client moves during the run: {}; \
         moved away or re-found under a new name: {gone}; sessions Dovecot ended: {} {byes:?}",
        moves.load(Ordering::Relaxed),
        byes.len()
    );
    assert!(
        moves.load(Ordering::Relaxed) >= CLIENT_USERS,
        "the clients moved less than one message per user during the run"
    );
    for user in &scene.users {
        let seeded = scene.seeded_of(user);
        assert_exactly_once(&seeded, &scene.await_dest(user, seeded.len()));
        assert_eq!(scene.source_left(user), 0, "{user}'s Maildir not emptied");
    }
    assert!(
        scene.dovecot_errors().is_empty(),
        "{:?}",
        scene.dovecot_errors()
    );
    eprintln!("the whole test took {:?}", started.elapsed());
}

/// The journal's unknown outcomes: messages whose last record is `sending` (sent up to the
/// final dot, no reply recorded), over every journal under `state`.
fn unknowns(state: &Path) -> usize {
    let Ok(files) = fs::read_dir(state.join("journal")) else {
        return 0;
    };
    let mut last: HashMap<String, String> = HashMap::new();
    for file in files.flatten() {
        let text = fs::read_to_string(file.path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let key = format!("{}/{}/{}", v["f"], v["v"], v["id"]);
            last.insert(key, v["s"].as_str().unwrap_or_default().to_owned());
        }
    }
    last.values().filter(|s| *s == "sending").count()
}

/// posta on mailserver1 with `--to-maildir` and no login there: killed -9 twenty times while
/// it migrates an IMAP account, then run to the end. Unknown outcomes (killed between the
/// final dot and the reply) are settled by finding the tracking id in the user's Maildir on
/// disk, so the last run exits 0 with the source empty, nothing lost and nothing doubled.
/// Before `--to-maildir` such messages stayed on the source as "outcome unknown" (exit 1).
#[test]
fn killed_repeatedly_with_to_maildir_ends_with_the_source_empty() {
    let scene = Scene::start(1, 1500);
    let user = &scene.users[0];
    let pw = scene.dir.path().join("user.pw");
    fs::write(&pw, format!("{user}-own-secret\n")).unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let state = scene.dir.path().join("state");
    let dest = scene.primary.dovecot.path().join("mail/%u/Maildir");
    let args: Vec<String> = [
        "migrate",
        "--from",
        &format!("imap://{user}@127.0.0.1:{}", scene.source.imap_port()),
        "--password-file",
        &pw.display().to_string(),
        "--ca-file",
        &Ca::get().ca_pem().display().to_string(),
        "--to",
        &format!("smtp://127.0.0.1:{}", scene.primary.postfix.smtp_port()),
        "--rcpt",
        &format!("{user}@example.org"),
        "--to-maildir",
        &dest.display().to_string(),
        "--folder",
        "INBOX",
        "--state-dir",
        &state.display().to_string(),
        "--connections",
        "4",
        "--settle",
        "45s",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let (mut kills, mut early) = (0, 0);
    let mut per_kill = Vec::new();
    while kills < 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut child = posta_command(env!("CARGO_BIN_EXE_posta"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run posta");
        thread::sleep(Duration::from_millis(100 + x % 600));
        if child.try_wait().unwrap().is_some() {
            early += 1;
            assert!(
                early < 3,
                "runs finish before they can be killed; seed more"
            );
            continue;
        }
        child.kill().expect("SIGKILL posta");
        child.wait().unwrap();
        kills += 1;
        per_kill.push(unknowns(&state));
    }
    eprintln!("unknown outcomes in the journal after each of {kills} kills: {per_kill:?}");
    let run = posta(&args, &scene.dir.path().join("final.log"));
    assert_eq!(run.code, 0, "after {kills} kills: {run:?}");
    assert_eq!(run.json()["ok"], true, "{run:?}");
    let inbox = &scene.seeded[&(user.clone(), None)];
    let stored = scene.await_dest(user, inbox.len());
    assert_exactly_once(inbox, &stored);
    assert!(
        scene.source.messages(user, None).is_empty(),
        "source INBOX not emptied after {kills} kills"
    );
    assert_eq!(unknowns(&state), 0, "unknown outcomes left in the journal");
}

/// The ad hoc form: `--from maildir:ROOT/%u --user NAME`, no password, INBOX by SMTP with
/// `--rcpt`. `%u` without `--user`, or a password for a Maildir, is a usage error (exit 2)
/// that touches nothing.
#[test]
fn an_ad_hoc_maildir_source_needs_only_the_user() {
    let scene = Scene::start(1, 5);
    let user = &scene.users[0];
    let from = format!("maildir:{}/%u", scene.root.display());
    let base = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "migrate",
            "--from",
            &from,
            "--to",
            &format!("smtp://127.0.0.1:{}", scene.primary.postfix.smtp_port()),
            "--rcpt",
            &format!("{user}@example.org"),
            "--folder",
            "INBOX",
            "--ca-file",
            &Ca::get().ca_pem().display().to_string(),
            "--state-dir",
            &scene.dir.path().join("state").display().to_string(),
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let no_user = posta(&base(&[]), &scene.dir.path().join("no-user.log"));
    assert_eq!(no_user.code, 2, "{no_user:?}");
    assert!(no_user.stderr.contains("needs --user"), "{no_user:?}");
    let pw = scene.dir.path().join("dest-admin.pw").display().to_string();
    let with_pw = posta(
        &base(&["--user", user, "--password-file", &pw]),
        &scene.dir.path().join("with-pw.log"),
    );
    assert_eq!(with_pw.code, 2, "{with_pw:?}");
    assert_eq!(scene.source.messages(user, None).len(), 5);

    let run = posta(&base(&["--user", user]), &scene.dir.path().join("run.log"));
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(
        report["accounts"][0]["source"],
        format!("maildir-{user}@{}/{user}", scene.root.display()),
        "{run:?}"
    );
    let inbox = &scene.seeded[&(user.clone(), None)];
    assert_exactly_once(inbox, &scene.await_dest(user, inbox.len()));
    assert!(scene.source.messages(user, None).is_empty());
    // The folders were not asked for and stay.
    assert_eq!(scene.source.messages(user, Some(FOLDERS[0])).len(), 5);
}
