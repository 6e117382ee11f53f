//! Settings (admins only): the configuration in force (values from the environment or
//! `parley.toml` read-only, secrets hidden), the Mattermost connection (edited in
//! `connection`, with **Test connection**: the doctor's checks), and the widget's texts and
//! look plus the cleanup delay, stored in the database.

use axum::{
    Extension, Form,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    auth::Signed,
    connection::{self, Editor},
    views::{PageError, csrf_field, layout, page},
};
use crate::{
    app::doctor::{self, Report, Verdict},
    app::settings::{
        self as office, FieldMode, Invalid, SettingsForm, Source, WidgetSettings, keys,
    },
    http::extract::ClientIp,
    http::state::AppState,
    storage::{audit::NewAudit, now_ms},
};

/// The settings page with the connection card in the state `editor` says.
pub(super) async fn settings_page(
    state: &AppState,
    signed: &Signed,
    editor: &Editor,
    notice: Option<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let widget = office::widget(&state.store).await?;
    let hours = office::delete_after(&state.store, &state.settings)
        .await
        .as_secs()
        / 3600;
    let markup = render(state, signed, &form_of(&widget, hours), &[], editor, notice);
    Ok(page(status, markup))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct SettingsQuery {
    saved: Option<String>,
}

/// `GET /admin/settings`.
pub async fn page_handler(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Query(q): Query<SettingsQuery>,
) -> Result<Response, PageError> {
    let notice = match q.saved.as_deref() {
        Some("connection") => Some(connection_outcome(&state).await),
        Some(_) => Some("Settings saved."),
        None => None,
    };
    settings_page(
        &state,
        &signed,
        &Editor::initial(&state),
        notice,
        StatusCode::OK,
    )
    .await
}

/// The longest the page shown right after "Save and connect" waits for the connection's
/// first attempt (the redirect would otherwise win the race and show "not connected").
const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (bounded) for the outcome of the connection just put in force, and says it.
async fn connection_outcome(state: &AppState) -> &'static str {
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    while state.bridge().is_some_and(|b| b.is_connecting())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    match state.bridge() {
        Some(b) if b.is_online() => "Mattermost connection saved and put in force: connected.",
        Some(b) if b.is_connecting() => {
            "Mattermost connection saved and put in force: parley is still connecting with it (reload to see the outcome)."
        }
        _ => {
            "Mattermost connection saved and put in force, but parley could not connect with it yet: see below."
        }
    }
}

fn form_of(w: &WidgetSettings, hours: u64) -> SettingsForm {
    SettingsForm {
        title: w.title.clone(),
        color: w.color.clone(),
        greeting: w.greeting.clone(),
        position: w.position.clone(),
        name_field: w.name_field.as_str().into(),
        email_field: w.email_field.as_str().into(),
        delete_after_hours: Some(hours.to_string()),
    }
}

fn render(
    state: &AppState,
    signed: &Signed,
    form: &SettingsForm,
    problems: &[Invalid],
    editor: &Editor,
    notice: Option<&str>,
) -> Markup {
    let problem = |field: &str| {
        problems
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.clone())
    };
    let delay_source = office::source("delete_after_hours");
    let saved_connection = crate::app::connection::origin_is_back_office(state)
        .then(|| state.bridge().map(|b| b.settings().clone()))
        .flatten();
    let body = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if !problems.is_empty() { p.error role="alert" { "Nothing was saved: please correct the fields marked below." } }
        (connection::card(state, signed, editor))
        section.card id="widget" {
            h2 { "Widget and cleanup" }
            form.settings method="post" action="/admin/settings" {
                (csrf_field(&signed.csrf))
                label { "Title" input type="text" name="title" value=(form.title) maxlength="60" required; }
                @if let Some(p) = problem("title") { span.field-error { (p) } }
                label { "Colour" input type="color" name="color" value=(form.color); }
                @if let Some(p) = problem("color") { span.field-error { (p) } }
                label { "Greeting" textarea name="greeting" rows="3" maxlength="300" { (form.greeting) } }
                @if let Some(p) = problem("greeting") { span.field-error { (p) } }
                label { "Position on the page"
                    select name="position" {
                        option value="right" selected[form.position == "right"] { "bottom right" }
                        option value="left" selected[form.position == "left"] { "bottom left" }
                    }
                }
                @if let Some(p) = problem("position") { span.field-error { (p) } }
                @for (name, label, value) in [("name_field", "Name in the pre-chat form", &form.name_field), ("email_field", "E-mail in the pre-chat form", &form.email_field)] {
                    label { (label)
                        select name=(name) {
                            @for mode in [FieldMode::Required, FieldMode::Optional, FieldMode::Hidden] {
                                option value=(mode.as_str()) selected[value == mode.as_str()] { (mode.as_str()) }
                            }
                        }
                    }
                    @if let Some(p) = problem(name) { span.field-error { (p) } }
                }
                @if delay_source == Source::Default {
                    label { "Remove ended chats' Mattermost channels after (hours; 0 = at the next cleanup)"
                        input type="number" name="delete_after_hours" min="0" max="8760" value=(form.delete_after_hours.as_deref().unwrap_or("24")); }
                    @if let Some(p) = problem("delete_after_hours") { span.field-error { (p) } }
                } @else {
                    p { "Channels of ended chats are removed after " strong { (state.settings.delete_after.as_secs() / 3600) " hours" }
                        " (set by PARLEY_DELETE_AFTER_HOURS in the " (delay_source.label()) "; change it there)." }
                }
                button type="submit" { "Save" }
            }
            p.hint { "The widget reads these from " code { "GET /api/v1/widget-config" } " when a page loads." }
        }
        section.card id="preview" {
            h2 { "Live preview" }
            p.hint { "The " a href="/" { "demo page" } " with the widget as saved (save to see a change). A chat started here is a real chat." }
            iframe.preview src="/" title="The widget on the demo page" loading="lazy" {}
        }
        (origins_card(state))
        section.card id="configuration" {
            h2 { "Configuration in force" }
            p.hint { "Set by environment variables or parley.toml (the Mattermost connection possibly in the back office, above); read-only here. Secrets are never shown." }
            table.list {
                thead { tr { th { "Variable" } th { "Value" } th { "From" } } }
                tbody { @for line in office::effective_config(&state.settings, saved_connection.as_ref()) {
                    tr { td { code { (line.variable) } } td { (line.value) } td { (line.source.label()) } }
                } }
            }
        }
    };
    layout("Settings", Some(signed), body)
}

