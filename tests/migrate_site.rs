//! A whole site migrated with one admin credential per server and no list of accounts (issue
//! 14, acceptance line 1): 50 accounts × 200 messages (INBOX and two folders, some read or
//! flagged) on mailserver2, a Dovecot with a master user; mailserver1 is Postfix → LMTP → a
//! Dovecot with a master user (tests/support's `Primary`). The site file is
//! examples/site.toml with `accounts = "all"`: posta finds the accounts in the Maildirs under
//! `[mta] maildir`. Outcomes are checked on disk by Message-ID and body hash.

mod support;

use std::collections::HashMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use posta::migrate::message::{body_hash, message_id};
use support::example_site::MigrateSite;
use support::run::{Run, posta_command};
use support::{Ca, Dovecot, Primary, StoredMessage};

const ACCOUNTS: usize = 50;
/// Per account: INBOX, then the two folders.
const SPLIT: [(Option<&str>, usize); 3] =
    [(None, 120), (Some("Projects"), 50), (Some("Archive"), 30)];
const SOURCE_ADMIN_PW: &str = "ms2-admin-pw";
const DEST_ADMIN_PW: &str = "ms1-admin-pw";

/// The flags a seeded message gets: every third read, every tenth flagged and read.
fn flags_of(i: usize) -> &'static str {
    match (i % 10, i % 3) {
        (0, _) => "FS",
        (_, 0) => "S",
        _ => "",
    }
}

fn message(user: &str, folder: &str, i: usize) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <sender{i}@example.net>\nDelivered-To: {user}@example.org\n\
Message-ID: <site.{user}.{folder}.{i}@example.net>\nFrom: sender{i}@example.net\n\
To: {user}@example.org\nSubject: {folder} message {i}\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n"
    );
    for line in 0..20 {
        m.push_str(&format!(
            "line {line} of {user}'s {folder} message {i}: lorem ipsum\n"
        ));
    }
    m.into_bytes()
}

/// The example site file with both servers on loopback, `accounts = "all"` and one admin per
/// side; `[mta] maildir` is mailserver2's Maildir root.
fn site(dir: &Path, source: &Dovecot, primary: &Primary, smtp_port: u16) -> PathBuf {
    MigrateSite {
        primary: &[
            format!("smtp:{smtp_port}"),
            format!("imaps:{}", primary.dovecot.imaps_port()),
        ],
        backup: &[format!("imaps:{}", source.imaps_port())],
        maildir: Some(&source.path().join("mail/%u/Maildir")),
        migrate: "accounts = \"all\"\ndeliver_to = \"%u@example.org\"\n\
                  source_admin = { user = \"admin\", password_file = \"source-admin.pw\" }\n\
                  dest_admin = { user = \"admin\", password_file = \"dest-admin.pw\" }\n",
        // The one listed account goes: "all" finds them.
        accounts: "",
    }
    .write(dir)
}

fn assert_exactly_once(what: &str, seeded: &[Vec<u8>], stored: &[StoredMessage]) {
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
            "{what} {id}: missing, changed or doubled"
        );
    }
    assert_eq!(
        stored.len(),
        seeded.len(),
        "{what}: unexpected extra messages"
    );
}

