//! The zone-file edit, as pure text → text: find the owner's A/AAAA records, check them
//! against `expect`, rewrite them to `to` in place (same line, same layout, same comment) and
//! bump the SOA serial. Every other byte is kept. The result is parsed again and must differ
//! from the original only in the record and the serial; anything else aborts the edit.

use std::net::IpAddr;

use super::lexer::{Chunk, chunks};
use super::records::{Rr, records, ttl};
use crate::takeover::dns::{Record, Snapshot};

/// What the edit found and made.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The record held `expect`; `text` is the new file.
    Done { before: Snapshot, text: String },
    /// The record already holds exactly `to`.
    AlreadyDone { current: Snapshot },
}

/// Why there is no edit.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A syntax error or unsupported construct at a line.
    Syntax(usize, String),
    /// The record holds these addresses, neither `expect` nor `to`.
    NotExpected(Vec<IpAddr>),
    /// The edit would touch more than the record and the serial.
    Unsafe(Unsafe),
}

/// Why an edited zone file is not what was planned; nothing is written then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Unsafe {
    /// The file as read, or as edited, does not parse (`edited`: the latter).
    #[error("{}line {line}: {message}", if *edited { "the edited file does not parse: " } else { "" })]
    Parse {
        edited: bool,
        line: usize,
        message: String,
    },
    #[error(
        "the edit would also change another record ({old} → {new}): add a $TTL directive or \
         edit the zone by hand"
    )]
    OtherRecord { old: String, new: String },
    #[error("the edit would change the number of other records")]
    RecordCount,
    #[error("the edit did not come out as planned (got {got:?}, serial {serial:?})")]
    NotAsPlanned {
        got: Vec<(IpAddr, u32)>,
        serial: Option<u32>,
    },
}

/// A calendar date, for YYYYMMDDnn serials.
pub(super) type Date = (i32, u8, u8);

/// Plans the swap of `rec` in `file` (`expect` and `to` normalized, non-empty).
pub(super) fn plan(
    file: &str,
    rec: &Record,
    expect: &[IpAddr],
    to: &[IpAddr],
    today: Date,
) -> Result<Outcome, Refusal> {
    let syntax = |(line, message): (usize, String)| Refusal::Syntax(line, message);
    let cs = chunks(file).map_err(syntax)?;
    let rrs = records(file, &cs, &rec.zone).map_err(syntax)?;
    let (soa, serial, negative_ttl) = soa(file, &rrs, rec)?;
    let matched = matched(file, &rrs, rec)?;
    let mut found: Vec<IpAddr> = matched.iter().map(|(_, ip)| *ip).collect();
    found.sort();
    let snapshot = Snapshot {
        serial,
        addrs: found.clone(),
        ttl: matched.iter().map(|(r, _)| r.ttl).max(),
        negative_ttl,
    };
    if found == to {
        return Ok(Outcome::AlreadyDone { current: snapshot });
    }
    if found != expect {
        return Err(Refusal::NotExpected(found));
    }

    let mut actions: Vec<Action> = cs.iter().map(|_| Action::default()).collect();
    let new_serial = next_serial(serial, today);
    if let Some(t) = soa.rdata.get(2) {
        actions[soa.chunk]
            .edits
            .push((t.start, t.end, new_serial.to_string()));
    }
    // The i-th new address takes the place of the i-th old record, in file order, so the line
    // that carries the owner name is kept whenever any is.
    for (i, (r, _)) in matched.iter().enumerate() {
        match to.get(i) {
            Some(ip) => actions[r.chunk]
                .edits
                .extend(rewrite(file, &cs[r.chunk], r, *ip, rec.ttl)),
            None => actions[r.chunk].delete = true,
        }
    }
    if let Some((last, _)) = matched.last() {
        let chunk = &cs[last.chunk];
        for ip in to.iter().skip(matched.len()) {
            let end = chunk
                .comment
                .filter(|_| chunk.line == line_of_end(file, chunk));
            let mut line = splice(file, chunk.start, end.unwrap_or(chunk.end), {
                rewrite(file, chunk, last, *ip, rec.ttl)
            });
            if end.is_some() || !line.ends_with('\n') {
                line = line.trim_end().to_owned() + "\n";
            }
            actions[last.chunk].append.push(line);
        }
    }
    carry_owners(file, &cs, &mut actions);
    let text = assemble(file, &cs, &actions);
    check(file, &text, rec, to, new_serial).map_err(Refusal::Unsafe)?;
    Ok(Outcome::Done {
        before: snapshot,
        text,
    })
}

