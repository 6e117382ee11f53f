//! What the back office reads about chats and offline messages: filtered, paginated lists,
//! counts for the dashboard, recent bridge errors; and the deletion of a chat for a privacy
//! request.

use sqlx::FromRow;

use super::{Store, StoreError, audit::like_escape};

/// Filters of the chat list; empty values do not filter.
#[derive(Debug, Clone, Default)]
pub struct ChatFilter {
    /// `pending`, `active` or `closed`.
    pub status: Option<String>,
    /// The accepting operator's Mattermost username.
    pub operator: Option<String>,
    /// Started at or after (ms).
    pub from: Option<i64>,
    /// Started before (ms).
    pub until: Option<i64>,
    /// Words in the visitor's name, e-mail or any message.
    pub text: Option<String>,
    /// The department: `Some(None)` = the default one (no department).
    pub department: Option<Option<i64>>,
}

/// A line of the chat list.
#[derive(Debug, Clone, FromRow)]
pub struct ChatSummary {
    pub id: String,
    pub status: String,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub created_at: i64,
    pub accepted_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub operator_username: Option<String>,
    pub operator_name: Option<String>,
    pub messages: i64,
    /// The chat's department (`None`: the default one).
    pub department_name: Option<String>,
}

/// Chat counts for the dashboard.
#[derive(Debug, Clone, Default)]
pub struct ChatCounts {
    pub pending: i64,
    pub active: i64,
    pub today: i64,
}

/// A delivery Mattermost refused (a failed outbox task).
#[derive(Debug, Clone, FromRow)]
pub struct BridgeErrorRow {
    pub chat_id: String,
    pub kind: String,
    /// The error as recorded (the adapter's `MmError::id_in_text` reads Mattermost's id in it).
    pub last_error: Option<String>,
    pub done_at: Option<i64>,
}

/// An offline message.
#[derive(Debug, Clone, FromRow)]
pub struct OfflineRow {
    pub id: i64,
    pub name: Option<String>,
    pub email: String,
    pub body: String,
    pub page_url: Option<String>,
    pub created_at: i64,
    pub handled_at: Option<i64>,
}

enum Param {
    Text(String),
    Int(i64),
}

/// Adds a parameter and returns its placeholder.
fn next(p: Param, params: &mut Vec<Param>) -> String {
    params.push(p);
    format!("${}", params.len())
}

