//! The tasks the dispatcher knows of and has not handed to a lane yet, by chat in id order, and
//! how a handed-off task joins them without overtaking or repeating one.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{
    HandOff,
    recorder::{Claims, Recorded},
};
use crate::storage::{
    Store, StoreError, chats::ChatRow, messages::MessageRow, now_ms, outbox::OutboxRow,
};

/// Undelivered tasks read by one fill (several per chat are fine: a lane takes them in order).
const FETCH: i64 = 512;
/// Tasks the dispatcher keeps queued in memory at most before it reads further.
pub(super) const QUEUE_CAP: usize = 4 * FETCH as usize;

/// How much of the outbox to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// Every undelivered task: at start, every second, and whenever the queue may be stale
    /// (a lane stopped early, a retry was rescheduled, tasks became runnable).
    All,
    /// Only tasks added since the last read: on a wake-up, so a busy outbox reads each new
    /// task once instead of the whole backlog at every message.
    New,
    /// The next page after the last read, which stopped at its limit (a backlog).
    Next,
}

/// The undelivered tasks the dispatcher knows of and has not handed to a lane yet, by chat in
/// id order. The database stays the truth: [`Read::All`] replaces this from it.
pub(super) struct Queue {
    pub(super) by_chat: HashMap<String, Vec<OutboxRow>>,
    /// The highest task id read so far.
    cursor: i64,
    /// The last read stopped at its limit: there are more tasks after `cursor`.
    more: bool,
    /// When the whole outbox was last read.
    pub(super) read_all_at: Instant,
    pub(super) claims: Claims,
    recorded: Recorded,
    /// What delivering handed-off tasks needs, by task id, until they are dispatched.
    pub(super) handed: HashMap<i64, (ChatRow, MessageRow)>,
    /// A task was missed (`Taken::Missed`): the next read is a whole one.
    pub(super) missed: bool,
}

/// What became of a handed-off task.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Taken {
    /// Queued with what delivering it needs.
    Queued,
    /// A read had already queued it (or handed it to a lane): nothing to do.
    AlreadyRead,
    /// Not queued: the next read must find it.
    ToRead,
    /// Not known here although a read went past its id: on PostgreSQL it was committed after
    /// a higher id (another instance's, say) was read. Only a whole read finds it.
    Missed,
}

impl Queue {
    pub(super) fn new(claims: Claims, recorded: Recorded) -> Self {
        Self {
            by_chat: HashMap::new(),
            cursor: 0,
            more: false,
            read_all_at: Instant::now(),
            claims,
            recorded,
            handed: HashMap::new(),
            missed: false,
        }
    }

    pub(super) async fn read(&mut self, store: &Store, how: Read) -> Result<(), StoreError> {
        let after = match how {
            Read::All => 0,
            Read::New | Read::Next => self.cursor,
        };
        if how != Read::All && self.len() >= QUEUE_CAP {
            // Read on once the lanes took some (a backlog is never all in memory).
            self.more = true;
            return Ok(());
        }
        // Cleared first: a failed read must not be retried at once.
        self.more = false;
        // Tasks in a lane, or delivered and not recorded yet, are not queued again. The
        // claims are copied before the query: the recorder may give some back while it runs
        // (the query may have seen those tasks before they were recorded), and only the
        // dispatcher, which waits for this read, adds claims.
        let claimed = self.claims.lock().clone();
        let rows = store.list_outbox_due(after, FETCH).await?;
        if how == Read::All {
            self.by_chat.clear();
            self.cursor = 0;
            self.read_all_at = Instant::now();
            self.missed = false;
        }
        self.more = rows.len() as i64 == FETCH;
        for row in rows {
            self.cursor = self.cursor.max(row.id);
            if !claimed.contains(&row.id) {
                self.add(row);
            }
        }
        if how == Read::All {
            let by_chat = &self.by_chat;
            self.handed.retain(|id, (chat, _)| {
                by_chat
                    .get(&chat.id)
                    .is_some_and(|tasks| tasks.iter().any(|t| t.id == *id))
            });
        }
        Ok(())
    }

    /// Queues a task in its chat's order, once.
    fn add(&mut self, row: OutboxRow) {
        let tasks = self.by_chat.entry(row.chat_id.clone()).or_default();
        if let Err(at) = tasks.binary_search_by_key(&row.id, |t| t.id) {
            tasks.insert(at, row);
        }
    }

