//! The Mattermost bridge: the one handle the rest of parley uses to reach Mattermost. It
//! resolves the configured team and requests channel, caches users, and knows whether the
//! server is reachable. The REST client, the event stream and the post formats live in the
//! submodules. The bridge is closed: its client is private (the calls parley makes are
//! [`Bridge`] methods, `calls.rs`), Mattermost's error ids are read only here (`MmError::is_*`),
//! and what happens in Mattermost reaches the application only as [`BridgeEvent`]s through its
//! [`Inbound`] implementation.

pub mod answers;
pub mod callback_check;
mod calls;
pub mod channels;
pub mod client;
pub mod events;
pub mod files;
pub mod format;
pub mod presence;
pub mod probe;
pub mod slot;
pub mod stream;
mod translate;
pub mod wire;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use crate::{
    config::{MattermostSettings, base},
    domain::department::Route,
};
pub use client::{Client, MmError};
pub use events::{BridgeEvent, Inbound};
use presence::Presence;
pub use slot::{BridgeSlot, replaced};
use wire::User;

/// A department's team and requests channel, resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub team_id: String,
    pub team_name: String,
    pub channel_id: String,
}

/// What parley learned about the server at connection time.
#[derive(Debug, Clone)]
pub struct Context {
    pub bot_user_id: String,
    pub bot_username: String,
    pub team_id: String,
    pub team_name: String,
    pub requests_channel_id: String,
    /// Longest post the server accepts, in characters (`MaxPostSize`).
    pub max_post_size: usize,
}

/// Shared handle to Mattermost.
#[derive(Debug)]
pub struct Bridge {
    /// Private to the adapter: the rest of parley calls the [`Bridge`] methods.
    client: Client,
    settings: MattermostSettings,
    context: RwLock<Option<Arc<Context>>>,
    /// Held while the context is resolved, so that the tasks asking for it at start (event
    /// stream, presence poll, outbox) resolve it once and log "connected" once.
    resolving: tokio::sync::Mutex<()>,
    stream_connected: AtomicBool,
    /// The event stream has been up at least once (the first connection attempt is over).
    ever_streamed: AtomicBool,
    /// When this bridge was made (put in force).
    created: Instant,
    users: Mutex<HashMap<String, User>>,
    last_problem: Mutex<Option<String>>,
    /// Whether Mattermost can call parley back (the Accept button), as last checked.
    callback_check: Mutex<Option<callback_check::CallbackCheck>>,
    /// Resolved routes of departments (and the default one), by names.
    targets: Mutex<HashMap<Route, Arc<Target>>>,
    /// Operators' presence per route, as last polled.
    pub presence: Presence,
    /// Visitor typing, handed from the live sockets to the event stream, which sends it as a
    /// `user_typing` action. Never queued for long: see [`Bridge::visitor_typing`].
    typing_tx: mpsc::Sender<Typing>,
    typing_rx: tokio::sync::Mutex<mpsc::Receiver<Typing>>,
}

/// "The visitor is typing" for a chat channel, as handed to the event stream.
#[derive(Debug)]
pub(super) struct Typing {
    pub channel_id: String,
    pub at: Instant,
}

/// How long a new bridge counts as connecting at most (see [`Bridge::is_connecting`]).
pub const CONNECTING_AT_MOST: Duration = Duration::from_secs(30);

/// Typing older than this when the stream gets to it is dropped: it would be stale.
pub(super) const TYPING_FRESH: Duration = Duration::from_secs(2);

impl Bridge {
    pub fn new(settings: MattermostSettings) -> Self {
        let (typing_tx, typing_rx) = mpsc::channel(32);
        Self {
            typing_tx,
            typing_rx: tokio::sync::Mutex::new(typing_rx),
            client: Client::new(&base(&settings.url), settings.token.clone()),
            settings,
            context: RwLock::new(None),
            resolving: tokio::sync::Mutex::new(()),
            stream_connected: AtomicBool::new(false),
            ever_streamed: AtomicBool::new(false),
            created: Instant::now(),
            users: Mutex::new(HashMap::new()),
            last_problem: Mutex::new(None),
            callback_check: Mutex::new(None),
            targets: Mutex::new(HashMap::new()),
            presence: Presence::default(),
        }
    }

    /// The connection this bridge uses.
    pub fn settings(&self) -> &MattermostSettings {
        &self.settings
    }

