//! Settings changed in the back office (widget texts and look, the cleanup delay, the
//! Mattermost connection): plain key/value pairs, validated by `backoffice::settings` and
//! `backoffice::connection` before they are stored.

use std::collections::HashMap;

use super::{Store, StoreError};

impl Store {
    /// Every stored setting.
    pub async fn list_settings(&self) -> Result<HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM settings")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Stores values (replacing earlier ones) in one transaction.
    pub async fn put_settings(
        &self,
        values: &[(&str, String)],
        by: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        for (key, value) in values {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(*key)
            .bind(value)
            .bind(now)
            .bind(by)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
