//! Several instances on one PostgreSQL database (docs/decisions.md, "Several instances").
//!
//! - **Events** go through `LISTEN/NOTIFY` on the channel [`CHANNEL`]: an instance never
//!   delivers a live event to its own sockets directly; it sends a small [`Note`] (ids, not
//!   contents) that every instance, itself included, receives and turns into the event for
//!   the sockets it holds, reading what it needs from the database. New messages are not even
//!   read by the listener: the sockets are told to read their chat's messages after the last
//!   id they sent, so an instance that missed notes (its listener reconnected) catches up.
//! - **Leadership**: one instance holds the session-level advisory lock [`LEADER_LOCK`] on a
//!   connection of its own and runs the Mattermost event stream and the scheduled jobs
//!   (outbox, cleanup, presence, lifecycle). When that connection goes (the process died),
//!   PostgreSQL releases the lock and another instance takes it within [`TRY_EVERY`].
//! - **Shared state**: the leader writes what only it knows (the event stream is up, the
//!   operators' presence) to `server_values` every [`PUBLISH_EVERY`]; the others copy it into
//!   their own `Bridge`, so `/status`, `/readyz` and new chats behave the same everywhere.
//!
//! On SQLite (one instance) none of this runs: the hub delivers in-process.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use crate::live::{LiveEvent, Relay};

/// The `LISTEN/NOTIFY` channel of every instance.
pub const CHANNEL: &str = "parley_events";
/// The advisory lock the leader holds (any fixed number; "parley" in ASCII).
pub const LEADER_LOCK: i64 = 0x7061_726c_6579;
/// How often a follower tries to become the leader (and copies the leader's state).
pub const TRY_EVERY: Duration = Duration::from_secs(1);
/// How often the leader checks its lock connection and publishes its state.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// Operator names in typing notes are cut to this many characters (NOTIFY payloads are
/// limited to 8000 bytes).
const MAX_NAME: usize = 200;

/// What instances tell each other. Small on purpose: contents are read from the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Note {
    /// Messages were stored in a chat.
    Messages { chat: String },
    /// A chat's state changed.
    Chat { chat: String },
    /// An operator edited a message.
    Updated { chat: String, id: i64 },
    /// An operator deleted a message.
    Deleted { chat: String, id: i64 },
    /// An operator is typing in a chat.
    Typing { chat: String, name: String },
    /// The outbox has work (for the leader, which runs the worker).
    Wake,
    /// The visitor of a chat channel is typing (for the leader, which holds the event stream).
    VisitorTyping { channel: String },
    /// The Mattermost connection was saved in the back office: read it from the database and
    /// put it in force (every instance; the leader's event stream reconnects).
    Connection,
}

impl Note {
    /// The note that stands for a live event of a chat.
    pub fn of_event(chat_id: &str, event: &LiveEvent) -> Option<Self> {
        let chat = chat_id.to_owned();
        Some(match event {
            LiveEvent::Message { .. } | LiveEvent::NewMessages => Note::Messages { chat },
            LiveEvent::Chat { .. } => Note::Chat { chat },
            LiveEvent::MessageUpdated { message } => Note::Updated {
                chat,
                id: message.id,
            },
            LiveEvent::MessageDeleted { id } => Note::Deleted { chat, id: *id },
            LiveEvent::Typing { name } => Note::Typing {
                chat,
                name: name.chars().take(MAX_NAME).collect(),
            },
        })
    }
}

/// This instance's part in a group of instances. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cluster {
    notes: mpsc::UnboundedSender<Note>,
    leader: Arc<AtomicBool>,
}

/// The receiving ends a [`Cluster`] needs to run (see `jobs::cluster::run`).
#[derive(Debug)]
pub struct Parts {
    pub url: String,
    pub notes: mpsc::UnboundedReceiver<Note>,
    pub listener: PgListener,
}

impl Cluster {
    /// Connects the listener (so no note is missed from the first request on).
    pub async fn connect(url: &str) -> Result<(Self, Parts), sqlx::Error> {
        let listener = listen(url).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok((
            Self {
                notes: tx,
                leader: Arc::default(),
            },
            Parts {
                url: url.to_owned(),
                notes: rx,
                listener,
            },
        ))
    }

    /// Sends a note to every instance (this one included), in order.
    pub fn send(&self, note: Note) {
        // Fails only once the sender task ended (shutting down).
        let _ = self.notes.send(note);
    }

    /// Whether this instance is the leader now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Marks this instance as the leader or not (by the loop that holds the lock).
    pub fn set_leader(&self, leads: bool) {
        self.leader.store(leads, Ordering::Relaxed);
    }
}

/// Published live events go to every instance as notes.
impl Relay for Cluster {
    fn relay(&self, chat_id: &str, event: &LiveEvent) {
        if let Some(note) = Note::of_event(chat_id, event) {
            self.send(note);
        }
    }
}

/// A listener on [`CHANNEL`].
pub async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
