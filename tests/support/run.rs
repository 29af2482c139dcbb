//! A finished `posta` run as the integration tests look at it: exit code, stdout, stderr.

use std::fmt;
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
    /// the test.
    pub fn wait(mut child: Child, limit: Duration) -> Run {
        let deadline = Instant::now() + limit;
        while child.try_wait().expect("wait for posta").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("posta hung for {limit:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Run::from_output(child.wait_with_output().expect("collect posta output"))
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
