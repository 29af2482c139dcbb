//! `posta status`: who holds mailserver1's address or record, from the state file, and the
//! recent takeovers and failbacks; what waits on this host for mailserver1 (counted now, under
//! the site's `[mta] maildir` and queue) and the watch's last sweep.

use std::path::PathBuf;

use super::{EXIT_FAILURE, EXIT_USAGE, print};
use crate::cli::StatusArgs;
use crate::clock::unix_now;
use crate::config::Role;
use crate::mirror::status::{self, AccountLag};
use crate::takeover::action::resolvers_may_hold;
use crate::takeover::state::State;
use crate::takeover::vip::{Holders, ProbeSettings};
use crate::watch::snapshot::Snapshot;
use crate::watch::waiting::{self, Waiting};

/// Whether the daemon that wrote the snapshot still runs: its pid alive and still a posta
/// (a pid reused by another program is not the watch).
fn watch_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "posta")
}

/// The watch daemon's view, from its state file. A stopped daemon's state is history, not the
/// present: it is said to be not running, with the age of what it last wrote.
fn watch_lines(w: &Snapshot, path: &std::path::Path, alive: bool, now: u64) -> String {
    let age = now.saturating_sub(w.updated);
    let mut out = if alive {
        format!(
            "watch: {} for {}s{} (pid {}, updated {age}s ago, {})\n",
            w.state,
            now.saturating_sub(w.state_since),
            w.grace_left_seconds
                .map(|g| format!(", takeover grace left {g:.0}s"))
                .unwrap_or_default(),
            w.pid,
            path.display()
        )
    } else {
        format!(
            "watch: not running (pid {} is gone); its last state, written {age}s ago, was {} ({})\n",
            w.pid,
            w.state,
            path.display()
        )
    };
    for p in &w.probes {
        out.push_str(&format!(
            "  {} {}: {} ({:.0} ms)\n",
            p.status,
            p.probe,
            p.summary,
            p.latency_seconds * 1000.0
        ));
    }
    if let Some(t) = w.transitions.last() {
        out.push_str(&format!(
            "  last transition: {} -> {}: {}\n",
            t.from, t.to, t.reason
        ));
    }
    out.push_str(&sweep_line(w, now));
    out.push_str(&mirror_pass_line(w, now));
    out.push('\n');
    out
}

/// The sweep: how often, and how the last one went.
fn sweep_line(w: &Snapshot, now: u64) -> String {
    let Some(every) = w.sweep_interval_seconds else {
        return "  sweep: off (no sweep interval, or no accounts to migrate)\n".into();
    };
    let last = match &w.last_sweep {
        None => "none yet".into(),
        Some(s) => format!(
            "{} {}s ago, took {:.1}s: {}",
            if s.ok { "ok" } else { "FAILED" },
            now.saturating_sub(s.at as u64),
            s.seconds,
            s.detail
        ),
    };
    format!("  sweep: every {every:.0}s while healthy; last {last}\n")
}

/// The watch's mirror duty: how often, and how the last pass went (nothing without
/// `[mirror]`).
fn mirror_pass_line(w: &Snapshot, now: u64) -> String {
    let Some(every) = w.mirror_interval_seconds else {
        return String::new();
    };
    let last = match &w.last_mirror {
        None => "none yet".into(),
        Some(s) => format!(
            "{} {}s ago, took {:.1}s{}",
            if s.ok { "ok" } else { "FAILED" },
            now.saturating_sub(s.at as u64),
            s.seconds,
            if s.ok {
                String::new()
            } else {
                format!(": {}", s.detail)
            }
        ),
    };
    format!("  mirror: a pass every {every:.0}s while healthy; last {last}\n")
}

/// What waits here for mailserver1, one line per place.
fn waiting_lines(w: &Waiting, now: u64) -> String {
    let mut out = String::new();
    for (place, pile) in [("Maildirs", &w.maildir), ("mta queue", &w.queue)] {
        if let Some(p) = pile {
            out.push_str(&format!("waiting here ({place}): {}\n", p.describe(now)));
        }
    }
    out
}

/// One holding; after a DNS change, how long resolvers may still hand out the address it
/// replaced, counted down from the change to `now` (seconds since the epoch).
fn holding_line(h: &crate::takeover::state::Holding, now: u64) -> String {
    let who = match h.holder.as_str() {
        "backup" => "mailserver2 (taken over)",
        _ => "mailserver1",
    };
    let mut line = format!(
        "{} ({}): recorded as held by {who} since {}: {}\n",
        h.resource, h.mode, h.since, h.value
    );
    match (h.old_cached_for(now), h.old_ttl) {
        (Some(0), Some(ttl)) => line.push_str(&format!(
            "  resolvers no longer hand out the old address (its TTL, {ttl} s, has run out)\n"
        )),
        (Some(left), _) => line.push_str(&format!(
            "  {}, counted from {}\n",
            resolvers_may_hold(left),
            h.since
        )),
        _ => {}
    }
    line
}

