//! `GET /api/v1/chats/{id}/live`: the visitor's WebSocket. The token is sent in the first
//! frame (never in the URL, so it stays out of access logs); then the backlog after the
//! client's last message id, then live events, de-duplicated by id.

use std::time::Duration;

use axum::{
    extract::{
        Path, State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::{
    events::{ChatView, LiveEvent},
    http::{error::ApiError, extract::authenticate},
    state::AppState,
};

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(30);
/// Largest frame a visitor may send (only the auth frame and pings are expected).
const MAX_FRAME: usize = 4096;

#[derive(Debug, Deserialize)]
struct AuthFrame {
    #[serde(rename = "type")]
    kind: String,
    token: String,
    #[serde(default)]
    after: i64,
}

/// Upgrades to the live socket. Browsers do not apply CORS to WebSockets, so the allowed
/// origins are checked here.
pub async fn live(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
        && !state.settings.allowed_origins.allows(origin)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this website may not use the chat (PARLEY_ALLOWED_ORIGINS)",
        )
        .into_response();
    }
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| serve(state, id, socket))
}

async fn send_json(socket: &mut WebSocket, value: &impl serde::Serialize) -> bool {
    let text = serde_json::to_string(value).expect("views serialise");
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn refuse(mut socket: WebSocket, code: &str, message: &str, close_code: u16) {
    let _ = send_json(
        &mut socket,
        &json!({"type": "error", "code": code, "message": message}),
    )
    .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code,
            reason: Utf8Bytes::from(code.to_owned()),
        })))
        .await;
}

async fn serve(state: AppState, chat_id: String, mut socket: WebSocket) {
    let _counted = state.metrics.visitor_socket();
    let auth = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<AuthFrame>(text.as_str()).ok(),
        _ => None,
    };
    let Some(auth) = auth.filter(|a| a.kind == "auth") else {
        return refuse(
            socket,
            "unauthorized",
            "send {\"type\":\"auth\",\"token\":…} first",
            4401,
        )
        .await;
    };
    let chat = match authenticate(&state, &chat_id, &auth.token).await {
        Ok(chat) => chat,
        Err(e) => {
            let close = if e.code == "not_found" { 4404 } else { 4401 };
            return refuse(socket, e.code, &e.message, close).await;
        }
    };
    // Subscribe before reading the backlog, so nothing falls between the two.
    let mut events = state.hub.subscribe(&chat.id);
    let mut last_sent = auth.after.max(0);
    if !send_json(
        &mut socket,
        &json!({"type": "ready", "chat": ChatView::from(&chat)}),
    )
    .await
    {
        return;
    }
    loop {
        let backlog = match state.store.list_messages(&chat.id, last_sent, 500).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "could not read the backlog");
                return refuse(socket, "internal", "please reconnect", 1011).await;
            }
        };
        let full_page = backlog.len() == 500;
        for m in &backlog {
            let event = LiveEvent::Message {
                message: state.hub.view(m),
            };
            if !send_json(&mut socket, &event).await {
                return;
            }
            last_sent = m.id;
        }
        if !full_page {
            break;
        }
    }

    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(LiveEvent::Message { message }) => {
                    if message.id <= last_sent {
                        continue;
                    }
                    last_sent = message.id;
                    if !send_json(&mut socket, &LiveEvent::Message { message }).await {
                        return;
                    }
                }
                Ok(other) => {
                    if !send_json(&mut socket, &other).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too far behind: the client reconnects and catches up by id.
                    return refuse(socket, "lagged", "please reconnect", 4408).await;
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}
