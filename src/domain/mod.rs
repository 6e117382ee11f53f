//! Domain types and rules with no I/O: chat states, senders, and the parsing of untrusted
//! visitor input into values the rest of parley can trust.

pub mod department;
pub mod files;
pub mod hours;
pub mod input;
pub mod markdown;
#[cfg(test)]
mod markdown_tests;
pub mod presence;
pub mod template;

use serde::Serialize;

/// Where a chat is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatStatus {
    /// Waiting for an operator to accept.
    Pending,
    /// An operator accepted; messages are relayed.
    Active,
    /// Ended; no more messages.
    Closed,
}

impl ChatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Closed => "closed",
        }
    }

    /// Parses the stored form; unknown values are a storage bug, reported as `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "active" => Some(Self::Active),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sender {
    Visitor,
    Operator,
    System,
}

impl Sender {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visitor => "visitor",
            Self::Operator => "operator",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "visitor" => Some(Self::Visitor),
            "operator" => Some(Self::Operator),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

/// Who ended a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    Visitor,
    Operator,
    /// No widget was connected to the chat for `PARLEY_VISITOR_TIMEOUT_MINUTES`.
    VisitorLeft,
}

impl ClosedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visitor => "visitor",
            Self::Operator => "operator",
            Self::VisitorLeft => "visitor_left",
        }
    }
}

/// Machine-readable kinds of system messages, so the widget can translate them.
pub mod system_event {
    pub const ACCEPTED: &str = "accepted";
    pub const CLOSED_BY_VISITOR: &str = "closed_by_visitor";
    pub const CLOSED_BY_OPERATOR: &str = "closed_by_operator";
    /// Another operator took the chat over (`!transfer`); the author is the new operator.
    pub const TRANSFERRED: &str = "transferred";
    /// The chat ended because no widget was connected to it for the visitor timeout.
    pub const VISITOR_LEFT: &str = "visitor_left";
    /// Nobody accepted in time: the visitor is still in the queue and may leave a message
    /// instead.
    pub const STILL_WAITING: &str = "still_waiting";
}
