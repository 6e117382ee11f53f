//! An in-memory Mattermost server (REST API v4 subset, WebSocket events, interactive
//! button callbacks, fault injection) for parley's black-box tests.
//!
//! Start one with [`MattermostSim::start`], seed it synchronously, point parley at
//! [`MattermostSim::url`], act as operators through the helpers (which use the real
//! HTTP API) and inspect the stored state afterwards.

mod api;
mod config;
mod error;
mod http;
mod model;
mod ssrf;
mod state;
mod validate;
mod ws;

pub use config::SimConfig;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::model::{Channel, Status, Team, new_id, now_ms};
use crate::state::State;

/// Marks requests made by the sim's own helpers so fault injection and the request
/// log leave them alone.
pub(crate) const HELPER_HEADER: &str = "x-mattermost-sim-helper";

pub(crate) struct Inner {
    state: Mutex<State>,
    pub(crate) base_url: String,
    /// The "untrusted" client used for action callbacks (30 s timeout, no proxy).
    pub(crate) integration_client: reqwest::Client,
    helper_client: reqwest::Client,
}

impl Inner {
    /// The state lock; a panic in another holder does not make the sim unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) type Shared = Arc<Inner>;

/// A running simulated Mattermost server. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct MattermostSim {
    inner: Shared,
}

impl std::fmt::Debug for MattermostSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MattermostSim")
            .field("url", &self.inner.base_url)
            .finish()
    }
}

/// A post as it was stored, with the moment it was (see [`MattermostSim::watch_posts`]).
#[derive(Clone, Debug)]
pub struct PostCreated {
    pub at: std::time::Instant,
    pub id: String,
    pub channel_id: String,
    pub user_id: String,
    pub message: String,
    pub props: Value,
}

/// A seeded user (or bot) with a valid access token.
#[derive(Clone, Debug)]
pub struct SimUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

impl MattermostSim {
    /// Starts with [`SimConfig::default`] on 127.0.0.1 and a free port.
    pub async fn start() -> MattermostSim {
        Self::start_with(SimConfig::default()).await
    }

    pub async fn start_with(config: SimConfig) -> MattermostSim {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the Mattermost simulator")
    }

