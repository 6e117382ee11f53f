//! HTTP plumbing: the router, authentication of callers, fault-injection/logging
//! middleware and small response helpers shared by the API handlers.

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;

use crate::api::{actions, channels, files, posts, reactions, system, teams, users};
use crate::error::{ApiError, ApiResult};
use crate::model::User;
use crate::ws;
use crate::{HELPER_HEADER, Shared};

pub fn router(shared: Shared) -> Router {
    let api = Router::new()
        .route("/users/status/ids", post(users::statuses_by_ids))
        .route("/users/ids", post(users::users_by_ids))
        .route("/users/username/{username}", get(users::get_by_username))
        .route("/users/{user_id}", get(users::get_user))
        .route("/users/{user_id}/teams", get(teams::teams_for_user))
        .route("/teams/name/{name}", get(teams::get_team_by_name))
        .route(
            "/teams/name/{team_name}/channels/name/{channel_name}",
            get(channels::get_by_team_name_and_name),
        )
        .route("/teams/{team_id}", get(teams::get_team))
        .route(
            "/teams/{team_id}/members/{user_id}",
            get(teams::team_member),
        )
        .route(
            "/teams/{team_id}/channels/name/{channel_name}",
            get(channels::get_by_name),
        )
        .route("/teams/{team_id}/channels/search", post(channels::search))
        .route("/channels", post(channels::create))
        .route(
            "/channels/{channel_id}",
            get(channels::get).delete(channels::delete),
        )
        .route("/channels/{channel_id}/patch", put(channels::patch))
        .route(
            "/channels/{channel_id}/members",
            get(channels::members).post(channels::add_member),
        )
        .route(
            "/channels/{channel_id}/members/{user_id}",
            get(channels::member),
        )
        .route("/channels/{channel_id}/posts", get(posts::for_channel))
        .route("/posts", post(posts::create))
        .route("/posts/ephemeral", post(posts::create_ephemeral))
        .route("/posts/{post_id}", get(posts::get).delete(posts::delete))
        .route("/posts/{post_id}/patch", put(posts::patch))
        .route("/posts/{post_id}/reactions", get(reactions::for_post))
        .route("/reactions", post(reactions::save))
        .route(
            "/posts/{post_id}/actions/{action_id}",
            post(actions::do_action),
        )
        .route("/files", post(files::upload))
        .route("/files/{file_id}", get(files::get_file))
        .route("/files/{file_id}/info", get(files::get_info))
        .route("/config/client", get(system::client_config))
        .route("/system/ping", get(system::ping))
        .route("/websocket", get(ws::socket::upgrade))
        .route("/websocket/", get(ws::socket::upgrade))
        .fallback(|| async { ApiError::not_found_route() });
    Router::new()
        .nest("/api/v4", api)
        .fallback(|| async { ApiError::not_found_route() })
        // File size limits are enforced by the handler with Mattermost's own error.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            faults_and_log,
        ))
        .with_state(shared)
}

fn is_websocket_path(path: &str) -> bool {
    path.trim_end_matches('/') == "/api/v4/websocket"
}

enum Verdict {
    Pass,
    Down,
    Fail(u16),
    RateLimited(u64),
    /// A proxy's 404: plain text, not Mattermost's.
    Bare404,
}

