//! The wall clock as posta stores it: whole seconds since the Unix epoch (queue arrival and
//! retry times, the watch's and the takeover's state files, TSIG signing time).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch; 0 for a clock set before 1970.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
