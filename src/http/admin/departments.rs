//! Departments (every manager): list, create, edit with a preview of the templates filled
//! with a sample visitor, and delete (refused while chats of the department are open). The
//! same checks as `parley department`: `departments::validate`, then the team and requests
//! channel in Mattermost when it is reachable. Every change is in the audit log.

use axum::{
    Extension, Form,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    auth::Signed,
    views::{PageError, csrf_field, layout, message_page, page},
};
use crate::{
    app::departments::{self, Department, Invalid, TemplateKind, is_available},
    config::base,
    domain::presence::RouteStatus,
    http::extract::ClientIp,
    http::state::AppState,
    mattermost::format::{self, ChatTemplates},
    storage::{
        audit::NewAudit,
        chats::ChatRow,
        departments::{DepartmentRow, RemoveOutcome},
        now_ms,
    },
};

/// The department form; empty values mean "the default" (no hours: always open).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct DepartmentForm {
    name: String,
    team: String,
    channel: String,
    position: String,
    hours: String,
    timezone: String,
    title: String,
    greeting: String,
    offline_text: String,
    request_template: String,
    channel_display_name_template: String,
    channel_header_template: String,
    first_post_template: String,
    /// Save even if Mattermost does not know the team or channel (yet).
    no_check: Option<String>,
    /// `preview` shows the templates without saving.
    action: String,
}

fn opt(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

impl DepartmentForm {
    fn of(row: &DepartmentRow) -> Self {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            name: row.name.clone(),
            team: row.team.clone(),
            channel: row.channel.clone(),
            position: row.position.to_string(),
            hours: s(&row.hours),
            timezone: row.timezone.clone(),
            title: s(&row.text_title),
            greeting: s(&row.text_greeting),
            offline_text: s(&row.text_offline),
            request_template: s(&row.template_request),
            channel_display_name_template: s(&row.template_channel_display_name),
            channel_header_template: s(&row.template_channel_header),
            first_post_template: s(&row.template_first_post),
            no_check: None,
            action: String::new(),
        }
    }

    /// The row this form describes, validated and tidied like the CLI's.
    fn to_row(&self, id: i64) -> Result<DepartmentRow, Invalid> {
        let position = match self.position.trim() {
            "" => 0,
            p => p.parse::<i64>().map_err(|_| Invalid {
                field: "position",
                problem: "must be a whole number".into(),
            })?,
        };
        let mut row = DepartmentRow {
            id,
            name: self.name.clone(),
            team: self.team.clone(),
            channel: self.channel.clone(),
            position,
            hours: opt(&self.hours),
            timezone: self.timezone.clone(),
            text_title: opt(&self.title),
            text_greeting: opt(&self.greeting),
            text_offline: opt(&self.offline_text),
            template_request: opt(&self.request_template),
            template_channel_display_name: opt(&self.channel_display_name_template),
            template_channel_header: opt(&self.channel_header_template),
            // Empty: the default, which is "no first post".
            template_first_post: opt(&self.first_post_template),
            created_at: 0,
            updated_at: 0,
        };
        departments::validate(&mut row)?;
        Ok(row)
    }
}

/// Whether the team and channel can be used, asked the way `parley department add` does:
/// unknown names are refused (unless `no_check`); an unreachable Mattermost only gives a note.
async fn check(state: &AppState, row: &DepartmentRow, no_check: bool) -> Result<String, String> {
    let Some(bridge) = state.bridge() else {
        return Ok("Mattermost is not configured: the team and channel were not checked.".into());
    };
    if no_check {
        return Ok("The team and channel were not checked in Mattermost.".into());
    }
    match bridge.check_in_mattermost(&row.team, &row.channel).await {
        Ok(()) => Ok(String::new()),
        Err(e) if e.is_transient() => Ok(format!(
            "Mattermost could not be asked ({e}); parley reports an unknown team or channel when it starts."
        )),
        Err(e) => Err(format!(
            "{e}. Fix the names or add the bot, or tick \"Save without checking\"."
        )),
    }
}

