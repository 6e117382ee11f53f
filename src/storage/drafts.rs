//! The Mattermost connection an admin is entering, between the steps of the settings form
//! (`connection_drafts`): one per back-office session, removed with it.

use super::{Store, StoreError};

/// A draft as stored: the server and the bot token (a secret: never rendered).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DraftRow {
    pub url: String,
    pub token: String,
    pub created_at: i64,
}

impl Store {
    /// The session's draft written after `since` (ms), if any.
    pub async fn get_connection_draft(
        &self,
        session_hash: &str,
        since: i64,
    ) -> Result<Option<DraftRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT url, token, created_at FROM connection_drafts
             WHERE session_hash = $1 AND created_at > $2",
        )
        .bind(session_hash)
        .bind(since)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Stores the session's draft, replacing an earlier one.
    pub async fn put_connection_draft(
        &self,
        session_hash: &str,
        url: &str,
        token: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO connection_drafts (session_hash, url, token, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_hash) DO UPDATE SET url = excluded.url,
                 token = excluded.token, created_at = excluded.created_at",
        )
        .bind(session_hash)
        .bind(url)
        .bind(token)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Forgets the session's draft (saved, or abandoned).
    pub async fn delete_connection_draft(&self, session_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM connection_drafts WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Removes drafts written before `before` (ms).
    pub async fn delete_old_connection_drafts(&self, before: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM connection_drafts WHERE created_at <= $1")
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