/// What happens to one chunk.
#[derive(Debug, Default)]
struct Action {
    /// Byte-range replacements inside the chunk.
    edits: Vec<(usize, usize, String)>,
    delete: bool,
    /// An owner name to write before a continuation line whose owner line was deleted.
    prefix: Option<String>,
    /// Lines to add after the chunk.
    append: Vec<String>,
}

/// The zone's SOA record, its serial and negative TTL.
fn soa<'a>(file: &str, rrs: &'a [Rr], rec: &Record) -> Result<(&'a Rr, u32, u32), Refusal> {
    let soa = rrs
        .iter()
        .find(|r| r.rtype == "SOA" && r.owner == rec.zone)
        .ok_or_else(|| Refusal::Syntax(1, format!("no SOA record for zone {}", rec.zone)))?;
    let field = |i: usize| soa.rdata.get(i).map(|t| t.text(file));
    let line = soa.type_token.line;
    let serial = field(2)
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| Refusal::Syntax(line, "the SOA serial is not a number".into()))?;
    let minimum = field(6)
        .and_then(ttl)
        .ok_or_else(|| Refusal::Syntax(line, "the SOA has no MINIMUM field".into()))?;
    Ok((soa, serial, minimum.min(soa.ttl)))
}

/// The owner's A/AAAA records with their addresses, in file order.
fn matched<'a>(file: &str, rrs: &'a [Rr], rec: &Record) -> Result<Vec<(&'a Rr, IpAddr)>, Refusal> {
    let mut out = Vec::new();
    for r in rrs.iter().filter(|r| r.owner == rec.name) {
        let want_v4 = match r.rtype.as_str() {
            "A" => true,
            "AAAA" => false,
            _ => continue,
        };
        let bad = || Refusal::Syntax(r.type_token.line, format!("bad {} record", r.rtype));
        let [data] = r.rdata.as_slice() else {
            return Err(bad());
        };
        let ip: IpAddr = data.text(file).parse().map_err(|_| bad())?;
        if ip.is_ipv4() != want_v4 {
            return Err(bad());
        }
        out.push((r, ip));
    }
    Ok(out)
}

/// The replacements that make record `r` say `ip` with TTL `ttl_secs`.
fn rewrite(
    file: &str,
    chunk: &Chunk,
    r: &Rr,
    ip: IpAddr,
    ttl_secs: u32,
) -> Vec<(usize, usize, String)> {
    let mut edits = Vec::new();
    if let Some(data) = r.rdata.first() {
        edits.push((data.start, data.end, ip.to_string()));
    }
    let new_type = if ip.is_ipv4() { "A" } else { "AAAA" };
    if r.rtype != new_type {
        let old = r.type_token.text(file);
        let shown = if old.chars().any(|c| c.is_ascii_lowercase()) {
            new_type.to_ascii_lowercase()
        } else {
            new_type.to_owned()
        };
        edits.push((r.type_token.start, r.type_token.end, shown));
    }
    match r.ttl_token {
        Some(t) if r.ttl != ttl_secs => edits.push((t.start, t.end, ttl_secs.to_string())),
        Some(_) => {}
        None if r.ttl != ttl_secs => {
            // Insert before the class or type, with the separator the line already uses.
            let before = chunk.head.map_or(chunk.start, |h| h.end);
            let gap = &file[before..r.first.start];
            let sep = if gap.is_empty() || gap.contains('\n') {
                " "
            } else {
                gap
            };
            let sep = sep.trim_start_matches(['\r', '\n']);
            let sep = if sep.is_empty() { " " } else { sep };
            edits.push((r.first.start, r.first.start, format!("{ttl_secs}{sep}")));
        }
        None => {}
    }
    edits
}

/// When a deleted record carried the owner name for the continuation lines after it, the next
/// kept continuation line gets the name written out.
fn carry_owners(file: &str, cs: &[Chunk], actions: &mut [Action]) {
    let mut pending: Option<String> = None;
    for (c, action) in cs.iter().zip(actions.iter_mut()) {
        if c.blank {
            continue;
        }
        let head = c.head.map(|h| h.text(file).to_owned());
        if head.as_deref().is_some_and(|h| h.starts_with('$')) {
            pending = None;
            continue;
        }
        match (action.delete, head) {
            (true, Some(h)) => pending = Some(h),
            (true, None) => {}
            (false, Some(_)) => pending = None,
            (false, None) => action.prefix = pending.take(),
        }
    }
}