#[test]
fn fifty_accounts_found_by_all_arrive_once_with_folders_and_flags() {
    let ca = Ca::get();
    let users: Vec<(String, String)> = (0..ACCOUNTS)
        .map(|n| (format!("user{n:02}"), format!("user{n:02}-own-secret")))
        .collect();
    let pairs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let Servers {
        source,
        primary,
        dir,
        ..
    } = Servers::start(ca, &pairs);

    // On disk, as Dovecot keeps it: 10,000 messages in seconds.
    let t = SystemTime::now();
    let mut seeded: HashMap<(String, Option<&str>), Vec<Vec<u8>>> = HashMap::new();
    for (user, _) in &users {
        for (folder, n) in SPLIT {
            let list: Vec<Vec<u8>> = (0..n)
                .map(|i| message(user, folder.unwrap_or("INBOX"), i))
                .collect();
            for (i, m) in list.iter().enumerate() {
                source.seed(user, folder, m, flags_of(i), &[], t);
            }
            seeded.insert((user.clone(), folder), list);
        }
    }
    let total: usize = seeded.values().map(Vec::len).sum();
    assert_eq!(total, 10_000);

    let site = site(dir.path(), &source, &primary, primary.postfix.smtp_port());
    let log = dir.path().join("posta.log");
    let out = dir.path().join("report.json");
    let started = Instant::now();
    let child = posta_command(env!("CARGO_BIN_EXE_posta"))
        .env("POSTA_LOG", "posta=info")
        .arg("--config")
        .arg(&site)
        .args(["migrate", "--json", "--settle", "60s"])
        .stderr(fs::File::create(&log).expect("create log"))
        // The report of 50 accounts outgrows a pipe that nobody reads before posta exits.
        .stdout(fs::File::create(&out).expect("create report file"))
        .spawn()
        .expect("run posta");
    let mut run = Run::wait(child, Duration::from_secs(900));
    run.stderr = fs::read_to_string(&log).expect("read log");
    run.stdout = fs::read_to_string(&out).expect("read report");
    let took = started.elapsed();
    eprintln!("posta migrate: {total} messages, {ACCOUNTS} accounts in {took:?}");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, tail(&run.stderr));
    let report = run.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["accounts"].as_array().unwrap().len(), ACCOUNTS);
    assert_eq!(report["uncovered"].as_array().unwrap().len(), 0);
    let totals = &report["totals"];
    assert_eq!(totals["accounts"], ACCOUNTS);
    assert_eq!(totals["accounts_ok"], ACCOUNTS);
    assert_eq!(totals["source_messages"], 10_000, "{totals}");
    assert_eq!(totals["delivered"], 10_000, "{totals}");
    assert_eq!(totals["removed"], 10_000, "{totals}");
    assert_eq!(totals["verified"], 10_000, "{totals}");
    assert!(
        run.stderr
            .contains("accounts = \"all\": found in the Maildirs under"),
        "{}",
        tail(&run.stderr)
    );

    // Postfix delivers after its 250: wait for every INBOX to fill, then a moment more for late
    // duplicates.
    let inbox = SPLIT[0].1;
    let deadline = Instant::now() + Duration::from_secs(120);
    while users
        .iter()
        .any(|(u, _)| primary.dovecot.messages(u, None).len() < inbox)
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(200));
    }
    thread::sleep(Duration::from_millis(500));
    for (user, _) in &users {
        for (folder, _) in SPLIT {
            let what = format!("{user} {}", folder.unwrap_or("INBOX"));
            let stored = primary.dovecot.messages(user, folder);
            assert_exactly_once(&what, &seeded[&(user.clone(), folder)], &stored);
            assert!(
                source.messages(user, folder).is_empty(),
                "{what} left on mailserver2"
            );
            // Folders go by IMAP APPEND with their flags; INBOX by SMTP, as new mail.
            if folder.is_some() {
                let mut want: Vec<&str> = (0..stored.len()).map(flags_of).collect();
                let mut got: Vec<&str> = stored.iter().map(|m| m.flags.as_str()).collect();
                want.sort_unstable();
                got.sort_unstable();
                assert_eq!(got, want, "{what} flags");
            }
        }
    }
    let postfix_log = fs::read_to_string(primary.postfix.log()).unwrap_or_default();
    assert!(
        !postfix_log.contains("status=bounced"),
        "Postfix bounced mail:\n{}",
        tail(&postfix_log)
    );
    assert!(
        postfix_log.matches("status=sent").count() >= ACCOUNTS * inbox,
        "Postfix's log shows fewer deliveries than INBOX messages"
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `accounts = "all"` on a host with none of the places accounts are found (posta migrate run
/// elsewhere than mailserver2): a usage error that says what it looked for, before any login.
#[test]
fn accounts_all_with_nothing_to_find_them_in_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pw = dir.path().join("admin.pw");
    fs::write(&pw, "x\n").expect("write password file");
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).expect("chmod");
    let site = dir.path().join("site.toml");
    fs::write(
        &site,
        format!(
            "domain = \"example.org\"\n[primary]\nname = \"localhost\"\naddress = \"127.0.0.1\"\n\
             services = [\"smtp:1\", \"imaps:2\"]\n[backup]\nname = \"localhost\"\n\
             address = \"127.0.0.2\"\nservices = [\"imaps:3\"]\n[takeover]\nmode = \"vip\"\n\
             [vip]\naddress = \"127.0.0.9/8\"\ninterface = \"lo\"\n\
             [mta]\nmaildir = \"{root}/absent/%u/Maildir\"\npop3_users = \"{root}/absent-users\"\n\
             [migrate]\naccounts = \"all\"\ndeliver_to = \"%u@example.org\"\n\
             source_admin = {{ user = \"admin\", password_file = \"admin.pw\" }}\n",
            root = dir.path().display()
        ),
    )
    .expect("write site file");
    let out = posta_command(env!("CARGO_BIN_EXE_posta"))
        .arg("--config")
        .arg(&site)
        .args(["migrate", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .expect("run posta");
    let run = Run::from_output(out);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("accounts = \"all\" found nothing to list them from")
            && run.stderr.contains("absent-users"),
        "{run:?}"
    );
}

/// A TCP relay in front of mailserver1's Postfix that counts connections open at once.
struct Counting {
    port: u16,
    most: Arc<AtomicUsize>,
}

impl Counting {
    fn start(to: u16) -> Counting {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let open = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let seen = most.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                seen.fetch_max(now, Ordering::SeqCst);
                let open = open.clone();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = std::io::copy(&mut &s2, &mut &c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
                thread::spawn(move || {
                    let _ = std::io::copy(&mut &client, &mut &server);
                    let _ = server.shutdown(std::net::Shutdown::Both);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Counting { port, most }
    }
}

/// mailserver2 (a Dovecot) and mailserver1 (`Primary`), both serving `pairs` with an admin
/// (master) login, the two admins' password files in `dir`, and `per_user` INBOX messages
/// seeded on mailserver2 for each account (`seeded`, by user).
struct Servers {
    source: Dovecot,
    primary: Primary,
    dir: tempfile::TempDir,
    seeded: HashMap<String, Vec<Vec<u8>>>,
}

impl Servers {
    /// Both servers with the master user `admin`, and its password files (0600) in `dir`.
    fn start(ca: &Ca, pairs: &[(&str, &str)]) -> Servers {
        let source = Dovecot::start_with_master(ca, pairs, ("admin", SOURCE_ADMIN_PW));
        let primary = Primary::start_with_master(ca, pairs, ("admin", DEST_ADMIN_PW));
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, pw) in [
            ("source-admin.pw", SOURCE_ADMIN_PW),
            ("dest-admin.pw", DEST_ADMIN_PW),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, format!("{pw}\n")).expect("write password file");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        Servers {
            source,
            primary,
            dir,
            seeded: HashMap::new(),
        }
    }

    /// [`Servers::start`], then `per_user` messages in each user's INBOX on the source.
    fn seeded(ca: &Ca, pairs: &[(&str, &str)], per_user: usize) -> Servers {
        let mut servers = Servers::start(ca, pairs);
        let t = SystemTime::now();
        for (user, _) in pairs {
            let list: Vec<Vec<u8>> = (0..per_user).map(|i| message(user, "INBOX", i)).collect();
            for m in &list {
                servers.source.seed(user, None, m, "", &[], t);
            }
            servers.seeded.insert(user.to_string(), list);
        }
        servers
    }
}

/// Six accounts at once with four delivery connections each would open 24 SMTP connections to
/// mailserver1; --max-primary-connections 5 holds the site to five, and every message still
/// arrives once.
#[test]
fn delivery_connections_to_mailserver1_stay_under_the_site_cap() {
    let ca = Ca::get();
    let users: Vec<(String, String)> = (0..6)
        .map(|n| (format!("cap{n}"), format!("cap{n}-own-secret")))
        .collect();
    let pairs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let Servers {
        source,
        primary,
        dir,
        seeded,
    } = Servers::seeded(ca, &pairs, 40);
    let relay = Counting::start(primary.postfix.smtp_port());
    let site = site(dir.path(), &source, &primary, relay.port);
    let out = dir.path().join("report.json");
    let child = posta_command(env!("CARGO_BIN_EXE_posta"))
        .arg("--config")
        .arg(&site)
        .args(["migrate", "--json", "--settle", "60s", "--parallel", "6"])
        .args(["--connections", "4", "--max-primary-connections", "5"])
        .stdout(fs::File::create(&out).expect("create report file"))
        .spawn()
        .expect("run posta");
    let mut run = Run::wait(child, Duration::from_secs(300));
    run.stdout = fs::read_to_string(&out).expect("read report");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["totals"]["delivered"], 240, "{run:?}");
    let most = relay.most.load(Ordering::SeqCst);
    eprintln!("most SMTP connections to mailserver1 at once: {most}");
    assert!((1..=5).contains(&most), "{most} connections at once");
    let deadline = Instant::now() + Duration::from_secs(60);
    while users
        .iter()
        .any(|(u, _)| primary.dovecot.messages(u, None).len() < 40)
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(200));
    }
    for (user, _) in &users {
        let stored = primary.dovecot.messages(user, None);
        assert_exactly_once(user, &seeded[user], &stored);
        assert!(
            source.messages(user, None).is_empty(),
            "{user} left on mailserver2"
        );
    }
}

