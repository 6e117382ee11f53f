//! The single in-memory store behind the sim, with the permission rules and the
//! write paths shared by REST handlers, seeding helpers and system messages.
//!
//! Lives in one `std::sync::Mutex`; nothing here is async so the lock is never held
//! across an `.await`.

use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::config::SimConfig;
use crate::model::{
    Channel, ChannelMember, FileInfo, Post, Reaction, Status, Team, User, new_id, now_ms,
    strip_integrations,
};
use crate::ws::{Audience, Broadcast, Hub, WsEvent};

/// Fault injection knobs read by the HTTP middleware.
#[derive(Debug, Default)]
pub struct Faults {
    pub fail_next: usize,
    pub fail_status: u16,
    pub rate_limit_next: usize,
    pub retry_after_secs: u64,
    pub down: bool,
    /// WebSocket upgrades are refused (REST still works).
    pub websockets_down: bool,
    pub delay: Duration,
    /// While true, answers to `POST /posts` wait (the post is stored and announced first, as
    /// on a slow real server, whose `posted` event goes out before the HTTP answer).
    pub hold_post_answers: Option<tokio::sync::watch::Sender<bool>>,
    /// While true, answers to `POST /posts` are lost after the post took effect: the client
    /// gets a proxy's `504` instead (checked when the answer would go out).
    pub lose_post_answers: bool,
    /// While true, creates with a `pending_post_id` wait before the post is saved (a slow
    /// database): the same id sent again meanwhile gets `500 …deduplicate_create_post.pending`.
    pub hold_post_saves: Option<tokio::sync::watch::Sender<bool>>,
    /// `(method, path with query)` -> how many of the next such calls get a proxy's bare 404
    /// (plain text, no Mattermost error id).
    pub bare_404: std::collections::HashMap<(String, String), usize>,
}

pub struct StoredFile {
    pub info: FileInfo,
    pub bytes: Bytes,
}

#[derive(Default)]
pub struct State {
    pub config: SimConfig,
    pub users: HashMap<String, User>,
    pub tokens: HashMap<String, String>,
    pub teams: HashMap<String, Team>,
    /// team id -> member user ids, in join order.
    pub team_members: HashMap<String, Vec<String>>,
    pub channels: HashMap<String, Channel>,
    /// Channel ids in creation order (for stable listings).
    pub channel_order: Vec<String>,
    pub channel_members: HashMap<String, Vec<ChannelMember>>,
    pub posts: HashMap<String, Post>,
    /// Post ids in creation order.
    pub post_order: Vec<String>,
    /// pending_post_id -> post id for the 30 s dedup window.
    pub pending_posts: PendingPosts,
    /// pending_post_ids whose create has started and not saved its post yet.
    pub saving_pending_posts: HashSet<String>,
    pub files: HashMap<String, StoredFile>,
    pub statuses: HashMap<String, Status>,
    /// (recipient user id, post JSON) of every ephemeral post delivered.
    pub ephemeral: Vec<(String, Value)>,
    pub integration_requests: Vec<Value>,
    pub request_log: Vec<(String, String, u16)>,
    /// Reactions in the order they were first saved; removed ones keep `delete_at`.
    pub reactions: Vec<Reaction>,
    /// Every accepted `user_typing` action: `{user_id, channel_id, parent_id, at}`.
    pub typing_log: Vec<Value>,
    pub faults: Faults,
    pub hub: Hub,
    /// Receivers of every new post (`MattermostSim::watch_posts`, for the benchmark).
    pub post_watchers: Vec<tokio::sync::mpsc::UnboundedSender<crate::PostCreated>>,
}

/// How long a pending_post_id maps to its post (`PendingPostIDsCacheTTL`).
const PENDING_POST_TTL: Duration = Duration::from_secs(30);
/// How many pending_post_ids the server remembers at most (`PendingPostIDsCacheSize`).
const PENDING_POST_CAPACITY: usize = 25_000;

/// The server's pending_post_id cache: entries live 30 s, and past 25,000 the oldest go first.
/// Expired entries are dropped from the oldest end as new ones come, so a post costs the same
/// however many came before it (a scan of the whole cache per post had made the simulator's
/// own ceiling the benchmark's limit).
#[derive(Debug, Default)]
pub struct PendingPosts {
    /// pending_post_id -> (post id, when, entry number).
    by_id: HashMap<String, (String, Instant, u64)>,
    /// (pending_post_id, when, entry number) in the order they were stored.
    oldest_first: VecDeque<(String, Instant, u64)>,
    stored: u64,
}

