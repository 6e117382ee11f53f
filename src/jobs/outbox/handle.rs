//! The outbox's front door: how a request hands a task it just stored to the worker, without
//! the worker reading it back. Imports nothing from `jobs/`, so the application core can own it.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::storage::{chats::ChatRow, messages::MessageRow, outbox::{Enqueued, OutboxRow}};

/// Visitor messages' tasks waiting to be taken by the dispatcher at most (more are read from
/// the database instead).
pub const HANDOFF_CAPACITY: usize = 1024;

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
pub struct HandOffs(Arc<Mutex<Option<mpsc::Sender<HandOff>>>>);

impl HandOffs {
    /// Gives a task just stored to the dispatcher. `false` when it must be woken to read the
    /// task instead: the worker does not run here, too many wait already, or the chat has no
    /// channel yet (the task waits for it in the database).
    pub fn give(&self, task: &Enqueued, chat: &ChatRow, message: &MessageRow) -> bool {
        let Some(channel_id) = &task.row.chat_channel_id else {
            return false;
        };
        let open = self.lock();
        let Some(sender) = open.as_ref() else {
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

    /// Opens the way, for the worker that takes the tasks.
    pub fn open(&self) -> mpsc::Receiver<HandOff> {
        let (sender, receiver) = mpsc::channel(HANDOFF_CAPACITY);
        *self.lock() = Some(sender);
        receiver
    }

    /// Closes the way when the worker stops: tasks are left in the database for its next run.
    pub fn close(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<HandOff>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
