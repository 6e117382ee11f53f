//! Settings a manager changes in the back office, stored in the database: the widget's texts
//! and look (served to the widget by `GET /api/v1/widget-config`) and the cleanup delay.
//! A value set by an environment variable or `parley.toml` wins and is shown read-only.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use serde_json::{Value, json};

use crate::{
    config::{AllowedOrigins, DatabaseUrl, MattermostSettings, Settings},
    storage::{Store, StoreError},
};

/// Whether the widget's pre-chat form asks for a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldMode {
    Required,
    Optional,
    Hidden,
}

impl FieldMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
            Self::Hidden => "hidden",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "required" => Some(Self::Required),
            "optional" => Some(Self::Optional),
            "hidden" => Some(Self::Hidden),
            _ => None,
        }
    }
}

/// The widget's look and texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetSettings {
    pub title: String,
    /// `#rrggbb`.
    pub color: String,
    pub greeting: String,
    /// `right` or `left`.
    pub position: String,
    pub name_field: FieldMode,
    pub email_field: FieldMode,
}

impl Default for WidgetSettings {
    fn default() -> Self {
        Self {
            title: "Chat with us".into(),
            color: "#1f6feb".into(),
            greeting: "Hello! How can we help you today?".into(),
            position: "right".into(),
            name_field: FieldMode::Optional,
            email_field: FieldMode::Optional,
        }
    }
}

impl WidgetSettings {
    fn from_stored(stored: &HashMap<String, String>) -> Self {
        let d = Self::default();
        let get = |k: &str| stored.get(k).cloned();
        Self {
            title: get(keys::TITLE).unwrap_or(d.title),
            color: get(keys::COLOR).unwrap_or(d.color),
            greeting: get(keys::GREETING).unwrap_or(d.greeting),
            position: get(keys::POSITION).unwrap_or(d.position),
            name_field: get(keys::NAME_FIELD)
                .and_then(|v| FieldMode::parse(&v))
                .unwrap_or(d.name_field),
            email_field: get(keys::EMAIL_FIELD)
                .and_then(|v| FieldMode::parse(&v))
                .unwrap_or(d.email_field),
        }
    }

    /// The `widget` object of `GET /api/v1/widget-config`.
    pub fn to_json(&self) -> Value {
        json!({
            "title": self.title,
            "color": self.color,
            "greeting": self.greeting,
            "position": self.position,
            "fields": {
                "name": self.name_field.as_str(),
                "email": self.email_field.as_str(),
            },
        })
    }
}

/// Keys in the `settings` table.
pub mod keys {
    pub const TITLE: &str = "widget.title";
    pub const COLOR: &str = "widget.color";
    pub const GREETING: &str = "widget.greeting";
    pub const POSITION: &str = "widget.position";
    pub const NAME_FIELD: &str = "widget.name_field";
    pub const EMAIL_FIELD: &str = "widget.email_field";
    pub const DELETE_AFTER_HOURS: &str = "cleanup.delete_after_hours";
}

/// The widget settings in force.
pub async fn widget(store: &Store) -> Result<WidgetSettings, StoreError> {
    Ok(WidgetSettings::from_stored(&store.list_settings().await?))
}

/// The cleanup delay in force: `PARLEY_DELETE_AFTER_HOURS` when set, else the back office's
/// value, else the default.
pub async fn delete_after(store: &Store, settings: &Settings) -> Duration {
    if source("delete_after_hours") != Source::Default {
        return settings.delete_after;
    }
    match store.list_settings().await {
        Ok(stored) => stored
            .get(keys::DELETE_AFTER_HOURS)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|h| Duration::from_secs(h.saturating_mul(3600)))
            .unwrap_or(settings.delete_after),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the cleanup delay; using the configured one");
            settings.delete_after
        }
    }
}

/// The editable settings as submitted by the settings form.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    pub title: String,
    pub color: String,
    pub greeting: String,
    pub position: String,
    pub name_field: String,
    pub email_field: String,
    pub delete_after_hours: Option<String>,
}

/// A field of the form that is not acceptable, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

