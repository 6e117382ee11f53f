//! How chats end by themselves, in storage: when each chat's visitor was last seen, the chats
//! whose visitor is gone, and the requests that wait for a reminder (see `jobs::lifecycle`
//! and migrations/sqlite/0006_lifecycle.sql). Presence lives in the database, not in memory,
//! so that several parley instances share it.

use super::{
    Store, StoreError,
    chats::{ChatRow, Closing},
    messages::{self, MessageRow, NewMessage},
    outbox::{self, OutboxTask},
};

/// Most chats one statement touches (SQLite allows 32766 parameters; this stays far below).
const TOUCH_CHUNK: usize = 500;

impl Store {
    /// Notes that the chat's visitor is here at `now` (a live socket connected or went away,
    /// or the visitor called the API). Ended chats are left alone; the time never goes back.
    pub async fn touch_visitor(&self, chat_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE chats SET visitor_seen_at = $1
             WHERE id = $2 AND status <> 'closed' AND visitor_seen_at < $1",
        )
        .bind(now)
        .bind(chat_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The same for many chats at once: those whose live sockets one instance holds. Returns
    /// how many changed.
    pub async fn touch_visitors(&self, chat_ids: &[String], now: i64) -> Result<u64, StoreError> {
        let mut changed = 0;
        for chunk in chat_ids.chunks(TOUCH_CHUNK) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "UPDATE chats SET visitor_seen_at = $1
                 WHERE status <> 'closed' AND visitor_seen_at < $1 AND id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now);
            for id in chunk {
                query = query.bind(id);
            }
            changed += query.execute(&self.write).await?.rows_affected();
        }
        Ok(changed)
    }

    /// When the chat's visitor was last seen (0: not since the chat was created).
    pub async fn visitor_seen_at(&self, chat_id: &str) -> Result<i64, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT visitor_seen_at FROM chats WHERE id = $1")
            .bind(chat_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|(t,)| t).ok_or(StoreError::NotFound)
    }

    /// Open chats whose visitor was neither seen nor started the chat since `unseen_since`,
    /// longest gone first.
    pub async fn list_chats_left(
        &self,
        unseen_since: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM chats
             WHERE status IN ('pending', 'active') AND visitor_seen_at < $1 AND created_at < $1
             ORDER BY visitor_seen_at, created_at
             LIMIT $2",
        )
        .bind(unseen_since)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Ends a chat whose visitor left, unless the visitor was seen since `unseen_since`: the
    /// condition is checked by the update itself, so a visitor reconnecting at that moment
    /// either keeps the chat or finds it ended, never half of each. `None`: nothing changed.
    pub async fn close_chat_if_left(
        &self,
        id: &str,
        closing: &Closing<'_>,
        unseen_since: i64,
        now: i64,
    ) -> Result<Option<(ChatRow, MessageRow)>, StoreError> {
        self.close_chat_where(id, closing, now, Some(unseen_since))
            .await
    }

    /// Requests started before `created_before` that nobody accepted and that were not
    /// reminded of yet, oldest first.
    pub async fn list_chats_to_remind(
        &self,
        created_before: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM chats
             WHERE status = 'pending' AND reminded_at IS NULL AND created_at < $1
             ORDER BY created_at
             LIMIT $2",
        )
        .bind(created_before)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Claims the one reminder of a request (however many instances try), and in the same
    /// transaction stores `notice` for the visitor and queues the reminder post. `None`: the
    /// chat was reminded of already, is no longer pending, or is younger than
    /// `created_before`.
    pub async fn remind_chat(
        &self,
        id: &str,
        notice: &NewMessage<'_>,
        created_before: i64,
        now: i64,
    ) -> Result<Option<MessageRow>, StoreError> {
        let mut tx = self.write.begin().await?;
        let claimed = sqlx::query(
            "UPDATE chats SET reminded_at = $1
             WHERE id = $2 AND status = 'pending' AND reminded_at IS NULL AND created_at < $3",
        )
        .bind(now)
        .bind(id)
        .bind(created_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let message = messages::insert(&mut tx, id, notice)
            .await?
            .ok_or_else(|| StoreError::Conflict("still-waiting notice".into()))?;
        let task = OutboxTask::Reminder {
            key: OutboxTask::new_key(),
        };
        outbox::enqueue(&mut tx, id, &task, now).await?;
        tx.commit().await?;
        Ok(Some(message))
    }
}
