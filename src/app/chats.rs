//! The chat use cases, shared by the visitor API, the Mattermost callback, the jobs and what
//! comes in from Mattermost (`inbound`, `commands`): start, write, remind, accept,
//! close. Each stores first, then tells live sockets and wakes the outbox.

use crate::{
    app::{
        App,
        attachments::{self, Upload},
    },
    cluster::Note,
    domain::{ChatStatus, ClosedBy, Sender, markdown, system_event},
    mattermost::format,
    security,
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
    pub phone: Option<String>,
    /// `None`: the default department.
    pub department_id: Option<i64>,
}

/// Creates a chat; returns it with the visitor's token (shown once, stored only hashed).
#[tracing::instrument(skip_all)]
pub async fn start(
    state: &App,
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
        visitor_phone: req.phone,
        department_id: req.department_id,
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
#[tracing::instrument(skip_all, fields(chat_id = %chat.id))]
pub async fn post_visitor_message(
    state: &App,
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
        Ok(VisitorMessageOutcome::Stored { message, task }) => {
            state.hub.message(message);
            // The outbox worker takes the task as it is, without reading it back; when it
            // cannot (another instance runs it, or the chat has no channel yet), it reads it.
            if !state.outbox.handoffs.give(task, chat, message) {
                state.wake_outbox();
            }
        }
        _ => attachments::discard(&state.blobs, &chat.id, &files).await,
    }
    outcome
}

/// The visitor ends the chat. Returns the chat as it is afterwards.
#[tracing::instrument(skip_all, fields(chat_id = %chat.id))]
pub async fn close_by_visitor(state: &App, chat: &ChatRow) -> Result<ChatRow, StoreError> {
    let name = format::visitor_name(chat);
    let notice = format!("{name} ended the chat.");
    let closing = Closing {
        by: ClosedBy::Visitor,
        author: Some(&name),
        system_text: "The visitor ended the chat.",
        event: system_event::CLOSED_BY_VISITOR,
        channel_notice: Some(&notice),
        request_update: Some(LEFT_BEFORE_ACCEPT),
    };
    close(state, &chat.id, &closing).await
}

/// How the request post reads after the visitor ended the chat before anyone accepted.
const LEFT_BEFORE_ACCEPT: &str = "the visitor left before anyone accepted";

/// The visitor is gone: no widget has been connected to the chat since `unseen_since` (the
/// visitor timeout ago). Ends the chat with a notice in its channel, or, before anyone
/// accepted, by settling the request post. Does nothing if the visitor came back meanwhile,
/// even at this very moment; returns the ended chat otherwise.
#[tracing::instrument(skip_all, fields(chat_id))]
pub async fn close_visitor_left(
    state: &App,
    chat_id: &str,
    unseen_since: i64,
) -> Result<Option<ChatRow>, StoreError> {
    let Some(chat) = state.store.get_chat(chat_id).await? else {
        return Ok(None);
    };
    let name = format::visitor_name(&chat);
    let away = format::duration_text(state.settings.visitor_timeout);
    let text = format!("The chat ended: the visitor was away for {away}.");
    let notice = format!("The visitor left (no connection for {away}).");
    let request_update = left_unaccepted(state, ClosedBy::VisitorLeft.as_str());
    let closing = Closing {
        by: ClosedBy::VisitorLeft,
        author: Some(&name),
        system_text: &text,
        event: system_event::VISITOR_LEFT,
        channel_notice: Some(&notice),
        request_update: Some(&request_update),
    };
    let closed = state
        .store
        .close_chat_if_left(chat_id, &closing, unseen_since, now_ms())
        .await?;
    Ok(closed.map(|(chat, notice)| {
        state.chat_changed(&chat, &notice);
        chat
    }))
}

/// Shows the visitor as typing in the chat's channel, if the chat is active. Dropped while
/// Mattermost's event stream is down: typing is never queued.
pub async fn visitor_typing(state: &App, chat_id: &str) {
    let Some(bridge) = state.bridge() else {
        return;
    };
    let chat = match state.store.get_chat(chat_id).await {
        Ok(Some(chat)) => chat,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(error = %e, "could not read the chat for typing");
            return;
        }
    };
    if chat.status() == ChatStatus::Active
        && let Some(channel_id) = &chat.channel_id
    {
        match &state.cluster {
            // The leader holds the event stream that sends it.
            Some(cluster) if !cluster.is_leader() => cluster.send(Note::VisitorTyping {
                channel: channel_id.clone(),
            }),
            _ => {
                bridge.visitor_typing(channel_id);
            }
        }
    }
}

/// How the request post reads once a chat ended before anyone accepted, by who ended it
/// (`closed_by` as stored).
pub fn left_unaccepted(state: &App, closed_by: &str) -> String {
    if closed_by == ClosedBy::Visitor.as_str() {
        LEFT_BEFORE_ACCEPT.to_owned()
    } else if closed_by == ClosedBy::VisitorLeft.as_str() {
        format!(
            "the visitor left (no connection for {}) before anyone accepted",
            format::duration_text(state.settings.visitor_timeout)
        )
    } else {
        "ended before anyone accepted".to_owned()
    }
}

/// Nobody accepted the request in time: reminds the requests channel (through the outbox) and
/// tells the visitor they are still in the queue, with the offer to leave a message instead.
/// Once per chat, however many instances try; only for a request started before
/// `created_before`. Returns whether this call reminded.
#[tracing::instrument(skip_all, fields(chat_id))]
pub async fn remind(state: &App, chat_id: &str, created_before: i64) -> Result<bool, StoreError> {
    let now = now_ms();
    let notice = NewMessage {
        sender: Sender::System,
        author: None,
        body: "Nobody has been able to answer yet; you are still in the queue. You can also \
               leave a message instead, and we will reply by e-mail.",
        html: None,
        event: Some(system_event::STILL_WAITING),
        post_id: None,
        created_at: now,
    };
    match state
        .store
        .remind_chat(chat_id, &notice, created_before, now)
        .await?
    {
        Some(message) => {
            state.hub.message(&message);
            state.wake_outbox();
            Ok(true)
        }
        None => Ok(false),
    }
}

/// An operator ends the chat from Mattermost.
#[tracing::instrument(skip_all, fields(chat_id = %chat.id))]
pub async fn close_by_operator(
    state: &App,
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

async fn close(state: &App, id: &str, closing: &Closing<'_>) -> Result<ChatRow, StoreError> {
    match state.store.close_chat(id, closing, now_ms()).await? {
        Some((chat, notice)) => {
            state.chat_changed(&chat, &notice);
            Ok(chat)
        }
        None => state.store.get_chat(id).await?.ok_or(StoreError::NotFound),
    }
}

/// An operator clicked Accept: exactly one click wins.
#[tracing::instrument(skip_all, fields(chat_id, operator = %operator.username))]
pub async fn accept(
    state: &App,
    chat_id: &str,
    operator: &Operator,
) -> Result<AcceptOutcome, StoreError> {
    let name = format::channel_name(chat_id);
    let outcome = state
        .store
        .accept_chat(chat_id, operator, &name, now_ms())
        .await?;
    if let AcceptOutcome::Accepted { chat, notice } = &outcome {
        state.chat_changed(chat, notice);
    }
    Ok(outcome)
}
