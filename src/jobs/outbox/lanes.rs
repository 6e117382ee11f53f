//! Lanes: each delivers one chat's due tasks in order, many chats at once. The dispatcher
//! fills free lanes from the queue, reading what they need for the whole fill at once.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use tokio::task::JoinSet;

use super::{
    deliver::{backoff, deliver},
    queue::Queue,
    recorder::{Claims, Held, Recorder},
};
use crate::app::Error;
use crate::{
    app::App,
    mattermost::{Bridge, MmError},
    metrics::Direction,
    storage::{
        StoreError,
        chats::ChatRow,
        messages::MessageRow,
        now_ms,
        outbox::{Delivered, OutboxRow, OutboxTask},
    },
};

/// Chats delivered to at the same time.
pub(super) const LANES: usize = 32;
/// Tasks one lane delivers before it gives the chat back (so one busy chat cannot hold a lane
/// while others wait).
const LANE_TASKS: usize = 16;

/// Starts lanes for queued chats whose next task is due at `now` (Unix ms), oldest first, up
/// to [`LANES`]. Returns when the earliest task that is not due yet will be.
pub(super) async fn dispatch(
    state: &App,
    recorder: &Recorder,
    queue: &mut Queue,
    lanes: &mut Lanes,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let Some(bridge) = state.bridge() else {
        return Ok(None);
    };
    let mut next_due = None;
    let mut ready: Vec<(i64, &String)> = Vec::new();
    for (chat_id, tasks) in &queue.by_chat {
        let Some(head) = tasks.first() else { continue };
        if lanes.has(chat_id) {
            continue;
        }
        // Only a chat's first task can be waiting out a backoff; the rest wait behind it.
        if head.next_attempt_at > now {
            next_due =
                Some(next_due.map_or(head.next_attempt_at, |t: i64| t.min(head.next_attempt_at)));
        } else {
            ready.push((head.id, chat_id));
        }
    }
    ready.sort_unstable();
    let chosen: Vec<String> = ready
        .into_iter()
        .take(LANES - lanes.len())
        .map(|(_, chat_id)| chat_id.clone())
        .collect();
    if chosen.is_empty() {
        return Ok(next_due);
    }
    let mut taken: Vec<Vec<OutboxRow>> = Vec::with_capacity(chosen.len());
    for chat_id in &chosen {
        let tasks = queue.by_chat.entry(chat_id.clone()).or_default();
        let rest = tasks.split_off(tasks.len().min(LANE_TASKS));
        taken.push(std::mem::replace(tasks, rest));
        if tasks.is_empty() {
            queue.by_chat.remove(chat_id);
        }
    }
    queue
        .claims
        .lock()
        .extend(taken.iter().flatten().map(|row| row.id));
    // What the lanes need: handed-off tasks brought it along; the rest is read for all of
    // them on one connection. A chat is read unless all its tasks here were handed off (then
    // they are all relayed messages, which need only its channel).
    let mut chats: HashMap<String, ChatRow> = HashMap::new();
    let mut messages: HashMap<i64, MessageRow> = HashMap::new();
    let mut chats_to_read: Vec<&str> = Vec::new();
    for (chat_id, tasks) in chosen.iter().zip(&taken) {
        let all_handed = tasks.iter().all(|row| queue.handed.contains_key(&row.id));
        for row in tasks {
            if let Some((chat, message)) = queue.handed.remove(&row.id) {
                messages.insert(message.id, message);
                if all_handed {
                    chats.insert(chat.id.clone(), chat);
                }
            }
        }
        if !all_handed {
            chats_to_read.push(chat_id);
        }
    }
    let parsed: Vec<Vec<(OutboxRow, Option<OutboxTask>)>> = taken
        .into_iter()
        .map(|tasks| tasks.into_iter().map(parse).collect())
        .collect();
    let messages_to_read: Vec<i64> = parsed
        .iter()
        .flatten()
        .filter_map(|(_, task)| match task {
            Some(OutboxTask::RelayMessage { message_id, .. })
                if !messages.contains_key(message_id) =>
            {
                Some(*message_id)
            }
            _ => None,
        })
        .collect();
    if !chats_to_read.is_empty() || !messages_to_read.is_empty() {
        match state
            .store
            .delivery_inputs(&chats_to_read, &messages_to_read)
            .await
        {
            Ok((read_chats, read_messages)) => {
                chats.extend(read_chats.into_iter().map(|c| (c.id.clone(), c)));
                messages.extend(read_messages.into_iter().map(|m| (m.id, m)));
            }
            Err(e) => {
                // Give the tasks back: the next full read queues them again.
                let mut claimed = queue.claims.lock();
                for (row, _) in parsed.iter().flatten() {
                    claimed.remove(&row.id);
                }
                return Err(e);
            }
        }
    }
    for tasks in parsed {
        let chat_id = tasks[0].0.chat_id.clone();
        let lane = Lane {
            chat: chats.remove(&chat_id),
            messages: tasks
                .iter()
                .filter_map(|(_, task)| match task {
                    Some(OutboxTask::RelayMessage { message_id, .. }) => {
                        messages.remove(message_id).map(|m| (*message_id, m))
                    }
                    _ => None,
                })
                .collect(),
            chat_id: chat_id.clone(),
            tasks,
            claims: queue.claims.clone(),
            due_by: now,
        };
        lanes.spawn(
            chat_id,
            lane.run(state.clone(), bridge.clone(), recorder.clone()),
        );
    }
    Ok(next_due)
}

