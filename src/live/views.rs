//! What a visitor sees of a chat: the JSON views shared by the API and the live socket.

use serde::Serialize;

use crate::{
    domain::{ChatStatus, Sender, files::is_inline_image},
    security::FileLinks,
    storage::{chats::ChatRow, files::FileRow, messages::MessageRow, rfc3339},
};

/// A chat as the visitor API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChatView {
    pub id: String,
    pub status: ChatStatus,
    pub operator: Option<OperatorView>,
    pub created_at: String,
    pub closed_at: Option<String>,
    /// What the visitor gave when starting the chat (to prefill a "leave a message" form).
    pub visitor: VisitorView,
}

/// The visitor's own details, as they gave them.
#[derive(Debug, Clone, Serialize)]
pub struct VisitorView {
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The operator as the visitor sees them.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorView {
    pub name: String,
}

impl From<&ChatRow> for ChatView {
    fn from(c: &ChatRow) -> Self {
        Self {
            id: c.id.clone(),
            status: c.status(),
            operator: c.operator_name.clone().map(|name| OperatorView { name }),
            created_at: rfc3339(c.created_at),
            closed_at: c.closed_at.map(rfc3339),
            visitor: VisitorView {
                name: c.visitor_name.clone(),
                email: c.visitor_email.clone(),
            },
        }
    }
}

/// A message as the visitor API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub sender: Sender,
    pub author: Option<String>,
    pub text: String,
    /// Sanitised HTML for operator messages (rendered Markdown), escaped text otherwise.
    pub html: Option<String>,
    /// For system messages: what happened, for translation (`accepted`, `closed_by_visitor`,
    /// `closed_by_operator`, `transferred`, `visitor_left`, `still_waiting`).
    pub event: Option<String>,
    pub created_at: String,
    /// When the operator last edited the message in Mattermost, if ever.
    pub edited_at: Option<String>,
    pub files: Vec<FileView>,
}

impl MessageView {
    /// The view of a stored message, with fresh download links for its files.
    pub fn new(m: &MessageRow, links: &FileLinks) -> Self {
        let now_s = crate::storage::now_ms() / 1000;
        Self {
            id: m.id,
            sender: m.sender(),
            author: m.author.clone(),
            text: m.body.clone(),
            html: m.html.clone(),
            event: m.event.clone(),
            created_at: rfc3339(m.created_at),
            edited_at: m.edited_at.map(rfc3339),
            files: m
                .files
                .iter()
                .map(|f| FileView::new(f, links, now_s))
                .collect(),
        }
    }
}

/// An attached file as the visitor API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    pub id: String,
    /// The sender's name for it (sanitised; for display only).
    pub name: String,
    pub size: i64,
    pub content_type: String,
    /// Whether it may be shown inline (PNG, JPEG, GIF, WebP).
    pub image: bool,
    /// A signed download link, valid for about an hour.
    pub url: String,
}

impl FileView {
    pub(super) fn new(f: &FileRow, links: &FileLinks, now_s: i64) -> Self {
        Self {
            id: f.id.clone(),
            name: f.name.clone(),
            size: f.size,
            content_type: f.content_type.clone(),
            image: is_inline_image(&f.content_type),
            url: links.url(&f.id, now_s),
        }
    }
}