impl PendingPosts {
    fn get(&self, pending_post_id: &str) -> Option<&String> {
        self.by_id
            .get(pending_post_id)
            .filter(|(_, at, _)| at.elapsed() < PENDING_POST_TTL)
            .map(|(post_id, _, _)| post_id)
    }

    fn insert(&mut self, pending_post_id: String, post_id: String) {
        let now = Instant::now();
        self.stored += 1;
        self.by_id
            .insert(pending_post_id.clone(), (post_id, now, self.stored));
        self.oldest_first
            .push_back((pending_post_id, now, self.stored));
        while let Some((id, at, entry)) = self.oldest_first.front() {
            let expired = now.duration_since(*at) >= PENDING_POST_TTL;
            if !expired && self.by_id.len() <= PENDING_POST_CAPACITY {
                break;
            }
            // Only that entry: the id may have been stored again since.
            if self.by_id.get(id).is_some_and(|(_, _, e)| e == entry) {
                self.by_id.remove(id);
            }
            self.oldest_first.pop_front();
        }
    }
}

impl State {
    pub fn new(config: SimConfig) -> Self {
        State {
            config,
            ..State::default()
        }
    }

    /// `server_version` as the real server reports it in `hello` and `X-Version-Id`:
    /// version, build number, config hash, licensed flag.
    pub fn full_version(&self) -> String {
        let v = &self.config.server_version;
        format!("{v}.{v}.sim.false")
    }

    pub fn user_by_token(&self, token: &str) -> Option<User> {
        self.tokens
            .get(token)
            .and_then(|id| self.users.get(id))
            .cloned()
    }

    pub fn is_team_member(&self, team_id: &str, user_id: &str) -> bool {
        self.team_members
            .get(team_id)
            .is_some_and(|m| m.iter().any(|u| u == user_id))
    }

    pub fn is_channel_member(&self, channel_id: &str, user_id: &str) -> bool {
        self.channel_members
            .get(channel_id)
            .is_some_and(|m| m.iter().any(|cm| cm.user_id == user_id))
    }

    /// `read_channel`: members always; public channels for any team member
    /// (`read_public_channel` is in `team_user`); system admins everywhere.
    pub fn can_read_channel(&self, user: &User, channel: &Channel) -> bool {
        user.system_admin
            || self.is_channel_member(&channel.id, &user.id)
            || (!channel.is_private() && self.is_team_member(&channel.team_id, &user.id))
    }

    /// Permissions granted through `channel_user` (post, manage members/properties,
    /// delete the channel): members and system admins.
    pub fn has_channel_role(&self, user: &User, channel_id: &str) -> bool {
        user.system_admin || self.is_channel_member(channel_id, &user.id)
    }

    pub fn channel_by_name(&self, team_id: &str, name: &str) -> Option<&Channel> {
        self.channels
            .values()
            .find(|c| c.team_id == team_id && c.name == name)
    }

    pub fn username(&self, user_id: &str) -> String {
        self.users
            .get(user_id)
            .map(|u| u.username.clone())
            .unwrap_or_default()
    }

    /// Adds a member without any side effect; true when newly added.
    pub fn add_channel_member_raw(&mut self, channel_id: &str, user_id: &str, admin: bool) -> bool {
        let members = self
            .channel_members
            .entry(channel_id.to_owned())
            .or_default();
        if members.iter().any(|m| m.user_id == user_id) {
            return false;
        }
        members.push(ChannelMember {
            user_id: user_id.to_owned(),
            scheme_admin: admin,
            last_update_at: now_ms(),
        });
        true
    }

    pub fn channel_member_json(&self, channel_id: &str, user_id: &str) -> Option<Value> {
        self.channel_members
            .get(channel_id)?
            .iter()
            .find(|m| m.user_id == user_id)
            .map(|m| m.to_json(channel_id))
    }

