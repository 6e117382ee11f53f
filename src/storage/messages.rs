//! A chat's messages: what the visitor wrote, what operators wrote in Mattermost, and system
//! events, in one ordered list per chat.

use std::collections::HashMap;

use sqlx::{AnyConnection, FromRow};

use super::{
    Backend, Store, StoreError,
    files::{self, FileRow, NewFile},
    outbox::{self, Enqueued, OutboxTask},
};
use crate::domain::Sender;

/// A stored message.
#[derive(Debug, Clone, Default, FromRow)]
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
    /// An operator note (`!note`): in the transcript, never shown to the visitor.
    #[sqlx(default)]
    pub internal: i64,
    /// When an operator last edited the post this message came from.
    #[sqlx(default)]
    pub edited_at: Option<i64>,
    /// When an operator deleted that post (the message is kept, but not shown).
    #[sqlx(default)]
    pub deleted_at: Option<i64>,
    /// Attached files (loaded with the message).
    #[sqlx(skip)]
    pub files: Vec<FileRow>,
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

pub(super) const COLUMNS: &str = "id, chat_id, sender, author, body, html, event, post_id, created_at, \
    internal, edited_at, deleted_at";

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

/// A visitor's message with its files (already on disk, in `tmp/`).
#[derive(Debug, Clone, Copy)]
pub struct VisitorMessage<'a> {
    pub author: &'a str,
    pub body: &'a str,
    pub html: &'a str,
    pub files: &'a [NewFile],
    /// Bytes the visitor may upload into the chat in all.
    pub chat_allowance: i64,
}

/// What happened to a visitor's message.
#[derive(Debug)]
pub enum VisitorMessageOutcome {
    /// Stored, with its delivery task.
    Stored {
        message: Box<MessageRow>,
        task: Box<Enqueued>,
    },
    ChatClosed,
    NoSuchChat,
    /// The files would take the chat past its upload allowance.
    OverChatAllowance,
}

/// Loads the files of messages (one query for all) on the caller's connection.
pub(super) async fn attach_files_on(
    conn: &mut AnyConnection,
    rows: &mut [MessageRow],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    for file in files::of_messages(conn, &ids).await? {
        if let Some(m) = rows.iter_mut().find(|m| m.id == file.message_id) {
            m.files.push(file);
        }
    }
    Ok(())
}

/// A visitor message waiting to be stored, with its chat and time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending<'a> {
    pub chat_id: &'a str,
    pub message: VisitorMessage<'a>,
    pub now: i64,
}

/// Stores visitor messages, their files and their delivery tasks inside the caller's
/// transaction, in the given order, and says what happened to each (nothing is written for a
/// message whose chat is gone, closed or over its files allowance).
///
/// Messages without files are stored a run at a time with one statement per table instead of
/// one per message: on SQLite every statement is a round trip to the connection's thread, and
/// many visitors writing at once share a transaction (`group_commit`). A message with files
/// is a run of its own, as its allowance check must see the files stored before it.
pub(super) async fn insert_visitor_messages_in(
    conn: &mut AnyConnection,
    backend: Backend,
    batch: &[Pending<'_>],
) -> Result<Vec<VisitorMessageOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut rest = batch;
    while !rest.is_empty() {
        let run = if rest[0].message.files.is_empty() {
            rest.iter()
                .position(|p| !p.message.files.is_empty())
                .unwrap_or(rest.len())
        } else {
            1
        };
        outcomes.extend(insert_run(conn, backend, &rest[..run]).await?);
        rest = &rest[run..];
    }
    Ok(outcomes)
}