    /// Starts on a given address (used by the binary).
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> std::io::Result<MattermostSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let integration_client = reqwest::Client::builder()
            .no_proxy()
            .timeout(api::actions::INTEGRATION_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        let helper_client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(config)),
            base_url: format!("http://{local}"),
            integration_client,
            helper_client,
        });
        let app = http::router(inner.clone());
        tokio::spawn(async move {
            // Like the real server (Go sets TCP_NODELAY on every connection): without it a
            // stream of small WebSocket events waits on delayed ACKs (tens of milliseconds).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("mattermost-sim server stopped: {e}");
            }
        });
        Ok(MattermostSim { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.inner.base_url.clone()
    }

    pub fn set_config(&self, f: impl FnOnce(&mut SimConfig)) {
        f(&mut self.inner.lock().config);
    }

    // ----- seeding -------------------------------------------------------------

    pub fn create_team(&self, name: &str, display_name: &str) -> String {
        let team = Team {
            id: new_id(),
            name: name.to_owned(),
            display_name: display_name.to_owned(),
            create_at: now_ms(),
        };
        let id = team.id.clone();
        self.inner.lock().teams.insert(id.clone(), team);
        id
    }

    /// A regular user (`system_user`) with a personal access token.
    pub fn create_user(&self, username: &str, first_name: &str, last_name: &str) -> SimUser {
        let (user, token) = self
            .inner
            .lock()
            .new_user(username, first_name, last_name, false);
        SimUser {
            id: user.id,
            username: user.username,
            token,
        }
    }

    /// A bot account (`is_bot: true`) with a token.
    pub fn create_bot(&self, username: &str, display_name: &str) -> SimUser {
        let (user, token) = self.inner.lock().new_user(username, display_name, "", true);
        SimUser {
            id: user.id,
            username: user.username,
            token,
        }
    }

    pub fn make_system_admin(&self, user_id: &str) {
        if let Some(u) = self.inner.lock().users.get_mut(user_id) {
            u.system_admin = true;
        }
    }

    pub fn add_team_member(&self, team_id: &str, user_id: &str) {
        let mut st = self.inner.lock();
        let members = st.team_members.entry(team_id.to_owned()).or_default();
        if !members.iter().any(|m| m == user_id) {
            members.push(user_id.to_owned());
        }
    }

    /// Creates a channel directly (no creator, no validation, no events).
    pub fn create_channel(
        &self,
        team_id: &str,
        name: &str,
        display_name: &str,
        private: bool,
    ) -> String {
        let now = now_ms();
        let channel = Channel {
            id: new_id(),
            team_id: team_id.to_owned(),
            channel_type: if private { "P" } else { "O" }.to_owned(),
            name: name.to_owned(),
            display_name: display_name.to_owned(),
            header: String::new(),
            purpose: String::new(),
            creator_id: String::new(),
            create_at: now,
            update_at: now,
            delete_at: 0,
            last_post_at: now,
            total_msg_count: 0,
        };
        let id = channel.id.clone();
        let mut st = self.inner.lock();
        st.channel_order.push(id.clone());
        st.channels.insert(id.clone(), channel);
        id
    }

    /// Adds a channel member directly (no system post, no event).
    pub fn add_channel_member(&self, channel_id: &str, user_id: &str) {
        self.inner
            .lock()
            .add_channel_member_raw(channel_id, user_id, false);
    }

    /// Deletes a channel for good, with its members and posts, as an admin's
    /// `DELETE /channels/{id}?permanent=true` or `mattermost channel delete` does (no events).
    pub fn delete_channel_permanently(&self, channel_id: &str) {
        api::channels::purge_channel(&mut self.inner.lock(), channel_id);
    }

    /// Sets a status (online/away/dnd/offline) as if the user chose it.
    pub fn set_status(&self, user_id: &str, status: &str) {
        self.inner.lock().statuses.insert(
            user_id.to_owned(),
            Status {
                status: status.to_owned(),
                manual: status != "online",
                last_activity_at: now_ms(),
            },
        );
    }

    // ----- inspection ----------------------------------------------------------

    /// Every stored post of the channel in creation order, deleted ones included,
    /// with action integrations intact; without the copies that edits leave (see
    /// [`Self::edit_copies_in_channel`]).
    pub fn posts_in_channel(&self, channel_id: &str) -> Vec<Value> {
        let st = self.inner.lock();
        st.post_order
            .iter()
            .filter_map(|id| st.posts.get(id))
            .filter(|p| p.channel_id == channel_id && p.original_id.is_empty())
            .map(|p| st.render_post(p, false))
            .collect()
    }

    /// The soft-deleted copies of the old versions of edited posts in the channel, oldest
    /// first (`original_id` names the edited post).
    pub fn edit_copies_in_channel(&self, channel_id: &str) -> Vec<Value> {
        let st = self.inner.lock();
        st.post_order
            .iter()
            .filter_map(|id| st.posts.get(id))
            .filter(|p| p.channel_id == channel_id && !p.original_id.is_empty())
            .map(|p| st.render_post(p, false))
            .collect()
    }

    pub fn post(&self, post_id: &str) -> Option<Value> {
        let st = self.inner.lock();
        st.posts.get(post_id).map(|p| st.render_post(p, false))
    }

    pub fn channel(&self, channel_id: &str) -> Option<Value> {
        self.inner
            .lock()
            .channels
            .get(channel_id)
            .map(Channel::to_json)
    }

    /// Includes archived channels.
    pub fn channel_by_name(&self, team_id: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .channel_by_name(team_id, name)
            .map(Channel::to_json)
    }

    /// All channels of the team in creation order, archived ones included.
    pub fn channels_in_team(&self, team_id: &str) -> Vec<Value> {
        let st = self.inner.lock();
        st.channel_order
            .iter()
            .filter_map(|id| st.channels.get(id))
            .filter(|c| c.team_id == team_id)
            .map(Channel::to_json)
            .collect()
    }

    pub fn channel_members(&self, channel_id: &str) -> Vec<String> {
        self.inner
            .lock()
            .channel_members
            .get(channel_id)
            .map(|m| m.iter().map(|cm| cm.user_id.clone()).collect())
            .unwrap_or_default()
    }

    /// Every ephemeral post delivered to the user (from `/posts/ephemeral` and from
    /// action responses' `ephemeral_text`).
    pub fn ephemeral_posts_for(&self, user_id: &str) -> Vec<Value> {
        self.inner
            .lock()
            .ephemeral
            .iter()
            .filter(|(to, _)| to == user_id)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Every body POSTed to an integration URL plus `response_status` (0 when the
    /// request failed without an HTTP answer).
    pub fn integration_requests(&self) -> Vec<Value> {
        self.inner.lock().integration_requests.clone()
    }

    /// Every post stored from now on (system posts included), as it is stored: for
    /// measuring when posts arrive without polling.
    pub fn watch_posts(&self) -> tokio::sync::mpsc::UnboundedReceiver<PostCreated> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.inner.lock().post_watchers.push(tx);
        rx
    }

    /// Number of stored posts, deleted and system posts included (edit copies are not).
    pub fn post_count(&self) -> usize {
        let st = self.inner.lock();
        st.post_order
            .iter()
            .filter_map(|id| st.posts.get(id))
            .filter(|p| p.original_id.is_empty())
            .count()
    }

    /// (method, path without query, status) of every request except the helpers'.
    pub fn request_log(&self) -> Vec<(String, String, u16)> {
        self.inner.lock().request_log.clone()
    }

    // ----- acting as a user over HTTP --------------------------------------------

    async fn call(
        &self,
        user: &SimUser,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .inner
            .helper_client
            .request(method, format!("{}/api/v4{path}", self.inner.base_url))
            .bearer_auth(&user.token)
            .header(HELPER_HEADER, "1");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .expect("request to the Mattermost simulator");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Clicks an interactive button as `user`; returns the HTTP status and body.
    pub async fn click_button(
        &self,
        user: &SimUser,
        post_id: &str,
        action_id: &str,
    ) -> (u16, Value) {
        self.call(
            user,
            reqwest::Method::POST,
            &format!("/posts/{post_id}/actions/{action_id}"),
            Some(json!({})),
        )
        .await
    }

    /// Posts as `user`; panics unless the server answers 201.
    pub async fn post_as(&self, user: &SimUser, channel_id: &str, message: &str) -> Value {
        let body = json!({"channel_id": channel_id, "message": message});
        let (status, v) = self
            .call(user, reqwest::Method::POST, "/posts", Some(body))
            .await;
        assert_eq!(status, 201, "post_as({}) failed: {v}", user.username);
        v
    }

    /// Uploads a file into a channel as `user` (multipart, `channel_id` first, as the
    /// webapp does); returns its FileInfo. Panics unless the server answers 201.
    pub async fn upload_file_as(
        &self,
        user: &SimUser,
        channel_id: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Value {
        let form = reqwest::multipart::Form::new()
            .text("channel_id", channel_id.to_owned())
            .part(
                "files",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            );
        let resp = self
            .inner
            .helper_client
            .post(format!("{}/api/v4/files", self.inner.base_url))
            .bearer_auth(&user.token)
            .header(HELPER_HEADER, "1")
            .multipart(form)
            .send()
            .await
            .expect("request to the Mattermost simulator");
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "upload_file_as({}) failed: {v}", user.username);
        v["file_infos"][0].clone()
    }

    /// Posts as `user` with files attached (ids from [`Self::upload_file_as`]); panics
    /// unless the server answers 201.
    pub async fn post_with_files_as(
        &self,
        user: &SimUser,
        channel_id: &str,
        message: &str,
        file_ids: &[String],
    ) -> Value {
        let body = json!({"channel_id": channel_id, "message": message, "file_ids": file_ids});
        let (status, v) = self
            .call(user, reqwest::Method::POST, "/posts", Some(body))
            .await;
        assert_eq!(
            status, 201,
            "post_with_files_as({}) failed: {v}",
            user.username
        );
        v
    }

    /// A stored file's bytes (for checking what parley uploaded).
    pub fn file_bytes(&self, file_id: &str) -> Option<Vec<u8>> {
        self.inner
            .lock()
            .files
            .get(file_id)
            .map(|f| f.bytes.to_vec())
    }

    /// Edits a post's message as `user`; panics unless the server answers 200.
    pub async fn edit_post_as(&self, user: &SimUser, post_id: &str, message: &str) -> Value {
        let (status, v) = self
            .call(
                user,
                reqwest::Method::PUT,
                &format!("/posts/{post_id}/patch"),
                Some(json!({"message": message})),
            )
            .await;
        assert_eq!(status, 200, "edit_post_as({}) failed: {v}", user.username);
        v
    }

    /// Deletes a post as `user`; panics unless the server answers 200.
    pub async fn delete_post_as(&self, user: &SimUser, post_id: &str) {
        let (status, v) = self
            .call(
                user,
                reqwest::Method::DELETE,
                &format!("/posts/{post_id}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "delete_post_as({}) failed: {v}", user.username);
    }

    /// Reacts to a post as `user` (`POST /reactions`); returns the Reaction. Panics unless
    /// the server accepts it (200, as the real server answers).
    pub async fn react_as(&self, user: &SimUser, post_id: &str, emoji_name: &str) -> Value {
        let body = json!({"user_id": user.id, "post_id": post_id, "emoji_name": emoji_name});
        let (status, v) = self
            .call(user, reqwest::Method::POST, "/reactions", Some(body))
            .await;
        assert_eq!(status, 200, "react_as({}) failed: {v}", user.username);
        v
    }

    /// Shows `user` typing in a channel, as their client's `user_typing` action does:
    /// `typing` goes to the other members' WebSockets. Panics if the user may not post there.
    pub fn typing_as(&self, user: &SimUser, channel_id: &str) {
        let result = self.inner.lock().user_typing(&user.id, channel_id, "");
        if let Err(e) = result {
            panic!("typing_as({}) failed: {}", user.username, e.id);
        }
    }

    /// Every accepted `user_typing` action, oldest first: `{user_id, channel_id, parent_id,
    /// at}` (from WebSocket clients such as parley's bot, and from [`Self::typing_as`]).
    pub fn typing_events(&self) -> Vec<Value> {
        self.inner.lock().typing_log.clone()
    }

    /// The reactions on a post, oldest first.
    pub fn reactions_on(&self, post_id: &str) -> Vec<Value> {
        self.inner
            .lock()
            .reactions_for_post(post_id)
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect()
    }

    // ----- fault injection -----------------------------------------------------

    /// The next `n` REST calls (not the helpers', not WebSocket upgrades) answer
    /// `status` with an AppError whose id is `sim.injected_failure`.
    pub fn fail_next_requests(&self, n: usize, status: u16) {
        let mut st = self.inner.lock();
        st.faults.fail_next = n;
        st.faults.fail_status = status;
    }

    /// The next `n` calls of `method` on `path_and_query` (exactly, query included, e.g.
    /// `/api/v4/channels/{id}?permanent=true`) answer a bare `404 page not found` in plain
    /// text, as a proxy in front of the wrong path does: a 404 without Mattermost's error id.
    pub fn bare_404_next(&self, method: &str, path_and_query: &str, n: usize) {
        self.inner
            .lock()
            .faults
            .bare_404
            .insert((method.to_owned(), path_and_query.to_owned()), n);
    }

    /// The next `n` REST calls answer 429 `limit exceeded` with rate-limit headers.
    pub fn rate_limit_next_requests(&self, n: usize, retry_after_secs: u64) {
        let mut st = self.inner.lock();
        st.faults.rate_limit_next = n;
        st.faults.retry_after_secs = retry_after_secs;
    }

    /// While down every REST call answers 503 and WebSocket upgrades are refused;
    /// going down also cuts open WebSockets (which stay resumable).
    pub fn set_down(&self, down: bool) {
        let mut st = self.inner.lock();
        st.faults.down = down;
        if down {
            st.hub.drop_all();
        }
    }

    /// While on, WebSocket upgrades are refused but REST answers. Turning it on cuts open
    /// WebSockets and forgets their connections (as after the server's 5-minute reaper), so
    /// every event until a client connects afresh is lost to it: it must catch up over REST.
    pub fn set_websockets_down(&self, down: bool) {
        let mut st = self.inner.lock();
        st.faults.websockets_down = down;
        if down {
            st.hub.expire_all();
        }
    }

    /// Delay added before every REST response (after the request took effect).
    pub fn set_delay(&self, delay: Duration) {
        self.inner.lock().faults.delay = delay;
    }

    /// While `held`, parley's `POST /posts` calls take effect at once (the post is stored and
    /// its `posted` event sent) but their answers wait until this is called with `false`: a
    /// slow server as the client sees it, for races between a post and what follows it.
    pub fn hold_post_answers(&self, held: bool) {
        let mut st = self.inner.lock();
        let sender = st
            .faults
            .hold_post_answers
            .get_or_insert_with(|| tokio::sync::watch::channel(false).0);
        sender.send_replace(held);
    }

    /// While `lost`, parley's `POST /posts` calls take effect but their answers are lost: a
    /// proxy's `504` comes back instead (also for answers held by [`Self::hold_post_answers`]
    /// when they go out).
    pub fn lose_post_answers(&self, lost: bool) {
        self.inner.lock().faults.lose_post_answers = lost;
    }

    /// While `held`, creates that carry a `pending_post_id` wait before their post is saved;
    /// the same `pending_post_id` sent again meanwhile gets the real server's
    /// `500 api.post.deduplicate_create_post.pending`. Released saves complete even if their
    /// client gave up waiting.
    pub fn hold_post_saves(&self, held: bool) {
        let mut st = self.inner.lock();
        let sender = st
            .faults
            .hold_post_saves
            .get_or_insert_with(|| tokio::sync::watch::channel(false).0);
        sender.send_replace(held);
    }

    /// Creates waiting to save their post because of [`Self::hold_post_saves`].
    pub fn posts_being_saved(&self) -> usize {
        self.inner.lock().saving_pending_posts.len()
    }

    /// Answers to `POST /posts` waiting because of [`Self::hold_post_answers`].
    pub fn held_post_answers(&self) -> usize {
        self.inner
            .lock()
            .faults
            .hold_post_answers
            .as_ref()
            .map_or(0, |held| held.receiver_count())
    }

    /// Abruptly closes every WebSocket; their connection ids stay resumable.
    pub fn drop_websockets(&self) {
        self.inner.lock().hub.drop_all();
    }

    /// Pongs received on WebSockets so far (answers to the keep-alive pings, see
    /// [`SimConfig::websocket_ping_interval`]).
    pub fn websocket_pongs(&self) -> u64 {
        self.inner.lock().hub.pongs
    }

    /// Currently open, authenticated WebSocket connections.
    pub fn websocket_connections(&self) -> usize {
        self.inner.lock().hub.open_count()
    }
}
