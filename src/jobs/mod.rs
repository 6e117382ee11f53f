//! Background jobs. Each is a loop around a `run_once` that tests can call directly.

pub mod callback_check;
pub mod cleanup;
pub mod cluster;
pub mod lifecycle;
pub mod offline_posts;
pub mod outbox;
pub mod presence;
pub mod retention;

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use tokio_util::sync::CancellationToken;

use crate::{app::App, storage::now_ms};

/// Runs the outbox worker and the posting of offline messages until `shutdown`.
pub async fn run_outbox(state: App, shutdown: CancellationToken) {
    // The outbox's wake-ups are passed on: a new offline message wakes the outbox too.
    let offline = Arc::new(Notify::new());
    tokio::join!(
        outbox::run(state.clone(), shutdown.clone(), offline.clone()),
        run_offline_posts(state, shutdown, offline)
    );
}

/// Posts offline messages: works while there is work, otherwise sleeps until the next retry is
/// due, for at most a second, or until a new message wakes the outbox (at most ten looks a
/// second, as other outbox tasks wake it too).
async fn run_offline_posts(state: App, shutdown: CancellationToken, wakeup: Arc<Notify>) {
    loop {
        let wait = pause_after(
            offline_posts::run_once(&state).await,
            "posting offline messages",
        );
        let Some(wait) = wait else { continue };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// How long a worker may sleep after a pass: `None` after work (go on at once), until the next
/// retry is due, or at most a second.
fn pause_after(
    outcome: Result<offline_posts::Outcome, crate::storage::StoreError>,
    what: &str,
) -> Option<Duration> {
    match outcome {
        Ok(offline_posts::Outcome::Worked(_)) => None,
        Ok(offline_posts::Outcome::Idle { next_due }) => Some(
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
