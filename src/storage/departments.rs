//! Departments: stored as written by the manager (or the CLI), validated before saving by
//! `departments::DepartmentInput`.

use sqlx::FromRow;

use super::{Store, StoreError, now_ms};

/// A stored department. `None` texts and templates mean "the default".
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct DepartmentRow {
    pub id: i64,
    pub name: String,
    pub team: String,
    pub channel: String,
    pub position: i64,
    pub hours: Option<String>,
    pub timezone: String,
    pub text_title: Option<String>,
    pub text_greeting: Option<String>,
    pub text_offline: Option<String>,
    pub template_request: Option<String>,
    pub template_channel_display_name: Option<String>,
    pub template_channel_header: Option<String>,
    pub template_first_post: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DepartmentRow {
    /// A new department routed to `team`'s `channel`, with every other value its default
    /// (always open, UTC, the widget's own texts, the default templates).
    pub fn new(name: &str, team: &str, channel: &str) -> Self {
        Self {
            id: 0,
            name: name.to_owned(),
            team: team.to_owned(),
            channel: channel.to_owned(),
            position: 0,
            hours: None,
            timezone: "UTC".into(),
            text_title: None,
            text_greeting: None,
            text_offline: None,
            template_request: None,
            template_channel_display_name: None,
            template_channel_header: None,
            template_first_post: None,
            created_at: 0,
            updated_at: 0,
        }
    }
}

const COLUMNS: &str = "id, name, team, channel, position, hours, timezone, text_title, \
    text_greeting, text_offline, template_request, template_channel_display_name, \
    template_channel_header, template_first_post, created_at, updated_at";

/// Why a department could not be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    Removed,
    NotFound,
    /// Chats of the department are waiting or running; they need its channel and team.
    HasOpenChats(i64),
}

impl Store {
    /// Every department, in the widget's order.
    pub async fn list_departments(&self) -> Result<Vec<DepartmentRow>, StoreError> {
        Ok(sqlx::query_as::<_, DepartmentRow>(&format!(
            "SELECT {COLUMNS} FROM departments ORDER BY position, id"
        ))
        .fetch_all(&self.read)
        .await?)
    }

    /// A department by id.
    pub async fn get_department(&self, id: i64) -> Result<Option<DepartmentRow>, StoreError> {
        Ok(sqlx::query_as::<_, DepartmentRow>(&format!(
            "SELECT {COLUMNS} FROM departments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Stores a new department (`id`, `created_at` and `updated_at` of `row` are ignored).
    /// A taken name is `Conflict`.
    pub async fn insert_department(&self, row: &DepartmentRow) -> Result<i64, StoreError> {
        let now = now_ms();
        let result: Result<(i64,), sqlx::Error> = sqlx::query_as(
            "INSERT INTO departments (name, team, channel, position, hours, timezone, text_title,
                 text_greeting, text_offline, template_request, template_channel_display_name,
                 template_channel_header, template_first_post, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
             RETURNING id",
        )
        .bind(&row.name)
        .bind(&row.team)
        .bind(&row.channel)
        .bind(row.position)
        .bind(row.hours.as_deref())
        .bind(&row.timezone)
        .bind(row.text_title.as_deref())
        .bind(row.text_greeting.as_deref())
        .bind(row.text_offline.as_deref())
        .bind(row.template_request.as_deref())
        .bind(row.template_channel_display_name.as_deref())
        .bind(row.template_channel_header.as_deref())
        .bind(row.template_first_post.as_deref())
        .bind(now)
        .fetch_one(&self.write)
        .await;
        result.map(|(id,)| id).map_err(name_taken)
    }

    /// Replaces a department's settings. Returns false when there is no such department.
    pub async fn update_department(&self, row: &DepartmentRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE departments SET name = $1, team = $2, channel = $3, position = $4, hours = $5,
                 timezone = $6, text_title = $7, text_greeting = $8, text_offline = $9,
                 template_request = $10, template_channel_display_name = $11,
                 template_channel_header = $12, template_first_post = $13, updated_at = $14
             WHERE id = $15",
        )
        .bind(&row.name)
        .bind(&row.team)
        .bind(&row.channel)
        .bind(row.position)
        .bind(row.hours.as_deref())
        .bind(&row.timezone)
        .bind(row.text_title.as_deref())
        .bind(row.text_greeting.as_deref())
        .bind(row.text_offline.as_deref())
        .bind(row.template_request.as_deref())
        .bind(row.template_channel_display_name.as_deref())
        .bind(row.template_channel_header.as_deref())
        .bind(row.template_first_post.as_deref())
        .bind(now_ms())
        .bind(row.id)
        .execute(&self.write)
        .await
        .map_err(name_taken)?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a department unless chats of it are still waiting or running. Ended chats and
    /// offline messages keep their history; their department becomes "none".
    pub async fn delete_department(&self, id: i64) -> Result<RemoveOutcome, StoreError> {
        let mut tx = self.write.begin().await?;
        let (open,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM chats WHERE department_id = $1 AND status <> 'closed'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if open > 0 {
            return Ok(RemoveOutcome::HasOpenChats(open));
        }
        let done = sqlx::query("DELETE FROM departments WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() > 0 {
            RemoveOutcome::Removed
        } else {
            RemoveOutcome::NotFound
        })
    }
}

fn name_taken(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db)
            if db.message().contains("UNIQUE") || db.code().as_deref() == Some("23505") =>
        {
            StoreError::Conflict("a department with this name exists already".into())
        }
        _ => StoreError::Db(e),
    }
}