fn parse(row: OutboxRow) -> (OutboxRow, Option<OutboxTask>) {
    match row.task() {
        Ok(task) => (row, Some(task)),
        Err(e) => {
            tracing::error!(outbox_id = row.id, error = %e, "unreadable outbox task");
            (row, None)
        }
    }
}

/// The running lanes and the chats they hold.
#[derive(Default)]
pub(super) struct Lanes {
    set: JoinSet<LaneEnd>,
    chats: HashMap<tokio::task::Id, String>,
    busy: HashSet<String>,
}

impl Lanes {
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    fn has(&self, chat_id: &str) -> bool {
        self.busy.contains(chat_id)
    }

    fn spawn(&mut self, chat_id: String, lane: impl Future<Output = LaneEnd> + Send + 'static) {
        let id = self.set.spawn(lane).id();
        self.busy.insert(chat_id.clone());
        self.chats.insert(id, chat_id);
    }

    /// The next lane to end; its chat is free again, whether the lane ended well or not.
    pub(super) async fn join_next(&mut self) -> Option<Result<LaneEnd, tokio::task::JoinError>> {
        let ended = self.set.join_next_with_id().await?;
        let id = match &ended {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        if let Some(chat_id) = self.chats.remove(&id) {
            self.busy.remove(&chat_id);
        }
        Some(ended.map(|(_, end)| end))
    }
}

/// One chat's due tasks, in order, with what delivering them needs.
struct Lane {
    chat_id: String,
    /// `None` if the chat is gone (deleted meanwhile).
    chat: Option<ChatRow>,
    tasks: Vec<(OutboxRow, Option<OutboxTask>)>,
    messages: HashMap<i64, MessageRow>,
    claims: Claims,
    /// The time the dispatcher judged the tasks due by (a pass may look ahead).
    due_by: i64,
}

/// How a lane ended.
pub(super) struct LaneEnd {
    /// A task that had failed before went through.
    pub(super) recovered: bool,
    /// Tasks were left (a retry is scheduled, or their order may have changed): the
    /// dispatcher reads the whole outbox again.
    pub(super) stopped_early: bool,
    /// The database failed: the dispatcher pauses before it looks again.
    pub(super) store_failed: bool,
}

impl Lane {
    async fn run(mut self, state: App, bridge: Arc<Bridge>, recorder: Recorder) -> LaneEnd {
        let mut end = LaneEnd {
            recovered: false,
            stopped_early: false,
            store_failed: false,
        };
        let tasks = std::mem::take(&mut self.tasks);
        // Whatever the lane has not handed to the recorder is given back when it ends, even
        // by a panic.
        let mut held = Held {
            ids: tasks.iter().map(|(row, _)| row.id).collect(),
            claims: self.claims.clone(),
        };
        for (row, task) in tasks {
            match self.attempt(&state, &bridge, &row, task).await {
                Ok(Step::Delivered(done)) => {
                    end.recovered |= row.attempts > 0;
                    held.ids.remove(&row.id);
                    recorder.record(done);
                }
                Ok(Step::Next) => {}
                Ok(Step::ChatChanged) => match state.store.get_chat(&self.chat_id).await {
                    Ok(chat) => self.chat = chat,
                    Err(e) => {
                        tracing::error!(chat_id = %self.chat_id, error = %e, "could not read a chat");
                        end.store_failed = true;
                        break;
                    }
                },
                Ok(Step::Stop) => {
                    end.stopped_early = true;
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        outbox_id = row.id, chat_id = %row.chat_id, error = %e,
                        "outbox worker could not record a delivery; retrying"
                    );
                    end.store_failed = true;
                    end.stopped_early = true;
                    break;
                }
            }
        }
        drop(held);
        end
    }