    /// The same bridge, counting its REST calls in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.client = self.client.with_metrics(metrics);
        self
    }

    /// The server's context, resolving it first if needed.
    pub async fn context(&self) -> Result<Arc<Context>, MmError> {
        if let Some(ctx) = self.context.read().expect("context lock").clone() {
            return Ok(ctx);
        }
        let _resolving = self.resolving.lock().await;
        // Someone else may have resolved it while this task waited.
        if let Some(ctx) = self.context.read().expect("context lock").clone() {
            return Ok(ctx);
        }
        match self.resolve().await {
            Ok(ctx) => {
                let ctx = Arc::new(ctx);
                *self.context.write().expect("context lock") = Some(ctx.clone());
                self.note_problem(None);
                tracing::info!(
                    team = %ctx.team_name,
                    bot = %ctx.bot_username,
                    "connected to Mattermost"
                );
                Ok(ctx)
            }
            Err(e) => {
                self.note_problem(Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Logs a connection problem once per change, with what to do about it.
    fn note_problem(&self, problem: Option<String>) {
        let mut last = self.last_problem.lock().expect("problem lock");
        if *last != problem {
            if let Some(p) = &problem {
                tracing::warn!(problem = %p, "Mattermost cannot be used yet: {p}; `parley doctor` checks every setting");
            }
            *last = problem;
        }
    }

    async fn resolve(&self) -> Result<Context, MmError> {
        let me = self.client.me().await?;
        let route = self.settings.default_route();
        let target = self
            .resolve_route(
                &route,
                "PARLEY_MATTERMOST_TEAM",
                "PARLEY_MATTERMOST_CHANNEL",
            )
            .await?;
        // A public channel is found whether or not the bot is in it, but only a member may
        // post there and see who is: without this, parley would seem connected while no
        // request could ever be posted and no operator ever counted as present.
        if let Err(e) = self.client.channel_member(&target.channel_id, &me.id).await {
            return Err(match e.status() {
                Some(403 | 404) => not_in_channel(&me.username, &route),
                _ => e,
            });
        }
        self.targets
            .lock()
            .expect("targets lock")
            .insert(route, Arc::new(target.clone()));
        let max_post_size = self
            .client
            .client_config()
            .await
            .ok()
            .and_then(|c| c.get("MaxPostSize").and_then(|v| v.as_str()?.parse().ok()))
            .unwrap_or(4000);
        Ok(Context {
            bot_user_id: me.id,
            bot_username: me.username,
            team_id: target.team_id,
            team_name: target.team_name,
            requests_channel_id: target.channel_id,
            max_post_size,
        })
    }

    /// Looks up a team and its requests channel, with errors that say what to change
    /// (`team_setting`/`channel_setting` name where the names come from).
    async fn resolve_route(
        &self,
        route: &Route,
        team_setting: &str,
        channel_setting: &str,
    ) -> Result<Target, MmError> {
        let team = self.client.team_by_name(&route.team).await.map_err(|e| {
            explain(
                e,
                &format!(
                    "team `{}` not found, or the bot is not a member of it ({team_setting})",
                    route.team
                ),
            )
        })?;
        let channel = self
            .client
            .channel_by_name(&team.id, &route.channel, false)
            .await
            .map_err(|e| {
                explain(e, &format!(
                    "channel `{}` not found in team `{}`, or the bot is not a member of it ({channel_setting})",
                    route.channel, team.name
                ))
            })?;
        Ok(Target {
            team_id: team.id,
            team_name: team.name,
            channel_id: channel.id,
        })
    }

    /// A department's team and requests channel as ids, resolved once and then cached.
    pub async fn target(&self, route: &Route) -> Result<Arc<Target>, MmError> {
        if let Some(t) = self.targets.lock().expect("targets lock").get(route) {
            return Ok(t.clone());
        }
        let target = Arc::new(
            self.resolve_route(route, "the department's team", "the department's channel")
                .await?,
        );
        self.targets
            .lock()
            .expect("targets lock")
            .insert(route.clone(), target.clone());
        Ok(target)
    }

    /// Drops a cached route (its channel was not found any more), so it is resolved anew.
    pub fn forget_target(&self, route: &Route) {
        self.targets.lock().expect("targets lock").remove(route);
    }

    /// The cached user, if parley has seen it.
    pub fn cached_user(&self, id: &str) -> Option<User> {
        self.users.lock().expect("user cache").get(id).cloned()
    }

    /// Adds users fetched in bulk to the cache.
    pub fn cache_users(&self, users: Vec<User>) {
        let mut cache = self.users.lock().expect("user cache");
        if cache.len() + users.len() > 10_000 {
            cache.clear();
        }
        for u in users {
            cache.insert(u.id.clone(), u);
        }
    }

    /// The last check of Mattermost calling parley back; `None` before the first.
    pub fn callback_check(&self) -> Option<callback_check::CallbackCheck> {
        self.callback_check.lock().expect("check lock").clone()
    }

    /// Keeps a check's outcome, logging a change.
    pub fn set_callback_check(&self, check: callback_check::CallbackCheck) {
        let mut last = self.callback_check.lock().expect("check lock");
        if last.as_ref().map(|c| &c.problem) != Some(&check.problem) {
            match &check.problem {
                Some(p) => tracing::warn!(problem = %p, "the Accept button check failed: {p}"),
                None => tracing::info!("Mattermost can call parley back: the Accept button works"),
            }
        }
        *last = Some(check);
    }

    /// Why the server cannot be used, as last found (none once connected).
    pub fn problem(&self) -> Option<String> {
        self.last_problem.lock().expect("problem lock").clone()
    }

    /// Whether visitors should be offered a live chat: Mattermost is configured, resolved and
    /// its event stream is up (otherwise operators' replies could not reach the visitor).
    pub fn is_online(&self) -> bool {
        self.context.read().expect("context lock").is_some()
            && self.stream_connected.load(Ordering::Relaxed)
    }

    /// Whether parley has reached the server at least once, so chats can be queued for it
    /// even while the stream briefly reconnects.
    pub fn is_resolved(&self) -> bool {
        self.context.read().expect("context lock").is_some()
    }

    pub(crate) fn set_stream_connected(&self, up: bool) {
        self.stream_connected.store(up, Ordering::Relaxed);
        if up {
            self.ever_streamed.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the first connection attempt of this bridge is still under way: never up, no
    /// problem met yet, and put in force lately (a stream that keeps failing without a
    /// problem to name is "not connected" after [`CONNECTING_AT_MOST`]).
    pub fn is_connecting(&self) -> bool {
        !self.ever_streamed.load(Ordering::Relaxed)
            && self.last_problem.lock().expect("problem lock").is_none()
            && self.created.elapsed() < CONNECTING_AT_MOST
    }

    /// A user, from cache or the server.
    pub async fn user(&self, id: &str) -> Result<User, MmError> {
        if let Some(u) = self.users.lock().expect("user cache").get(id) {
            return Ok(u.clone());
        }
        let user = self.client.user(id).await?;
        let mut cache = self.users.lock().expect("user cache");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(id.to_owned(), user.clone());
        Ok(user)
    }

    /// Whether `post_id` is a live request post of `chat_id` with its Accept button: written by
    /// parley's bot, carrying the chat's id, not deleted or an edit's copy. Asked when an
    /// Accept click arrives before parley has recorded the id Mattermost gave that post.
    pub async fn is_request_post_of(&self, post_id: &str, chat_id: &str) -> Result<bool, MmError> {
        let context = self.context().await?;
        let post = match self.client.post(post_id).await {
            Ok(post) => post,
            // Deleted, unknown or out of the bot's sight (403 or 404): not that request.
            Err(e) if matches!(e.status(), Some(403 | 404)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let has_accept_button = post.props["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["actions"].as_array())
            .flatten()
            .any(|action| action["id"].as_str() == Some(format::ACCEPT_ACTION_ID));
        Ok(post.user_id == context.bot_user_id
            && post.delete_at == 0
            && post.props[format::CHAT_PROP].as_str() == Some(chat_id)
            && has_accept_button)
    }

    /// A user by username (without `@`), from the server; cached by id for later look-ups.
    pub async fn user_by_username(&self, username: &str) -> Result<User, MmError> {
        let user = self.client.user_by_username(username).await?;
        let mut cache = self.users.lock().expect("user cache");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(user.id.clone(), user.clone());
        Ok(user)
    }

    /// Shows the visitor as typing in a chat channel: handed to the event stream, which sends
    /// Mattermost's `user_typing` action. Dropped (returns false) while the stream is down or
    /// behind; typing is never queued.
    pub fn visitor_typing(&self, channel_id: &str) -> bool {
        if !self.stream_connected.load(Ordering::Relaxed) {
            return false;
        }
        self.typing_tx
            .try_send(Typing {
                channel_id: channel_id.to_owned(),
                at: Instant::now(),
            })
            .is_ok()
    }

    /// The receiving end of visitor typing, held by the one event stream task.
    pub(super) async fn typing_receiver(
        &self,
    ) -> tokio::sync::MutexGuard<'_, mpsc::Receiver<Typing>> {
        self.typing_rx.lock().await
    }

    /// Web link to a channel of the configured team.
    pub fn channel_link(&self, team_name: &str, channel_name: &str) -> String {
        format!(
            "{}/{team_name}/channels/{channel_name}",
            base(&self.settings.url)
        )
    }

    /// Web link (permalink) to a post, which Mattermost opens in its channel, highlighted.
    pub fn post_link(&self, team_name: &str, post_id: &str) -> String {
        format!("{}/{team_name}/pl/{post_id}", base(&self.settings.url))
    }
}

/// The bot is not a member of a requests channel: what to type, and where.
pub fn not_in_channel(bot: &str, route: &Route) -> MmError {
    MmError::Setup(format!(
        "the bot @{bot} is not a member of the requests channel ~{channel} (team `{team}`): \
         type `/invite @{bot}` in ~{channel}",
        channel = route.channel,
        team = route.team,
    ))
}

/// Replaces a bare "not found" with a message that says what to change.
fn explain(e: MmError, what: &str) -> MmError {
    match e {
        MmError::Api {
            status: 404 | 403,
            id,
            ..
        } => MmError::Api {
            status: 404,
            id,
            message: what.to_owned(),
        },
        other => other,
    }
}
