//! Delivers outbox tasks to Mattermost: in order per chat, many chats at once, with backoff on
//! failures, `Retry-After` on 429, and `pending_post_id` plus a `parley_key` prop so that no
//! retry ever doubles a post.
//!
//! A dispatcher keeps up to [`LANES`] chats in delivery at once. A lane posts one chat's due
//! tasks one after another and ends at the first that must wait; the dispatcher refills free
//! lanes from one query as they end, instead of waiting for the slowest of a batch. Chats and
//! messages are read for a whole fill at once, and delivered tasks are recorded by one
//! recorder that commits everything finished meanwhile in one transaction (SQLite has a single
//! writer, shared with every visitor's message). Lanes do not wait for that commit: the
//! recorder remembers the tasks it has not written yet, and fills skip them, so a delivered
//! task is never taken for undelivered while its chat's next ones go on.
//!
//! Parts: [`handle`] (the front door requests use), [`queue`], [`lanes`] (the dispatcher and
//! the lanes), [`recorder`], [`deliver`] (one task) and [`post`] (posting exactly once).

mod deliver;
pub mod handle;
mod lanes;
mod post;
mod queue;
mod recorder;

use std::{sync::Arc, time::Duration};

use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

pub use handle::{HandOff, HandOffs};
pub(crate) use deliver::backoff;
pub(crate) use post::create_post_once;

use self::{
    handle::HANDOFF_CAPACITY,
    lanes::{LANES, Lanes, dispatch},
    queue::{Queue, Read, Taken},
    recorder::{Claims, Recorded, Recorder},
};
use crate::{state::AppState, storage::now_ms};

/// Without news, the dispatcher looks again after this long (a task may have become due).
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// Wake-ups read the whole outbox (instead of new tasks) at most this often.
const MIN_WHOLE_READ_GAP: Duration = Duration::from_millis(250);
/// Pause after the database failed, so a broken database is not hammered.
const AFTER_STORE_ERROR: Duration = Duration::from_secs(1);

/// Runs the outbox until `shutdown`, then lets the lanes finish and records what they did.
/// Every wake-up of the outbox is passed on to `also_wake`.
pub async fn run(state: AppState, shutdown: CancellationToken, also_wake: Arc<Notify>) {
    let claims = Claims::default();
    let recorded = Recorded::default();
    let (recorder, recording) =
        Recorder::start(state.store.clone(), claims.clone(), recorded.clone());
    let mut queue = Queue::new(claims, recorded);
    let mut lanes = Lanes::default();
    let mut handed = state.outbox_handoffs.open();
    let mut arrived = Vec::new();
    // What to read before the next dispatch: everything (at start, on the timer, after a lane
    // stopped early) or only tasks added since the last read (on a wake-up).
    let mut read = Some(Read::All);
    let mut look_at = Instant::now();
    loop {
        if let Some(how) = read.take() {
            // A chat waiting out a backoff may be due now (Mattermost came back and the
            // database says so), or a task was committed after a higher id was read (see
            // `Taken::Missed`): read everything, at most a few times a second.
            let how = if how == Read::New
                && (queue.has_waiting_head() || queue.missed)
                && queue.read_all_at.elapsed() >= MIN_WHOLE_READ_GAP
            {
                Read::All
            } else {
                how
            };
            if let Err(e) = queue.read(&state.store, how).await {
                tracing::error!(error = %e, "outbox worker could not read its tasks; retrying");
                look_at = Instant::now() + AFTER_STORE_ERROR;
            }
        }
        if lanes.len() < LANES {
            match dispatch(&state, &recorder, &mut queue, &mut lanes).await {
                Ok(next_due) => {
                    let wait = next_due
                        .map(|t| Duration::from_millis((t - now_ms()).clamp(0, 1000) as u64))
                        .unwrap_or(IDLE_LOOK);
                    look_at = look_at.min(Instant::now() + wait);
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox worker could not read a chat; retrying");
                    look_at = Instant::now() + AFTER_STORE_ERROR;
                }
            }
        }
        if read.is_none() && lanes.len() < LANES && queue.wants_more() {
            read = Some(Read::Next);
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ended) = lanes.join_next() => match ended {
                Ok(end) => {
                    if end.stopped_early {
                        read = Some(Read::All);
                    }
                    if end.store_failed {
                        look_at = Instant::now() + AFTER_STORE_ERROR;
                        read = None;
                    }
                    if end.recovered {
                        // A task that had failed before went through: Mattermost is back.
                        mattermost_is_back(&state).await;
                        read = Some(Read::All);
                    }
                }
                Err(e) => {
                    // A bug: its chat is free again, and its tasks are read again.
                    tracing::error!(error = %e, "an outbox lane stopped unexpectedly");
                    read = Some(Read::All);
                }
            },
            _ = state.outbox_wakeup.notified() => {
                read = Some(read.unwrap_or(Read::New));
                also_wake.notify_one();
            }
            _ = handed.recv_many(&mut arrived, HANDOFF_CAPACITY) => {
                for task in arrived.drain(..) {
                    match queue.take(task) {
                        Taken::Queued | Taken::AlreadyRead => {}
                        Taken::ToRead => read = Some(read.unwrap_or(Read::New)),
                        Taken::Missed => {
                            read = Some(read.unwrap_or(Read::New));
                            // The whole read it needs may have to wait for its turn.
                            look_at = look_at.min(queue.read_all_at + MIN_WHOLE_READ_GAP);
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(look_at) => {
                read = Some(Read::All);
                look_at = Instant::now() + IDLE_LOOK;
            }
        }
    }
    // Tasks still waiting to be taken are in the database for the next run.
    state.outbox_handoffs.close();
    while lanes.join_next().await.is_some() {}
    drop(recorder);
    let _ = recording.await;
}

/// Makes every delivery waiting out a backoff due now and wakes the worker: called when
/// Mattermost answers again, so the queue drains at once instead of after its backoffs.
pub async fn mattermost_is_back(state: &AppState) {
    match state.store.retry_waiting_now().await {
        Ok(0) => {}
        Ok(_) => state.wake_outbox(),
        Err(e) => tracing::warn!(error = %e, "could not reschedule waiting deliveries"),
    }
    match state.store.retry_offline_posts_now().await {
        Ok(0) => {}
        Ok(_) => state.wake_outbox(),
        Err(e) => tracing::warn!(error = %e, "could not reschedule waiting offline messages"),
    }
}
