//! `posta config check|show`: validate the site file and what it names on this host; print it
//! with defaults filled in.

use std::path::Path;

use serde_json::json;

use super::{EXIT_USAGE, print};
use crate::cli::ConfigCommand;
use crate::config::{self, ConfigError, Located};

pub fn execute(path: &Path, cmd: ConfigCommand) -> u8 {
    let (json, show) = match cmd {
        ConfigCommand::Check { json } => (json, false),
        ConfigCommand::Show { json } => (json, true),
    };
    let site = match config::load(path) {
        Ok(site) => site,
        Err(ConfigError::Invalid { problems }) => return refuse(path, json, &problems, &[]),
        Err(e @ ConfigError::Read { .. }) => {
            // A missing site file is a site-file error like any other (exit 2, documented).
            eprintln!("posta: {e}");
            return EXIT_USAGE;
        }
    };
    if show {
        // Only paths of secret files are in Site, never their contents.
        let text = if json {
            serde_json::to_string_pretty(&site).unwrap_or_default() + "\n"
        } else {
            config::to_site_file(&site)
        };
        print(&text);
        return 0;
    }
    let host = config::check_host(&site);
    if !host.problems.is_empty() {
        return refuse(path, json, &host.problems, &host.notes);
    }
    if json {
        let value = json!({"file": path, "valid": true, "problems": [], "notes": host.notes});
        print(&format!("{value}\n"));
    } else {
        let mut text = String::new();
        for n in &host.notes {
            text.push_str(&format!("{n}\n"));
        }
        text.push_str(&format!("{}: ok\n", path.display()));
        print(&text);
    }
    0
}

fn refuse(path: &Path, json: bool, problems: &[Located], notes: &[Located]) -> u8 {
    if json {
        let value = json!({"file": path, "valid": false, "problems": problems, "notes": notes});
        print(&format!("{value}\n"));
    } else {
        for p in notes.iter().chain(problems) {
            eprintln!("{p}");
        }
        let n = problems.len();
        eprintln!(
            "{}: {n} problem{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
    }
    EXIT_USAGE
}
