//! The Mattermost REST API v4 client: one method per endpoint parley uses, errors classified
//! so callers know whether a retry can help. See ../shared/docs/mattermost-api.md.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use reqwest::{Method, RequestBuilder, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use super::wire::{
    AppError, Channel, ChannelMember, CreateChannel, NewPost, Post, PostList, PostPatch, Reaction,
    Status, Team, User,
};
use crate::metrics::Metrics;

/// A failed Mattermost call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MmError {
    /// The server answered with an error; `id` is Mattermost's stable error id.
    #[error("Mattermost answered {status} {id}: {message}")]
    Api {
        status: u16,
        id: String,
        message: String,
    },
    /// Rate limited: try again after the given time.
    #[error("Mattermost is rate limiting parley (retry after {retry_after:?})")]
    RateLimited { retry_after: Duration },
    /// The server could not be reached or did not answer in time.
    #[error("Mattermost is unreachable: {0}")]
    Unreachable(String),
    /// The answer was not what the API promises.
    #[error("unexpected answer from Mattermost: {0}")]
    Protocol(String),
    /// Mattermost works, but parley's place there is not set up (e.g. the bot is not in the
    /// requests channel); the message says what to do. Retried: an admin fixes it.
    #[error("{0}")]
    Setup(String),
}

impl MmError {
    /// Whether trying again later can succeed (outages, limits, server errors, a token being
    /// fixed). Other errors are the request's own fault.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status >= 500 || *status == 401 || *status == 408,
            Self::RateLimited { .. } | Self::Unreachable(_) | Self::Setup(_) => true,
            Self::Protocol(_) => false,
        }
    }

    /// Mattermost's error id, when it sent one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Api { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The error in a few words, for audit entries and reports: Mattermost's status and error
    /// id when it sent one, else the whole message.
    pub fn short(&self) -> String {
        match self {
            Self::Api { status, id, .. } if !id.is_empty() => format!("{status} {id}"),
            other => other.to_string(),
        }
    }

    /// Mattermost's error id in the text of an error as stored (this type's `Display`:
    /// `Mattermost answered 403 <id>: …`), e.g. a failed delivery's last error.
    pub fn id_in_text(text: &str) -> Option<&str> {
        let rest = text.strip_prefix("Mattermost answered ")?;
        let (_status, rest) = rest.split_once(' ')?;
        let id = rest.split(':').next()?.trim();
        (!id.is_empty()).then_some(id)
    }

    /// The user is not a member of the channel's team, so Mattermost will not add them to the
    /// channel (`app.team.get_member.missing.app_error`).
    pub fn is_not_team_member(&self) -> bool {
        self.id() == Some("app.team.get_member.missing.app_error")
    }

    /// The reason label of `parley_mattermost_request_errors_total`.
    fn metric_reason(&self) -> &'static str {
        match self {
            Self::Api { status, .. } if *status >= 500 => "status_5xx",
            Self::Api { .. } => "status_4xx",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unreachable(_) => "unreachable",
            Self::Protocol(_) => "protocol",
            Self::Setup(_) => "setup",
        }
    }
}

