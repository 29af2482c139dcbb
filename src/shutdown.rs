//! The shutdown signal every long-running task selects on: a `watch` channel whose value turns
//! true once, when the process is asked to stop.

use tokio::sync::watch;

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}
