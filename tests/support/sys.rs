//! Shared plumbing for the server fixtures: prerequisite checks that panic with the fix,
//! running commands, the posta-vmail Maildir owner, waiting for ports, and log tails for panics.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Owner of every test Maildir: Dovecot refuses uid 0 for mail, and virtual(8) delivers as it.
pub const VMAIL_USER: &str = "posta-vmail";

const FIX: &str = "run scripts/install-test-deps.sh (as root)";

/// Panics unless the test process runs as root: private Postfix/BIND need it.
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").expect("failed to read /proc/self/status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("no effective uid in /proc/self/status");
    assert!(
        uid == "0",
        "integration tests start real Postfix, Dovecot and BIND9 and must run as root (euid is \
         {uid}): run scripts/test.sh as root"
    );
}

/// Absolute path of an installed program, or a panic naming the fix. Looks in the sbin
/// directories too, which a non-login root shell's PATH may lack.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: {FIX}"))
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that daemonizes (dovecot, postfix start) with stdout and stderr appended to
/// `log`; panics with the log's tail if it fails.
///
/// Why not [`run`]: a daemon inherits the pipes `Command::output` reads, so `output()` waits
/// for an EOF that only comes when the daemon exits, i.e. forever.
pub fn run_daemon(cmd: &mut Command, log: &Path) {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("failed to open {}: {e}", log.display()));
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().expect("failed to clone log handle"))
        .stderr(file)
        .status()
        .unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"));
    assert!(
        status.success(),
        "{cmd:?} failed with {status}; {} tail:\n{}",
        log.display(),
        tail(log, 30)
    );
}

/// uid and gid of [`VMAIL_USER`], creating the system user once per process if it is missing
/// (install-test-deps.sh creates it too; this keeps a half-provisioned machine working).
pub fn vmail_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        require_root();
        if lookup_ids().is_none() {
            let _ = Command::new(require_tool("groupadd"))
                .args(["--system", VMAIL_USER])
                .output();
            run(Command::new(require_tool("useradd")).args([
                "--system",
                "--gid",
                VMAIL_USER,
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                VMAIL_USER,
            ]));
        }
        lookup_ids().unwrap_or_else(|| panic!("user {VMAIL_USER} is missing: {FIX}"))
    })
}

fn lookup_ids() -> Option<(u32, u32)> {
    let out = Command::new("getent")
        .args(["passwd", VMAIL_USER])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    let f: Vec<&str> = line.trim().split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// uid and gid of an existing system user such as `bind`.
pub fn user_ids(user: &str) -> (u32, u32) {
    let out = run(Command::new("getent").args(["passwd", user]));
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.trim().split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// A fresh temp dir that system users (bind, postfix, posta-vmail) can traverse.
pub fn server_dir(prefix: &str) -> tempfile::TempDir {
    server_dir_in(prefix, None)
}

/// Like [`server_dir`], under `parent` when given.
pub fn server_dir_in(prefix: &str, parent: Option<&Path>) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    let dir = match parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .expect("failed to create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .expect("failed to chmod temp dir");
    dir
}

/// A name no other fixture in this machine's concurrent test processes uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_ok()
}

/// Polls `ready` every 50 ms until it holds; `Err` after `timeout`.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The last `lines` lines of a log file, for panic messages.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

/// Whether a process exists and is not a zombie (daemons we stop are not our children, and a
/// container's pid 1 may never reap them).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}
