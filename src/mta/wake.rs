//! What wakes the queue runner: the listener (a message queued, ETRN) and the control socket
//! (`posta queue flush`) send it, `relay` receives it. Its own file so the sender side and the
//! runner depend on it, never on each other.

/// What wakes the queue runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A message was queued (its id): try it now.
    Queued(String),
    /// Run the queue now, for one domain (ETRN) or everything (`None`), forgetting down
    /// states and retry times.
    Flush(Option<String>),
}
