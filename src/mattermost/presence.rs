//! What parley knows about the presence of each requests channel's operators (its non-bot
//! members), as last polled by `jobs::presence`. Mattermost does not send other users'
//! `status_change` events to a bot (mattermost-api.md §6), so statuses are polled.

use std::{collections::HashMap, sync::RwLock};

use crate::departments::Route;

/// Operators of one requests channel by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Non-bot, active members of the channel.
    pub operators: usize,
    pub online: usize,
    pub away: usize,
    pub dnd: usize,
}

/// The last poll's verdict for one route (team and requests channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteStatus {
    Known(Counts),
    /// Mattermost answers no statuses at all (`ServiceSettings.EnableUserStatuses` is off):
    /// presence cannot decide.
    StatusesUnavailable,
    /// The team or channel cannot be used (not found, the bot is not a member): nobody can
    /// see requests there.
    Problem(String),
}

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

    /// Forgets routes no department uses any more.
    pub fn retain(&self, keep: impl Fn(&Route) -> bool) {
        self.routes
            .write()
            .expect("presence lock")
            .retain(|r, _| keep(r));
    }
}
