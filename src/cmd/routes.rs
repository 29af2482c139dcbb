//! `posta routes build` and `posta routes check`: the multi-office layout (seed §11.2).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{RoutesArgs, RoutesBuildArgs, RoutesCheckArgs, RoutesCommand};
use crate::routes::layout::{DEFAULT_PATH, LayoutFile, ListSource};
use crate::routes::lists;
use crate::routes::{self, End, Generated, Host, Layout, output};

pub fn execute(args: RoutesArgs) -> u8 {
    let path = args
        .layout
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    match args.command {
        RoutesCommand::Build(b) if b.watch => watch(&path, &b),
        RoutesCommand::Build(b) => match build_once(&path, &b) {
            Ok(Built { unreloaded }) if unreloaded.is_empty() => 0,
            Ok(_) => EXIT_FAILURE,
            Err(Failure::Usage(e)) => {
                eprintln!("posta routes build: {e}");
                EXIT_USAGE
            }
            Err(Failure::Other(e)) => {
                eprintln!("posta routes build: {e}");
                EXIT_FAILURE
            }
        },
        RoutesCommand::Check(c) => check(&path, &c),
    }
}

enum Failure {
    /// The layout, a list or the rename map is wrong: the operator must fix a file.
    Usage(String),
    Other(String),
}

struct Built {
    /// The servers whose tables changed but whose reload failed.
    unreloaded: Vec<String>,
}

fn load(path: &Path) -> Result<(LayoutFile, Layout), Failure> {
    let file = LayoutFile::load(path).map_err(|e| Failure::Usage(e.to_string()))?;
    let layout = Layout::read(&file).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok((file, layout))
}

fn build_once(path: &Path, a: &RoutesBuildArgs) -> Result<Built, Failure> {
    let (file, layout) = load(path)?;
    let out = &file.output;
    // One build at a time: --watch and a hand-run build must not interleave their writes.
    let _lock = if a.dry_run {
        None
    } else {
        Some(
            super::exclusive_lock(&out.join(".lock"), "another posta routes build is running")
                .map_err(Failure::Other)?,
        )
    };
    let before = output::previous(out).map_err(|e| Failure::Other(e.to_string()))?;
    let g = routes::build(&layout, &before, &path.display().to_string());
    report_conflicts(&file.domain, &g);
    let changes = output::changes(&file.domain, &before, &g.owners);
    let suspicious = output::suspicious_removals(&before, &g.owners);
    if !suspicious.is_empty() && !a.allow_removals && !a.dry_run {
        return Err(Failure::Other(format!(
            "not applied: {}; if the lists are right, run again with --allow-removals",
            suspicious.join("; ")
        )));
    }
    let mut text = String::new();
    for c in &changes {
        text.push_str(c);
        text.push('\n');
    }
    if a.dry_run {
        text.push_str(&format!(
            "dry run: {} change(s), nothing written to {}\n",
            changes.len(),
            out.display()
        ));
        print(&text);
        return Ok(Built {
            unreloaded: Vec::new(),
        });
    }
    let changed = output::write(out, &g)
        .map_err(|e| Failure::Other(format!("cannot write {}: {e}", out.display())))?;
    let routed = g.owners.values().filter(|c| c.renamed_to.is_none()).count();
    text.push_str(&format!(
        "{routed} user(s) of {} routed over {} office(s); {} change(s); tables rewritten for: {}\n",
        file.domain,
        file.offices.len(),
        changes.len(),
        if changed.is_empty() {
            "none".to_string()
        } else {
            changed.join(", ")
        }
    ));
    print(&text);
    let unreloaded = if a.no_reload {
        Vec::new()
    } else {
        reload(&file, &changed)
    };
    Ok(Built { unreloaded })
}

/// Runs the reload command of each named server; returns those whose reload failed.
fn reload(file: &LayoutFile, names: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for (name, node) in file.nodes() {
        if !names.iter().any(|c| c == name) || node.reload.is_empty() {
            continue;
        }
        match output::reload(&node.reload) {
            Ok(()) => tracing::info!(server = name, "reloaded"),
            Err(e) => {
                eprintln!("posta routes build: reloading {name}: {e}");
                failed.push(name.to_string());
            }
        }
    }
    failed
}

fn report_conflicts(domain: &str, g: &Generated) {
    for c in &g.conflicts {
        eprintln!("posta routes build: conflict: {}", c.advice(domain));
    }
    for p in &g.problems {
        eprintln!("posta routes build: {p}");
    }
}

/// What `--watch` compares between rounds: each file's modification time and length, and a
/// command's output (a hash of it, or its failure).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    File(Option<(SystemTime, u64)>),
    Output(Option<u64>),
}

fn fingerprint(path: &Path) -> Vec<Seen> {
    let stat = |p: &Path| {
        Seen::File(
            fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
        )
    };
    let mut out = vec![stat(path)];
    if let Ok(file) = LayoutFile::load(path) {
        out.extend(file.offices.iter().map(|o| match &o.users {
            ListSource::File(p) => stat(p),
            source @ ListSource::Command(_) => {
                Seen::Output(lists::fetch(source).ok().map(|(_, t)| {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    t.hash(&mut h);
                    h.finish()
                }))
            }
        }));
        out.extend(file.renames.iter().map(|r| stat(r)));
    }
    out
}

