//! `posta mta explain`: load the tables, decide one recipient, print the verdict and trail.

use std::path::Path;

use serde_json::json;

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::{ExplainArgs, MtaCommand};
use crate::mta::policy::{Verdict, decide};
use crate::mta::tables::{Access, LocalHostNames, TableError, Tables, VirtUser, lint};

pub fn execute(cmd: MtaCommand) -> u8 {
    match cmd {
        MtaCommand::Explain(args) => explain(&args),
    }
}

fn load<T: Default>(
    path: Option<&Path>,
    f: fn(&Path) -> Result<T, TableError>,
) -> Result<T, TableError> {
    path.map_or_else(|| Ok(T::default()), f)
}

fn explain(args: &ExplainArgs) -> u8 {
    let tables = (|| {
        Ok::<_, TableError>(Tables {
            access: load(args.access.as_deref(), Access::load)?,
            virtuser: load(args.virtusertable.as_deref(), VirtUser::load)?,
            hosts: load(args.local_host_names.as_deref(), LocalHostNames::load)?,
        })
    })();
    let tables = match tables {
        Ok(t) => t,
        Err(e) => {
            eprintln!("posta: {e}");
            return EXIT_USAGE;
        }
    };
    let d = decide(
        &tables,
        args.client,
        args.helo.as_deref(),
        &args.from,
        &args.rcpt,
        &[],
    );
    let warnings = lint(&tables, &[]);
    if args.json {
        let value = json!({"verdict": d.verdict, "trail": d.trail, "warnings": warnings});
        print(&format!("{value}\n"));
    } else {
        let mut text = format!("{}\n", d.verdict);
        for step in &d.trail {
            text.push_str(&format!("  {step}\n"));
        }
        print(&text);
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    match d.verdict {
        Verdict::Reject(_) => EXIT_FAILURE,
        Verdict::Accept(_) | Verdict::Discard => 0,
    }
}
