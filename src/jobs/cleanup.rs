//! Cleanup of chat channels: the Mattermost channel of a chat that ended at least
//! `PARLEY_DELETE_AFTER_HOURS` ago is deleted permanently, or archived where the server refuses
//! permanent deletion (`ServiceSettings.EnableAPIChannelDeletion` off). Run by `parley archive`
//! (for cron) and by the server every ten minutes; see README "Cleanup of chat channels".
//!
//! - **Idempotent.** What became of each channel is recorded on its chat; a channel someone
//!   already deleted (Mattermost's 404 for a channel, never a bare 404) counts as done, one
//!   already archived counts as archived. The rule itself is `mattermost::channels`.
//! - **Archived channels are tried again** on later runs, so they are deleted once the admin
//!   enables the setting. The first refusal in a run settles the question for that run: one
//!   probing request per run, not one per archived channel.
//! - **The chat's last messages go first.** A chat with undelivered outbox tasks (such as the
//!   closing notice) keeps its channel until they are done.
//! - **Stops at the first outage.** When Mattermost is unreachable, rate limiting or failing
//!   with 5xx, the run stops and leaves the rest to the next one.

use std::{fmt, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    mattermost::{
        Bridge, MmError,
        channels::{PermanentDeletion, Removal},
    },
    storage::{Store, StoreError, cleanup::ChannelRemoval, now_ms},
};

/// What to change in Mattermost when it refuses permanent deletion. The setting is not in the
/// System Console; it lives in `config.json` (Mattermost's documentation lists it among the
/// "config.json-only settings").
pub const ENABLE_DELETION_ADVICE: &str = "Mattermost refuses to delete channels permanently \
    (ServiceSettings.EnableAPIChannelDeletion is off), so parley archived them instead; archived \
    channels keep their posts and files and stay searchable. To have them deleted, set \
    \"EnableAPIChannelDeletion\": true under ServiceSettings in Mattermost's config.json, or run \
    `mmctl config set ServiceSettings.EnableAPIChannelDeletion true` (it is not in the System \
    Console); parley then deletes the archived channels on its next run.";

/// The server's schedule: first run shortly after start, then every ten minutes.
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(30);
pub const RUN_EVERY: Duration = Duration::from_secs(600);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Channels permanently deleted.
    pub deleted: usize,
    /// Channels archived (Mattermost refused permanent deletion, or someone had archived them).
    pub archived: usize,
    /// Channels already gone from Mattermost.
    pub gone: usize,
    /// Channels whose removal failed; tried again on the next run.
    pub failed: usize,
    /// Channels archived on an earlier run that stay archived: permanent deletion is still
    /// refused.
    pub still_archived: usize,
    /// Ended chats whose last messages are still being delivered; their channels wait.
    pub waiting: usize,
    /// Channels not tried because the run stopped early.
    pub left: usize,
    /// Mattermost refused permanent deletion during this run.
    pub deletion_disabled: bool,
    /// Why the run stopped early (Mattermost unreachable, rate limiting, failing), if it did.
    pub stopped: Option<String>,
}

impl Report {
    /// A real failure: some removal failed or Mattermost could not be used. Archiving instead
    /// of deleting is not one.
    pub fn is_failure(&self) -> bool {
        self.failed > 0 || self.stopped.is_some()
    }

    /// Whether the run changed anything or ran into trouble (worth a log line).
    pub fn is_eventful(&self) -> bool {
        self.deleted + self.archived + self.gone + self.failed > 0 || self.stopped.is_some()
    }

    /// The advice to enable permanent deletion, when it applies to this run.
    pub fn advice(&self) -> Option<&'static str> {
        self.deletion_disabled.then_some(ENABLE_DELETION_ADVICE)
    }

    /// Logs the run (the server's schedule): a summary when something happened, and the
    /// advice once.
    pub fn log(&self) {
        if self.is_eventful() {
            tracing::info!(
                deleted = self.deleted,
                archived = self.archived,
                gone = self.gone,
                failed = self.failed,
                "cleanup of chat channels"
            );
        }
        if let Some(reason) = &self.stopped {
            tracing::warn!(
                reason = %reason,
                left = self.left,
                "channel cleanup stopped early; the rest waits for the next run"
            );
        }
        if let Some(advice) = self.advice() {
            if self.archived > 0 {
                tracing::warn!(archived = self.archived, "{advice}");
            } else {
                // Nothing new was archived: a reminder, not a warning every ten minutes.
                tracing::info!(still_archived = self.still_archived, "{advice}");
            }
        }
        if self.waiting > 0 {
            tracing::debug!(
                waiting = self.waiting,
                "ended chats still deliver messages; their channels wait"
            );
        }
    }
}

impl fmt::Display for Report {
    /// The summary `parley archive` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deleted {}, archived {}, already gone {}, failed {}",
            self.deleted, self.archived, self.gone, self.failed
        )?;
        if self.still_archived > 0 {
            write!(
                f,
                "\n{} channel(s) archived earlier stay archived until permanent deletion is allowed.",
                self.still_archived
            )?;
        }
        if self.waiting > 0 {
            write!(
                f,
                "\n{} ended chat(s) still have messages being delivered; their channels wait for a later run.",
                self.waiting
            )?;
        }
        if let Some(reason) = &self.stopped {
            write!(f, "\nStopped early: {reason}")?;
            if self.left > 0 {
                write!(f, "\n{} channel(s) left for the next run.", self.left)?;
            }
        }
        if let Some(advice) = self.advice() {
            write!(f, "\n{advice}")?;
        }
        Ok(())
    }
}

