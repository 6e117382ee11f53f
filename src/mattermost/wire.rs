//! Serde shapes of the Mattermost REST and WebSocket JSON parley reads and writes. Only the
//! fields parley uses; unknown fields are ignored so newer servers keep working. Those only the
//! adapter reads (error bodies, WebSocket envelopes, upload answers) are `pub(super)`; events
//! leave the adapter as `events` types, never as these.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Mattermost user.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub nickname: String,
    #[serde(default)]
    pub is_bot: bool,
    /// Non-zero for a deactivated account.
    #[serde(default)]
    pub delete_at: i64,
}

impl User {
    /// The name to show a visitor: full name, else nickname, else username.
    pub fn display_name(&self) -> String {
        let full = format!("{} {}", self.first_name.trim(), self.last_name.trim());
        let full = full.trim();
        if !full.is_empty() {
            full.to_owned()
        } else if !self.nickname.trim().is_empty() {
            self.nickname.trim().to_owned()
        } else {
            self.username.clone()
        }
    }
}

/// A team.
#[derive(Debug, Clone, Deserialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub display_name: String,
}

/// A channel.
#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub delete_at: i64,
    #[serde(default)]
    pub creator_id: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub display_name: String,
    /// `O` (public), `P` (private), `D`/`G` (direct and group messages).
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// A channel membership (`GET /channels/{id}/members`); only the member is needed.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelMember {
    pub user_id: String,
}

/// A user's status (`POST /users/status/ids`): `online`, `away`, `dnd`, `offline` or `ooo`.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub user_id: String,
    #[serde(default)]
    pub status: String,
}

/// Body of `POST /channels`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateChannel<'a> {
    pub team_id: &'a str,
    pub name: &'a str,
    pub display_name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub purpose: &'a str,
    pub header: &'a str,
}

/// A post as the server returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Post {
    pub id: String,
    pub channel_id: String,
    pub user_id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub create_at: i64,
    #[serde(default)]
    pub update_at: i64,
    /// When the message was last edited (0: never).
    #[serde(default)]
    pub edit_at: i64,
    #[serde(default)]
    pub delete_at: i64,
    #[serde(default)]
    pub props: Value,
    #[serde(default)]
    pub file_ids: Option<Vec<String>>,
    #[serde(default)]
    pub pending_post_id: String,
    /// Set on the soft-deleted copy an edit leaves of a post's old version: the edited post.
    #[serde(default)]
    pub original_id: String,
}

impl Post {
    /// Whether the post was made by a bot (the server sets `props.from_bot`).
    pub fn from_bot(&self) -> bool {
        self.props.get("from_bot").and_then(Value::as_str) == Some("true")
    }
}

/// Body of `POST /posts`.
#[derive(Debug, Clone, Serialize)]
pub struct NewPost<'a> {
    pub channel_id: &'a str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_post_id: Option<&'a str>,
    pub props: Value,
    /// Uploaded files to attach (at most 10).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_ids: Vec<String>,
}

/// Body of `PUT /posts/{id}/patch`.
#[derive(Debug, Clone, Serialize)]
pub struct PostPatch<'a> {
    pub message: &'a str,
    pub props: Value,
}

/// Answer of `GET /channels/{id}/posts`.
#[derive(Debug, Clone, Deserialize)]
pub struct PostList {
    #[serde(default)]
    pub order: Vec<String>,
    #[serde(default)]
    pub posts: HashMap<String, Post>,
}

/// Mattermost's error body (`AppError`); parley branches on `id`, never on the localised
/// message.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct AppError {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub message: String,
}

/// What Mattermost POSTs to the integration URL when a user clicks a button.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionCallback {
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub post_id: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub context: Value,
}

/// The answer parley gives to a button click.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<PostUpdate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_text: Option<String>,
}

/// `update` in an action response: replaces the message and (being present) all props.
#[derive(Debug, Clone, Serialize)]
pub struct PostUpdate {
    pub message: String,
    pub props: Value,
}

/// A WebSocket event envelope.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct WsEvent {
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(default)]
    pub broadcast: WsBroadcast,
}

/// Who an event was sent to; parley reads the channel (`typing` names it only here).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct WsBroadcast {
    #[serde(default)]
    pub channel_id: String,
}

/// A reaction (`data.reaction` of `reaction_added`, a JSON string).
#[derive(Debug, Clone, Deserialize)]
pub struct Reaction {
    pub user_id: String,
    pub post_id: String,
    pub emoji_name: String,
    #[serde(default)]
    pub create_at: i64,
}

/// A file's metadata (`FileInfo`).
#[derive(Debug, Clone, Deserialize)]
pub struct FileInfo {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub delete_at: i64,
}

/// Answer of `POST /files`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct UploadedFiles {
    #[serde(default)]
    pub file_infos: Vec<FileInfo>,
}
