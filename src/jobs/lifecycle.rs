//! How chats end by themselves, and requests nobody accepts. One pass ([`run_once`]):
//!
//! 1. **Presence.** The chats whose live sockets this instance holds are marked as seen now,
//!    so a connected widget is never timed out, however long it stays quiet. (Sockets mark
//!    their chat when they connect and when they go, and visitor API calls mark it too; see
//!    `chats.visitor_seen_at`.) With several instances each marks its own sockets.
//! 2. **Visitor gone.** A chat whose visitor has not been seen for `PARLEY_VISITOR_TIMEOUT_MINUTES`
//!    ends: "The visitor left (no connection for N minutes)." in its channel, or, before anyone
//!    accepted, the request post loses its button and no channel is ever created. The update
//!    is conditional on the visitor still being unseen, so one reconnecting at that moment
//!    either keeps the chat or finds it ended.
//! 3. **Nobody accepts.** A request pending for `PARLEY_REMIND_AFTER_MINUTES` is reminded of
//!    once in the requests channel (with `@here` if `PARLEY_REMIND_WITH_HERE`), through the
//!    outbox, and the visitor is told they are still in the queue (`still_waiting`).
//!
//! The server runs it every few seconds (only with the background jobs); tests call
//! [`run_once`] with the time to judge by.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    app::chats,
    config::Settings,
    storage::{StoreError, now_ms},
};

/// At most this many chats are ended, and as many reminded, per pass; the rest wait for the
/// next one.
const BATCH: i64 = 200;
/// The longest time between passes: each pass marks this instance's sockets as present, and
/// reminders should not be much later than configured.
pub const RUN_EVERY: Duration = Duration::from_secs(15);
/// The first pass waits for widgets to reconnect after a restart (they retry at least every
/// 30 s), so that a restart after an outage does not end the chats of visitors still there.
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(45);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Chats marked as present because this instance holds a live socket of theirs.
    pub present: u64,
    /// Chats ended because their visitor was gone.
    pub ended: usize,
    /// Requests reminded of.
    pub reminded: usize,
}

/// One pass, judging the chats as of `now` (Unix ms; tests look ahead). What it records
/// (closing times, messages, deliveries) carries the real time, except presence: the chats
/// with a socket here are marked as seen at `now`.
#[tracing::instrument(skip_all)]
pub async fn run_once(state: &App, now: i64) -> Result<Report, StoreError> {
    let settings = &state.settings;
    let mut report = Report {
        present: state
            .store
            .touch_visitors(&state.hub.connected_chats(), now)
            .await?,
        ..Report::default()
    };
    let unseen_since = now.saturating_sub(millis(settings.visitor_timeout));
    for id in state.store.list_chats_left(unseen_since, BATCH).await? {
        if chats::close_visitor_left(state, &id, unseen_since)
            .await?
            .is_some()
        {
            tracing::info!(chat_id = %id, "the visitor left; the chat ended");
            report.ended += 1;
        }
    }
    if let Some(after) = settings.remind_after {
        let created_before = now.saturating_sub(millis(after));
        for id in state
            .store
            .list_chats_to_remind(created_before, BATCH)
            .await?
        {
            if chats::remind(state, &id, created_before).await? {
                tracing::info!(chat_id = %id, "nobody accepted yet; reminding the requests channel");
                report.reminded += 1;
            }
        }
    }
    Ok(report)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How often the server runs a pass: every [`RUN_EVERY`], or more often when the configured
/// times are shorter than four passes (only in tests), so that presence is marked several
/// times within a timeout.
pub fn interval(settings: &Settings) -> Duration {
    let shortest = settings.remind_after.map_or(settings.visitor_timeout, |r| {
        r.min(settings.visitor_timeout)
    });
    (shortest / 4).clamp(Duration::from_millis(50), RUN_EVERY)
}

/// The server's schedule: after [`FIRST_RUN_AFTER`] (or one interval, if shorter), then every
/// [`interval`], until `shutdown`. Errors are logged, never fatal.
pub async fn run_scheduled(state: App, shutdown: CancellationToken) {
    let every = interval(&state.settings);
    let mut wait = FIRST_RUN_AFTER
        .min(state.settings.visitor_timeout / 4)
        .max(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = every;
        if let Err(e) = run_once(&state, now_ms()).await {
            tracing::error!(error = %e, "ending left chats and reminding failed; trying again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_never_overflow() {
        assert_eq!(millis(Duration::from_secs(600)), 600_000);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn passes_come_often_enough_for_short_settings_and_not_more() {
        let mut s = Settings::for_data_dir("unused".into());
        assert_eq!(interval(&s), RUN_EVERY, "defaults: 10 and 3 minutes");
        s.visitor_timeout = Duration::from_secs(2);
        s.remind_after = None;
        assert_eq!(interval(&s), Duration::from_millis(500));
        s.remind_after = Some(Duration::from_millis(400));
        assert_eq!(interval(&s), Duration::from_millis(100));
        s.remind_after = Some(Duration::ZERO);
        assert_eq!(interval(&s), Duration::from_millis(50));
    }
}
