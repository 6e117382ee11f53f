//! The in-process hub that pushes a chat's events to every open socket of that chat, on this
//! instance. With several instances, a [`Relay`] takes published events to all of them; the hub
//! knows nothing of how.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::Serialize;
use tokio::sync::broadcast;

use super::views::{ChatView, MessageView};
use crate::{
    security::FileLinks,
    storage::{chats::ChatRow, messages::MessageRow},
};

/// Takes a published event to every instance, each of which delivers it to its own sockets
/// ([`Hub::deliver`]). The cluster implements it.
pub trait Relay: Send + Sync + std::fmt::Debug {
    fn relay(&self, chat_id: &str, event: &LiveEvent);
}

/// An event pushed to a chat's live sockets.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Message {
        message: MessageView,
    },
    Chat {
        chat: ChatView,
    },
    /// An operator edited a message: its full new view.
    MessageUpdated {
        message: MessageView,
    },
    /// An operator deleted a message: the visitor no longer sees it.
    MessageDeleted {
        id: i64,
    },
    /// An operator is typing in the chat's channel (not stored, never replayed).
    Typing {
        name: String,
    },
    /// Messages were stored; the socket reads the chat's messages after the last id it sent
    /// (instances sharing PostgreSQL, see `cluster`). Never sent to a client.
    #[serde(skip)]
    NewMessages,
}

/// Fan-out of live events per chat. Senders exist only while someone listens.
///
/// With several instances (PostgreSQL), published events are not delivered here directly:
/// they go to every instance through the [`Relay`], and each delivers them to its own sockets.
#[derive(Clone, Debug)]
pub struct Hub {
    chats: Arc<Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>>,
    links: FileLinks,
    relay: Option<Arc<dyn Relay>>,
}

/// How many events a slow socket may fall behind before it is told to catch up by id. Every
/// chat with a listener holds this many slots of a `LiveEvent` (about 220 bytes each), so 256
/// cost some 56 kB per connected chat (see docs/benchmarks.md); 32 is plenty for a human
/// conversation, and a socket that does fall behind catches up by id.
const BUFFER: usize = 32;

impl Hub {
    pub fn new(links: FileLinks) -> Self {
        Self {
            chats: Arc::default(),
            links,
            relay: None,
        }
    }

    /// A hub that publishes through the other instances (see `cluster`).
    pub fn relayed(links: FileLinks, relay: Arc<dyn Relay>) -> Self {
        Self {
            relay: Some(relay),
            ..Self::new(links)
        }
    }

    /// Whether events go through the other instances: sockets then read new messages from
    /// the database (`LiveEvent::NewMessages`).
    pub fn is_relayed(&self) -> bool {
        self.relay.is_some()
    }

    /// The signer of file links.
    pub fn links(&self) -> &FileLinks {
        &self.links
    }

    /// The view of a message as its chat's visitor sees it.
    pub fn view(&self, m: &MessageRow) -> MessageView {
        MessageView::new(m, &self.links)
    }

    /// Listens to a chat's events.
    pub fn subscribe(&self, chat_id: &str) -> broadcast::Receiver<LiveEvent> {
        let mut chats = self.chats.lock().expect("hub lock");
        chats
            .entry(chat_id.to_owned())
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe()
    }

    /// Sends an event to every listener of the chat (none is fine), on every instance.
    pub fn publish(&self, chat_id: &str, event: LiveEvent) {
        if let Some(relay) = &self.relay {
            relay.relay(chat_id, &event);
            return;
        }
        self.deliver(chat_id, event);
    }

    /// Sends an event to this instance's listeners of the chat.
    pub fn deliver(&self, chat_id: &str, event: LiveEvent) {
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
        let message = self.view(m);
        self.publish(&m.chat_id, LiveEvent::Message { message });
    }

    /// Publishes a message's new text after an operator edited it.
    pub fn message_updated(&self, m: &MessageRow) {
        let message = self.view(m);
        self.publish(&m.chat_id, LiveEvent::MessageUpdated { message });
    }

    /// Publishes a chat's new state.
    pub fn chat(&self, c: &ChatRow) {
        self.publish(&c.id, LiveEvent::Chat { chat: c.into() });
    }

    /// Whether a socket of this instance listens to the chat.
    pub fn is_listened(&self, chat_id: &str) -> bool {
        self.chats
            .lock()
            .expect("hub lock")
            .get(chat_id)
            .is_some_and(|s| s.receiver_count() > 0)
    }

    /// Number of chats with listeners (for metrics and tests).
    pub fn listened_chats(&self) -> usize {
        self.chats.lock().expect("hub lock").len()
    }

    /// The chats with at least one open live socket on this instance (their visitors are
    /// here). Forgets the chats nobody listens to any more on the way.
    pub fn connected_chats(&self) -> Vec<String> {
        let mut chats = self.chats.lock().expect("hub lock");
        chats.retain(|_, sender| sender.receiver_count() > 0);
        chats.keys().cloned().collect()
    }
}