/// Which websites may embed the widget (`PARLEY_ALLOWED_ORIGINS`), with a warning for `*`.
pub(super) fn origins_card(state: &AppState) -> Markup {
    let s = &state.settings;
    let any = s.allowed_origins == crate::config::AllowedOrigins::Any;
    html! {
        section.card id="origins" data-any=(any) {
            h2 { "Websites that may embed the widget" }
            p { (s.allowed_origins.describe(&s.own_origin())) }
            @if any {
                p.error role="alert" { "PARLEY_ALLOWED_ORIGINS is `*`: any website can start chats and send messages through its visitors' browsers. List your sites' origins instead, e.g. PARLEY_ALLOWED_ORIGINS=https://www.example.com." }
            } @else {
                p.hint { "Set by PARLEY_ALLOWED_ORIGINS (comma-separated origins such as https://www.example.com). Other websites are refused, with a message in their browser console." }
            }
        }
    }
}

pub(super) fn report_view(report: &Report) -> Markup {
    html! {
        div.report id="doctor" {
            p class=(if report.passed() { "notice" } else { "error" }) {
                @if report.passed() { "All essential checks passed." }
                @else { "Some essential checks failed: parley cannot work with Mattermost until they pass." }
            }
            ul.checks {
                @for c in &report.checks {
                    li class={ "check " (match c.verdict { Verdict::Ok => "ok", Verdict::Warning => "warning", Verdict::Failed => "failed", Verdict::Skipped => "skipped" }) } data-check=(c.id) {
                        span.verdict { (c.verdict.label()) }
                        strong { (c.title) } ": " (c.found)
                        @if let Some(a) = &c.advice { div.advice { "→ " (a) } }
                    }
                }
            }
        }
    }
}

/// `POST /admin/settings`.
pub async fn save(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Form(form): Form<SettingsForm>,
) -> Result<Response, PageError> {
    let values = match office::validate(&form) {
        Ok(v) => v,
        Err(problems) => {
            let editor = Editor::initial(&state);
            let markup = render(&state, &signed, &form, &problems, &editor, None);
            return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, markup));
        }
    };
    let before = state.store.list_settings().await?;
    let current = form_of(
        &office::widget(&state.store).await?,
        office::delete_after(&state.store, &state.settings)
            .await
            .as_secs()
            / 3600,
    );
    let old = |key: &str| -> String {
        before.get(key).cloned().unwrap_or_else(|| match key {
            keys::TITLE => current.title.clone(),
            keys::COLOR => current.color.clone(),
            keys::GREETING => current.greeting.clone(),
            keys::POSITION => current.position.clone(),
            keys::NAME_FIELD => current.name_field.clone(),
            keys::EMAIL_FIELD => current.email_field.clone(),
            _ => current.delete_after_hours.clone().unwrap_or_default(),
        })
    };
    let changes: Vec<String> = values
        .iter()
        .filter(|(k, v)| old(k) != *v)
        .map(|(k, v)| format!("{k}: {:?} → {v:?}", old(k)))
        .collect();
    if !changes.is_empty() {
        state
            .store
            .put_settings(&values, &signed.email, now_ms())
            .await?;
        state
            .store
            .insert_audit(&NewAudit {
                actor: Some(&signed.email),
                action: "settings_changed",
                detail: Some(&changes.join("; ")),
                ip: Some(&ip.to_string()),
                ..NewAudit::default()
            })
            .await?;
    }
    Ok(Redirect::to("/admin/settings?saved=1").into_response())
}

/// `POST /admin/settings/test`: runs the doctor's checks on the connection in force and shows
/// them.
pub async fn test_connection(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
) -> Result<Response, PageError> {
    let mut settings = (*state.settings).clone();
    settings.mattermost = state.bridge().map(|b| b.settings().clone());
    let report = doctor::run_with(&settings, Some(&state.signer)).await;
    connection::audit_test(&state, &signed, &ip.to_string(), &report, false).await?;
    let editor = Editor {
        report: Some(report),
        ..Editor::initial(&state)
    };
    settings_page(&state, &signed, &editor, None, StatusCode::OK).await
}
