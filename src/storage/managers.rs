//! Managers of the back office, their one-time setup links and their sessions. Secrets
//! (setup and session tokens) are stored only as SHA-256 hashes; passwords as Argon2id.

use sqlx::FromRow;

use super::{Store, StoreError};

/// A back-office account.
#[derive(Debug, Clone, FromRow)]
pub struct ManagerRow {
    pub id: i64,
    pub email: String,
    pub role: String,
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_login_at: Option<i64>,
}

const COLUMNS: &str = "id, email, role, password_hash, created_at, disabled_at, last_login_at";

/// A session with the manager it belongs to.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub token_hash: String,
    pub manager_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub email: String,
    pub role: String,
    pub disabled_at: Option<i64>,
}

/// A setup link as stored.
#[derive(Debug, Clone, FromRow)]
pub struct SetupTokenRow {
    pub manager_id: Option<i64>,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// What a used setup link did.
#[derive(Debug, Clone)]
pub enum SetupOutcome {
    /// The password was set for this manager.
    Done(ManagerRow),
    /// The link is unknown, used or expired (or, for a first-run link, a manager exists now).
    Invalid,
}

impl Store {
    /// How many managers exist (disabled ones included).
    pub async fn count_managers(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM managers")
            .fetch_one(&self.read)
            .await?;
        Ok(n)
    }

    /// Every manager, by e-mail.
    pub async fn list_managers(&self) -> Result<Vec<ManagerRow>, StoreError> {
        Ok(sqlx::query_as::<_, ManagerRow>(&format!(
            "SELECT {COLUMNS} FROM managers ORDER BY email"
        ))
        .fetch_all(&self.read)
        .await?)
    }

