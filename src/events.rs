//! What a visitor sees of a chat (the JSON views shared by the API and the live socket), and
//! the in-process hub that pushes those views to every open socket of a chat.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::{
    cluster::Note,
    domain::{ChatStatus, Sender, files::is_inline_image},
    security::FileLinks,
    storage::{chats::ChatRow, files::FileRow, messages::MessageRow, rfc3339},
};

/// A chat as the visitor API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChatView {
    pub id: String,
    pub status: ChatStatus,
    pub operator: Option<OperatorView>,
    pub created_at: String,
    pub closed_at: Option<String>,
    /// What the visitor gave when starting the chat (to prefill a "leave a message" form).
    pub visitor: VisitorView,
}

/// The visitor's own details, as they gave them.
#[derive(Debug, Clone, Serialize)]
pub struct VisitorView {
    pub name: Option<String>,
    pub email: Option<String>,
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
            visitor: VisitorView {
                name: c.visitor_name.clone(),
                email: c.visitor_email.clone(),
            },
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
    /// `closed_by_operator`, `transferred`, `visitor_left`, `still_waiting`).
    pub event: Option<String>,
    pub created_at: String,
    /// When the operator last edited the message in Mattermost, if ever.
    pub edited_at: Option<String>,
    pub files: Vec<FileView>,
}

impl MessageView {
    /// The view of a stored message, with fresh download links for its files.
    pub fn new(m: &MessageRow, links: &FileLinks) -> Self {
        let now_s = crate::storage::now_ms() / 1000;
        Self {
            id: m.id,
            sender: m.sender(),
            author: m.author.clone(),
            text: m.body.clone(),
            html: m.html.clone(),
            event: m.event.clone(),
            created_at: rfc3339(m.created_at),
            edited_at: m.edited_at.map(rfc3339),
            files: m
                .files
                .iter()
                .map(|f| FileView::new(f, links, now_s))
                .collect(),
        }
    }
}

/// An attached file as the visitor API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    pub id: String,
    /// The sender's name for it (sanitised; for display only).
    pub name: String,
    pub size: i64,
    pub content_type: String,
    /// Whether it may be shown inline (PNG, JPEG, GIF, WebP).
    pub image: bool,
    /// A signed download link, valid for about an hour.
    pub url: String,
}

impl FileView {
    fn new(f: &FileRow, links: &FileLinks, now_s: i64) -> Self {
        Self {
            id: f.id.clone(),
            name: f.name.clone(),
            size: f.size,
            content_type: f.content_type.clone(),
            image: is_inline_image(&f.content_type),
            url: links.url(&f.id, now_s),
        }
    }
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
/// they go to every instance as a `cluster::Note`, and each delivers them to its own sockets.
#[derive(Clone, Debug)]
pub struct Hub {
    chats: Arc<Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>>,
    links: FileLinks,
    relay: Option<mpsc::UnboundedSender<Note>>,
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
    pub fn relayed(links: FileLinks, relay: mpsc::UnboundedSender<Note>) -> Self {
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
            if let Some(note) = Note::of_event(chat_id, &event) {
                let _ = relay.send(note);
            }
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
