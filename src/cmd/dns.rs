//! `posta dns plan` and `posta dns verify`: the routes layout's zone (issue 7, item 5).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::{EXIT_FAILURE, EXIT_USAGE, print, runtime};
use crate::cli::{ZoneArgs, ZoneCommand};
use crate::routes::layout::{DEFAULT_PATH, LayoutError, LayoutFile};
use crate::zone::plan::today_serial;
use crate::zone::{self, Method, Plan};

pub fn execute(args: ZoneArgs) -> u8 {
    let path = args.layout.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    match args.command {
        ZoneCommand::Plan { out, serial } => {
            let serial = serial.unwrap_or_else(today_serial);
            let Some((_, plan)) = load("plan", &path, serial) else {
                return EXIT_USAGE;
            };
            for note in &plan.notes {
                eprintln!("posta dns plan: note: {note}");
            }
            let text = zone::render(&plan, &path);
            match out {
                None => {
                    print(&text);
                    0
                }
                Some(out) => match crate::routes::output::replace(&out, &text) {
                    Ok(written) => {
                        print(&format!(
                            "{} zone {} in {}: {} records, serial {serial}\n",
                            if written { "wrote" } else { "unchanged:" },
                            plan.origin,
                            out.display(),
                            plan.entries.len()
                        ));
                        0
                    }
                    Err(e) => {
                        eprintln!("posta dns plan: cannot write {}: {e}", out.display());
                        EXIT_FAILURE
                    }
                },
            }
        }
        ZoneCommand::Verify { server, json } => verify(&path, server.as_deref(), json),
    }
}

/// The layout and its plan, or `None` after saying what is wrong (`file:line:column` for the
/// layout's own problems).
fn load(command: &str, path: &Path, serial: u32) -> Option<(LayoutFile, Plan)> {
    let layout = match LayoutFile::load(path) {
        Ok(l) => l,
        Err(e @ LayoutError::Invalid(_)) => {
            eprintln!("{e}");
            return None;
        }
        Err(e) => {
            eprintln!("posta dns {command}: {e}");
            return None;
        }
    };
    match zone::plan(&layout, serial) {
        Ok(plan) => Some((layout, plan)),
        Err(errors) => {
            for e in errors {
                eprintln!("posta dns {command}: {}: {e}", path.display());
            }
            None
        }
    }
}

fn verify(path: &Path, server: Option<&str>, json: bool) -> u8 {
    // The serial is not compared.
    let Some((layout, plan)) = load("verify", path, 0) else {
        return EXIT_USAGE;
    };
    let server = match server_to_ask(&layout, server) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("posta dns verify: {e}");
            return EXIT_USAGE;
        }
    };
    let names = zone::planned_names(plan.records());
    let fetched = match runtime().block_on(zone::fetch(server, &plan.origin, &names)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("posta dns verify: {e}");
            return EXIT_FAILURE;
        }
    };
    let planned: Vec<zone::Rr> = plan.records().cloned().collect();
    let drift = zone::diff(&planned, &fetched.records);
    let mut keys: Vec<(&str, &str)> = planned
        .iter()
        .map(|r| (r.name.as_str(), r.data.rtype()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let sets = keys.len();
    let (method, axfr_error) = match &fetched.method {
        Method::Axfr => ("AXFR".to_string(), None),
        Method::Queries { axfr } => (
            format!("queries (AXFR failed: {axfr}; names outside the plan not checked)"),
            Some(axfr.clone()),
        ),
    };
    if json {
        let value = serde_json::json!({
            "zone": plan.origin,
            "server": server.to_string(),
            "layout": path.display().to_string(),
            "method": if axfr_error.is_some() { "queries" } else { "axfr" },
            "axfr_error": axfr_error,
            "record_sets": sets,
            "clean": drift.is_empty(),
            "drift": drift,
        });
        print(&format!("{value}\n"));
    } else {
        let mut text = String::new();
        for d in &drift {
            text.push_str(&format!("{d}\n"));
        }
        if drift.is_empty() {
            text.push_str(&format!(
                "clean: zone {} at {server} matches the plan ({sets} record sets, by {method})\n",
                plan.origin
            ));
        } else {
            text.push_str(&format!(
                "{} drift(s) in zone {} at {server} ({sets} record sets planned, by {method})\n",
                drift.len(),
                plan.origin
            ));
        }
        print(&text);
    }
    if drift.is_empty() { 0 } else { EXIT_FAILURE }
}

/// `--server`, else `[dns] server`, else the first name server's address, port 53.
fn server_to_ask(layout: &LayoutFile, flag: Option<&str>) -> Result<SocketAddr, String> {
    if let Some(text) = flag {
        return text
            .parse::<SocketAddr>()
            .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map_err(|_| {
                format!("--server {text:?}: expected an address like 192.0.2.53 or 192.0.2.53:5353")
            });
    }
    if let Some(s) = layout.dns.server {
        return Ok(s);
    }
    match layout.dns.ns.first() {
        Some((_, Some(ip))) => Ok(SocketAddr::new(*ip, 53)),
        Some((name, None)) => Err(format!(
            "the first name server {name} has no address in the layout: pass --server or set \
             [dns] server"
        )),
        None => Err("no name server to ask: pass --server or set [dns] server".to_string()),
    }
}
