//! What is known of the operators' presence in one requests channel.

use serde::{Deserialize, Serialize};

/// Operators of one requests channel by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Non-bot, active members of the channel.
    pub operators: usize,
    pub online: usize,
    pub away: usize,
    pub dnd: usize,
}

/// The last poll's verdict for one route (team and requests channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteStatus {
    Known(Counts),
    /// Mattermost answers no statuses at all (`ServiceSettings.EnableUserStatuses` is off):
    /// presence cannot decide.
    StatusesUnavailable,
    /// The team or channel cannot be used (not found, the bot is not a member): nobody can
    /// see requests there.
    Problem(String),
}
