//! The application core: what parley does, apart from how it is reached. The use cases take
//! [`App`], a set of narrow handles (storage, the bridge slot, the live hub, the outbox, the
//! cluster); the HTTP layer, the jobs and the event stream call them. Nothing here knows of
//! axum or of the jobs' loops (`docs/decisions.md`, "The application core"; checked by
//! `tests/api/architecture.rs`).

pub mod accounts;
pub mod attachments;
pub mod chats;
pub mod commands;
pub mod connection;
pub mod departments;
pub mod doctor;
pub mod error;
pub mod inbound;
pub mod outbox;
pub mod settings;
pub mod upload_room;

use std::sync::Arc;

pub use error::Error;
use outbox::Outbox;

use crate::{
    cluster::{Cluster, Note},
    config::Settings,
    live::Hub,
    mattermost::{Bridge, BridgeSlot},
    metrics::Metrics,
    security::ActionSigner,
    storage::{Store, blobs::Blobs, chats::ChatRow, messages::MessageRow},
};

/// The application's handles. Cheap to clone; everything inside is shared.
#[derive(Clone, Debug)]
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub hub: Hub,
    /// The Mattermost bridge in force (none: parley runs offline), replaced when the
    /// connection is changed in the back office. Read it with [`App::bridge`].
    pub connection: BridgeSlot,
    pub signer: ActionSigner,
    /// Where attached files are kept.
    pub blobs: Blobs,
    /// The outbox's handle: wakes its worker and hands it a visitor message's task straight
    /// from the request, when the worker runs in this process.
    pub outbox: Outbox,
    /// This process's Prometheus metrics (`/metrics`).
    pub metrics: Metrics,
    /// With PostgreSQL: this instance among others (events, leadership); `None` on SQLite.
    pub cluster: Option<Cluster>,
}

impl App {
    /// The Mattermost bridge in force now; `None` when Mattermost is not configured. Take it
    /// once per unit of work (a request, a pass of a job): the connection may be replaced
    /// meanwhile, and a unit of work should not mix two.
    pub fn bridge(&self) -> Option<Arc<Bridge>> {
        self.connection.get()
    }

    /// Whether Mattermost is connected, the precondition for offering a live chat; each
    /// department's hours and operators' presence decide the rest (`app::departments::status`).
    pub fn online(&self) -> bool {
        self.bridge().is_some_and(|b| b.is_online())
    }

    /// Whether a new chat can be taken: Mattermost is configured and was reached. A chat taken
    /// during a short outage waits in the outbox.
    pub fn accepting_chats(&self) -> bool {
        self.bridge().is_some_and(|b| b.is_resolved())
    }

    /// After a chat's new state was committed with its notice (and the outbox tasks stored with
    /// them): shows both on the visitor's sockets, then wakes the outbox.
    pub fn chat_changed(&self, chat: &ChatRow, notice: &MessageRow) {
        self.hub.message(notice);
        self.hub.chat(chat);
        self.wake_outbox();
    }

    /// Tells the outbox worker there is work (the leader's, with several instances).
    pub fn wake_outbox(&self) {
        self.outbox.wake_here();
        if let Some(cluster) = self.cluster.as_ref().filter(|c| !c.is_leader()) {
            cluster.send(Note::Wake);
        }
    }
}
