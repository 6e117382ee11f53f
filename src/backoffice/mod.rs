//! The back office's use cases, apart from HTTP: manager accounts (passwords, one-time setup
//! links, sign-in limits) and the settings managers change (widget texts and look, the
//! cleanup delay). The pages are in `http::admin`.

pub mod accounts;
pub mod settings;

pub use accounts::{BackOffice, Role};
