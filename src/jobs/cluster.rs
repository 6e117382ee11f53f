//! The loops of an instance among others (see `cluster` for the handle and the design): notes
//! out and in, competing for leadership, running the leader's jobs, and mirroring the
//! leader's state on the others.

use sqlx::{Connection, PgConnection, postgres::PgListener};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use serde::{Deserialize, Serialize};

use crate::{
    app::{App, connection},
    cluster::{CHANNEL, Cluster, LEADER_LOCK, Note, PUBLISH_EVERY, Parts, TRY_EVERY, listen},
    domain::{department::Route, presence::RouteStatus},
    live::LiveEvent,
    storage::{StoreError, now_ms},
};

/// The leader's state older than this is not trusted: the event stream counts as down.
const STATE_FRESH_MS: i64 = 10_000;
/// The `server_values` key of the leader's state.
const STATE_KEY: &str = "cluster_leader_state";

/// Runs this instance's part until `shutdown`: sends and receives notes, and, with
/// `jobs`, competes for leadership and runs `jobs` while leading.
pub async fn run<F>(state: App, parts: Parts, shutdown: CancellationToken, jobs: Option<F>)
where
    F: Fn(App, CancellationToken) -> JoinSet<()>,
{
    let Parts {
        url,
        notes,
        listener,
    } = parts;
    let mut tasks = JoinSet::new();
    tasks.spawn(send_notes(state.clone(), notes, shutdown.clone()));
    tasks.spawn(receive_notes(
        state.clone(),
        url.clone(),
        listener,
        shutdown.clone(),
    ));
    match jobs {
        Some(jobs) => lead_when_possible(&state, &url, &shutdown, jobs).await,
        None => follow(&state, &shutdown).await,
    }
    while tasks.join_next().await.is_some() {}
}

/// Sends queued notes with `pg_notify`, one at a time so they keep their order.
async fn send_notes(
    state: App,
    mut notes: mpsc::UnboundedReceiver<Note>,
    shutdown: CancellationToken,
) {
    loop {
        let note = tokio::select! {
            n = notes.recv() => n,
            _ = shutdown.cancelled() => {
                // What was published before shutting down still goes out.
                notes.try_recv().ok()
            }
        };
        let Some(note) = note else { return };
        let payload = serde_json::to_string(&note).expect("notes serialise");
        if let Err(e) = state.store.notify(CHANNEL, &payload).await {
            tracing::warn!(error = %e, ?note, "could not tell the other instances");
        }
    }
}

/// Receives notes and delivers them to this instance's sockets. After a listener gap (the
/// connection dropped), it listens again and tells every socket here to catch up.
async fn receive_notes(
    state: App,
    url: String,
    mut listener: PgListener,
    shutdown: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.try_recv() => r,
        };
        let gap = match received {
            Ok(Some(n)) => {
                match serde_json::from_str::<Note>(n.payload()) {
                    Ok(note) => deliver(&state, note).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "an unreadable note from another instance")
                    }
                }
                false
            }
            Ok(None) => {
                tracing::warn!("lost the connection listening to the other instances");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "listening to the other instances failed");
                true
            }
        };
        if gap {
            let Some(again) = relisten(&url, &shutdown).await else {
                return;
            };
            listener = again;
            catch_up_sockets(&state).await;
        }
    }
}