/// A chat as a visitor might start it, to fill the templates for the preview.
fn sample_chat() -> ChatRow {
    let now = now_ms();
    ChatRow {
        id: "sample0chat0id".into(),
        token_hash: String::new(),
        status: "pending".into(),
        visitor_name: Some("Jane Doe".into()),
        visitor_email: Some("jane@example.com".into()),
        page_url: Some("https://www.example.com/pricing".into()),
        referrer: Some("https://www.google.com/".into()),
        visitor_ip: None,
        created_at: now,
        accepted_at: None,
        closed_at: None,
        closed_by: None,
        operator_user_id: None,
        operator_username: None,
        operator_name: None,
        request_post_id: None,
        channel_id: None,
        channel_name: None,
        last_post_at: now,
        department_id: None,
        visitor_phone: Some("+49 30 1234567".into()),
        visitor_seen_at: 0,
    }
}

/// The preview: the widget texts and what parley would write into Mattermost for a sample
/// visitor (Markdown shown as written).
fn preview(state: &AppState, row: &DepartmentRow) -> Markup {
    let department = departments::from_row(row.clone());
    let chat = sample_chat();
    let public = base(&state.settings.public_url);
    let t = ChatTemplates {
        chat: &chat,
        department: Some(&department),
        first_message: "Hello, I have a question about your prices.",
        public_url: &public,
    };
    let first = format::first_post(&t, 16_383);
    let widget = |v: &Option<String>| {
        v.clone()
            .unwrap_or_else(|| "(the widget's own text, in the visitor's language)".into())
    };
    html! {
        section.card.preview id="preview" {
            h2 { "Preview" }
            p.hint { "With a sample visitor: Jane Doe, jane@example.com, +49 30 1234567, on https://www.example.com/pricing, writing \"Hello, I have a question about your prices.\" Markdown is shown as written." }
            dl {
                dt { "Widget title" } dd { (widget(&department.texts.title)) }
                dt { "Greeting" } dd { (widget(&department.texts.greeting)) }
                dt { "Offline text" } dd { (widget(&department.texts.offline)) }
                dt { "Request post" } dd { pre data-preview="request" { (t.render(TemplateKind::Request)) } }
                dt { "Channel name" } dd { pre data-preview="channel_display_name" { (format::channel_display_name(&t)) } }
                dt { "Channel header" } dd { pre data-preview="channel_header" { (format::channel_header(&t)) } }
                dt { "First post" } dd {
                    @match first { Some(p) => { pre data-preview="first_post" { (p) } } None => { "none" } }
                }
            }
        }
    }
}

