//! Chats and their life: creation with the first message, acceptance by exactly one operator,
//! the Mattermost channel, and closing.

use sqlx::FromRow;

use super::{
    Store, StoreError,
    messages::{self, MessageRow, NewMessage},
    outbox::{self, OutboxTask},
};
use crate::domain::{ChatStatus, ClosedBy, Sender};

/// A stored chat.
#[derive(Debug, Clone, Default, FromRow)]
pub struct ChatRow {
    pub id: String,
    pub token_hash: String,
    pub status: String,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub visitor_ip: Option<String>,
    pub created_at: i64,
    pub accepted_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub closed_by: Option<String>,
    pub operator_user_id: Option<String>,
    pub operator_username: Option<String>,
    pub operator_name: Option<String>,
    pub request_post_id: Option<String>,
    pub channel_id: Option<String>,
    pub channel_name: Option<String>,
    pub last_post_at: i64,
    /// The department the visitor chose; `None` = the default one.
    pub department_id: Option<i64>,
    pub visitor_phone: Option<String>,
    /// When a widget was last known to be connected (see `jobs::lifecycle`); 0 = never.
    pub visitor_seen_at: i64,
}

impl ChatRow {
    pub fn status(&self) -> ChatStatus {
        ChatStatus::parse(&self.status).unwrap_or(ChatStatus::Closed)
    }
}

pub(super) const COLUMNS: &str = "id, token_hash, status, visitor_name, visitor_email, page_url, referrer, \
    visitor_ip, created_at, accepted_at, closed_at, closed_by, operator_user_id, operator_username, \
    operator_name, request_post_id, channel_id, channel_name, last_post_at, department_id, \
    visitor_phone, visitor_seen_at";

/// A validated chat request.
#[derive(Debug, Clone)]
pub struct NewChat {
    pub id: String,
    pub token_hash: String,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub visitor_ip: Option<String>,
    pub visitor_phone: Option<String>,
    pub department_id: Option<i64>,
}

/// The operator who clicked Accept.
#[derive(Debug, Clone)]
pub struct Operator {
    pub user_id: String,
    pub username: String,
    pub name: String,
}

/// How a chat ends: who ended it, the system message for the transcript, and what to tell
/// Mattermost.
#[derive(Debug, Clone, Copy)]
pub struct Closing<'a> {
    pub by: ClosedBy,
    pub author: Option<&'a str>,
    pub system_text: &'a str,
    pub event: &'a str,
    /// Posted in the chat's channel when the chat had been accepted.
    pub channel_notice: Option<&'a str>,
    /// Replaces the request post when nobody had accepted.
    pub request_update: Option<&'a str>,
}

/// Result of an Accept click.
#[derive(Debug)]
pub enum AcceptOutcome {
    /// This click won; the chat is now active.
    Accepted {
        chat: ChatRow,
        notice: Box<MessageRow>,
    },
    /// Someone else was first, or the chat ended; here is the chat as it is.
    NotPending(ChatRow),
}

