//! What a visitor sees of a chat (the JSON views shared by the API and the live socket), and
//! the in-process hub that pushes those views to every open socket of a chat.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::{
    domain::{ChatStatus, Sender},
    storage::{chats::ChatRow, messages::MessageRow, rfc3339},
};

/// A chat as the visitor API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChatView {
    pub id: String,
    pub status: ChatStatus,
    pub operator: Option<OperatorView>,
    pub created_at: String,
    pub closed_at: Option<String>,
}

/// The operator as the visitor sees them.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorView {
    pub name: String,
}

impl From<&ChatRow> for ChatView {
    fn from(c: &ChatRow) -> Self {
        Self {
            id: c.id.clone(),
            status: c.status(),
            operator: c.operator_name.clone().map(|name| OperatorView { name }),
            created_at: rfc3339(c.created_at),
            closed_at: c.closed_at.map(rfc3339),
        }
    }
}

/// A message as the visitor API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub sender: Sender,
    pub author: Option<String>,
    pub text: String,
    /// Sanitised HTML for operator messages (rendered Markdown), escaped text otherwise.
    pub html: Option<String>,
    /// For system messages: what happened, for translation (`accepted`, `closed_by_visitor`,
    /// `closed_by_operator`).
    pub event: Option<String>,
    pub created_at: String,
}

impl From<&MessageRow> for MessageView {
    fn from(m: &MessageRow) -> Self {
        Self {
            id: m.id,
            sender: m.sender(),
            author: m.author.clone(),
            text: m.body.clone(),
            html: m.html.clone(),
            event: m.event.clone(),
            created_at: rfc3339(m.created_at),
        }
    }
}

/// An event pushed to a chat's live sockets.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Message { message: MessageView },
    Chat { chat: ChatView },
}

/// Fan-out of live events per chat. Senders exist only while someone listens.
#[derive(Clone, Default, Debug)]
pub struct Hub {
    chats: Arc<Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>>,
}

/// How many events a slow socket may fall behind before it is told to catch up by id.
const BUFFER: usize = 256;

impl Hub {
    /// Listens to a chat's events.
    pub fn subscribe(&self, chat_id: &str) -> broadcast::Receiver<LiveEvent> {
        let mut chats = self.chats.lock().expect("hub lock");
        chats
            .entry(chat_id.to_owned())
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe()
    }

    /// Sends an event to every listener of the chat (none is fine).
    pub fn publish(&self, chat_id: &str, event: LiveEvent) {
        let mut chats = self.chats.lock().expect("hub lock");
        if let Some(sender) = chats.get(chat_id)
            && sender.send(event).is_err()
        {
            // Nobody listens any more: forget the channel.
            chats.remove(chat_id);
        }
    }

    /// Publishes a stored message.
    pub fn message(&self, m: &MessageRow) {
        self.publish(&m.chat_id, LiveEvent::Message { message: m.into() });
    }

    /// Publishes a chat's new state.
    pub fn chat(&self, c: &ChatRow) {
        self.publish(&c.id, LiveEvent::Chat { chat: c.into() });
    }

    /// Number of chats with listeners (for metrics and tests).
    pub fn listened_chats(&self) -> usize {
        self.chats.lock().expect("hub lock").len()
    }
}
