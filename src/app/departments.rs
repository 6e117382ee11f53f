//! Departments: where a chat's request goes (a requests channel in a team), when the
//! department is open (its online hours and the presence of its operators), what the widget
//! says for it and how parley's posts for it look. Without any department defined, the
//! configured `PARLEY_MATTERMOST_TEAM`/`_CHANNEL` act as the one default department.
//!
//! Departments are read from the database when needed (the CLI and, later, the back office
//! change them while the server runs); each is validated when saved (`validate`).

use jiff::{Timestamp, tz::TimeZone};
use serde::Serialize;

pub use crate::domain::department::*;
use crate::{
    app::App,
    config::PresenceSettings,
    domain::{
        hours::{OnlineHours, parse_zone},
        presence::RouteStatus,
        template,
    },
    storage::{StoreError, departments::DepartmentRow},
};

/// Reads a stored department. Stored values were validated when saved; should one be
/// broken anyway (edited by hand), it is logged and its default used rather than failing
/// visitors.
pub fn from_row(row: DepartmentRow) -> Department {
    let zone = parse_zone(&row.timezone).unwrap_or_else(|e| {
        tracing::error!(department = %row.name, problem = %e, "a department's time zone is invalid; using UTC");
        TimeZone::UTC
    });
    let hours = row.hours.as_deref().and_then(|h| {
        OnlineHours::parse(h, &row.timezone)
            .map_err(|e| {
                tracing::error!(department = %row.name, problem = %e, "a department's online hours are invalid; ignoring them");
            })
            .ok()
    });
    Department {
        id: row.id,
        name: row.name,
        team: row.team,
        channel: row.channel,
        hours,
        zone,
        texts: Texts {
            title: row.text_title,
            greeting: row.text_greeting,
            offline: row.text_offline,
        },
        templates: [
            row.template_request,
            row.template_channel_display_name,
            row.template_channel_header,
            row.template_first_post,
        ],
    }
}

/// Every department, in the widget's order.
pub async fn list(state: &App) -> Result<Vec<Department>, StoreError> {
    Ok(state
        .store
        .list_departments()
        .await?
        .into_iter()
        .map(from_row)
        .collect())
}

/// The department of a stored chat or offline message (`None`: the default one, also when
/// its department was removed since).
pub async fn get(state: &App, id: Option<i64>) -> Result<Option<Department>, StoreError> {
    match id {
        Some(id) => Ok(state.store.get_department(id).await?.map(from_row)),
        None => Ok(None),
    }
}

/// Where requests of `department` go; `None` without Mattermost.
pub fn route_of(state: &App, department: Option<&Department>) -> Option<Route> {
    match department {
        Some(d) => Some(d.route()),
        None => state.bridge().map(|b| b.settings().default_route()),
    }
}

/// Whether a department can take a chat now: within its hours, and (once parley knows) at
/// least one of its operators present in Mattermost. `stream_required` is for the widget's
/// online status: operators' replies need the event stream; a new chat only needs Mattermost
/// to have been reached (it waits in the outbox during a short outage).
pub fn is_available(
    state: &App,
    department: Option<&Department>,
    at: Timestamp,
    stream_required: bool,
) -> bool {
    let Some(bridge) = state.bridge() else {
        return false;
    };
    let connected = if stream_required {
        bridge.is_online()
    } else {
        bridge.is_resolved()
    };
    if !connected {
        return false;
    }
    if let Some(hours) = department.and_then(|d| d.hours.as_ref())
        && !hours.is_open_at(at)
    {
        return false;
    }
    let Some(route) = route_of(state, department) else {
        return false;
    };
    presence_allows(bridge.presence.status(&route), &state.settings.presence)
}

/// The presence rule: unknown (not polled yet, or statuses switched off in Mattermost) does
/// not hold a department back; a channel parley cannot use does.
pub fn presence_allows(status: Option<RouteStatus>, policy: &PresenceSettings) -> bool {
    match status {
        None | Some(RouteStatus::StatusesUnavailable) => true,
        Some(RouteStatus::Problem(_)) => false,
        Some(RouteStatus::Known(counts)) => {
            counts.online > 0
                || (policy.away_counts && counts.away > 0)
                || (policy.dnd_counts && counts.dnd > 0)
        }
    }
}

/// A department's state for the visitor API.
#[derive(Debug, Clone, Serialize)]
pub struct DepartmentView {
    pub id: i64,
    pub name: String,
    pub online: bool,
    pub texts: Texts,
}

/// The departments with their online state now (empty without departments), and whether any
/// can be reached.
pub async fn status(state: &App, at: Timestamp) -> Result<(bool, Vec<DepartmentView>), StoreError> {
    let departments = list(state).await?;
    if departments.is_empty() {
        return Ok((is_available(state, None, at, true), Vec::new()));
    }
    let views: Vec<DepartmentView> = departments
        .into_iter()
        .map(|d| DepartmentView {
            online: is_available(state, Some(&d), at, true),
            id: d.id,
            name: d.name,
            texts: d.texts,
        })
        .collect();
    Ok((views.iter().any(|v| v.online), views))
}

