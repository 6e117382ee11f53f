//! The audit log: who signed in (or failed to), changed a setting, deleted a chat or changed
//! a manager; and, read from the outbox, every bridge error (a delivery Mattermost refused).
//! Refused sign-ins are counted on one line per address, account and reason within a window
//! (`attempts`), and lines older than the retention are deleted (`jobs::retention`).

use sqlx::FromRow;

use super::{Store, StoreError, now_ms};

/// One line of the audit log.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub at: i64,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    /// How many attempts the line stands for (more than one only for refused sign-ins).
    pub attempts: i64,
}

/// A line about to be written.
#[derive(Debug, Clone, Default)]
pub struct NewAudit<'a> {
    pub actor: Option<&'a str>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// The audit log and the bridge errors as one list (bridge errors are failed outbox tasks,
/// shown with the action `bridge_error`).
const ENTRIES: &str = "SELECT at, actor, action, target, detail, ip, attempts FROM audit_log
    UNION ALL
    SELECT done_at AS at, 'Mattermost' AS actor, 'bridge_error' AS action, chat_id AS target,
           kind || ': ' || COALESCE(last_error, '') AS detail, NULL AS ip, 1 AS attempts
    FROM outbox WHERE failed = 1";

impl Store {
    /// Writes a line of the audit log.
    pub async fn insert_audit(&self, entry: &NewAudit<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail, ip)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_ms())
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.target)
        .bind(entry.detail)
        .bind(entry.ip)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Counts one more attempt on the line with the same action, actor, detail and address
    /// written since `window_start`, or writes a new line: a flood of refused sign-ins adds one
    /// line per address, account and reason per window, not one per request. Two attempts that
    /// race may each write a line; that is still bounded.
    pub async fn count_audit(
        &self,
        entry: &NewAudit<'_>,
        window_start: i64,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE audit_log SET attempts = attempts + 1
             WHERE id = (SELECT id FROM audit_log
                 WHERE at >= $1 AND action = $2 AND COALESCE(actor, '') = $3
                   AND COALESCE(detail, '') = $4 AND COALESCE(ip, '') = $5
                 ORDER BY at DESC LIMIT 1)",
        )
        .bind(window_start)
        .bind(entry.action)
        .bind(entry.actor.unwrap_or_default())
        .bind(entry.detail.unwrap_or_default())
        .bind(entry.ip.unwrap_or_default())
        .execute(&self.write)
        .await?
        .rows_affected();
        if updated == 0 {
            self.insert_audit(entry).await?;
        }
        Ok(())
    }

    /// Deletes the lines written before `before` (the retention); returns how many.
    pub async fn delete_audit_before(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    /// A page of the audit log, newest first, with the number of matching lines. `search`
    /// matches any part of a line, ignoring case; `action` an exact action.
    pub async fn list_audit(
        &self,
        search: &str,
        action: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditRow>, i64), StoreError> {
        let pattern = format!("%{}%", like_escape(&search.to_lowercase()));
        let filter = "WHERE ($1 = '' OR LOWER(COALESCE(actor, '') || ' ' || action || ' ' ||
                COALESCE(target, '') || ' ' || COALESCE(detail, '') || ' ' || COALESCE(ip, ''))
                LIKE $2 ESCAPE '\\')
              AND ($3 = '' OR action = $3)";
        let rows = sqlx::query_as::<_, AuditRow>(&format!(
            "SELECT at, actor, action, target, detail, ip, attempts FROM ({ENTRIES}) e {filter}
             ORDER BY at DESC LIMIT $4 OFFSET $5"
        ))
        .bind(search)
        .bind(&pattern)
        .bind(action)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.read)
        .await?;
        let (total,): (i64,) =
            sqlx::query_as(&format!("SELECT COUNT(*) FROM ({ENTRIES}) e {filter}"))
                .bind(search)
                .bind(&pattern)
                .bind(action)
                .fetch_all(&self.read)
                .await?
                .into_iter()
                .next()
                .unwrap_or((0,));
        Ok((rows, total))
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
