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

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    sync::{Notify, mpsc},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    chats,
    departments::{self, Department},
    domain::ChatStatus,
    inbound,
    mattermost::{
        Bridge, Context, MmError, Target, format,
        wire::{CreateChannel, NewPost, Post, PostPatch},
    },
    metrics::Direction,
    state::AppState,
    storage::{
        Store, StoreError,
        chats::ChatRow,
        messages::MessageRow,
        now_ms,
        outbox::{Delivered, Enqueued, OutboxRow, OutboxTask},
    },
};

/// Chats delivered to at the same time.
const LANES: usize = 32;
/// Undelivered tasks read by one fill (several per chat are fine: a lane takes them in order).
const FETCH: i64 = 512;
/// Tasks the dispatcher keeps queued in memory at most before it reads further.
const QUEUE_CAP: usize = 4 * FETCH as usize;
/// Tasks one lane delivers before it gives the chat back (so one busy chat cannot hold a lane
/// while others wait).
const LANE_TASKS: usize = 16;
/// Delivered tasks recorded in one transaction at most.
const RECORD_BATCH: usize = 256;
/// Mattermost remembers a `pending_post_id` for 30 s; after that a retry first looks for the
/// post by its `parley_key` prop.
const DEDUP_WINDOW_MS: i64 = 25_000;
/// Without news, the dispatcher looks again after this long (a task may have become due).
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// Wake-ups read the whole outbox (instead of new tasks) at most this often.
const MIN_WHOLE_READ_GAP: Duration = Duration::from_millis(250);
/// Visitor messages' tasks waiting to be taken by the dispatcher at most (more are read from
/// the database instead).
const HANDOFF_CAPACITY: usize = 1024;
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

/// A visitor message's delivery task, given by the request that stored it to the dispatcher
/// with what delivering it needs, so that neither is read back from the database: at a
/// steady stream of messages, reading each one back cost more than storing it.
#[derive(Debug)]
pub struct HandOff {
    row: OutboxRow,
    /// The chat's undelivered tasks before this one when it was stored.
    earlier: Vec<i64>,
    chat: ChatRow,
    message: MessageRow,
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

    fn open(&self) -> mpsc::Receiver<HandOff> {
        let (sender, receiver) = mpsc::channel(HANDOFF_CAPACITY);
        *self.lock() = Some(sender);
        receiver
    }

