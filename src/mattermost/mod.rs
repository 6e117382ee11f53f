//! The Mattermost bridge: the one handle the rest of parley uses to reach Mattermost. It
//! resolves the configured team and requests channel, caches users, and knows whether the
//! server is reachable. The REST client, the event stream and the post formats live in the
//! submodules.

pub mod client;
pub mod files;
pub mod format;
pub mod stream;
pub mod wire;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::config::{MattermostSettings, base};
pub use client::{Client, MmError};
use wire::User;

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
    pub client: Client,
    settings: MattermostSettings,
    context: RwLock<Option<Arc<Context>>>,
    stream_connected: AtomicBool,
    users: Mutex<HashMap<String, User>>,
    last_problem: Mutex<Option<String>>,
}

impl Bridge {
    pub fn new(settings: MattermostSettings) -> Self {
        Self {
            client: Client::new(&base(&settings.url), settings.token.clone()),
            settings,
            context: RwLock::new(None),
            stream_connected: AtomicBool::new(false),
            users: Mutex::new(HashMap::new()),
            last_problem: Mutex::new(None),
        }
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
                tracing::warn!(problem = %p, "Mattermost is not usable yet; run `parley doctor` for details");
            }
            *last = problem;
        }
    }

    async fn resolve(&self) -> Result<Context, MmError> {
        let me = self.client.me().await?;
        let team = self.client.team_by_name(&self.settings.team).await.map_err(|e| {
            explain(e, &format!(
                "team `{}` not found, or the bot is not a member of it (PARLEY_MATTERMOST_TEAM)",
                self.settings.team
            ))
        })?;
        let channel = self
            .client
            .channel_by_name(&team.id, &self.settings.channel, false)
            .await
            .map_err(|e| {
                explain(e, &format!(
                    "channel `{}` not found in team `{}`, or the bot is not a member of it (PARLEY_MATTERMOST_CHANNEL)",
                    self.settings.channel, team.name
                ))
            })?;
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
            team_id: team.id,
            team_name: team.name,
            requests_channel_id: channel.id,
            max_post_size,
        })
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

    /// Web link to a channel of the configured team.
    pub fn channel_link(&self, team_name: &str, channel_name: &str) -> String {
        format!(
            "{}/{team_name}/channels/{channel_name}",
            base(&self.settings.url)
        )
    }
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