/// Checks the form; the values to store, or every problem found.
pub fn validate(form: &SettingsForm) -> Result<Vec<(&'static str, String)>, Vec<Invalid>> {
    let mut problems = Vec::new();
    let mut bad = |field, message: &str| {
        problems.push(Invalid {
            field,
            message: message.into(),
        })
    };
    let title = form.title.trim();
    if title.is_empty() || title.chars().count() > 60 {
        bad("title", "the title must have 1 to 60 characters");
    }
    let color = form.color.trim().to_lowercase();
    if !(color.len() == 7
        && color.starts_with('#')
        && color[1..].chars().all(|c| c.is_ascii_hexdigit()))
    {
        bad("color", "the colour must look like #1f6feb");
    }
    let greeting = form.greeting.trim();
    if greeting.chars().count() > 300 {
        bad("greeting", "the greeting must have at most 300 characters");
    }
    if greeting.chars().chain(title.chars()).any(char::is_control) {
        bad("greeting", "texts cannot contain control characters");
    }
    if !matches!(form.position.as_str(), "right" | "left") {
        bad("position", "the position is right or left");
    }
    let name = FieldMode::parse(&form.name_field);
    if name.is_none() {
        bad("name_field", "choose required, optional or hidden");
    }
    let email = FieldMode::parse(&form.email_field);
    if email.is_none() {
        bad("email_field", "choose required, optional or hidden");
    }
    let mut values = vec![
        (keys::TITLE, title.to_owned()),
        (keys::COLOR, color),
        (keys::GREETING, greeting.to_owned()),
        (keys::POSITION, form.position.clone()),
        (keys::NAME_FIELD, form.name_field.clone()),
        (keys::EMAIL_FIELD, form.email_field.clone()),
    ];
    if let Some(hours) = &form.delete_after_hours
        && source("delete_after_hours") == Source::Default
    {
        match hours.trim().parse::<u64>() {
            Ok(h) if h <= 24 * 365 => values.push((keys::DELETE_AFTER_HOURS, h.to_string())),
            _ => bad(
                "delete_after_hours",
                "the cleanup delay is a number of hours from 0 to 8760",
            ),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

/// Where a deployment setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Environment,
    File,
    Default,
    /// Saved in the back office (the Mattermost connection).
    BackOffice,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Self::Environment => "environment variable",
            Self::File => "parley.toml",
            Self::Default => "default",
            Self::BackOffice => "back office",
        }
    }
}