async fn insert_run(
    conn: &mut AnyConnection,
    backend: Backend,
    run: &[Pending<'_>],
) -> Result<Vec<VisitorMessageOutcome>, StoreError> {
    // A no-op update, not a SELECT: it locks the chats' rows until commit on PostgreSQL
    // (SQLite has one writer anyway), so no status can change under this transaction.
    let mut chat_ids: Vec<&str> = run.iter().map(|p| p.chat_id).collect();
    chat_ids.sort_unstable();
    chat_ids.dedup();
    let sql = format!(
        "UPDATE chats SET status = status WHERE id IN ({}) RETURNING id, status",
        super::placeholders(1, chat_ids.len())
    );
    let mut query = sqlx::query_as::<_, (String, String)>(&sql);
    for id in &chat_ids {
        query = query.bind(*id);
    }
    let statuses: HashMap<String, String> =
        query.fetch_all(&mut *conn).await?.into_iter().collect();
    let mut outcomes: Vec<Option<VisitorMessageOutcome>> = Vec::with_capacity(run.len());
    let mut storing: Vec<&Pending<'_>> = Vec::with_capacity(run.len());
    for p in run {
        let refused = match statuses.get(p.chat_id).map(String::as_str) {
            None => Some(VisitorMessageOutcome::NoSuchChat),
            Some("closed") => Some(VisitorMessageOutcome::ChatClosed),
            Some(_) => None,
        };
        if refused.is_none() {
            storing.push(p);
        }
        outcomes.push(refused);
    }
    if let [p] = storing.as_slice()
        && !p.message.files.is_empty()
    {
        let adding: i64 = p.message.files.iter().map(|f| f.size).sum();
        if files::visitor_bytes(&mut *conn, p.chat_id).await? + adding > p.message.chat_allowance {
            return Ok(vec![VisitorMessageOutcome::OverChatAllowance]);
        }
    }
    if storing.is_empty() {
        return Ok(outcomes.into_iter().flatten().collect());
    }
    let mut rows = insert_visitor_rows(&mut *conn, &storing).await?;
    for (row, p) in rows.iter_mut().zip(&storing) {
        row.files =
            files::insert_all(&mut *conn, p.chat_id, row.id, p.message.files, p.now).await?;
    }
    let tasks: Vec<(&str, OutboxTask, i64)> = rows
        .iter()
        .zip(&storing)
        .map(|(row, p)| {
            let task = OutboxTask::RelayMessage {
                message_id: row.id,
                key: OutboxTask::new_key(),
            };
            (p.chat_id, task, p.now)
        })
        .collect();
    let enqueued = outbox::enqueue_returning(&mut *conn, backend, &tasks).await?;
    // Rows are matched to messages by position: check it, so that a mismatch fails the
    // transaction (each message is then tried alone) instead of answering the wrong visitor.
    let matched = rows
        .iter()
        .zip(&enqueued)
        .zip(&storing)
        .all(|((row, task), p)| row.chat_id == p.chat_id && task.row.chat_id == p.chat_id);
    if !matched || rows.len() != storing.len() || enqueued.len() != storing.len() {
        return Err(StoreError::Corrupt(
            "a multi-row insert returned rows that do not match its values".into(),
        ));
    }
    let mut stored = rows.into_iter().zip(enqueued);
    Ok(outcomes
        .into_iter()
        .filter_map(|refused| {
            refused.or_else(|| {
                let (message, task) = stored.next()?;
                Some(VisitorMessageOutcome::Stored {
                    message: Box::new(message),
                    task: Box::new(task),
                })
            })
        })
        .collect())
}

/// Inserts visitor messages with one statement; returns their rows in the given order.
async fn insert_visitor_rows(
    conn: &mut AnyConnection,
    storing: &[&Pending<'_>],
) -> Result<Vec<MessageRow>, StoreError> {
    let sql = format!(
        "INSERT INTO messages (chat_id, sender, author, body, html, created_at)
         VALUES {} RETURNING {COLUMNS}",
        super::values_rows(storing.len(), 5, "(?1, 'visitor', ?2, ?3, ?4, ?5)")
    );
    let mut query = sqlx::query_as::<_, MessageRow>(&sql);
    for p in storing {
        query = query
            .bind(p.chat_id)
            .bind(p.message.author)
            .bind(p.message.body)
            .bind(p.message.html)
            .bind(p.now);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    super::in_given_order(rows, storing.len(), |m| m.id)
}

impl Store {
    /// Stores a visitor message and its delivery task in one transaction, so it is never
    /// acknowledged without being on its way to Mattermost. The transaction is shared with
    /// the other visitor messages waiting for the writer (`group_commit`).
    pub async fn insert_visitor_message(
        &self,
        chat_id: &str,
        message: &VisitorMessage<'_>,
        now: i64,
    ) -> Result<VisitorMessageOutcome, StoreError> {
        let pending = Pending {
            chat_id,
            message: *message,
            now,
        };
        self.group_commit.insert(&pending).await
    }

    /// Stores a message that came from Mattermost; `None` if that post was already applied.
    pub async fn insert_message_from_post(
        &self,
        chat_id: &str,
        message: &NewMessage<'_>,
        attached: &[NewFile],
    ) -> Result<Option<MessageRow>, StoreError> {
        let mut tx = self.write.begin().await?;
        // The chat's row lock first (as every other writer of a chat's messages takes it), so
        // a chat's message ids are given in commit order: a socket that read up to one id
        // never misses a lower one committed later (several instances, see `cluster`).
        sqlx::query("UPDATE chats SET status = status WHERE id = $1")
            .bind(chat_id)
            .execute(&mut *tx)
            .await?;
        let mut row = insert(&mut tx, chat_id, message).await?;
        if let Some(row) = &mut row {
            row.files =
                files::insert_all(&mut tx, chat_id, row.id, attached, message.created_at).await?;
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

    /// The messages of a chat the visitor sees (no notes, nothing deleted) with an id above
    /// `after`, oldest first.
    pub async fn list_messages(
        &self,
        chat_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let mut rows = sqlx::query_as::<_, MessageRow>(&format!(
            "SELECT {COLUMNS} FROM messages
             WHERE chat_id = $1 AND id > $2 AND internal = 0 AND deleted_at IS NULL
             ORDER BY id LIMIT $3"
        ))
        .bind(chat_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        self.attach_files(&mut rows).await?;
        Ok(rows)
    }

    /// Loads the files of messages (one query for all).
    async fn attach_files(&self, rows: &mut [MessageRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.read.acquire().await?;
        attach_files_on(&mut conn, rows).await
    }

    /// Whether a Mattermost post is already in a transcript.
    pub async fn has_post(&self, post_id: &str) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM messages WHERE post_id = $1")
            .bind(post_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    /// One message by id.
    pub async fn get_message(&self, id: i64) -> Result<MessageRow, StoreError> {
        let row = sqlx::query_as::<_, MessageRow>(&format!(
            "SELECT {COLUMNS} FROM messages WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut rows = [row];
        self.attach_files(&mut rows).await?;
        let [row] = rows;
        Ok(row)
    }
}

/// A note an operator wrote with `!note`.
#[derive(Debug, Clone)]
pub struct NewNote<'a> {
    pub author: &'a str,
    pub body: &'a str,
    /// The command's post, so a replayed post is stored once.
    pub post_id: &'a str,
    pub created_at: i64,
}

impl Store {
    /// The whole transcript of a chat, oldest first: notes and deleted messages included (for
    /// the back office).
    pub async fn list_transcript(&self, chat_id: &str) -> Result<Vec<MessageRow>, StoreError> {
        let mut rows = sqlx::query_as::<_, MessageRow>(&format!(
            "SELECT {COLUMNS} FROM messages WHERE chat_id = $1 ORDER BY id"
        ))
        .bind(chat_id)
        .fetch_all(&self.read)
        .await?;
        self.attach_files(&mut rows).await?;
        Ok(rows)
    }

    /// Stores an operator note; `None` if its post was already stored.
    pub async fn insert_note(
        &self,
        chat_id: &str,
        note: &NewNote<'_>,
    ) -> Result<Option<MessageRow>, StoreError> {
        let html = crate::domain::markdown::html_escape(note.body);
        Ok(sqlx::query_as::<_, MessageRow>(&format!(
            "INSERT INTO messages (chat_id, sender, author, body, html, post_id, created_at, internal)
             VALUES ($1, 'operator', $2, $3, $4, $5, $6, 1)
             ON CONFLICT (post_id) DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(chat_id)
        .bind(note.author)
        .bind(note.body)
        .bind(html)
        .bind(note.post_id)
        .bind(note.created_at)
        .fetch_optional(&self.write)
        .await?)
    }

    /// An operator edited the post an operator message came from: the new text and its HTML.
    /// Returns the message if it changed (notes, deleted messages and unchanged text are left
    /// alone, so replayed or property-only edits change nothing).
    pub async fn update_message_from_post(
        &self,
        post_id: &str,
        body: &str,
        html: &str,
        edited_at: i64,
    ) -> Result<Option<MessageRow>, StoreError> {
        let row = sqlx::query_as::<_, MessageRow>(&format!(
            "UPDATE messages SET body = $1, html = $2, edited_at = $3
             WHERE post_id = $4 AND sender = 'operator' AND internal = 0
               AND deleted_at IS NULL AND body <> $1
             RETURNING {COLUMNS}"
        ))
        .bind(body)
        .bind(html)
        .bind(edited_at)
        .bind(post_id)
        .fetch_optional(&self.write)
        .await?;
        self.with_files(row).await
    }

    /// An operator deleted the post an operator message (or note) came from: the message is
    /// marked deleted and kept. Returns it the first time.
    pub async fn delete_message_from_post(
        &self,
        post_id: &str,
        deleted_at: i64,
    ) -> Result<Option<MessageRow>, StoreError> {
        let row = sqlx::query_as::<_, MessageRow>(&format!(
            "UPDATE messages SET deleted_at = $1
             WHERE post_id = $2 AND sender = 'operator' AND deleted_at IS NULL
             RETURNING {COLUMNS}"
        ))
        .bind(deleted_at)
        .bind(post_id)
        .fetch_optional(&self.write)
        .await?;
        self.with_files(row).await
    }

    async fn with_files(&self, row: Option<MessageRow>) -> Result<Option<MessageRow>, StoreError> {
        let Some(row) = row else {
            return Ok(None);
        };
        let mut rows = [row];
        self.attach_files(&mut rows).await?;
        let [row] = rows;
        Ok(Some(row))
    }
}
