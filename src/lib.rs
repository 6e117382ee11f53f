//! parley: website live chat answered from Mattermost.

/// Files on their way into a chat (received, typed, kept).
pub mod attachments;
/// The back office's use cases: manager accounts and the settings managers change.
pub mod backoffice;
/// The chat use cases shared by the API, the callback and what comes in from Mattermost.
pub mod chats;
/// Several instances on one PostgreSQL: events between them, leadership.
pub mod cluster;
/// What the commands besides `serve` share (opening the existing database).
pub mod commands;
/// Settings from `parley.toml` and `PARLEY_*` variables.
pub mod config;
/// Departments: routing, online hours, presence rules, texts and templates.
pub mod departments;
/// `parley doctor`: checks of the Mattermost connection and server settings.
pub mod doctor;
/// Domain types and input rules, without I/O.
pub mod domain;
/// Views sent to visitors, and the live event hub.
pub mod events;
/// The HTTP routes and their handlers.
pub mod http;
/// What comes in from Mattermost: one arm per `BridgeEvent` (posts, edits, deletes, typing,
/// reactions, catch-up).
pub mod inbound;
/// Background jobs (the outbox worker, the cleanup of chat channels).
pub mod jobs;
/// The bridge to Mattermost (REST client, event stream, post formats).
pub mod mattermost;
/// Prometheus metrics.
pub mod metrics;
/// The operators' `!` commands: one table (name, help text, handler).
pub mod operator_commands;
/// Visitor tokens and button signatures.
pub mod security;
/// Building and running the server.
pub mod startup;
/// State shared by handlers and jobs.
pub mod state;
/// All SQL.
pub mod storage;
/// Logging setup.
pub mod telemetry;
/// Room for uploads: the global quotas and the free-disk floor.
pub mod upload_room;
