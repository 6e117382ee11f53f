//! The chat use cases, shared by the visitor API, the Mattermost callback and the event
//! stream: start, write, accept, close, and apply what operators post. Each stores first, then
//! tells live sockets and wakes the outbox.

use serde_json::Value;

use crate::{
    attachments::{self, Upload},
    domain::{ChatStatus, ClosedBy, Sender, markdown, system_event},
    mattermost::{format, wire::Post},
    security,
    state::AppState,
    storage::{
        StoreError,
        chats::{AcceptOutcome, ChatRow, Closing, NewChat, Operator},
        messages::{MessageRow, NewMessage, VisitorMessage, VisitorMessageOutcome},
        now_ms,
    },
};

/// A validated request to start a chat.
#[derive(Debug, Clone)]
pub struct StartChat {
    pub name: Option<String>,
    pub email: Option<String>,
    pub message: String,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub visitor_ip: Option<String>,
}

/// Creates a chat; returns it with the visitor's token (shown once, stored only hashed).
pub async fn start(
    state: &AppState,
    req: StartChat,
) -> Result<(ChatRow, String, MessageRow), StoreError> {
    let token = security::random_token();
    let chat = NewChat {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: security::token_hash(&token),
        visitor_name: req.name,
        visitor_email: req.email,
        page_url: req.page_url,
        referrer: req.referrer,
        visitor_ip: req.visitor_ip,
    };
    let author = chat
        .visitor_name
        .clone()
        .unwrap_or_else(|| "Visitor".to_owned());
    let html = markdown::html_escape(&req.message);
    let (row, message) = state
        .store
        .insert_chat(&chat, &req.message, &author, &html, now_ms())
        .await?;
    state.wake_outbox();
    Ok((row, token, message))
}

/// Stores a visitor message with its files (and its delivery task) and shows it on the chat's
/// sockets. Files are kept only if the message is stored.
pub async fn post_visitor_message(
    state: &AppState,
    chat: &ChatRow,
    text: &str,
    uploads: Vec<Upload>,
) -> Result<VisitorMessageOutcome, StoreError> {
    let author = format::visitor_name(chat);
    let html = markdown::html_escape(text);
    let files = attachments::keep(&state.blobs, &chat.id, uploads).await?;
    let message = VisitorMessage {
        author: &author,
        body: text,
        html: &html,
        files: &files,
        chat_allowance: state.settings.files.max_chat_bytes as i64,
    };
    let outcome = state
        .store
        .insert_visitor_message(&chat.id, &message, now_ms())
        .await;
    match &outcome {
        Ok(VisitorMessageOutcome::Stored(m)) => {
            state.hub.message(m);
            state.wake_outbox();
        }
        _ => attachments::discard(&state.blobs, &chat.id, &files).await,
    }
    outcome
}

/// The visitor ends the chat. Returns the chat as it is afterwards.
pub async fn close_by_visitor(state: &AppState, chat: &ChatRow) -> Result<ChatRow, StoreError> {
    let name = format::visitor_name(chat);
    let notice = format!("{name} ended the chat.");
    let closing = Closing {
        by: ClosedBy::Visitor,
        author: Some(&name),
        system_text: "The visitor ended the chat.",
        event: system_event::CLOSED_BY_VISITOR,
        channel_notice: Some(&notice),
        request_update: Some("the visitor left before anyone accepted"),
    };
    close(state, &chat.id, &closing).await
}

/// An operator ends the chat from Mattermost.
pub async fn close_by_operator(
    state: &AppState,
    chat: &ChatRow,
    operator_name: &str,
    operator_username: &str,
) -> Result<ChatRow, StoreError> {
    let text = format!("{operator_name} ended the chat.");
    let notice = format!("Chat closed by @{operator_username}. The visitor can no longer write.");
    let closing = Closing {
        by: ClosedBy::Operator,
        author: Some(operator_name),
        system_text: &text,
        event: system_event::CLOSED_BY_OPERATOR,
        channel_notice: Some(&notice),
        request_update: None,
    };
    close(state, &chat.id, &closing).await
}

async fn close(state: &AppState, id: &str, closing: &Closing<'_>) -> Result<ChatRow, StoreError> {
    match state.store.close_chat(id, closing, now_ms()).await? {
        Some((chat, notice)) => {
            state.hub.message(&notice);
            state.hub.chat(&chat);
            state.wake_outbox();
            Ok(chat)
        }
        None => state.store.get_chat(id).await?.ok_or(StoreError::NotFound),
    }
}

/// An operator clicked Accept: exactly one click wins.
pub async fn accept(
    state: &AppState,
    chat_id: &str,
    operator: &Operator,
) -> Result<AcceptOutcome, StoreError> {
    let name = format::channel_name(chat_id);
    let outcome = state
        .store
        .accept_chat(chat_id, operator, &name, now_ms())
        .await?;
    if let AcceptOutcome::Accepted { chat, notice } = &outcome {
        state.hub.message(notice);
        state.hub.chat(chat);
        state.wake_outbox();
    }
    Ok(outcome)
}

