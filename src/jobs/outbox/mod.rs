//! Delivers outbox tasks to Mattermost: in order per chat, many chats at once, with backoff on
//! failures, `Retry-After` on 429, and `pending_post_id` plus a `parley_key` prop so that no
//! retry ever doubles a post.
//!
//! A dispatcher keeps up to `lanes::LANES` chats in delivery at once. A lane posts one chat's due
//! tasks one after another and ends at the first that must wait; the dispatcher refills free
//! lanes from one query as they end, instead of waiting for the slowest of a batch. Chats and
//! messages are read for a whole fill at once, and delivered tasks are recorded by one
//! recorder that commits everything finished meanwhile in one transaction (SQLite has a single
//! writer, shared with every visitor's message). Lanes do not wait for that commit: the
//! recorder remembers the tasks it has not written yet, and fills skip them, so a delivered
//! task is never taken for undelivered while its chat's next ones go on.
//!
//! Parts: [`queue`], [`lanes`] (the dispatcher and the lanes), [`recorder`], [`deliver`] (one
//! task) and [`post`] (posting exactly once). The front door requests use is the outbox's
//! handle in the application core (`app::outbox`).

mod deliver;
mod lanes;
mod post;
mod queue;
mod recorder;

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

pub use crate::app::outbox::{Drained, HandOff, HandOffs, mattermost_is_back};
pub(crate) use deliver::backoff;
pub(crate) use post::create_post_once;

use crate::app::outbox::HANDOFF_CAPACITY;

use self::{
    lanes::{LANES, Lanes, dispatch},
    queue::{Queue, Read, Taken},
    recorder::{Claims, Recorded, Recorder},
};
use crate::{
    app::App,
    jobs::{Outcome, offline_posts},
    storage::{StoreError, now_ms},
};

/// Without news, the dispatcher looks again after this long (a task may have become due).
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// Wake-ups read the whole outbox (instead of new tasks) at most this often.
const MIN_WHOLE_READ_GAP: Duration = Duration::from_millis(250);
/// Pause after the database failed, so a broken database is not hammered.
const AFTER_STORE_ERROR: Duration = Duration::from_secs(1);

