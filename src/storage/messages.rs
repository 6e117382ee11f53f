//! A chat's messages: what the visitor wrote, what operators wrote in Mattermost, and system
//! events, in one ordered list per chat.

use sqlx::{AnyConnection, FromRow};

use super::{
    Store, StoreError,
    outbox::{self, OutboxTask},
};
use crate::domain::Sender;

/// A stored message.
#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub chat_id: String,
    pub sender: String,
    pub author: Option<String>,
    pub body: String,
    pub html: Option<String>,
    pub event: Option<String>,
    pub post_id: Option<String>,
    pub created_at: i64,
}

impl MessageRow {
    pub fn sender(&self) -> Sender {
        Sender::parse(&self.sender).unwrap_or(Sender::System)
    }
}

/// A message about to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub sender: Sender,
    pub author: Option<&'a str>,
    pub body: &'a str,
    pub html: Option<&'a str>,
    pub event: Option<&'a str>,
    pub post_id: Option<&'a str>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, chat_id, sender, author, body, html, event, post_id, created_at";

/// Inserts a message inside the caller's transaction. Returns `None` when its Mattermost post
/// was already stored (each post is applied once).
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    chat_id: &str,
    m: &NewMessage<'_>,
) -> Result<Option<MessageRow>, StoreError> {
    let row = sqlx::query_as::<_, MessageRow>(&format!(
        "INSERT INTO messages (chat_id, sender, author, body, html, event, post_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (post_id) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(chat_id)
    .bind(m.sender.as_str())
    .bind(m.author)
    .bind(m.body)
    .bind(m.html)
    .bind(m.event)
    .bind(m.post_id)
    .bind(m.created_at)
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// What happened to a visitor's message.
#[derive(Debug)]
pub enum VisitorMessageOutcome {
    Stored(MessageRow),
    ChatClosed,
    NoSuchChat,
}

impl Store {
    /// Stores a visitor message and its delivery task in one transaction, so it is never
    /// acknowledged without being on its way to Mattermost.
    pub async fn insert_visitor_message(
        &self,
        chat_id: &str,
        author: &str,
        body: &str,
        html: &str,
        now: i64,
    ) -> Result<VisitorMessageOutcome, StoreError> {
        let mut tx = self.write.begin().await?;
        let status: Option<(String,)> = sqlx::query_as("SELECT status FROM chats WHERE id = $1")
            .bind(chat_id)
            .fetch_optional(&mut *tx)
            .await?;
        match status {
            None => return Ok(VisitorMessageOutcome::NoSuchChat),
            Some((s,)) if s == "closed" => return Ok(VisitorMessageOutcome::ChatClosed),
            Some(_) => {}
        }
        let message = NewMessage {
            sender: Sender::Visitor,
            author: Some(author),
            body,
            html: Some(html),
            event: None,
            post_id: None,
            created_at: now,
        };
        let row = insert(&mut tx, chat_id, &message)
            .await?
            .ok_or_else(|| StoreError::Conflict("visitor message".into()))?;
        let task = OutboxTask::RelayMessage {
            message_id: row.id,
            key: OutboxTask::new_key(),
        };
        outbox::enqueue(&mut tx, chat_id, &task, now).await?;
        tx.commit().await?;
        Ok(VisitorMessageOutcome::Stored(row))
    }

    /// Stores a message that came from Mattermost; `None` if that post was already applied.
    pub async fn insert_message_from_post(
        &self,
        chat_id: &str,
        message: &NewMessage<'_>,
    ) -> Result<Option<MessageRow>, StoreError> {
        let mut tx = self.write.begin().await?;
        let row = insert(&mut tx, chat_id, message).await?;
        if row.is_some() {
            sqlx::query("UPDATE chats SET last_post_at = $1 WHERE id = $2 AND last_post_at < $1")
                .bind(message.created_at)
                .bind(chat_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Records that an operator command post was carried out; `false` if it already was.
    pub async fn claim_post(&self, post_id: &str, chat_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO applied_posts (post_id, chat_id, applied_at) VALUES ($1, $2, $3)
             ON CONFLICT (post_id) DO NOTHING",
        )
        .bind(post_id)
        .bind(chat_id)
        .bind(super::now_ms())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Messages of a chat with an id above `after`, oldest first.
    pub async fn list_messages(
        &self,
        chat_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        Ok(sqlx::query_as::<_, MessageRow>(&format!(
            "SELECT {COLUMNS} FROM messages WHERE chat_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(chat_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }

    /// One message by id.
    pub async fn get_message(&self, id: i64) -> Result<MessageRow, StoreError> {
        sqlx::query_as::<_, MessageRow>(&format!("SELECT {COLUMNS} FROM messages WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Remembers which Mattermost post carries a message (for edits, deletes and echo checks).
    pub async fn set_message_post(&self, id: i64, post_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET post_id = $1 WHERE id = $2 AND post_id IS NULL")
            .bind(post_id)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
