//! Background jobs. Each is a loop around a `run_once` that tests can call directly.

pub mod cleanup;
pub mod lifecycle;
pub mod outbox;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{state::AppState, storage::now_ms};

/// Runs the outbox worker until `shutdown`: works while there is work, otherwise sleeps until
/// woken, until the next retry is due, or for at most a second.
pub async fn run_outbox(state: AppState, shutdown: CancellationToken) {
    loop {
        let wait = match outbox::run_once(&state).await {
            Ok(outbox::Outcome::Worked(_)) => continue,
            Ok(outbox::Outcome::Idle { next_due }) => next_due
                .map(|t| Duration::from_millis((t - now_ms()).clamp(0, 1000) as u64))
                .unwrap_or(Duration::from_secs(1)),
            Err(e) => {
                tracing::error!(error = %e, "outbox worker failed; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = state.outbox_wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