/// Runs the outbox until `shutdown`, then lets the lanes finish and records what they did.
/// Every wake-up of the outbox is passed on to the offline posts (`next.wake`), and so is a
/// drain request once the outbox itself is drained (`next.drains`).
pub async fn run(state: App, shutdown: CancellationToken, next: Followers) {
    let mut worker = Worker::start(&state);
    let (mut handed, mut drains) = state.outbox.handoffs.open();
    let mut arrived = Vec::new();
    // What to read before the next dispatch: everything (at start, on the timer, after a lane
    // stopped early) or only tasks added since the last read (on a wake-up).
    let mut read = Some(Read::All);
    let mut look_at = Instant::now();
    // Drain requests waiting until nothing due is left, and whether that is so: a whole read
    // made while no lane ran, after which no lane started.
    let mut draining: Vec<Drained> = Vec::new();
    let mut settled = false;
    loop {
        let Worker {
            queue,
            lanes,
            recorder,
            ..
        } = &mut worker;
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
            match queue.read(&state.store, how).await {
                Ok(()) => settled |= how == Read::All && lanes.is_empty(),
                Err(e) => {
                    tracing::error!(error = %e, "outbox worker could not read its tasks; retrying");
                    look_at = Instant::now() + AFTER_STORE_ERROR;
                    settled = false;
                }
            }
        }
        if lanes.len() < LANES {
            match dispatch(&state, recorder, queue, lanes, now_ms()).await {
                Ok(next_due) => {
                    let wait = next_due
                        .map(|t| Duration::from_millis((t - now_ms()).clamp(0, 1000) as u64))
                        .unwrap_or(IDLE_LOOK);
                    look_at = look_at.min(Instant::now() + wait);
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox worker could not read a chat; retrying");
                    look_at = Instant::now() + AFTER_STORE_ERROR;
                    settled = false;
                }
            }
        }
        if !lanes.is_empty() {
            settled = false;
        }
        if read.is_none() && lanes.len() < LANES && queue.wants_more() {
            read = Some(Read::Next);
            continue;
        }
        if settled && !draining.is_empty() {
            // Nothing due is left: answered once what the lanes delivered is recorded, by the
            // offline posts after their own pass.
            for drained in draining.drain(..) {
                let offline = next.drains.clone();
                recorder.then(move || {
                    // Without the offline posts' loop, answered here.
                    if let Err(mpsc::error::SendError(drained)) = offline.send(drained) {
                        let _ = drained.send(());
                    }
                });
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ended) = lanes.join_next() => match ended {
                Ok(end) => {
                    if end.stopped_early || !draining.is_empty() {
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
            _ = state.outbox.woken() => {
                read = Some(read.unwrap_or(Read::New));
                next.wake.notify_one();
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
            Some(drained) = drains.recv() => {
                draining.push(drained);
                settled = false;
                read = Some(Read::All);
            }
            _ = tokio::time::sleep_until(look_at) => {
                read = Some(Read::All);
                look_at = Instant::now() + IDLE_LOOK;
            }
        }
    }
    // Tasks still waiting to be taken are in the database for the next run.
    state.outbox.handoffs.close();
    worker.finish().await;
}

/// Where the outbox worker's news goes on to: the offline posts' loop.
#[derive(Clone, Debug)]
pub struct Followers {
    /// Woken with the outbox.
    pub wake: Arc<Notify>,
    /// Drain requests, once the outbox has none of its own work due.
    pub drains: mpsc::UnboundedSender<Drained>,
}

/// One pass, for a process where the worker's loop does not run: reads the whole outbox,
/// delivers every chat's tasks that are due at `now` (Unix ms), in order, as lanes, and returns
/// once they ended and what they delivered is recorded. Tasks that became runnable meanwhile
/// (behind a channel just opened) wait for the next pass. Never call it while the loop runs
/// (here or on another instance): [`drain_until_idle`] asks the loop instead.
#[tracing::instrument(skip_all)]
pub async fn run_once(state: &App, now: i64) -> Result<Outcome, StoreError> {
    let mut worker = Worker::start(state);
    let outcome = worker.pass(now).await;
    worker.finish().await;
    outcome
}

/// Does all outbox work that is due now, in order, then the offline messages' posts, and
/// returns once it is done and recorded (tasks waiting out a backoff stay waiting). Through
/// the worker's loop when it runs in this process; otherwise passes of [`run_once`] and of
/// `offline_posts::run_once` until neither has anything due.
pub async fn drain_until_idle(state: &App) {
    if let Some(drained) = state.outbox.handoffs.drain() {
        // The loop answers; if it stops first, there is nothing left to wait for.
        let _ = drained.await;
        return;
    }
    loop {
        match run_once(state, now_ms()).await {
            Ok(Outcome::Worked(_)) => continue,
            Ok(Outcome::Idle { .. }) => break,
            Err(e) => {
                tracing::error!(error = %e, "draining the outbox failed");
                return;
            }
        }
    }
    while let Ok(Outcome::Worked(_)) = offline_posts::run_once(state, now_ms()).await {}
}

/// The dispatcher's parts: the queue, the running lanes and the recorder.
struct Worker {
    state: App,
    queue: Queue,
    lanes: Lanes,
    recorder: Recorder,
    recording: JoinHandle<()>,
}

impl Worker {
    fn start(state: &App) -> Self {
        let claims = Claims::default();
        let recorded = Recorded::default();
        let (recorder, recording) =
            Recorder::start(state.store.clone(), claims.clone(), recorded.clone());
        Self {
            state: state.clone(),
            queue: Queue::new(claims, recorded),
            lanes: Lanes::default(),
            recorder,
            recording,
        }
    }

    /// See [`run_once`].
    async fn pass(&mut self, now: i64) -> Result<Outcome, StoreError> {
        let store = &self.state.store;
        self.queue.read(store, Read::All).await?;
        let mut started = 0;
        let mut next_due = None;
        // Whether to start no more lanes: one left tasks behind (a retry, a channel just
        // opened), so the queue may be out of order until the next whole read.
        let mut stop = false;
        loop {
            if !stop {
                let before = self.lanes.len();
                next_due = dispatch(
                    &self.state,
                    &self.recorder,
                    &mut self.queue,
                    &mut self.lanes,
                    now,
                )
                .await?;
                started += self.lanes.len() - before;
                if self.lanes.is_empty() && self.queue.wants_more() {
                    self.queue.read(store, Read::Next).await?;
                    continue;
                }
            }
            match self.lanes.join_next().await {
                None => break,
                Some(Ok(end)) => stop |= end.stopped_early || end.store_failed,
                Some(Err(e)) => {
                    tracing::error!(error = %e, "an outbox lane stopped unexpectedly");
                    stop = true;
                }
            }
        }
        self.recorder.flushed().await;
        Ok(match started {
            0 => Outcome::Idle { next_due },
            n => Outcome::Worked(n),
        })
    }

    /// Lets the lanes finish and records what they did.
    async fn finish(mut self) {
        while self.lanes.join_next().await.is_some() {}
        drop(self.recorder);
        let _ = self.recording.await;
    }
}
