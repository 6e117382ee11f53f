//! Mattermost's `AppError` JSON error body and the handler error type that renders it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::model::new_id;

/// An error answered to a REST client as `{id, message, detailed_error, request_id, status_code}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub id: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, id: &str, message: &str) -> Self {
        Self {
            status,
            id: id.to_owned(),
            message: message.to_owned(),
        }
    }

    /// 401 for a missing, unknown or expired token (what the real server answers for both).
    pub fn session_expired() -> Self {
        Self::new(
            401,
            "api.context.session_expired.app_error",
            "Invalid or expired session, please login again.",
        )
    }

    /// 403 with the generic permission id every `SetPermissionError` produces.
    pub fn forbidden() -> Self {
        Self::new(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        )
    }

    pub fn invalid_body(name: &str) -> Self {
        Self::new(
            400,
            "api.context.invalid_body_param.app_error",
            &format!("Invalid or missing {name} in request body."),
        )
    }

    pub fn invalid_param(name: &str) -> Self {
        Self::new(
            400,
            "api.context.invalid_param.app_error",
            &format!("Invalid {name} parameter."),
        )
    }

    /// The answer for routes the server does not know (also for malformed action ids,
    /// which never match the real router's `[A-Za-z0-9]+` pattern).
    pub fn not_found_route() -> Self {
        Self::new(
            404,
            "api.context.404.app_error",
            "Sorry, we could not find the page.",
        )
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "message": self.message,
            // Blank unless EnableDeveloper, which a stock server does not set.
            "detailed_error": "",
            "request_id": new_id(),
            "status_code": self.status,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
