//! What the mirror's tests share (tests/mirror*.rs, tests/watch_mirror.rs): the two admin
//! password files and `[migrate]` keys of a site with a master user on each server, IMAP
//! sessions as a user, and a mailbox's contents as the tests compare them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use posta::client::imap::ImapClient;
use posta::client::{Endpoint, Login};
use posta::health::{StartTls, TlsPolicy};
use posta::migrate::message::{body_hash, message_id};
use posta::secret::Secret;

use super::ca::Ca;
use super::dovecot::Dovecot;
use super::maildir::StoredMessage;

/// The `[migrate]` keys naming the admin (master user) of each server, whose password files
/// [`admin_password_files`] writes next to the site file.
pub const ADMINS: &str = "source_admin = { user = \"admin\", password_file = \"backup-admin.pw\" }\n\
                          dest_admin = { user = \"admin\", password_file = \"primary-admin.pw\" }\n";

/// `primary-admin.pw` and `backup-admin.pw` in `dir`, owner-only.
pub fn admin_password_files(dir: &Path, primary: &str, backup: &str) {
    for (name, pw) in [("primary-admin.pw", primary), ("backup-admin.pw", backup)] {
        let path = dir.join(name);
        fs::write(&path, format!("{pw}\n")).expect("write password file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

/// One `[[migrate.accounts]]` table per user, delivering to `user@example.org`.
pub fn accounts<'a>(users: impl IntoIterator<Item = &'a str>) -> String {
    users
        .into_iter()
        .map(|u| {
            format!("[[migrate.accounts]]\nuser = \"{u}\"\ndeliver_to = \"{u}@example.org\"\n")
        })
        .collect()
}

/// A short message with Message-ID `<id@posta.test>` for `user`.
pub fn short_message(user: &str, id: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}@posta.test>\r\nFrom: sender@example.net\r\nTo: {user}@example.org\r\n\
         Subject: {id}\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nbody of {id}\r\n"
    )
    .into_bytes()
}

/// How many of `stored` carry Message-ID `<id@posta.test>`.
pub fn count(stored: &[StoredMessage], id: &str) -> usize {
    let needle = format!("Message-ID: <{id}@posta.test>");
    stored
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.body).contains(&needle))
        .count()
}

/// The test Dovecot's implicit-TLS IMAP at `port`, verified against the test CA.
pub fn endpoint(port: u16) -> Endpoint {
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

/// An IMAP session on `server` as `user`.
pub async fn session(server: &Dovecot, user: &str, password: &str) -> ImapClient {
    let mut c = ImapClient::connect(&endpoint(server.imaps_port()))
        .await
        .expect("connect");
    c.login(&Login::own(user, Secret::new(password)))
        .await
        .expect("login");
    c
}

/// One folder as the tests compare it: sorted (Message-ID, body hash, sorted flags).
pub type Folder = Vec<(String, String, Vec<String>)>;

/// What `got` holds that `want` does not (extra) and what it lacks (missing), each as
/// (Message-ID, flags): an empty pair when the two folders are equal.
pub fn folder_diff(want: &Folder, got: &Folder) -> (Vec<String>, Vec<String>) {
    let mut missing = Vec::new();
    let mut extra: Vec<&(String, String, Vec<String>)> = got.iter().collect();
    for m in want {
        match extra.iter().position(|g| *g == m) {
            Some(i) => {
                extra.remove(i);
            }
            None => missing.push(format!("{} {:?}", m.0, m.2)),
        }
    }
    let extra = extra
        .into_iter()
        .map(|m| format!("{} {:?}", m.0, m.2))
        .collect();
    (extra, missing)
}

/// Every selectable folder of `user` (by wire name) with its messages.
pub async fn snapshot(server: &Dovecot, user: &str, password: &str) -> BTreeMap<String, Folder> {
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

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}
