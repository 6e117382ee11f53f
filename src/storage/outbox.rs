//! The durable outbox to Mattermost: tasks written in the same transaction as the change that
//! causes them, delivered in order per chat by `jobs::outbox`.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};

use super::{Backend, Store, StoreError, chats::ChatRow, messages::MessageRow, now_ms};

/// One thing to do in Mattermost for a chat. `key` values are sent as `pending_post_id`, so a
/// retried post is never doubled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboxTask {
    /// Post the request (with its Accept button) into the requests channel.
    RequestPost { key: String },
    /// Create the chat's channel and add the accepting operator.
    OpenChannel,
    /// Post a visitor message into the chat's channel.
    RelayMessage { message_id: i64, key: String },
    /// Post a notice from parley into the chat's channel.
    Notice { text: String, key: String },
    /// Rewrite the request post (without its button), e.g. when the visitor left before anyone
    /// accepted.
    UpdateRequest { text: String },
    /// Post parley's answer to an operator command into the chat's channel: Markdown that
    /// `mattermost::answers` built, every piece of user text in it already made inert.
    Reply { text: String, key: String },
    /// Remind the requests channel of a request nobody accepted (skipped if it was settled
    /// meanwhile).
    Reminder { key: String },
}

impl OutboxTask {
    fn kind(&self) -> &'static str {
        match self {
            Self::RequestPost { .. } => "request_post",
            Self::OpenChannel => "open_channel",
            Self::RelayMessage { .. } => "relay_message",
            Self::Notice { .. } => "notice",
            Self::UpdateRequest { .. } => "update_request",
            Self::Reply { .. } => "reply",
            Self::Reminder { .. } => "reminder",
        }
    }

    /// Tasks that can only run once the chat has its own channel.
    pub fn needs_channel(&self) -> bool {
        matches!(
            self,
            Self::RelayMessage { .. } | Self::Notice { .. } | Self::Reply { .. }
        )
    }

    /// A fresh idempotency key.
    pub fn new_key() -> String {
        format!("parley-{}", uuid::Uuid::new_v4().simple())
    }
}

/// An undelivered task with what the worker needs to know about its chat.
#[derive(Debug, Clone, Default, FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub chat_id: String,
    pub payload: String,
    pub needs_channel: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub first_attempt_at: Option<i64>,
    pub chat_channel_id: Option<String>,
}

impl OutboxRow {
    pub fn task(&self) -> Result<OutboxTask, StoreError> {
        serde_json::from_str(&self.payload)
            .map_err(|e| StoreError::Corrupt(format!("outbox entry {}: {e}", self.id)))
    }
}

/// A task Mattermost took, to be recorded (see [`Store::record_deliveries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub outbox_id: i64,
    /// A relayed message and the post that carries it.
    pub message_post: Option<(i64, String)>,
}

/// Adds a task inside the caller's transaction.
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    chat_id: &str,
    task: &OutboxTask,
    now: i64,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(task).expect("tasks serialise");
    sqlx::query(
        "INSERT INTO outbox (chat_id, kind, payload, needs_channel, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(chat_id)
    .bind(task.kind())
    .bind(payload)
    .bind(i64::from(task.needs_channel()))
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A task just added, as a read of the outbox would return it, with the ids of its chat's
/// undelivered tasks before it: what the outbox worker needs to take it from the writer
/// without reading it back (see `jobs::outbox::HandOff`).
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub row: OutboxRow,
    pub earlier: Vec<i64>,
}

#[derive(FromRow)]
struct EnqueuedRow {
    #[sqlx(flatten)]
    row: OutboxRow,
    earlier: Option<String>,
}

/// Adds tasks inside the caller's transaction, like [`enqueue`], with one statement, and
/// returns them in the given order with what the worker must know to take them at once: the
/// chat's channel and the earlier tasks come from subqueries of the `RETURNING`.
pub(super) async fn enqueue_returning(
    conn: &mut AnyConnection,
    backend: Backend,
    tasks: &[(&str, OutboxTask, i64)],
) -> Result<Vec<Enqueued>, StoreError> {
    let ids = match backend {
        Backend::Sqlite => "group_concat(p.id)",
        Backend::Postgres => "string_agg(p.id::text, ',')",
    };
    let sql = format!(
        "INSERT INTO outbox (chat_id, kind, payload, needs_channel, next_attempt_at, created_at)
         VALUES {}
         RETURNING id, chat_id, payload, needs_channel, attempts, next_attempt_at,
             first_attempt_at,
             (SELECT c.channel_id FROM chats c WHERE c.id = outbox.chat_id) AS chat_channel_id,
             (SELECT {ids} FROM outbox p
              WHERE p.chat_id = outbox.chat_id AND p.done_at IS NULL AND p.id < outbox.id)
                 AS earlier",
        // The time goes into both `next_attempt_at` and `created_at`.
        super::values_rows(tasks.len(), 5, "(?1, ?2, ?3, ?4, ?5, ?5)")
    );
    let mut query = sqlx::query_as::<_, EnqueuedRow>(&sql);
    for (chat_id, task, now) in tasks {
        let payload = serde_json::to_string(task).expect("tasks serialise");
        query = query
            .bind(*chat_id)
            .bind(task.kind())
            .bind(payload)
            .bind(i64::from(task.needs_channel()))
            .bind(*now);
    }
    let rows = query.fetch_all(conn).await?;
    super::in_given_order(rows, tasks.len(), |r| r.row.id)?
        .into_iter()
        .map(|found| {
            let earlier = found
                .earlier
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .filter(|id| !id.is_empty())
                .map(|id| {
                    id.parse()
                        .map_err(|_| StoreError::Corrupt(format!("outbox id {id:?}")))
                })
                .collect::<Result<_, _>>()?;
            Ok(Enqueued {
                row: found.row,
                earlier,
            })
        })
        .collect()
}

