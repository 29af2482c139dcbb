//! The outage with a mirror, end to end (issue 17, item 3): mailserver1 (Postfix delivering
//! over LMTP into Dovecot) is mirrored to mailserver2 (Dovecot), both with a master user; the
//! site file is the example's, with a DNS-mode takeover against a real BIND.
//!
//! Just before the crash mailserver1 gets mail and a flag change that no mirror pass saw. Then
//! mailserver1 stops, `posta takeover` puts the mirror on hold, and a user on mailserver2 finds
//! all five folders, reads and flags mail, moves ten messages (five into a folder made during
//! the outage), deletes five, and receives thirty. mailserver1 comes back, `posta failback`,
//! `posta migrate --return`: mailserver1 then holds exactly what the user left on mailserver2
//! plus what reached it before the crash (per folder: Message-ID, body hash and flags), nothing
//! deleted that mailserver2 never saw, nothing doubled. The hold is lifted, the next mirror
//! pass makes mailserver2 identical again, and a second return changes nothing.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use posta::client::imap::ImapClient;
use posta::migrate::message::{body_hash, message_id};
use support::example_site::MigrateSite;
use support::mirror::{self, Folder, rt, session, snapshot};
use support::run::{Run, posta_command, posta_site};
use support::{Bind, Ca, Dovecot, Primary};

const PRIMARY_ADMIN_PW: &str = "pr-ms1-admin";
const BACKUP_ADMIN_PW: &str = "pr-ms2-admin";
const ZONE: &str = "example.org";
/// Five folders: nested, and one with a non-ASCII name ("Facturación", modified UTF-7).
const FOLDERS: [(Option<&str>, usize); 5] = [
    (None, 20),
    (Some("Proyectos"), 12),
    (Some("Proyectos.2026"), 10),
    (Some("Facturaci&APM-n"), 8),
    (Some("Archivo"), 6),
];

fn message(user: &str, folder: &str, i: usize) -> Vec<u8> {
    let mut m = format!(
        "Message-ID: <ret.{user}.{folder}.{i}@example.net>\r\nFrom: sender{i}@example.net\r\n\
         To: {user}@{ZONE}\r\nSubject: {folder} {i}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n"
    );
    for line in 0..10 {
        m.push_str(&format!("line {line} of {user}'s {folder} message {i}\r\n"));
    }
    m.into_bytes()
}