fn form_view(
    signed: &Signed,
    action: &str,
    form: &DepartmentForm,
    problem: Option<&Invalid>,
) -> Markup {
    let mark = |field: &str| -> Option<String> {
        problem
            .filter(|p| p.field == field)
            .map(|p| p.problem.clone())
    };
    let text = |name: &'static str,
                label: &'static str,
                value: &str,
                field: &'static str,
                hint: &'static str| {
        html! {
            label { (label) input type="text" name=(name) value=(value); }
            @if !hint.is_empty() { span.hint { (hint) } }
            @if let Some(p) = mark(field) { span.field-error { (p) } }
        }
    };
    let area = |name: &'static str, kind: TemplateKind, value: &str| {
        html! {
            label { (capitalise(kind.label()))
                textarea name=(name) rows="3" placeholder=(kind.default_template()) { (value) }
            }
            @if let Some(p) = mark(kind.label()) { span.field-error { (p) } }
        }
    };
    html! {
        form.settings method="post" action=(action) {
            (csrf_field(&signed.csrf))
            fieldset {
                legend { "Where requests go" }
                (text("name", "Name (shown to visitors)", &form.name, "name", ""))
                (text("team", "Team (the name in its URL)", &form.team, "team", ""))
                (text("channel", "Requests channel (the name in its URL)", &form.channel, "channel", "The bot must be a member of the team and of this channel."))
                (text("position", "Position in the widget's list (lower first)", &form.position, "position", ""))
            }
            fieldset {
                legend { "Online hours" }
                (text("hours", "Hours (empty: whenever an operator is present)", &form.hours, "hours", "e.g. mon-fri 09:00-12:00 13:00-17:30; sat 10:00-14:00"))
                (text("timezone", "Time zone (IANA name)", &form.timezone, "timezone", "e.g. Europe/Berlin; empty: UTC"))
            }
            fieldset {
                legend { "Widget texts (empty: the widget's own, translated)" }
                (text("title", "Title", &form.title, "title", ""))
                label { "Greeting" textarea name="greeting" rows="2" { (form.greeting) } }
                @if let Some(p) = mark("greeting") { span.field-error { (p) } }
                label { "Offline text" textarea name="offline_text" rows="2" { (form.offline_text) } }
                @if let Some(p) = mark("offline text") { span.field-error { (p) } }
            }
            fieldset {
                legend { "Templates (empty: the default, shown greyed)" }
                p.hint { "Variables: {nick} {email} {phone} {department} {id} {url} {page_url} {referrer} {message} {time_created}; {#email}…{/email} only when there is a value; {{ and }} write braces." }
                (area("request_template", TemplateKind::Request, &form.request_template))
                (area("channel_display_name_template", TemplateKind::ChannelDisplayName, &form.channel_display_name_template))
                (area("channel_header_template", TemplateKind::ChannelHeader, &form.channel_header_template))
                (area("first_post_template", TemplateKind::FirstPost, &form.first_post_template))
            }
            label.check { input type="checkbox" name="no_check" value="1" checked[form.no_check.is_some()]; "Save without checking the team and channel in Mattermost" }
            div.actions {
                button type="submit" name="action" value="save" { "Save" }
                button.secondary type="submit" name="action" value="preview" { "Preview" }
            }
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// What the presence poll last said about a department's operators, in words.
pub fn presence_words(state: &AppState, department: Option<&Department>) -> String {
    let Some(bridge) = state.bridge() else {
        return "Mattermost is not configured".into();
    };
    let Some(route) = departments::route_of(state, department) else {
        return "Mattermost is not configured".into();
    };
    match bridge.presence.status(&route) {
        None if !bridge.is_resolved() => match bridge.problem() {
            Some(p) => format!("unknown: Mattermost cannot be used: {p}"),
            None => "not known yet (parley is connecting to Mattermost)".into(),
        },
        None => "not known yet (the first presence poll has not run)".into(),
        Some(RouteStatus::StatusesUnavailable) => {
            "unknown: Mattermost reports no statuses (EnableUserStatuses is off)".into()
        }
        Some(RouteStatus::Problem(p)) => format!("cannot be used: {p}"),
        Some(RouteStatus::Known(c)) => format!(
            "{} online, {} away, {} do not disturb, of {} operator(s)",
            c.online, c.away, c.dnd, c.operators
        ),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    done: String,
}

/// `GET /admin/departments`.
pub async fn list(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let departments = departments::list(&state).await?;
    let now = jiff::Timestamp::now();
    let notice = match q.done.as_str() {
        "created" => Some("Department created."),
        "saved" => Some("Department saved."),
        "removed" => Some("Department removed."),
        _ => None,
    };
    let body = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        div.actions { a.button href="/admin/departments/new" { "New department" } }
        @if departments.is_empty() {
            p.empty {
                "No departments: every chat goes to the configured requests channel"
                @if let Some(b) = state.bridge() { " ~" (b.settings().channel) " in team " (b.settings().team) }
                " (Settings → Mattermost connection). Create departments to let visitors choose, each with its own channel, hours and texts."
            }
        } @else {
            table.list {
                thead { tr { th { "Name" } th { "Requests channel" } th { "Online hours" } th { "Now" } th { "Operators" } th { "" } } }
                tbody { @for d in &departments {
                    tr {
                        td data-label="Name" { a href={ "/admin/departments/" (d.id) } { (d.name) } }
                        td data-label="Requests channel" { "~" (d.channel) " in " (d.team) }
                        td data-label="Online hours" {
                            @match &d.hours { Some(h) => { (h.text()) " (" (d.zone.iana_name().unwrap_or("UTC")) ")" } None => { "always" } }
                        }
                        td data-label="Now" { @if is_available(&state, Some(d), now, true) { span.status.active { "online" } } @else { span.status { "offline" } } }
                        td data-label="Operators" { (presence_words(&state, Some(d))) }
                        td.row-actions {
                            a.button href={ "/admin/departments/" (d.id) } { "Edit" }
                            a.button.danger href={ "/admin/departments/" (d.id) "/delete" } { "Delete…" }
                        }
                    }
                } }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Departments", Some(&signed), body),
    ))
}

/// `GET /admin/departments/new`.
pub async fn new_page(Extension(signed): Extension<Signed>) -> Response {
    let form = DepartmentForm {
        timezone: "UTC".into(),
        position: "0".into(),
        ..DepartmentForm::default()
    };
    page(
        StatusCode::OK,
        layout(
            "New department",
            Some(&signed),
            form_view(&signed, "/admin/departments", &form, None),
        ),
    )
}

fn error_page(
    signed: &Signed,
    title: &str,
    action: &str,
    form: &DepartmentForm,
    problem: Option<&Invalid>,
    message: &str,
) -> Response {
    page(
        StatusCode::UNPROCESSABLE_ENTITY,
        layout(
            title,
            Some(signed),
            html! {
                p.error role="alert" { "Nothing was saved: " (message) }
                (form_view(signed, action, form, problem))
            },
        ),
    )
}

/// `POST /admin/departments`: create, or preview.
pub async fn create(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Form(form): Form<DepartmentForm>,
) -> Result<Response, PageError> {
    let title = "New department";
    let action = "/admin/departments";
    let row = match form.to_row(0) {
        Ok(r) => r,
        Err(e) => {
            return Ok(error_page(
                &signed,
                title,
                action,
                &form,
                Some(&e),
                &e.to_string(),
            ));
        }
    };
    if form.action == "preview" {
        let body = html! { (preview(&state, &row)) (form_view(&signed, action, &form, None)) };
        return Ok(page(StatusCode::OK, layout(title, Some(&signed), body)));
    }
    let note = match check(&state, &row, form.no_check.is_some()).await {
        Ok(n) => n,
        Err(e) => return Ok(error_page(&signed, title, action, &form, None, &e)),
    };
    let id = match state.store.insert_department(&row).await {
        Ok(id) => id,
        Err(crate::storage::StoreError::Conflict(c)) => {
            let e = Invalid {
                field: "name",
                problem: c,
            };
            return Ok(error_page(
                &signed,
                title,
                action,
                &form,
                Some(&e),
                &e.to_string(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let detail = format!(
        "team {} channel ~{}{}{}",
        row.team,
        row.channel,
        if note.is_empty() { "" } else { "; " },
        note
    );
    audit(
        &state,
        &signed,
        &ip.to_string(),
        "department_created",
        &row.name,
        &detail,
    )
    .await?;
    Ok(Redirect::to(&format!("/admin/departments/{id}?done=created")).into_response())
}

async fn audit(
    state: &AppState,
    signed: &Signed,
    ip: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), PageError> {
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(&signed.email),
            action,
            target: Some(target),
            detail: (!detail.is_empty()).then_some(detail),
            ip: Some(ip),
        })
        .await?;
    Ok(())
}

async fn load(state: &AppState, id: i64) -> Result<DepartmentRow, PageError> {
    state
        .store
        .get_department(id)
        .await?
        .ok_or(PageError::NotFound("department"))
}

/// `GET /admin/departments/{id}`: the form with the saved values, and their preview beside.
pub async fn edit_page(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<i64>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let row = load(&state, id).await?;
    let form = DepartmentForm::of(&row);
    let department = departments::from_row(row.clone());
    let body = html! {
        @if q.done == "created" { p.notice role="status" { "Department created." } }
        @if q.done == "saved" { p.notice role="status" { "Department saved." } }
        p { "Operators now: " (presence_words(&state, Some(&department))) }
        div.columns.wide {
            (form_view(&signed, &format!("/admin/departments/{id}"), &form, None))
            (preview(&state, &row))
        }
        p { a.button.danger href={ "/admin/departments/" (id) "/delete" } { "Delete…" } }
    };
    Ok(page(
        StatusCode::OK,
        layout(&format!("Department {}", row.name), Some(&signed), body),
    ))
}

/// What changed, for the audit log (texts and templates by name only).
fn changes(before: &DepartmentRow, after: &DepartmentRow) -> String {
    let mut out = Vec::new();
    let mut short = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: {a:?} → {b:?}"));
        }
    };
    short("name", before.name.clone(), after.name.clone());
    short("team", before.team.clone(), after.team.clone());
    short("channel", before.channel.clone(), after.channel.clone());
    short(
        "position",
        before.position.to_string(),
        after.position.to_string(),
    );
    short(
        "hours",
        before.hours.clone().unwrap_or_default(),
        after.hours.clone().unwrap_or_default(),
    );
    short("timezone", before.timezone.clone(), after.timezone.clone());
    for (name, a, b) in [
        ("title", &before.text_title, &after.text_title),
        ("greeting", &before.text_greeting, &after.text_greeting),
        ("offline text", &before.text_offline, &after.text_offline),
        (
            "request template",
            &before.template_request,
            &after.template_request,
        ),
        (
            "channel display name template",
            &before.template_channel_display_name,
            &after.template_channel_display_name,
        ),
        (
            "channel header template",
            &before.template_channel_header,
            &after.template_channel_header,
        ),
        (
            "first post template",
            &before.template_first_post,
            &after.template_first_post,
        ),
    ] {
        if a != b {
            out.push(format!("{name} changed"));
        }
    }
    out.join("; ")
}

/// `POST /admin/departments/{id}`: save, or preview.
pub async fn update(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
    Form(form): Form<DepartmentForm>,
) -> Result<Response, PageError> {
    let before = load(&state, id).await?;
    let title = format!("Department {}", before.name);
    let action = format!("/admin/departments/{id}");
    let row = match form.to_row(id) {
        Ok(r) => r,
        Err(e) => {
            return Ok(error_page(
                &signed,
                &title,
                &action,
                &form,
                Some(&e),
                &e.to_string(),
            ));
        }
    };
    if form.action == "preview" {
        let body = html! {
            p.hint { "Not saved yet: this is a preview of the values below." }
            div.columns.wide { (form_view(&signed, &action, &form, None)) (preview(&state, &row)) }
        };
        return Ok(page(StatusCode::OK, layout(&title, Some(&signed), body)));
    }
    let moved = (row.team.as_str(), row.channel.as_str())
        != (before.team.as_str(), before.channel.as_str());
    let note = if moved {
        match check(&state, &row, form.no_check.is_some()).await {
            Ok(n) => n,
            Err(e) => return Ok(error_page(&signed, &title, &action, &form, None, &e)),
        }
    } else {
        String::new()
    };
    match state.store.update_department(&row).await {
        Ok(true) => {}
        Ok(false) => return Err(PageError::NotFound("department")),
        Err(crate::storage::StoreError::Conflict(c)) => {
            let e = Invalid {
                field: "name",
                problem: c,
            };
            return Ok(error_page(
                &signed,
                &title,
                &action,
                &form,
                Some(&e),
                &e.to_string(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let mut detail = changes(&before, &row);
    if !note.is_empty() {
        detail = format!("{detail}; {note}");
    }
    if !detail.is_empty() {
        audit(
            &state,
            &signed,
            &ip.to_string(),
            "department_changed",
            &row.name,
            &detail,
        )
        .await?;
    }
    Ok(Redirect::to(&format!("/admin/departments/{id}?done=saved")).into_response())
}

/// `GET /admin/departments/{id}/delete`: the confirmation.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let row = load(&state, id).await?;
    let body = html! {
        section.card {
            p { "Delete the department " strong { (row.name) } " (requests to ~" (row.channel) " in " (row.team) ")?" }
            p.hint { "Its ended chats keep their history (without a department). A department with waiting or active chats cannot be deleted." }
            form method="post" action={ "/admin/departments/" (id) "/delete" } {
                (csrf_field(&signed.csrf))
                div.actions {
                    button.danger type="submit" { "Delete the department" }
                    a.button href={ "/admin/departments/" (id) } { "Cancel" }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Delete a department", Some(&signed), body),
    ))
}

/// `POST /admin/departments/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let row = load(&state, id).await?;
    match state.store.delete_department(id).await? {
        RemoveOutcome::Removed => {
            audit(
                &state,
                &signed,
                &ip.to_string(),
                "department_removed",
                &row.name,
                "",
            )
            .await?;
            Ok(Redirect::to("/admin/departments?done=removed").into_response())
        }
        RemoveOutcome::NotFound => Err(PageError::NotFound("department")),
        RemoveOutcome::HasOpenChats(n) => Ok(message_page(
            StatusCode::CONFLICT,
            "Department not deleted",
            Some(&signed),
            &format!(
                "The department \"{}\" has {n} waiting or active chat(s); their Accept and channel need it. \
                 Delete it once they have ended.",
                row.name
            ),
        )),
    }
}
