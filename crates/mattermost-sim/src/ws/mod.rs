//! WebSocket hub: event envelopes, per-connection sequence numbers, the dead queue and
//! the queue of events for disconnected connections that makes resumption possible.
//!
//! Mirrors the real server's `WebConn`/`Hub` (MM:app/platform/web_conn.go, web_hub.go):
//! a connection outlives its socket for 5 minutes so a client can come back with
//! `?connection_id=&sequence_number=`; the last 128 sent events are kept for replay and
//! events published while disconnected are queued (up to 256) and delivered on resume.

pub mod socket;

use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

use crate::model::new_id;

/// Already-sent events kept per connection for replay (`deadQueueSize`).
const DEAD_QUEUE_SIZE: usize = 128;
/// Events queued for a disconnected connection before it is given up (`sendQueueSize`).
const SEND_QUEUE_SIZE: usize = 256;
/// How long a disconnected connection stays resumable (`inactiveConnReaperInterval`).
const RESUMABLE_FOR: Duration = Duration::from_secs(5 * 60);

/// What the hub asks a socket task to do.
#[derive(Debug)]
pub enum Out {
    Text(String),
    /// Drop the socket without a close handshake.
    Close,
}

/// The `broadcast` part of an event envelope: who receives it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Broadcast {
    pub omit_users: Option<Map<String, Value>>,
    pub user_id: String,
    pub channel_id: String,
    pub team_id: String,
    pub connection_id: String,
    pub omit_connection_id: String,
}

#[derive(Debug, Clone)]
pub struct WsEvent {
    pub event: String,
    pub data: Value,
    pub broadcast: Broadcast,
}

impl WsEvent {
    pub fn new(event: &str, data: Value, broadcast: Broadcast) -> Self {
        WsEvent {
            event: event.to_owned(),
            data,
            broadcast,
        }
    }

    fn encode(&self, seq: i64) -> String {
        #[derive(Serialize)]
        struct Envelope<'a> {
            event: &'a str,
            data: &'a Value,
            broadcast: &'a Broadcast,
            seq: i64,
        }
        serde_json::to_string(&Envelope {
            event: &self.event,
            data: &self.data,
            broadcast: &self.broadcast,
            seq,
        })
        .unwrap_or_default()
    }
}

/// Who may receive an event, resolved by the state from the broadcast's channel/team.
pub enum Audience {
    Everyone,
    Users(HashSet<String>),
}

struct Conn {
    id: String,
    user_id: String,
    next_seq: i64,
    dead: VecDeque<(i64, String)>,
    pending: VecDeque<WsEvent>,
    socket: Option<(u64, UnboundedSender<Out>)>,
    inactive_since: Option<Instant>,
}

impl Conn {
    /// Writes an event now (numbering it) or queues it until the client resumes.
    /// Returns false when the queue overflowed and the connection must be dropped.
    fn deliver(&mut self, ev: &WsEvent) -> bool {
        match &self.socket {
            Some((_, tx)) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let text = ev.encode(seq);
                if self.dead.len() == DEAD_QUEUE_SIZE {
                    self.dead.pop_front();
                }
                self.dead.push_back((seq, text.clone()));
                // A send error means the socket task is already gone; the event stays
                // in the dead queue and is replayed on resume.
                let _ = tx.send(Out::Text(text));
                true
            }
            None => {
                self.pending.push_back(ev.clone());
                self.pending.len() <= SEND_QUEUE_SIZE
            }
        }
    }

    fn flush_pending(&mut self) {
        while let Some(ev) = self.pending.pop_front() {
            self.deliver(&ev);
        }
    }

    fn send_hello(&mut self, server_version: &str) {
        let hello = WsEvent::new(
            "hello",
            json!({
                "connection_id": self.id,
                "server_version": server_version,
                "server_hostname": "mattermost-sim",
            }),
            Broadcast {
                user_id: self.user_id.clone(),
                ..Broadcast::default()
            },
        );
        self.deliver(&hello);
    }
}

#[derive(Default)]
pub struct Hub {
    conns: HashMap<String, Conn>,
    /// Every open socket, authenticated or not, so faults can cut them all.
    sockets: HashMap<u64, UnboundedSender<Out>>,
    next_socket: u64,
    /// Pongs received from clients so far (keep-alive answers to the server's pings).
    pub pongs: u64,
}

impl Hub {
    pub fn register_socket(&mut self, tx: UnboundedSender<Out>) -> u64 {
        self.next_socket += 1;
        self.sockets.insert(self.next_socket, tx);
        self.next_socket
    }

    /// Called when a socket task ends: its connection becomes inactive but resumable.
    pub fn unregister_socket(&mut self, socket_id: u64) {
        self.sockets.remove(&socket_id);
        for conn in self.conns.values_mut() {
            if conn.socket.as_ref().is_some_and(|(id, _)| *id == socket_id) {
                conn.socket = None;
                conn.inactive_since = Some(Instant::now());
            }
        }
    }