/// postsuper/postqueue on the test's Postfix: `args` after `-c CONFIG`.
fn postfix_tool(tool: &str, conf: &Path, args: &[&str]) {
    let out = std::process::Command::new(tool)
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An account that has sent everything gives its delivering slot to the next one while it
/// waits for mailserver1 to store what it accepted. `held`'s mail is accepted by mailserver1's
/// Postfix and put on hold (an access-table HOLD: 250, then stored only once released), so
/// `held` waits in its confirmation; with `--parallel 1` `next` must still deliver all of its
/// mail meanwhile. Released, `held`'s mail arrives, both confirm, and each message is at
/// mailserver1 once and gone from mailserver2. Before the fix `held` kept its slot through
/// the whole --settle (10 minutes here) and `next` sent nothing.
#[test]
fn the_next_account_delivers_while_one_waits_for_its_mail_to_be_stored() {
    let ca = Ca::get();
    let pairs = [("held", "held-own-secret"), ("next", "next-own-secret")];
    let Servers {
        source,
        primary,
        dir,
        seeded,
    } = Servers::seeded(ca, &pairs, 20);
    primary
        .postfix
        .set_recipient_access("held@example.org HOLD");
    let site = site(dir.path(), &source, &primary, primary.postfix.smtp_port());
    let out = dir.path().join("report.json");
    // Accounts start in their sorted order: `held` first.
    let mut child = posta_command(env!("CARGO_BIN_EXE_posta"))
        .arg("--config")
        .arg(&site)
        .args(["migrate", "--json", "--settle", "10m", "--parallel", "1"])
        .stdout(fs::File::create(&out).expect("create report file"))
        .spawn()
        .expect("run posta");
    // Not a timing: the limit only keeps a broken build from waiting out the 10 minutes.
    let deadline = Instant::now() + Duration::from_secs(180);
    while primary.dovecot.messages("next", None).len() < 20
        && Instant::now() < deadline
        && child.try_wait().expect("poll posta").is_none()
    {
        thread::sleep(Duration::from_millis(200));
    }
    let next_meanwhile = primary.dovecot.messages("next", None).len();
    let held_meanwhile = primary.dovecot.messages("held", None).len();
    let held_on_source = source.messages("held", None).len();
    // Release: out of the hold queue, then delivered at once rather than at the next queue run.
    primary.postfix.set_recipient_access("");
    postfix_tool("postsuper", &primary.postfix.conf(), &["-H", "ALL"]);
    postfix_tool("postqueue", &primary.postfix.conf(), &["-f"]);
    let mut run = Run::wait(child, Duration::from_secs(300));
    run.stdout = fs::read_to_string(&out).expect("read report");
    assert_eq!(
        next_meanwhile, 20,
        "next delivered {next_meanwhile} of 20 while held waited for its mail: {run:?}"
    );
    assert_eq!(held_meanwhile, 0, "held's mail was on hold at mailserver1");
    assert_eq!(
        held_on_source, 20,
        "held's mail stayed on mailserver2 until confirmed"
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["totals"]["delivered"], 40, "{run:?}");
    for (user, _) in pairs {
        let stored = primary.dovecot.messages(user, None);
        assert_exactly_once(user, &seeded[user], &stored);
        assert!(
            source.messages(user, None).is_empty(),
            "{user} left on mailserver2"
        );
    }
}