/// REST client bound to one server and token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api: String,
    token: SecretString,
    /// Where call times and failures are counted, if anywhere.
    metrics: Option<Metrics>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `base` is the server URL without `/api/v4`.
    pub fn new(base: &str, token: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            // The token goes to the server that was configured and nowhere else: a redirect
            // (to another host, port, scheme or path) is an answer, not an instruction.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds with static settings");
        Self {
            http,
            api: format!("{}/api/v4", base.trim_end_matches('/')),
            token,
            metrics: None,
        }
    }

    /// The same client, counting its calls in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The WebSocket URL of this server.
    pub fn websocket_url(&self) -> String {
        let ws = if let Some(rest) = self.api.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.api.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.api.clone()
        };
        format!("{ws}/websocket")
    }

    /// The bot token, for the WebSocket handshake.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// A request without the token.
    pub(super) fn anonymous_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.api))
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token.expose_secret()),
            )
    }

    pub(super) async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, MmError> {
        let (response, timing) = self.execute(request).await;
        let result = async {
            let response = Self::success(response?).await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|e| MmError::Unreachable(without_url(&e)))?;
            serde_json::from_slice(&bytes).map_err(|e| {
                MmError::Protocol(format!("its answer is not Mattermost's JSON ({e})"))
            })
        }
        .await;
        self.record(timing, result.as_ref().err());
        result
    }

    /// Sends a request; the timing goes to [`Client::record`] once the answer is read.
    pub(super) async fn execute(
        &self,
        request: RequestBuilder,
    ) -> (Result<reqwest::Response, MmError>, CallTiming) {
        let (http, request) = request.build_split();
        let endpoint = request
            .as_ref()
            .map(|r| endpoint(r.method(), r.url().path()))
            .unwrap_or_default();
        let timing = CallTiming {
            endpoint,
            started: Instant::now(),
        };
        let response = match request {
            Ok(request) => http.execute(request).await,
            Err(e) => Err(e),
        };
        let response = response.map_err(|e| MmError::Unreachable(without_url(&e)));
        (response, timing)
    }

    /// Counts a finished call in the metrics.
    pub(super) fn record(&self, timing: CallTiming, error: Option<&MmError>) {
        if let Some(metrics) = &self.metrics {
            metrics.mattermost_call(
                &timing.endpoint,
                timing.started.elapsed(),
                error.map(MmError::metric_reason),
            );
        }
    }

    /// Passes a successful response on and turns any other into an `MmError`.
    pub(super) async fn success(response: reqwest::Response) -> Result<reqwest::Response, MmError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_redirection() {
            let to = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere")
                .chars()
                .take(200)
                .collect::<String>();
            return Err(MmError::Protocol(format!(
                "it answers {status} with a redirect to {to}, which parley does not follow"
            )));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(MmError::RateLimited {
                retry_after: retry_after(response.headers()),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| MmError::Unreachable(without_url(&e)))?;
        // The body is normally an AppError, but proxies answer with HTML or plain text.
        let err: AppError = serde_json::from_slice(&bytes).unwrap_or(AppError {
            id: String::new(),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
        Err(MmError::Api {
            status: status.as_u16(),
            id: err.id,
            message: err.message,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, MmError> {
        self.send(self.request(Method::GET, path)).await
    }

    async fn with_body<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, MmError> {
        self.send(self.request(method, path).json(body)).await
    }

    /// `GET /users/me`: who the token belongs to.
    pub async fn me(&self) -> Result<User, MmError> {
        self.get("/users/me").await
    }

    /// `GET /users/{id}`.
    pub async fn user(&self, id: &str) -> Result<User, MmError> {
        self.get(&format!("/users/{}", seg(id))).await
    }

    /// `POST /users/ids`: the users with these ids (unknown ids are left out).
    pub async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>, MmError> {
        self.with_body(Method::POST, "/users/ids", &ids).await
    }

    /// `POST /users/status/ids`: statuses of these users (unknown ones come back `offline`;
    /// nothing at all when `ServiceSettings.EnableUserStatuses` is off).
    pub async fn statuses_by_ids(&self, ids: &[String]) -> Result<Vec<Status>, MmError> {
        self.with_body(Method::POST, "/users/status/ids", &ids)
            .await
    }

    /// `GET /channels/{id}/members?page=&per_page=` (at most 200 per page).
    pub async fn channel_members(
        &self,
        channel_id: &str,
        page: usize,
        per_page: usize,
    ) -> Result<Vec<ChannelMember>, MmError> {
        self.get(&format!(
            "/channels/{}/members?page={page}&per_page={per_page}",
            seg(channel_id)
        ))
        .await
    }

    /// `GET /channels/{id}/members/{user_id}` (`me` allowed): 404 when not a member.
    pub async fn channel_member(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<ChannelMember, MmError> {
        self.get(&format!(
            "/channels/{}/members/{}",
            seg(channel_id),
            seg(user_id)
        ))
        .await
    }

    /// `GET /users/username/{username}`.
    pub async fn user_by_username(&self, username: &str) -> Result<User, MmError> {
        self.get(&format!("/users/username/{}", seg(username)))
            .await
    }

    /// `GET /posts/{id}/reactions`: every reaction on a post.
    pub async fn reactions(&self, post_id: &str) -> Result<Vec<Reaction>, MmError> {
        // The server answers `null` rather than `[]` for a post without reactions.
        let list: Option<Vec<Reaction>> = self
            .get(&format!("/posts/{}/reactions", seg(post_id)))
            .await?;
        Ok(list.unwrap_or_default())
    }

    /// `GET /teams/name/{name}`.
    pub async fn team_by_name(&self, name: &str) -> Result<Team, MmError> {
        self.get(&format!("/teams/name/{}", seg(name))).await
    }

    /// `GET /teams/{team_id}/channels/name/{name}?include_deleted=`.
    pub async fn channel_by_name(
        &self,
        team_id: &str,
        name: &str,
        include_deleted: bool,
    ) -> Result<Channel, MmError> {
        self.get(&format!(
            "/teams/{}/channels/name/{}?include_deleted={include_deleted}",
            seg(team_id),
            seg(name)
        ))
        .await
    }

    /// `POST /channels`.
    pub async fn create_channel(&self, body: &CreateChannel<'_>) -> Result<Channel, MmError> {
        self.with_body(Method::POST, "/channels", body).await
    }

    /// `POST /channels/{id}/members` (idempotent on the server).
    pub async fn add_channel_member(&self, channel_id: &str, user_id: &str) -> Result<(), MmError> {
        let _: serde_json::Value = self
            .with_body(
                Method::POST,
                &format!("/channels/{}/members", seg(channel_id)),
                &json!({ "user_id": user_id }),
            )
            .await?;
        Ok(())
    }

    /// `POST /posts`.
    pub async fn create_post(&self, post: &NewPost<'_>) -> Result<Post, MmError> {
        self.with_body(Method::POST, "/posts?set_online=false", post)
            .await
    }

    /// `GET /posts/{id}` (deleted and unknown posts answer 403 on a real server).
    pub async fn post(&self, id: &str) -> Result<Post, MmError> {
        self.get(&format!("/posts/{}", seg(id))).await
    }

    /// `PUT /posts/{id}/patch`.
    pub async fn patch_post(&self, id: &str, patch: &PostPatch<'_>) -> Result<Post, MmError> {
        self.with_body(Method::PUT, &format!("/posts/{}/patch", seg(id)), patch)
            .await
    }

    /// `GET /channels/{id}/posts?since=`: posts created or changed after `since` (ms).
    pub async fn posts_since(&self, channel_id: &str, since: i64) -> Result<PostList, MmError> {
        self.get(&format!(
            "/channels/{}/posts?since={since}",
            seg(channel_id)
        ))
        .await
    }

    /// `GET /config/client?format=old`: the public configuration (e.g. `MaxPostSize`).
    pub async fn client_config(&self) -> Result<HashMap<String, serde_json::Value>, MmError> {
        self.get("/config/client?format=old").await
    }

    /// `DELETE /channels/{id}`: archives the channel, or with `permanent` (`?permanent=true`)
    /// deletes it for good, which the server allows only with
    /// `ServiceSettings.EnableAPIChannelDeletion` (otherwise 401, see
    /// [`MmError::is_permanent_deletion_disabled`]).
    pub async fn delete_channel(&self, id: &str, permanent: bool) -> Result<(), MmError> {
        let query = if permanent { "?permanent=true" } else { "" };
        let _: serde_json::Value = self
            .send(self.request(Method::DELETE, &format!("/channels/{}{query}", seg(id))))
            .await?;
        Ok(())
    }
}

/// A call in progress: what it is (for the metrics) and when it started.
#[derive(Debug)]
pub(super) struct CallTiming {
    endpoint: String,
    started: Instant,
}

/// The method and path template of a call, with ids and names replaced, so the metrics have a
/// few series per endpoint rather than one per channel: `GET /channels/{id}/posts`.
fn endpoint(method: &Method, path: &str) -> String {
    let path = path.split_once("/api/v4").map_or(path, |(_, rest)| rest);
    let mut template = String::new();
    let mut after_name = false;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        template.push('/');
        let is_id = segment.len() == 26
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if after_name {
            template.push_str("{name}");
        } else if is_id {
            template.push_str("{id}");
        } else {
            template.push_str(segment);
        }
        after_name = segment == "name" && !after_name;
    }
    format!("{method} {template}")
}

/// Percent-encodes one path segment (names come from configuration).
pub(super) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Reads `Retry-After` (seconds), falling back to `X-RateLimit-Reset` (also seconds, despite
/// the spec's wording) and then to one second.
fn retry_after(headers: &header::HeaderMap) -> Duration {
    ["retry-after", "x-ratelimit-reset"]
        .iter()
        .find_map(|name| {
            headers
                .get(*name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|s| Duration::from_secs(s.clamp(1, 3600)))
        .unwrap_or(Duration::from_secs(1))
}

/// reqwest errors print the URL; ours carry no secrets, but keep messages short and stable.
pub(super) fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, id: &str) -> MmError {
        MmError::Api {
            status,
            id: id.into(),
            message: "You do not have the appropriate permissions.".into(),
        }
    }

    #[test]
    fn the_error_id_is_read_back_from_the_stored_text() {
        let stored = api(403, "api.context.permissions.app_error").to_string();
        assert_eq!(
            MmError::id_in_text(&stored),
            Some("api.context.permissions.app_error")
        );
        assert_eq!(
            MmError::id_in_text(
                "Mattermost answered 403 api.context.permissions.app_error: You do not …"
            ),
            Some("api.context.permissions.app_error")
        );
        assert_eq!(MmError::id_in_text(&api(502, "").to_string()), None);
        assert_eq!(MmError::id_in_text("unreadable task"), None);
        assert_eq!(
            MmError::id_in_text(&MmError::Unreachable("timed out".into()).to_string()),
            None
        );
    }

    #[test]
    fn short_names_the_id_when_there_is_one() {
        assert_eq!(
            api(404, "app.channel.get.existing.app_error").short(),
            "404 app.channel.get.existing.app_error"
        );
        assert_eq!(
            api(404, "").short(),
            "Mattermost answered 404 : You do not have the appropriate permissions."
        );
        assert_eq!(
            MmError::Unreachable("timed out".into()).short(),
            "Mattermost is unreachable: timed out"
        );
    }

    #[test]
    fn not_a_team_member_is_recognised() {
        assert!(api(400, "app.team.get_member.missing.app_error").is_not_team_member());
        assert!(!api(403, "api.context.permissions.app_error").is_not_team_member());
        assert!(!MmError::Unreachable("refused".into()).is_not_team_member());
    }

    #[test]
    fn endpoints_are_templates_without_ids_or_names() {
        let id = "abcdefghijklmnopqrstuvwxyz";
        let cases = [
            (Method::GET, "/api/v4/users/me".to_owned(), "GET /users/me"),
            (Method::POST, "/api/v4/posts".to_owned(), "POST /posts"),
            (
                Method::GET,
                format!("/mm/api/v4/channels/{id}/posts"),
                "GET /channels/{id}/posts",
            ),
            (
                Method::GET,
                format!("/api/v4/teams/{id}/channels/name/chat-requests"),
                "GET /teams/{id}/channels/name/{name}",
            ),
            (
                Method::GET,
                "/api/v4/teams/name/support".to_owned(),
                "GET /teams/name/{name}",
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(endpoint(&method, &path), expected, "{path}");
        }
    }
}
