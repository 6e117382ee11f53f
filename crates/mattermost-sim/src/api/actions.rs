//! `POST /posts/{post_id}/actions/{action_id}`: interactive button clicks, which the
//! sim forwards to the action's `integration.url` and whose answer it applies.
//!
//! No state lock is held while the integration is called, so simultaneous clicks
//! reach the integration concurrently, as on a real server.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

use crate::Shared;
use crate::api::posts::post_not_found;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, json_response};
use crate::model::{Post, new_id};
use crate::ssrf;
use crate::state::PostUpdate;
use crate::validate::slack_links_to_markdown;

/// `ServiceSettings.OutgoingIntegrationRequestsTimeout` default.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Props an integration's `update` cannot drop.
const RETAINED_PROPS: [&str; 3] = ["from_webhook", "override_username", "override_icon_url"];

fn integration_error() -> ApiError {
    ApiError::new(
        400,
        "api.post.do_action.action_integration.app_error",
        "Action integration error.",
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ClickBody {
    selected_option: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IntegrationResponse {
    update: Option<UpdateBody>,
    ephemeral_text: String,
    skip_slack_parsing: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UpdateBody {
    message: String,
    props: Option<Map<String, Value>>,
    file_ids: Option<Vec<String>>,
    is_pinned: bool,
}

/// What is captured under the lock before the integration is called.
struct Click {
    url: String,
    body: Value,
    original: Post,
    trigger_id: String,
    allowed: String,
}

pub async fn do_action(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path((post_id, action_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    // The real route only matches `[A-Za-z0-9]+`; anything else is an unknown route.
    if action_id.is_empty() || !action_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found_route());
    }
    // A malformed body is only logged by the real server.
    let click: ClickBody = serde_json::from_slice(&body).unwrap_or_default();
    let click = prepare(&shared, &caller, &post_id, &action_id, click)?;

    let url = url::Url::parse(&click.url).map_err(|_| integration_error())?;
    ssrf::check_destination(&url, &click.allowed)
        .await
        .map_err(|_| integration_error())?;
    let result = shared
        .integration_client
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("User-Agent", "Mattermost-Bot/1.1")
        .body(click.body.to_string())
        .send()
        .await;
    let (status, resp_body) = match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.bytes().await.unwrap_or_default())
        }
        Err(_) => (0, Bytes::new()),
    };
    let mut recorded = click.body.clone();
    recorded["response_status"] = json!(status);
    shared.lock().integration_requests.push(recorded);
    if status != 200 {
        return Err(integration_error());
    }
    let response: IntegrationResponse = if resp_body.iter().all(u8::is_ascii_whitespace) {
        IntegrationResponse::default()
    } else {
        serde_json::from_slice(&resp_body).map_err(|_| integration_error())?
    };

    let mut st = shared.lock();
    if let Some(update) = response.update {
        let props = match update.props {
            // Absent props: the post keeps the props it had when clicked.
            None => click.original.props.clone(),
            Some(mut props) => {
                for key in RETAINED_PROPS {
                    match click.original.props.get(key) {
                        Some(v) => {
                            props.insert(key.into(), v.clone());
                        }
                        None => {
                            props.remove(key);
                        }
                    }
                }
                props
            }
        };
        st.update_post(
            &post_id,
            PostUpdate {
                message: update.message,
                props,
                file_ids: update.file_ids,
                is_pinned: update.is_pinned,
            },
        )?;
    }
    if !response.ephemeral_text.is_empty() {
        let text = if response.skip_slack_parsing {
            response.ephemeral_text
        } else {
            slack_links_to_markdown(&response.ephemeral_text)
        };
        let mut eph = Post::new(
            &caller.id,
            &click.original.channel_id,
            &text,
            "system_ephemeral",
        );
        eph.root_id = if click.original.root_id.is_empty() {
            click.original.id.clone()
        } else {
            click.original.root_id.clone()
        };
        for key in RETAINED_PROPS {
            if let Some(v) = click.original.props.get(key) {
                eph.props.insert(key.into(), v.clone());
            }
        }
        st.send_ephemeral(&caller.id, &eph);
    }
    Ok(json_response(
        200,
        json!({"status": "OK", "trigger_id": click.trigger_id}),
    ))
}

/// Checks the click and builds the integration request body
/// (`PostActionIntegrationRequest`) under the lock.
fn prepare(
    shared: &Shared,
    caller: &crate::model::User,
    post_id: &str,
    action_id: &str,
    click: ClickBody,
) -> ApiResult<Click> {
    let st = shared.lock();
    let post = st
        .posts
        .get(post_id)
        .filter(|p| p.delete_at == 0)
        .cloned()
        .ok_or_else(post_not_found)?;
    let channel = st
        .channels
        .get(&post.channel_id)
        .cloned()
        .ok_or_else(post_not_found)?;
    if !st.can_read_channel(caller, &channel) {
        return Err(ApiError::forbidden());
    }
    let action_not_found = || {
        ApiError::new(
            404,
            "api.post.do_action.action_id.app_error",
            "Invalid action id.",
        )
    };
    let action = post.find_action(action_id).ok_or_else(action_not_found)?;
    let integration = action
        .get("integration")
        .filter(|i| i.is_object())
        .ok_or_else(action_not_found)?;
    let url = integration
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let action_type = action
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut context = integration.get("context").cloned().unwrap_or(Value::Null);
    let mut data_source = "";
    if action_type == "select" {
        data_source = action
            .get("data_source")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !context.is_object() {
            context = json!({});
        }
        context["selected_option"] = json!(click.selected_option);
    }
    let team_name = st
        .teams
        .get(&channel.team_id)
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let trigger_id = new_id();
    let mut body = json!({
        "user_id": caller.id,
        "user_name": caller.username,
        "channel_id": channel.id,
        "channel_name": channel.name,
        "team_id": channel.team_id,
        "team_domain": team_name,
        "post_id": post.id,
        "trigger_id": trigger_id,
        "type": action_type,
        "data_source": data_source,
    });
    // `context` is `omitempty` in the real request type.
    if !context.is_null() {
        body["context"] = context;
    }
    Ok(Click {
        url,
        body,
        original: post,
        trigger_id,
        allowed: st.config.allowed_untrusted_internal_connections.clone(),
    })
}