    /// A post as JSON with `metadata` (attached files) filled in; `strip` removes action
    /// integrations, which every client-facing rendering must do.
    pub fn render_post(&self, post: &Post, strip: bool) -> Value {
        let mut v = serde_json::to_value(post).unwrap_or(Value::Null);
        if strip {
            strip_integrations(&mut v);
        }
        let files: Vec<Value> = post
            .file_ids
            .iter()
            .filter_map(|id| self.files.get(id))
            .map(|f| f.info.to_json())
            .collect();
        let mut metadata = Map::new();
        if !files.is_empty() {
            metadata.insert("files".into(), Value::Array(files));
        }
        v["metadata"] = Value::Object(metadata);
        v
    }

    /// Returns the post previously created with this pending_post_id within 30 s.
    pub fn dedup_pending(&mut self, pending_post_id: &str) -> Option<Post> {
        if pending_post_id.is_empty() {
            return None;
        }
        let post_id = self.pending_posts.get(pending_post_id)?;
        self.posts.get(post_id).cloned()
    }

    /// Stores a new post, bumps the channel's counters and broadcasts `posted`.
    pub fn insert_post(&mut self, post: Post) -> Post {
        if !post.pending_post_id.is_empty() {
            self.pending_posts
                .insert(post.pending_post_id.clone(), post.id.clone());
        }
        if let Some(ch) = self.channels.get_mut(&post.channel_id) {
            ch.last_post_at = post.create_at;
            ch.total_msg_count += 1;
        }
        self.posts.insert(post.id.clone(), post.clone());
        self.post_order.push(post.id.clone());
        if !self.post_watchers.is_empty() {
            let created = crate::PostCreated {
                at: Instant::now(),
                id: post.id.clone(),
                channel_id: post.channel_id.clone(),
                user_id: post.user_id.clone(),
                message: post.message.clone(),
                props: Value::Object(post.props.clone()),
            };
            self.post_watchers
                .retain(|w| w.send(created.clone()).is_ok());
        }
        self.emit_posted(&post);
        post
    }

    /// Writes a `system_*` post (join, add, header change, archive...).
    pub fn system_post(
        &mut self,
        channel_id: &str,
        user_id: &str,
        post_type: &str,
        message: String,
        props: Value,
    ) {
        let mut post = Post::new(user_id, channel_id, &message, post_type);
        if let Value::Object(map) = props {
            post.props = map;
        }
        self.insert_post(post);
    }

    fn emit_posted(&mut self, post: &Post) {
        let Some(channel) = self.channels.get(&post.channel_id) else {
            return;
        };
        let rendered = self.render_post(post, true);
        let mut data = json!({
            "channel_display_name": channel.display_name,
            "channel_name": channel.name,
            "channel_type": channel.channel_type,
            "post": rendered.to_string(),
            "sender_name": format!("@{}", self.username(&post.user_id)),
            "set_online": true,
            "team_id": channel.team_id,
        });
        if !post.file_ids.is_empty() {
            data["otherFile"] = json!("true");
        }
        let ev = WsEvent::new(
            "posted",
            data,
            Broadcast {
                channel_id: post.channel_id.clone(),
                ..Broadcast::default()
            },
        );
        self.publish(&ev);
    }

    /// Broadcasts `post_edited` / `post_deleted` (data.post is a JSON string).
    pub fn emit_post_event(&mut self, event: &str, post: &Post) {
        let data = json!({ "post": self.render_post(post, true).to_string() });
        let ev = WsEvent::new(
            event,
            data,
            Broadcast {
                channel_id: post.channel_id.clone(),
                ..Broadcast::default()
            },
        );
        self.publish(&ev);
    }

    /// Records and delivers an ephemeral post to one user only.
    pub fn send_ephemeral(&mut self, recipient: &str, post: &Post) -> Value {
        let rendered = self.render_post(post, true);
        self.ephemeral
            .push((recipient.to_owned(), rendered.clone()));
        let ev = WsEvent::new(
            "ephemeral_message",
            json!({ "post": rendered.to_string() }),
            Broadcast {
                user_id: recipient.to_owned(),
                channel_id: post.channel_id.clone(),
                ..Broadcast::default()
            },
        );
        self.publish(&ev);
        rendered
    }

