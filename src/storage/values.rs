//! Server-wide values kept in the database, such as the key that signs Accept buttons.

use super::{Store, StoreError};

impl Store {
    /// Returns the value stored under `key`, storing `make()` first if there is none. Safe when
    /// two processes race: the first insert wins and both read it back.
    pub async fn value_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO server_values (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(make())
        .execute(&self.write)
        .await?;
        let (value,): (String,) = sqlx::query_as("SELECT value FROM server_values WHERE key = $1")
            .bind(key)
            .fetch_one(&self.write)
            .await?;
        Ok(value)
    }

    /// The value stored under `key`, if any.
    pub async fn value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT value FROM server_values WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|(v,)| v))
    }

    /// Stores `value` under `key`, replacing what was there.
    pub async fn set_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO server_values (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Sends a PostgreSQL notification (`pg_notify`) on `channel` (see `cluster`).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
