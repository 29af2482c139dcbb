//! The servers behind scripts/bench/migrate.sh, in one process: mailserver2 (a Dovecot, the
//! source) and mailserver1 (Postfix delivering over LMTP into a Dovecot, for example.org), both
//! with user alice, on loopback; the same test support code the integration tests use.
//!
//! `bench_env ENV_FILE [MESSAGES SIZE]` starts both, seeds MESSAGES messages of SIZE bytes into
//! the source INBOX, writes ENV_FILE (shell variables: ports, Maildirs, CA and password files,
//! Postfix's config), prints `ready`, then answers commands on stdin until stdin closes:
//!
//! - `reseed N SIZE`: empties both INBOXes, seeds N fresh messages of SIZE bytes into the
//!   source, prints `ok`. Lets one bench run give several tools the same data.
//! - `count`: prints the number of messages in the source and destination INBOX, `SRC DST`.
//!
//! `bench_env ENV_FILE --accounts N` is a whole site instead: users `user00`... on both
//! servers, each Dovecot with a master user `admin` (one credential per side, as an
//! administrator migrates), the admin password files and the source's Maildir root in
//! ENV_FILE. `reseed N SIZE` then seeds N messages into every account's INBOX, and `count`
//! sums over the accounts.
//!
//! With `POSTA_BENCH_MS2_DIR` set, mailserver2's Dovecot keeps its directory (mail, indexes)
//! under it: a file system of its own, as a second host has (scripts/bench/migrate.sh and
//! mirror.sh).
//!
//! Site mode also serves scripts/bench/mirror.sh, where mailserver1 (the primary's Dovecot)
//! is mirrored onto mailserver2 (the other Dovecot):
//!
//! - `mirror-seed N SIZE`: empties mailserver2's mailboxes (folders and all), and gives every
//!   account on mailserver1 N fresh messages of SIZE bytes spread over [`MIRROR_FOLDERS`]
//!   (nested, one non-ASCII name), a third of them read, one in ten flagged.
//! - `mirror-change`: on mailserver1, changes 1% of every account's messages as its users
//!   would: for each 100 messages, 2 new ones, and one each flagged, moved to another folder
//!   and expunged.
//! - `mirror-count`: the messages on mailserver1 and on mailserver2 over every account and
//!   folder, `MS1 MS2`.
//!
//! A seeded message is a delivered RFC 5322 message (Return-Path, Delivered-To, Received,
//! Message-ID, Date, MIME text/plain) of exactly SIZE bytes on disk, body in 76-character lines.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Ca, Dovecot, Primary, maildir};

/// The folders of a mirrored account: IMAP names with `.` as separator, modified UTF-7
/// (`A&APE-o` is `Año`).
const MIRROR_FOLDERS: [Option<&str>; 5] = [
    None,
    Some("Archivo"),
    Some("Archivo.2025"),
    Some("Proyectos.A&APE-o 2026"),
    Some("Enviados"),
];

/// Where mailserver2's Dovecot keeps its directory (mail, indexes), when set: a file system
/// of its own, as a second host has. Otherwise the temp dir, beside mailserver1's servers.
const SOURCE_DIR_VAR: &str = "POSTA_BENCH_MS2_DIR";