/// The time (ms) a chat must have ended by for its channel to be removed at `now`.
pub fn ended_before(delete_after: Duration, now: i64) -> i64 {
    let delay = i64::try_from(delete_after.as_millis()).unwrap_or(i64::MAX);
    now.saturating_sub(delay)
}

/// One run: removes the channels of chats that ended at least `delete_after` before `now`.
/// Mattermost's refusals and outages end up in the report (each failed channel is logged; the
/// caller logs or prints the report); only database errors are errors.
#[tracing::instrument(skip_all)]
pub async fn run_once(
    store: &Store,
    bridge: &Bridge,
    delete_after: Duration,
    now: i64,
) -> Result<Report, StoreError> {
    let candidates = store
        .list_channels_to_remove(ended_before(delete_after, now))
        .await?;
    let mut report = Report::default();
    // Whether the server allows permanent deletion; unknown until it has answered once.
    let mut permanent = PermanentDeletion::Unknown;
    for (index, candidate) in candidates.iter().enumerate() {
        if candidate.undelivered > 0 {
            report.waiting += 1;
            continue;
        }
        let archived = candidate.removal() == Some(ChannelRemoval::Archived);
        let removal = bridge
            .delete_or_archive_channel(&candidate.channel_id, archived, &mut permanent)
            .await;
        let recorded = match removal {
            Ok(Removal::Deleted) => {
                report.deleted += 1;
                ChannelRemoval::Deleted
            }
            // Archived now, or by someone else before: either way it is archived.
            Ok(Removal::Archived | Removal::WasArchived) => {
                report.archived += 1;
                ChannelRemoval::Archived
            }
            Ok(Removal::AlreadyGone) => {
                report.gone += 1;
                ChannelRemoval::Gone
            }
            Ok(Removal::StillArchived) => {
                report.still_archived += 1;
                continue;
            }
            Err(e) => {
                report.failed += 1;
                tracing::warn!(
                    chat_id = %candidate.chat_id,
                    channel_id = %candidate.channel_id,
                    error = %e,
                    "could not remove a chat channel{}",
                    hint(&e)
                );
                if e.is_transient() {
                    report.stopped = Some(e.to_string());
                    report.left = candidates.len() - index - 1;
                    break;
                }
                continue;
            }
        };
        store
            .record_channel_removal(&candidate.chat_id, recorded, now_ms())
            .await?;
    }
    report.deletion_disabled = permanent == PermanentDeletion::Refused;
    Ok(report)
}

/// What to do about a refusal, for the log.
fn hint(e: &MmError) -> &'static str {
    match e.status() {
        Some(403) => {
            " (the bot may not delete it: check that the bot is still a member of the channel \
             and that Mattermost's permission scheme lets members delete private channels)"
        }
        Some(401) => " (check PARLEY_MATTERMOST_TOKEN)",
        _ => "",
    }
}

/// The server's schedule ([`FIRST_RUN_AFTER`], then every [`RUN_EVERY`]); a run while
/// Mattermost is not configured does nothing.
pub async fn run_scheduled(state: App, shutdown: CancellationToken) {
    run_every(state, shutdown, FIRST_RUN_AFTER, RUN_EVERY).await;
}

/// Runs the cleanup after `first`, then every `every`, until `shutdown`. Errors are logged,
/// never fatal.
pub async fn run_every(state: App, shutdown: CancellationToken, first: Duration, every: Duration) {
    let mut wait = first;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = every;
        // The connection in force now (the back office may have changed it).
        let Some(bridge) = state.bridge() else {
            continue;
        };
        // The back office may change the delay (unless PARLEY_DELETE_AFTER_HOURS is set).
        let delete_after = crate::app::settings::delete_after(&state.store, &state.settings).await;
        let run = run_once(&state.store, &bridge, delete_after, now_ms());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = run => match result {
                Ok(report) => report.log(),
                Err(e) => {
                    tracing::error!(error = %e, "channel cleanup failed; trying again later");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_counts_back_from_now() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            ended_before(hour * 24, 100_000_000),
            100_000_000 - 86_400_000
        );
        assert_eq!(ended_before(Duration::ZERO, 42), 42);
        assert_eq!(ended_before(Duration::MAX, 42), 42 - i64::MAX);
    }

    #[test]
    fn archiving_instead_of_deleting_is_not_a_failure_but_says_what_to_change() {
        let report = Report {
            archived: 2,
            deletion_disabled: true,
            ..Report::default()
        };
        assert!(!report.is_failure());
        let text = report.to_string();
        assert!(text.starts_with("deleted 0, archived 2, already gone 0, failed 0"));
        assert!(text.contains("EnableAPIChannelDeletion"), "{text}");
        let stopped = Report {
            stopped: Some("Mattermost is unreachable".into()),
            ..Report::default()
        };
        assert!(stopped.is_failure());
    }
}
