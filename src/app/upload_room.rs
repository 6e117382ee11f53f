//! Whether there is room for visitors' uploads: all files kept together
//! (`PARLEY_MAX_STORED_FILES_MB`), visitors' uploads in the last 24 hours
//! (`PARLEY_MAX_UPLOADS_MB_PER_DAY`) and the free space left on the data directory's disk
//! (`PARLEY_MIN_FREE_DISK_MB`). One chat's share is checked with its message (storage).

use std::path::Path;

use crate::{app::App, storage::StoreError};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Why an upload does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// The disk of the data directory has less free space than the floor.
    DiskFloor,
    /// All kept files would pass the total quota.
    StoredQuota,
    /// Visitors' uploads of the last 24 hours would pass the daily quota.
    DailyQuota,
}

/// Checks that `incoming` more bytes fit. Called before an upload is read (with 0: refuse at
/// once when already full) and once its files are received, before anything is kept.
/// Concurrent uploads may each pass and overshoot a quota by at most one request each.
pub async fn check(state: &App, incoming: u64) -> Result<Result<(), NoRoom>, StoreError> {
    let limits = &state.settings.files;
    if limits.min_free_disk_bytes > 0
        && free_bytes(&state.settings.data_dir)
            .is_some_and(|free| free < limits.min_free_disk_bytes)
    {
        return Ok(Err(NoRoom::DiskFloor));
    }
    let incoming = i64::try_from(incoming).unwrap_or(i64::MAX);
    let over = |used: i64, quota: u64| {
        let quota = i64::try_from(quota).unwrap_or(i64::MAX);
        used.saturating_add(incoming) > quota || (incoming == 0 && used >= quota)
    };
    if limits.max_stored_bytes > 0
        && over(
            state.store.stored_file_bytes().await?,
            limits.max_stored_bytes,
        )
    {
        return Ok(Err(NoRoom::StoredQuota));
    }
    if limits.max_daily_bytes > 0 {
        let since = crate::storage::now_ms() - DAY_MS;
        if over(
            state.store.visitor_file_bytes_since(since).await?,
            limits.max_daily_bytes,
        ) {
            return Ok(Err(NoRoom::DailyQuota));
        }
    }
    Ok(Ok(()))
}

/// Free space for unprivileged users on the disk holding `path`; `None` when unknown (the
/// floor is then not applied, and the failure logged).
#[cfg(unix)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    match rustix::fs::statvfs(path) {
        Ok(s) => Some(s.f_bavail.saturating_mul(s.f_frsize)),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "could not read the free disk space");
            None
        }
    }
}

#[cfg(not(unix))]
pub fn free_bytes(_path: &Path) -> Option<u64> {
    None
}
