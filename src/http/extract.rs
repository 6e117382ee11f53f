//! Request extractors: JSON bodies whose every rejection becomes an `ApiError`, the client's
//! address, and the visitor's chat authenticated by its bearer token.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{
        ConnectInfo, FromRequest, FromRequestParts, Path, Request, rejection::JsonRejection,
    },
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::{
    http::state::AppState,
    http::{
        client_addr::client_addr,
        error::{ApiError, ErrorCode},
    },
    security::token_hash,
    storage::{chats::ChatRow, now_ms},
};

/// A JSON body; malformed, mistyped, oversized or non-UTF-8 bodies get clear API errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::new(ErrorCode::InvalidFields, field_problem(&e))
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            ErrorCode::InvalidJson,
            "the body is not valid JSON (or not valid UTF-8)",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        other => ApiError::new(ErrorCode::InvalidBody, other.body_text()),
    }
}

/// A fixed message naming the field, never serde's own text: that quotes the value sent
/// ("invalid type: string \"…\"") and unknown field names, which an error body must not echo.
fn field_problem(e: &axum::extract::rejection::JsonDataError) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(e) = cause.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            return describe_field_problem(&e.path().to_string(), &e.inner().to_string());
        }
        source = cause.source();
    }
    "a field is missing or has the wrong type".to_owned()
}

/// `path` is where serde was (`.` at the top), `serde_message` what went wrong there; only
/// names of parley's own fields (in "missing field `…`") are taken from the message.
fn describe_field_problem(path: &str, serde_message: &str) -> String {
    // A path is parley's field names and array indexes; a map key from the request would
    // be input, so a path with anything else is not quoted.
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    let place = if path == "." || path.is_empty() {
        "the body".to_owned()
    } else if !plain || path.len() > 100 {
        "a field".to_owned()
    } else {
        format!("`{path}`")
    };
    if let Some(rest) = serde_message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return format!("{place} lacks the required field `{field}`");
    }
    if serde_message.starts_with("unknown field") {
        return format!("{place} has a field that is not part of this request");
    }
    format!("{place} has the wrong type or value")
}

/// The client's address: the socket peer, or, behind trusted proxies, the address they saw
/// (see [`crate::http::client_addr`]).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Self(client_addr(
            peer,
            &parts.headers,
            &state.settings.proxy,
        )))
    }
}

/// The chat named in the path, after its bearer token was checked.
pub struct VisitorChat(pub ChatRow);

/// How stale a visitor's presence mark may be before a call with the token renews it.
const PRESENCE_MARK_EVERY_MS: i64 = 10_000;

impl FromRequestParts<AppState> for VisitorChat {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(params): Path<Vec<(String, String)>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("chat"))?;
        let id = params
            .into_iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v)
            .ok_or_else(|| ApiError::not_found("chat"))?;
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let chat = authenticate(state, &id, token).await?;
        // Any call with the token shows the visitor is here (see jobs::lifecycle). The timeout
        // is minutes, so the chat just read tells whether the mark is recent enough: no write
        // on every request.
        let now = now_ms();
        if now - chat.visitor_seen_at >= PRESENCE_MARK_EVERY_MS
            && let Err(e) = state.store.touch_visitor(&chat.id, now).await
        {
            tracing::warn!(error = %e, chat_id = %chat.id, "could not note the visitor's presence");
        }
        Ok(Self(chat))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks a visitor token against a chat. Chat ids are random UUIDs, so telling "unknown chat"
/// (404) from "wrong token" (401) gives nothing away and helps client authors.
pub async fn authenticate(
    state: &AppState,
    chat_id: &str,
    token: &str,
) -> Result<ChatRow, ApiError> {
    if chat_id.len() > 64 || token.is_empty() || token.len() > 256 {
        return Err(ApiError::unauthorized());
    }
    let chat = state
        .store
        .get_chat(chat_id)
        .await?
        .ok_or_else(|| ApiError::not_found("chat"))?;
    if chat.token_hash != token_hash(token) {
        return Err(ApiError::unauthorized());
    }
    Ok(chat)
}

#[cfg(test)]
mod tests {
    use super::describe_field_problem;

    #[test]
    fn field_problems_name_the_field_and_never_the_input() {
        assert_eq!(
            describe_field_problem(".", "missing field `message` at line 1 column 2"),
            "the body lacks the required field `message`"
        );
        assert_eq!(
            describe_field_problem(".", "unknown field `<script>`, expected one of `a`"),
            "the body has a field that is not part of this request"
        );
        assert_eq!(
            describe_field_problem("message", "invalid type: string \"secret\", expected i64"),
            "`message` has the wrong type or value"
        );
        assert_eq!(
            describe_field_problem("files[2].name", "invalid length"),
            "`files[2].name` has the wrong type or value"
        );
        assert_eq!(
            describe_field_problem("map.<img src=x>", "invalid type: null"),
            "a field has the wrong type or value"
        );
    }
}