    /// Queues a handed-off task, or says why not. It is taken only if no read has seen it (so
    /// it cannot be in a lane or delivered already) and every earlier undelivered task of its
    /// chat is known here (queued, in a lane, delivered lately), so it cannot overtake one.
    pub(super) fn take(&mut self, handed: HandOff) -> Taken {
        let HandOff {
            row,
            earlier,
            chat,
            message,
        } = handed;
        let known = |queue: &Self, id: i64| {
            queue.claims.lock().contains(&id)
                || queue.recorded.lock().contains(id)
                || queue
                    .by_chat
                    .get(&row.chat_id)
                    .is_some_and(|tasks| tasks.iter().any(|t| t.id == id))
        };
        if row.id <= self.cursor {
            if known(self, row.id) {
                return Taken::AlreadyRead;
            }
            self.missed = true;
            return Taken::Missed;
        }
        // A full queue leaves it to a read, which waits for room (see `Queue::read`).
        if self.len() >= QUEUE_CAP || !earlier.iter().all(|id| known(self, *id)) {
            return Taken::ToRead;
        }
        self.handed.insert(row.id, (chat, message));
        self.add(row);
        Taken::Queued
    }

    /// Tasks queued and not in a lane yet.
    fn len(&self) -> usize {
        self.by_chat.values().map(Vec::len).sum()
    }

    /// Whether to read on at once: the last read stopped at its limit, and the queue is short
    /// enough to take more (a backlog, e.g. after an outage, is read a page at a time as it is
    /// delivered, never all into memory).
    pub(super) fn wants_more(&self) -> bool {
        self.more && self.len() < QUEUE_CAP
    }

    /// Whether a chat's next task waits out a backoff: its time may have changed in the
    /// database (Mattermost came back), so the next read is a full one.
    pub(super) fn has_waiting_head(&self) -> bool {
        let now = now_ms();
        self.by_chat
            .values()
            .any(|tasks| tasks.first().is_some_and(|t| t.next_attempt_at > now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, chat: &str) -> OutboxRow {
        OutboxRow {
            id,
            chat_id: chat.into(),
            chat_channel_id: Some(format!("channel-{chat}")),
            ..OutboxRow::default()
        }
    }

    fn handed(id: i64, chat: &str, earlier: &[i64]) -> HandOff {
        HandOff {
            row: row(id, chat),
            earlier: earlier.to_vec(),
            chat: ChatRow {
                id: chat.into(),
                ..ChatRow::default()
            },
            message: MessageRow {
                id: id * 10,
                ..MessageRow::default()
            },
        }
    }

    fn queued(queue: &Queue, chat: &str) -> Vec<i64> {
        queue
            .by_chat
            .get(chat)
            .map_or_else(Vec::new, |tasks| tasks.iter().map(|t| t.id).collect())
    }

    #[test]
    fn a_handed_task_is_queued_behind_the_earlier_tasks_it_knows() {
        let claims = Claims::default();
        let recorded = Recorded::default();
        let mut queue = Queue::new(claims.clone(), recorded.clone());
        queue.add(row(3, "a"));
        // 1 was delivered and recorded meanwhile, 2 is in a lane, 3 is queued.
        recorded.lock().extend([1].into_iter());
        claims.lock().insert(2);
        assert_eq!(queue.take(handed(5, "a", &[1, 2, 3])), Taken::Queued);
        assert_eq!(queue.take(handed(4, "b", &[])), Taken::Queued);
        assert_eq!(queued(&queue, "a"), [3, 5]);
        assert_eq!(queued(&queue, "b"), [4]);
        assert!(queue.handed.contains_key(&5));
        // Read again from the database: queued once, in order.
        queue.add(row(5, "a"));
        queue.add(row(1, "a"));
        assert_eq!(queued(&queue, "a"), [1, 3, 5]);
    }

    #[test]
    fn a_handed_task_that_could_overtake_or_repeat_one_is_left_to_a_read() {
        let mut queue = Queue::new(Claims::default(), Recorded::default());
        // Task 2 of the chat is undelivered and unknown here (not read yet): 5 must wait.
        assert_eq!(queue.take(handed(5, "a", &[2])), Taken::ToRead);
        assert!(queued(&queue, "a").is_empty());
        // A read already queued task 6: nothing to add.
        queue.add(row(6, "c"));
        queue.cursor = 7;
        assert_eq!(queue.take(handed(6, "c", &[])), Taken::AlreadyRead);
        assert_eq!(queued(&queue, "c"), [6]);
        // A read went past task 7 without seeing it (committed late on PostgreSQL): the
        // next read is a whole one.
        assert_eq!(queue.take(handed(7, "d", &[])), Taken::Missed);
        assert!(queue.missed);
        assert!(queued(&queue, "d").is_empty());
        assert!(queue.handed.is_empty());
    }
}
