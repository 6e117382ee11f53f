//! The one error of the application core: what a use case or a job step can meet below it.
//! Callers tell the cases apart with the layers' own helpers (`StoreError::NotFound`,
//! `MmError::is_*`), never by Mattermost's error ids.

use crate::{mattermost::MmError, storage::StoreError};

/// A use case or job step failed in the database or at Mattermost.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mattermost(#[from] MmError),
}
