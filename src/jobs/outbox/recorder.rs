//! Records delivered tasks in batches, and remembers which tasks are claimed (in a lane or
//! delivered and not recorded yet) and which were recorded lately.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use tokio::sync::{mpsc, oneshot};

use super::queue::QUEUE_CAP;
use crate::storage::{Store, outbox::Delivered};

/// Delivered tasks recorded in one transaction at most.
const RECORD_BATCH: usize = 256;

/// Ids of the tasks in a lane or delivered and not recorded yet: reads of the outbox leave
/// them out, so no task is handed out twice.
#[derive(Clone, Default)]
pub(super) struct Claims(Arc<Mutex<HashSet<i64>>>);

impl Claims {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lane's claims, given back when it is dropped.
pub(super) struct Held {
    pub(super) ids: HashSet<i64>,
    pub(super) claims: Claims,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut claimed = self.claims.lock();
        for id in &self.ids {
            claimed.remove(id);
        }
    }
}

/// Records delivered tasks in batches: whatever finished while the previous batch was being
/// written goes into the next transaction, and only then are the tasks' claims given back. A
/// batch that cannot be written is delivered again later: `pending_post_id` makes Mattermost
/// return the posts it already has.
#[derive(Clone)]
pub(super) struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
}

/// What the recorder is given, in order.
enum Record {
    /// A delivered task.
    Done(Delivered),
    /// Something to do once everything given before is recorded (a drain's answer).
    Then(Box<dyn FnOnce() + Send>),
}

impl Recorder {
    pub(super) fn start(
        store: Store,
        claims: Claims,
        recorded: Recorded,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(record_batches(store, rx, claims, recorded));
        (Self { tx }, writer)
    }

    /// Queues a delivered task (its claim is held until it is recorded).
    pub(super) fn record(&self, done: Delivered) {
        let _ = self.tx.send(Record::Done(done));
    }

    /// Runs `then` once every task given before is recorded (or failed to be).
    pub(super) fn then(&self, then: impl FnOnce() + Send + 'static) {
        if let Err(mpsc::error::SendError(Record::Then(then))) =
            self.tx.send(Record::Then(Box::new(then)))
        {
            then();
        }
    }

    /// Returns once every task given before is recorded (or failed to be).
    pub(super) async fn flushed(&self) {
        let (done, recorded) = oneshot::channel();
        self.then(move || {
            let _ = done.send(());
        });
        let _ = recorded.await;
    }
}

async fn record_batches(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Record>,
    claims: Claims,
    recorded: Recorded,
) {
    let mut received = Vec::new();
    let mut batch = Vec::new();
    let mut after = Vec::new();
    while rx.recv_many(&mut received, RECORD_BATCH).await > 0 {
        for record in received.drain(..) {
            match record {
                Record::Done(done) => batch.push(done),
                Record::Then(then) => after.push(then),
            }
        }
        if !batch.is_empty() {
            match store.record_deliveries(&batch).await {
                Ok(()) => recorded
                    .lock()
                    .extend(batch.iter().map(|done| done.outbox_id)),
                Err(e) => {
                    tracing::error!(error = %e, tasks = batch.len(), "could not record deliveries to Mattermost")
                }
            }
        }
        let mut claimed = claims.lock();
        for done in batch.drain(..) {
            claimed.remove(&done.outbox_id);
        }
        drop(claimed);
        for then in after.drain(..) {
            then();
        }
    }
}

/// The tasks recorded as delivered lately. A handed-off task lists its chat's undelivered
/// tasks as they were when it was stored; one of them may have been delivered and recorded
/// since, and is then no longer claimed: this says it is done.
#[derive(Clone, Default)]
pub(super) struct Recorded(Arc<Mutex<RecentIds>>);

#[derive(Default)]
pub(super) struct RecentIds {
    ids: HashSet<i64>,
    order: std::collections::VecDeque<i64>,
}

/// Recorded tasks remembered at most (handed-off tasks reach the dispatcher within moments).
const RECENTLY_RECORDED: usize = 4 * QUEUE_CAP;

impl Recorded {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, RecentIds> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RecentIds {
    pub(super) fn contains(&self, id: i64) -> bool {
        self.ids.contains(&id)
    }

    pub(super) fn extend(&mut self, ids: impl Iterator<Item = i64>) {
        for id in ids {
            if self.ids.insert(id) {
                self.order.push_back(id);
            }
        }
        while self.order.len() > RECENTLY_RECORDED {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_recorded_tasks_are_remembered() {
        let recorded = Recorded::default();
        recorded.lock().extend(0..(RECENTLY_RECORDED as i64 + 10));
        let recent = recorded.lock();
        assert!(!recent.contains(9));
        assert!(recent.contains(10));
        assert_eq!(recent.order.len(), RECENTLY_RECORDED);
    }
}
