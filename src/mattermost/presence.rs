//! What parley knows about the presence of each requests channel's operators (its non-bot
//! members), as last polled by `jobs::presence`. Mattermost does not send other users'
//! `status_change` events to a bot (mattermost-api.md §6), so statuses are polled.

use std::{collections::HashMap, sync::RwLock};

use crate::domain::{department::Route, presence::RouteStatus};

/// Shared presence table, replaced whole by each poll.
#[derive(Debug, Default)]
pub struct Presence {
    routes: RwLock<HashMap<Route, RouteStatus>>,
}

impl Presence {
    /// The status of a route; `None` until it was polled.
    pub fn status(&self, route: &Route) -> Option<RouteStatus> {
        self.routes
            .read()
            .expect("presence lock")
            .get(route)
            .cloned()
    }

    /// Records one route's status. Returns the previous one.
    pub fn set(&self, route: Route, status: RouteStatus) -> Option<RouteStatus> {
        self.routes
            .write()
            .expect("presence lock")
            .insert(route, status)
    }

    /// Every route's status (the leader shares them with the other instances).
    pub fn snapshot(&self) -> Vec<(Route, RouteStatus)> {
        let routes = self.routes.read().expect("presence lock");
        routes.iter().map(|(r, s)| (r.clone(), s.clone())).collect()
    }

    /// Replaces the whole table (with the leader's, on the other instances).
    pub fn replace(&self, statuses: Vec<(Route, RouteStatus)>) {
        *self.routes.write().expect("presence lock") = statuses.into_iter().collect();
    }

    /// Forgets routes no department uses any more.
    pub fn retain(&self, keep: impl Fn(&Route) -> bool) {
        self.routes
            .write()
            .expect("presence lock")
            .retain(|r, _| keep(r));
    }
}
