//! All SQL lives here, one file per aggregate. Queries use the runtime API of sqlx's `Any`
//! driver with `$n` placeholders and portable SQL, so the same code runs on SQLite and on
//! PostgreSQL; only the migrations differ (`migrations/sqlite`, `migrations/postgres`, see
//! docs/decisions.md).

pub mod audit;
pub mod blobs;
pub mod chats;
pub mod cleanup;
pub mod departments;
pub mod drafts;
pub mod files;
mod group_commit;
pub mod history;
pub mod lifecycle;
pub mod managers;
pub mod messages;
pub mod offline;
pub mod outbox;
pub mod settings;
pub mod stats;
pub mod values;

use std::{str::FromStr, time::Duration};

use sqlx::{
    AnyPool, ConnectOptions, Connection, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
};

use crate::config::DatabaseUrl;

/// Storage failures. `NotFound` and `Conflict` are normal outcomes callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("the database refused the change: {0}")]
    Conflict(String),
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("file storage error: {0}")]
    Files(#[from] std::io::Error),
}

/// Handle to the database. Cheap to clone.
///
/// SQLite allows one writer at a time; a dedicated single-connection pool for writes avoids
/// `SQLITE_BUSY` when a read transaction would upgrade, while reads use a pool of their own.
/// On PostgreSQL both are ordinary pools; the split stays so the code is the same.
#[derive(Clone, Debug)]
pub struct Store {
    write: AnyPool,
    read: AnyPool,
    /// Visitor messages committed together (see `group_commit`).
    group_commit: group_commit::GroupCommit,
}

/// Which database is behind the store, for the few queries whose SQL must differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Connections per pool on PostgreSQL (one pool for writes, one for reads).
const POSTGRES_POOL_SIZE: u32 = 10;

impl Store {
    /// Opens (creating when needed) the database and applies pending migrations.
    pub async fn open(url: &DatabaseUrl) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        match url {
            DatabaseUrl::Sqlite(path) => Self::open_sqlite(path).await,
            DatabaseUrl::Postgres(url) => Self::open_postgres(url.expose()).await,
        }
    }

    /// Opens a database that exists already (applying pending migrations), for the commands
    /// besides `serve` and `migrate`: `None` when the SQLite file is missing, so a command run
    /// in the wrong directory never leaves a new, empty database behind. (A PostgreSQL
    /// database is never created by parley.)
    pub async fn open_existing(url: &DatabaseUrl) -> Result<Option<Self>, StoreError> {
        sqlx::any::install_default_drivers();
        match url {
            DatabaseUrl::Sqlite(path) if !path.is_file() => Ok(None),
            DatabaseUrl::Sqlite(path) => Self::connect_sqlite(path, "rw").await.map(Some),
            DatabaseUrl::Postgres(url) => Self::open_postgres(url.expose()).await.map(Some),
        }
    }

    async fn open_sqlite(path: &std::path::Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unsupported(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        Self::connect_sqlite(path, "rwc").await
    }

    /// `mode`: `rwc` creates a missing file, `rw` does not.
    async fn connect_sqlite(path: &std::path::Path, mode: &str) -> Result<Self, StoreError> {
        let options =
            AnyConnectOptions::from_str(&format!("sqlite://{}?mode={mode}", path.display()))?;
        let write = sqlite_pool(1).connect_with(options.clone()).await?;
        sqlx::migrate!("migrations/sqlite").run(&write).await?;
        let read = sqlite_pool(4).connect_with(options).await?;
        let group_commit = group_commit::GroupCommit::start(write.clone(), Backend::Sqlite);
        Ok(Self {
            write,
            read,
            group_commit,
        })
    }

    async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let options = AnyConnectOptions::from_str(url)?;
        // One plain connection first: a pool would report only "timed out" instead of, say,
        // a refused connection or a wrong password.
        options.connect().await?.close().await?;
        let pool = || {
            AnyPoolOptions::new()
                .max_connections(POSTGRES_POOL_SIZE)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
        };
        let write = pool().connect_with(options.clone()).await?;
        sqlx::migrate!("migrations/postgres").run(&write).await?;
        let read = pool().connect_with(options).await?;
        let group_commit = group_commit::GroupCommit::start(write.clone(), Backend::Postgres);
        Ok(Self {
            write,
            read,
            group_commit,
        })
    }

    /// Closes every connection (at shutdown; later queries fail).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

fn sqlite_pool(size: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings a connection when it goes back to the pool and, by default, again before
        // it is handed out: with SQLite each ping is a round trip to the connection's own
        // thread, as costly as a small query. A local file cannot drop the connection in
        // between, so the second ping only cost time (see docs/benchmarks.md).
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run while the writer writes; busy_timeout waits out the
                // short moments when another connection holds the lock.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
}

/// `$from, $from+1, …` for `n` values bound in an `IN (…)` list (both databases number their
/// parameters this way through sqlx's `Any` driver).
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of a multi-row `VALUES`: `row` is one row with `?1`, `?2`, … for its own
/// parameters, numbered on across the rows as `$n`.
pub(crate) fn values_rows(rows: usize, binds_per_row: usize, row: &str) -> String {
    (0..rows)
        .map(|i| {
            // From the highest, so `?1` does not take the start of `?10`.
            (1..=binds_per_row).rev().fold(row.to_owned(), |sql, k| {
                sql.replace(&format!("?{k}"), &format!("${}", i * binds_per_row + k))
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows a multi-row `INSERT … RETURNING` gave back, in the order of its `VALUES`. Neither
/// database promises the order of `RETURNING`, but both number new rows in `VALUES` order.
fn in_given_order<T>(
    mut rows: Vec<T>,
    expected: usize,
    id: impl Fn(&T) -> i64,
) -> Result<Vec<T>, StoreError> {
    if rows.len() != expected {
        return Err(StoreError::Corrupt(format!(
            "{} rows returned for {expected} inserted",
            rows.len()
        )));
    }
    rows.sort_unstable_by_key(|row| id(row));
    Ok(rows)
}

/// The current time as Unix milliseconds, the unit of every stored time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats stored milliseconds as RFC 3339 for the API.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_rows_number_every_rows_parameters_on() {
        assert_eq!(
            super::values_rows(2, 2, "(?1, 'x', ?2, ?2)"),
            "($1, 'x', $2, $2), ($3, 'x', $4, $4)"
        );
        assert_eq!(super::values_rows(2, 10, "(?1,?10)"), "($1,$10), ($11,$20)");
    }
}
