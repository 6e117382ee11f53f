//! The chat use cases, shared by the visitor API, the Mattermost callback and the event
//! stream: start, write, accept, close, and apply what operators post. Each stores first, then
//! tells live sockets and wakes the outbox.

use serde_json::Value;

use crate::{
    app::App,
    app::attachments::{self, Upload},
    cluster::Note,
    domain::{ChatStatus, ClosedBy, Sender, markdown, system_event},
    live::LiveEvent,
    mattermost::{
        Bridge, MmError, answers, format,
        wire::{Post, Reaction, User},
    },
    security,
    storage::{
        StoreError,
        chats::{AcceptOutcome, ChatRow, Closing, NewChat, Operator, Transfer},
        messages::{MessageRow, NewMessage, NewNote, VisitorMessage, VisitorMessageOutcome},
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
            if !state.outbox_handoffs.give(task, chat, message) {
                state.wake_outbox();
            }
        }
        _ => attachments::discard(&state.blobs, &chat.id, &files).await,
    }
    outcome
}

/// The visitor ends the chat. Returns the chat as it is afterwards.
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
        state.hub.message(&notice);
        state.hub.chat(&chat);
        state.wake_outbox();
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
        state.hub.message(notice);
        state.hub.chat(chat);
        state.wake_outbox();
    }
    Ok(outcome)
}

