//! `/config/client` and `/system/ping`: unauthenticated server information.

use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::json;
use std::collections::HashMap;

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::http::json_response;

/// `GET /config/client?format=old`: a flat map of strings.
pub async fn client_config(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    if q.get("format").map(String::as_str) != Some("old") {
        return Err(ApiError::new(
            501,
            "api.config.client.old_format.app_error",
            "New format for the client configuration is not supported yet. Please specify format=old in the query string.",
        ));
    }
    let st = shared.lock();
    let c = &st.config;
    Ok(json_response(
        200,
        json!({
            "Version": c.server_version,
            "BuildNumber": c.server_version,
            "BuildHash": "sim",
            "BuildEnterpriseReady": "false",
            "SiteName": "Mattermost",
            "SiteURL": shared.base_url,
            "MaxPostSize": c.max_post_size.to_string(),
            "MaxFileSize": c.max_file_size.to_string(),
            "EnableFileAttachments": c.enable_file_attachments.to_string(),
            "EnableBotAccountCreation": "false",
            "EnableUserAccessTokens": "false",
            "EnablePostUsernameOverride": "false",
            "EnablePostIconOverride": "false",
            "EnableReliableWebSockets": "true",
            "DiagnosticId": "",
            "TelemetryId": "",
        }),
    ))
}

/// `GET /system/ping`.
pub async fn ping(State(shared): State<Shared>) -> Response {
    let version = shared.lock().config.server_version.clone();
    json_response(
        200,
        json!({"status": "OK", "ActiveSearchBackend": "database", "version": version}),
    )
}
