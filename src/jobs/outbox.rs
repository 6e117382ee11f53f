//! Delivers outbox tasks to Mattermost: in order per chat, chats in parallel, with backoff on
//! failures, `Retry-After` on 429, and `pending_post_id` plus a `parley_key` prop so that no
//! retry ever doubles a post.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

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
        StoreError,
        chats::ChatRow,
        messages::MessageRow,
        now_ms,
        outbox::{OutboxRow, OutboxTask},
    },
};

/// What one pass of the worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Some tasks were tried (delivered, failed or rescheduled).
    Worked(usize),
    /// Nothing is due; the earliest task waits until this time (ms), if any.
    Idle { next_due: Option<i64> },
}

/// Tasks a single pass takes on; each chat contributes at most its head.
const BATCH: i64 = 200;
/// Chats delivered to at the same time.
const PARALLEL: usize = 16;
/// Mattermost remembers a `pending_post_id` for 30 s; after that a retry first looks for the
/// post by its `parley_key` prop.
const DEDUP_WINDOW_MS: i64 = 25_000;

/// One pass: tries every chat's due head task once.
pub async fn run_once(state: &AppState) -> Result<Outcome, StoreError> {
    let Some(bridge) = &state.bridge() else {
        return Ok(Outcome::Idle { next_due: None });
    };
    let now = now_ms();
    let heads = state.store.list_outbox_heads(BATCH).await?;
    let next_due = heads
        .iter()
        .filter(|r| r.next_attempt_at > now)
        .map(|r| r.next_attempt_at)
        .min();
    let due: Vec<OutboxRow> = heads
        .into_iter()
        .filter(|r| r.next_attempt_at <= now)
        .collect();
    if due.is_empty() {
        return Ok(Outcome::Idle { next_due });
    }
    let count = due.len();
    let results: Vec<Result<bool, StoreError>> = stream::iter(due)
        .map(|row| async move { attempt(state, bridge, row).await })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut recovered = false;
    for r in results {
        recovered |= r?;
    }
    if recovered {
        // A task that had failed before went through: Mattermost is back.
        mattermost_is_back(state).await;
    }
    Ok(Outcome::Worked(count))
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

/// Tries one task and records the result. Returns whether a task that had failed before
/// went through.
async fn attempt(state: &AppState, bridge: &Bridge, row: OutboxRow) -> Result<bool, StoreError> {
    let task = match row.task() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(outbox_id = row.id, error = %e, "unreadable outbox task");
            state.store.mark_failed(row.id, "unreadable task").await?;
            return Ok(false);
        }
    };
    let started = now_ms();
    match deliver(state, bridge, &row, &task).await {
        Ok(()) => {
            state.store.mark_delivered(row.id).await?;
            if matches!(task, OutboxTask::RelayMessage { .. }) {
                state.metrics.message_relayed(Direction::ToMattermost);
            }
            Ok(row.attempts > 0)
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
            Ok(false)
        }
        Err(DeliveryError::Mattermost(e)) => {
            tracing::error!(
                outbox_id = row.id, chat_id = %row.chat_id, error = %e, mattermost_error_id = ?e.id(),
                "Mattermost refused a delivery; it will not be retried"
            );
            state.store.mark_failed(row.id, &e.to_string()).await?;
            Ok(false)
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

async fn deliver(
    state: &AppState,
    bridge: &Bridge,
    row: &OutboxRow,
    task: &OutboxTask,
) -> Result<(), DeliveryError> {
    let ctx = bridge.context().await?;
    let chat = state
        .store
        .get_chat(&row.chat_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    match task {
        OutboxTask::RequestPost { key } => {
            let first = state.store.list_messages(&chat.id, 0, 1).await?;
            let text = first.first().map(|m| m.body.as_str()).unwrap_or_default();
            let department = departments::get(state, chat.department_id).await?;
            let route_target = department_target(state, bridge, department.as_ref()).await?;
            let public_url = crate::config::base(&state.settings.public_url);
            let url = format!("{public_url}/mattermost/actions");
            let templates = format::ChatTemplates {
                chat: &chat,
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
        OutboxTask::OpenChannel => open_channel(state, bridge, &ctx, row, &chat).await?,
        OutboxTask::RelayMessage { message_id, key } => {
            let message = state.store.get_message(*message_id).await?;
            let author = message
                .author
                .clone()
                .unwrap_or_else(|| format::visitor_name(&chat));
            let channel = chat.channel_id.as_deref().ok_or(StoreError::NotFound)?;
            let (mut file_ids, refused) = upload_files(state, bridge, channel, &message).await?;
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
            if let Some(post_id) = first_post {
                state.store.set_message_post(message.id, &post_id).await?;
            }
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
                let (message, props) = format::settled_request(&chat, text);
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
                return Ok(());
            }
            let link = chat
                .request_post_id
                .as_deref()
                .map(|post_id| bridge.post_link(&ctx.team_name, post_id));
            let waited = Duration::from_millis((now_ms() - chat.created_at).max(0) as u64);
            let message = format::reminder(
                &chat,
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
    Ok(())
}

/// Creates a post exactly once: `pending_post_id` covers quick retries, and after
/// Mattermost's 30-second memory a retry first looks for a post carrying the same key.
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
