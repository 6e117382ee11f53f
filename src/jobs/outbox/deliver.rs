//! Carries out one outbox task against Mattermost: the request post, the chat channel, relayed
//! messages with their files, notices, replies, the settled request and reminders.

use std::time::Duration;

use serde_json::json;

use super::post::{PostTarget, post_once};
use crate::app::Error;
use crate::{
    app::App,
    app::departments::{self, Department},
    app::{chats, inbound},
    domain::ChatStatus,
    mattermost::{
        Bridge, Context, MmError, Target, format,
        wire::{CreateChannel, PostPatch},
    },
    storage::{
        StoreError,
        chats::ChatRow,
        messages::MessageRow,
        now_ms,
        outbox::{OutboxRow, OutboxTask},
    },
};

/// Exponential backoff from 250 ms to 30 s with jitter: quick for a passing error, and at
/// most one try every half minute per chat during a long outage.
pub(crate) fn backoff(attempts: i64) -> Duration {
    let base = 250u64.saturating_mul(1 << attempts.clamp(0, 7)).min(30_000);
    Duration::from_millis(base + rand::random_range(0..=base / 4))
}

/// Carries out one task. Returns the relayed message and its post, for a relayed message.
#[tracing::instrument(skip_all, fields(task_id = row.id, chat_id = %chat.id))]
pub(super) async fn deliver(
    state: &App,
    bridge: &Bridge,
    row: &OutboxRow,
    task: &OutboxTask,
    chat: &ChatRow,
    message: Option<&MessageRow>,
) -> Result<Option<(i64, String)>, Error> {
    if matches!(task, OutboxTask::Reminder { .. }) {
        // The lane's copy of the chat can predate an accept or a close (an outage held the
        // reminder up while it was filled): read it again, and drop the reminder of a chat
        // that no longer waits without asking Mattermost anything.
        let current = state.store.get_chat(&chat.id).await?;
        if current.is_none_or(|c| c.status() != ChatStatus::Pending) {
            return Ok(None);
        }
    }
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
            // A chat no longer waiting was let go above, before asking Mattermost anything.
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
    state: &App,
    bridge: &Bridge,
    post_id: &str,
) -> Result<(), Error> {
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
        inbound::apply_reaction(state, reaction).await?;
    }
    Ok(())
}

/// Uploads a message's files into the chat channel, once each: the Mattermost id is stored,
/// so a retried delivery reuses the upload. Returns the uploaded ids and the names of files
/// Mattermost refused for good (too large for its `MaxFileSize`, attachments switched off):
/// the text still goes through, with a note, rather than the whole message failing.
async fn upload_files(
    state: &App,
    bridge: &Bridge,
    channel_id: &str,
    message: &MessageRow,
) -> Result<(Vec<String>, Vec<String>), Error> {
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

/// The team and requests channel of a chat's department (the configured ones for the
/// default department), resolved by the bridge.
async fn department_target(
    state: &App,
    bridge: &Bridge,
    department: Option<&Department>,
) -> Result<std::sync::Arc<Target>, Error> {
    let route = departments::route_of(state, department)
        .ok_or_else(|| MmError::Protocol("Mattermost is not configured".into()))?;
    Ok(bridge.target(&route).await?)
}

/// Creates the chat's private channel in its department's team (or adopts the one an
/// earlier attempt created), adds the operator, and makes the first post if the department's
/// template gives one. A name already taken by another channel gets a fresh one.
async fn open_channel(
    state: &App,
    bridge: &Bridge,
    ctx: &Context,
    row: &OutboxRow,
    chat: &ChatRow,
) -> Result<(), Error> {
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
    state: &App,
    bridge: &Bridge,
    team_id: &str,
    templates: &format::ChatTemplates<'_>,
) -> Result<String, Error> {
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
