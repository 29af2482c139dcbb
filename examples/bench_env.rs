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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (env_file, initial) = match args.as_slice() {
        [file] => (file, None),
        [file, n, size] => (file, Some(dataset(n, size))),
        _ => {
            eprintln!("usage: bench_env ENV_FILE [MESSAGES SIZE]");
            std::process::exit(2);
        }
    };
    let ca = Ca::get();
    let source = Dovecot::start(ca, &[(USER, PASSWORD)]);
    let primary = Primary::start(ca, &[(USER, PASSWORD)]);
    let mut seeder = Seeder::default();
    if let Some((n, size)) = initial {
        seeder.reseed(&source, &primary, n, size);
    }

    let dir = tempfile::tempdir().expect("failed to create a temp dir");
    let password_file = dir.path().join("password");
    fs::write(&password_file, format!("{PASSWORD}\n")).expect("failed to write the password");
    fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600))
        .expect("failed to chmod the password file");
    let vars = [
        ("SRC_IMAP_PORT", source.imap_port().to_string()),
        ("SRC_IMAPS_PORT", source.imaps_port().to_string()),
        ("SRC_POP3_PORT", source.pop3_port().to_string()),
        ("SRC_POP3S_PORT", source.pop3s_port().to_string()),
        ("SRC_MAILDIR", source.maildir(USER).display().to_string()),
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
            primary.dovecot.maildir(USER).display().to_string(),
        ),
        (
            "DST_DOVECOT_LOG",
            primary.dovecot.log().display().to_string(),
        ),
        ("POSTFIX_CONF", primary.postfix.conf().display().to_string()),
        ("POSTFIX_LOG", primary.postfix.log().display().to_string()),
        ("MAIL_USER", USER.to_owned()),
        ("RCPT", format!("{USER}@{}", support::primary::DOMAIN)),
        ("CA_FILE", ca.ca_pem().display().to_string()),
        ("PASSWORD_FILE", password_file.display().to_string()),
    ];
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
                seeder.reseed(&source, &primary, n, size);
                "ok".to_owned()
            }
            ["count"] => format!(
                "{} {}",
                maildir::count(&source.maildir(USER), None),
                maildir::count(&primary.dovecot.maildir(USER), None)
            ),
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
    fn reseed(&mut self, source: &Dovecot, primary: &Primary, n: usize, size: usize) {
        self.generation += 1;
        source.clear(USER, None);
        primary.dovecot.clear(USER, None);
        let now = SystemTime::now();
        for i in 0..n {
            // One message a minute up to now; the newest tenth is still unread.
            let minutes = u64::try_from(n - i).expect("message count fits u64");
            let date = now - Duration::from_secs(60 * minutes);
            let flags = if i < n - n / 10 { "S" } else { "" };
            let message = self.message(i, n, size, date);
            source.seed(USER, None, &message, flags, &[], date);
        }
    }

    fn message(&self, i: usize, n: usize, size: usize, date: SystemTime) -> Vec<u8> {
        let sender = i % 37;
        let date = rfc5322_date(date);
        let mut text = format!(
            "Return-Path: <sender{sender}@bench.example.net>\n\
             Delivered-To: alice@example.org\n\
             Received: from mx.bench.example.net (mx.bench.example.net [192.0.2.10])\n\
             \tby mail2.example.org (Postfix) with ESMTPS id B{generation}Q{i}\n\
             \tfor <alice@example.org>; {date}\n\
             Message-ID: <{generation}.{i}.bench@bench.example.net>\n\
             Date: {date}\n\
             From: Sender {sender} <sender{sender}@bench.example.net>\n\
             To: Alice <alice@example.org>\n\
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