impl Store {
    /// A page of chats matching `filter`, newest first, and how many match in all.
    pub async fn list_chats_filtered(
        &self,
        filter: &ChatFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ChatSummary>, i64), StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        if let Some(s) = &filter.status {
            let n = next(Param::Text(s.clone()), &mut params);
            conditions.push(format!("c.status = {n}"));
        }
        if let Some(o) = &filter.operator {
            let n = next(Param::Text(o.clone()), &mut params);
            conditions.push(format!("c.operator_username = {n}"));
        }
        match filter.department {
            Some(Some(d)) => {
                let n = next(Param::Int(d), &mut params);
                conditions.push(format!("c.department_id = {n}"));
            }
            Some(None) => conditions.push("c.department_id IS NULL".into()),
            None => {}
        }
        if let Some(t) = filter.from {
            let n = next(Param::Int(t), &mut params);
            conditions.push(format!("c.created_at >= {n}"));
        }
        if let Some(t) = filter.until {
            let n = next(Param::Int(t), &mut params);
            conditions.push(format!("c.created_at < {n}"));
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) {
            let pattern = format!("%{}%", like_escape(&text.trim().to_lowercase()));
            let n = next(Param::Text(pattern), &mut params);
            conditions.push(format!(
                "(LOWER(COALESCE(c.visitor_name, '')) LIKE {n} ESCAPE '\\'
                  OR LOWER(COALESCE(c.visitor_email, '')) LIKE {n} ESCAPE '\\'
                  OR EXISTS (SELECT 1 FROM messages m WHERE m.chat_id = c.id
                             AND LOWER(m.body) LIKE {n} ESCAPE '\\'))"
            ));
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit_n = params.len() + 1;
        let list_sql = format!(
            "SELECT c.id, c.status, c.visitor_name, c.visitor_email, c.created_at, c.accepted_at,
                    c.closed_at, c.operator_username, c.operator_name,
                    (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id) AS messages,
                    (SELECT d.name FROM departments d WHERE d.id = c.department_id) AS department_name
             FROM chats c {filter_sql}
             ORDER BY c.created_at DESC, c.id LIMIT ${limit_n} OFFSET ${}",
            limit_n + 1
        );
        let mut list = sqlx::query_as::<_, ChatSummary>(&list_sql);
        for p in &params {
            list = match p {
                Param::Text(s) => list.bind(s.clone()),
                Param::Int(i) => list.bind(*i),
            };
        }
        let rows = list.bind(limit).bind(offset).fetch_all(&self.read).await?;
        let count_sql = format!("SELECT COUNT(*) FROM chats c {filter_sql}");
        let mut count = sqlx::query_as::<_, (i64,)>(&count_sql);
        for p in &params {
            count = match p {
                Param::Text(s) => count.bind(s.clone()),
                Param::Int(i) => count.bind(*i),
            };
        }
        let (total,) = count.fetch_one(&self.read).await?;
        Ok((rows, total))
    }

    /// The operators who accepted chats (username, name), for the list's filter.
    pub async fn list_chat_operators(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT operator_username, MAX(COALESCE(operator_name, operator_username))
             FROM chats WHERE operator_username IS NOT NULL
             GROUP BY operator_username ORDER BY operator_username",
        )
        .fetch_all(&self.read)
        .await?)
    }

    /// Waiting and active chats, and chats started since `day_start` (ms).
    pub async fn count_chats(&self, day_start: i64) -> Result<ChatCounts, StoreError> {
        let (pending, active, today): (i64, i64, i64) = sqlx::query_as(
            "SELECT
                 CAST(COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT),
                 CAST(COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT),
                 CAST(COALESCE(SUM(CASE WHEN created_at >= $1 THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM chats",
        )
        .bind(day_start)
        .fetch_one(&self.read)
        .await?;
        Ok(ChatCounts {
            pending,
            active,
            today,
        })
    }

    /// The newest deliveries Mattermost refused.
    pub async fn list_bridge_errors(&self, limit: i64) -> Result<Vec<BridgeErrorRow>, StoreError> {
        Ok(sqlx::query_as::<_, BridgeErrorRow>(
            "SELECT chat_id, kind, last_error, done_at FROM outbox WHERE failed = 1
             ORDER BY done_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }

    /// Deletes a chat with its messages, files' records, outbox tasks and applied posts (the
    /// foreign keys cascade). Returns whether it existed. The files' bytes are removed by the
    /// caller (`Blobs::remove_chat`).
    pub async fn delete_chat(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM chats WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A page of offline messages, newest first (`handled`: only handled or only open ones),
    /// and how many match.
    pub async fn list_offline_messages(
        &self,
        handled: Option<bool>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<OfflineRow>, i64), StoreError> {
        let filter = match handled {
            None => "",
            Some(true) => "WHERE handled_at IS NOT NULL",
            Some(false) => "WHERE handled_at IS NULL",
        };
        let rows = sqlx::query_as::<_, OfflineRow>(&format!(
            "SELECT id, name, email, body, page_url, created_at, handled_at
             FROM offline_messages {filter} ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.read)
        .await?;
        let (total,): (i64,) =
            sqlx::query_as(&format!("SELECT COUNT(*) FROM offline_messages {filter}"))
                .fetch_one(&self.read)
                .await?;
        Ok((rows, total))
    }

    /// Marks an offline message handled; `false` if there is no such message.
    pub async fn mark_offline_handled(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE offline_messages SET handled_at = COALESCE(handled_at, $1) WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
