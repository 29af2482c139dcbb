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
use posta::client::{Endpoint, Login};
use posta::health::{StartTls, TlsPolicy};
use posta::migrate::message::{body_hash, message_id};
use posta::secret::Secret;
use support::example_site::MigrateSite;
use support::run::{Run, posta_command};
use support::{Bind, Ca, Dovecot, Primary};

const PRIMARY_ADMIN_PW: &str = "pr-ms1-admin";
const BACKUP_ADMIN_PW: &str = "pr-ms2-admin";
const ZONE: &str = "example.org";
const USERS: [(&str, &str); 2] = [("pr-alice", "pr-alice-pw"), ("pr-bob", "pr-bob-pw")];
/// Five folders: nested, and one with a non-ASCII name ("Facturación", modified UTF-7).
const FOLDERS: [(Option<&str>, usize); 5] = [
    (None, 20),
    (Some("Proyectos"), 12),
    (Some("Proyectos.2026"), 10),
    (Some("Facturaci&APM-n"), 8),
    (Some("Archivo"), 6),
];

/// One folder as compared: sorted (Message-ID, body hash, sorted flags).
type Folder = Vec<(String, String, Vec<String>)>;

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

fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        implicit_tls: true,
        starttls: StartTls::No,
        tls: TlsPolicy {
            ca_file: Some(Ca::get().ca_pem()),
            server_name: Some("localhost".into()),
            ..TlsPolicy::default()
        },
        timeout: Duration::from_secs(30),
    }
}

async fn session(server: &Dovecot, user: &str, password: &str) -> ImapClient {
    let mut c = ImapClient::connect(&endpoint(server.imaps_port()))
        .await
        .expect("connect");
    c.login(&Login::own(user, Secret::new(password)))
        .await
        .expect("login");
    c
}

