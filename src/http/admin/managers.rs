//! Managers (admins only): invite (a setup link to send), disable or enable, and reset a
//! password (a new setup link). Every change is in the audit log.

use axum::{
    Extension, Form,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    auth::Signed,
    views::{PageError, csrf_field, layout, maybe_time, message_page, page},
};
use crate::{
    app::accounts::{InviteError, Role, invite, reset_link},
    config::base,
    http::extract::ClientIp,
    http::state::AppState,
    storage::{audit::NewAudit, now_ms},
};

async fn render(
    state: &AppState,
    signed: &Signed,
    flash: Option<Markup>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let managers = state.store.list_managers().await?;
    let body = html! {
        @if let Some(f) = flash { (f) }
        table.list {
            thead { tr { th { "E-mail" } th { "Role" } th { "State" } th { "Last sign-in" } th { "" } } }
            tbody { @for m in &managers {
                tr {
                    td { (m.email) }
                    td { (m.role) }
                    td { @if m.disabled_at.is_some() { "disabled" } @else if m.password_hash.is_none() { "invited" } @else { "active" } }
                    td { (maybe_time(m.last_login_at)) }
                    td.row-actions {
                        @if m.id != signed.manager_id {
                            @if m.disabled_at.is_some() {
                                form method="post" action={ "/admin/managers/" (m.id) "/enable" } { (csrf_field(&signed.csrf)) button type="submit" { "Enable" } }
                            } @else {
                                form method="post" action={ "/admin/managers/" (m.id) "/disable" } { (csrf_field(&signed.csrf)) button type="submit" { "Disable" } }
                            }
                        }
                        form method="post" action={ "/admin/managers/" (m.id) "/reset" } { (csrf_field(&signed.csrf)) button type="submit" { "New password link" } }
                    }
                }
            } }
        }
        section.card {
            h2 { "Invite a manager" }
            form.inline method="post" action="/admin/managers" {
                (csrf_field(&signed.csrf))
                label { "E-mail" input type="email" name="email" required; }
                label { "Role"
                    select name="role" {
                        option value="manager" { "manager: chats and offline messages" }
                        option value="admin" { "admin: everything, including settings and managers" }
                    }
                }
                button type="submit" { "Create and get a link" }
            }
        }
    };
    Ok(page(status, layout("Managers", Some(signed), body)))
}

fn link_flash(text: &str, link: &str) -> Markup {
    html! {
        div.notice role="status" {
            p { (text) }
            p { code.link id="setup-link" { (link) } }
            p.hint { "The link works once, for 72 hours, and is shown only now. Send it by a channel you trust." }
        }
    }
}

/// `GET /admin/managers`.
pub async fn page_handler(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
) -> Result<Response, PageError> {
    render(&state, &signed, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct NewManagerForm {
    email: String,
    role: String,
}

/// `POST /admin/managers`.
pub async fn create(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Form(form): Form<NewManagerForm>,
) -> Result<Response, PageError> {
    let role = Role::parse(&form.role).unwrap_or(Role::Manager);
    let public = base(&state.settings.public_url);
    match invite(&state.store, &public, &form.email, role).await {
        Ok((manager, link)) => {
            state
                .store
                .insert_audit(&NewAudit {
                    actor: Some(&signed.email),
                    action: "manager_created",
                    target: Some(&manager.email),
                    detail: Some(role.as_str()),
                    ip: Some(&ip.to_string()),
                })
                .await?;
            let flash = link_flash(
                &format!("{} can now set a password with this link:", manager.email),
                &link,
            );
            render(&state, &signed, Some(flash), StatusCode::CREATED).await
        }
        Err(InviteError::Store(e)) => Err(e.into()),
        Err(e) => {
            let flash = html! { p.error role="alert" { (e.to_string()) "." } };
            render(
                &state,
                &signed,
                Some(flash),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

async fn set_disabled(
    state: &AppState,
    signed: &Signed,
    ip: &str,
    id: i64,
    disable: bool,
) -> Result<Response, PageError> {
    let manager = state
        .store
        .get_manager(id)
        .await?
        .ok_or(PageError::NotFound("manager"))?;
    if manager.id == signed.manager_id {
        return Ok(message_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not possible",
            Some(signed),
            "You cannot disable your own account.",
        ));
    }
    state
        .store
        .set_manager_disabled(id, disable.then(now_ms))
        .await?;
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(&signed.email),
            action: if disable {
                "manager_disabled"
            } else {
                "manager_enabled"
            },
            target: Some(&manager.email),
            ip: Some(ip),
            ..NewAudit::default()
        })
        .await?;
    Ok(Redirect::to("/admin/managers").into_response())
}

/// `POST /admin/managers/{id}/disable`: the manager's sessions end at once.
pub async fn disable(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    set_disabled(&state, &signed, &ip.to_string(), id, true).await
}

/// `POST /admin/managers/{id}/enable`.
pub async fn enable(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    set_disabled(&state, &signed, &ip.to_string(), id, false).await
}

/// `POST /admin/managers/{id}/reset`: a new setup link; the old password keeps working
/// until the link is used.
pub async fn reset(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let manager = state
        .store
        .get_manager(id)
        .await?
        .ok_or(PageError::NotFound("manager"))?;
    let link = reset_link(&state.store, &base(&state.settings.public_url), id).await?;
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(&signed.email),
            action: "password_reset_link",
            target: Some(&manager.email),
            ip: Some(&ip.to_string()),
            ..NewAudit::default()
        })
        .await?;
    let flash = link_flash(
        &format!("{} can set a new password with this link:", manager.email),
        &link,
    );
    render(&state, &signed, Some(flash), StatusCode::OK).await
}
