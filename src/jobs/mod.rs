//! Background jobs. Each is a loop around a `run_once` that tests can call directly.

pub mod cleanup;
pub mod lifecycle;
pub mod offline_posts;
pub mod outbox;
pub mod presence;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{state::AppState, storage::now_ms};

/// Runs the outbox worker (and the posting of offline messages) until `shutdown`: works while
/// there is work, otherwise sleeps until woken, until the next retry is due, or for at most a
/// second.
pub async fn run_outbox(state: AppState, shutdown: CancellationToken) {
    loop {
        let outbox = pause_after(outbox::run_once(&state).await, "outbox worker");
        let offline = pause_after(
            offline_posts::run_once(&state).await,
            "posting offline messages",
        );
        let wait = match (outbox, offline) {
            (Some(a), Some(b)) => a.min(b),
            _ => continue, // one of them worked: there may be more
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = state.outbox_wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long a worker may sleep after a pass: `None` after work (go on at once), until the next
/// retry is due, or at most a second.
fn pause_after(
    outcome: Result<outbox::Outcome, crate::storage::StoreError>,
    what: &str,
) -> Option<Duration> {
    match outcome {
        Ok(outbox::Outcome::Worked(_)) => None,
        Ok(outbox::Outcome::Idle { next_due }) => Some(
            next_due
                .map(|t| Duration::from_millis((t - now_ms()).clamp(0, 1000) as u64))
                .unwrap_or(Duration::from_secs(1)),
        ),
        Err(e) => {
            tracing::error!(error = %e, "{what} failed; retrying");
            Some(Duration::from_secs(1))
        }
    }
}