/// The file with every action applied.
fn assemble(file: &str, cs: &[Chunk], actions: &[Action]) -> String {
    let mut out = String::with_capacity(file.len() + 64);
    for (c, a) in cs.iter().zip(actions) {
        if !a.delete {
            if let Some(p) = &a.prefix {
                out.push_str(p);
            }
            out.push_str(&splice(file, c.start, c.end, a.edits.clone()));
        }
        for line in &a.append {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(line);
        }
    }
    out
}

/// `file[start..end]` with the replacements (ranges inside it, not overlapping) applied.
fn splice(file: &str, start: usize, end: usize, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::new();
    let mut at = start;
    for (s, e, text) in edits
        .into_iter()
        .filter(|(s, e, _)| *s >= start && *e <= end)
    {
        if s < at {
            continue; // overlapping: cannot happen for planned edits; never slice backwards
        }
        out.push_str(&file[at..s]);
        out.push_str(&text);
        at = e;
    }
    out.push_str(&file[at..end]);
    out
}

/// The line an entry's last byte is on.
fn line_of_end(file: &str, c: &Chunk) -> usize {
    c.line
        + file[c.start..c.end]
            .trim_end_matches('\n')
            .matches('\n')
            .count()
}

/// The new text must parse, hold exactly `to` at TTL `ttl` and the new serial, and keep every
/// other record as it was.
fn check(old: &str, new: &str, rec: &Record, to: &[IpAddr], serial: u32) -> Result<(), Unsafe> {
    let before = View::of(old, rec, false)?;
    let after = View::of(new, rec, true)?;
    if let Some((o, n)) = before
        .others
        .iter()
        .zip(&after.others)
        .find(|(o, n)| o != n)
    {
        return Err(Unsafe::OtherRecord {
            old: o.clone(),
            new: n.clone(),
        });
    }
    if before.others.len() != after.others.len() {
        return Err(Unsafe::RecordCount);
    }
    let want: Vec<(IpAddr, u32)> = to.iter().map(|ip| (*ip, rec.ttl)).collect();
    if after.mine != want || after.serial != Some(serial) {
        return Err(Unsafe::NotAsPlanned {
            got: after.mine,
            serial: after.serial,
        });
    }
    Ok(())
}

/// A zone file as [`check`] compares it.
struct View {
    /// Every other record as "owner ttl type rdata", the SOA without its serial.
    others: Vec<String>,
    /// The record's addresses and TTLs, sorted.
    mine: Vec<(IpAddr, u32)>,
    serial: Option<u32>,
}

impl View {
    fn of(text: &str, rec: &Record, edited: bool) -> Result<View, Unsafe> {
        let parse = |(line, message)| Unsafe::Parse {
            edited,
            line,
            message,
        };
        let cs = chunks(text).map_err(parse)?;
        let rrs = records(text, &cs, &rec.zone).map_err(parse)?;
        let mut view = View {
            others: Vec::new(),
            mine: Vec::new(),
            serial: None,
        };
        for r in &rrs {
            let mut data: Vec<&str> = r.rdata.iter().map(|t| t.text(text)).collect();
            if r.owner == rec.name && (r.rtype == "A" || r.rtype == "AAAA") {
                if let Some(ip) = data.first().and_then(|d| d.parse().ok()) {
                    view.mine.push((ip, r.ttl));
                }
                continue;
            }
            if r.rtype == "SOA" && r.owner == rec.zone && data.len() > 2 {
                view.serial = data[2].parse().ok();
                data[2] = "";
            }
            let line = format!("{} {} {} {}", r.owner, r.ttl, r.rtype, data.join(" "));
            view.others.push(line);
        }
        view.mine.sort();
        Ok(view)
    }
}

/// The next SOA serial: today's `YYYYMMDD00` when the serial looks like a date serial and that
/// is greater, else one more (RFC 1982 arithmetic: wraps past 2^32-1, skipping 0 as BIND does).
pub(super) fn next_serial(current: u32, (year, month, day): Date) -> u32 {
    let looks_like_date = {
        let (y, m, d) = (
            current / 1_000_000,
            current / 10_000 % 100,
            current / 100 % 100,
        );
        (1990..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
    };
    if looks_like_date && let Ok(y) = u32::try_from(year) {
        let today = y
            .saturating_mul(1_000_000)
            .saturating_add(u32::from(month) * 10_000)
            .saturating_add(u32::from(day) * 100);
        if today > current {
            return today;
        }
    }
    match current.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests;
