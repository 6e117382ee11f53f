//! Prometheus metrics: what parley counts while it runs, and the text `/metrics` serves. Each
//! application has its own registry (no global recorder), so tests see only their own app.
//! Figures that live in the database (chats by status, the outbox) are read when scraped.

use std::{
    fmt,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

use crate::storage::{Store, StoreError, now_ms};

/// Which way a message crossed the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A visitor's message, posted into the chat's channel.
    ToMattermost,
    /// An operator's post, stored for the visitor.
    ToVisitor,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::ToMattermost => "to_mattermost",
            Self::ToVisitor => "to_visitor",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    /// Method and path template, e.g. `POST /posts`, `GET /channels/{id}/posts`.
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    endpoint: String,
    /// `unreachable`, `rate_limited`, `status_4xx`, `status_5xx` or `protocol`.
    error: &'static str,
}

/// Every chat status, so each has a series even at zero.
const CHAT_STATUSES: [&str; 3] = ["pending", "active", "closed"];

/// The metrics of one parley process. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    chats: Family<StatusLabels, Gauge>,
    outbox_depth: Gauge,
    outbox_oldest_age: Gauge<f64, AtomicU64>,
    relayed: Family<DirectionLabels, Counter>,
    mattermost_duration: Family<EndpointLabels, Histogram>,
    mattermost_errors: Family<ErrorLabels, Counter>,
    visitor_sockets: Gauge,
    mattermost_connected: Gauge,
    stream_reconnects: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every parley metric, all at zero.
    pub fn new() -> Self {
        let mut root = Registry::with_prefix("parley");
        let chats = Family::<StatusLabels, Gauge>::default();
        root.register("chats", "Chats by status", chats.clone());
        let outbox_depth = Gauge::default();
        root.register(
            "outbox_depth",
            "Deliveries to Mattermost not yet done",
            outbox_depth.clone(),
        );
        let outbox_oldest_age = Gauge::<f64, AtomicU64>::default();
        root.register_with_unit(
            "outbox_oldest_age",
            "Age of the oldest delivery to Mattermost not yet done (0 when there is none)",
            Unit::Seconds,
            outbox_oldest_age.clone(),
        );
        let relayed = Family::<DirectionLabels, Counter>::default();
        root.register(
            "messages_relayed",
            "Messages that crossed the bridge, by direction",
            relayed.clone(),
        );
        let mattermost_duration = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            // 5 ms to about 20 s.
            Histogram::new(exponential_buckets(0.005, 2.0, 13))
        });
        root.register_with_unit(
            "mattermost_request_duration",
            "Time of REST calls to Mattermost, failed ones included",
            Unit::Seconds,
            mattermost_duration.clone(),
        );
        let mattermost_errors = Family::<ErrorLabels, Counter>::default();
        root.register(
            "mattermost_request_errors",
            "REST calls to Mattermost that failed, by reason",
            mattermost_errors.clone(),
        );
        let visitor_sockets = Gauge::default();
        root.register(
            "visitor_websockets",
            "Open live WebSockets of visitors",
            visitor_sockets.clone(),
        );
        let mattermost_connected = Gauge::default();
        root.register(
            "mattermost_connected",
            "1 while parley is connected to Mattermost (REST and event stream), else 0",
            mattermost_connected.clone(),
        );
        let stream_reconnects = Counter::default();
        root.register(
            "mattermost_stream_reconnects",
            "Times the Mattermost event stream was opened again after a drop or failure",
            stream_reconnects.clone(),
        );
        for status in CHAT_STATUSES {
            chats.get_or_create(&StatusLabels { status }).set(0);
        }
        for direction in [Direction::ToMattermost, Direction::ToVisitor] {
            let labels = DirectionLabels {
                direction: direction.as_str(),
            };
            relayed.get_or_create(&labels).inc_by(0);
        }
        Self {
            inner: Arc::new(Inner {
                registry: root,
                chats,
                outbox_depth,
                outbox_oldest_age,
                relayed,
                mattermost_duration,
                mattermost_errors,
                visitor_sockets,
                mattermost_connected,
                stream_reconnects,
            }),
        }
    }

    /// Counts a message that crossed the bridge.
    pub fn message_relayed(&self, direction: Direction) {
        let labels = DirectionLabels {
            direction: direction.as_str(),
        };
        self.inner.relayed.get_or_create(&labels).inc();
    }

    /// Records one REST call to Mattermost: how long it took, and why it failed if it did.
    pub fn mattermost_call(&self, endpoint: &str, took: Duration, error: Option<&'static str>) {
        let labels = EndpointLabels {
            endpoint: endpoint.to_owned(),
        };
        self.inner
            .mattermost_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.inner
                .mattermost_errors
                .get_or_create(&ErrorLabels {
                    endpoint: labels.endpoint,
                    error,
                })
                .inc();
        }
    }

    /// Counts an open visitor WebSocket until the returned guard is dropped.
    pub fn visitor_socket(&self) -> SocketGuard {
        self.inner.visitor_sockets.inc();
        SocketGuard(self.inner.visitor_sockets.clone())
    }

    /// Whether parley is connected to Mattermost (set when scraped).
    pub fn set_mattermost_connected(&self, up: bool) {
        self.inner.mattermost_connected.set(i64::from(up));
    }

    /// Counts another attempt to open the Mattermost event stream after it dropped or failed.
    pub fn stream_reconnecting(&self) {
        self.inner.stream_reconnects.inc();
    }

    /// Reads the figures kept in the database and renders everything in the OpenMetrics text
    /// format.
    pub async fn render(&self, store: &Store) -> Result<String, StoreError> {
        let counts = store.count_chats_by_status().await?;
        for status in CHAT_STATUSES {
            let n = counts
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.inner
                .chats
                .get_or_create(&StatusLabels { status })
                .set(n);
        }
        let (depth, oldest) = store.outbox_backlog().await?;
        self.inner.outbox_depth.set(depth);
        let age_ms = oldest.map_or(0, |t| (now_ms() - t).max(0));
        self.inner.outbox_oldest_age.set(age_ms as f64 / 1000.0);
        let mut text = String::new();
        encode(&mut text, &self.inner.registry).expect("writing to a String cannot fail");
        Ok(text)
    }
}

/// Keeps a visitor WebSocket counted while it lives.
#[derive(Debug)]
pub struct SocketGuard(Gauge);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_counted_while_open() {
        let metrics = Metrics::new();
        let first = metrics.visitor_socket();
        let second = metrics.visitor_socket();
        assert_eq!(metrics.inner.visitor_sockets.get(), 2);
        drop(first);
        assert_eq!(metrics.inner.visitor_sockets.get(), 1);
        drop(second);
        assert_eq!(metrics.inner.visitor_sockets.get(), 0);
    }

    #[test]
    fn calls_and_errors_are_counted_per_endpoint() {
        let metrics = Metrics::new();
        metrics.mattermost_call("POST /posts", Duration::from_millis(3), None);
        metrics.mattermost_call("POST /posts", Duration::from_millis(40), Some("status_5xx"));
        let mut text = String::new();
        encode(&mut text, &metrics.inner.registry).unwrap();
        assert!(
            text.contains(
                "parley_mattermost_request_duration_seconds_count{endpoint=\"POST /posts\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "parley_mattermost_request_errors_total{endpoint=\"POST /posts\",error=\"status_5xx\"} 1"
            ),
            "{text}"
        );
    }
}