/// Applies injected faults, the configured delay, and records the request.
/// Requests made by the sim's own test helpers (marked with `HELPER_HEADER`) are
/// neither failed, rate limited, delayed nor logged, but do see the server down.
async fn faults_and_log(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let helper = req.headers().contains_key(HELPER_HEADER);
    let websocket = is_websocket_path(&path);
    let creates_post = req.method() == axum::http::Method::POST && path == "/api/v4/posts";
    let (verdict, delay, version, mut hold) = {
        let mut st = shared.lock();
        let f = &mut st.faults;
        let hold = f
            .hold_post_answers
            .as_ref()
            .filter(|held| creates_post && !helper && *held.borrow())
            .map(|held| held.subscribe());
        let verdict = if f.down || (websocket && f.websockets_down) {
            Verdict::Down
        } else if helper || websocket {
            Verdict::Pass
        } else if f.rate_limit_next > 0 {
            f.rate_limit_next -= 1;
            Verdict::RateLimited(f.retry_after_secs)
        } else if let Some(left) = f
            .bare_404
            .get_mut(&(method.clone(), path_and_query.clone()))
            .filter(|left| **left > 0)
        {
            *left -= 1;
            Verdict::Bare404
        } else if f.fail_next > 0 {
            f.fail_next -= 1;
            Verdict::Fail(f.fail_status)
        } else {
            Verdict::Pass
        };
        (verdict, f.delay, st.full_version(), hold)
    };
    let mut resp = match verdict {
        Verdict::Pass => next.run(req).await,
        Verdict::Down => ApiError::new(
            503,
            "sim.server_down",
            "The server is unavailable (simulated outage).",
        )
        .into_response(),
        Verdict::Fail(status) => ApiError::new(
            status,
            "sim.injected_failure",
            "Injected failure from the Mattermost simulator.",
        )
        .into_response(),
        Verdict::RateLimited(secs) => rate_limited(secs),
        Verdict::Bare404 => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    };
    if !helper && !websocket && !delay.is_zero() {
        // After the handler ran: the effect happens, only the answer is late, which is
        // what a slow server looks like to a client that times out.
        tokio::time::sleep(delay).await;
    }
    if let Some(held) = hold.as_mut() {
        // Released (or the sender dropped): answer now.
        let _ = held.wait_for(|held| !held).await;
    }
    if creates_post && !helper && shared.lock().faults.lose_post_answers {
        resp = (StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n").into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&version) {
        resp.headers_mut().insert("X-Version-Id", v);
    }
    if !helper {
        shared
            .lock()
            .request_log
            .push((method, path, resp.status().as_u16()));
    }
    resp
}

/// The real rate limiter's answer: plain text, with seconds in every header.
fn rate_limited(secs: u64) -> Response {
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, "limit exceeded\n").into_response();
    let h = resp.headers_mut();
    h.insert(
        "Content-Type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert("Retry-After", HeaderValue::from(secs));
    h.insert("X-RateLimit-Limit", HeaderValue::from(100u64));
    h.insert("X-RateLimit-Remaining", HeaderValue::from(0u64));
    h.insert("X-RateLimit-Reset", HeaderValue::from(secs));
    resp
}

/// The token of a request, looked up like `ParseAuthTokenFromRequest`: the
/// `MMAUTHTOKEN` cookie first, then `Authorization: Bearer|Token`, then `?access_token=`.
pub fn request_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    for cookie in headers.get_all("cookie") {
        let Ok(cookie) = cookie.to_str() else {
            continue;
        };
        for pair in cookie.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == "MMAUTHTOKEN"
                && !v.is_empty()
            {
                return Some(v.to_owned());
            }
        }
    }
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let auth = auth.trim();
        if let Some((scheme, token)) = auth.split_once(' ')
            && (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
            && !token.trim().is_empty()
        {
            return Some(token.trim().to_owned());
        }
    }
    query_params(query).remove("access_token")
}

pub fn query_params(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The authenticated user of a request; 401 `api.context.session_expired.app_error`
/// when the token is missing or unknown.
pub struct Caller(pub User);

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Shared) -> Result<Self, ApiError> {
        let token = request_token(&parts.headers, parts.uri.query())
            .ok_or_else(ApiError::session_expired)?;
        let user = shared.lock().user_by_token(&token);
        user.map(Caller).ok_or_else(ApiError::session_expired)
    }
}

pub fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, axum::Json(body)).into_response()
}

pub fn status_ok() -> Response {
    json_response(200, serde_json::json!({"status": "OK"}))
}

/// Decodes a JSON body, answering 400 `api.context.invalid_body_param.app_error`.
pub fn parse_body<T: DeserializeOwned>(body: &[u8], name: &str) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|_| ApiError::invalid_body(name))
}