/// Applies one post seen in Mattermost (live or caught up): an operator message for the
/// visitor, or a command. Posts by parley itself, system posts and posts outside chat
/// channels are ignored; each post is applied at most once.
pub async fn apply_post(state: &AppState, post: &Post) -> Result<(), ApplyError> {
    let Some(bridge) = &state.bridge else {
        return Ok(());
    };
    let ctx = bridge.context().await?;
    if post.user_id == ctx.bot_user_id || !post.kind.is_empty() || post.delete_at > 0 {
        return Ok(());
    }
    let Some(chat) = state.store.get_chat_by_channel(&post.channel_id).await? else {
        return Ok(());
    };
    let status = chat.status();
    let text = post.message.trim();
    let file_ids = post.file_ids.as_deref().unwrap_or_default();
    if status == ChatStatus::Pending || (text.is_empty() && file_ids.is_empty()) {
        return Ok(());
    }
    let user = bridge.user(&post.user_id).await?;
    if user.is_bot || post.from_bot() {
        return Ok(());
    }
    if status == ChatStatus::Closed {
        // Say so once per post, so nobody waits for an answer that cannot come.
        if state.store.claim_post(&post.id, &chat.id).await? {
            let text = "This chat has ended; the visitor will not see messages written here.";
            state.store.enqueue_notice(&chat.id, text).await?;
            state.wake_outbox();
        }
        return Ok(());
    }
    if let Some(command) = text.strip_prefix('!') {
        if !state.store.claim_post(&post.id, &chat.id).await? {
            return Ok(());
        }
        return run_command(state, &chat, command, &user.display_name(), &user.username).await;
    }
    if state.store.has_post(&post.id).await? {
        return Ok(());
    }
    let (uploads, skipped) = attachments::copy_from_mattermost(state, bridge, file_ids).await?;
    if !skipped.is_empty() && state.store.claim_post(&post.id, &chat.id).await? {
        let names: Vec<String> = skipped
            .iter()
            .map(|s| format!("{} ({})", s.name, attachments::human_size(s.size)))
            .collect();
        let text = format!(
            "Not sent to the visitor, larger than parley's limit of {}: {}",
            attachments::human_size(state.settings.files.max_bytes as i64),
            names.join(", ")
        );
        state.store.enqueue_notice(&chat.id, &text).await?;
        state.wake_outbox();
    }
    if text.is_empty() && uploads.is_empty() {
        return Ok(());
    }
    let files = attachments::keep(&state.blobs, &chat.id, uploads)
        .await
        .map_err(StoreError::from)?;
    let html = markdown::render_operator_html(text);
    let author = user.display_name();
    let message = NewMessage {
        sender: Sender::Operator,
        author: Some(&author),
        body: text,
        html: Some(&html),
        event: None,
        post_id: Some(&post.id),
        created_at: if post.create_at > 0 {
            post.create_at
        } else {
            now_ms()
        },
    };
    match state
        .store
        .insert_message_from_post(&chat.id, &message, &files)
        .await
    {
        Ok(Some(row)) => {
            state
                .metrics
                .message_relayed(crate::metrics::Direction::ToVisitor);
            state.hub.message(&row);
        }
        Ok(None) => attachments::discard(&state.blobs, &chat.id, &files).await,
        Err(e) => {
            attachments::discard(&state.blobs, &chat.id, &files).await;
            return Err(e.into());
        }
    }
    Ok(())
}

async fn run_command(
    state: &AppState,
    chat: &ChatRow,
    command: &str,
    name: &str,
    username: &str,
) -> Result<(), ApplyError> {
    let word = command.split_whitespace().next().unwrap_or_default();
    match word.to_ascii_lowercase().as_str() {
        "close" => {
            close_by_operator(state, chat, name, username).await?;
        }
        _ => {
            let text = format!(
                "Unknown command `!{word}`; the visitor did not see it. Commands: `!close` ends the chat."
            );
            state.store.enqueue_notice(&chat.id, &text).await?;
            state.wake_outbox();
        }
    }
    Ok(())
}

/// Catches up every active chat with posts made while parley was not listening.
pub async fn catch_up(state: &AppState) -> Result<usize, ApplyError> {
    let Some(bridge) = &state.bridge else {
        return Ok(0);
    };
    let mut applied = 0;
    for chat in state.store.list_active_chats_with_channel().await? {
        let Some(channel_id) = &chat.channel_id else {
            continue;
        };
        // A little overlap: posts created in the same millisecond as the last one seen.
        let since = (chat.last_post_at - 1).max(0);
        let list = bridge.client.posts_since(channel_id, since).await?;
        let mut posts: Vec<&Post> = list.posts.values().collect();
        posts.sort_by_key(|p| (p.create_at, p.id.clone()));
        for post in posts {
            apply_post(state, post).await?;
            applied += 1;
        }
    }
    Ok(applied)
}

/// Why a post could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mattermost(#[from] crate::mattermost::MmError),
}

/// Reads a post embedded as a JSON string in a WebSocket event (`data.post`).
pub fn post_from_event(data: &Value) -> Option<Post> {
    let raw = data.get("post")?;
    match raw {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => serde_json::from_value(other.clone()).ok(),
    }
}
