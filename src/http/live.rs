//! `GET /api/v1/chats/{id}/live`: the visitor's WebSocket. The token is sent in the first
//! frame (never in the URL, so it stays out of access logs); then the backlog after the
//! client's last message id, then live events, de-duplicated by id. The visitor's
//! `{"type":"typing"}` frames are passed on to Mattermost (at most one per two seconds).

use std::time::{Duration, Instant};

use axum::{
    extract::{
        Path, State,
        ws::{
            CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
            rejection::WebSocketUpgradeRejection,
        },
    },
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::{
    app::chats,
    http::state::AppState,
    http::{
        error::{ApiError, ErrorCode},
        extract::{ClientIp, authenticate},
        live_sockets::Admitted,
    },
    live::{ChatView, LiveEvent},
    storage::now_ms,
};

/// The widget sends its token as soon as the socket opens; a socket silent for this long is
/// not a widget, and holds one of the few pending places (`PARLEY_MAX_PENDING_SOCKETS`).
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(30);
/// A socket that sent nothing (not even a pong) for this long is dropped.
const SILENT_FOR: Duration = Duration::from_secs(65);
/// Largest frame a visitor may send (the auth frame, typing and pings are expected).
const MAX_FRAME: usize = 4096;
/// The socket's read buffer. tungstenite zero-fills the whole buffer on every read, so its
/// default of 128 KiB made each idle socket cost that much resident memory (see
/// docs/benchmarks.md); frames are small here, and the buffer grows for a larger one.
const READ_BUFFER: usize = 2 * MAX_FRAME;
/// The visitor's typing goes to Mattermost at most this often (the widget sends every 3 s).
const TYPING_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
struct AuthFrame {
    #[serde(rename = "type")]
    kind: String,
    token: String,
    #[serde(default)]
    after: i64,
}

/// Upgrades to the live socket. Browsers do not apply CORS to WebSockets, so the allowed
/// origins are checked here, and so are the caps on sockets (see [`super::live_sockets`]).
pub async fn live(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return ApiError::new(
            ErrorCode::WebsocketRequired,
            "this is a WebSocket: connect with an upgrade request",
        )
        .into_response();
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
        && !state.settings.origin_allowed(origin)
    {
        return ApiError::new(
            ErrorCode::OriginNotAllowed,
            "this website may not use the chat (PARLEY_ALLOWED_ORIGINS)",
        )
        .into_response();
    }
    let admitted = match state.live_sockets.admit(ip) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| serve(state, id, socket, admitted))
}

async fn send_json(socket: &mut WebSocket, value: &impl serde::Serialize) -> bool {
    let text = serde_json::to_string(value).expect("views serialise");
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn refuse(mut socket: WebSocket, code: ErrorCode, message: &str, close_code: u16) {
    let _ = send_json(
        &mut socket,
        &json!({"type": "error", "code": code.as_str(), "message": message}),
    )
    .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code,
            reason: Utf8Bytes::from_static(code.as_str()),
        })))
        .await;
}

async fn serve(state: AppState, chat_id: String, mut socket: WebSocket, mut admitted: Admitted) {
    let _counted = state.metrics.visitor_socket();
    let auth = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<AuthFrame>(text.as_str()).ok(),
        _ => None,
    };
    admitted.authenticated();
    let Some(auth) = auth.filter(|a| a.kind == "auth") else {
        return refuse(
            socket,
            ErrorCode::Unauthorized,
            "send {\"type\":\"auth\",\"token\":…} first",
            4401,
        )
        .await;
    };
    let chat = match authenticate(&state, &chat_id, &auth.token).await {
        Ok(chat) => chat,
        Err(e) => {
            let close = if e.code == ErrorCode::NotFound {
                4404
            } else {
                4401
            };
            return refuse(socket, e.code, &e.message, close).await;
        }
    };
    // Counted with the chat's other sockets from now on; the oldest of them may have to go.
    let place = admitted.join(&chat.id);
    // Subscribe before reading the chat and its backlog, so nothing falls between them.
    let events = state.hub.subscribe(&chat.id);
    // The visitor is here from now until the socket goes (and while it stays, this
    // instance's `jobs::lifecycle` says so every few seconds): a connected widget's chat
    // never times out, and the timeout counts from the moment it went.
    touch_visitor(&state, &chat.id).await;
    stream(
        &state,
        &chat.id,
        auth.after.max(0),
        events,
        socket,
        &place.replaced,
    )
    .await;
    drop(place);
    touch_visitor(&state, &chat.id).await;
}