    /// Resolves the broadcast scope (user > channel members > team members > all) and
    /// hands the event to the hub.
    pub fn publish(&mut self, ev: &WsEvent) {
        let b = &ev.broadcast;
        let audience = if !b.user_id.is_empty() {
            Audience::Everyone // the hub filters on broadcast.user_id itself
        } else if !b.channel_id.is_empty() {
            Audience::Users(
                self.channel_members
                    .get(&b.channel_id)
                    .map(|m| m.iter().map(|cm| cm.user_id.clone()).collect())
                    .unwrap_or_default(),
            )
        } else if !b.team_id.is_empty() {
            Audience::Users(
                self.team_members
                    .get(&b.team_id)
                    .map(|m| m.iter().cloned().collect::<HashSet<_>>())
                    .unwrap_or_default(),
            )
        } else {
            Audience::Everyone
        };
        self.hub.publish(ev, &audience);
    }

    /// Marks a user online after activity unless they chose their status by hand.
    pub fn touch_online(&mut self, user_id: &str) {
        let now = now_ms();
        let status = self
            .statuses
            .entry(user_id.to_owned())
            .or_insert_with(|| Status {
                status: "offline".into(),
                manual: false,
                last_activity_at: 0,
            });
        status.last_activity_at = now;
        if !status.manual {
            status.status = "online".into();
        }
    }

    pub fn new_user(
        &mut self,
        username: &str,
        first: &str,
        last: &str,
        is_bot: bool,
    ) -> (User, String) {
        let now = now_ms();
        let user = User {
            id: new_id(),
            username: username.to_owned(),
            first_name: if is_bot {
                String::new()
            } else {
                first.to_owned()
            },
            last_name: last.to_owned(),
            nickname: String::new(),
            email: if is_bot {
                format!("{username}@localhost")
            } else {
                format!("{username}@example.com")
            },
            is_bot,
            bot_display_name: if is_bot {
                first.to_owned()
            } else {
                String::new()
            },
            system_admin: false,
            create_at: now,
            update_at: now,
        };
        let token = new_id();
        self.tokens.insert(token.clone(), user.id.clone());
        self.users.insert(user.id.clone(), user.clone());
        (user, token)
    }
}

/// The new content of a post for [`State::update_post`] (what `UpdatePost` receives
/// with `SafeUpdate: false`).
pub struct PostUpdate {
    pub message: String,
    pub props: Map<String, Value>,
    /// `None` keeps the current attachments.
    pub file_ids: Option<Vec<String>>,
    pub is_pinned: bool,
}

impl State {
    /// Overwrites a post like the real `UpdatePost`: `edit_at` moves only when the
    /// message, the files or the attachments change; `update_at` always moves; a
    /// `post_edited` event follows.
    pub fn update_post(
        &mut self,
        post_id: &str,
        update: PostUpdate,
    ) -> Result<Post, crate::error::ApiError> {
        use crate::error::ApiError;
        let old = self
            .posts
            .get(post_id)
            .filter(|p| p.delete_at == 0)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "api.post.update_post.find.app_error",
                    "We couldn't find the existing post or comment to update.",
                )
            })?;
        if old.post_type.starts_with("system_") {
            return Err(ApiError::new(
                400,
                "api.post.update_post.system_message.app_error",
                "Unable to update system message.",
            ));
        }
        if self
            .channels
            .get(&old.channel_id)
            .is_none_or(|c| c.delete_at != 0)
        {
            return Err(ApiError::new(
                400,
                "api.post.update_post.can_not_update_post_in_deleted.error",
                "Can not update a post in a deleted channel.",
            ));
        }
        let now = now_ms();
        let mut new = old.clone();
        if new.message != update.message {
            new.message = update.message;
            new.edit_at = now;
        }
        new.is_pinned = update.is_pinned;
        new.props = update.props;
        crate::model::generate_action_ids(&mut new.props);
        if let Some(file_ids) = update.file_ids {
            new.file_ids = file_ids;
        }
        if new.edit_at == old.edit_at
            && (new.file_ids != old.file_ids
                || new.props.get("attachments") != old.props.get("attachments"))
        {
            new.edit_at = now;
        }
        new.update_at = now;
        // Like the real server (server/channels/store/sqlstore/post_store.go `Update`), the
        // old version stays as a soft-deleted copy with a new id and `original_id` set: it is
        // listed by `posts?since` with the old props, marker props included.
        let mut copy = old;
        copy.id = crate::model::new_id();
        copy.original_id = new.id.clone();
        copy.delete_at = now;
        copy.update_at = now;
        copy.pending_post_id = String::new();
        self.post_order.push(copy.id.clone());
        self.posts.insert(copy.id.clone(), copy);
        self.posts.insert(new.id.clone(), new.clone());
        self.emit_post_event("post_edited", &new);
        Ok(new)
    }
}

