//! The back office's use cases, apart from HTTP: manager accounts (passwords, one-time setup
//! links, sign-in limits), the settings managers change (widget texts and look, the
//! cleanup delay) and the Mattermost connection set by admins. The pages are in `http::admin`.

pub mod accounts;
pub mod connection;
pub mod password_work;
pub mod settings;

pub use accounts::{BackOffice, Role};
