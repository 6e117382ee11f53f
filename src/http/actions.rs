//! `POST /mattermost/actions`: Mattermost's call when an operator clicks Accept. Mattermost
//! does not sign these calls, so each button carries an HMAC of its chat id in `context`,
//! which Mattermost never shows to clients (mattermost-api.md §4), and the callback must name
//! the chat's stored request post. Values from the call are logged with `?` (escaped).

use axum::{Json, extract::State, response::IntoResponse};
use serde_json::Value;

use crate::{
    app::chats,
    domain::ChatStatus,
    http::state::AppState,
    http::{
        error::{ApiError, ErrorCode},
        extract::ApiJson,
    },
    mattermost::{
        callback_check::CHECK_ACTION,
        format,
        wire::{ActionCallback, ActionResponse, PostUpdate},
    },
    storage::chats::{AcceptOutcome, Operator},
};

/// Handles a button click.
pub async fn handle_action(
    State(state): State<AppState>,
    ApiJson(call): ApiJson<ActionCallback>,
) -> Result<impl IntoResponse, ApiError> {
    let context = &call.context;
    let action = context
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let chat_id = context
        .get("chat_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let signature = context
        .get("signature")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // parley's own check that Mattermost can call it back (`callback_check`): a signed nonce
    // answers 200 and nothing else happens.
    if action == CHECK_ACTION && state.signer.verify(CHECK_ACTION, chat_id, signature) {
        return Ok(Json(ActionResponse::default()));
    }
    if action != format::ACCEPT_ACTION || !state.signer.verify(action, chat_id, signature) {
        tracing::warn!(user_id = ?call.user_id, "refused an unsigned or forged button callback");
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this callback is not signed by parley",
        ));
    }
    let Some(bridge) = state.bridge() else {
        return Err(ApiError::new(
            ErrorCode::Offline,
            "Mattermost is not configured",
        ));
    };
    let chat = state
        .store
        .get_chat(chat_id)
        .await?
        .ok_or_else(|| ApiError::not_found("chat"))?;
    // The signature binds the chat, and the callback must name the post Mattermost gave parley
    // for that chat's request: the context cannot be replayed with an empty or another post
    // (the post id cannot be signed: the context is made before the post exists).
    let names_the_request_post = match chat.request_post_id.as_deref() {
        Some(request_post) => call.post_id == request_post,
        // A click in the moment between Mattermost creating the request post and parley
        // recording its id: Mattermost itself says whether the post is that chat's request.
        None if call.post_id.is_empty() => false,
        None => match bridge.is_request_post_of(&call.post_id, &chat.id).await {
            Ok(is_it) => is_it,
            Err(e) => {
                tracing::warn!(error = %e, post_id = ?call.post_id, "could not look up the clicked post");
                return Ok(Json(ActionResponse {
                    ephemeral_text: Some(
                        "parley could not check this request with Mattermost; please click Accept again in a moment.".into(),
                    ),
                    ..Default::default()
                }));
            }
        },
    };
    if !names_the_request_post {
        tracing::warn!(
            chat_id = %chat.id, post_id = ?call.post_id, user_id = ?call.user_id,
            "refused a button callback for another post"
        );
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this button does not belong to that post",
        ));
    }
    let user = match bridge.user(&call.user_id).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "could not look up the operator who clicked");
            return Ok(Json(ActionResponse {
                ephemeral_text: Some(
                    "parley could not look up your account in Mattermost; please try again.".into(),
                ),
                ..Default::default()
            }));
        }
    };
    if user.is_bot {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "bots cannot accept chats",
        ));
    }
    let operator = Operator {
        user_id: user.id.clone(),
        username: user.username.clone(),
        name: user.display_name(),
    };
    let response = match chats::accept(&state, &chat.id, &operator).await? {
        AcceptOutcome::Accepted { chat, .. } => {
            let channel = chat.channel_name.clone().unwrap_or_default();
            // The channel is created in the chat's department's team.
            let department = crate::app::departments::get(&state, chat.department_id).await?;
            let link = crate::app::departments::route_of(&state, department.as_ref())
                .map(|route| bridge.channel_link(&route.team, &channel))
                .unwrap_or_default();
            let (message, props) =
                format::settled_request(&chat, &format!("accepted by @{}", operator.username));
            ActionResponse {
                update: Some(PostUpdate { message, props }),
                ephemeral_text: Some(format::accepted_answer(&chat, &channel, &link)),
            }
        }
        AcceptOutcome::NotPending(chat) => {
            let (status_line, text) = match chat.status() {
                // A click that was on its way while the visitor left (or from a client that
                // still shows the button): keep the post as the close left it and say why.
                ChatStatus::Closed if chat.accepted_at.is_none() => {
                    let line =
                        chats::left_unaccepted(&state, chat.closed_by.as_deref().unwrap_or(""));
                    let text = format!("This chat can no longer be accepted: {line}.");
                    (line, text)
                }
                ChatStatus::Closed => (
                    "ended".to_owned(),
                    "This chat has already ended.".to_owned(),
                ),
                _ => {
                    let by = chat.operator_username.clone().unwrap_or_default();
                    (
                        format!("accepted by @{by}"),
                        format!("This chat was already accepted by @{by}."),
                    )
                }
            };
            let (message, props) = format::settled_request(&chat, &status_line);
            ActionResponse {
                update: Some(PostUpdate { message, props }),
                ephemeral_text: Some(text),
            }
        }
    };
    Ok(Json(response))
}
