//! What visitors see of their chats, and the hub that pushes it to their live sockets.

pub mod hub;
pub mod views;

pub use hub::{Hub, LiveEvent, Relay};
pub use views::{ChatView, FileView, MessageView, OperatorView, VisitorView};
