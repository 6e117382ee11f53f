//! The audit log: who signed in (or failed to), changed a setting, deleted a chat or changed
//! a manager; and, read from the outbox, every bridge error (a delivery Mattermost refused).

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
const ENTRIES: &str = "SELECT at, actor, action, target, detail, ip FROM audit_log
    UNION ALL
    SELECT done_at AS at, 'Mattermost' AS actor, 'bridge_error' AS action, chat_id AS target,
           kind || ': ' || COALESCE(last_error, '') AS detail, NULL AS ip
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
            "SELECT at, actor, action, target, detail, ip FROM ({ENTRIES}) e {filter}
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