/// Every selectable folder of `user` (by wire name) with its messages.
async fn snapshot(server: &Dovecot, user: &str, password: &str) -> BTreeMap<String, Folder> {
    let mut c = session(server, user, password).await;
    let mut out = BTreeMap::new();
    for m in c.list().await.expect("list") {
        if m.noselect {
            continue;
        }
        c.select(&m.raw_name, true).await.expect("examine");
        let uids = c.uid_search("ALL").await.expect("search");
        let mut folder = Vec::new();
        c.start_fetch(&uids).await.expect("fetch");
        while let Some(msg) = c.next_message().await.expect("message") {
            let mut flags = msg.flags.clone();
            flags.sort();
            let id = message_id(&msg.body).unwrap_or_default();
            folder.push((id, body_hash(&msg.body), flags));
        }
        folder.sort();
        out.insert(m.raw_name, folder);
    }
    c.logout().await.expect("logout");
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

/// The migrate site of the example, then a DNS-mode takeover against `bind` (mailserver1's A
/// record), no hooks and no notices (tests/notify.rs covers those).
fn site(dir: &Path, primary: &Primary, backup: &Dovecot, bind: &Bind) -> PathBuf {
    for (name, pw) in [
        ("primary-admin.pw", PRIMARY_ADMIN_PW),
        ("backup-admin.pw", BACKUP_ADMIN_PW),
    ] {
        let path = dir.join(name);
        fs::write(&path, format!("{pw}\n")).expect("write password file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let accounts: String = USERS
        .iter()
        .map(|(u, _)| {
            format!("[[migrate.accounts]]\nuser = \"{u}\"\ndeliver_to = \"{u}@{ZONE}\"\n")
        })
        .collect();
    let path = MigrateSite {
        primary: &[
            format!("imaps:{}", primary.dovecot.imaps_port()),
            format!("smtp:{}", primary.postfix.smtp_port()),
        ],
        backup: &[format!("imaps:{}", backup.imaps_port())],
        maildir: None,
        migrate: "source_admin = { user = \"admin\", password_file = \"backup-admin.pw\" }\n\
                  dest_admin = { user = \"admin\", password_file = \"primary-admin.pw\" }\n",
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

fn posta(site: &Path, args: &[&str]) -> Run {
    let out = posta_command(env!("CARGO_BIN_EXE_posta"))
        .arg("--config")
        .arg(site)
        .args(args)
        .output()
        .expect("run posta");
    Run::from_output(out)
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

#[test]
fn after_the_outage_mailserver1_holds_what_users_left_on_mailserver2() {
    let ca = Ca::get();
    let mut primary = Primary::start_with_master(ca, &USERS, ("admin", PRIMARY_ADMIN_PW));
    let backup = Dovecot::start_with_master(ca, &USERS, ("admin", BACKUP_ADMIN_PW));
    let bind = Bind::start(
        ZONE,
        &format!("{}mail IN A 192.0.2.10\n", Bind::minimal_zone(ZONE)),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let site = site(dir.path(), &primary, &backup, &bind);
    let t = SystemTime::now() - Duration::from_secs(86_400);
    for (user, _) in USERS {
        for (folder, n) in FOLDERS {
            for i in 0..n {
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
    for (user, pw) in USERS {
        let a = rt.block_on(snapshot(&primary.dovecot, user, pw));
        let b = rt.block_on(snapshot(&backup, user, pw));
        assert_eq!(a, b, "{user}: the mirror is identical before the outage");
        assert_eq!(a.len(), 5, "{user}: five folders");
    }

    // Just before the crash, mailserver1 gets three messages and a flag no pass saw.
    let (alice, alice_pw) = USERS[0];
    rt.block_on(async {
        let mut c = session(&primary.dovecot, alice, alice_pw).await;
        for i in 0..3 {
            c.append("INBOX", &[], None, &message(alice, "late", i))
                .await
                .expect("append");
        }
        let u = uids_of(&mut c, alice, "Archivo", &[2]).await;
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

    // The outage, on mailserver2: alice reads, flags, moves, deletes, makes a folder; both
    // receive mail.
    rt.block_on(async {
        let mut c = session(&backup, alice, alice_pw).await;
        let folders: Vec<String> = c
            .list()
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.raw_name)
            .collect();
        assert_eq!(folders.len(), 5, "alice sees all five folders: {folders:?}");
        // Reads two and flags one in INBOX.
        let inbox = uids_of(&mut c, alice, "INBOX", &[1, 2, 4]).await;
        c.store_flags(&inbox[..2], &["\\Seen".into()])
            .await
            .expect("read");
        c.store_flags(&inbox[2..], &["\\Flagged".into(), "\\Seen".into()])
            .await
            .expect("flag");
        // Five from INBOX to Archivo.
        let moving = uids_of(&mut c, alice, "INBOX", &[10, 11, 12, 13, 14]).await;
        assert!(c.move_uids(&moving, "Archivo").await.expect("move"));
        // A new folder, and five from Proyectos into it.
        c.create("Nueva").await.expect("create");
        let moving = uids_of(&mut c, alice, "Proyectos", &[0, 1, 2, 3, 4]).await;
        assert!(c.move_uids(&moving, "Nueva").await.expect("move"));
        // Five deleted.
        let doomed = uids_of(&mut c, alice, "Proyectos.2026", &[0, 1, 2, 3, 4]).await;
        c.store_deleted(&doomed).await.expect("delete");
        c.expunge(&doomed).await.expect("expunge");
        c.logout().await.expect("logout");
    });
    let now = SystemTime::now();
    for (user, _) in USERS {
        for i in 0..15 {
            backup.seed(user, None, &message(user, "outage", i), "", &[], now);
        }
    }
    // What each user leaves on mailserver2, and what mailserver1 must hold after the return.
    let mut want: BTreeMap<&str, BTreeMap<String, Folder>> = USERS
        .iter()
        .map(|(u, pw)| (*u, rt.block_on(snapshot(&backup, u, pw))))
        .collect();
    let alice_inbox = want
        .get_mut(alice)
        .and_then(|f| f.get_mut("INBOX"))
        .expect("INBOX");
    for i in 0..3 {
        let m = message(alice, "late", i);
        alice_inbox.push((message_id(&m).unwrap(), body_hash(&m), Vec::new()));
    }
    alice_inbox.sort();
    let archivo = want
        .get_mut(alice)
        .and_then(|f| f.get_mut("Archivo"))
        .expect("Archivo");
    let flagged = format!("<ret.{alice}.Archivo.2@example.net>");
    for m in archivo.iter_mut().filter(|m| m.0 == flagged) {
        m.2.push("\\Flagged".into());
        m.2.sort();
    }

    // mailserver1 is back: failback, then the return.
    primary.dovecot.start_again();
    let back = posta(&site, &["failback"]);
    assert_eq!(back.code, 0, "{back:?}");
    let run = posta(&site, &["migrate", "--return", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let a = &report["return"]["accounts"][0];
    assert_eq!(a["account"], alice, "{a}");
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
    let b = &report["return"]["accounts"][1];
    assert_eq!(
        (b["moved"].as_u64(), b["deleted"].as_u64()),
        (Some(0), Some(0)),
        "{b}"
    );
    for (user, pw) in USERS {
        let got = rt.block_on(snapshot(&primary.dovecot, user, pw));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want[user].keys().collect::<Vec<_>>(),
            "{user}: folders"
        );
        for (folder, msgs) in &want[user] {
            assert_eq!(&got[folder], msgs, "{user} {folder} at mailserver1");
        }
    }

    // The hold is lifted: the mirror resumes and mailserver2 is mailserver1's copy again.
    let run = posta(&site, &["mirror", "--once", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    for (user, pw) in USERS {
        let a = rt.block_on(snapshot(&primary.dovecot, user, pw));
        let b = rt.block_on(snapshot(&backup, user, pw));
        assert_eq!(a, b, "{user}: identical after the mirror resumed");
    }
    // A second return finds nothing to carry back.
    let run = posta(&site, &["migrate", "--return", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    for a in run.json()["return"]["accounts"]
        .as_array()
        .expect("accounts")
    {
        for key in ["moved", "deleted", "flags_changed", "folders_created"] {
            assert_eq!(a[key], 0, "{key}: {a}");
        }
    }
    for (user, pw) in USERS {
        let got = rt.block_on(snapshot(&primary.dovecot, user, pw));
        assert_eq!(got, want[user], "{user}: unchanged by a second return");
    }
}
