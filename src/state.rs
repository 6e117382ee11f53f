//! The state every request handler and background job shares.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::{
    backoffice::BackOffice,
    cluster::{Cluster, Note},
    config::Settings,
    events::Hub,
    http::{live_sockets::LiveSockets, rate_limit::RateLimits},
    jobs::outbox::HandOffs,
    mattermost::{Bridge, BridgeSlot},
    metrics::Metrics,
    security::ActionSigner,
    storage::{Store, blobs::Blobs},
};

/// Cheap to clone; everything inside is shared.
#[derive(Clone, Debug)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub hub: Hub,
    /// The Mattermost bridge in force (none: parley runs offline), replaced when the
    /// connection is changed in the back office. Read it with [`AppState::bridge`].
    pub connection: BridgeSlot,
    pub signer: ActionSigner,
    /// Where attached files are kept.
    pub blobs: Blobs,
    pub rate_limits: Arc<RateLimits>,
    /// The caps on visitors' live sockets.
    pub live_sockets: Arc<LiveSockets>,
    /// Wakes the outbox worker when a task is added.
    pub outbox_wakeup: Arc<Notify>,
    /// Gives a visitor message's delivery task straight to the outbox worker, when it runs
    /// in this process.
    pub outbox_handoffs: HandOffs,
    /// The back office's sign-in limits.
    pub backoffice: Arc<BackOffice>,
    /// This process's Prometheus metrics (`/metrics`).
    pub metrics: Metrics,
    /// With PostgreSQL: this instance among others (events, leadership); `None` on SQLite.
    pub cluster: Option<Cluster>,
}

impl AppState {
    /// The Mattermost bridge in force now; `None` when Mattermost is not configured. Take it
    /// once per unit of work (a request, a pass of a job): the connection may be replaced
    /// meanwhile, and a unit of work should not mix two.
    pub fn bridge(&self) -> Option<Arc<Bridge>> {
        self.connection.get()
    }

    /// Whether Mattermost is connected, the precondition for offering a live chat; each
    /// department's hours and operators' presence decide the rest (`departments::status`).
    pub fn online(&self) -> bool {
        self.bridge().is_some_and(|b| b.is_online())
    }

    /// Whether a new chat can be taken: Mattermost is configured and was reached. A chat taken
    /// during a short outage waits in the outbox.
    pub fn accepting_chats(&self) -> bool {
        self.bridge().is_some_and(|b| b.is_resolved())
    }

    /// Tells the outbox worker there is work (the leader's, with several instances).
    pub fn wake_outbox(&self) {
        self.outbox_wakeup.notify_one();
        if let Some(cluster) = self.cluster.as_ref().filter(|c| !c.is_leader()) {
            cluster.send(Note::Wake);
        }
    }
}
