//! Hooks: commands the operator wants run before and after each action (stop fetchmail, page
//! someone, flush a queue). Unlike keepalived's notify scripts, which its users find fired
//! unordered and unwaited (docs/failover.md §1.1), posta runs them one after another, waits for
//! each, kills one that outlives its time limit, and a failing `pre` hook stops the action
//! before anything changed.
//!
//! Each hook is an argv (no shell). The event travels in its environment: `POSTA_EVENT`
//! (`pre-takeover`, `post-takeover`, `pre-failback`, `post-failback`), `POSTA_MODE`,
//! `POSTA_RESOURCE`, `POSTA_OLD`, `POSTA_NEW`, `POSTA_CHANGED`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

pub use crate::config::Hooks;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Transition,
    PreTakeover,
    PostTakeover,
    PreFailback,
    PostFailback,
}

impl Moment {
    pub fn name(self) -> &'static str {
        match self {
            Moment::Transition => "transition",
            Moment::PreTakeover => "pre-takeover",
            Moment::PostTakeover => "post-takeover",
            Moment::PreFailback => "pre-failback",
            Moment::PostFailback => "post-failback",
        }
    }
}

/// What the hooks are told about the event.
#[derive(Debug, Clone, Default)]
pub struct EventEnv {
    pub mode: String,
    pub resource: String,
    pub old: String,
    pub new: String,
    pub changed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{moment} hook {program} could not start: {reason}")]
    Start {
        moment: &'static str,
        program: String,
        reason: String,
    },
    #[error("{moment} hook {program} failed ({status}){tail}")]
    Failed {
        moment: &'static str,
        program: String,
        status: String,
        tail: String,
    },
    #[error("{moment} hook {program} did not finish within {limit:?}; killed")]
    Timeout {
        moment: &'static str,
        program: String,
        limit: Duration,
    },
}

impl Hooks {
    fn list(&self, moment: Moment) -> &[Vec<String>] {
        match moment {
            Moment::Transition => &self.on_transition,
            Moment::PreTakeover => &self.pre_takeover,
            Moment::PostTakeover => &self.post_takeover,
            Moment::PreFailback => &self.pre_failback,
            Moment::PostFailback => &self.post_failback,
        }
    }

    /// What `--dry-run` prints for `moment`.
    pub fn describe(&self, moment: Moment) -> Vec<String> {
        self.list(moment)
            .iter()
            .map(|argv| format!("run {} hook: {}", moment.name(), argv.join(" ")))
            .collect()
    }

    /// Runs the hooks of `moment` in order; stops at the first failure.
    pub async fn run(&self, moment: Moment, event: &EventEnv) -> Result<usize, HookError> {
        let hooks = self.list(moment);
        for argv in hooks {
            run_one(moment, argv, event, self.timeout).await?;
        }
        Ok(hooks.len())
    }
}

async fn run_one(
    moment: Moment,
    argv: &[String],
    event: &EventEnv,
    limit: Duration,
) -> Result<(), HookError> {
    let program = argv.first().cloned().unwrap_or_default();
    let start_err = |reason: String| HookError::Start {
        moment: moment.name(),
        program: program.clone(),
        reason,
    };
    let Some((exe, args)) = argv.split_first() else {
        return Err(start_err("empty command".into()));
    };
    let mut child = Command::new(PathBuf::from(exe))
        .args(args)
        .env("POSTA_EVENT", moment.name())
        .env("POSTA_MODE", &event.mode)
        .env("POSTA_RESOURCE", &event.resource)
        .env("POSTA_OLD", &event.old)
        .env("POSTA_NEW", &event.new)
        .env("POSTA_CHANGED", if event.changed { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| start_err(e.to_string()))?;
    let stderr = child.stderr.take();
    let read_err = async move {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        if let Some(mut s) = stderr {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    tracing::info!(hook = %argv.join(" "), event = moment.name(), "running hook");
    match tokio::time::timeout(limit, async { tokio::join!(child.wait(), read_err) }).await {
        Err(_) => {
            let _ = child.kill().await;
            Err(HookError::Timeout {
                moment: moment.name(),
                program,
                limit,
            })
        }
        Ok((Err(e), _)) => Err(start_err(e.to_string())),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), err)) => {
            let text = String::from_utf8_lossy(&err);
            let last = text.lines().last().unwrap_or("").trim();
            Err(HookError::Failed {
                moment: moment.name(),
                program,
                status: status.to_string(),
                tail: if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn hooks_run_in_order_with_the_event_and_stop_at_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let l = log.display();
        let hooks = Hooks {
            pre_takeover: vec![
                sh(&format!(
                    "sleep 0.2; echo one $POSTA_EVENT $POSTA_NEW >> {l}"
                )),
                sh(&format!("echo two $POSTA_MODE $POSTA_CHANGED >> {l}")),
                sh("echo broken >&2; exit 3"),
                sh(&format!("echo never >> {l}")),
            ],
            timeout: Duration::from_secs(5),
            ..Hooks::default()
        };
        let event = EventEnv {
            mode: "vip".into(),
            new: "ms2".into(),
            changed: true,
            ..EventEnv::default()
        };
        let e = hooks.run(Moment::PreTakeover, &event).await.unwrap_err();
        assert!(
            e.to_string().contains("failed (exit status: 3): broken"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "one pre-takeover ms2\ntwo vip 1\n"
        );
        assert_eq!(hooks.run(Moment::PostTakeover, &event).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_hook_that_hangs_is_killed_at_its_limit() {
        let hooks = Hooks {
            post_failback: vec![sh("sleep 30")],
            timeout: Duration::from_millis(200),
            ..Hooks::default()
        };
        let e = hooks
            .run(Moment::PostFailback, &EventEnv::default())
            .await
            .unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }), "{e}");
        let missing = Hooks {
            pre_failback: vec![vec!["/nonexistent/hook".into()]],
            timeout: Duration::from_secs(1),
            ..Hooks::default()
        };
        let e = missing
            .run(Moment::PreFailback, &EventEnv::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("could not start"), "{e}");
    }
}
