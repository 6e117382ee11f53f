//! The Mattermost WebSocket event stream: authenticates with the bot token, resumes with
//! `connection_id`/`sequence_number` after a drop, reconnects with backoff, and hands every
//! event, translated into a [`BridgeEvent`], in order to the [`Inbound`] it is given (posts,
//! edits and deletes, typing, reactions). It says when it is connected again, and when the
//! server could not resume (a new `connection_id`), so that the application catches up over
//! REST and nothing is missed. It also sends the visitor's typing to Mattermost as the bot's
//! `user_typing` action.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use tokio_util::sync::CancellationToken;

use super::{
    Bridge, BridgeEvent, BridgeSlot, Inbound, TYPING_FRESH, replaced, translate, wire::WsEvent,
};
use crate::metrics::Metrics;

/// The server pings every 60 s; hearing nothing for this long means the link is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where to resume: the server's connection id and the next sequence number expected.
#[derive(Debug, Clone, Default)]
struct Resume {
    connection_id: Option<String>,
    next_seq: i64,
}

/// Runs until `shutdown`: keeps one event stream open with the bridge in force (`connection`)
/// and gives its events to `inbound`. When the connection is replaced (back office), the
/// stream lets go of the old server and connects with the new bridge at once; while none is
/// configured it waits for one.
pub async fn run<I: Inbound>(
    connection: BridgeSlot,
    inbound: I,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut changes = connection.watch();
    loop {
        changes.borrow_and_update();
        let Some(bridge) = connection.get() else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = replaced(&mut changes) => continue,
            }
        };
        let stopped = run_with(&inbound, &metrics, &bridge, &shutdown, &mut changes).await;
        bridge.set_stream_connected(false);
        if stopped {
            return;
        }
        tracing::info!("the Mattermost connection changed; connecting with the new settings");
    }
}

