//! `posta status`: who holds mailserver1's address or record, from the state file, and the
//! recent takeovers and failbacks.

use std::path::PathBuf;

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::StatusArgs;
use crate::takeover::state::State;

/// Events shown in the table (the JSON has the whole history).
const RECENT: usize = 10;

pub async fn execute(config: Option<PathBuf>, args: StatusArgs) -> u8 {
    let site = match super::takeover::site(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("posta: {e}");
            return EXIT_USAGE;
        }
    };
    let path = super::takeover::state_file(args.state_file, site.as_ref());
    let state = match State::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("posta: {e}");
            return EXIT_FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&state) {
            Ok(j) => print(&format!("{j}\n")),
            Err(e) => {
                eprintln!("posta: cannot encode the state: {e}");
                return EXIT_FAILURE;
            }
        }
        return 0;
    }
    let mut out = String::new();
    if state.holdings.is_empty() {
        out.push_str(&format!(
            "no takeover recorded in {}: mailserver1 holds its own address and record\n",
            path.display()
        ));
    }
    for h in &state.holdings {
        let who = match h.holder.as_str() {
            "backup" => "mailserver2 (taken over)",
            _ => "mailserver1",
        };
        out.push_str(&format!(
            "{} ({}): held by {who} since {}: {}\n",
            h.resource, h.mode, h.since, h.value
        ));
    }
    if !state.history.is_empty() {
        out.push_str("\nrecent:\n");
        let skip = state.history.len().saturating_sub(RECENT);
        for e in &state.history[skip..] {
            out.push_str(&format!(
                "  {} {:?} {} {}: {} -> {} (on {})\n",
                e.time, e.action, e.mode, e.resource, e.old, e.new, e.host
            ));
        }
    }
    print(&out);
    0
}
