//! The visitor API v1 handlers: start a chat, read and write messages, close, the online
//! status and the offline form. Handlers parse, call `chats`, and answer.

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    app::chats::{self, StartChat},
    app::departments::{self, Department},
    domain::{ChatStatus, input},
    http::state::AppState,
    http::{
        error::{ApiError, ErrorCode},
        extract::{ApiJson, ClientIp, VisitorChat},
        files,
    },
    live::{ChatView, MessageView},
    storage::{messages::VisitorMessageOutcome, offline::NewOfflineMessage},
};

/// Longest URL accepted for `page_url` and `referrer`.
const MAX_URL_CHARS: usize = 2048;
/// Most messages returned by one list call.
const PAGE_SIZE: i64 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChatRequest {
    name: Option<String>,
    email: Option<String>,
    message: String,
    page_url: Option<String>,
    referrer: Option<String>,
    phone: Option<String>,
    department: Option<i64>,
}

/// `GET /api/v1/status`: whether operators can be reached now, per department.
pub async fn get_status(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let files = &state.settings.files;
    let (online, departments) = departments::status(&state, jiff::Timestamp::now()).await?;
    Ok(Json(json!({
        "online": online,
        "departments": departments,
        "fields": { "phone": state.settings.prechat_phone },
        "files": {
            "max_bytes": files.max_bytes,
            "max_per_message": files.max_per_message,
            "types": files.types,
        },
    })))
}

/// The department a visitor chose: the given id (which must exist), else the first
/// department, else `None` (the default department).
async fn chosen_department(
    state: &AppState,
    id: Option<i64>,
) -> Result<Option<Department>, ApiError> {
    let all = departments::list(state).await?;
    match id {
        Some(id) => all
            .into_iter()
            .find(|d| d.id == id)
            .map(Some)
            .ok_or_else(|| {
                ApiError::field(
                    ErrorCode::DepartmentInvalid,
                    "department",
                    "`department` is not one of the departments listed by /api/v1/status",
                )
            }),
        None => Ok(all.into_iter().next()),
    }
}

/// `POST /api/v1/chats`.
pub async fn create_chat(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<CreateChatRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let limits = &state.settings.limits;
    let start = StartChat {
        name: input::optional_line("name", req.name.as_deref(), limits.max_field_chars)?,
        email: input::optional_email("email", req.email.as_deref())?,
        message: input::message_text("message", &req.message, limits.max_message_chars)?,
        page_url: input::optional_url("page_url", req.page_url.as_deref(), MAX_URL_CHARS)?,
        // A referrer from another site may be anything; keep it only when it is a URL.
        referrer: input::optional_url("referrer", req.referrer.as_deref(), MAX_URL_CHARS)
            .ok()
            .flatten(),
        visitor_ip: Some(ip.to_string()),
        phone: input::optional_phone("phone", req.phone.as_deref())?,
        department_id: None,
    };
    let department = chosen_department(&state, req.department).await?;
    let start = StartChat {
        department_id: department.as_ref().map(|d| d.id),
        ..start
    };
    let available =
        departments::is_available(&state, department.as_ref(), jiff::Timestamp::now(), false);
    if !state.accepting_chats() || !available {
        return Err(ApiError::new(
            ErrorCode::Offline,
            "no operator can be reached right now; please leave a message instead",
        ));
    }
    state.rate_limits.check_new_chat(ip)?;
    let (chat, token, _) = chats::start(&state, start).await?;
    let view = ChatView::from(&chat);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": chat.id, "token": token, "status": view.status, "chat": view })),
    ))
}

/// `GET /api/v1/chats/{id}`.
pub async fn get_chat(VisitorChat(chat): VisitorChat) -> Json<ChatView> {
    Json(ChatView::from(&chat))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: i64,
}

/// `GET /api/v1/chats/{id}/messages?after=`.
pub async fn list_messages(
    State(state): State<AppState>,
    VisitorChat(chat): VisitorChat,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidQuery,
            "`after` must be a message id (a whole number)",
        )
    })?;
    let rows = state
        .store
        .list_messages(&chat.id, query.after.max(0), PAGE_SIZE)
        .await?;
    let messages: Vec<MessageView> = rows.iter().map(|m| state.hub.view(m)).collect();
    Ok(Json(json!({ "messages": messages })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessageRequest {
    text: String,
}

/// `POST /api/v1/chats/{id}/messages`.
pub async fn post_message(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    VisitorChat(chat): VisitorChat,
    ApiJson(req): ApiJson<PostMessageRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if chat.status() == ChatStatus::Closed {
        return Err(ApiError::chat_closed());
    }
    let text = input::message_text("text", &req.text, state.settings.limits.max_message_chars)?;
    state.rate_limits.check_message(ip, &chat.id)?;
    match chats::post_visitor_message(&state, &chat, &text, Vec::new()).await? {
        VisitorMessageOutcome::Stored { message, .. } => Ok((
            StatusCode::CREATED,
            Json(json!({ "message": state.hub.view(&message) })),
        )),
        VisitorMessageOutcome::ChatClosed => Err(ApiError::chat_closed()),
        VisitorMessageOutcome::NoSuchChat => Err(ApiError::not_found("chat")),
        VisitorMessageOutcome::OverChatAllowance => Err(files::over_allowance(&state)),
    }
}

/// `POST /api/v1/chats/{id}/close`: idempotent.
pub async fn close_chat(
    State(state): State<AppState>,
    VisitorChat(chat): VisitorChat,
) -> Result<Json<ChatView>, ApiError> {
    let chat = chats::close_by_visitor(&state, &chat).await?;
    Ok(Json(ChatView::from(&chat)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineMessageRequest {
    name: Option<String>,
    email: Option<String>,
    message: String,
    page_url: Option<String>,
    phone: Option<String>,
    department: Option<i64>,
}

/// `POST /api/v1/offline-messages`: the "leave a message" form.
pub async fn create_offline_message(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<OfflineMessageRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let limits = &state.settings.limits;
    let email = input::optional_email("email", req.email.as_deref())?.ok_or_else(|| {
        ApiError::field(
            ErrorCode::EmailRequired,
            "email",
            "`email` is required so that we can answer",
        )
    })?;
    let mut message = NewOfflineMessage {
        name: input::optional_line("name", req.name.as_deref(), limits.max_field_chars)?,
        email,
        phone: input::optional_phone("phone", req.phone.as_deref())?,
        body: input::message_text("message", &req.message, limits.max_message_chars)?,
        page_url: input::optional_url("page_url", req.page_url.as_deref(), MAX_URL_CHARS)?,
        visitor_ip: Some(ip.to_string()),
        department_id: None,
    };
    message.department_id = chosen_department(&state, req.department)
        .await?
        .map(|d| d.id);
    state.rate_limits.check_offline_message(ip)?;
    let id = state.store.insert_offline_message(&message).await?;
    // Posted to the requests channel by the outbox worker's loop.
    state.wake_outbox();
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}