const USER: &str = "alice";
const PASSWORD: &str = "alice-bench-pw";
const SOURCE_ADMIN_PW: &str = "ms2-admin-bench-pw";
const DEST_ADMIN_PW: &str = "ms1-admin-bench-pw";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (env_file, initial, site) = match args.as_slice() {
        [file] => (file, None, None),
        [file, flag, n] if flag == "--accounts" => (file, None, Some(dataset(n, "0").0)),
        [file, n, size] => (file, Some(dataset(n, size)), None),
        _ => {
            eprintln!("usage: bench_env ENV_FILE [MESSAGES SIZE | --accounts N]");
            std::process::exit(2);
        }
    };
    let users: Vec<(String, String)> = match site {
        Some(n) => (0..n)
            .map(|i| (format!("user{i:02}"), format!("user{i:02}-bench-pw")))
            .collect(),
        None => vec![(USER.to_owned(), PASSWORD.to_owned())],
    };
    let pairs: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let ca = Ca::get();
    let source_master = site.map(|_| ("admin", SOURCE_ADMIN_PW));
    let source = match (std::env::var_os(SOURCE_DIR_VAR), source_master) {
        (Some(parent), _) => Dovecot::start_under(Path::new(&parent), ca, &pairs, source_master),
        (None, Some(master)) => Dovecot::start_with_master(ca, &pairs, master),
        (None, None) => Dovecot::start(ca, &pairs),
    };
    let primary = if site.is_some() {
        Primary::start_with_master(ca, &pairs, ("admin", DEST_ADMIN_PW))
    } else {
        Primary::start(ca, &pairs)
    };
    let names: Vec<&str> = pairs.iter().map(|(u, _)| *u).collect();
    let mut seeder = Seeder::default();
    if let Some((n, size)) = initial {
        seeder.reseed(&source, &primary, &names, n, size);
    }

    let dir = tempfile::tempdir().expect("failed to create a temp dir");
    let secret = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, format!("{text}\n")).expect("failed to write a password file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .expect("failed to chmod a password file");
        path.display().to_string()
    };
    let password_file = secret("password", pairs[0].1);
    let mut vars = vec![
        ("SRC_IMAP_PORT", source.imap_port().to_string()),
        ("SRC_IMAPS_PORT", source.imaps_port().to_string()),
        ("SRC_POP3_PORT", source.pop3_port().to_string()),
        ("SRC_POP3S_PORT", source.pop3s_port().to_string()),
        (
            "SRC_MAILDIR",
            source.maildir(names[0]).display().to_string(),
        ),
        ("SRC_DOVECOT_LOG", source.log().display().to_string()),
        ("DST_SMTP_PORT", primary.postfix.smtp_port().to_string()),
        (
            "DST_SUBMISSION_PORT",
            primary.postfix.submission_port().to_string(),
        ),
        ("DST_LMTP_PORT", primary.dovecot.lmtp_port().to_string()),
        ("DST_IMAP_PORT", primary.dovecot.imap_port().to_string()),
        ("DST_IMAPS_PORT", primary.dovecot.imaps_port().to_string()),
        (
            "DST_MAILDIR",
            primary.dovecot.maildir(names[0]).display().to_string(),
        ),
        (
            "DST_DOVECOT_LOG",
            primary.dovecot.log().display().to_string(),
        ),
        ("SRC_DOVECOT_DIR", source.path().display().to_string()),
        (
            "DST_DOVECOT_DIR",
            primary.dovecot.path().display().to_string(),
        ),
        ("POSTFIX_DIR", primary.postfix.path().display().to_string()),
        ("POSTFIX_CONF", primary.postfix.conf().display().to_string()),
        ("POSTFIX_LOG", primary.postfix.log().display().to_string()),
        ("MAIL_USER", names[0].to_owned()),
        ("RCPT", format!("{}@{}", names[0], support::primary::DOMAIN)),
        ("CA_FILE", ca.ca_pem().display().to_string()),
        ("PASSWORD_FILE", password_file),
    ];
    if let Some(n) = site {
        vars.extend([
            ("ACCOUNTS", n.to_string()),
            (
                "SRC_MAIL_ROOT",
                source.path().join("mail").display().to_string(),
            ),
            (
                "SRC_ADMIN_PASSWORD_FILE",
                secret("ms2-admin", SOURCE_ADMIN_PW),
            ),
            (
                "DST_ADMIN_PASSWORD_FILE",
                secret("ms1-admin", DEST_ADMIN_PW),
            ),
        ]);
    }
    let text: String = vars
        .iter()
        .map(|(name, value)| format!("{name}='{value}'\n"))
        .collect();
    fs::write(env_file, text).expect("failed to write the env file");

    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("failed to write to stdout");
    out.flush().expect("failed to flush stdout");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("failed to read stdin");
        let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["reseed", n, size] => {
                let (n, size) = dataset(n, size);
                seeder.reseed(&source, &primary, &names, n, size);
                "ok".to_owned()
            }
            ["mirror-seed", n, size] => {
                let (n, size) = dataset(n, size);
                seeder.mirror_seed(&source, &primary, &names, n, size);
                "ok".to_owned()
            }
            ["mirror-change"] => {
                seeder.mirror_change(&primary, &names);
                "ok".to_owned()
            }
            ["mirror-count"] => {
                let sum = |d: &Dovecot| -> usize {
                    names
                        .iter()
                        .flat_map(|u| MIRROR_FOLDERS.map(|f| maildir::count(&d.maildir(u), f)))
                        .sum()
                };
                format!("{} {}", sum(&primary.dovecot), sum(&source))
            }
            ["count"] => {
                let sum = |d: &Dovecot| -> usize {
                    names
                        .iter()
                        .map(|u| maildir::count(&d.maildir(u), None))
                        .sum()
                };
                format!("{} {}", sum(&source), sum(&primary.dovecot))
            }
            _ => format!(
                "error: unknown command {line:?} (reseed N SIZE | count | mirror-seed N SIZE | \
                 mirror-change | mirror-count)"
            ),
        };
        writeln!(out, "{reply}").expect("failed to write to stdout");
        out.flush().expect("failed to flush stdout");
    }
}

