//! The hold between a takeover and the return: while mailserver2 serves users, what its
//! mailboxes hold differs from the mirror's map by what the users did, and the return after
//! the failback reads exactly that difference. A mirror pass in between would erase part of it
//! (it sets mailserver1's flags again), so a takeover puts the mirror on hold and only a
//! complete return ([`super::back`]) lifts it.
//!
//! The hold is a file in the mirror's state directory, written durably ([`crate::durable`]):
//! a crash right after a takeover leaves the mirror held, never free.

use std::io;
use std::path::{Path, PathBuf};

/// The file whose presence holds the mirror.
fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("return-pending")
}

/// Holds the mirror (after a takeover), keeping the time of the first hold when there is one.
pub fn hold(state_dir: &Path, now: u64) -> io::Result<()> {
    if held(state_dir)?.is_some() {
        return Ok(());
    }
    std::fs::create_dir_all(state_dir)?;
    crate::durable::replace(&path(state_dir), format!("{now}\n").as_bytes(), 0o600)
}

/// Since when (Unix time) the mirror is held; None: it is not.
pub fn held(state_dir: &Path) -> io::Result<Option<u64>> {
    match std::fs::read_to_string(path(state_dir)) {
        // A hold whose time cannot be read still holds.
        Ok(text) => Ok(Some(text.trim().parse().unwrap_or(0))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Lifts the hold (after a complete return), durably.
pub fn release(state_dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(path(state_dir)) {
        Ok(()) => crate::durable::sync_dir(state_dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_keeps_its_first_time_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("mirror");
        assert_eq!(held(&state).unwrap(), None);
        hold(&state, 100).unwrap();
        hold(&state, 200).unwrap();
        assert_eq!(held(&state).unwrap(), Some(100));
        release(&state).unwrap();
        release(&state).unwrap();
        assert_eq!(held(&state).unwrap(), None);
    }
}