/// Drops the channel tasks of a chat that will never have a channel (closed before acceptance);
/// the messages themselves stay in the transcript.
pub(crate) async fn drop_channel_tasks(
    conn: &mut AnyConnection,
    chat_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET done_at = $1, last_error = 'chat ended before an operator accepted'
         WHERE chat_id = $2 AND done_at IS NULL AND needs_channel = 1",
    )
    .bind(now)
    .bind(chat_id)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Undelivered tasks with an id above `after` that can run, oldest first (a task needing a
    /// channel cannot run before its chat has one). Tasks are strictly ordered per chat,
    /// different chats are independent: the worker delivers each chat's tasks in this order,
    /// from the first one that is due.
    pub async fn list_outbox_due(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(sqlx::query_as::<_, OutboxRow>(
            "SELECT o.id, o.chat_id, o.payload, o.needs_channel, o.attempts, o.next_attempt_at,
                    o.first_attempt_at, c.channel_id AS chat_channel_id
             FROM outbox o JOIN chats c ON c.id = o.chat_id
             WHERE o.done_at IS NULL AND o.id > $1
               AND (o.needs_channel = 0 OR c.channel_id IS NOT NULL)
             ORDER BY o.id
             LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }

    /// What delivering a batch of tasks needs: their chats and relayed messages (with files),
    /// in no particular order, ids not found left out. One connection for the three queries.
    pub async fn delivery_inputs(
        &self,
        chat_ids: &[&str],
        message_ids: &[i64],
    ) -> Result<(Vec<ChatRow>, Vec<MessageRow>), StoreError> {
        let mut conn = self.read.acquire().await?;
        let chats = if chat_ids.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "SELECT {} FROM chats WHERE id IN ({})",
                super::chats::COLUMNS,
                super::placeholders(1, chat_ids.len())
            );
            let mut query = sqlx::query_as::<_, ChatRow>(&sql);
            for id in chat_ids {
                query = query.bind(*id);
            }
            query.fetch_all(&mut *conn).await?
        };
        if message_ids.is_empty() {
            return Ok((chats, Vec::new()));
        }
        let sql = format!(
            "SELECT {} FROM messages WHERE id IN ({})",
            super::messages::COLUMNS,
            super::placeholders(1, message_ids.len())
        );
        let mut query = sqlx::query_as::<_, MessageRow>(&sql);
        for id in message_ids {
            query = query.bind(*id);
        }
        let mut messages = query.fetch_all(&mut *conn).await?;
        super::messages::attach_files_on(&mut conn, &mut messages).await?;
        Ok((chats, messages))
    }

    /// Records delivered tasks in one transaction: on SQLite's single writer one commit for a
    /// whole batch instead of two per message. A relayed message also gets the id of the post
    /// that carries it (for edits, deletes and echo checks).
    pub async fn record_deliveries(&self, done: &[Delivered]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        // Every message's post id in one statement: `CASE id WHEN $1 THEN $2 …`.
        let posts: Vec<&(i64, String)> = done
            .iter()
            .filter_map(|d| d.message_post.as_ref())
            .collect();
        if !posts.is_empty() {
            let cases: String = (0..posts.len())
                .map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2))
                .collect();
            let ids: Vec<String> = (0..posts.len())
                .map(|i| format!("${}", 2 * i + 1))
                .collect();
            let sql = format!(
                "UPDATE messages SET post_id = CASE id{cases} END
                 WHERE post_id IS NULL AND id IN ({})",
                ids.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (message_id, post_id) in &posts {
                query = query.bind(*message_id).bind(post_id.as_str());
            }
            query.execute(&mut *tx).await?;
        }
        let sql = format!(
            "UPDATE outbox SET done_at = $1, last_error = NULL WHERE id IN ({})",
            super::placeholders(2, done.len())
        );
        let mut query = sqlx::query(&sql).bind(now_ms());
        for d in done {
            query = query.bind(d.outbox_id);
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failure Mattermost will not get over by retrying (kept for the back office).
    pub async fn mark_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET done_at = $1, failed = 1, last_error = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(error)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Schedules another attempt. `tried_at` is when the failed attempt started; the first
    /// one is kept, to know whether Mattermost's 30-second `pending_post_id` memory still
    /// covers a retry (a post may have been made even though the answer was lost).
    pub async fn reschedule(
        &self,
        id: i64,
        at: i64,
        tried_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2,
                 first_attempt_at = COALESCE(first_attempt_at, $3)
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

    /// Makes every task waiting out a backoff due now (see `app::outbox::mattermost_is_back`).
    /// Returns how many were waiting.
    pub async fn retry_waiting_now(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1
             WHERE done_at IS NULL AND attempts > 0 AND next_attempt_at > $1",
        )
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Number of undelivered tasks (for health and tests).
    pub async fn outbox_depth(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL")
            .fetch_one(&self.read)
            .await?;
        Ok(n)
    }
}
