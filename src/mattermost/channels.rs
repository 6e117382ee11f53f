//! Removing a chat channel: delete it permanently, or archive it where the server refuses
//! permanent deletion. The one copy of that rule (see docs/decisions.md "Cleanup of chat
//! channels"), used by the cleanup job, the back office's chat deletion and `parley doctor`,
//! with the Mattermost error ids of channels (removal, and a taken name when creating one).

use super::{Bridge, Client, MmError};

/// What became of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Deleted for good, with its posts and files; its name is free again.
    Deleted,
    /// Permanent deletion is refused, so it was archived now.
    Archived,
    /// Permanent deletion is refused, and Mattermost says the channel was archived already
    /// (by someone else, or by an earlier run that was not recorded).
    WasArchived,
    /// Permanent deletion is refused and the caller knew the channel was archived already:
    /// nothing was changed (no archiving request is sent).
    StillArchived,
    /// Mattermost says there is no such channel (someone deleted it). Only a 404 with a
    /// channel error id counts, never a bare 404: see [`MmError::is_channel_gone`].
    AlreadyGone,
}

/// Whether the server allows permanent deletion, as learned from its answers. A caller that
/// removes several channels keeps one across them, so that the first refusal settles the
/// question: one probing request per run, not one per channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PermanentDeletion {
    #[default]
    Unknown,
    Allowed,
    Refused,
}

/// Deletes the channel permanently unless `permanent` already says the server refuses that,
/// otherwise archives it (unless the caller knows it is `archived` already). Updates
/// `permanent` from the server's answer. Refusals other than "permanent deletion is off",
/// bare 404s and outages are errors: nothing is known to have happened to the channel.
pub async fn delete_or_archive_channel(
    client: &Client,
    channel_id: &str,
    archived: bool,
    permanent: &mut PermanentDeletion,
) -> Result<Removal, MmError> {
    if *permanent != PermanentDeletion::Refused {
        match client.delete_channel(channel_id, true).await {
            Ok(()) => {
                *permanent = PermanentDeletion::Allowed;
                return Ok(Removal::Deleted);
            }
            Err(e) if e.is_channel_gone() => return Ok(Removal::AlreadyGone),
            Err(e) if e.is_permanent_deletion_disabled() => *permanent = PermanentDeletion::Refused,
            Err(e) => return Err(e),
        }
    }
    if archived {
        return Ok(Removal::StillArchived);
    }
    match client.delete_channel(channel_id, false).await {
        Ok(()) => Ok(Removal::Archived),
        Err(e) if e.is_channel_already_archived() => Ok(Removal::WasArchived),
        Err(e) if e.is_channel_gone() => Ok(Removal::AlreadyGone),
        Err(e) => Err(e),
    }
}

impl Bridge {
    /// [`delete_or_archive_channel`] with this bridge's client.
    pub async fn delete_or_archive_channel(
        &self,
        channel_id: &str,
        archived: bool,
        permanent: &mut PermanentDeletion,
    ) -> Result<Removal, MmError> {
        delete_or_archive_channel(&self.client, channel_id, archived, permanent).await
    }
}

impl MmError {
    /// The server refuses `?permanent=true` because `EnableAPIChannelDeletion` is off: a 401
    /// whose id is `api.user.delete_channel.not_enabled.app_error` (newer servers answer a
    /// system admin with `….not_enabled.for_admin.app_error`).
    pub fn is_permanent_deletion_disabled(&self) -> bool {
        self.id()
            .is_some_and(|id| id.starts_with("api.user.delete_channel.not_enabled"))
    }

    /// Mattermost's "no such channel": a 404 with a channel error id
    /// (`app.channel.get.existing.app_error`, on old servers
    /// `store.sql_channel.get.existing.app_error`). A bare 404 without one, as a proxy in front
    /// of the wrong path would send, does not count: it must never mark a channel as gone.
    pub fn is_channel_gone(&self) -> bool {
        matches!(self, Self::Api { status: 404, id, .. } if id.contains("channel"))
    }

    /// Creating a channel whose name is taken: both ids Mattermost has used (older servers
    /// answer `previously` when the holder is archived).
    pub fn is_channel_name_taken(&self) -> bool {
        matches!(
            self.id(),
            Some("store.sql_channel.save_channel.exists.app_error")
                | Some("store.sql_channel.save_channel.previously.app_error")
        )
    }

    /// Archiving a channel that is archived already
    /// (`api.channel.delete_channel.deleted.app_error`).
    pub fn is_channel_already_archived(&self) -> bool {
        self.id() == Some("api.channel.delete_channel.deleted.app_error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, id: &str) -> MmError {
        MmError::Api {
            status,
            id: id.into(),
            message: String::new(),
        }
    }

    #[test]
    fn only_a_channel_error_id_means_gone() {
        assert!(api(404, "app.channel.get.existing.app_error").is_channel_gone());
        assert!(api(404, "store.sql_channel.get.existing.app_error").is_channel_gone());
        assert!(!api(404, "").is_channel_gone(), "a bare 404");
        assert!(!api(404, "sim.injected_failure").is_channel_gone());
        assert!(!api(403, "api.context.permissions.app_error").is_channel_gone());
        assert!(!MmError::Unreachable("refused".into()).is_channel_gone());
    }

    #[test]
    fn permanent_deletion_off_is_recognised_for_users_and_admins() {
        assert!(
            api(401, "api.user.delete_channel.not_enabled.app_error")
                .is_permanent_deletion_disabled()
        );
        assert!(
            api(
                401,
                "api.user.delete_channel.not_enabled.for_admin.app_error"
            )
            .is_permanent_deletion_disabled()
        );
        assert!(
            !api(401, "api.context.session_expired.app_error").is_permanent_deletion_disabled()
        );
        assert!(!api(401, "").is_permanent_deletion_disabled());
    }

    #[test]
    fn a_taken_name_is_recognised_under_both_ids() {
        assert!(
            api(400, "store.sql_channel.save_channel.exists.app_error").is_channel_name_taken()
        );
        assert!(
            api(400, "store.sql_channel.save_channel.previously.app_error").is_channel_name_taken()
        );
        assert!(!api(400, "").is_channel_name_taken());
        assert!(!api(403, "api.context.permissions.app_error").is_channel_name_taken());
    }

    #[test]
    fn archived_already_is_recognised() {
        assert!(
            api(400, "api.channel.delete_channel.deleted.app_error").is_channel_already_archived()
        );
        assert!(!api(400, "").is_channel_already_archived());
        assert!(!api(404, "app.channel.get.existing.app_error").is_channel_already_archived());
    }
}
