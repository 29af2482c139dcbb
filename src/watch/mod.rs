//! `posta watch` (issue 6): the daemon on mailserver2 that probes mailserver1 and decides, and
//! its counterpart on mailserver1 in mode "vip" ([`primary`]).
//!
//! - `policy`    the decision as a pure state machine (fall, grace, rise, witnesses).
//! - `daemon`    the loop: probes, policy, actions as posta's own commands, hooks, reports.
//! - `witness`   other vantage points that must agree before a takeover.
//! - `holder`    who answers for the VIP each round: said once per change, yielded in a duplicate.
//! - `primary`   the same daemon on mailserver1 (mode "vip"): releases its VIP when its mail
//!   services die, reclaims and announces it the moment mailserver2 lets go.
//! - `snapshot`  the state file `posta status` reads, and the Prometheus metrics.
//! - `http`      `/metrics` and `/status`.
//! - `waiting`   what waits on this host for mailserver1 (the mta's Maildirs and queue).
//! - `sdnotify`  systemd's readiness and watchdog protocol.
//! - `keepalived` posta as keepalived's check and notify script, and its config.
//! - `notify_queue` keepalived's plain notify scripts, put back in arrival order.

pub mod daemon;
pub mod holder;
pub mod http;
pub mod keepalived;
pub mod notify_queue;
pub mod policy;
pub mod primary;
pub mod sdnotify;
pub mod snapshot;
pub mod waiting;
pub mod witness;

/// Where the daemon writes its state unless `[watch] state_file` says otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/posta/watch.json";
