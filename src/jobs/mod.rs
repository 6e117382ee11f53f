//! Background jobs. Each is a step (`run_once`) that tests can call directly, and a loop
//! around it that [`spawn_all`] starts: the table of what runs in the background.

pub mod callback_check;
pub mod cleanup;
pub mod cluster;
pub mod lifecycle;
pub mod offline_posts;
pub mod outbox;
pub mod presence;
pub mod retention;

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{Notify, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{app::App, mattermost::stream, storage::now_ms};

/// Every background loop, on the one instance that leads (every instance on SQLite, which is
/// one), until `shutdown`.
pub fn spawn_all(state: App, shutdown: CancellationToken) -> JoinSet<()> {
    let mut jobs = JoinSet::new();
    jobs.spawn(run_outbox(state.clone(), shutdown.clone()));
    jobs.spawn(stream::run(
        state.connection.clone(),
        state.clone(),
        state.metrics.clone(),
        shutdown.clone(),
    ));
    jobs.spawn(cleanup::run_scheduled(state.clone(), shutdown.clone()));
    jobs.spawn(presence::run_scheduled(state.clone(), shutdown.clone()));
    jobs.spawn(retention::run_scheduled(state.clone(), shutdown.clone()));
    jobs.spawn(callback_check::run_scheduled(
        state.clone(),
        shutdown.clone(),
    ));
    jobs.spawn(lifecycle::run_scheduled(state, shutdown));
    jobs
}

/// What one pass of a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Some work was tried (delivered, failed or rescheduled): chats for the outbox,
    /// messages for the offline posts.
    Worked(usize),
    /// Nothing is due; the earliest work waits until this time (ms), if any.
    Idle { next_due: Option<i64> },
}

/// Runs the outbox worker and the posting of offline messages until `shutdown`.
async fn run_outbox(state: App, shutdown: CancellationToken) {
    // The outbox's wake-ups are passed on: a new offline message wakes the outbox too. So are
    // drain requests, once the outbox is drained.
    let (drains, drain_requests) = mpsc::unbounded_channel();
    let next = outbox::Followers {
        wake: Arc::new(Notify::new()),
        drains,
    };
    let wakeup = next.wake.clone();
    tokio::join!(
        outbox::run(state.clone(), shutdown.clone(), next),
        run_offline_posts(state, shutdown, wakeup, drain_requests)
    );
}

/// Posts offline messages: works while there is work, otherwise sleeps until the next retry is
/// due, for at most a second, or until a new message wakes the outbox (at most ten looks a
/// second, as other outbox tasks wake it too). A drain request is answered after a pass that
/// started after it came and found nothing due.
async fn run_offline_posts(
    state: App,
    shutdown: CancellationToken,
    wakeup: Arc<Notify>,
    mut drains: mpsc::UnboundedReceiver<outbox::Drained>,
) {
    let mut waiting = Vec::new();
    loop {
        while let Ok(drained) = drains.try_recv() {
            waiting.push(drained);
        }
        let wait = pause_after(
            offline_posts::run_once(&state, now_ms()).await,
            "posting offline messages",
        );
        let Some(wait) = wait else { continue };
        for drained in waiting.drain(..) {
            let _ = drained.send(());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            Some(drained) = drains.recv() => waiting.push(drained),
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
    outcome: Result<Outcome, crate::storage::StoreError>,
    what: &str,
) -> Option<Duration> {
    match outcome {
        Ok(Outcome::Worked(_)) => None,
        Ok(Outcome::Idle { next_due }) => Some(
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
