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
    departments::{self, Department},
    domain::ChatStatus,
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
        outbox::{Delivered, OutboxRow, OutboxTask},
    },
};

/// What one pass of a job did (the offline messages' worker reports this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Some tasks were tried (delivered, failed or rescheduled).
    Worked(usize),
    /// Nothing is due; the earliest task waits until this time (ms), if any.
    Idle { next_due: Option<i64> },
}

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
/// Pause after the database failed, so a broken database is not hammered.
const AFTER_STORE_ERROR: Duration = Duration::from_secs(1);

/// Runs the outbox until `shutdown`, then lets the lanes finish and records what they did.
/// Every wake-up of the outbox is passed on to `also_wake`.
pub async fn run(state: AppState, shutdown: CancellationToken, also_wake: Arc<Notify>) {
    let claims = Claims::default();
    let (recorder, recording) = Recorder::start(state.store.clone(), claims.clone());
    let mut queue = Queue::new(claims);
    let mut lanes = Lanes::default();
    // What to read before the next dispatch: everything (at start, on the timer, after a lane
    // stopped early) or only tasks added since the last read (on a wake-up).
    let mut read = Some(Read::All);
    let mut look_at = Instant::now();
    loop {
        if let Some(how) = read.take() {
            // A chat waiting out a backoff may be due now (Mattermost came back and the
            // database says so): read everything, at most a few times a second.
            let how = if how == Read::New
                && queue.has_waiting_head()
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
            _ = tokio::time::sleep_until(look_at) => {
                read = Some(Read::All);
                look_at = Instant::now() + IDLE_LOOK;
            }
        }
    }
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
}

impl Queue {
    fn new(claims: Claims) -> Self {
        Self {
            by_chat: HashMap::new(),
            cursor: 0,
            more: false,
            read_all_at: Instant::now(),
            claims,
        }
    }

    async fn read(&mut self, store: &Store, how: Read) -> Result<(), StoreError> {
        let after = match how {
            Read::All => 0,
            Read::New | Read::Next => self.cursor,
        };
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
        }
        self.more = rows.len() as i64 == FETCH;
        for row in rows {
            self.cursor = self.cursor.max(row.id);
            if !claimed.contains(&row.id) {
                self.by_chat
                    .entry(row.chat_id.clone())
                    .or_default()
                    .push(row);
            }
        }
        Ok(())
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
    // What the lanes need, read for all of them on one connection.
    let chat_ids: Vec<&str> = chosen.iter().map(String::as_str).collect();
    let parsed: Vec<Vec<(OutboxRow, Option<OutboxTask>)>> = taken
        .into_iter()
        .map(|tasks| tasks.into_iter().map(parse).collect())
        .collect();
    let message_ids: Vec<i64> = parsed
        .iter()
        .flatten()
        .filter_map(|(_, task)| match task {
            Some(OutboxTask::RelayMessage { message_id, .. }) => Some(*message_id),
            _ => None,
        })
        .collect();
    let inputs = state.store.delivery_inputs(&chat_ids, &message_ids).await;
    let (chats, messages) = match inputs {
        Ok(read) => read,
        Err(e) => {
            // Give the tasks back: the next full read queues them again.
            let mut claimed = queue.claims.lock();
            for (row, _) in parsed.iter().flatten() {
                claimed.remove(&row.id);
            }
            return Err(e);
        }
    };
    let mut chats: HashMap<String, ChatRow> =
        chats.into_iter().map(|c| (c.id.clone(), c)).collect();
    let mut messages: HashMap<i64, MessageRow> = messages.into_iter().map(|m| (m.id, m)).collect();
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
    fn start(store: Store, claims: Claims) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(record_batches(store, rx, claims));
        (Self { tx }, writer)
    }

    /// Queues a delivered task (its claim is held until it is recorded).
    fn record(&self, done: Delivered) {
        let _ = self.tx.send(done);
    }
}

async fn record_batches(store: Store, mut rx: mpsc::UnboundedReceiver<Delivered>, claims: Claims) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        if let Err(e) = store.record_deliveries(&batch).await {
            tracing::error!(error = %e, tasks = batch.len(), "could not record deliveries to Mattermost");
        }
        let mut claimed = claims.lock();
        for done in batch.drain(..) {
            claimed.remove(&done.outbox_id);
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
            let (message, props) = format::request_post(&templates, &url, &state.signer);
            let target = PostTarget {
                channel_id: &route_target.channel_id,
                key,
            };
            let post = post_once(bridge, row, &target, &message, props, Vec::new()).await?;
            state.store.set_request_post(&chat.id, &post.id).await?;
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
                bridge.client.patch_post(post_id, &patch).await?;
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
            .client
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
        let list = bridge.client.posts_since(channel_id, first - 5_000).await?;
        if let Some(post) = list
            .posts
            .into_values()
            .find(|p| p.props.get(format::KEY_PROP).and_then(Value::as_str) == Some(key))
        {
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
    bridge.client.create_post(&post).await
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
    bridge
        .client
        .add_channel_member(&channel_id, operator)
        .await?;
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
        match bridge.client.create_channel(&body).await {
            Ok(channel) => return Ok(channel.id),
            Err(e) if is_name_taken(&e) => {
                let existing = bridge.client.channel_by_name(team_id, &name, true).await?;
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

/// Both error ids Mattermost has used for a taken name (older servers: `previously` when the
/// holder is archived).
fn is_name_taken(e: &MmError) -> bool {
    matches!(
        e.id(),
        Some("store.sql_channel.save_channel.exists.app_error")
            | Some("store.sql_channel.save_channel.previously.app_error")
    )
}
