//! parley: website live chat answered from Mattermost.

/// The application core: use cases over narrow handles (`App`).
pub mod app;
/// The commands besides `serve`: `doctor`, `department`, `admin`, `archive`.
pub mod cli;
/// Several instances on one PostgreSQL: events between them, leadership.
pub mod cluster;
/// Settings from `parley.toml` and `PARLEY_*` variables.
pub mod config;
/// Domain types and input rules, without I/O.
pub mod domain;
/// The HTTP routes and their handlers.
pub mod http;
/// Background jobs (the outbox worker, the cleanup of chat channels).
pub mod jobs;
/// Views sent to visitors, and the live event hub.
pub mod live;
/// The bridge to Mattermost (REST client, event stream, post formats).
pub mod mattermost;
/// Prometheus metrics.
pub mod metrics;
/// Visitor tokens and button signatures.
pub mod security;
/// Building and running the server.
pub mod startup;
/// All SQL.
pub mod storage;
/// Logging setup.
pub mod telemetry;