/// Where the value of `key` (a `parley.toml` key, e.g. `delete_after_hours`) comes from.
pub fn source(key: &str) -> Source {
    let var = format!("PARLEY_{}", key.to_uppercase());
    if std::env::var_os(&var).is_some() {
        return Source::Environment;
    }
    let file = std::env::var_os("PARLEY_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("parley.toml"));
    use figment::providers::Format as _;
    let in_file = figment::Figment::from(figment::providers::Toml::file(file))
        .find_value(key)
        .is_ok();
    if in_file {
        Source::File
    } else {
        Source::Default
    }
}

/// One line of the effective configuration.
#[derive(Debug, Clone)]
pub struct ConfigLine {
    pub variable: String,
    pub value: String,
    pub source: Source,
}

/// The deployment settings in force, secrets hidden, each with where it comes from; the
/// Mattermost connection saved in the back office (`saved`) when the deployment sets none.
pub fn effective_config(s: &Settings, saved: Option<&MattermostSettings>) -> Vec<ConfigLine> {
    let from_office = s.mattermost.is_none() && saved.is_some();
    let mm = s.mattermost.as_ref().or(saved);
    let unset = || "(not set)".to_owned();
    let lines: Vec<(&str, String)> = vec![
        ("listen", s.listen.to_string()),
        ("public_url", crate::config::base(&s.public_url)),
        (
            "database_url",
            match &s.database {
                DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
                DatabaseUrl::Postgres(_) => "postgres://… (hidden)".into(),
            },
        ),
        ("data_dir", s.data_dir.display().to_string()),
        (
            "mattermost_url",
            mm.map(|m| crate::config::base(&m.url))
                .unwrap_or_else(unset),
        ),
        (
            "mattermost_token",
            mm.map(|_| "set (hidden)".to_owned()).unwrap_or_else(unset),
        ),
        (
            "mattermost_team",
            mm.map(|m| m.team.clone()).unwrap_or_else(unset),
        ),
        (
            "mattermost_channel",
            mm.map(|m| m.channel.clone()).unwrap_or_else(unset),
        ),
        (
            "allowed_origins",
            match &s.allowed_origins {
                AllowedOrigins::Any => "*".into(),
                AllowedOrigins::List(l) if l.is_empty() => {
                    format!("(not set: only {})", s.own_origin())
                }
                AllowedOrigins::List(l) => l.join(", "),
            },
        ),
        (
            "delete_after_hours",
            (s.delete_after.as_secs() / 3600).to_string(),
        ),
        ("max_message_chars", s.limits.max_message_chars.to_string()),
        ("max_field_chars", s.limits.max_field_chars.to_string()),
        (
            "rate_limit_chats_per_minute",
            s.limits.chats_per_minute_per_ip.to_string(),
        ),
        (
            "rate_limit_messages_per_minute",
            s.limits.messages_per_minute.to_string(),
        ),
        (
            "max_file_mb",
            (s.files.max_bytes / (1024 * 1024)).to_string(),
        ),
        ("max_files_per_message", s.files.max_per_message.to_string()),
        (
            "max_chat_files_mb",
            (s.files.max_chat_bytes / (1024 * 1024)).to_string(),
        ),
        ("file_types", s.files.types.join(", ")),
        ("trust_proxy_headers", s.proxy.enabled.to_string()),
        ("trusted_proxy_hops", s.proxy.hops.to_string()),
        (
            "trusted_proxies",
            s.proxy
                .networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("max_sockets_per_chat", s.live.per_chat.to_string()),
        ("max_sockets_per_address", s.live.per_address.to_string()),
        ("max_pending_sockets", s.live.pending.to_string()),
        (
            "max_stored_files_mb",
            (s.files.max_stored_bytes / (1024 * 1024)).to_string(),
        ),
        (
            "max_uploads_mb_per_day",
            (s.files.max_daily_bytes / (1024 * 1024)).to_string(),
        ),
        (
            "min_free_disk_mb",
            (s.files.min_free_disk_bytes / (1024 * 1024)).to_string(),
        ),
        ("log_format", format!("{:?}", s.log_format).to_lowercase()),
    ];
    lines
        .into_iter()
        .map(|(key, value)| ConfigLine {
            variable: format!("PARLEY_{}", key.to_uppercase()),
            value,
            source: if from_office && key.starts_with("mattermost_") {
                Source::BackOffice
            } else {
                source(key)
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SettingsForm {
        SettingsForm {
            title: "Help".into(),
            color: "#AABBCC".into(),
            greeting: "Hi".into(),
            position: "left".into(),
            name_field: "required".into(),
            email_field: "hidden".into(),
            delete_after_hours: Some("12".into()),
        }
    }

    #[test]
    fn a_good_form_gives_values_to_store() {
        let values = validate(&form()).unwrap();
        assert!(values.contains(&(keys::COLOR, "#aabbcc".into())));
        assert!(values.contains(&(keys::DELETE_AFTER_HOURS, "12".into())));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = fn(&mut SettingsForm);
        let cases: Vec<(Mutation, &str)> = vec![
            (|f| f.title = String::new(), "title"),
            (|f| f.color = "red".into(), "color"),
            (|f| f.greeting = "x".repeat(301), "greeting"),
            (|f| f.position = "top".into(), "position"),
            (|f| f.name_field = "maybe".into(), "name_field"),
            (|f| f.email_field = String::new(), "email_field"),
            (
                |f| f.delete_after_hours = Some("-1".into()),
                "delete_after_hours",
            ),
        ];
        for (mutate, field) in cases {
            let mut f = form();
            mutate(&mut f);
            let problems = validate(&f).unwrap_err();
            assert!(problems.iter().any(|p| p.field == field), "{field}");
        }
    }
}
