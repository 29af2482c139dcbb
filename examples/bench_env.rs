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
//! A seeded message is a delivered RFC 5322 message (Return-Path, Delivered-To, Received,
//! Message-ID, Date, MIME text/plain) of exactly SIZE bytes on disk, body in 76-character lines.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Ca, Dovecot, Primary, maildir};

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
    let (source, primary) = if site.is_some() {
        (
            Dovecot::start_with_master(ca, &pairs, ("admin", SOURCE_ADMIN_PW)),
            Primary::start_with_master(ca, &pairs, ("admin", DEST_ADMIN_PW)),
        )
    } else {
        (Dovecot::start(ca, &pairs), Primary::start(ca, &pairs))
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
            ["count"] => {
                let sum = |d: &Dovecot| -> usize {
                    names
                        .iter()
                        .map(|u| maildir::count(&d.maildir(u), None))
                        .sum()
                };
                format!("{} {}", sum(&source), sum(&primary.dovecot))
            }
            _ => format!("error: unknown command {line:?} (reseed N SIZE | count)"),
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
