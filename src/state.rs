//! The state every request handler and background job shares.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::{
    backoffice::BackOffice,
    cluster::{Cluster, Note},
    config::Settings,
    events::Hub,
    http::rate_limit::RateLimits,
    mattermost::Bridge,
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
    /// `None` when Mattermost is not configured: parley runs offline.
    pub bridge: Option<Arc<Bridge>>,
    pub signer: ActionSigner,
    /// Where attached files are kept.
    pub blobs: Blobs,
    pub rate_limits: Arc<RateLimits>,
    /// Wakes the outbox worker when a task is added.
    pub outbox_wakeup: Arc<Notify>,
    /// The back office's sign-in limits.
    pub backoffice: Arc<BackOffice>,
    /// This process's Prometheus metrics (`/metrics`).
    pub metrics: Metrics,
    /// With PostgreSQL: this instance among others (events, leadership); `None` on SQLite.
    pub cluster: Option<Cluster>,
}

impl AppState {
    /// Whether Mattermost is connected, the precondition for offering a live chat; each
    /// department's hours and operators' presence decide the rest (`departments::status`).
    pub fn online(&self) -> bool {
        self.bridge.as_ref().is_some_and(|b| b.is_online())
    }

    /// Whether a new chat can be taken: Mattermost is configured and was reached. A chat taken
    /// during a short outage waits in the outbox.
    pub fn accepting_chats(&self) -> bool {
        self.bridge.as_ref().is_some_and(|b| b.is_resolved())
    }

    /// Tells the outbox worker there is work (the leader's, with several instances).
    pub fn wake_outbox(&self) {
        self.outbox_wakeup.notify_one();
        if let Some(cluster) = self.cluster.as_ref().filter(|c| !c.is_leader()) {
            cluster.send(Note::Wake);
        }
    }
}
