//! The Mattermost WebSocket event stream: authenticates with the bot token, resumes with
//! `connection_id`/`sequence_number` after a drop, reconnects with backoff, and hands every
//! `posted` event to `chats::apply_post` in order. When the server could not resume (a new
//! `connection_id`), open chats are caught up over REST so nothing is missed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use tokio_util::sync::CancellationToken;

use super::wire::WsEvent;
use crate::{chats, state::AppState};

/// The server pings every 60 s; hearing nothing for this long means the link is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where to resume: the server's connection id and the next sequence number expected.
#[derive(Debug, Clone, Default)]
struct Resume {
    connection_id: Option<String>,
    next_seq: i64,
}

/// Runs until `shutdown`: keeps one event stream open and applies its events.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let Some(bridge) = state.bridge.clone() else {
        return;
    };
    let mut resume = Resume::default();
    let mut backoff = Duration::from_millis(250);
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = connect_once(&state, &mut resume) => r,
        };
        bridge.set_stream_connected(false);
        match outcome {
            Ok(()) => {
                tracing::info!("Mattermost event stream closed; reconnecting");
                backoff = Duration::from_millis(250);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "Mattermost event stream failed");
            }
        }
        let jitter =
            Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 4 + 1));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        state.metrics.stream_reconnecting();
    }
    bridge.set_stream_connected(false);
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(transparent)]
    Mattermost(#[from] super::MmError),
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("no event for {0:?}")]
    Silent(Duration),
    #[error("{0}")]
    Protocol(String),
}

async fn connect_once(state: &AppState, resume: &mut Resume) -> Result<(), StreamError> {
    let bridge = state.bridge.as_ref().expect("checked by run");
    // Resolve team and channel first: without them no event can be used.
    bridge.context().await?;
    let mut url = bridge.client.websocket_url();
    let resuming = resume.connection_id.is_some() && resume.next_seq > 0;
    if let Some(id) = &resume.connection_id {
        // Never send a connection id with sequence 0 (mattermost-api.md §6).
        if resume.next_seq > 0 {
            url = format!(
                "{url}?connection_id={id}&sequence_number={}",
                resume.next_seq
            );
        }
    }
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(StreamError::Ws)?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", bridge.client.token().expose_secret()))
        .map_err(|_| StreamError::Protocol("the token is not a valid header value".into()))?;
    request.headers_mut().insert("Authorization", auth);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    if resuming {
        // A resumed stream sends no new `hello`, and maybe no event for a long while.
        bridge.set_stream_connected(true);
    }
    crate::jobs::outbox::mattermost_is_back(state).await;

    loop {
        let frame = match tokio::time::timeout(SILENCE_LIMIT, socket.next()).await {
            Err(_) => return Err(StreamError::Silent(SILENCE_LIMIT)),
            Ok(None) => return Ok(()),
            Ok(Some(frame)) => frame?,
        };
        let text = match frame {
            Message::Text(t) => t,
            Message::Ping(p) => {
                socket.send(Message::Pong(p)).await?;
                continue;
            }
            Message::Close(_) => return Ok(()),
            _ => continue,
        };
        let Ok(event) = serde_json::from_str::<WsEvent>(text.as_str()) else {
            continue;
        };
        if let Some(seq) = event.seq {
            resume.next_seq = seq + 1;
        }
        match event.event.as_str() {
            "hello" => {
                let id = event
                    .data
                    .get("connection_id")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                let resumed = id.is_some() && id == resume.connection_id;
                resume.connection_id = id;
                bridge.set_stream_connected(true);
                if !resumed {
                    // A fresh connection: whatever happened in between must be fetched.
                    match chats::catch_up(state).await {
                        Ok(n) => tracing::info!(posts = n, "caught up with Mattermost"),
                        Err(e) => tracing::warn!(error = %e, "catching up with Mattermost failed"),
                    }
                }
            }
            "posted" => {
                bridge.set_stream_connected(true);
                if let Some(post) = chats::post_from_event(&event.data)
                    && let Err(e) = chats::apply_post(state, &post).await
                {
                    // Start afresh without resuming: the new connection's catch-up
                    // fetches this post again.
                    resume.connection_id = None;
                    return Err(StreamError::Protocol(format!(
                        "could not apply post {}: {e}",
                        post.id
                    )));
                }
            }
            _ => {
                // A resumed connection replays without a new hello; any event proves it is up.
                bridge.set_stream_connected(true);
            }
        }
    }
}