/// Rebuilds when a watched file changes and has stayed unchanged for one more interval (a
/// list being copied in is not read half-written). A bad list leaves the last good tables.
fn watch(path: &Path, a: &RoutesBuildArgs) -> u8 {
    let interval = a.interval.max(Duration::from_millis(100));
    let mut applied = None;
    let mut seen = fingerprint(path);
    // Servers whose new tables are written but not yet loaded: retried every round.
    let mut unreloaded: Vec<String> = Vec::new();
    loop {
        if applied.as_ref() != Some(&seen) {
            match build_once(path, a) {
                Ok(b) => {
                    unreloaded.retain(|n| !b.unreloaded.contains(n));
                    unreloaded.extend(b.unreloaded);
                }
                Err(Failure::Usage(e) | Failure::Other(e)) => {
                    eprintln!("posta routes build: {e} (keeping the last tables)");
                }
            }
            applied = Some(seen.clone());
        } else if !unreloaded.is_empty()
            && let Ok(file) = LayoutFile::load(path)
        {
            unreloaded = reload(&file, &unreloaded);
        }
        std::thread::sleep(interval);
        let now = fingerprint(path);
        if now != seen {
            // Changed: wait until it holds still for one interval.
            seen = now;
            continue;
        }
    }
}

fn check(path: &Path, a: &RoutesCheckArgs) -> u8 {
    let loaded = match &a.tables {
        Some(dir) => tables_dir(
            dir,
            a.domain.as_deref().unwrap_or_default(),
            a.switch.as_deref().unwrap_or_default(),
        ),
        None => generated(path),
    };
    let (hosts, domain, switch) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("posta routes check: {e}");
            return EXIT_USAGE;
        }
    };
    if let Some(addr) = &a.trace {
        let mut text = String::new();
        for h in &hosts {
            let r = routes::route(&hosts, &domain, &switch, &h.name, addr);
            let end = match &r.end {
                End::Delivered { host, user } => format!("delivered to {user} at {host}"),
                End::Refused(reply) => format!("refused: {reply}"),
                End::Loop => "loops".to_string(),
                End::Left(a) => format!("leaves as {a}"),
            };
            text.push_str(&format!(
                "from {}: {}: {end}\n",
                h.name,
                r.hops.join(" -> ")
            ));
        }
        print(&text);
        return 0;
    }
    let users = routes::office_users(&hosts, &domain);
    let found = routes::check(&hosts, &domain, &switch);
    if found.is_empty() {
        print(&format!(
            "ok: {} user(s) of {domain} reach exactly their office from every server; \
             office-local mail stays local; unknown users are refused at {switch}; nothing loops\n",
            users.len()
        ));
        return 0;
    }
    let mut text = String::new();
    for f in &found {
        text.push_str(&format!("{} from {}: {}\n", f.address, f.from, f.problem));
    }
    text.push_str(&format!("{} problem(s)\n", found.len()));
    print(&text);
    EXIT_FAILURE
}

/// The tables `posta routes build` wrote, named by the servers' mail names.
fn generated(path: &Path) -> Result<(Vec<Host>, String, String), String> {
    let file = LayoutFile::load(path).map_err(|e| e.to_string())?;
    let mut hosts = Vec::new();
    let dirs = std::iter::once(("switch", file.switch.server.as_str())).chain(
        file.offices
            .iter()
            .map(|o| (o.name.as_str(), o.domain.as_str())),
    );
    for (dir, name) in dirs {
        hosts.push(read_host(&file.output.join(dir), name)?);
    }
    Ok((hosts, file.domain.clone(), file.switch.server.clone()))
}

/// `DIR/<mail name>/{virtusertable,local-host-names}` for every server.
fn tables_dir(
    dir: &Path,
    domain: &str,
    switch: &str,
) -> Result<(Vec<Host>, String, String), String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!(
            "{} has no server directories (DIR/<mail name>/virtusertable)",
            dir.display()
        ));
    }
    let hosts = names
        .iter()
        .map(|n| read_host(&dir.join(n), n))
        .collect::<Result<Vec<_>, _>>()?;
    let (domain, switch) = (domain.to_ascii_lowercase(), switch.to_ascii_lowercase());
    if !hosts
        .iter()
        .any(|h| h.name == switch || h.tables.hosts.contains(&switch))
    {
        return Err(format!("no server under {} is {switch}", dir.display()));
    }
    Ok((hosts, domain, switch))
}

fn read_host(dir: &Path, name: &str) -> Result<Host, String> {
    let read = |f: &str| {
        let p = dir.join(f);
        fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let vt = read("virtusertable")?;
    let lhn = read("local-host-names")?;
    Host::parse(name, &vt, &lhn).map_err(|e| format!("{} ({}): {e}", dir.display(), name))
}