    /// A manager by id.
    pub async fn get_manager(&self, id: i64) -> Result<Option<ManagerRow>, StoreError> {
        Ok(sqlx::query_as::<_, ManagerRow>(&format!(
            "SELECT {COLUMNS} FROM managers WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?)
    }

    /// A manager by (lower-cased) e-mail.
    pub async fn get_manager_by_email(
        &self,
        email: &str,
    ) -> Result<Option<ManagerRow>, StoreError> {
        Ok(sqlx::query_as::<_, ManagerRow>(&format!(
            "SELECT {COLUMNS} FROM managers WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Adds a manager without a password; `None` when the e-mail is taken.
    pub async fn insert_manager(
        &self,
        email: &str,
        role: &str,
        now: i64,
    ) -> Result<Option<ManagerRow>, StoreError> {
        Ok(sqlx::query_as::<_, ManagerRow>(&format!(
            "INSERT INTO managers (email, role, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (email) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(email)
        .bind(role)
        .bind(now)
        .fetch_optional(&self.write)
        .await?)
    }

    /// Disables (ending every session) or enables a manager.
    pub async fn set_manager_disabled(
        &self,
        id: i64,
        disabled_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE managers SET disabled_at = $1 WHERE id = $2")
            .bind(disabled_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if disabled_at.is_some() {
            sqlx::query("DELETE FROM manager_sessions WHERE manager_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a successful sign-in.
    pub async fn record_login(&self, id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE managers SET last_login_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Stores a setup link (`manager_id` `None`: the first-run link). A first-run link
    /// replaces any earlier unused one.
    pub async fn insert_setup_token(
        &self,
        token_hash: &str,
        manager_id: Option<i64>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        match manager_id {
            None => {
                sqlx::query("DELETE FROM setup_tokens WHERE manager_id IS NULL")
                    .execute(&mut *tx)
                    .await?
            }
            Some(id) => {
                sqlx::query("DELETE FROM setup_tokens WHERE manager_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
            }
        };
        sqlx::query(
            "INSERT INTO setup_tokens (token_hash, manager_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(manager_id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// When the unused, unexpired first-run link (if any) was made and until when it works.
    pub async fn live_first_run_link(&self, now: i64) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as::<_, (i64, i64)>(
            "SELECT created_at, expires_at FROM setup_tokens
             WHERE manager_id IS NULL AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_optional(&self.read)
        .await?)
    }

    /// A setup link, if it exists.
    pub async fn get_setup_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<SetupTokenRow>, StoreError> {
        Ok(sqlx::query_as::<_, SetupTokenRow>(
            "SELECT manager_id, expires_at, used_at FROM setup_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Uses a setup link once: sets the password of its manager (creating the first admin
    /// for a first-run link) and ends the manager's other sessions. The token is claimed with
    /// a conditional update, so a link works exactly once.
    pub async fn complete_setup(
        &self,
        token_hash: &str,
        first_run_email: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<SetupOutcome, StoreError> {
        let mut tx = self.write.begin().await?;
        let claimed: Option<(Option<i64>,)> = sqlx::query_as(
            "UPDATE setup_tokens SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
             RETURNING manager_id",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let manager_id = match claimed {
            None => return Ok(SetupOutcome::Invalid),
            Some((Some(id),)) => id,
            Some((None,)) => {
                let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM managers")
                    .fetch_one(&mut *tx)
                    .await?;
                if count > 0 {
                    return Ok(SetupOutcome::Invalid);
                }
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO managers (email, role, created_at) VALUES ($1, 'admin', $2)
                     RETURNING id",
                )
                .bind(first_run_email)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                id
            }
        };
        let manager = sqlx::query_as::<_, ManagerRow>(&format!(
            "UPDATE managers SET password_hash = $1 WHERE id = $2 RETURNING {COLUMNS}"
        ))
        .bind(password_hash)
        .bind(manager_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(manager) = manager else {
            return Ok(SetupOutcome::Invalid);
        };
        sqlx::query("DELETE FROM manager_sessions WHERE manager_id = $1")
            .bind(manager_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(SetupOutcome::Done(manager))
    }

    /// Starts a session.
    pub async fn insert_session(
        &self,
        token_hash: &str,
        manager_id: i64,
        csrf_token: &str,
        ip: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO manager_sessions (token_hash, manager_id, csrf_token, created_at,
                                           last_seen_at, ip)
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(token_hash)
        .bind(manager_id)
        .bind(csrf_token)
        .bind(now)
        .bind(ip)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// A session with its manager.
    pub async fn get_session(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(sqlx::query_as::<_, SessionRow>(
            "SELECT s.token_hash, s.manager_id, s.csrf_token, s.created_at, s.last_seen_at,
                    m.email, m.role, m.disabled_at
             FROM manager_sessions s JOIN managers m ON m.id = s.manager_id
             WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Notes that a session was used (for the idle timeout).
    pub async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE manager_sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM manager_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Removes sessions idle since `idle_before` or started before `started_before`.
    pub async fn delete_expired_sessions(
        &self,
        idle_before: i64,
        started_before: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM manager_sessions WHERE last_seen_at < $1 OR created_at < $2")
            .bind(idle_before)
            .bind(started_before)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Counts a sign-in attempt on `manager_id` from `device` ('' for a browser that is not a
    /// known device of the account) and returns the failures counted in the current window
    /// (this one included) and when that window began. A window that began before
    /// `window_start` is over: the count starts again at this attempt. The attempt is taken
    /// back with [`Store::forget_sign_in_failures`] when the password was right.
    pub async fn count_sign_in_attempt(
        &self,
        manager_id: i64,
        device: &str,
        now: i64,
        window_start: i64,
    ) -> Result<(i64, i64), StoreError> {
        let row: (i64, i64) = sqlx::query_as(
            "INSERT INTO sign_in_failures (manager_id, device, failures, first_at)
             VALUES ($1, $2, 1, $3)
             ON CONFLICT (manager_id, device) DO UPDATE SET
                 failures = CASE WHEN sign_in_failures.first_at < $4 THEN 1
                                 ELSE sign_in_failures.failures + 1 END,
                 first_at = CASE WHEN sign_in_failures.first_at < $4 THEN $3
                                 ELSE sign_in_failures.first_at END
             RETURNING failures, first_at",
        )
        .bind(manager_id)
        .bind(device)
        .bind(now)
        .bind(window_start)
        .fetch_one(&self.write)
        .await?;
        Ok(row)
    }

    /// Clears the failures of `manager_id` from `device` (after a right password).
    pub async fn forget_sign_in_failures(
        &self,
        manager_id: i64,
        device: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sign_in_failures WHERE manager_id = $1 AND device = $2")
            .bind(manager_id)
            .bind(device)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Clears every sign-in lock of `manager_id` (`parley admin unlock`); returns how many
    /// budgets (the anonymous one, known devices) had failures.
    pub async fn unlock_sign_in(&self, manager_id: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM sign_in_failures WHERE manager_id = $1")
                .bind(manager_id)
                .execute(&self.write)
                .await?
                .rows_affected(),
        )
    }

    /// Removes failure windows that began before `before` (they no longer lock anything).
    pub async fn delete_old_sign_in_failures(&self, before: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM sign_in_failures WHERE first_at < $1")
                .bind(before)
                .execute(&self.write)
                .await?
                .rows_affected(),
        )
    }
}
