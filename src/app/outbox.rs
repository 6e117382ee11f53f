//! The outbox's handle, what the use cases see of it: how a request hands a task it just stored
//! to the worker (without the worker reading it back), how to ask the worker to drain, and what
//! to do when Mattermost is back. The worker itself is `jobs::outbox`.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::{
    app::App,
    storage::{
        chats::ChatRow,
        messages::MessageRow,
        outbox::{Enqueued, OutboxRow},
    },
};

/// Visitor messages' tasks waiting to be taken by the dispatcher at most (more are read from
/// the database instead).
pub const HANDOFF_CAPACITY: usize = 1024;

/// The outbox's handle, as the core holds it: the way to wake the worker of this process and
/// the way to hand it a task. Cheap to clone; clones share both.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    wakeup: Arc<Notify>,
    /// Open while the worker runs in this process.
    pub handoffs: HandOffs,
}

impl Outbox {
    /// Wakes this process's worker (`App::wake_outbox` also tells the leader's).
    pub fn wake_here(&self) {
        self.wakeup.notify_one();
    }

    /// Resolves when the worker is woken (for the worker's loop).
    pub async fn woken(&self) {
        self.wakeup.notified().await;
    }
}

/// A visitor message's delivery task, given by the request that stored it to the dispatcher
/// with what delivering it needs, so that neither is read back from the database: at a
/// steady stream of messages, reading each one back cost more than storing it.
#[derive(Debug)]
pub struct HandOff {
    pub(crate) row: OutboxRow,
    /// The chat's undelivered tasks before this one when it was stored.
    pub(crate) earlier: Vec<i64>,
    pub(crate) chat: ChatRow,
    pub(crate) message: MessageRow,
}

/// The way from requests to the dispatcher: open while the outbox worker runs in this process
/// (with several instances, only on the leader).
#[derive(Clone, Debug, Default)]
pub struct HandOffs(Arc<Mutex<Option<Open>>>);

/// The ways into a running worker.
#[derive(Debug)]
struct Open {
    tasks: mpsc::Sender<HandOff>,
    drains: mpsc::UnboundedSender<Drained>,
}

/// Answered once a drain asked for is done.
pub type Drained = oneshot::Sender<()>;

impl HandOffs {
    /// Gives a task just stored to the dispatcher. `false` when it must be woken to read the
    /// task instead: the worker does not run here, too many wait already, or the chat has no
    /// channel yet (the task waits for it in the database).
    pub fn give(&self, task: &Enqueued, chat: &ChatRow, message: &MessageRow) -> bool {
        let Some(channel_id) = &task.row.chat_channel_id else {
            return false;
        };
        let open = self.lock();
        let Some(Open { tasks: sender, .. }) = open.as_ref() else {
            return false;
        };
        // The chat as the request read it, with the channel as it was when the task was
        // stored: a relayed message needs only these, and a channel never changes once set.
        let mut chat = chat.clone();
        chat.channel_id = Some(channel_id.clone());
        sender
            .try_send(HandOff {
                row: task.row.clone(),
                earlier: task.earlier.clone(),
                chat,
                message: message.clone(),
            })
            .is_ok()
    }

    /// Asks the worker to do all work due now and to say when it is done; `None` when the
    /// worker does not run in this process.
    pub fn drain(&self) -> Option<oneshot::Receiver<()>> {
        let open = self.lock();
        let (drained, done) = oneshot::channel();
        open.as_ref()?.drains.send(drained).ok()?;
        Some(done)
    }

    /// Opens the way, for the worker that takes the tasks and the drain requests.
    pub fn open(&self) -> (mpsc::Receiver<HandOff>, mpsc::UnboundedReceiver<Drained>) {
        let (tasks, handed) = mpsc::channel(HANDOFF_CAPACITY);
        let (drains, drain_requests) = mpsc::unbounded_channel();
        *self.lock() = Some(Open { tasks, drains });
        (handed, drain_requests)
    }

    /// Closes the way when the worker stops: tasks are left in the database for its next run.
    pub fn close(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes every delivery waiting out a backoff due now and wakes the worker: called when
/// Mattermost answers again, so the queue drains at once instead of after its backoffs.
pub async fn mattermost_is_back(state: &App) {
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