/// Why a department's settings cannot be saved: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: &'static str,
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid {
        field,
        problem: problem.into(),
    }
}

/// Checks (and tidies) a department before it is saved: name, team and channel names,
/// online hours and time zone, texts, templates. Mattermost itself is asked separately
/// (`Client::check_in_mattermost`), since it may be unreachable.
pub fn validate(row: &mut DepartmentRow) -> Result<(), Invalid> {
    row.name = row.name.trim().to_owned();
    if row.name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if row.name.chars().count() > MAX_NAME_CHARS || row.name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            format!("must be one line of at most {MAX_NAME_CHARS} characters"),
        ));
    }
    row.team = row.team.trim().to_owned();
    row.channel = row.channel.trim().trim_start_matches('~').to_owned();
    for (field, value) in [("team", &row.team), ("channel", &row.channel)] {
        if !is_mattermost_name(value) {
            return Err(invalid(
                field,
                format!(
                    "`{value}` is not a Mattermost {field} name (the part of its URL: lowercase letters, digits, - and _)"
                ),
            ));
        }
    }
    row.timezone = row.timezone.trim().to_owned();
    if row.timezone.is_empty() {
        row.timezone = "UTC".into();
    }
    parse_zone(&row.timezone).map_err(|e| invalid("timezone", e))?;
    row.hours = row
        .hours
        .take()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    if let Some(h) = &row.hours {
        let parsed = OnlineHours::parse(h, &row.timezone).map_err(|e| invalid("hours", e))?;
        row.hours = Some(parsed.text().to_owned());
    }
    for (field, text) in [
        ("title", &mut row.text_title),
        ("greeting", &mut row.text_greeting),
        ("offline text", &mut row.text_offline),
    ] {
        *text = text
            .take()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        if let Some(t) = text {
            if t.chars().count() > MAX_TEXT_CHARS {
                return Err(invalid(
                    field,
                    format!("is longer than {MAX_TEXT_CHARS} characters"),
                ));
            }
            if t.chars().any(|c| c.is_control() && c != '\n') {
                return Err(invalid(field, "must not contain control characters"));
            }
        }
    }
    let templates = [
        &mut row.template_request,
        &mut row.template_channel_display_name,
        &mut row.template_channel_header,
        &mut row.template_first_post,
    ];
    for (kind, value) in TemplateKind::ALL.into_iter().zip(templates) {
        // An empty first post means "post nothing"; other templates cannot be empty.
        if let Some(t) = value.as_deref()
            && t.trim().is_empty()
            && kind != TemplateKind::FirstPost
        {
            *value = None;
        }
        if let Some(t) = value.as_deref() {
            template::validate(t, kind.max_chars(), kind.target())
                .map_err(|e| invalid(kind.label(), e))?;
        }
    }
    Ok(())
}

/// Mattermost's rule for channel names (team names are stricter, but any team name passes
/// this): lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 64.
fn is_mattermost_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> DepartmentRow {
        DepartmentRow {
            hours: Some("Mon-Fri 9:00-17:30".into()),
            timezone: "Europe/Berlin".into(),
            text_title: Some("  ".into()),
            template_request: Some("".into()),
            template_first_post: Some("".into()),
            ..DepartmentRow::new(" Sales ", "support", "~sales-requests")
        }
    }

    #[test]
    fn a_valid_department_is_tidied() {
        let mut r = row();
        validate(&mut r).unwrap();
        assert_eq!(r.name, "Sales");
        assert_eq!(r.channel, "sales-requests");
        assert_eq!(r.hours.as_deref(), Some("mon-fri 09:00-17:30"));
        assert_eq!(r.text_title, None);
        assert_eq!(r.template_request, None, "empty means the default");
        assert_eq!(
            r.template_first_post.as_deref(),
            Some(""),
            "empty first post: none"
        );
    }

    #[test]
    fn mistakes_name_their_field() {
        type Mutation = fn(&mut DepartmentRow);
        let cases: Vec<(Mutation, &str)> = vec![
            (|r| r.name = "".into(), "name"),
            (|r| r.team = "Support Team".into(), "team"),
            (|r| r.channel = "Sales Requests".into(), "channel"),
            (|r| r.hours = Some("weekdays".into()), "hours"),
            (|r| r.timezone = "Berlin".into(), "timezone"),
            (
                |r| r.template_request = Some("from {nick".into()),
                "request template",
            ),
            (
                |r| r.template_channel_display_name = Some("x".repeat(201)),
                "channel display name template",
            ),
            (|r| r.text_greeting = Some("x".repeat(501)), "greeting"),
        ];
        for (mutate, field) in cases {
            let mut r = row();
            mutate(&mut r);
            assert_eq!(validate(&mut r).unwrap_err().field, field);
        }
    }
}
