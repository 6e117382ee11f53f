//! The JSON error of the visitor API and the Mattermost callback: a stable machine `code`, a
//! human `message`, optionally the `field` at fault, and the `request_id` to quote. Internal
//! details are logged, never sent.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    domain::input::{FieldCode, FieldError},
    http::request_id,
    storage::StoreError,
};

/// Declares [`ErrorCode`] from one table, so that the spelling, the status and the list of
/// all codes (checked against `assets/openapi.json`) cannot drift apart.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $status:ident;)*) => {
        /// The stable machine codes of parley's errors: part of the API, never renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status every response with this code has. The live socket's codes
            /// are never HTTP responses: theirs mirror the close code (`4000 + status`).
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    // A field of the request: `field` names it.
    MessageRequired = "message_required", BAD_REQUEST;
    MessageTooLong = "message_too_long", UNPROCESSABLE_ENTITY;
    FieldTooLong = "field_too_long", UNPROCESSABLE_ENTITY;
    InvalidCharacters = "invalid_characters", BAD_REQUEST;
    InvalidEncoding = "invalid_encoding", BAD_REQUEST;
    EmailInvalid = "email_invalid", BAD_REQUEST;
    EmailRequired = "email_required", BAD_REQUEST;
    UrlInvalid = "url_invalid", BAD_REQUEST;
    PhoneInvalid = "phone_invalid", BAD_REQUEST;
    DepartmentInvalid = "department_invalid", BAD_REQUEST;
    // The request as a whole.
    InvalidJson = "invalid_json", BAD_REQUEST;
    InvalidFields = "invalid_fields", UNPROCESSABLE_ENTITY;
    InvalidBody = "invalid_body", BAD_REQUEST;
    InvalidQuery = "invalid_query", BAD_REQUEST;
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE;
    // Who asks, and for what.
    Unauthorized = "unauthorized", UNAUTHORIZED;
    /// The Mattermost callback: a button parley did not sign, or a bot.
    Forbidden = "forbidden", FORBIDDEN;
    OriginNotAllowed = "origin_not_allowed", FORBIDDEN;
    NotFound = "not_found", NOT_FOUND;
    ChatClosed = "chat_closed", CONFLICT;
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    Offline = "offline", SERVICE_UNAVAILABLE;
    // Files.
    MultipartRequired = "multipart_required", UNSUPPORTED_MEDIA_TYPE;
    InvalidMultipart = "invalid_multipart", BAD_REQUEST;
    RequestTooLarge = "request_too_large", PAYLOAD_TOO_LARGE;
    FileRequired = "file_required", UNPROCESSABLE_ENTITY;
    FileEmpty = "file_empty", UNPROCESSABLE_ENTITY;
    FileTooLarge = "file_too_large", PAYLOAD_TOO_LARGE;
    FileTypeNotAllowed = "file_type_not_allowed", UNSUPPORTED_MEDIA_TYPE;
    TooManyFiles = "too_many_files", UNPROCESSABLE_ENTITY;
    UnknownPart = "unknown_part", UNPROCESSABLE_ENTITY;
    ChatFilesLimit = "chat_files_limit", PAYLOAD_TOO_LARGE;
    StorageFull = "storage_full", INSUFFICIENT_STORAGE;
    DailyUploadLimit = "daily_upload_limit", INSUFFICIENT_STORAGE;
    InvalidLink = "invalid_link", FORBIDDEN;
    // The live socket.
    TooManySockets = "too_many_sockets", TOO_MANY_REQUESTS;
    TooManyPending = "too_many_pending", SERVICE_UNAVAILABLE;
    /// A plain request for the socket's address (no WebSocket upgrade).
    WebsocketRequired = "websocket_required", BAD_REQUEST;
    /// Sent on the socket only: a newer socket of the chat took this one's place (close 4409).
    Replaced = "replaced", CONFLICT;
    /// Sent on the socket only: it fell too far behind the chat's events (close 4408).
    Lagged = "lagged", REQUEST_TIMEOUT;
    // Ours.
    Internal = "internal", INTERNAL_SERVER_ERROR;
}