fn dataset(n: &str, size: &str) -> (usize, usize) {
    let parse = |text: &str, what: &str| {
        text.parse().unwrap_or_else(|_| {
            eprintln!("bench_env: {what} must be a whole number, got {text:?}");
            std::process::exit(2);
        })
    };
    (parse(n, "MESSAGES"), parse(size, "SIZE"))
}

/// Makes the messages; counts reseeds so every dataset has its own Message-IDs.
#[derive(Default)]
struct Seeder {
    generation: u32,
}

impl Seeder {
    /// Empties every user's INBOX on both sides and seeds `n` messages into each on the source.
    fn reseed(
        &mut self,
        source: &Dovecot,
        primary: &Primary,
        users: &[&str],
        n: usize,
        size: usize,
    ) {
        self.generation += 1;
        let now = SystemTime::now();
        for user in users {
            source.clear(user, None);
            primary.dovecot.clear(user, None);
            for i in 0..n {
                // One message a minute up to now; the newest tenth is still unread.
                let minutes = u64::try_from(n - i).expect("message count fits u64");
                let date = now - Duration::from_secs(60 * minutes);
                let flags = if i < n - n / 10 { "S" } else { "" };
                let message = self.message(user, i, n, size, date);
                source.seed(user, None, &message, flags, &[], date);
            }
        }
    }

    /// Wipes every account on mailserver2 (the `source` Dovecot here) and seeds `n` messages
    /// per account over [`MIRROR_FOLDERS`] on mailserver1.
    fn mirror_seed(
        &mut self,
        mailserver2: &Dovecot,
        primary: &Primary,
        users: &[&str],
        n: usize,
        size: usize,
    ) {
        self.generation += 1;
        let now = SystemTime::now();
        for user in users {
            wipe(&mailserver2.maildir(user));
            wipe(&primary.dovecot.maildir(user));
            for i in 0..n {
                let minutes = u64::try_from(n - i).expect("message count fits u64");
                let date = now - Duration::from_secs(60 * minutes);
                let flags = match i % 10 {
                    0 => "FS",
                    1..=3 => "S",
                    _ => "",
                };
                let folder = MIRROR_FOLDERS[i % MIRROR_FOLDERS.len()];
                let message = self.message(user, i, n, size, date);
                primary
                    .dovecot
                    .seed(user, folder, &message, flags, &[], date);
            }
        }
    }

    /// 1% of every account's messages on mailserver1 change: per 100, two new, one flagged,
    /// one moved, one expunged (directly in the Maildirs; Dovecot sees it at its next sync).
    fn mirror_change(&mut self, primary: &Primary, users: &[&str]) {
        self.generation += 1;
        let now = SystemTime::now();
        for user in users {
            let root = primary.dovecot.maildir(user);
            let all: Vec<(Option<&str>, maildir::StoredMessage)> = MIRROR_FOLDERS
                .iter()
                .flat_map(|f| maildir::messages(&root, *f).into_iter().map(|m| (*f, m)))
                .collect();
            let hundreds = all.len().div_ceil(100);
            for h in 0..hundreds {
                for k in 0..2 {
                    let i = h * 2 + k;
                    let message = self.message(user, i, 2 * hundreds, 2000, now);
                    primary.dovecot.seed(user, None, &message, "", &[], now);
                }
                // Three distinct messages of this hundred: flag, move, expunge.
                let pick = |j: usize| all.get(h * 100 + j * 31).map(|(f, m)| (*f, &m.path));
                if let Some((_, path)) = pick(0) {
                    set_flags(path, "FS");
                }
                if let Some((from, path)) = pick(1) {
                    let to = MIRROR_FOLDERS
                        .iter()
                        .find(|f| **f != from)
                        .copied()
                        .flatten();
                    let dir = match to {
                        None => root.clone(),
                        Some(name) => root.join(format!(".{name}")),
                    };
                    let name = path.file_name().expect("a message file has a name");
                    fs::rename(path, dir.join("cur").join(name)).expect("failed to move a message");
                }
                if let Some((_, path)) = pick(2) {
                    fs::remove_file(path).expect("failed to expunge a message");
                }
            }
        }
    }

