//! The wall clock as posta stores it: whole seconds since the Unix epoch (queue arrival and
//! retry times, the watch's and the takeover's state files, TSIG signing time).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch; 0 for a clock set before 1970.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix time `t` as RFC 3339 UTC, e.g. `2026-12-03T10:15:00Z`, for messages to operators.
pub fn rfc3339(t: u64) -> String {
    let at = i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("@{t}"))
}
