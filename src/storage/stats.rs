//! Figures about the whole database, for `/metrics`.

use super::{Store, StoreError};

impl Store {
    /// How many chats there are in each status.
    pub async fn count_chats_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT status, COUNT(*) FROM chats GROUP BY status")
                .fetch_all(&self.read)
                .await?,
        )
    }

    /// Undelivered outbox tasks: how many, and when the oldest was queued (ms).
    pub async fn outbox_backlog(&self) -> Result<(i64, Option<i64>), StoreError> {
        Ok(
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE done_at IS NULL")
                .fetch_one(&self.read)
                .await?,
        )
    }
}
