//! The arguments of `posta routes` and its subcommands (build, check).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::parse_duration;

/// One domain over regional servers (the seed's inkacoca): build every server's tables from
/// the offices' own user lists, and prove they route.
///
/// The layout file names the domain, the switch, each office and where its list lives; see
/// `posta routes build --help` for what is written.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
posta routes build --layout /etc/posta/routes.toml\n  \
posta routes build --watch\n  \
posta routes check\n  \
posta routes check --tables /srv/old-tables --domain inkacoca.org --switch switch.inkacoca.org")]
pub struct RoutesArgs {
    /// The layout file [default: /etc/posta/routes.toml]
    #[arg(long, global = true, env = "POSTA_LAYOUT", value_name = "FILE")]
    pub layout: Option<PathBuf>,
    #[command(subcommand)]
    pub command: RoutesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Write the switch's and each office's tables from the offices' lists: sendmail's
    /// virtusertable, local-host-names and mailertable, Postfix's virtual and transport maps
    /// and the main.cf lines that use them; says what changed and reloads the servers whose
    /// tables changed
    Build(RoutesBuildArgs),
    /// Prove by evaluation that every user reaches exactly their office, office-local mail
    /// stays local, unknown users are refused and nothing loops
    Check(RoutesCheckArgs),
}

#[derive(Debug, Args)]
pub struct RoutesBuildArgs {
    /// Print what would change and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep running: rebuild whenever the layout, a list or the rename map changes
    #[arg(long)]
    pub watch: bool,
    /// How often --watch looks at the files
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Apply a build that takes many users away from an office (refused by default: a
    /// truncated list would otherwise refuse their mail)
    #[arg(long)]
    pub allow_removals: bool,
    /// Do not run the servers' reload commands
    #[arg(long)]
    pub no_reload: bool,
}

#[derive(Debug, Args)]
pub struct RoutesCheckArgs {
    /// Check these sendmail tables instead of the layout's output: one directory per server,
    /// named by its mail name, holding virtusertable and local-host-names
    #[arg(long, value_name = "DIR", requires_all = ["domain", "switch"])]
    pub tables: Option<PathBuf>,
    /// The shared domain (with --tables)
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The switch's mail name, where the domain's MX points (with --tables)
    #[arg(long, value_name = "NAME")]
    pub switch: Option<String>,
    /// Print the route of one address from every server
    #[arg(long, value_name = "ADDRESS")]
    pub trace: Option<String>,
}