async fn touch_visitor(state: &AppState, chat_id: &str) {
    if let Err(e) = state.store.touch_visitor(chat_id, now_ms()).await {
        tracing::warn!(error = %e, %chat_id, "could not note the visitor's presence");
    }
}

/// Sends the chat as it is now, the backlog after `last_sent`, then live events, until either
/// side goes away.
async fn stream(
    state: &AppState,
    chat_id: &str,
    mut last_sent: i64,
    mut events: broadcast::Receiver<LiveEvent>,
    mut socket: WebSocket,
    replaced: &CancellationToken,
) {
    // Read after subscribing: a chat that ended a moment ago (its visitor timed out just
    // before coming back) is shown ended, not as the token check saw it.
    let chat = match state.store.get_chat(chat_id).await {
        Ok(Some(chat)) => chat,
        Ok(None) => return refuse(socket, ErrorCode::NotFound, "no such chat", 4404).await,
        Err(e) => {
            tracing::error!(error = %e, "could not read the chat");
            return refuse(socket, ErrorCode::Internal, "please reconnect", 1011).await;
        }
    };
    if !send_json(
        &mut socket,
        &json!({"type": "ready", "chat": ChatView::from(&chat)}),
    )
    .await
    {
        return;
    }
    match send_backlog(state, &chat.id, &mut last_sent, &mut socket).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(()) => return refuse(socket, ErrorCode::Internal, "please reconnect", 1011).await,
    }

    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_typing: Option<Instant> = None;
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = replaced.cancelled() => {
                // The widget stays quiet until its tab is shown again, so that tabs beyond
                // the cap do not take the socket from each other forever.
                return refuse(
                    socket,
                    ErrorCode::Replaced,
                    "this chat is open in too many tabs; the newest ones stay connected",
                    4409,
                )
                .await;
            }
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
                Ok(LiveEvent::NewMessages) => {
                    match send_backlog(state, &chat.id, &mut last_sent, &mut socket).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(()) => return refuse(socket, ErrorCode::Internal, "please reconnect", 1011).await,
                    }
                }
                Ok(other) => {
                    if !send_json(&mut socket, &other).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too far behind: the client reconnects and catches up by id.
                    return refuse(socket, ErrorCode::Lagged, "please reconnect", 4408).await;
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Text(text))) => {
                    heard = tokio::time::Instant::now();
                    if is_typing(text.as_str())
                        && last_typing.is_none_or(|t| t.elapsed() >= TYPING_EVERY)
                    {
                        last_typing = Some(Instant::now());
                        chats::visitor_typing(state, &chat.id).await;
                    }
                }
                // Pongs included.
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
            },
            _ = ping.tick() => {
                // Browsers answer every ping. Silence for two rounds means a dead connection
                // (a device gone without closing it); holding on to it would keep an
                // abandoned chat alive (see jobs::lifecycle).
                if heard.elapsed() > SILENT_FOR {
                    return;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends the chat's messages after `last_sent`, oldest first, moving `last_sent` on. `Ok(false)`
/// when the socket is gone; `Err` when the database failed (logged).
async fn send_backlog(
    state: &AppState,
    chat_id: &str,
    last_sent: &mut i64,
    socket: &mut WebSocket,
) -> Result<bool, ()> {
    loop {
        let backlog = match state.store.list_messages(chat_id, *last_sent, 500).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "could not read the backlog");
                return Err(());
            }
        };
        let full_page = backlog.len() == 500;
        for m in &backlog {
            let event = LiveEvent::Message {
                message: state.hub.view(m),
            };
            if !send_json(socket, &event).await {
                return Ok(false);
            }
            *last_sent = m.id;
        }
        if !full_page {
            return Ok(true);
        }
    }
}

/// Whether a frame from the widget is `{"type":"typing"}`.
fn is_typing(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("typing"))
}
