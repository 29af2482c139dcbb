//! Why a drill stopped: each variant names the phase's object (a command, a file, a wait, a
//! reply), so the operator sees which part of the rehearsal failed.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(
        "posta drill builds the scenario in network namespaces: it needs root, or an \
         unprivileged user namespace (unshare -Urnm), which it enters by itself"
    )]
    NotRoot,
    #[error("cannot run ip: {0} (install iproute2)")]
    NoIp(std::io::Error),
    #[error("ip {args} failed: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program} in {role}: {source}")]
    Spawn {
        program: String,
        role: &'static str,
        source: std::io::Error,
    },
    #[error("gave up waiting for {what} after {limit:?}")]
    Timeout { what: String, limit: Duration },
    /// The example site file lacks a key the drill changes.
    #[error("examples/site.toml has no {}", .0.0)]
    Example(#[from] crate::config::edit::Missing),
    #[error("examples/site.toml is not valid TOML: {0}")]
    ExampleToml(toml::de::Error),
    #[error("cannot write the drill's site file: {0}")]
    SiteFile(toml::ser::Error),
    #[error("cannot join network namespace {path}: {source}")]
    Namespace { path: String, source: nix::Error },
    #[error("the client thread panicked")]
    Panicked,
    #[error("cannot start the client thread's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Smtp(#[from] crate::client::smtp::SmtpError),
}

impl DrillError {
    /// A file operation on `path` that failed.
    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DrillError {
        let path = path.into();
        move |source| DrillError::File { path, source }
    }
}
