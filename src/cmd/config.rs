//! `posta config check|show`: validate the site file; print it with defaults filled in.

use std::path::Path;

use serde_json::json;

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::ConfigCommand;
use crate::config::{self, ConfigError};

pub fn execute(path: &Path, cmd: ConfigCommand) -> u8 {
    let (json, show) = match cmd {
        ConfigCommand::Check { json } => (json, false),
        ConfigCommand::Show { json } => (json, true),
    };
    match config::load(path) {
        Ok(site) => {
            if show {
                // Only paths of secret files are in Site, never their contents.
                let text = if json {
                    serde_json::to_string_pretty(&site).unwrap_or_default() + "\n"
                } else {
                    toml::to_string_pretty(&site).unwrap_or_default()
                };
                print(&text);
            } else if json {
                print(&format!(
                    "{}\n",
                    json!({"file": path, "valid": true, "problems": []})
                ));
            } else {
                print(&format!("{}: ok\n", path.display()));
            }
            0
        }
        Err(ConfigError::Invalid { problems }) => {
            if json {
                let value = json!({"file": path, "valid": false, "problems": problems});
                print(&format!("{value}\n"));
            } else {
                for p in &problems {
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
        Err(e @ ConfigError::Read { .. }) => {
            eprintln!("posta: {e}");
            EXIT_FAILURE
        }
    }
}