/// Listens anew, retrying every second; `None` on shutdown.
async fn relisten(url: &str, shutdown: &CancellationToken) -> Option<PgListener> {
    loop {
        match listen(url).await {
            Ok(l) => return Some(l),
            Err(e) => tracing::warn!(error = %e, "cannot listen to the other instances yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(TRY_EVERY) => {}
        }
    }
}

/// After a gap: every chat with a socket here reads its messages after its last id, and its
/// current state. (Edits and deletes during the gap are seen on the next reload.)
async fn catch_up_sockets(state: &App) {
    for chat_id in state.hub.connected_chats() {
        state.hub.deliver(&chat_id, LiveEvent::NewMessages);
        if let Ok(Some(chat)) = state.store.get_chat(&chat_id).await {
            state.hub.deliver(
                &chat_id,
                LiveEvent::Chat {
                    chat: (&chat).into(),
                },
            );
        }
    }
}

/// Turns a note into events for the sockets here (reading what is needed), or into work for
/// the leader.
async fn deliver(state: &App, note: Note) {
    let hub = &state.hub;
    match note {
        Note::Messages { chat } if hub.is_listened(&chat) => {
            hub.deliver(&chat, LiveEvent::NewMessages);
        }
        Note::Chat { chat } if hub.is_listened(&chat) => match state.store.get_chat(&chat).await {
            Ok(Some(row)) => hub.deliver(
                &chat,
                LiveEvent::Chat {
                    chat: (&row).into(),
                },
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not read a chat for its sockets"),
        },
        Note::Updated { chat, id } if hub.is_listened(&chat) => {
            match state.store.get_message(id).await {
                Ok(m) => hub.deliver(
                    &chat,
                    LiveEvent::MessageUpdated {
                        message: hub.view(&m),
                    },
                ),
                Err(e) => tracing::warn!(error = %e, "could not read an edited message"),
            }
        }
        Note::Deleted { chat, id } if hub.is_listened(&chat) => {
            hub.deliver(&chat, LiveEvent::MessageDeleted { id });
        }
        Note::Typing { chat, name } if hub.is_listened(&chat) => {
            hub.deliver(&chat, LiveEvent::Typing { name });
        }
        Note::Wake if is_leader(state) => state.outbox.wake_here(),
        Note::Connection => connection::reload(state).await,
        Note::VisitorTyping { channel } if is_leader(state) => {
            if let Some(bridge) = state.bridge() {
                bridge.visitor_typing(&channel);
            }
        }
        _ => {}
    }
}

fn is_leader(state: &App) -> bool {
    state.cluster.as_ref().is_some_and(Cluster::is_leader)
}

/// Competes for leadership until `shutdown`; follows meanwhile.
async fn lead_when_possible<F>(state: &App, url: &str, shutdown: &CancellationToken, jobs: F)
where
    F: Fn(App, CancellationToken) -> JoinSet<()>,
{
    let cluster = state.cluster.clone().expect("run with a cluster");
    let mut conn: Option<PgConnection> = None;
    let mut every = tokio::time::interval(TRY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut touched = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        if conn.is_none() {
            match PgConnection::connect(url).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach PostgreSQL to compete for leadership")
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            let won: Result<bool, sqlx::Error> =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(LEADER_LOCK)
                    .fetch_one(&mut *c)
                    .await;
            match won {
                Ok(true) => {
                    let c = conn.take().expect("just used");
                    cluster.set_leader(true);
                    tracing::info!(
                        "this instance leads: it runs the Mattermost event stream and the scheduled jobs"
                    );
                    let c = lead(state, c, shutdown, &jobs).await;
                    cluster.set_leader(false);
                    // A connection that failed is dropped; on shutdown it is closed, which
                    // releases the lock at once.
                    if let Some(c) = c {
                        let _ = c.close().await;
                    }
                    if shutdown.is_cancelled() {
                        return;
                    }
                    tracing::warn!("this instance no longer leads");
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the leadership connection failed");
                    conn = None;
                }
            }
        }
        mirror_leader(state).await;
        if touched.elapsed() >= crate::jobs::lifecycle::RUN_EVERY {
            touched = tokio::time::Instant::now();
            touch_present_visitors(state).await;
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

/// Only follows (an instance that runs no background jobs).
async fn follow(state: &App, shutdown: &CancellationToken) {
    let mut every = tokio::time::interval(TRY_EVERY);
    let mut touched = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        mirror_leader(state).await;
        if touched.elapsed() >= crate::jobs::lifecycle::RUN_EVERY {
            touched = tokio::time::Instant::now();
            touch_present_visitors(state).await;
        }
    }
}

/// Runs the jobs while the lock connection answers. Returns the connection unless it failed.
async fn lead<F>(
    state: &App,
    mut conn: PgConnection,
    shutdown: &CancellationToken,
    jobs: &F,
) -> Option<PgConnection>
where
    F: Fn(App, CancellationToken) -> JoinSet<()>,
{
    let stop = shutdown.child_token();
    let mut running = jobs(state.clone(), stop.clone());
    let mut every = tokio::time::interval(PUBLISH_EVERY);
    let healthy = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break true,
            _ = every.tick() => {}
        }
        let alive = tokio::time::timeout(PUBLISH_EVERY * 2, conn.ping()).await;
        if !matches!(alive, Ok(Ok(()))) {
            tracing::error!(
                "lost the leadership connection to PostgreSQL; stopping the leader's jobs"
            );
            break false;
        }
        // A change of the connection whose note this instance missed is picked up here.
        connection::reload(state).await;
        if let Err(e) = publish_state(state).await {
            tracing::warn!(error = %e, "could not publish the leader's state");
        }
    };
    stop.cancel();
    while running.join_next().await.is_some() {}
    if let Some(bridge) = state.bridge() {
        bridge.set_stream_connected(false);
    }
    let _ = publish_state(state).await;
    healthy.then_some(conn)
}

/// What the leader knows and the others need.
#[derive(Debug, Serialize, Deserialize)]
struct LeaderState {
    /// When it was written (Unix ms).
    at: i64,
    /// The Mattermost event stream is up.
    stream: bool,
    /// The operators' presence per route, as last polled.
    presence: Vec<(Route, RouteStatus)>,
    /// Which connection the stream and presence are of ([`connection::fingerprint`]).
    #[serde(default)]
    connection: Option<String>,
}

async fn publish_state(state: &App) -> Result<(), StoreError> {
    let Some(bridge) = state.bridge() else {
        return Ok(());
    };
    let leader = LeaderState {
        at: now_ms(),
        stream: bridge.is_online(),
        presence: bridge.presence.snapshot(),
        connection: Some(connection::fingerprint(bridge.settings())),
    };
    let value = serde_json::to_string(&leader).expect("the state serialises");
    state.store.set_value(STATE_KEY, &value).await
}

/// Copies the leader's state into this instance's bridge.
async fn mirror_leader(state: &App) {
    let leader = match state.store.value(STATE_KEY).await {
        Ok(Some(v)) => serde_json::from_str::<LeaderState>(&v).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "could not read the leader's state");
            None
        }
    };
    let Some(bridge) = state.bridge() else {
        if leader.is_some_and(|l| l.connection.is_some()) {
            // The leader is connected and this instance is not: a change it missed?
            connection::reload(state).await;
        }
        return;
    };
    if !bridge.is_resolved() {
        // Resolving the team and channel makes `accepting_chats` true here too.
        let _ = bridge.context().await;
    }
    let ours = connection::fingerprint(bridge.settings());
    match leader {
        Some(l) if l.connection.as_deref().is_none_or(|c| c == ours) => {
            bridge.set_stream_connected(l.stream && now_ms() - l.at < STATE_FRESH_MS);
            bridge.presence.replace(l.presence);
        }
        Some(_) => {
            // The leader uses another connection: one of us missed a change (a note lost in a
            // listener gap), or it is being applied. Read the saved one again; the state is
            // taken over once both use the same.
            bridge.set_stream_connected(false);
            connection::reload(state).await;
        }
        None => bridge.set_stream_connected(false),
    }
}

/// The chats whose sockets this instance holds are marked as seen (the leader's lifecycle
/// job does it for its own; see `jobs::lifecycle`).
async fn touch_present_visitors(state: &App) {
    let chats = state.hub.connected_chats();
    if let Err(e) = state.store.touch_visitors(&chats, now_ms()).await {
        tracing::warn!(error = %e, "could not note the visitors' presence");
    }
}
