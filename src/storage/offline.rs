//! Messages left through the widget's offline form, and their one post each in the
//! department's requests channel (delivered by `jobs::offline_posts`, retried like the outbox).

use sqlx::FromRow;

use super::{Store, StoreError, now_ms, outbox::OutboxTask};

/// A validated offline message.
#[derive(Debug, Clone)]
pub struct NewOfflineMessage {
    pub name: Option<String>,
    pub email: String,
    pub phone: Option<String>,
    pub body: String,
    pub page_url: Option<String>,
    pub visitor_ip: Option<String>,
    pub department_id: Option<i64>,
}

/// An offline message waiting to be posted to Mattermost.
#[derive(Debug, Clone, FromRow)]
pub struct OfflineMessageRow {
    pub id: i64,
    pub name: Option<String>,
    pub email: String,
    pub phone: Option<String>,
    pub body: String,
    pub page_url: Option<String>,
    pub created_at: i64,
    pub department_id: Option<i64>,
    pub post_key: String,
    pub post_attempts: i64,
    pub post_next_attempt_at: i64,
    pub post_first_attempt_at: Option<i64>,
}

impl Store {
    /// Stores an offline message (to be posted once) and returns its id.
    pub async fn insert_offline_message(&self, m: &NewOfflineMessage) -> Result<i64, StoreError> {
        let now = now_ms();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO offline_messages (name, email, body, page_url, visitor_ip, created_at,
                 phone, department_id, post_key, post_next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $6) RETURNING id",
        )
        .bind(m.name.as_deref())
        .bind(&m.email)
        .bind(&m.body)
        .bind(m.page_url.as_deref())
        .bind(m.visitor_ip.as_deref())
        .bind(now)
        .bind(m.phone.as_deref())
        .bind(m.department_id)
        .bind(OutboxTask::new_key())
        .fetch_one(&self.write)
        .await?;
        Ok(id)
    }

    /// Offline messages still to be posted, oldest first (due or not: the caller picks).
    pub async fn list_offline_to_post(
        &self,
        limit: i64,
    ) -> Result<Vec<OfflineMessageRow>, StoreError> {
        Ok(sqlx::query_as::<_, OfflineMessageRow>(
            "SELECT id, name, email, phone, body, page_url, created_at, department_id, post_key,
                    post_attempts, COALESCE(post_next_attempt_at, created_at) AS post_next_attempt_at,
                    post_first_attempt_at
             FROM offline_messages
             WHERE posted_at IS NULL AND post_key IS NOT NULL
             ORDER BY id
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }

    /// Records the post made for an offline message.
    pub async fn mark_offline_posted(&self, id: i64, post_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE offline_messages SET posted_at = $1, post_id = $2, post_error = NULL
             WHERE id = $3",
        )
        .bind(now_ms())
        .bind(post_id)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Gives up on posting an offline message (Mattermost refused it for good); it stays
    /// stored for the back office.
    pub async fn mark_offline_post_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE offline_messages SET posted_at = $1, post_error = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(error)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Schedules another try (see `Store::reschedule` for `tried_at`).
    pub async fn reschedule_offline_post(
        &self,
        id: i64,
        at: i64,
        tried_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE offline_messages SET post_attempts = post_attempts + 1,
                 post_next_attempt_at = $1, post_error = $2,
                 post_first_attempt_at = COALESCE(post_first_attempt_at, $3)
             WHERE id = $4",
        )
        .bind(at)
        .bind(error)
        .bind(tried_at)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Makes every offline post waiting out a backoff due now. Returns how many were waiting.
    pub async fn retry_offline_posts_now(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE offline_messages SET post_next_attempt_at = $1
             WHERE posted_at IS NULL AND post_key IS NOT NULL AND post_attempts > 0
               AND post_next_attempt_at > $1",
        )
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Whether an offline message has been posted (or given up on), and its post id.
    pub async fn offline_post_state(
        &self,
        id: i64,
    ) -> Result<Option<(Option<i64>, Option<String>)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT posted_at, post_id FROM offline_messages WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?,
        )
    }
}
