//! Which ended chats still have a Mattermost channel to remove, and what became of it (see
//! `jobs::cleanup`).

use sqlx::FromRow;

use super::{Store, StoreError};

/// What became of a chat's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRemoval {
    /// Permanently deleted: gone from Mattermost with its posts and files, its name free again.
    Deleted,
    /// Archived, because the server refuses permanent deletion; later runs try again.
    Archived,
    /// Already gone from Mattermost (someone deleted it).
    Gone,
}

impl ChannelRemoval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Archived => "archived",
            Self::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deleted" => Some(Self::Deleted),
            "archived" => Some(Self::Archived),
            "gone" => Some(Self::Gone),
            _ => None,
        }
    }
}

/// An ended chat whose channel is still to be removed (or only archived so far).
#[derive(Debug, Clone, FromRow)]
pub struct CleanupCandidate {
    pub chat_id: String,
    pub channel_id: String,
    /// `None` until the first removal; `archived` when only archiving was possible.
    pub channel_removal: Option<String>,
    /// Outbox tasks of the chat not yet delivered (for example the closing notice): the channel
    /// stays until they are done.
    pub undelivered: i64,
}

impl CleanupCandidate {
    pub fn removal(&self) -> Option<ChannelRemoval> {
        self.channel_removal
            .as_deref()
            .and_then(ChannelRemoval::parse)
    }
}

impl Store {
    /// Chats that ended at or before `ended_before` (ms) and have a channel that is neither
    /// deleted nor known to be gone: channels never touched first, then archived ones, each
    /// oldest first.
    pub async fn list_channels_to_remove(
        &self,
        ended_before: i64,
    ) -> Result<Vec<CleanupCandidate>, StoreError> {
        Ok(sqlx::query_as::<_, CleanupCandidate>(
            "SELECT c.id AS chat_id, c.channel_id, c.channel_removal,
                    (SELECT COUNT(*) FROM outbox o
                     WHERE o.chat_id = c.id AND o.done_at IS NULL) AS undelivered
             FROM chats c
             WHERE c.status = 'closed' AND c.closed_at <= $1 AND c.channel_id IS NOT NULL
               AND (c.channel_removal IS NULL OR c.channel_removal = 'archived')
             ORDER BY CASE WHEN c.channel_removal IS NULL THEN 0 ELSE 1 END, c.closed_at, c.id",
        )
        .bind(ended_before)
        .fetch_all(&self.read)
        .await?)
    }

    /// Records what became of a chat's channel. Never moves backwards: a deleted or gone
    /// channel stays so (a concurrent run that finds it gone changes nothing), and an archived
    /// one keeps its first archiving time.
    pub async fn record_channel_removal(
        &self,
        chat_id: &str,
        removal: ChannelRemoval,
        now: i64,
    ) -> Result<(), StoreError> {
        let replaceable = match removal {
            ChannelRemoval::Archived => "channel_removal IS NULL",
            ChannelRemoval::Deleted | ChannelRemoval::Gone => {
                "(channel_removal IS NULL OR channel_removal = 'archived')"
            }
        };
        sqlx::query(&format!(
            "UPDATE chats SET channel_removal = $1, channel_removed_at = $2
             WHERE id = $3 AND {replaceable}"
        ))
        .bind(removal.as_str())
        .bind(now)
        .bind(chat_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// What became of a chat's channel, if anything yet (for tests and the back office).
    pub async fn channel_removal(
        &self,
        chat_id: &str,
    ) -> Result<Option<ChannelRemoval>, StoreError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT channel_removal FROM chats WHERE id = $1")
                .bind(chat_id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row
            .and_then(|(r,)| r)
            .as_deref()
            .and_then(ChannelRemoval::parse))
    }
}
