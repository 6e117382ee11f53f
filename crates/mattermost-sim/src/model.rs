//! The stored entities (users, teams, channels, posts, files) and their wire JSON shapes.

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Alphabet of Mattermost's `NewId` (base32 with an unambiguous alphabet): ids are
/// 26 lowercase alphanumeric characters.
const ID_ALPHABET: &[u8] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

pub fn new_id() -> String {
    let mut rng = rand::rng();
    (0..26)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

/// Unix time in milliseconds, Mattermost's timestamp unit everywhere.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub nickname: String,
    pub email: String,
    pub is_bot: bool,
    pub bot_display_name: String,
    pub system_admin: bool,
    pub create_at: i64,
    pub update_at: i64,
}

impl User {
    pub fn roles(&self) -> String {
        if self.system_admin {
            "system_user system_admin".to_owned()
        } else {
            "system_user".to_owned()
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "create_at": self.create_at,
            "update_at": self.update_at,
            "delete_at": 0,
            "username": self.username,
            "auth_data": "",
            "auth_service": "",
            "email": self.email,
            "nickname": self.nickname,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "position": "",
            "roles": self.roles(),
            "props": {},
            "notify_props": {
                "channel": "true", "comments": "never", "desktop": "mention",
                "desktop_sound": "true", "email": "true", "first_name": "false",
                "mention_keys": "", "push": "mention", "push_status": "away"
            },
            "last_password_update": self.create_at,
            "locale": "en",
            "timezone": {
                "automaticTimezone": "", "manualTimezone": "", "useAutomaticTimezone": "true"
            },
            "is_bot": self.is_bot,
            "disable_welcome_email": false,
        });
        if self.is_bot {
            v["bot_description"] = json!("");
            v["first_name"] = json!(self.bot_display_name);
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub create_at: i64,
}

impl Team {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "create_at": self.create_at,
            "update_at": self.create_at,
            "delete_at": 0,
            "display_name": self.display_name,
            "name": self.name,
            "description": "",
            "email": "",
            "type": "O",
            "company_name": "",
            "allowed_domains": "",
            "invite_id": "",
            "allow_open_invite": false,
            "scheme_id": null,
            "group_constrained": null,
            "policy_id": null,
            "cloud_limits_archived": false,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: String,
    pub team_id: String,
    /// "O" (public) or "P" (private).
    pub channel_type: String,
    pub name: String,
    pub display_name: String,
    pub header: String,
    pub purpose: String,
    pub creator_id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
    pub last_post_at: i64,
    pub total_msg_count: i64,
}

impl Channel {
    pub fn is_private(&self) -> bool {
        self.channel_type == "P"
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "create_at": self.create_at,
            "update_at": self.update_at,
            "delete_at": self.delete_at,
            "team_id": self.team_id,
            "type": self.channel_type,
            "display_name": self.display_name,
            "name": self.name,
            "header": self.header,
            "purpose": self.purpose,
            "last_post_at": self.last_post_at,
            "total_msg_count": self.total_msg_count,
            "extra_update_at": 0,
            "creator_id": self.creator_id,
            "scheme_id": null,
            "props": null,
            "group_constrained": null,
            "shared": null,
            "total_msg_count_root": self.total_msg_count,
            "policy_id": null,
            "last_root_post_at": self.last_post_at,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ChannelMember {
    pub user_id: String,
    pub scheme_admin: bool,
    pub last_update_at: i64,
}

impl ChannelMember {
    pub fn to_json(&self, channel_id: &str) -> Value {
        json!({
            "channel_id": channel_id,
            "user_id": self.user_id,
            "roles": if self.scheme_admin { "channel_user channel_admin" } else { "channel_user" },
            "last_viewed_at": 0,
            "msg_count": 0,
            "mention_count": 0,
            "mention_count_root": 0,
            "urgent_mention_count": 0,
            "msg_count_root": 0,
            "notify_props": {
                "desktop": "default", "email": "default", "ignore_channel_mentions": "default",
                "mark_unread": "all", "push": "default"
            },
            "last_update_at": self.last_update_at,
            "scheme_guest": false,
            "scheme_user": true,
            "scheme_admin": self.scheme_admin,
            "explicit_roles": "",
        })
    }
}

/// A stored post. Serialized with serde so that the stored and the wire shape match;
/// `metadata` is filled in at render time from the attached files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Post {
    pub id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub edit_at: i64,
    pub delete_at: i64,
    pub is_pinned: bool,
    pub user_id: String,
    pub channel_id: String,
    pub root_id: String,
    pub original_id: String,
    pub message: String,
    #[serde(rename = "type")]
    pub post_type: String,
    pub props: Map<String, Value>,
    pub hashtags: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_ids: Vec<String>,
    pub pending_post_id: String,
    pub reply_count: i64,
    pub last_reply_at: i64,
    pub participants: Option<Value>,
    /// Set once someone reacted (`omitempty` on the real server).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_reactions: bool,
}

impl Post {
    pub fn new(user_id: &str, channel_id: &str, message: &str, post_type: &str) -> Self {
        let now = now_ms();
        Post {
            id: new_id(),
            create_at: now,
            update_at: now,
            edit_at: 0,
            delete_at: 0,
            is_pinned: false,
            user_id: user_id.to_owned(),
            channel_id: channel_id.to_owned(),
            root_id: String::new(),
            original_id: String::new(),
            message: message.to_owned(),
            post_type: post_type.to_owned(),
            props: Map::new(),
            hashtags: String::new(),
            file_ids: Vec::new(),
            pending_post_id: String::new(),
            reply_count: 0,
            last_reply_at: 0,
            participants: None,
            has_reactions: false,
        }
    }

