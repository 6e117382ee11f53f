//! Messages left through the widget's offline form.

use super::{Store, StoreError, now_ms};

/// A validated offline message.
#[derive(Debug, Clone)]
pub struct NewOfflineMessage {
    pub name: Option<String>,
    pub email: String,
    pub body: String,
    pub page_url: Option<String>,
    pub visitor_ip: Option<String>,
}

impl Store {
    /// Stores an offline message and returns its id.
    pub async fn insert_offline_message(&self, m: &NewOfflineMessage) -> Result<i64, StoreError> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO offline_messages (name, email, body, page_url, visitor_ip, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(m.name.as_deref())
        .bind(&m.email)
        .bind(&m.body)
        .bind(m.page_url.as_deref())
        .bind(m.visitor_ip.as_deref())
        .bind(now_ms())
        .fetch_one(&self.write)
        .await?;
        Ok(id)
    }
}
