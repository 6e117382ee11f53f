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
}
