//! The dashboard, the offline messages and the audit log.

use axum::{
    Extension,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use serde::Deserialize;

use super::{
    auth::Signed,
    departments::presence_words,
    views::{PageError, csrf_field, layout, page, page_number, pagination, query_string, time},
};
use crate::{
    http::extract::ClientIp,
    http::state::AppState,
    mattermost::MmError,
    storage::{audit::NewAudit, history::ChatFilter, now_ms},
};

const PER_PAGE: i64 = 50;

/// What parley knows of its Mattermost connection, in words, and the class of its dot (`ok`,
/// `bad`, or `wait` while a connection just put in force is being made).
pub fn connection_state(state: &AppState) -> (String, &'static str) {
    match state.bridge() {
        None => (
            "not configured: the widget offers the offline form only (connect it in Settings)"
                .into(),
            "bad",
        ),
        Some(b) if b.is_online() => ("connected".into(), "ok"),
        Some(b) if b.is_connecting() => ("connecting…".into(), "wait"),
        Some(b) if b.is_resolved() => (
            "reconnecting: the event stream is down; visitor messages wait in the outbox".into(),
            "bad",
        ),
        Some(b) => match b.problem() {
            Some(p) => (format!("not connected: {p}"), "bad"),
            None => (
                "not connected yet: parley is connecting (Settings → Test connection checks \
                 every setting)"
                    .into(),
                "bad",
            ),
        },
    }
}

/// Whether the Accept button can work (Mattermost calls parley back), in words; `None`
/// before the first check or without a connection.
pub fn callback_words(state: &AppState) -> Option<(String, bool)> {
    let check = state.bridge()?.callback_check()?;
    Some(match check.problem {
        None => (
            format!(
                "Accept button: Mattermost reaches parley (checked {})",
                time(check.at_ms)
            ),
            true,
        ),
        Some(p) => (format!("Accept button: {p}"), false),
    })
}

/// `GET /admin`.
pub async fn dashboard(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
) -> Result<Response, PageError> {
    let now = now_ms();
    let counts = state
        .store
        .count_chats(now - now.rem_euclid(86_400_000))
        .await?;
    let waiting = state
        .store
        .list_chats_filtered(
            &ChatFilter {
                status: Some("pending".into()),
                ..ChatFilter::default()
            },
            10,
            0,
        )
        .await?
        .0;
    let errors = state.store.list_bridge_errors(10).await?;
    let (connection, dot) = connection_state(&state);
    let departments = crate::app::departments::list(&state).await?;
    let body = html! {
        div.tiles {
            a.tile href="/admin/chats?status=pending" { strong { (counts.pending) } span { "waiting" } }
            a.tile href="/admin/chats?status=active" { strong { (counts.active) } span { "active" } }
            div.tile { strong { (counts.today) } span { "today (UTC)" } }
        }
        section.card {
            h2 { "Mattermost" }
            p { span class={ "dot " (dot) } {} (connection) }
            @if let Some((words, ok)) = callback_words(&state) {
                p id="callbacks" { span class={ "dot " (if ok { "ok" } else { "bad" }) } {} (words) }
            }
        }
        (super::settings::origins_card(&state))
        section.card id="operators" {
            h2 { "Operators online now" }
            @if departments.is_empty() {
                p { (presence_words(&state, None)) }
            } @else {
                ul { @for d in &departments {
                    li { a href={ "/admin/departments/" (d.id) } { (d.name) } ": " (presence_words(&state, Some(d))) }
                } }
            }
            p.hint { "Members of the requests channel in Mattermost, as last polled (every "
                (state.settings.presence.poll_every.as_secs()) " s)." }
        }
        section.card {
            h2 { "Waiting now" }
            @if waiting.is_empty() { p.empty { "Nobody is waiting." } }
            @else {
                ul { @for c in &waiting {
                    li { a href={ "/admin/chats/" (c.id) } { (c.visitor_name.as_deref().unwrap_or("(no name)")) } " since " (time(c.created_at)) }
                } }
            }
        }
        section.card {
            h2 { "Recent bridge errors" }
            @if errors.is_empty() { p.empty { "None: Mattermost accepted everything." } }
            @else {
                table.list {
                    thead { tr { th { "When" } th { "Chat" } th { "What" } th { "Mattermost error id" } } }
                    tbody { @for e in &errors {
                        tr {
                            td { (e.done_at.map(time).unwrap_or_default()) }
                            td { a href={ "/admin/chats/" (e.chat_id) } { (e.chat_id.get(..8).unwrap_or(&e.chat_id)) } }
                            td { (e.kind) }
                            td { code { (e.last_error.as_deref().and_then(MmError::id_in_text).unwrap_or("—")) } }
                        }
                    } }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Dashboard", Some(&signed), body),
    ))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct OfflineQuery {
    show: String,
    page: Option<String>,
}

/// `GET /admin/offline`.
pub async fn offline(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Query(q): Query<OfflineQuery>,
) -> Result<Response, PageError> {
    let page_no = page_number(q.page.as_deref());
    let handled = match q.show.as_str() {
        "handled" => Some(true),
        "all" => None,
        _ => Some(false),
    };
    let (rows, total) = state
        .store
        .list_offline_messages(handled, PER_PAGE, (page_no - 1) * PER_PAGE)
        .await?;
    let body = html! {
        nav.tabs {
            a.current[handled == Some(false)] href="/admin/offline" { "Open" }
            a.current[handled == Some(true)] href="/admin/offline?show=handled" { "Handled" }
            a.current[handled.is_none()] href="/admin/offline?show=all" { "All" }
        }
        @if rows.is_empty() { p.empty { "No messages here." } }
        @for m in &rows {
            article.card.offline {
                div.meta {
                    strong { (m.name.as_deref().unwrap_or("(no name)")) }
                    " · " a href={ "mailto:" (m.email) } { (m.email) }
                    " · " (time(m.created_at))
                    @if let Some(p) = &m.page_url { " · " small { (p) } }
                }
                div.body { (m.body) }
                @if let Some(h) = m.handled_at {
                    p.hint { "Handled " (time(h)) }
                } @else {
                    form method="post" action={ "/admin/offline/" (m.id) "/handled" } {
                        (csrf_field(&signed.csrf))
                        button type="submit" { "Mark handled" }
                    }
                }
            }
        }
        (pagination("/admin/offline", &query_string(&[("show", &q.show)]), page_no, PER_PAGE, total))
    };
    Ok(page(
        StatusCode::OK,
        layout("Offline messages", Some(&signed), body),
    ))
}

/// `POST /admin/offline/{id}/handled`.
pub async fn mark_handled(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    if !state.store.mark_offline_handled(id, now_ms()).await? {
        return Err(PageError::NotFound("message"));
    }
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(&signed.email),
            action: "offline_message_handled",
            target: Some(&id.to_string()),
            ip: Some(&ip.to_string()),
            ..NewAudit::default()
        })
        .await?;
    Ok(Redirect::to("/admin/offline").into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct AuditQuery {
    q: String,
    action: String,
    page: Option<String>,
}

const ACTIONS: &[&str] = &[
    "sign_in",
    "sign_in_failed",
    "sign_in_unlocked",
    "sign_out",
    "first_admin_created",
    "password_set",
    "settings_changed",
    "connection_tested",
    "chat_deleted",
    "offline_message_handled",
    "department_created",
    "department_changed",
    "department_removed",
    "manager_created",
    "manager_disabled",
    "manager_enabled",
    "password_reset_link",
    "bridge_error",
];

/// `GET /admin/audit`.
pub async fn audit(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let page_no = page_number(q.page.as_deref());
    let action = if ACTIONS.contains(&q.action.as_str()) {
        q.action.as_str()
    } else {
        ""
    };
    let (rows, total) = state
        .store
        .list_audit(q.q.trim(), action, PER_PAGE, (page_no - 1) * PER_PAGE)
        .await?;
    let body = html! {
        form.filters method="get" action="/admin/audit" {
            label { "Search" input type="search" name="q" value=(q.q) placeholder="who, what, chat id, error id"; }
            label { "Action"
                select name="action" {
                    option value="" { "any" }
                    @for a in ACTIONS { option value=(a) selected[action == *a] { (a) } }
                }
            }
            button type="submit" { "Search" }
        }
        @if rows.is_empty() { p.empty { "Nothing matches." } }
        @else {
            table.list.audit {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "On" } th { "Details" } th { "Address" } } }
                tbody { @for r in &rows {
                    tr class=(r.action) {
                        td { (time(r.at)) }
                        td { (r.actor.as_deref().unwrap_or("—")) }
                        td { code { (r.action) } }
                        td {
                            @match (r.action.as_str(), &r.target) {
                                ("bridge_error", Some(t)) => { a href={ "/admin/chats/" (t) } { (t.get(..8).unwrap_or(t)) } }
                                (_, Some(t)) => { (t) }
                                (_, None) => { "—" }
                            }
                        }
                        td {
                            (r.detail.as_deref().unwrap_or(""))
                            @if r.attempts > 1 { " (" (r.attempts) " attempts)" }
                        }
                        td { (r.ip.as_deref().unwrap_or("")) }
                    }
                } }
            }
        }
        (pagination("/admin/audit", &query_string(&[("q", &q.q), ("action", action)]), page_no, PER_PAGE, total))
    };
    Ok(page(
        StatusCode::OK,
        layout("Audit log", Some(&signed), body),
    ))
}