impl State {
    /// The `user_typing` action (MM:wsapi/user.go `userTyping`): needs `create_post` in the
    /// channel (else the invalid-param error), then `typing` goes to the channel's members
    /// except the typist.
    pub fn user_typing(
        &mut self,
        user_id: &str,
        channel_id: &str,
        parent_id: &str,
    ) -> Result<(), crate::error::ApiError> {
        let invalid = || {
            crate::error::ApiError::new(
                400,
                "api.websocket_handler.invalid_param.app_error",
                "Invalid channel_id parameter.",
            )
        };
        if !crate::validate::is_id(channel_id) {
            return Err(invalid());
        }
        let user = self.users.get(user_id).cloned().ok_or_else(invalid)?;
        if !self.channels.contains_key(channel_id) || !self.has_channel_role(&user, channel_id) {
            return Err(invalid());
        }
        self.typing_log.push(json!({
            "user_id": user_id, "channel_id": channel_id, "parent_id": parent_id, "at": now_ms()
        }));
        let mut omit = Map::new();
        omit.insert(user_id.to_owned(), Value::Bool(true));
        let ev = WsEvent::new(
            "typing",
            json!({"parent_id": parent_id, "user_id": user_id}),
            Broadcast {
                channel_id: channel_id.to_owned(),
                omit_users: Some(omit),
                ..Broadcast::default()
            },
        );
        self.publish(&ev);
        Ok(())
    }

    /// Saves a reaction like `SaveReactionForPost` (an upsert on user, post and emoji),
    /// marks the post as having reactions and broadcasts `reaction_added` to the channel
    /// with `data.reaction` as a JSON string. The caller has checked the request.
    pub fn save_reaction(&mut self, user_id: &str, post_id: &str, emoji_name: &str) -> Reaction {
        let now = now_ms();
        let channel_id = self
            .posts
            .get(post_id)
            .map(|p| p.channel_id.clone())
            .unwrap_or_default();
        let existing = self
            .reactions
            .iter_mut()
            .find(|r| r.user_id == user_id && r.post_id == post_id && r.emoji_name == emoji_name);
        let reaction = match existing {
            Some(r) => {
                r.update_at = now;
                r.delete_at = 0;
                r.clone()
            }
            None => {
                let r = Reaction {
                    user_id: user_id.to_owned(),
                    post_id: post_id.to_owned(),
                    emoji_name: emoji_name.to_owned(),
                    create_at: now,
                    update_at: now,
                    delete_at: 0,
                    remote_id: String::new(),
                    channel_id: channel_id.clone(),
                };
                self.reactions.push(r.clone());
                r
            }
        };
        // The store sets HasReactions and moves UpdateAt, so `?since=` lists the post again.
        if let Some(post) = self.posts.get_mut(post_id) {
            post.has_reactions = true;
            post.update_at = now;
        }
        let data = json!({
            "reaction": serde_json::to_string(&reaction).unwrap_or_default(),
        });
        let ev = WsEvent::new(
            "reaction_added",
            data,
            Broadcast {
                channel_id,
                ..Broadcast::default()
            },
        );
        self.publish(&ev);
        reaction
    }

    /// The live reactions on a post, oldest first.
    pub fn reactions_for_post(&self, post_id: &str) -> Vec<Reaction> {
        self.reactions
            .iter()
            .filter(|r| r.post_id == post_id && r.delete_at == 0)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod pending_post_tests {
    use super::*;

    #[test]
    fn the_pending_post_cache_keeps_the_newest_25000() {
        let mut cache = PendingPosts::default();
        for i in 0..PENDING_POST_CAPACITY + 5 {
            cache.insert(format!("pending-{i}"), format!("post-{i}"));
        }
        assert_eq!(cache.get("pending-4"), None);
        assert_eq!(cache.get("pending-5").map(String::as_str), Some("post-5"));
        assert_eq!(cache.by_id.len(), PENDING_POST_CAPACITY);
        // Stored again: the newer entry survives its older one leaving the queue.
        cache.insert("pending-5".into(), "post-again".into());
        cache.insert("pending-new".into(), "post-new".into());
        assert_eq!(
            cache.get("pending-5").map(String::as_str),
            Some("post-again")
        );
    }
}
