//! What parley knows about attached files (name, type, size, the Mattermost copy); the bytes
//! are in [`super::blobs`].

use sqlx::{AnyConnection, FromRow};

use super::{Store, StoreError};

/// A stored file.
#[derive(Debug, Clone, FromRow)]
pub struct FileRow {
    pub id: String,
    pub chat_id: String,
    pub message_id: i64,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub mm_file_id: Option<String>,
    pub created_at: i64,
}

/// A file about to be stored with its message.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub mm_file_id: Option<String>,
}

const COLUMNS: &str = "id, chat_id, message_id, name, content_type, size, mm_file_id, created_at";

/// Stores a message's files inside the caller's transaction.
pub(crate) async fn insert_all(
    conn: &mut AnyConnection,
    chat_id: &str,
    message_id: i64,
    files: &[NewFile],
    now: i64,
) -> Result<Vec<FileRow>, StoreError> {
    let mut rows = Vec::with_capacity(files.len());
    for (position, f) in files.iter().enumerate() {
        let row = sqlx::query_as::<_, FileRow>(&format!(
            "INSERT INTO files (id, chat_id, message_id, position, name, content_type, size,
                                mm_file_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(&f.id)
        .bind(chat_id)
        .bind(message_id)
        .bind(position as i64)
        .bind(&f.name)
        .bind(&f.content_type)
        .bind(f.size)
        .bind(f.mm_file_id.as_deref())
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        rows.push(row);
    }
    Ok(rows)
}

/// Bytes the visitor has uploaded into a chat so far.
pub(crate) async fn visitor_bytes(
    conn: &mut AnyConnection,
    chat_id: &str,
) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(f.size), 0) AS BIGINT) FROM files f
         JOIN messages m ON m.id = f.message_id
         WHERE f.chat_id = $1 AND m.sender = 'visitor'",
    )
    .bind(chat_id)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// The files of the given messages, in upload order, on the caller's connection.
pub(crate) async fn of_messages(
    conn: &mut AnyConnection,
    message_ids: &[i64],
) -> Result<Vec<FileRow>, StoreError> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM files WHERE message_id IN ({}) ORDER BY message_id, position",
        super::placeholders(1, message_ids.len())
    );
    let mut query = sqlx::query_as::<_, FileRow>(&sql);
    for id in message_ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(conn).await?)
}

impl Store {
    /// Bytes of every kept file (all chats, visitors' and operators'), for the global quota.
    pub async fn stored_file_bytes(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files")
                .fetch_one(&self.read)
                .await?;
        Ok(n)
    }

    /// Bytes visitors uploaded (all chats) since `since` (ms), for the daily quota.
    pub async fn visitor_file_bytes_since(&self, since: i64) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(f.size), 0) AS BIGINT) FROM files f
             JOIN messages m ON m.id = f.message_id
             WHERE f.created_at >= $1 AND m.sender = 'visitor'",
        )
        .bind(since)
        .fetch_one(&self.read)
        .await?;
        Ok(n)
    }

    /// One file by id.
    pub async fn get_file(&self, id: &str) -> Result<Option<FileRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, FileRow>(&format!("SELECT {COLUMNS} FROM files WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    /// A file as its chat's visitor may see it: not attached to a message an operator deleted
    /// or to an internal note.
    pub async fn get_visitor_file(&self, id: &str) -> Result<Option<FileRow>, StoreError> {
        Ok(sqlx::query_as::<_, FileRow>(
            "SELECT f.id, f.chat_id, f.message_id, f.name, f.content_type, f.size, f.mm_file_id,
                    f.created_at
             FROM files f JOIN messages m ON m.id = f.message_id
             WHERE f.id = $1 AND m.deleted_at IS NULL AND m.internal = 0",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Remembers the Mattermost copy of a visitor's file, so a retried delivery does not upload
    /// it again.
    pub async fn set_file_mm_id(&self, id: &str, mm_file_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE files SET mm_file_id = $1 WHERE id = $2")
            .bind(mm_file_id)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