/// The migrate site of the example, then a DNS-mode takeover against `bind` (mailserver1's A
/// record), no hooks and no notices (tests/notify.rs covers those).
fn site(
    dir: &Path,
    primary: &Primary,
    backup: &Dovecot,
    bind: &Bind,
    users: &[(String, String)],
) -> PathBuf {
    mirror::admin_password_files(dir, PRIMARY_ADMIN_PW, BACKUP_ADMIN_PW);
    let accounts = mirror::accounts(users.iter().map(|(u, _)| u.as_str()));
    let path = MigrateSite {
        primary: &[
            format!("imaps:{}", primary.dovecot.imaps_port()),
            format!("smtp:{}", primary.postfix.smtp_port()),
        ],
        backup: &[format!("imaps:{}", backup.imaps_port())],
        maildir: None,
        migrate: mirror::ADMINS,
        accounts: &accounts,
    }
    .write(dir);
    let key = dir.join("tsig.key");
    fs::copy(bind.key_file(), &key).expect("copy the TSIG key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut site: toml::Table = fs::read_to_string(&path)
        .expect("read site")
        .parse()
        .expect("site TOML");
    let table = |site: &mut toml::Table, name: &str| -> toml::Table {
        site.get(name)
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_else(|| panic!("the example has no [{name}]"))
    };
    let mut takeover = table(&mut site, "takeover");
    takeover.insert("mode".into(), "dns".into());
    site.insert("takeover".into(), takeover.into());
    let mut dns = table(&mut site, "dns");
    dns.insert("server".into(), bind.addr().to_string().into());
    dns.insert("zone".into(), ZONE.into());
    dns.insert("name".into(), format!("mail.{ZONE}").into());
    dns.insert("tsig_key_file".into(), key.display().to_string().into());
    site.insert("dns".into(), dns.into());
    let mut hooks = table(&mut site, "hooks");
    hooks.insert("post_takeover".into(), toml::Value::Array(Vec::new()));
    site.insert("hooks".into(), hooks.into());
    site.remove("notify");
    fs::write(&path, toml::to_string(&site).expect("TOML")).expect("write site");
    path
}

/// The UIDs of `folder` whose Message-ID names message `i` of `folder`, in order.
async fn uids_of(c: &mut ImapClient, user: &str, folder: &str, seq: &[usize]) -> Vec<u32> {
    c.select(folder, false).await.expect("select");
    let mut out = Vec::new();
    for i in seq {
        let id = format!("ret.{user}.{folder}.{i}@example.net");
        let found = c
            .uid_search(&format!("HEADER Message-ID \"{id}\""))
            .await
            .expect("search");
        assert_eq!(found.len(), 1, "{id} in {folder}");
        out.push(found[0]);
    }
    out
}

/// The servers, the site file, and what mailserver1 must hold after the return.
struct Outage {
    primary: Primary,
    backup: Dovecot,
    _bind: Bind,
    dir: tempfile::TempDir,
    site: PathBuf,
    users: Vec<(String, String)>,
    want: BTreeMap<String, BTreeMap<String, Folder>>,
}

impl Outage {
    /// Everything up to the failback, at `scale` (messages and changes per user scale with
    /// it): `users` accounts of five folders mirrored; three late messages and a flag on
    /// mailserver1 no pass saw (first user); the takeover; on mailserver2 every user reads
    /// 2 x scale and flags scale messages in INBOX, moves 5 x scale from INBOX to Archivo and
    /// 5 x scale from Proyectos into a new folder, deletes 5 x scale and receives 30; then
    /// mailserver1 back and the failback.
    fn through_failback(users: usize, scale: usize) -> Outage {
        let ca = Ca::get();
        let users: Vec<(String, String)> = (0..users)
            .map(|n| (format!("pr-user{n}"), format!("pr-user{n}-pw")))
            .collect();
        let pairs: Vec<(&str, &str)> = users
            .iter()
            .map(|(u, p)| (u.as_str(), p.as_str()))
            .collect();
        let mut primary = Primary::start_with_master(ca, &pairs, ("admin", PRIMARY_ADMIN_PW));
        let backup = Dovecot::start_with_master(ca, &pairs, ("admin", BACKUP_ADMIN_PW));
        let bind = Bind::start(
            ZONE,
            &format!("{}mail IN A 192.0.2.10\n", Bind::minimal_zone(ZONE)),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let site = site(dir.path(), &primary, &backup, &bind, &users);
        let t = SystemTime::now() - Duration::from_secs(86_400);
        for (user, _) in &users {
            for (folder, n) in FOLDERS {
                for i in 0..n * scale {
                    let flags = if i % 3 == 0 { "S" } else { "" };
                    let keywords: &[&str] = if i % 5 == 1 { &["$Work"] } else { &[] };
                    let m = message(user, folder.unwrap_or("INBOX"), i);
                    primary.dovecot.seed(user, folder, &m, flags, keywords, t);
                }
            }
        }
        let run = posta(&site, &["mirror", "--once", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        let rt = rt();
        for (user, pw) in &users {
            let a = rt.block_on(snapshot(&primary.dovecot, user, pw));
            let b = rt.block_on(snapshot(&backup, user, pw));
            assert_eq!(a, b, "{user}: the mirror is identical before the outage");
            assert_eq!(a.len(), 5, "{user}: five folders");
        }

        // Just before the crash, mailserver1 gets three messages and a flag no pass saw.
        let (first, first_pw) = users[0].clone();
        rt.block_on(async {
            let mut c = session(&primary.dovecot, &first, &first_pw).await;
            for i in 0..3 {
                c.append("INBOX", &[], None, &message(&first, "late", i))
                    .await
                    .expect("append");
            }
            let u = uids_of(&mut c, &first, "Archivo", &[2]).await;
            c.store_flags(&u, &["\\Flagged".into()])
                .await
                .expect("flag");
            c.logout().await.expect("logout");
        });

        // The crash, and the takeover: the mirror goes on hold.
        primary.dovecot.stop();
        let taken = posta(&site, &["takeover"]);
        assert_eq!(taken.code, 0, "{taken:?}");
        let held = posta(&site, &["mirror", "--once"]);
        assert_eq!(held.code, 1, "{held:?}");
        assert!(held.stderr.contains("on hold since"), "{held:?}");

        // The outage, on mailserver2.
        for (user, pw) in &users {
            rt.block_on(outage_actions(&backup, user, pw, scale));
        }
        let now = SystemTime::now();
        for (user, _) in &users {
            for i in 0..30 {
                backup.seed(user, None, &message(user, "outage", i), "", &[], now);
            }
        }
        // What each user leaves on mailserver2 is what mailserver1 must hold after the
        // return, with what reached mailserver1 before the crash.
        let mut want: BTreeMap<String, BTreeMap<String, Folder>> = users
            .iter()
            .map(|(u, pw)| (u.clone(), rt.block_on(snapshot(&backup, u, pw))))
            .collect();
        let mine = want.get_mut(&first).expect("first user");
        let inbox = mine.get_mut("INBOX").expect("INBOX");
        for i in 0..3 {
            let m = message(&first, "late", i);
            inbox.push((message_id(&m).unwrap(), body_hash(&m), Vec::new()));
        }
        inbox.sort();
        let flagged = format!("<ret.{first}.Archivo.2@example.net>");
        let archivo = mine.get_mut("Archivo").expect("Archivo");
        for m in archivo.iter_mut().filter(|m| m.0 == flagged) {
            m.2.push("\\Flagged".into());
            m.2.sort();
        }

        // mailserver1 is back: failback.
        primary.dovecot.start_again();
        let back = posta(&site, &["failback"]);
        assert_eq!(back.code, 0, "{back:?}");
        Outage {
            primary,
            backup,
            _bind: bind,
            dir,
            site,
            users,
            want,
        }
    }

    /// mailserver1 holds exactly what the users left on mailserver2, and what reached it
    /// before the crash.
    fn assert_home(&self) {
        let rt = rt();
        for (user, pw) in &self.users {
            let got = rt.block_on(snapshot(&self.primary.dovecot, user, pw));
            let want = &self.want[user];
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{user}: folders"
            );
            for (folder, msgs) in want {
                assert_eq!(&got[folder], msgs, "{user} {folder} at mailserver1");
            }
        }
    }

    /// The hold is lifted: a mirror pass runs and makes mailserver2 identical again; a second
    /// return carries nothing back and changes nothing.
    fn assert_mirror_resumes(&self) {
        let run = posta(&self.site, &["mirror", "--once", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        let rt = rt();
        for (user, pw) in &self.users {
            let a = rt.block_on(snapshot(&self.primary.dovecot, user, pw));
            let b = rt.block_on(snapshot(&self.backup, user, pw));
            assert_eq!(a, b, "{user}: identical after the mirror resumed");
        }
        let run = posta(&self.site, &["migrate", "--return", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        for a in run.json()["return"]["accounts"]
            .as_array()
            .expect("accounts")
        {
            for key in ["moved", "deleted", "flags_changed", "folders_created"] {
                assert_eq!(a[key], 0, "{key}: {a}");
            }
        }
        self.assert_home();
    }
}

/// What a user does on mailserver2 during the outage, at `scale` (see
/// [`Outage::through_failback`]).
async fn outage_actions(backup: &Dovecot, user: &str, pw: &str, scale: usize) {
    let mut c = session(backup, user, pw).await;
    let folders = c.list().await.expect("list");
    assert_eq!(
        folders.len(),
        5,
        "{user} sees all five folders: {folders:?}"
    );
    let read: Vec<usize> = (1..1 + 2 * scale).collect();
    let uids = uids_of(&mut c, user, "INBOX", &read).await;
    c.store_flags(&uids, &["\\Seen".into()])
        .await
        .expect("read");
    let flag: Vec<usize> = (1 + 2 * scale..1 + 3 * scale).collect();
    let uids = uids_of(&mut c, user, "INBOX", &flag).await;
    c.store_flags(&uids, &["\\Flagged".into(), "\\Seen".into()])
        .await
        .expect("flag");
    let moving: Vec<usize> = (10 * scale..15 * scale).collect();
    let uids = uids_of(&mut c, user, "INBOX", &moving).await;
    assert!(c.move_uids(&uids, "Archivo").await.expect("move"));
    c.create("Nueva").await.expect("create");
    let moving: Vec<usize> = (0..5 * scale).collect();
    let uids = uids_of(&mut c, user, "Proyectos", &moving).await;
    assert!(c.move_uids(&uids, "Nueva").await.expect("move"));
    let doomed: Vec<usize> = (0..5 * scale).collect();
    let uids = uids_of(&mut c, user, "Proyectos.2026", &doomed).await;
    c.store_deleted(&uids).await.expect("delete");
    c.expunge(&uids).await.expect("expunge");
    c.logout().await.expect("logout");
}

fn posta(site: &Path, args: &[&str]) -> Run {
    posta_site(env!("CARGO_BIN_EXE_posta"), site, args)
}

#[test]
fn after_the_outage_mailserver1_holds_what_users_left_on_mailserver2() {
    let o = Outage::through_failback(2, 1);
    let run = posta(&o.site, &["migrate", "--return", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    for (n, a) in report["return"]["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .enumerate()
    {
        assert_eq!(a["account"], o.users[n].0, "{a}");
        assert_eq!(
            (
                a["moved"].as_u64(),
                a["deleted"].as_u64(),
                a["folders_created"].as_u64(),
                a["flags_changed"].as_u64()
            ),
            (Some(10), Some(5), Some(1), Some(3)),
            "{a}"
        );
    }
    // The outage's mail went through mailserver1's Postfix, once each.
    assert_eq!(report["migrate"]["ok"], true, "{report}");
    o.assert_home();
    o.assert_mirror_resumes();
}

/// The return SIGKILLed again and again, each time one state save after it starts
/// (at once, or a few milliseconds on), so kills land before, inside and after each step: the run
/// after the last kill ends with mailserver1 exactly as without kills, nothing lost, nothing
/// doubled.
#[test]
fn a_return_killed_again_and_again_ends_exact() {
    let o = Outage::through_failback(5, 4);
    let out = o.dir.path().join("return.out");
    let log = o.dir.path().join("return.log");
    let saves = || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("return state saved")
            .count()
    };
    let returned = || {
        fs::read_to_string(&out)
            .unwrap_or_default()
            .contains("return:")
    };
    let mut kills = 0;
    for round in 0..60 {
        let stdout = fs::File::create(&out).expect("stdout file");
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let before = saves();
        let mut child = posta_command(env!("CARGO_BIN_EXE_posta"))
            .env("POSTA_LOG", "posta=info,posta::mirror::back=debug")
            .arg("--config")
            .arg(&o.site)
            // A resumed move waits --timeout for a killed MOVE to settle.
            .args(["migrate", "--return", "--parallel", "1", "--timeout", "2s"])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("run posta");
        let wanted = before + 1;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while child.try_wait().expect("wait").is_none() && saves() < wanted && !returned() {
            assert!(
                std::time::Instant::now() < deadline,
                "the return saved nothing"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Every other kill lands at once after the save (the next step's first command in
        // flight), the others a few milliseconds on, inside or after a step: a quiet machine
        // finishes the return in fewer runs than a loaded one, and both must land ten kills.
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis((round as u64 * 37) % 60));
        }
        if child.try_wait().expect("wait").is_none() && !returned() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            kills += 1;
            continue;
        }
        let status = child.wait().expect("reap");
        assert!(status.success(), "{}", fs::read_to_string(&out).unwrap());
        break;
    }
    if !returned() {
        let logged = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = logged.lines().rev().take(60).collect();
        panic!(
            "the return never finished: {kills} kills; the log's end:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let logged = fs::read_to_string(&log).expect("log");
    let resumed = logged.matches("interrupted run's last move").count();
    eprintln!("{kills} kills; {resumed} runs resumed a recorded move");
    assert!(kills >= 10, "only {kills} kills landed during the return");
    o.assert_home();
    o.assert_mirror_resumes();
}