/// Applies one post seen in Mattermost (live or caught up): an operator message for the
/// visitor, or a command. Posts by parley itself, system posts and posts outside chat
/// channels are ignored; each post is applied at most once.
pub async fn apply_post(state: &App, post: &Post) -> Result<(), ApplyError> {
    let Some(bridge) = &state.bridge() else {
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
    if let Some(command) = text.strip_prefix('!') {
        if !state.store.claim_post(&post.id, &chat.id).await? {
            return Ok(());
        }
        return run_command(state, bridge, &chat, command, post, &user).await;
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
    // A post seen again (catch-up after a reconnect) must not copy its files twice; a text-only
    // post needs no look-up, the insert below ignores it.
    if !file_ids.is_empty() && state.store.has_post(&post.id).await? {
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

/// Carries out an operator command (the text after `!`) and answers in the channel. Answers
/// are built by `mattermost::answers`, which makes every piece of echoed text inert.
async fn run_command(
    state: &App,
    bridge: &Bridge,
    chat: &ChatRow,
    command: &str,
    post: &Post,
    user: &User,
) -> Result<(), ApplyError> {
    let mut parts = command.trim_start().splitn(2, char::is_whitespace);
    let word = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().trim();
    let active = chat.status() == ChatStatus::Active;
    let answer = match word.to_ascii_lowercase().as_str() {
        "close" if active => {
            close_by_operator(state, chat, &user.display_name(), &user.username).await?;
            None
        }
        "transfer" if active => transfer(state, bridge, chat, rest).await?,
        "invite" if active => Some(invite(bridge, chat, rest).await),
        "close" | "transfer" | "invite" => Some(answers::chat_has_ended()),
        "note" => Some(note(state, chat, rest, post, user).await?),
        "info" => Some(info(state, chat).await?),
        "help" => Some(answers::help()),
        _ => Some(answers::unknown_command(word)),
    };
    if let Some(answer) = answer {
        state.store.enqueue_reply(&chat.id, &answer).await?;
        state.wake_outbox();
    }
    Ok(())
}

/// `!note <text>`: kept in the transcript, never sent to the visitor (no live event, no
/// outbox task; the visitor API leaves notes out).
async fn note(
    state: &App,
    chat: &ChatRow,
    text: &str,
    post: &Post,
    user: &User,
) -> Result<String, ApplyError> {
    if text.is_empty() {
        return Ok(answers::note_needs_text());
    }
    let note = NewNote {
        author: &user.display_name(),
        body: text,
        post_id: &post.id,
        created_at: if post.create_at > 0 {
            post.create_at
        } else {
            now_ms()
        },
    };
    state.store.insert_note(&chat.id, &note).await?;
    Ok(answers::note_saved())
}

/// `!transfer @user`: adds them to the channel, makes them the chat's operator and tells the
/// visitor. Returns the answer when nothing changed (the handover queues its own).
async fn transfer(
    state: &App,
    bridge: &Bridge,
    chat: &ChatRow,
    argument: &str,
) -> Result<Option<String>, ApplyError> {
    let target = match operator_named(bridge, "transfer", argument).await {
        Ok(user) => user,
        Err(answer) => return Ok(Some(answer)),
    };
    if chat.operator_user_id.as_deref() == Some(target.id.as_str()) {
        return Ok(Some(answers::already_operator(&target.username)));
    }
    let Some(channel_id) = chat.channel_id.as_deref() else {
        return Ok(Some(answers::try_again()));
    };
    if let Err(answer) = add_to_channel(bridge, channel_id, &target).await {
        return Ok(Some(answer));
    }
    let to = Operator {
        user_id: target.id.clone(),
        username: target.username.clone(),
        name: target.display_name(),
    };
    let system_text = format!("You are now talking to {}", to.name);
    let reply = answers::transferred(chat.operator_username.as_deref(), &to.username, &to.name);
    let handover = Transfer {
        from_user_id: chat.operator_user_id.as_deref().unwrap_or_default(),
        to: &to,
        system_text: &system_text,
        reply: &reply,
    };
    match state
        .store
        .transfer_chat(&chat.id, &handover, now_ms())
        .await?
    {
        Some((chat, notice)) => {
            state.hub.message(&notice);
            state.hub.chat(&chat);
            Ok(None)
        }
        // Ended, or handed to someone else, while this command ran.
        None => Ok(Some(answers::chat_has_changed())),
    }
}

/// `!invite @user`: adds a colleague to the channel. The visitor is not told (they see the
/// colleague's name once they write).
async fn invite(bridge: &Bridge, chat: &ChatRow, argument: &str) -> String {
    let target = match operator_named(bridge, "invite", argument).await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    if chat.operator_user_id.as_deref() == Some(target.id.as_str()) {
        return answers::already_operator(&target.username);
    }
    let Some(channel_id) = chat.channel_id.as_deref() else {
        return answers::try_again();
    };
    match add_to_channel(bridge, channel_id, &target).await {
        Ok(()) => answers::invited(&target.username, &target.display_name()),
        Err(answer) => answer,
    }
}

/// `!info`: the visitor's details and their earlier chats by e-mail.
async fn info(state: &App, chat: &ChatRow) -> Result<String, ApplyError> {
    let (total, earlier) = match &chat.visitor_email {
        Some(email) => {
            state
                .store
                .list_chats_by_email(email, &chat.id, EARLIER_CHATS_SHOWN)
                .await?
        }
        None => (0, Vec::new()),
    };
    Ok(answers::info(chat, total, &earlier, now_ms()))
}

/// How many earlier chats `!info` lists by date.
const EARLIER_CHATS_SHOWN: i64 = 10;

/// The one `@username` after a command, as a user who can take chats; otherwise the answer
/// that says why not.
async fn operator_named(bridge: &Bridge, command: &str, argument: &str) -> Result<User, String> {
    let mut words = argument.split_whitespace();
    let (Some(word), None) = (words.next(), words.next()) else {
        return Err(answers::needs_username(command));
    };
    let username = word.strip_prefix('@').unwrap_or(word).to_ascii_lowercase();
    if !is_username(&username) {
        return Err(answers::not_a_username(word));
    }
    match bridge.user_by_username(&username).await {
        Ok(user) if user.is_bot => Err(answers::is_a_bot(&user.username)),
        Ok(user) if user.delete_at > 0 => Err(answers::deactivated(&user.username)),
        Ok(user) => Ok(user),
        Err(e) if e.status() == Some(404) => Err(answers::no_such_user(&username)),
        Err(e) if e.is_transient() => Err(answers::try_again()),
        Err(e) => Err(answers::could_not_add(&username, &refusal(&e))),
    }
}

/// Mattermost usernames: lowercase letters, digits, `.`, `-` and `_` (at most 64).
fn is_username(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
}

/// Adds a user to a chat channel (idempotent on the server), or says why not.
async fn add_to_channel(bridge: &Bridge, channel_id: &str, user: &User) -> Result<(), String> {
    match bridge.client.add_channel_member(channel_id, &user.id).await {
        Ok(()) => Ok(()),
        Err(e) if e.id() == Some("app.team.get_member.missing.app_error") => {
            Err(answers::not_in_team(&user.username))
        }
        Err(e) if e.is_transient() => Err(answers::try_again()),
        Err(e) => Err(answers::could_not_add(&user.username, &refusal(&e))),
    }
}

/// Mattermost's own words for a refusal.
fn refusal(e: &MmError) -> String {
    match e {
        MmError::Api { message, .. } if !message.is_empty() => message.clone(),
        other => other.to_string(),
    }
}

/// An operator edited a post in a chat channel: the stored message takes the new text and the
/// visitor sees it marked edited. Posts by parley itself, notes and unchanged text (a pin, a
/// reaction) change nothing.
pub async fn apply_post_edited(state: &App, post: &Post) -> Result<(), ApplyError> {
    let Some(bridge) = state.bridge() else {
        return Ok(());
    };
    let ctx = bridge.context().await?;
    if post.user_id == ctx.bot_user_id
        || !post.kind.is_empty()
        || post.delete_at > 0
        || post.from_bot()
    {
        return Ok(());
    }
    let text = post.message.trim();
    let html = markdown::render_operator_html(text);
    let edited_at = if post.edit_at > 0 {
        post.edit_at
    } else {
        now_ms()
    };
    if let Some(row) = state
        .store
        .update_message_from_post(&post.id, text, &html, edited_at)
        .await?
    {
        state.hub.message_updated(&row);
    }
    Ok(())
}

/// An operator deleted a post in a chat channel: its message is marked deleted (kept for the
/// back office) and leaves the visitor's view.
pub async fn apply_post_deleted(state: &App, post: &Post) -> Result<(), ApplyError> {
    let Some(bridge) = state.bridge() else {
        return Ok(());
    };
    let ctx = bridge.context().await?;
    if post.user_id == ctx.bot_user_id {
        return Ok(());
    }
    let at = if post.delete_at > 0 {
        post.delete_at
    } else {
        now_ms()
    };
    if let Some(row) = state.store.delete_message_from_post(&post.id, at).await?
        && row.internal == 0
    {
        state
            .hub
            .publish(&row.chat_id, LiveEvent::MessageDeleted { id: row.id });
    }
    Ok(())
}

/// Someone types in a channel (Mattermost's `typing` event): if it is an operator in an
/// active chat's channel, the visitor's widget says so. Nothing is stored.
pub async fn operator_typing(
    state: &App,
    channel_id: &str,
    user_id: &str,
) -> Result<(), ApplyError> {
    let Some(bridge) = state.bridge() else {
        return Ok(());
    };
    let ctx = bridge.context().await?;
    if user_id.is_empty() || user_id == ctx.bot_user_id || channel_id.is_empty() {
        return Ok(());
    }
    let Some(chat) = state.store.get_chat_by_channel(channel_id).await? else {
        return Ok(());
    };
    if chat.status() != ChatStatus::Active {
        return Ok(());
    }
    let user = bridge.user(user_id).await?;
    if user.is_bot {
        return Ok(());
    }
    let name = user.display_name();
    state.hub.publish(&chat.id, LiveEvent::Typing { name });
    Ok(())
}

/// The emoji that accepts a chat when put on its request post, for servers that cannot reach
/// parley's button callback.
pub const ACCEPT_EMOJI: &str = "white_check_mark";

/// A reaction was added somewhere: `:white_check_mark:` on a pending chat's request post by a
/// person accepts the chat, through the same exactly-one-winner path as the button. The
/// request post is then rewritten as after a click.
pub async fn apply_reaction(state: &App, reaction: &Reaction) -> Result<(), ApplyError> {
    let Some(bridge) = state.bridge() else {
        return Ok(());
    };
    if reaction.emoji_name != ACCEPT_EMOJI {
        return Ok(());
    }
    let ctx = bridge.context().await?;
    if reaction.user_id == ctx.bot_user_id {
        return Ok(());
    }
    let Some(chat) = state
        .store
        .get_chat_by_request_post(&reaction.post_id)
        .await?
    else {
        return Ok(());
    };
    if chat.status() != ChatStatus::Pending {
        return Ok(());
    }
    let user = bridge.user(&reaction.user_id).await?;
    if user.is_bot || user.delete_at > 0 {
        return Ok(());
    }
    let operator = Operator {
        user_id: user.id.clone(),
        username: user.username.clone(),
        name: user.display_name(),
    };
    if let AcceptOutcome::Accepted { chat, .. } = accept(state, &chat.id, &operator).await? {
        tracing::info!(chat_id = %chat.id, "chat accepted by a reaction on its request post");
        let status_line = format!("accepted by @{}", operator.username);
        state
            .store
            .enqueue_request_update(&chat.id, &status_line)
            .await?;
        state.wake_outbox();
    }
    Ok(())
}

/// Catches up every active chat with posts made while parley was not listening.
pub async fn catch_up(state: &App) -> Result<usize, ApplyError> {
    let Some(bridge) = state.bridge() else {
        return Ok(0);
    };
    let mut applied = 0;
    for chat in state.store.list_active_chats_with_channel().await? {
        let Some(channel_id) = &chat.channel_id else {
            continue;
        };
        // A little overlap: posts created in the same millisecond as the last one seen.
        let since = (chat.last_post_at - 1).max(0);
        let list = match bridge.client.posts_since(channel_id, since).await {
            Ok(list) => list,
            // Mattermost is unwell: the next connection catches up again.
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                // This chat's channel is gone (the server answers 403 for a channel deleted
                // for good): the other chats still count.
                tracing::warn!(chat_id = %chat.id, channel_id, error = %e, "could not catch up a chat's channel");
                continue;
            }
        };
        let mut posts: Vec<&Post> = list.posts.values().collect();
        posts.sort_by_key(|p| (p.create_at, p.id.clone()));
        for post in posts {
            apply_post_change(state, post).await?;
            applied += 1;
        }
    }
    // Reactions are not posts: look at the request posts of chats still waiting.
    for chat in state.store.list_pending_chats_with_request_post().await? {
        let Some(post_id) = &chat.request_post_id else {
            continue;
        };
        let mut reactions = match bridge.client.reactions(post_id).await {
            Ok(list) => list,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                // E.g. someone deleted the request post: the other chats still count.
                tracing::warn!(chat_id = %chat.id, error = %e, "could not read the request post's reactions");
                continue;
            }
        };
        reactions.retain(|r| r.emoji_name == ACCEPT_EMOJI);
        reactions.sort_by_key(|r| r.create_at);
        for reaction in &reactions {
            apply_reaction(state, reaction).await?;
        }
    }
    Ok(applied)
}

/// Applies a post from a catch-up list, which holds new, edited and deleted posts alike.
async fn apply_post_change(state: &App, post: &Post) -> Result<(), ApplyError> {
    if !post.original_id.is_empty() {
        // The old version an edit left behind (soft-deleted): the edited post itself is listed
        // too and carries the change.
        return Ok(());
    }
    if post.delete_at > 0 {
        return apply_post_deleted(state, post).await;
    }
    if post.edit_at > 0 {
        apply_post_edited(state, post).await?;
    }
    apply_post(state, post).await
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
    embedded(data, "post")
}

/// Reads a reaction embedded as a JSON string in a WebSocket event (`data.reaction`).
pub fn reaction_from_event(data: &Value) -> Option<Reaction> {
    embedded(data, "reaction")
}

fn embedded<T: serde::de::DeserializeOwned>(data: &Value, key: &str) -> Option<T> {
    match data.get(key)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => serde_json::from_value(other.clone()).ok(),
    }
}
