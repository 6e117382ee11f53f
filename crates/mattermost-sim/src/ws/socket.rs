//! The `/api/v4/websocket` endpoint: upgrade, authentication (header or challenge),
//! resumption parameters, and the per-socket read/write loop.

use axum::extract::State;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

use super::Out;
use crate::Shared;
use crate::error::ApiError;
use crate::http::{query_params, request_token};
use crate::model::User;

/// Unauthenticated sockets are closed after this (`authCheckInterval`).
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

enum Resume {
    Fresh,
    At {
        connection_id: String,
        seq: i64,
    },
    /// `connection_id` with a missing or malformed `sequence_number`.
    Reject,
}

pub async fn upgrade(
    State(shared): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return ApiError::new(
            400,
            "api.web_socket.connect.upgrade.app_error",
            "Failed to upgrade websocket connection.",
        )
        .into_response();
    };
    let q = query_params(uri.query());
    // An invalid token on the upgrade is ignored (the handler trusts the requester);
    // the client may still authenticate with a challenge.
    let user = request_token(&headers, uri.query()).and_then(|t| shared.lock().user_by_token(&t));
    // Resumption is only considered when the session is known at upgrade time, like
    // `connectWebSocket`; challenge-authenticated sockets always start fresh.
    let resume = match (&user, q.get("connection_id").filter(|c| !c.is_empty())) {
        (Some(_), Some(cid)) => {
            match q.get("sequence_number").and_then(|s| s.parse::<i64>().ok()) {
                Some(seq) => Resume::At {
                    connection_id: cid.clone(),
                    seq,
                },
                None => Resume::Reject,
            }
        }
        _ => Resume::Fresh,
    };
    ws.on_upgrade(move |socket| run(shared, socket, user, resume))
}

async fn run(shared: Shared, mut socket: WebSocket, user: Option<User>, resume: Resume) {
    if matches!(resume, Resume::Reject) {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let socket_id = shared.lock().hub.register_socket(tx);
    let mut user_id: Option<String> = None;
    if let Some(user) = user {
        attach(&shared, &user.id, socket_id, resume);
        user_id = Some(user.id);
    }
    let auth_deadline = tokio::time::sleep(AUTH_TIMEOUT);
    tokio::pin!(auth_deadline);
    // Keep-alive as in the real server's web_conn.go: a ping every `pingInterval` (60 s), and a
    // socket whose last pong (or its start) is older than `pongWaitTime` (100 s) is dropped.
    let (ping_every, pong_wait) = {
        let st = shared.lock();
        (
            st.config.websocket_ping_interval,
            st.config.websocket_pong_wait,
        )
    };
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let pong_deadline = tokio::time::sleep(pong_wait);
    tokio::pin!(pong_deadline);
    loop {
        tokio::select! {
            _ = pings.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            _ = &mut pong_deadline => break,
            out = rx.recv() => match out {
                Some(Out::Text(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                // Dropping the socket without a close frame is the "abrupt" cut.
                Some(Out::Close) | None => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if !handle_frame(&shared, socket_id, &mut user_id, text.as_str()) {
                        break;
                    }
                }
                Some(Ok(Message::Pong(_))) => {
                    shared.lock().hub.pongs += 1;
                    pong_deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + pong_wait);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = &mut auth_deadline, if user_id.is_none() => break,
        }
    }
    let offline_after = {
        let mut st = shared.lock();
        st.hub.unregister_socket(socket_id);
        st.config.offline_after_last_socket
    };
    // The real server sets a user offline (unless their status is manual) once their last
    // connection is gone (`SetStatusOffline` from the hub's unregister), seen 2-3 s later.
    if let Some(user_id) = user_id {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(offline_after).await;
            let mut st = shared.lock();
            if !st.hub.has_socket_for(&user_id)
                && let Some(status) = st.statuses.get_mut(&user_id)
                && !status.manual
            {
                status.status = "offline".into();
            }
        });
    }
}

fn attach(shared: &Shared, user_id: &str, socket_id: u64, resume: Resume) {
    let mut st = shared.lock();
    let version = st.full_version();
    match resume {
        Resume::At { connection_id, seq } => {
            st.hub
                .attach_resume(user_id, &connection_id, seq, socket_id, &version);
        }
        _ => {
            st.hub.attach_new(user_id, socket_id, &version);
        }
    }
    st.touch_online(user_id);
}

fn ws_error(seq: i64, id: &str, status: u16) -> Value {
    json!({
        "status": "FAIL",
        "seq_reply": seq,
        "error": {"id": id, "message": id, "detailed_error": "", "status_code": status},
    })
}

/// Handles one client frame; false means the socket must be closed.
fn handle_frame(shared: &Shared, socket_id: u64, user_id: &mut Option<String>, text: &str) -> bool {
    let Ok(req) = serde_json::from_str::<Value>(text) else {
        // The real server closes on undecodable frames.
        return false;
    };
    let seq = req.get("seq").and_then(Value::as_i64).unwrap_or(0);
    let action = req.get("action").and_then(Value::as_str).unwrap_or("");
    let data = req.get("data").cloned().unwrap_or(Value::Null);
    let Some(uid) = user_id.clone() else {
        // Before authentication only the challenge counts; other frames get no answer
        // because the connection is not registered with the hub yet.
        if action != "authentication_challenge" || seq <= 0 {
            return true;
        }
        let Some(token) = data.get("token").and_then(Value::as_str) else {
            return false;
        };
        let Some(user) = shared.lock().user_by_token(token) else {
            return false;
        };
        // hello goes out first, then the reply, as in the real router.
        attach(shared, &user.id, socket_id, Resume::Fresh);
        shared
            .lock()
            .hub
            .reply(socket_id, &json!({"status": "OK", "seq_reply": seq}));
        *user_id = Some(user.id);
        return true;
    };
    let mut st = shared.lock();
    if action.is_empty() {
        st.hub.reply(
            socket_id,
            &ws_error(seq, "api.web_socket_router.no_action.app_error", 400),
        );
        return true;
    }
    if seq <= 0 {
        st.hub.reply(
            socket_id,
            &ws_error(seq, "api.web_socket_router.bad_seq.app_error", 400),
        );
        return true;
    }
    match action {
        "authentication_challenge" => {}
        "user_typing" => {
            let channel_id = data
                .get("channel_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let parent_id = data
                .get("parent_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match st.user_typing(&uid, channel_id, parent_id) {
                Ok(()) => st
                    .hub
                    .reply(socket_id, &json!({"status": "OK", "seq_reply": seq})),
                Err(e) => st.hub.reply(socket_id, &ws_error(seq, &e.id, e.status)),
            }
        }
        "get_statuses" | "get_statuses_by_ids" => {
            let wanted: Option<Vec<String>> = data
                .get("user_ids")
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            let mut out = serde_json::Map::new();
            match wanted {
                Some(ids) => {
                    for id in ids {
                        let s = st
                            .statuses
                            .get(&id)
                            .map(|s| s.status.clone())
                            .unwrap_or_else(|| "offline".into());
                        out.insert(id, Value::String(s));
                    }
                }
                None => {
                    for (id, s) in &st.statuses {
                        out.insert(id.clone(), Value::String(s.status.clone()));
                    }
                }
            }
            st.hub.reply(
                socket_id,
                &json!({"status": "OK", "seq_reply": seq, "data": out}),
            );
        }
        _ => st.hub.reply(
            socket_id,
            &ws_error(seq, "api.web_socket_router.bad_action.app_error", 500),
        ),
    }
    true
}