/// Keeps the stream of one bridge. Returns true on shutdown, false when the bridge was replaced.
async fn run_with<I: Inbound>(
    inbound: &I,
    metrics: &Metrics,
    bridge: &Arc<Bridge>,
    shutdown: &CancellationToken,
    changes: &mut watch::Receiver<u64>,
) -> bool {
    let mut resume = Resume::default();
    let mut backoff = Duration::from_millis(250);
    loop {
        if shutdown.is_cancelled() {
            return true;
        }
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return true,
            r = connect_once(inbound, bridge, &mut resume, changes) => r,
        };
        bridge.set_stream_connected(false);
        match outcome {
            Ok(Ended::Replaced) => return false,
            Ok(Ended::Closed) => {
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
            _ = shutdown.cancelled() => return true,
            _ = replaced(changes) => return false,
            _ = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        metrics.stream_reconnecting();
    }
}

/// How a connection ended without an error.
enum Ended {
    /// The server closed it.
    Closed,
    /// The connection settings were replaced: this stream's server is no longer the one.
    Replaced,
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

async fn connect_once<I: Inbound>(
    inbound: &I,
    bridge: &Bridge,
    resume: &mut Resume,
    changes: &mut watch::Receiver<u64>,
) -> Result<Ended, StreamError> {
    // Resolve team and channel first: without them no event can be used.
    tokio::select! {
        r = bridge.context() => { r?; }
        _ = replaced(changes) => return Ok(Ended::Replaced),
    }
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
    let (mut socket, _) = tokio::select! {
        r = tokio_tungstenite::connect_async(request) => r?,
        _ = replaced(changes) => return Ok(Ended::Replaced),
    };
    if resuming {
        // A resumed stream sends no new `hello`, and maybe no event for a long while.
        bridge.set_stream_connected(true);
    }
    // Mattermost answers again: what waits for it may go now.
    apply(
        inbound,
        BridgeEvent::Reconnected { catch_up: false },
        resume,
    )
    .await?;
    // Typing handed over while no stream was up is stale: drop it.
    let mut typing = bridge.typing_receiver().await;
    while typing.try_recv().is_ok() {}
    // Client actions are numbered from 1 on each connection (mattermost-api.md §6).
    let mut action_seq: i64 = 0;
    let mut deadline = tokio::time::Instant::now() + SILENCE_LIMIT;

    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = tokio::time::sleep_until(deadline) => return Err(StreamError::Silent(SILENCE_LIMIT)),
            // Between events, so an event is never applied half-way.
            _ = replaced(changes) => {
                let _ = socket.close(None).await;
                return Ok(Ended::Replaced);
            }
            Some(t) = typing.recv() => {
                if t.at.elapsed() <= TYPING_FRESH {
                    action_seq += 1;
                    let action = serde_json::json!({
                        "action": "user_typing",
                        "seq": action_seq,
                        "data": {"channel_id": t.channel_id, "parent_id": ""},
                    });
                    socket.send(Message::Text(action.to_string().into())).await?;
                }
                continue;
            }
        };
        let frame = match frame {
            None => return Ok(Ended::Closed),
            Some(frame) => frame?,
        };
        deadline = tokio::time::Instant::now() + SILENCE_LIMIT;
        let text = match frame {
            Message::Text(t) => t,
            Message::Ping(p) => {
                socket.send(Message::Pong(p)).await?;
                continue;
            }
            Message::Close(_) => return Ok(Ended::Closed),
            _ => continue,
        };
        let Ok(event) = serde_json::from_str::<WsEvent>(text.as_str()) else {
            continue;
        };
        if let Some(seq) = event.seq {
            resume.next_seq = seq + 1;
        }
        // A resumed connection replays without a new hello; any event proves it is up.
        bridge.set_stream_connected(true);
        if event.event == "hello" {
            let id = event
                .data
                .get("connection_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let resumed = id.is_some() && id == resume.connection_id;
            resume.connection_id = id;
            if !resumed {
                // A fresh connection: whatever happened in between must be fetched.
                apply(inbound, BridgeEvent::Reconnected { catch_up: true }, resume).await?;
            }
            continue;
        }
        if let Some(event) = translate::event(&event) {
            apply(inbound, event, resume).await?;
        }
    }
}

/// Gives one event to the application, with today's rule for failures (docs/decisions.md "The
/// two relay directions"): a post, edit, delete or reaction that could not be applied drops
/// the resume point and ends the connection with an error, so the next connection starts
/// afresh and its catch-up fetches the event again; typing is fleeting and a failed
/// reconnection step is tried again by the next connection, so both are only logged.
async fn apply<I: Inbound>(
    inbound: &I,
    event: BridgeEvent,
    resume: &mut Resume,
) -> Result<(), StreamError> {
    let failed = match &event {
        BridgeEvent::Posted(p) => {
            Failure::Reconnect(format!("could not apply posted of post {}", p.id))
        }
        BridgeEvent::Edited(p) => {
            Failure::Reconnect(format!("could not apply post_edited of post {}", p.id))
        }
        BridgeEvent::Deleted(p) => {
            Failure::Reconnect(format!("could not apply post_deleted of post {}", p.id))
        }
        BridgeEvent::Reaction(r) => {
            Failure::Reconnect(format!("could not apply a reaction on post {}", r.post_id))
        }
        BridgeEvent::Typing { .. } => Failure::Debug("could not pass on an operator's typing"),
        BridgeEvent::Reconnected { catch_up: true } => {
            Failure::Warn("catching up with Mattermost failed")
        }
        BridgeEvent::Reconnected { catch_up: false } => {
            Failure::Warn("could not hand on that Mattermost is back")
        }
    };
    let Err(e) = inbound.apply(event).await else {
        return Ok(());
    };
    match failed {
        Failure::Reconnect(what) => {
            resume.connection_id = None;
            return Err(StreamError::Protocol(format!("{what}: {e}")));
        }
        Failure::Debug(what) => tracing::debug!(error = %e, "{what}"),
        Failure::Warn(what) => tracing::warn!(error = %e, "{what}"),
    }
    Ok(())
}

/// What a failure to apply an event leads to.
enum Failure {
    /// Start afresh without resuming (the message says what failed).
    Reconnect(String),
    /// Log and go on.
    Debug(&'static str),
    Warn(&'static str),
}