    fn close(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<HandOff>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How much of the outbox to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
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
struct Queue {
    by_chat: HashMap<String, Vec<OutboxRow>>,
    /// The highest task id read so far.
    cursor: i64,
    /// The last read stopped at its limit: there are more tasks after `cursor`.
    more: bool,
    /// When the whole outbox was last read.
    read_all_at: Instant,
    claims: Claims,
    recorded: Recorded,
    /// What delivering handed-off tasks needs, by task id, until they are dispatched.
    handed: HashMap<i64, (ChatRow, MessageRow)>,
    /// A task was missed (`Taken::Missed`): the next read is a whole one.
    missed: bool,
}

/// What became of a handed-off task.
#[derive(Debug, PartialEq, Eq)]
enum Taken {
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
    fn new(claims: Claims, recorded: Recorded) -> Self {
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

    async fn read(&mut self, store: &Store, how: Read) -> Result<(), StoreError> {
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
    fn take(&mut self, handed: HandOff) -> Taken {
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
    fn wants_more(&self) -> bool {
        self.more && self.len() < QUEUE_CAP
    }

    /// Whether a chat's next task waits out a backoff: its time may have changed in the
    /// database (Mattermost came back), so the next read is a full one.
    fn has_waiting_head(&self) -> bool {
        let now = now_ms();
        self.by_chat
            .values()
            .any(|tasks| tasks.first().is_some_and(|t| t.next_attempt_at > now))
    }
}

/// Starts lanes for queued chats whose next task is due, oldest first, up to [`LANES`].
/// Returns when the earliest task that is not due yet will be.
async fn dispatch(
    state: &AppState,
    recorder: &Recorder,
    queue: &mut Queue,
    lanes: &mut Lanes,
) -> Result<Option<i64>, StoreError> {
    let Some(bridge) = state.bridge() else {
        return Ok(None);
    };
    let now = now_ms();
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
struct Lanes {
    set: JoinSet<LaneEnd>,
    chats: HashMap<tokio::task::Id, String>,
    busy: HashSet<String>,
}

impl Lanes {
    fn len(&self) -> usize {
        self.set.len()
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
    async fn join_next(&mut self) -> Option<Result<LaneEnd, tokio::task::JoinError>> {
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
}

/// How a lane ended.
struct LaneEnd {
    /// A task that had failed before went through.
    recovered: bool,
    /// Tasks were left (a retry is scheduled, or their order may have changed): the
    /// dispatcher reads the whole outbox again.
    stopped_early: bool,
    /// The database failed: the dispatcher pauses before it looks again.
    store_failed: bool,
}

impl Lane {
    async fn run(mut self, state: AppState, bridge: Arc<Bridge>, recorder: Recorder) -> LaneEnd {
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
        state: &AppState,
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
        if row.next_attempt_at > now_ms() {
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
            Err(DeliveryError::Store(e)) => Err(e),
            Err(DeliveryError::Mattermost(e)) if e.is_transient() => {
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
            Err(DeliveryError::Mattermost(e)) => {
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

/// Ids of the tasks in a lane or delivered and not recorded yet: reads of the outbox leave
/// them out, so no task is handed out twice.
#[derive(Clone, Default)]
struct Claims(Arc<Mutex<HashSet<i64>>>);

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lane's claims, given back when it is dropped.
struct Held {
    ids: HashSet<i64>,
    claims: Claims,
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
struct Recorder {
    tx: mpsc::UnboundedSender<Delivered>,
}

impl Recorder {
    fn start(
        store: Store,
        claims: Claims,
        recorded: Recorded,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(record_batches(store, rx, claims, recorded));
        (Self { tx }, writer)
    }

    /// Queues a delivered task (its claim is held until it is recorded).
    fn record(&self, done: Delivered) {
        let _ = self.tx.send(done);
    }
}

async fn record_batches(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Delivered>,
    claims: Claims,
    recorded: Recorded,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        match store.record_deliveries(&batch).await {
            Ok(()) => recorded
                .lock()
                .extend(batch.iter().map(|done| done.outbox_id)),
            Err(e) => {
                tracing::error!(error = %e, tasks = batch.len(), "could not record deliveries to Mattermost")
            }
        }
        let mut claimed = claims.lock();
        for done in batch.drain(..) {
            claimed.remove(&done.outbox_id);
        }
    }
}

/// The tasks recorded as delivered lately. A handed-off task lists its chat's undelivered
/// tasks as they were when it was stored; one of them may have been delivered and recorded
/// since, and is then no longer claimed: this says it is done.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<RecentIds>>);

#[derive(Default)]
struct RecentIds {
    ids: HashSet<i64>,
    order: std::collections::VecDeque<i64>,
}

/// Recorded tasks remembered at most (handed-off tasks reach the dispatcher within moments).
const RECENTLY_RECORDED: usize = 4 * QUEUE_CAP;

impl Recorded {
    fn lock(&self) -> std::sync::MutexGuard<'_, RecentIds> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RecentIds {
    fn contains(&self, id: i64) -> bool {
        self.ids.contains(&id)
    }

    fn extend(&mut self, ids: impl Iterator<Item = i64>) {
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

/// Exponential backoff from 250 ms to 30 s with jitter: quick for a passing error, and at
/// most one try every half minute per chat during a long outage.
pub(crate) fn backoff(attempts: i64) -> Duration {
    let base = 250u64.saturating_mul(1 << attempts.clamp(0, 7)).min(30_000);
    Duration::from_millis(base + rand::random_range(0..=base / 4))
}

#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mattermost(#[from] MmError),
}

/// Carries out one task. Returns the relayed message and its post, for a relayed message.
async fn deliver(
    state: &AppState,
    bridge: &Bridge,
    row: &OutboxRow,
    task: &OutboxTask,
    chat: &ChatRow,
    message: Option<&MessageRow>,
) -> Result<Option<(i64, String)>, DeliveryError> {
    let ctx = bridge.context().await?;
    let mut message_post = None;
    match task {
        OutboxTask::RequestPost { key } => {
            let first = state.store.list_messages(&chat.id, 0, 1).await?;
            let text = first.first().map(|m| m.body.as_str()).unwrap_or_default();
            let department = departments::get(state, chat.department_id).await?;
            let route_target = department_target(state, bridge, department.as_ref()).await?;
            let public_url = crate::config::base(&state.settings.public_url);
            let url = format!("{public_url}/mattermost/actions");
            let templates = format::ChatTemplates {
                chat,
                department: department.as_ref(),
                first_message: text,
                public_url: &public_url,
            };
            // A chat that ended before its request reached Mattermost (the visitor closed the
            // widget a moment after writing, or during an outage) gets its request post in
            // its settled form: no Accept button is ever live for it, not even until the
            // update that follows. The chat is read again right before posting: the lane's
            // copy is from when the lane was filled, which can be before a close.
            let current = state.store.get_chat(&chat.id).await?;
            let chat = current.as_ref().unwrap_or(chat);
            let (message, props) = if chat.status() == ChatStatus::Closed {
                let closed_by = chat.closed_by.as_deref().unwrap_or_default();
                format::settled_request(chat, &chats::left_unaccepted(state, closed_by))
            } else {
                format::request_post(&templates, &url, &state.signer)
            };
            let target = PostTarget {
                channel_id: &route_target.channel_id,
                key,
            };
            let post = post_once(bridge, row, &target, &message, props, Vec::new()).await?;
            state.store.set_request_post(&chat.id, &post.id).await?;
            accept_by_early_reactions(state, bridge, &post.id).await?;
        }
        OutboxTask::OpenChannel => open_channel(state, bridge, &ctx, row, chat).await?,
        OutboxTask::RelayMessage { key, .. } => {
            let message = message.ok_or(StoreError::NotFound)?;
            let author = message
                .author
                .clone()
                .unwrap_or_else(|| format::visitor_name(chat));
            let channel = chat.channel_id.as_deref().ok_or(StoreError::NotFound)?;
            let (mut file_ids, refused) = upload_files(state, bridge, channel, message).await?;
            let mut body = format::relay_message(&author, &message.body);
            for name in refused {
                body.push_str(&format::file_refused_note(&name));
            }
            let mut first_post = None;
            for (i, part) in format::split_for_post(&body, ctx.max_post_size)
                .iter()
                .enumerate()
            {
                let part_key = if i == 0 {
                    key.clone()
                } else {
                    format!("{key}-{i}")
                };
                let props = json!({ format::CHAT_PROP: chat.id, "parley_message_id": message.id });
                let target = PostTarget {
                    channel_id: channel,
                    key: &part_key,
                };
                // Files go with the first part.
                let files = std::mem::take(&mut file_ids);
                let post = post_once(bridge, row, &target, part, props, files).await?;
                first_post.get_or_insert(post.id);
            }
            message_post = first_post.map(|post_id| (message.id, post_id));
        }
        OutboxTask::Notice { text, key } => {
            let channel = chat.channel_id.as_deref().ok_or(StoreError::NotFound)?;
            let props = json!({ format::CHAT_PROP: chat.id });
            let target = PostTarget {
                channel_id: channel,
                key,
            };
            post_once(
                bridge,
                row,
                &target,
                &format::notice(text),
                props,
                Vec::new(),
            )
            .await?;
        }
        OutboxTask::Reply { text, key } => {
            let channel = chat.channel_id.as_deref().ok_or(StoreError::NotFound)?;
            let props = json!({ format::CHAT_PROP: chat.id });
            let target = PostTarget {
                channel_id: channel,
                key,
            };
            post_once(bridge, row, &target, text, props, Vec::new()).await?;
        }
        OutboxTask::UpdateRequest { text } => {
            if let Some(post_id) = &chat.request_post_id {
                let (message, props) = format::settled_request(chat, text);
                let patch = PostPatch {
                    message: &message,
                    props,
                };
                bridge.patch_post(post_id, &patch).await?;
            }
        }
        OutboxTask::Reminder { key } => {
            // Accepted or ended while the reminder waited (e.g. during an outage): say nothing.
            if chat.status() != ChatStatus::Pending {
                return Ok(None);
            }
            let link = chat
                .request_post_id
                .as_deref()
                .map(|post_id| bridge.post_link(&ctx.team_name, post_id));
            let waited = Duration::from_millis((now_ms() - chat.created_at).max(0) as u64);
            let message = format::reminder(
                chat,
                waited,
                link.as_deref(),
                state.settings.remind_with_here,
            );
            let target = PostTarget {
                channel_id: &ctx.requests_channel_id,
                key,
            };
            let props = json!({ format::CHAT_PROP: chat.id });
            post_once(bridge, row, &target, &message, props, Vec::new()).await?;
        }
    }
    Ok(message_post)
}

/// Applies the ✅ reactions a request post got before parley knew it was the chat's request
/// post: Mattermost announces the post (and an operator may react) before it answers the
/// create, and a reaction event for a post parley has not recorded yet finds no chat. Read
/// once the post is recorded, so every reaction is seen by this read or by its event.
async fn accept_by_early_reactions(
    state: &AppState,
    bridge: &Bridge,
    post_id: &str,
) -> Result<(), DeliveryError> {
    let reactions = match bridge.reactions(post_id).await {
        Ok(list) => list,
        // Delivered again later: the create gives back the same post, then this read again.
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(post_id, error = %e, "could not read a new request post's reactions");
            return Ok(());
        }
    };
    let mut reactions: Vec<_> = reactions
        .into_iter()
        .filter(|r| r.emoji_name == inbound::ACCEPT_EMOJI)
        .collect();
    reactions.sort_by_key(|r| r.create_at);
    for reaction in &reactions {
        match inbound::apply_reaction(state, reaction).await {
            Ok(()) => {}
            Err(inbound::ApplyError::Store(e)) => return Err(e.into()),
            Err(inbound::ApplyError::Mattermost(e)) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Uploads a message's files into the chat channel, once each: the Mattermost id is stored,
/// so a retried delivery reuses the upload. Returns the uploaded ids and the names of files
/// Mattermost refused for good (too large for its `MaxFileSize`, attachments switched off):
/// the text still goes through, with a note, rather than the whole message failing.
async fn upload_files(
    state: &AppState,
    bridge: &Bridge,
    channel_id: &str,
    message: &MessageRow,
) -> Result<(Vec<String>, Vec<String>), DeliveryError> {
    let mut ids = Vec::with_capacity(message.files.len());
    let mut refused = Vec::new();
    for file in &message.files {
        if let Some(id) = &file.mm_file_id {
            ids.push(id.clone());
            continue;
        }
        let bytes = match state.blobs.read(&file.chat_id, &file.id).await {
            Ok(f) => f,
            Err(e) => {
                // Deleted from disk (e.g. by an admin): the text still goes through.
                tracing::error!(file_id = %file.id, error = %e, "an attached file is missing on disk");
                continue;
            }
        };
        let uploaded = bridge
            .upload_file(channel_id, &file.name, bytes, file.size.max(0) as u64)
            .await;
        match uploaded {
            Ok(info) => {
                state.store.set_file_mm_id(&file.id, &info.id).await?;
                ids.push(info.id);
            }
            Err(e) if matches!(e.status(), Some(413 | 501)) => {
                tracing::warn!(
                    file_id = %file.id, error = %e,
                    "Mattermost refused a visitor's file (check FileSettings.MaxFileSize and EnableFileAttachments)"
                );
                refused.push(file.name.clone());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((ids, refused))
}

/// Where a post goes and the key that makes it unique.
#[derive(Clone, Copy)]
struct PostTarget<'a> {
    channel_id: &'a str,
    key: &'a str,
}

/// Creates a post exactly once: `pending_post_id` covers quick retries, and after
/// Mattermost's 30-second memory a retry first looks for a post carrying the same key.
async fn post_once(
    bridge: &Bridge,
    row: &OutboxRow,
    target: &PostTarget<'_>,
    message: &str,
    props: Value,
    file_ids: Vec<String>,
) -> Result<Post, DeliveryError> {
    let PostTarget { channel_id, key } = *target;
    Ok(create_post_once(
        bridge,
        row.first_attempt_at,
        channel_id,
        key,
        message,
        props,
        file_ids,
    )
    .await?)
}

/// `post_once` for posts outside the outbox (offline messages): `first_attempt_at` is when
/// the first try started, if one failed before.
pub(crate) async fn create_post_once(
    bridge: &Bridge,
    first_attempt_at: Option<i64>,
    channel_id: &str,
    key: &str,
    message: &str,
    mut props: Value,
    file_ids: Vec<String>,
) -> Result<Post, MmError> {
    let now = now_ms();
    if let Some(first) = first_attempt_at
        && now - first > DEDUP_WINDOW_MS
    {
        let mut list = bridge.posts_since(channel_id, first - 5_000).await?;
        if let Some(post) = made_with_key(&list.posts, key).and_then(|id| list.posts.remove(&id)) {
            return Ok(post);
        }
    }
    props[format::KEY_PROP] = Value::String(key.to_owned());
    let post = NewPost {
        channel_id,
        message,
        pending_post_id: Some(key),
        props,
        file_ids,
    };
    bridge.create_post(&post).await
}

/// The live post made with `key`, among posts listed by `posts?since`. The list also holds
/// deleted posts and, on a real server, a soft-deleted copy of the old version of every edited
/// post: that copy keeps the old props (the key among them) under a new id, with
/// `original_id` naming the post, which an edit (e.g. the Accept click rewriting the request
/// post) may have left without the key. Either way the answer is the post itself.
fn made_with_key(posts: &HashMap<String, Post>, key: &str) -> Option<String> {
    let has_key = |p: &&Post| p.props.get(format::KEY_PROP).and_then(Value::as_str) == Some(key);
    let live = |id: &str| posts.get(id).is_some_and(|p| p.delete_at == 0);
    if let Some(post) = posts
        .values()
        .filter(has_key)
        .find(|p| p.original_id.is_empty() && p.delete_at == 0)
    {
        return Some(post.id.clone());
    }
    posts
        .values()
        .filter(has_key)
        .find(|p| !p.original_id.is_empty() && live(&p.original_id))
        .map(|copy| copy.original_id.clone())
}

/// The team and requests channel of a chat's department (the configured ones for the
/// default department), resolved by the bridge.
async fn department_target(
    state: &AppState,
    bridge: &Bridge,
    department: Option<&Department>,
) -> Result<std::sync::Arc<Target>, DeliveryError> {
    let route = departments::route_of(state, department)
        .ok_or_else(|| MmError::Protocol("Mattermost is not configured".into()))?;
    Ok(bridge.target(&route).await?)
}

/// Creates the chat's private channel in its department's team (or adopts the one an
/// earlier attempt created), adds the operator, and makes the first post if the department's
/// template gives one. A name already taken by another channel gets a fresh one.
async fn open_channel(
    state: &AppState,
    bridge: &Bridge,
    ctx: &Context,
    row: &OutboxRow,
    chat: &ChatRow,
) -> Result<(), DeliveryError> {
    let operator = chat
        .operator_user_id
        .as_deref()
        .ok_or(StoreError::NotFound)?;
    let first = state.store.list_messages(&chat.id, 0, 1).await?;
    let text = first.first().map(|m| m.body.as_str()).unwrap_or_default();
    let department = departments::get(state, chat.department_id).await?;
    let public_url = crate::config::base(&state.settings.public_url);
    let templates = format::ChatTemplates {
        chat,
        department: department.as_ref(),
        first_message: text,
        public_url: &public_url,
    };
    let channel_id = match &chat.channel_id {
        Some(id) => id.clone(),
        None => {
            let team = department_target(state, bridge, department.as_ref()).await?;
            let id = create_channel(state, bridge, &team.team_id, &templates).await?;
            state.store.set_channel(&chat.id, &id).await?;
            id
        }
    };
    bridge.add_channel_member(&channel_id, operator).await?;
    if let Some(message) = format::first_post(&templates, ctx.max_post_size) {
        // One key per chat: a retried task never posts it twice.
        let key: String = format!("parley-{}", chat.id.replace('-', ""))
            .chars()
            .take(39)
            .collect();
        let target = PostTarget {
            channel_id: &channel_id,
            key: &key,
        };
        let props = json!({ format::CHAT_PROP: chat.id });
        post_once(bridge, row, &target, &message, props, Vec::new()).await?;
    }
    Ok(())
}

async fn create_channel(
    state: &AppState,
    bridge: &Bridge,
    team_id: &str,
    templates: &format::ChatTemplates<'_>,
) -> Result<String, DeliveryError> {
    let chat = templates.chat;
    let purpose = format::channel_purpose(&chat.id);
    let display_name = format::channel_display_name(templates);
    let header = format::channel_header(templates);
    let mut name = chat
        .channel_name
        .clone()
        .unwrap_or_else(|| format::channel_name(&chat.id));
    for _ in 0..5 {
        let body = CreateChannel {
            team_id,
            name: &name,
            display_name: &display_name,
            kind: "P",
            purpose: &purpose,
            header: &header,
        };
        match bridge.create_channel(&body).await {
            Ok(channel) => return Ok(channel.id),
            Err(e) if e.is_channel_name_taken() => {
                let existing = bridge.channel_by_name(team_id, &name, true).await?;
                if existing.delete_at == 0 && existing.purpose == purpose {
                    // Created by an earlier attempt whose answer was lost.
                    return Ok(existing.id);
                }
                name = format::channel_name(&chat.id);
                state.store.set_channel_name(&chat.id, &name).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(MmError::Protocol("could not find a free channel name".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, key: Option<&str>, original_id: &str, delete_at: i64) -> (String, Post) {
        let props = key.map_or(json!({}), |k| json!({ format::KEY_PROP: k }));
        let post = serde_json::from_value(json!({
            "id": id, "channel_id": "c", "user_id": "bot", "props": props,
            "original_id": original_id, "delete_at": delete_at,
        }))
        .unwrap();
        (id.to_owned(), post)
    }

    #[test]
    fn a_post_made_with_a_key_is_found_past_deleted_posts_and_edit_copies() {
        // The edited post lost the key (its props were replaced); its old version kept it.
        let edited: HashMap<_, _> = [
            listed("copy", Some("k"), "post", 5),
            listed("post", None, "", 0),
            listed("other", Some("x"), "", 0),
        ]
        .into();
        assert_eq!(made_with_key(&edited, "k").as_deref(), Some("post"));
        // The post still has its key, next to its copy: the post.
        let both: HashMap<_, _> = [
            listed("copy", Some("k"), "post", 5),
            listed("post", Some("k"), "", 0),
        ]
        .into();
        assert_eq!(made_with_key(&both, "k").as_deref(), Some("post"));
        // Deleted, or only an old version of a post deleted since: none.
        let deleted: HashMap<_, _> = [
            listed("gone", Some("k"), "", 7),
            listed("copy", Some("k"), "gone", 5),
        ]
        .into();
        assert_eq!(made_with_key(&deleted, "k"), None);
        assert_eq!(made_with_key(&HashMap::new(), "k"), None);
    }

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