    fn message(&self, user: &str, i: usize, n: usize, size: usize, date: SystemTime) -> Vec<u8> {
        let sender = i % 37;
        let date = rfc5322_date(date);
        let mut text = format!(
            "Return-Path: <sender{sender}@bench.example.net>\n\
             Delivered-To: {user}@example.org\n\
             Received: from mx.bench.example.net (mx.bench.example.net [192.0.2.10])\n\
             \tby mail2.example.org (Postfix) with ESMTPS id B{generation}Q{i}\n\
             \tfor <{user}@example.org>; {date}\n\
             Message-ID: <{generation}.{i}.{user}.bench@bench.example.net>\n\
             Date: {date}\n\
             From: Sender {sender} <sender{sender}@bench.example.net>\n\
             To: <{user}@example.org>\n\
             Subject: Benchmark message {number} of {n}\n\
             MIME-Version: 1.0\n\
             Content-Type: text/plain; charset=us-ascii\n\
             Content-Transfer-Encoding: 7bit\n\n",
            generation = self.generation,
            number = i + 1,
        );
        let mut words = Words((0x9e37_79b9_7f4a_7c15 ^ ((i as u64) << 1)) | 1);
        while text.len() < size {
            let mut line = String::with_capacity(80);
            while line.len() < 70 {
                let word = words.next();
                if line.len() + word.len() + 1 > 76 {
                    break;
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
            let room = size - text.len() - 1;
            line.truncate(room.min(line.len()));
            let _ = writeln!(text, "{line}");
        }
        text.into_bytes()
    }
}

/// Removes a Maildir with its folders and Dovecot's files, and makes an empty one owned by the
/// mail user: the account as a fresh server has it.
fn wipe(root: &std::path::Path) {
    if root.exists() {
        fs::remove_dir_all(root).expect("failed to remove a Maildir");
    }
    let (uid, gid) = support::sys::vmail_ids();
    for sub in ["", "cur", "new", "tmp"] {
        let dir = root.join(sub);
        fs::create_dir_all(&dir).expect("failed to create a Maildir");
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("failed to chown a Maildir");
    }
}

/// Gives the message file at `path` the maildir flag letters `flags` (moving it to `cur/`).
fn set_flags(path: &std::path::Path, flags: &str) {
    let name = path
        .file_name()
        .expect("a message file has a name")
        .to_string_lossy();
    let base = name.split_once(":2,").map_or(&*name, |(base, _)| base);
    let folder = path
        .parent()
        .and_then(std::path::Path::parent)
        .expect("a message file is in cur/ or new/");
    fs::rename(path, folder.join("cur").join(format!("{base}:2,{flags}")))
        .expect("failed to flag a message");
}

/// Lorem-ipsum-like words from a xorshift generator: cheap, varied, deterministic.
struct Words(u64);

impl Words {
    const LIST: [&str; 32] = [
        "the",
        "meeting",
        "agenda",
        "budget",
        "report",
        "please",
        "review",
        "attached",
        "quarter",
        "numbers",
        "thanks",
        "regards",
        "project",
        "deadline",
        "customer",
        "server",
        "migration",
        "mailbox",
        "schedule",
        "tomorrow",
        "update",
        "draft",
        "invoice",
        "contract",
        "team",
        "office",
        "question",
        "answer",
        "monday",
        "friday",
        "and",
        "with",
    ];

    fn next(&mut self) -> &'static str {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Self::LIST[(self.0 % Self::LIST.len() as u64) as usize]
    }
}

/// `Tue, 04 Mar 2021 05:06:07 +0000` (RFC 5322 section 3.3), in UTC.
fn rfc5322_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .expect("date before 1970")
        .as_secs();
    let days = i64::try_from(secs / 86_400).expect("date fits i64");
    let (hour, minute, second) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil from days (Howard Hinnant's algorithm): March-based years, proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month_name} {year} {hour:02}:{minute:02}:{second:02} +0000")
}
