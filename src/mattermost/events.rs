//! What the bridge hands to the application: Mattermost's events, normalised into
//! [`BridgeEvent`] (no wire types), and the [`Inbound`] trait the application implements to
//! take them. The event stream (`stream.rs`) applies them one at a time, in the order the
//! server sent them; `translate.rs` makes them from what the server sends.

/// A post in a channel, as parley reads it (new, edited or deleted alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub id: String,
    pub channel_id: String,
    pub user_id: String,
    /// The text as written (not trimmed).
    pub message: String,
    /// The Mattermost ids of the files attached.
    pub file_ids: Vec<String>,
    /// A system post (someone joined, the header changed): the server gives those a type.
    pub is_system: bool,
    /// Made through a bot or an integration (the server's `from_bot` property).
    pub from_bot: bool,
    /// When it was created, last edited and deleted (ms since the epoch; 0: never or unknown).
    pub create_at: i64,
    pub edit_at: i64,
    pub delete_at: i64,
}

/// An emoji reaction put on a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub user_id: String,
    pub post_id: String,
    /// The emoji's name without colons (`white_check_mark`).
    pub emoji_name: String,
    /// When it was put (ms since the epoch; 0: unknown).
    pub create_at: i64,
}

/// One thing that happened in Mattermost that the application may act on. Every channel's
/// events come through, parley's own posts included: the application decides what concerns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// A post was made.
    Posted(Post),
    /// A post's text or properties changed (a pin changes only properties).
    Edited(Post),
    /// A post was deleted.
    Deleted(Post),
    /// Someone is typing in a channel (nothing is stored).
    Typing { channel_id: String, user_id: String },
    /// A reaction was added (removals are not passed on).
    Reaction(Reaction),
    /// The event stream is connected again (also the first time). It comes twice for a
    /// connection the server does not resume:
    /// - `catch_up: false` as soon as the socket is open: Mattermost answers again, so work
    ///   that waits for it may go now (whether the server resumes is not known yet);
    /// - `catch_up: true` when the server's `hello` shows a fresh session: events since the
    ///   last one seen may be lost, and what matters must be fetched over REST.
    Reconnected { catch_up: bool },
}

/// The application's side of the bridge: takes the events, one at a time and in order. What a
/// failure means is the stream's rule (see `stream.rs`): a post or reaction that could not be
/// applied makes it reconnect without resuming, so the catch-up fetches it again; a failed
/// typing or reconnection step is only logged.
pub trait Inbound: Send + Sync + 'static {
    /// Why an event could not be applied (logged by the stream).
    type Error: std::fmt::Display + Send;

    /// Applies one event.
    fn apply(&self, event: BridgeEvent) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