    /// The action with `action_id` inside `props.attachments[].actions[]`, if any.
    pub fn find_action(&self, action_id: &str) -> Option<&Value> {
        self.props
            .get("attachments")?
            .as_array()?
            .iter()
            .filter_map(|a| a.get("actions")?.as_array())
            .flatten()
            .find(|act| act.get("id").and_then(Value::as_str) == Some(action_id))
    }
}

/// Removes `integration` (url + context) from every attachment action, as the real
/// server's `StripActionIntegrations` does before a post reaches any client.
pub fn strip_integrations(post: &mut Value) {
    let Some(attachments) = post
        .get_mut("props")
        .and_then(|p| p.get_mut("attachments"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for attachment in attachments {
        if let Some(actions) = attachment.get_mut("actions").and_then(Value::as_array_mut) {
            for action in actions {
                if let Some(obj) = action.as_object_mut() {
                    obj.remove("integration");
                }
            }
        }
    }
}

/// Gives every attachment action without an `id` a fresh one (the real server's
/// `GenerateActionIds`), so clicks can address it.
pub fn generate_action_ids(props: &mut Map<String, Value>) {
    let Some(attachments) = props.get_mut("attachments").and_then(Value::as_array_mut) else {
        return;
    };
    for attachment in attachments {
        if let Some(actions) = attachment.get_mut("actions").and_then(Value::as_array_mut) {
            for action in actions {
                if let Some(obj) = action.as_object_mut() {
                    let missing = obj
                        .get("id")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty);
                    if missing {
                        obj.insert("id".into(), Value::String(new_id()));
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileInfo {
    pub id: String,
    pub user_id: String,
    pub post_id: String,
    pub channel_id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
    pub name: String,
    pub extension: String,
    pub size: u64,
    pub mime_type: String,
    pub dimensions: Option<(u32, u32)>,
}

impl FileInfo {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "user_id": self.user_id,
            "post_id": self.post_id,
            "channel_id": self.channel_id,
            "create_at": self.create_at,
            "update_at": self.update_at,
            "delete_at": self.delete_at,
            "name": self.name,
            "extension": self.extension,
            "size": self.size,
            "mime_type": self.mime_type,
            "has_preview_image": self.dimensions.is_some() && self.mime_type != "image/svg+xml",
            "mini_preview": null,
            "remote_id": "",
            "archived": false,
        });
        if let Some((w, h)) = self.dimensions {
            v["width"] = json!(w);
            v["height"] = json!(h);
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct Status {
    pub status: String,
    pub manual: bool,
    pub last_activity_at: i64,
}

/// An emoji reaction on a post (`model.Reaction`).
#[derive(Debug, Clone, Serialize)]
pub struct Reaction {
    pub user_id: String,
    pub post_id: String,
    pub emoji_name: String,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
    pub remote_id: String,
    pub channel_id: String,
}
