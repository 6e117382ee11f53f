//! What comes in from Mattermost, applied: the application's side of the bridge ([`Inbound`]
//! for [`App`]), ONE match with one arm per [`BridgeEvent`]. An operator's post becomes a
//! message for the visitor or a command (`app::commands`); edits and deletes change what
//! the visitor sees; an operator typing shows in the widget; a ✅ on a request post accepts the
//! chat; a reconnection lets the outbox go at once and, for a fresh session, catches up every
//! active chat. Posts by parley itself, system posts and posts outside chat channels are
//! ignored; each post is applied at most once. Like the other use cases, each stores first,
//! then tells live sockets and wakes the outbox.

use futures_util::future::BoxFuture;

use crate::app::Error;
use crate::{
    app::{App, commands, outbox::mattermost_is_back},
    app::{attachments, chats},
    domain::{ChatStatus, Sender, markdown},
    live::LiveEvent,
    mattermost::{
        BridgeEvent, Inbound,
        events::{Post, Reaction},
    },
    storage::{
        StoreError,
        chats::{AcceptOutcome, Operator},
        messages::NewMessage,
        now_ms,
    },
};

impl Inbound for App {
    type Error = Error;

    fn apply(&self, event: BridgeEvent) -> impl Future<Output = Result<(), Error>> + Send {
        apply(self, event)
    }
}

/// The one match: what each event does. Boxed because the catch-up applies the events it
/// fetches through it (an async fn cannot contain itself).
fn apply(state: &App, event: BridgeEvent) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        match event {
            BridgeEvent::Posted(post) => apply_post(state, &post).await,
            BridgeEvent::Edited(post) => apply_post_edited(state, &post).await,
            BridgeEvent::Deleted(post) => apply_post_deleted(state, &post).await,
            BridgeEvent::Typing {
                channel_id,
                user_id,
            } => operator_typing(state, &channel_id, &user_id).await,
            BridgeEvent::Reaction(reaction) => apply_reaction(state, &reaction).await,
            BridgeEvent::Reconnected { catch_up: false } => {
                mattermost_is_back(state).await;
                Ok(())
            }
            BridgeEvent::Reconnected { catch_up: true } => {
                let posts = catch_up(state).await?;
                tracing::info!(posts, "caught up with Mattermost");
                Ok(())
            }
        }
    })
}

/// Applies one post seen in Mattermost (live or caught up): an operator message for the
/// visitor, or a command. Posts by parley itself, system posts and posts outside chat
/// channels are ignored; each post is applied at most once.
#[tracing::instrument(skip_all, fields(post_id = %post.id, channel_id = %post.channel_id))]
async fn apply_post(state: &App, post: &Post) -> Result<(), Error> {
    let Some(bridge) = &state.bridge() else {
        return Ok(());
    };
    let ctx = bridge.context().await?;
    if post.user_id == ctx.bot_user_id || post.is_system || post.delete_at > 0 {
        return Ok(());
    }
    let Some(chat) = state.store.get_chat_by_channel(&post.channel_id).await? else {
        return Ok(());
    };
    let status = chat.status();
    let text = post.message.trim();
    let file_ids = &post.file_ids;
    if status == ChatStatus::Pending || (text.is_empty() && file_ids.is_empty()) {
        return Ok(());
    }
    let user = bridge.user(&post.user_id).await?;
    if user.is_bot || post.from_bot {
        return Ok(());
    }
    if let Some(command) = text.strip_prefix('!') {
        if !state.store.claim_post(&post.id, &chat.id).await? {
            return Ok(());
        }
        return commands::run(state, bridge, &chat, command, post, &user).await;
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

/// An operator edited a post in a chat channel: the stored message takes the new text and the
/// visitor sees it marked edited. Posts by parley itself, notes and unchanged text (a pin, a
/// reaction) change nothing.
#[tracing::instrument(skip_all, fields(post_id = %post.id))]
async fn apply_post_edited(state: &App, post: &Post) -> Result<(), Error> {
    let Some(bridge) = state.bridge() else {
        return Ok(());
    };
    let ctx = bridge.context().await?;
    if post.user_id == ctx.bot_user_id || post.is_system || post.delete_at > 0 || post.from_bot {
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
#[tracing::instrument(skip_all, fields(post_id = %post.id))]
async fn apply_post_deleted(state: &App, post: &Post) -> Result<(), Error> {
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
async fn operator_typing(state: &App, channel_id: &str, user_id: &str) -> Result<(), Error> {
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
/// request post is then rewritten as after a click. Also used by the outbox for reactions
/// put before parley recorded the request post.
#[tracing::instrument(skip_all, fields(post_id = %reaction.post_id))]
pub async fn apply_reaction(state: &App, reaction: &Reaction) -> Result<(), Error> {
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
    if let AcceptOutcome::Accepted { chat, .. } = chats::accept(state, &chat.id, &operator).await? {
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

/// Catches up every active chat with posts made while parley was not listening, and every
/// pending request with the reactions put meanwhile. Returns the posts applied.
#[tracing::instrument(skip_all)]
async fn catch_up(state: &App) -> Result<usize, Error> {
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
        let missed = match bridge.missed_posts(channel_id, since).await {
            Ok(events) => events,
            // Mattermost is unwell: the next connection catches up again.
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                // This chat's channel is gone (the server answers 403 for a channel deleted
                // for good): the other chats still count.
                tracing::warn!(chat_id = %chat.id, channel_id, error = %e, "could not catch up a chat's channel");
                continue;
            }
        };
        for event in missed {
            // Each post is listed once: as posted, or deleted (an edit also comes as edited).
            if matches!(event, BridgeEvent::Posted(_) | BridgeEvent::Deleted(_)) {
                applied += 1;
            }
            apply(state, event).await?;
        }
    }
    // Reactions are not posts: look at the request posts of chats still waiting.
    for chat in state.store.list_pending_chats_with_request_post().await? {
        let Some(post_id) = &chat.request_post_id else {
            continue;
        };
        let mut reactions = match bridge.reactions(post_id).await {
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
        for reaction in reactions {
            apply(state, BridgeEvent::Reaction(reaction)).await?;
        }
    }
    Ok(applied)
}
