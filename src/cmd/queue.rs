//! `posta queue`: list, show, flush, hold, release, delete and export the mta's queue.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{ExportFormat, QueueArgs, QueueCommand};
use crate::clock::unix_now;
use crate::config::MtaSection;
use crate::mta::control;
use crate::mta::settings::DEFAULT_CONTROL_SOCKET;
use crate::mta::spool::{Place, Spool, State};

pub fn execute(config: Option<PathBuf>, args: QueueArgs) -> u8 {
    let need_site = args.queue.is_none() || args.control_socket.is_none();
    let site = match need_site.then(|| super::mta::site_section(config)) {
        Some(Ok(site)) => site.mta.unwrap_or_default(),
        Some(Err(e)) => {
            eprintln!("posta queue: {e}");
            return EXIT_USAGE;
        }
        None => MtaSection::default(),
    };
    // Found the way `posta mta` finds it: flag or environment, the site file, the default.
    let socket = args
        .control_socket
        .clone()
        .or(site.control_socket)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
    let Some(dir) = args.queue.clone().or(site.queue) else {
        eprintln!(
            "posta queue: give --queue DIR (the directory posta mta --queue uses) or set \
             [mta] queue in the site file"
        );
        return EXIT_USAGE;
    };
    let spool = match Spool::existing(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("posta queue: {e}");
            return EXIT_USAGE;
        }
    };
    let result = match args.command {
        QueueCommand::List => list(&spool, args.json),
        QueueCommand::Show { id } => show(&spool, &id, args.json),
        QueueCommand::Flush { domain } => flush(&socket, domain.as_deref()),
        QueueCommand::Hold { ids } => each(&spool, &ids, "held", |s, id| match s.find(id) {
            Some(Place::Active) => s.move_to(id, Place::Active, Place::Hold).map(|()| true),
            Some(Place::Hold) => Ok(false),
            None => Err(not_found(id)),
        }),
        QueueCommand::Release { ids } => {
            let r = each(&spool, &ids, "released", |s, id| match s.find(id) {
                Some(Place::Hold) => s.move_to(id, Place::Hold, Place::Active).map(|()| true),
                Some(Place::Active) => Ok(false),
                None => Err(not_found(id)),
            });
            // A running mta notices within a minute anyway; a flush makes it now.
            let _ = super::runtime().block_on(control::request_flush(&socket, None));
            r
        }
        QueueCommand::Delete { ids } => each(&spool, &ids, "deleted", |s, id| match s.find(id) {
            Some(p) => s.remove(p, id).map(|()| true),
            None => Err(not_found(id)),
        }),
        QueueCommand::Export { format, to, ids } => export(&spool, format, &to, &ids),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posta queue: {e}");
            EXIT_FAILURE
        }
    }
}

fn not_found(id: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("no message {id} in the queue"),
    )
}

