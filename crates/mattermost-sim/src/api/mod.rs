//! REST API v4 handlers, one module per resource.

pub mod actions;
pub mod channels;
pub mod files;
pub mod posts;
pub mod reactions;
pub mod system;
pub mod teams;
pub mod users;
