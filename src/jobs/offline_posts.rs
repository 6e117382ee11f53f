//! Posts each offline message once into its department's requests channel. The outbox is
//! keyed to chats (its order per chat, its channel rules), so offline messages keep their own
//! delivery state on their row instead: a `post_key` sent as `pending_post_id` (and looked for
//! by its `parley_key` prop after Mattermost's 30-second memory), attempts and the next try,
//! with the outbox's backoff. Run by the outbox worker's loop, so a new message is posted at
//! once and a Mattermost outage delays it, never loses or doubles it.

use crate::app::Error;
use crate::{
    app::{App, departments},
    jobs::{
        Outcome,
        outbox::{backoff, create_post_once},
    },
    mattermost::{Bridge, MmError, format},
    storage::{StoreError, now_ms, offline::OfflineMessageRow},
};

/// Offline messages looked at per pass.
const BATCH: i64 = 50;

/// One pass: tries every offline message due at `now` (Unix ms) once, oldest first. What it
/// records (retry times) carries the real time.
#[tracing::instrument(skip_all)]
pub async fn run_once(state: &App, now: i64) -> Result<Outcome, StoreError> {
    let Some(bridge) = &state.bridge() else {
        return Ok(Outcome::Idle { next_due: None });
    };
    let rows = state.store.list_offline_to_post(BATCH).await?;
    let next_due = rows
        .iter()
        .filter(|r| r.post_next_attempt_at > now)
        .map(|r| r.post_next_attempt_at)
        .min();
    let due: Vec<OfflineMessageRow> = rows
        .into_iter()
        .filter(|r| r.post_next_attempt_at <= now)
        .collect();
    if due.is_empty() {
        return Ok(Outcome::Idle { next_due });
    }
    let count = due.len();
    for row in due {
        let started = now_ms();
        match post(state, bridge, &row).await {
            Ok(post_id) => state.store.mark_offline_posted(row.id, &post_id).await?,
            Err(Error::Store(e)) => return Err(e),
            Err(Error::Mattermost(e)) if e.is_transient() => {
                let wait = match &e {
                    MmError::RateLimited { retry_after } => *retry_after,
                    _ => backoff(row.post_attempts),
                };
                tracing::warn!(
                    offline_message_id = row.id, retry_in = ?wait, error = %e,
                    "posting an offline message to Mattermost failed; will retry"
                );
                let at = now_ms() + wait.as_millis() as i64;
                state
                    .store
                    .reschedule_offline_post(row.id, at, started, &e.to_string())
                    .await?;
            }
            Err(Error::Mattermost(e)) => {
                tracing::error!(
                    offline_message_id = row.id, error = %e, mattermost_error_id = ?e.id(),
                    "Mattermost refused an offline message; it stays stored in parley"
                );
                state
                    .store
                    .mark_offline_post_failed(row.id, &e.to_string())
                    .await?;
            }
        }
    }
    Ok(Outcome::Worked(count))
}

async fn post(state: &App, bridge: &Bridge, row: &OfflineMessageRow) -> Result<String, Error> {
    bridge.context().await?;
    let department = departments::get(state, row.department_id).await?;
    let route = departments::route_of(state, department.as_ref())
        .ok_or_else(|| MmError::Protocol("Mattermost is not configured".into()))?;
    let target = bridge.target(&route).await?;
    let (message, props) =
        format::offline_message_post(row, department.as_ref().map(|d| d.name.as_str()));
    let post = create_post_once(
        bridge,
        row.post_first_attempt_at,
        &target.channel_id,
        &row.post_key,
        &message,
        props,
        Vec::new(),
    )
    .await?;
    Ok(post.id)
}