impl From<FieldCode> for ErrorCode {
    fn from(code: FieldCode) -> Self {
        match code {
            FieldCode::MessageRequired => Self::MessageRequired,
            FieldCode::MessageTooLong => Self::MessageTooLong,
            FieldCode::FieldTooLong => Self::FieldTooLong,
            FieldCode::InvalidCharacters => Self::InvalidCharacters,
            FieldCode::EmailInvalid => Self::EmailInvalid,
            FieldCode::PhoneInvalid => Self::PhoneInvalid,
            FieldCode::UrlInvalid => Self::UrlInvalid,
        }
    }
}

/// An API error response; its status is its code's.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<&'static str>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A refusal of one request field.
    pub fn field(code: ErrorCode, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(code, message)
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "a valid chat token is required (Authorization: Bearer <token>)",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn chat_closed() -> Self {
        Self::new(
            ErrorCode::ChatClosed,
            "this chat has ended; start a new one",
        )
    }

    pub fn rate_limited(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                ErrorCode::RateLimited,
                "too many requests; please wait a moment",
            )
        }
    }

    /// Logs the cause with its chain and answers an opaque 500.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error.cause_chain = %chain, "internal error");
        Self::new(
            ErrorCode::Internal,
            "something went wrong on our side; please try again",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::field(e.code.into(), e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("chat"),
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code.as_str(), "message": self.message } });
        if let Some(field) = self.field {
            body["error"]["field"] = json!(field);
        }
        if let Some(id) = request_id::current() {
            body["error"]["request_id"] = json!(id);
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs.to_string()).expect("digits are a valid header"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn ours() -> BTreeSet<&'static str> {
        ErrorCode::ALL.iter().map(|c| c.as_str()).collect()
    }

    #[test]
    fn codes_are_distinct_snake_case_words() {
        assert_eq!(
            ours().len(),
            ErrorCode::ALL.len(),
            "a code is spelled twice"
        );
        for code in ours() {
            assert!(
                !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
    }

    /// The document is the contract clients code against: a code parley answers must be in
    /// it, and a code it lists must be one parley can answer.
    #[test]
    fn the_openapi_document_lists_exactly_our_error_codes() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/openapi.json")).unwrap();
        let schemas = &doc["components"]["schemas"];
        let documented: BTreeSet<&str> = schemas["ErrorCode"]["enum"]
            .as_array()
            .expect("components.schemas.ErrorCode.enum lists the codes")
            .iter()
            .map(|c| c.as_str().expect("codes are strings"))
            .collect();
        let undocumented: Vec<_> = ours().difference(&documented).copied().collect();
        let unknown: Vec<_> = documented.difference(&ours()).copied().collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "assets/openapi.json differs from ErrorCode: not documented {undocumented:?}, \
             documented but not answered {unknown:?}"
        );
        // Both places codes are sent refer to that one list.
        let code_ref = json!({ "$ref": "#/components/schemas/ErrorCode" });
        assert_eq!(
            schemas["Error"]["properties"]["error"]["properties"]["code"],
            code_ref
        );
        let live_error = schemas["LiveEvent"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["properties"]["type"]["const"] == "error")
            .expect("the live socket's error frame is documented");
        assert_eq!(live_error["properties"]["code"], code_ref);
    }

    #[test]
    fn the_api_guide_names_every_error_code() {
        let guide = include_str!("../../docs/api.md");
        let missing: Vec<_> = ours()
            .into_iter()
            .filter(|code| !guide.contains(&format!("`{code}`")))
            .collect();
        assert!(missing.is_empty(), "docs/api.md does not name {missing:?}");
    }

    #[test]
    fn field_errors_keep_their_codes_and_statuses() {
        let cases = [
            (FieldCode::MessageRequired, "message_required", 400),
            (FieldCode::MessageTooLong, "message_too_long", 422),
            (FieldCode::FieldTooLong, "field_too_long", 422),
            (FieldCode::InvalidCharacters, "invalid_characters", 400),
            (FieldCode::EmailInvalid, "email_invalid", 400),
            (FieldCode::PhoneInvalid, "phone_invalid", 400),
            (FieldCode::UrlInvalid, "url_invalid", 400),
        ];
        for (field_code, code, status) in cases {
            let error = ApiError::from(FieldError {
                field: "text",
                code: field_code,
                message: "m".into(),
            });
            assert_eq!(
                (error.code.as_str(), error.status().as_u16()),
                (code, status)
            );
            assert_eq!(error.field, Some("text"));
        }
    }
}