impl Store {
    /// Creates a chat with its first message and the tasks that announce it in Mattermost.
    pub async fn insert_chat(
        &self,
        chat: &NewChat,
        first_message: &str,
        author: &str,
        html: &str,
        now: i64,
    ) -> Result<(ChatRow, MessageRow), StoreError> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query_as::<_, ChatRow>(&format!(
            "INSERT INTO chats (id, token_hash, status, visitor_name, visitor_email, page_url,
                                referrer, visitor_ip, created_at, visitor_phone, department_id)
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING {COLUMNS}"
        ))
        .bind(&chat.id)
        .bind(&chat.token_hash)
        .bind(chat.visitor_name.as_deref())
        .bind(chat.visitor_email.as_deref())
        .bind(chat.page_url.as_deref())
        .bind(chat.referrer.as_deref())
        .bind(chat.visitor_ip.as_deref())
        .bind(now)
        .bind(chat.visitor_phone.as_deref())
        .bind(chat.department_id)
        .fetch_one(&mut *tx)
        .await?;
        let message = NewMessage {
            sender: Sender::Visitor,
            author: Some(author),
            body: first_message,
            html: Some(html),
            event: None,
            post_id: None,
            created_at: now,
        };
        let message = messages::insert(&mut tx, &chat.id, &message)
            .await?
            .ok_or_else(|| StoreError::Conflict("first message".into()))?;
        let request = OutboxTask::RequestPost {
            key: OutboxTask::new_key(),
        };
        outbox::enqueue(&mut tx, &chat.id, &request, now).await?;
        let relay = OutboxTask::RelayMessage {
            message_id: message.id,
            key: OutboxTask::new_key(),
        };
        outbox::enqueue(&mut tx, &chat.id, &relay, now).await?;
        tx.commit().await?;
        Ok((row, message))
    }

    /// A chat by id.
    pub async fn get_chat(&self, id: &str) -> Result<Option<ChatRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, ChatRow>(&format!("SELECT {COLUMNS} FROM chats WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    /// The chat whose Mattermost channel this is.
    pub async fn get_chat_by_channel(
        &self,
        channel_id: &str,
    ) -> Result<Option<ChatRow>, StoreError> {
        Ok(sqlx::query_as::<_, ChatRow>(&format!(
            "SELECT {COLUMNS} FROM chats WHERE channel_id = $1"
        ))
        .bind(channel_id)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Active chats that have a channel: the ones whose posts must be caught up after a gap.
    pub async fn list_active_chats_with_channel(&self) -> Result<Vec<ChatRow>, StoreError> {
        Ok(sqlx::query_as::<_, ChatRow>(&format!(
            "SELECT {COLUMNS} FROM chats WHERE status = 'active' AND channel_id IS NOT NULL"
        ))
        .fetch_all(&self.read)
        .await?)
    }

    /// Gives a pending chat to `operator`. The conditional update makes exactly one of any
    /// number of simultaneous clicks win.
    pub async fn accept_chat(
        &self,
        id: &str,
        operator: &Operator,
        channel_name: &str,
        now: i64,
    ) -> Result<AcceptOutcome, StoreError> {
        let mut tx = self.write.begin().await?;
        let won = sqlx::query_as::<_, ChatRow>(&format!(
            "UPDATE chats SET status = 'active', accepted_at = $1, operator_user_id = $2,
                    operator_username = $3, operator_name = $4, channel_name = $5
             WHERE id = $6 AND status = 'pending'
             RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(&operator.user_id)
        .bind(&operator.username)
        .bind(&operator.name)
        .bind(channel_name)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(chat) = won else {
            drop(tx);
            let chat = self.get_chat(id).await?.ok_or(StoreError::NotFound)?;
            return Ok(AcceptOutcome::NotPending(chat));
        };
        let text = format!("{} joined the chat", operator.name);
        let notice = NewMessage {
            sender: Sender::System,
            author: Some(&operator.name),
            body: &text,
            html: None,
            event: Some(crate::domain::system_event::ACCEPTED),
            post_id: None,
            created_at: now,
        };
        let notice = messages::insert(&mut tx, id, &notice)
            .await?
            .ok_or_else(|| StoreError::Conflict("accept notice".into()))?;
        outbox::enqueue(&mut tx, id, &OutboxTask::OpenChannel, now).await?;
        tx.commit().await?;
        Ok(AcceptOutcome::Accepted {
            chat,
            notice: Box::new(notice),
        })
    }

    /// Ends a chat. Returns `None` if it had already ended.
    pub async fn close_chat(
        &self,
        id: &str,
        closing: &Closing<'_>,
        now: i64,
    ) -> Result<Option<(ChatRow, MessageRow)>, StoreError> {
        self.close_chat_where(id, closing, now, None).await
    }

    /// Ends a chat; with `unseen_since`, only if its visitor has not been seen since then (the
    /// condition is part of the update, so a visitor coming back at the same moment wins or
    /// loses as a whole). Returns `None` if nothing changed.
    pub(super) async fn close_chat_where(
        &self,
        id: &str,
        closing: &Closing<'_>,
        now: i64,
        unseen_since: Option<i64>,
    ) -> Result<Option<(ChatRow, MessageRow)>, StoreError> {
        let Closing {
            by,
            author,
            system_text,
            event,
            channel_notice,
            request_update,
        } = *closing;
        let mut tx = self.write.begin().await?;
        // A no-op update, not a SELECT: it locks the chat's row until commit on PostgreSQL
        // (SQLite has one writer anyway), so the status cannot change under this transaction.
        let previous: Option<(String,)> =
            sqlx::query_as("UPDATE chats SET status = status WHERE id = $1 RETURNING status")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((previous,)) = previous else {
            return Err(StoreError::NotFound);
        };
        let unseen = if unseen_since.is_some() {
            "AND visitor_seen_at < $4 AND created_at < $4"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE chats SET status = 'closed', closed_at = $1, closed_by = $2
             WHERE id = $3 AND status <> 'closed' {unseen}
             RETURNING {COLUMNS}"
        );
        let mut update = sqlx::query_as::<_, ChatRow>(&sql)
            .bind(now)
            .bind(by.as_str())
            .bind(id);
        if let Some(since) = unseen_since {
            update = update.bind(since);
        }
        let closed = update.fetch_optional(&mut *tx).await?;
        let Some(chat) = closed else {
            return Ok(None);
        };
        let notice = NewMessage {
            sender: Sender::System,
            author,
            body: system_text,
            html: None,
            event: Some(event),
            post_id: None,
            created_at: now,
        };
        let notice = messages::insert(&mut tx, id, &notice)
            .await?
            .ok_or_else(|| StoreError::Conflict("close notice".into()))?;
        if previous == "pending" {
            outbox::drop_channel_tasks(&mut tx, id, now).await?;
            if let Some(text) = request_update {
                let task = OutboxTask::UpdateRequest { text: text.into() };
                outbox::enqueue(&mut tx, id, &task, now).await?;
            }
        } else if let Some(text) = channel_notice {
            let task = OutboxTask::Notice {
                text: text.into(),
                key: OutboxTask::new_key(),
            };
            outbox::enqueue(&mut tx, id, &task, now).await?;
        }
        tx.commit().await?;
        Ok(Some((chat, notice)))
    }

    /// Remembers the request post (for updating it later and checking clicks).
    pub async fn set_request_post(&self, id: &str, post_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE chats SET request_post_id = $1 WHERE id = $2")
            .bind(post_id)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Chooses another channel name after a collision.
    pub async fn set_channel_name(&self, id: &str, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE chats SET channel_name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Records the chat's channel once it exists in Mattermost.
    pub async fn set_channel(&self, id: &str, channel_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE chats SET channel_id = $1 WHERE id = $2")
            .bind(channel_id)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Queues a notice from parley into an accepted chat's channel.
    pub async fn enqueue_notice(&self, chat_id: &str, text: &str) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        let task = OutboxTask::Notice {
            text: text.into(),
            key: OutboxTask::new_key(),
        };
        outbox::enqueue(&mut tx, chat_id, &task, super::now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A handover of an active chat to another operator (`!transfer`).
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    /// The operator the chat has now; the handover happens only if that is still so.
    pub from_user_id: &'a str,
    pub to: &'a Operator,
    /// The system message for the visitor.
    pub system_text: &'a str,
    /// parley's answer in the chat's channel (Markdown, already made safe).
    pub reply: &'a str,
}

/// An earlier chat of the same visitor (found by e-mail), for `!info`.
#[derive(Debug, Clone, FromRow)]
pub struct EarlierChat {
    pub id: String,
    pub status: String,
    pub created_at: i64,
    pub operator_username: Option<String>,
}

impl Store {
    /// Hands an active chat to another operator, with the system message for the visitor and
    /// the answer in the channel, in one transaction. `None` if the chat is no longer active
    /// or someone else changed its operator in the meantime.
    pub async fn transfer_chat(
        &self,
        id: &str,
        transfer: &Transfer<'_>,
        now: i64,
    ) -> Result<Option<(ChatRow, MessageRow)>, StoreError> {
        let mut tx = self.write.begin().await?;
        let moved = sqlx::query_as::<_, ChatRow>(&format!(
            "UPDATE chats SET operator_user_id = $1, operator_username = $2, operator_name = $3
             WHERE id = $4 AND status = 'active' AND operator_user_id = $5
             RETURNING {COLUMNS}"
        ))
        .bind(&transfer.to.user_id)
        .bind(&transfer.to.username)
        .bind(&transfer.to.name)
        .bind(id)
        .bind(transfer.from_user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(chat) = moved else {
            return Ok(None);
        };
        let notice = NewMessage {
            sender: Sender::System,
            author: Some(&transfer.to.name),
            body: transfer.system_text,
            html: None,
            event: Some(crate::domain::system_event::TRANSFERRED),
            post_id: None,
            created_at: now,
        };
        let notice = messages::insert(&mut tx, id, &notice)
            .await?
            .ok_or_else(|| StoreError::Conflict("transfer notice".into()))?;
        let reply = OutboxTask::Reply {
            text: transfer.reply.into(),
            key: OutboxTask::new_key(),
        };
        outbox::enqueue(&mut tx, id, &reply, now).await?;
        tx.commit().await?;
        Ok(Some((chat, notice)))
    }

    /// The chat whose request post this is.
    pub async fn get_chat_by_request_post(
        &self,
        post_id: &str,
    ) -> Result<Option<ChatRow>, StoreError> {
        Ok(sqlx::query_as::<_, ChatRow>(&format!(
            "SELECT {COLUMNS} FROM chats WHERE request_post_id = $1"
        ))
        .bind(post_id)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Pending chats whose request post exists: after a gap in the event stream their
    /// reactions are looked at again.
    pub async fn list_pending_chats_with_request_post(&self) -> Result<Vec<ChatRow>, StoreError> {
        Ok(sqlx::query_as::<_, ChatRow>(&format!(
            "SELECT {COLUMNS} FROM chats WHERE status = 'pending' AND request_post_id IS NOT NULL"
        ))
        .fetch_all(&self.read)
        .await?)
    }

    /// Other chats started with the same e-mail address (any case), newest first.
    pub async fn list_chats_by_email(
        &self,
        email: &str,
        except_id: &str,
        limit: i64,
    ) -> Result<(i64, Vec<EarlierChat>), StoreError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM chats WHERE LOWER(visitor_email) = LOWER($1) AND id <> $2",
        )
        .bind(email)
        .bind(except_id)
        .fetch_one(&self.read)
        .await?;
        let rows = sqlx::query_as::<_, EarlierChat>(
            "SELECT id, status, created_at, operator_username FROM chats
             WHERE LOWER(visitor_email) = LOWER($1) AND id <> $2
             ORDER BY created_at DESC LIMIT $3",
        )
        .bind(email)
        .bind(except_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok((count, rows))
    }

    /// Queues a ready-made answer (Markdown made safe by `mattermost::answers`) into an
    /// accepted chat's channel.
    pub async fn enqueue_reply(&self, chat_id: &str, text: &str) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        let task = OutboxTask::Reply {
            text: text.into(),
            key: OutboxTask::new_key(),
        };
        outbox::enqueue(&mut tx, chat_id, &task, super::now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues the rewrite of a chat's request post (without its button).
    pub async fn enqueue_request_update(
        &self,
        chat_id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        let task = OutboxTask::UpdateRequest { text: text.into() };
        outbox::enqueue(&mut tx, chat_id, &task, super::now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }
}
