//! A finished `posta` run as the integration tests look at it: exit code, stdout, stderr.

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code().expect("posta exited by signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Waits for `child` (spawned with piped output); a run past `limit` is killed and fails
    /// the test. The pipes are drained while it runs: a report larger than a pipe's buffer
    /// (64 KiB: `--json` for 50 accounts) would otherwise block posta in its last write.
    pub fn wait(mut child: Child, limit: Duration) -> Run {
        fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut p) = pipe {
                    p.read_to_end(&mut bytes).expect("read posta's output");
                }
                bytes
            })
        }
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for posta") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("posta hung for {limit:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        Run::from_output(Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `bin` (the test's `env!("CARGO_BIN_EXE_posta")`: Cargo names the binary only to
/// integration tests, not to the examples that share this module) with piped output and no
/// site file from the environment.
pub fn posta_command(bin: &str) -> Command {
    let mut c = Command::new(bin);
    c.env_remove("POSTA_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// `BIN --config SITE ARGS...` (BIN: posta's binary, `env!("CARGO_BIN_EXE_posta")`), run to
/// its end.
pub fn posta_site(bin: &str, site: &std::path::Path, args: &[&str]) -> Run {
    let out = posta_command(bin)
        .arg("--config")
        .arg(site)
        .args(args)
        .output()
        .expect("run posta");
    Run::from_output(out)
}