fn all_ids(spool: &Spool) -> std::io::Result<Vec<(Place, String)>> {
    let mut out: Vec<(Place, String)> = Vec::new();
    for place in [Place::Active, Place::Hold] {
        out.extend(spool.ids(place)?.into_iter().map(|id| (place, id)));
    }
    Ok(out)
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn list(spool: &Spool, as_json: bool) -> std::io::Result<u8> {
    let now = unix_now();
    let mut rows = Vec::new();
    let mut text = String::new();
    for (place, id) in all_ids(spool)? {
        let env = match spool.load(place, &id, false) {
            Ok((env, _)) => env,
            Err(e) => {
                eprintln!("posta queue: {e}");
                continue;
            }
        };
        let (state, state_error) = match spool.state(&id) {
            Ok(s) => (s, None),
            Err(e) => (State::default(), Some(e.to_string())),
        };
        let pending: Vec<&str> = state
            .pending(&env)
            .into_iter()
            .map(|i| env.rcpts[i].to.as_str())
            .collect();
        let from = if env.from.is_empty() { "<>" } else { &env.from };
        let age = now.saturating_sub(env.arrival);
        let next = state.next_attempt.saturating_sub(now);
        if as_json {
            rows.push(json!({
                "id": id, "place": place, "arrival": env.arrival, "size": env.size,
                "from": env.from, "pending": pending, "attempts": state.attempts,
                "next_attempt": state.next_attempt, "last_error": state.last_error,
                "state_error": state_error,
            }));
        } else {
            let held = if place == Place::Hold { " (held)" } else { "" };
            let _ = writeln!(
                text,
                "{id}{held}  {:>6}  {:>8}  {from} -> {}  attempts {}  next in {}",
                human_age(age),
                env.size,
                pending.join(", "),
                state.attempts,
                human_age(next),
            );
            if let Some(e) = &state.last_error {
                let _ = writeln!(text, "    last error: {e}");
            }
            if let Some(e) = &state_error {
                let _ = writeln!(text, "    error: {e}");
            }
        }
    }
    if as_json {
        print(&format!("{}\n", json!({ "messages": rows })));
    } else if text.is_empty() {
        print("queue is empty\n");
    } else {
        print(&text);
    }
    Ok(0)
}

fn show(spool: &Spool, id: &str, as_json: bool) -> std::io::Result<u8> {
    let place = spool.find(id).ok_or_else(|| not_found(id))?;
    let (env, message) = spool.load(place, id, true)?;
    // A state that cannot be read is shown as such, with the envelope and headers: the
    // administrator needs them to decide what was delivered.
    let (state, state_error) = match spool.state(id) {
        Ok(s) => (s, None),
        Err(e) => (State::default(), Some(e.to_string())),
    };
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let headers = String::from_utf8_lossy(&message[..end]);
    if as_json {
        let v = json!({
            "place": place, "envelope": env, "state": state, "state_error": state_error,
            "headers": headers,
        });
        print(&format!("{v}\n"));
    } else {
        let mut t = format!("id: {id}\nplace: {place:?}\nfrom: <{}>\n", env.from);
        for (i, r) in env.rcpts.iter().enumerate() {
            let status = match state.outcomes.iter().find(|o| o.rcpt == i) {
                Some(o) if o.delivered => format!("delivered: {}", o.reply),
                Some(o) => format!("failed: {}", o.reply),
                None if state_error.is_some() => "unknown: the state is unreadable".into(),
                None => "pending".into(),
            };
            let _ = writeln!(t, "to: <{}> ({status})", r.to);
        }
        let _ = writeln!(
            t,
            "size: {}\nclient: {} ({})",
            env.size, env.client, env.helo
        );
        let _ = writeln!(t, "attempts: {}", state.attempts);
        if let Some(e) = &state.last_error {
            let _ = writeln!(t, "last error: {e}");
        }
        if let Some(e) = &state_error {
            let _ = writeln!(t, "error: {e}");
        }
        t.push('\n');
        t.push_str(&headers);
        print(&t);
    }
    Ok(0)
}

fn flush(socket: &Path, domain: Option<&str>) -> std::io::Result<u8> {
    let rt = super::runtime();
    match rt.block_on(control::request_flush(socket, domain)) {
        Ok(()) => {
            print("flush requested\n");
            Ok(0)
        }
        Err(e) => {
            eprintln!(
                "posta queue: cannot reach a running posta mta at {}: {e}; the queue is \
                 delivered when posta mta starts",
                socket.display()
            );
            Ok(EXIT_FAILURE)
        }
    }
}

fn each(
    spool: &Spool,
    ids: &[String],
    verb: &str,
    op: impl Fn(&Spool, &str) -> std::io::Result<bool>,
) -> std::io::Result<u8> {
    let mut code = 0;
    for id in ids {
        match op(spool, id) {
            Ok(true) => print(&format!("{id}: {verb}\n")),
            Ok(false) => print(&format!("{id}: already {verb}\n")),
            Err(e) => {
                eprintln!("posta queue: {id}: {e}");
                code = EXIT_FAILURE;
            }
        }
    }
    Ok(code)
}

/// mboxrd (a `>` added to `From ` lines at any quoting depth, so it reverses exactly) or a
/// Maildir whose files Dovecot or `posta migrate` can take from there.
fn export(
    spool: &Spool,
    format: ExportFormat,
    to: &std::path::Path,
    ids: &[String],
) -> std::io::Result<u8> {
    let chosen: Vec<(Place, String)> = if ids.is_empty() {
        all_ids(spool)?
    } else {
        ids.iter()
            .map(|id| {
                spool
                    .find(id)
                    .map(|p| (p, id.clone()))
                    .ok_or_else(|| not_found(id))
            })
            .collect::<Result<_, _>>()?
    };
    let mut out = match format {
        ExportFormat::Mbox => Some(
            std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(to)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", to.display())))?,
        ),
        ExportFormat::Maildir => {
            crate::mta::maildir::ensure(to)?;
            None
        }
    };
    for (place, id) in &chosen {
        let (env, message) = spool.load(*place, id, true)?;
        match &mut out {
            Some(file) => {
                let from = if env.from.is_empty() {
                    "MAILER-DAEMON"
                } else {
                    &env.from
                };
                let date = time::OffsetDateTime::from_unix_timestamp(env.arrival as i64)
                    .ok()
                    .and_then(|d| {
                        let f = time::macros::format_description!(
                            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
                        );
                        d.format(&f).ok()
                    })
                    .unwrap_or_default();
                let mut buf = format!("From {from} {date}\n").into_bytes();
                for line in message.split_inclusive(|&b| b == b'\n') {
                    let line = line
                        .strip_suffix(b"\r\n")
                        .map_or(line.to_vec(), |l| [l, b"\n"].concat());
                    let unquoted = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
                    if line[unquoted..].starts_with(b"From ") {
                        buf.push(b'>');
                    }
                    buf.extend_from_slice(&line);
                }
                if !buf.ends_with(b"\n") {
                    buf.push(b'\n');
                }
                buf.push(b'\n');
                file.write_all(&buf)?;
            }
            None => {
                let name = crate::mta::maildir::unique_name("posta-export", message.len());
                let tmp = to.join("tmp").join(&name);
                std::fs::write(&tmp, &message)?;
                std::fs::rename(&tmp, to.join("new").join(&name))?;
            }
        }
    }
    if let Some(f) = out {
        f.sync_all()?;
    }
    print(&format!(
        "exported {} messages to {}\n",
        chosen.len(),
        to.display()
    ));
    Ok(0)
}