/// Who answers for the VIP now, from this host's ARP probe: the truth, whatever the state file
/// recorded.
fn holders_line(h: &Result<Holders, String>, me: Option<Role>) -> String {
    match h {
        Ok(h) => {
            let mut line = format!("answering now (ARP probe): {}", h.describe());
            if let (true, Some(role)) = (h.this_host, me) {
                line.push_str(&format!("; this host is {}", role_name(role)));
            }
            line + "\n"
        }
        Err(e) => format!("answering now: unknown, the ARP probe failed: {e}\n"),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "mailserver1",
        Role::Backup => "mailserver2",
        Role::Relay => "the relay",
    }
}

/// With `[mirror]` in the site file: each account's mirror lag, from the mirror's state files
/// (None without `[mirror]`; an error when the accounts cannot be listed).
pub(super) fn mirror_lags(site: &crate::config::Site) -> Option<Result<Vec<AccountLag>, String>> {
    if !site.mirror.enabled {
        return None;
    }
    let dir = super::mirror::state_dir(site);
    Some(super::migrate::site_accounts(site).map(|accounts| {
        let names: Vec<String> = accounts.into_iter().map(|a| a.user).collect();
        status::lags(&dir, &names, unix_now())
    }))
}

/// The mirror: one line per account with its lag, flagged past `max_lag` seconds.
fn mirror_lines(lags: &Result<Vec<AccountLag>, String>, max_lag: u64) -> String {
    let lags = match lags {
        Ok(l) => l,
        Err(e) => return format!("mirror: cannot list the accounts: {e}\n"),
    };
    let stale = lags.iter().filter(|l| l.stale(max_lag)).count();
    let mut out = format!(
        "mirror: {} accounts, {stale} older than max_lag ({max_lag}s)\n",
        lags.len()
    );
    for l in lags {
        let mut line = format!("  {}: lag {}", l.account, l.describe());
        if l.pending > 0 {
            line.push_str(&format!(
                ", {} messages of an interrupted batch pending",
                l.pending
            ));
        }
        if l.stale(max_lag) {
            line.push_str(" (STALE)");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Events shown in the table (the JSON has the whole history).
const RECENT: usize = 10;

pub async fn execute(config: Option<PathBuf>, args: StatusArgs) -> u8 {
    let site = match super::takeover::site(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("posta: {e}");
            return EXIT_USAGE;
        }
    };
    let path = super::takeover::state_file(args.state_file, site.as_ref());
    let watch_path = args
        .watch_state_file
        .clone()
        .or(site.as_ref().and_then(|s| s.watch.state_file.clone()))
        .unwrap_or_else(|| PathBuf::from(crate::watch::DEFAULT_STATE_FILE));
    let daemon = Snapshot::load(&watch_path);
    let mta = site.as_ref().and_then(|s| s.mta.as_ref());
    let (maildir, queue) = (
        mta.and_then(|m| m.maildir.clone()),
        mta.and_then(|m| m.queue.clone()),
    );
    let waiting = if maildir.is_some() || queue.is_some() {
        Some(waiting::count_blocking(maildir, queue).await)
    } else {
        None
    };
    let holders = match site.as_ref().map(super::takeover::site_vip) {
        Some(Ok(Some(vip))) => {
            let ms1 = site.as_ref().map(|s| s.primary.probe_target());
            Some(
                crate::takeover::vip::holders(&vip, &ProbeSettings::default(), ms1)
                    .await
                    .map_err(|e| e.to_string()),
            )
        }
        Some(Err(e)) => Some(Err(e)),
        _ => None,
    };
    let me = site.as_ref().and_then(crate::config::this_host);
    let mirror = site.as_ref().and_then(|s| {
        let held = crate::mirror::hold::held(&super::mirror::state_dir(s)).unwrap_or(Some(0));
        Some((mirror_lags(s)?, s.mirror.max_lag.as_secs(), held))
    });
    let state = match State::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("posta: {e}");
            return EXIT_FAILURE;
        }
    };
    if args.json {
        // The takeover state's fields stay at the top, as before; the daemon's view is added.
        let mut both = serde_json::to_value(&state).unwrap_or_default();
        if let Some(obj) = both.as_object_mut() {
            obj.insert(
                "watch".into(),
                serde_json::to_value(&daemon).unwrap_or_default(),
            );
            // The countdown of each DNS change's cached old address, as the table says it.
            if let Some(holdings) = obj.get_mut("holdings").and_then(|h| h.as_array_mut()) {
                let now = unix_now();
                for (json, h) in holdings.iter_mut().zip(&state.holdings) {
                    if let (Some(left), Some(o)) = (h.old_cached_for(now), json.as_object_mut()) {
                        o.insert("resolvers_may_hand_out_old_for_seconds".into(), left.into());
                    }
                }
            }
            obj.insert(
                "waiting".into(),
                serde_json::to_value(&waiting).unwrap_or_default(),
            );
            if let Some(h) = &holders {
                let v = match h {
                    Ok(h) => serde_json::to_value(h).unwrap_or_default(),
                    Err(e) => serde_json::json!({ "error": e }),
                };
                obj.insert("vip_holders".into(), v);
            }
            if let Some((lags, max_lag, held)) = &mirror {
                let v = match lags {
                    Ok(l) => serde_json::json!({
                        "max_lag_seconds": max_lag,
                        "accounts": l,
                        "held_since": held,
                    }),
                    Err(e) => serde_json::json!({ "error": e, "held_since": held }),
                };
                obj.insert("mirror".into(), v);
            }
        }
        match serde_json::to_string_pretty(&both) {
            Ok(j) => print(&format!("{j}\n")),
            Err(e) => {
                eprintln!("posta: cannot encode the state: {e}");
                return EXIT_FAILURE;
            }
        }
        return 0;
    }
    let mut out = String::new();
    if let Some(w) = &daemon {
        out.push_str(&watch_lines(w, &watch_path, watch_alive(w.pid), unix_now()));
    }
    if let Some(w) = &waiting {
        out.push_str(&waiting_lines(w, unix_now()));
    }
    if let Some((lags, max_lag, held)) = &mirror {
        out.push_str(&mirror_lines(lags, *max_lag));
        if let Some(since) = held {
            out.push_str(&format!(
                "  ON HOLD since {}: a takeover; after the failback, posta migrate --return \
                 carries back what users did on mailserver2 and lifts it\n",
                crate::clock::rfc3339(*since)
            ));
        }
    }
    if let Some(h) = &holders {
        out.push_str(&holders_line(h, me));
    }
    if state.holdings.is_empty() {
        out.push_str(&format!(
            "no takeover recorded in {}: mailserver1 should hold its own address and record\n",
            path.display()
        ));
    }
    for h in &state.holdings {
        out.push_str(&holding_line(h, unix_now()));
    }
    if !state.history.is_empty() {
        out.push_str("\nrecent:\n");
        let skip = state.history.len().saturating_sub(RECENT);
        for e in &state.history[skip..] {
            out.push_str(&format!(
                "  {} {:?} {} {}: {} -> {} (on {})\n",
                e.time, e.action, e.mode, e.resource, e.old, e.new, e.host
            ));
        }
    }
    print(&out);
    0
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{holding_line, watch_lines};
    use crate::takeover::state::Holding;

    #[test]
    fn a_dns_holding_counts_down_how_long_the_old_address_lives_in_caches() {
        let h = Holding {
            mode: "dns".into(),
            resource: "mail.example.org. A/AAAA".into(),
            holder: "backup".into(),
            value: "10.0.0.26".into(),
            since: "2026-01-01T00:00:00Z".into(),
            original_ttl: Some(3600),
            old_ttl: Some(3600),
            changed_at: Some(1000),
        };
        assert_eq!(
            holding_line(&h, 1600).lines().nth(1),
            Some(
                "  resolvers may hand out the old address for up to 3000 s (the record's TTL), \
                 counted from 2026-01-01T00:00:00Z"
            )
        );
        assert_eq!(
            holding_line(&h, 5000).lines().nth(1),
            Some("  resolvers no longer hand out the old address (its TTL, 3600 s, has run out)")
        );
        // After failback: the old address is mailserver2's, with the TTL takeover wrote.
        let back = Holding {
            holder: "primary".into(),
            original_ttl: None,
            old_ttl: Some(60),
            ..h.clone()
        };
        assert!(
            holding_line(&back, 1010).contains("for up to 50 s (the record's TTL)"),
            "{}",
            holding_line(&back, 1010)
        );
        let vip = Holding {
            original_ttl: None,
            old_ttl: None,
            changed_at: None,
            mode: "vip".into(),
            ..h
        };
        assert_eq!(holding_line(&vip, 1600).lines().count(), 1);
    }
    use crate::watch::snapshot::Snapshot;

    #[test]
    fn who_answers_is_said_with_this_hosts_role_or_why_it_is_unknown() {
        use crate::config::Role;
        use crate::takeover::vip::{Holders, Mac};
        let here = Holders::new(
            "10.0.0.100".parse().unwrap(),
            Mac([2, 0, 0, 0, 0, 0x12]),
            true,
            &[],
            None,
        );
        assert_eq!(
            super::holders_line(&Ok(here), Some(Role::Backup)),
            "answering now (ARP probe): this host answers for 10.0.0.100 (02:00:00:00:00:12); \
             this host is mailserver2\n"
        );
        assert_eq!(
            super::holders_line(&Err("interface eth9 not found".into()), None),
            "answering now: unknown, the ARP probe failed: interface eth9 not found\n"
        );
    }

    #[test]
    fn a_stopped_watch_is_not_said_to_be_healthy() {
        let w = Snapshot {
            pid: 4242,
            state: "healthy".into(),
            state_since: 1000,
            updated: 1004,
            ..Snapshot::default()
        };
        let path = Path::new("watch.json");
        // It used to say "healthy for 30s (pid 4242, not running, updated 26s ago)".
        let stopped = watch_lines(&w, path, false, 1030);
        assert!(
            stopped.starts_with(
                "watch: not running (pid 4242 is gone); its last state, written 26s ago, was healthy"
            ),
            "{stopped}"
        );
        assert!(!stopped.contains("healthy for"), "{stopped}");
        let running = watch_lines(&w, path, true, 1030);
        assert!(
            running.starts_with("watch: healthy for 30s (pid 4242, updated 26s ago"),
            "{running}"
        );
        assert!(running.contains("  sweep: off"), "{running}");
    }

    #[test]
    fn each_mirrored_account_shows_its_lag_and_stale_ones_are_flagged() {
        use crate::mirror::status::AccountLag;
        let lag = |account: &str, lag: Option<u64>, pending| AccountLag {
            account: account.into(),
            last_pass: lag.map(|l| 1000 - l),
            lag_seconds: lag,
            pending,
            error: None,
        };
        let lines = super::mirror_lines(
            &Ok(vec![
                lag("alice", Some(12), 0),
                lag("bob", Some(400), 3),
                lag("carol", None, 0),
            ]),
            180,
        );
        assert_eq!(
            lines,
            "mirror: 3 accounts, 2 older than max_lag (180s)\n\
             \x20 alice: lag 12s\n\
             \x20 bob: lag 6m40s, 3 messages of an interrupted batch pending (STALE)\n\
             \x20 carol: lag never (STALE)\n"
        );
    }

    #[test]
    fn the_last_sweep_and_what_waits_are_shown() {
        use crate::watch::snapshot::SweepRecord;
        use crate::watch::waiting::{Pile, Waiting};
        let w = Snapshot {
            sweep_interval_seconds: Some(60.0),
            last_sweep: Some(SweepRecord {
                at: 1000.0,
                seconds: 2.25,
                ok: false,
                detail: "journal state/alice is in use".into(),
            }),
            ..Snapshot::default()
        };
        assert_eq!(super::mirror_pass_line(&w, 1030), "", "no [mirror]");
        let mirrored = Snapshot {
            mirror_interval_seconds: Some(3.0),
            last_mirror: Some(SweepRecord {
                at: 1020.0,
                seconds: 0.5,
                ok: false,
                detail: "mailserver1: connection refused".into(),
            }),
            ..Snapshot::default()
        };
        assert_eq!(
            super::mirror_pass_line(&mirrored, 1030),
            "  mirror: a pass every 3s while healthy; last FAILED 10s ago, took 0.5s: \
             mailserver1: connection refused\n"
        );
        assert_eq!(
            super::sweep_line(&w, 1030),
            "  sweep: every 60s while healthy; last FAILED 30s ago, took 2.2s: \
             journal state/alice is in use\n"
        );
        let waiting = Waiting {
            maildir: Some(Pile {
                messages: 100_000,
                bytes: 7,
                oldest: Some(900),
                capped: true,
                error: None,
            }),
            queue: Some(Pile::default()),
        };
        assert_eq!(
            super::waiting_lines(&waiting, 1000),
            "waiting here (Maildirs): ≥ 100000 messages (≥ 7 bytes), the oldest 100s old\n\
             waiting here (mta queue): 0 messages (0 bytes)\n"
        );
    }
}