    /// Whether the user has an open, authenticated socket.
    pub fn has_socket_for(&self, user_id: &str) -> bool {
        self.conns
            .values()
            .any(|c| c.user_id == user_id && c.socket.is_some())
    }

    /// Sends a reply (`{status, seq_reply}`) that is not an event and carries no `seq`.
    pub fn reply(&self, socket_id: u64, body: &Value) {
        if let Some(tx) = self.sockets.get(&socket_id) {
            let _ = tx.send(Out::Text(body.to_string()));
        }
    }

    /// Attaches an authenticated socket as a brand-new connection and sends `hello`.
    pub fn attach_new(
        &mut self,
        user_id: &str,
        socket_id: u64,
        server_version: &str,
    ) -> Option<String> {
        let tx = self.sockets.get(&socket_id)?.clone();
        let mut conn = Conn {
            id: new_id(),
            user_id: user_id.to_owned(),
            next_seq: 0,
            dead: VecDeque::new(),
            pending: VecDeque::new(),
            socket: Some((socket_id, tx)),
            inactive_since: None,
        };
        conn.send_hello(server_version);
        let id = conn.id.clone();
        self.conns.insert(id.clone(), conn);
        Some(id)
    }

    /// Resumes `connection_id` at `seq` the way the real write pump does:
    /// - no loss (the last sent event is `seq - 1`): just deliver what was queued;
    /// - `seq` still in the dead queue: replay from it with the original numbers;
    /// - otherwise: a new connection id, a fresh `hello` with seq 0, then the queue.
    ///
    /// A successful resume sends **no** `hello` (web_hub.go only sends it when the
    /// connection's reuse count is 0). An unknown, foreign, expired or still-open
    /// connection id gives a brand-new connection.
    pub fn attach_resume(
        &mut self,
        user_id: &str,
        connection_id: &str,
        seq: i64,
        socket_id: u64,
        server_version: &str,
    ) -> Option<String> {
        self.reap();
        let resumable = self
            .conns
            .get(connection_id)
            .is_some_and(|c| c.user_id == user_id && c.socket.is_none());
        if !resumable {
            return self.attach_new(user_id, socket_id, server_version);
        }
        let tx = self.sockets.get(&socket_id)?.clone();
        let mut conn = self.conns.remove(connection_id)?;
        conn.socket = Some((socket_id, tx.clone()));
        conn.inactive_since = None;
        let no_loss = conn.dead.back().is_none_or(|(last, _)| *last == seq - 1);
        if no_loss {
            conn.flush_pending();
        } else if let Some(pos) = conn.dead.iter().position(|(s, _)| *s == seq) {
            for (_, text) in conn.dead.iter().skip(pos) {
                let _ = tx.send(Out::Text(text.clone()));
            }
            conn.flush_pending();
        } else {
            conn.id = new_id();
            conn.dead.clear();
            conn.next_seq = 0;
            conn.send_hello(server_version);
            conn.flush_pending();
        }
        let id = conn.id.clone();
        self.conns.insert(id.clone(), conn);
        Some(id)
    }

    /// Delivers an event to every connection whose user is in the audience.
    pub fn publish(&mut self, ev: &WsEvent, audience: &Audience) {
        self.reap();
        let b = &ev.broadcast;
        let mut overflowed = Vec::new();
        for conn in self.conns.values_mut() {
            if !b.connection_id.is_empty() && conn.id != b.connection_id {
                continue;
            }
            if !b.omit_connection_id.is_empty() && conn.id == b.omit_connection_id {
                continue;
            }
            if b.omit_users
                .as_ref()
                .is_some_and(|o| o.contains_key(&conn.user_id))
            {
                continue;
            }
            if !b.user_id.is_empty() && conn.user_id != b.user_id {
                continue;
            }
            if let Audience::Users(users) = audience
                && !users.contains(&conn.user_id)
            {
                continue;
            }
            if !conn.deliver(ev) {
                overflowed.push(conn.id.clone());
            }
        }
        for id in overflowed {
            self.conns.remove(&id);
        }
    }

    /// Cuts every open socket. Connections stay resumable.
    pub fn drop_all(&mut self) {
        for tx in self.sockets.values() {
            let _ = tx.send(Out::Close);
        }
        self.sockets.clear();
        let now = Instant::now();
        for conn in self.conns.values_mut() {
            if conn.socket.take().is_some() {
                conn.inactive_since = Some(now);
            }
        }
    }

    /// Cuts every open socket and forgets every connection, as the server does once they
    /// have been gone longer than the reaper allows: a client cannot resume and misses what
    /// happens until it connects afresh.
    pub fn expire_all(&mut self) {
        self.drop_all();
        self.conns.clear();
    }

    pub fn open_count(&self) -> usize {
        self.conns.values().filter(|c| c.socket.is_some()).count()
    }

    fn reap(&mut self) {
        self.conns.retain(|_, c| {
            c.inactive_since
                .is_none_or(|since| since.elapsed() < RESUMABLE_FOR)
        });
    }
}
