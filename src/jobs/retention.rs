//! Retention of the audit log: lines older than `PARLEY_AUDIT_RETENTION_DAYS` (365 by default;
//! 0 keeps them forever) are deleted, at start and every hour. Ended windows of failed sign-ins
//! go at the same time (they no longer lock anything).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    app::accounts::FAILURE_WINDOW,
    storage::{Store, StoreError, now_ms},
};

/// How often the server applies the retention.
pub const RUN_EVERY: Duration = Duration::from_secs(3600);

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub audit_lines: u64,
    pub failure_windows: u64,
}

/// One run at `now` (Unix ms), with the configured retention.
#[tracing::instrument(skip_all)]
pub async fn run_once(state: &App, now: i64) -> Result<Report, StoreError> {
    delete_expired(&state.store, state.settings.audit_retention, now).await
}

/// Deletes what is past its time at `now` (tests pass a time in the future).
pub async fn delete_expired(
    store: &Store,
    retention: Option<Duration>,
    now: i64,
) -> Result<Report, StoreError> {
    let audit_lines = match retention {
        Some(keep) => {
            store
                .delete_audit_before(now - keep.as_millis() as i64)
                .await?
        }
        None => 0,
    };
    let failure_windows = store
        .delete_old_sign_in_failures(now - FAILURE_WINDOW.as_millis() as i64)
        .await?;
    Ok(Report {
        audit_lines,
        failure_windows,
    })
}

/// The server's schedule: at start, then every hour, until `shutdown`.
pub async fn run_scheduled(state: App, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(RUN_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                match run_once(&state, now_ms()).await {
                    Ok(report) if report.audit_lines > 0 => tracing::info!(
                        deleted = report.audit_lines,
                        "deleted audit-log lines older than the retention"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not apply the audit-log retention"),
                }
            }
        }
    }
}