    /// Tries one task and says how the lane goes on.
    async fn attempt(
        &mut self,
        state: &App,
        bridge: &Bridge,
        row: &OutboxRow,
        task: Option<OutboxTask>,
    ) -> Result<Step, StoreError> {
        let Some(task) = task else {
            state.store.mark_failed(row.id, "unreadable task").await?;
            return Ok(Step::Next);
        };
        let Some(chat) = self.chat.as_ref() else {
            state
                .store
                .mark_failed(row.id, "the chat no longer exists")
                .await?;
            return Ok(Step::Next);
        };
        if row.next_attempt_at > now_ms().max(self.due_by) {
            return Ok(Step::Stop);
        }
        let message = match &task {
            OutboxTask::RelayMessage { message_id, .. } => match self.messages.get(message_id) {
                Some(m) => Some(m),
                None => {
                    state
                        .store
                        .mark_failed(row.id, "the message no longer exists")
                        .await?;
                    return Ok(Step::Next);
                }
            },
            _ => None,
        };
        let started = now_ms();
        match deliver(state, bridge, row, &task, chat, message).await {
            Ok(message_post) => {
                if matches!(task, OutboxTask::RelayMessage { .. }) {
                    state.metrics.message_relayed(Direction::ToMattermost);
                }
                let done = Delivered {
                    outbox_id: row.id,
                    message_post,
                };
                Ok(match task {
                    // Relayed messages, notices and replies change nothing about the chat.
                    OutboxTask::RelayMessage { .. }
                    | OutboxTask::Notice { .. }
                    | OutboxTask::Reply { .. } => Step::Delivered(done),
                    // The chat now has a channel: tasks waiting for it come before later ones,
                    // so the next fill orders them.
                    OutboxTask::OpenChannel => {
                        state.store.record_deliveries(&[done]).await?;
                        Step::Stop
                    }
                    _ => {
                        state.store.record_deliveries(&[done]).await?;
                        Step::ChatChanged
                    }
                })
            }
            Err(Error::Store(e)) => Err(e),
            Err(Error::Mattermost(e)) if e.is_transient() => {
                let wait = match &e {
                    MmError::RateLimited { retry_after } => *retry_after,
                    _ => backoff(row.attempts),
                };
                tracing::warn!(
                    outbox_id = row.id, chat_id = %row.chat_id, attempts = row.attempts + 1,
                    retry_in = ?wait, error = %e, "delivery to Mattermost failed; will retry"
                );
                let at = now_ms() + wait.as_millis() as i64;
                state
                    .store
                    .reschedule(row.id, at, started, &e.to_string())
                    .await?;
                Ok(Step::Stop)
            }
            Err(Error::Mattermost(e)) => {
                tracing::error!(
                    outbox_id = row.id, chat_id = %row.chat_id, error = %e, mattermost_error_id = ?e.id(),
                    "Mattermost refused a delivery; it will not be retried"
                );
                state.store.mark_failed(row.id, &e.to_string()).await?;
                Ok(Step::Next)
            }
        }
    }
}

/// What a lane does after a task.
enum Step {
    /// Delivered: record it and go on.
    Delivered(Delivered),
    /// Done with this task (failed for good, or delivered and recorded): go on.
    Next,
    /// Delivered and recorded, and the chat changed (e.g. its request post): read it again.
    ChatChanged,
    /// Leave the rest to a later fill (a retry is scheduled, or the order may have changed).
    Stop,
}
