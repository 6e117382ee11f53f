//! Chats in the back office: the filtered list, a chat's page with its whole transcript,
//! export (JSON and plain text), the chat's files, and deletion for privacy requests.

use axum::{
    Extension, Json,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{
    auth::Signed,
    views::{
        PageError, csrf_field, duration, layout, maybe_time, page, page_number, pagination,
        query_string, time,
    },
};
use crate::{
    http::extract::ClientIp,
    http::state::AppState,
    mattermost::channels::{PermanentDeletion, Removal},
    storage::{
        audit::NewAudit, chats::ChatRow, cleanup::ChannelRemoval, history::ChatFilter,
        messages::MessageRow, now_ms, rfc3339,
    },
};

const PER_PAGE: i64 = 50;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    status: String,
    operator: String,
    from: String,
    to: String,
    q: String,
    department: String,
    page: Option<String>,
    deleted: Option<String>,
}

/// `YYYY-MM-DD` as the Unix milliseconds of that day's start (UTC).
fn day_start(date: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date.trim(), &format).ok()?;
    Some(day.midnight().assume_utc().unix_timestamp() * 1000)
}

/// `GET /admin/chats`.
pub async fn list(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let page_no = page_number(q.page.as_deref());
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let filter = ChatFilter {
        status: some(&q.status).filter(|s| matches!(s.as_str(), "pending" | "active" | "closed")),
        operator: some(&q.operator),
        from: day_start(&q.from),
        until: day_start(&q.to).map(|t| t + 86_400_000),
        text: some(&q.q),
        department: match q.department.trim() {
            "" => None,
            "none" => Some(None),
            d => d.parse::<i64>().ok().map(Some),
        },
    };
    let departments = state.store.list_departments().await?;
    let (chats, total) = state
        .store
        .list_chats_filtered(&filter, PER_PAGE, (page_no - 1) * PER_PAGE)
        .await?;
    let operators = state.store.list_chat_operators().await?;
    let query = query_string(&[
        ("status", &q.status),
        ("operator", &q.operator),
        ("from", &q.from),
        ("to", &q.to),
        ("q", &q.q),
        ("department", &q.department),
    ]);
    let body = html! {
        @if q.deleted.is_some() { p.notice role="status" { "The chat and its files were deleted." } }
        form.filters method="get" action="/admin/chats" {
            label { "Search" input type="search" name="q" value=(q.q) placeholder="name, e-mail or words"; }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for (v, label) in [("pending", "waiting"), ("active", "active"), ("closed", "ended")] {
                        option value=(v) selected[q.status == v] { (label) }
                    }
                }
            }
            label { "Operator"
                select name="operator" {
                    option value="" { "any" }
                    @for (username, name) in &operators {
                        option value=(username) selected[&q.operator == username] { (name) " (@" (username) ")" }
                    }
                }
            }
            @if !departments.is_empty() {
                label { "Department"
                    select name="department" {
                        option value="" { "any" }
                        @for d in &departments {
                            option value=(d.id) selected[q.department == d.id.to_string()] { (d.name) }
                        }
                        option value="none" selected[q.department == "none"] { "none (default)" }
                    }
                }
            }
            label { "From" input type="date" name="from" value=(q.from); }
            label { "To" input type="date" name="to" value=(q.to); }
            button type="submit" { "Filter" }
        }
        @if chats.is_empty() {
            p.empty { "No chats match." }
        } @else {
            table.list {
                thead { tr { th { "Started" } th { "Visitor" } th { "Status" } @if !departments.is_empty() { th { "Department" } } th { "Operator" } th { "Messages" } } }
                tbody {
                    @for c in &chats {
                        tr {
                            td data-label="Started" { a href={ "/admin/chats/" (c.id) } { (time(c.created_at)) } }
                            td data-label="Visitor" {
                                (c.visitor_name.as_deref().unwrap_or("(no name)"))
                                @if let Some(e) = &c.visitor_email { br; small { (e) } }
                            }
                            td data-label="Status" { span class={ "status " (c.status) } { (status_label(&c.status)) } }
                            @if !departments.is_empty() {
                                td data-label="Department" { (c.department_name.as_deref().unwrap_or("—")) }
                            }
                            td data-label="Operator" { (c.operator_name.as_deref().unwrap_or("—")) }
                            td data-label="Messages" { (c.messages) }
                        }
                    }
                }
            }
        }
        (pagination("/admin/chats", &query, page_no, PER_PAGE, total))
    };
    Ok(page(StatusCode::OK, layout("Chats", Some(&signed), body)))
}

fn status_label(status: &str) -> &'static str {
    match status {
        "pending" => "waiting",
        "active" => "active",
        _ => "ended",
    }
}

async fn load(state: &AppState, id: &str) -> Result<(ChatRow, Vec<MessageRow>), PageError> {
    if id.len() > 64 {
        return Err(PageError::NotFound("chat"));
    }
    let chat = state
        .store
        .get_chat(id)
        .await?
        .ok_or(PageError::NotFound("chat"))?;
    // Everything the chat holds: messages, system events and their files, internal notes, and
    // operators' posts deleted in Mattermost (the visitor sees neither).
    let messages = state.store.list_transcript(id).await?;
    Ok((chat, messages))
}

/// The operators of a chat: the one who accepted and everyone who wrote.
fn operators(chat: &ChatRow, messages: &[MessageRow]) -> Vec<String> {
    let mut names: Vec<String> = chat.operator_name.iter().cloned().collect();
    for m in messages.iter().filter(|m| m.sender == "operator") {
        if let Some(a) = &m.author
            && !names.contains(a)
        {
            names.push(a.clone());
        }
    }
    names
}

fn wait_and_duration(chat: &ChatRow) -> (String, String) {
    let now = now_ms();
    let wait = match chat.accepted_at {
        Some(a) => duration(a - chat.created_at),
        None if chat.status == "pending" => format!("{} so far", duration(now - chat.created_at)),
        None => "never accepted".into(),
    };
    let length = match (chat.accepted_at, chat.closed_at) {
        (Some(a), Some(c)) => duration(c - a),
        (Some(a), None) => format!("{} so far", duration(now - a)),
        _ => "—".into(),
    };
    (wait, length)
}

/// `GET /admin/chats/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (chat, messages) = load(&state, &id).await?;
    let (wait, length) = wait_and_duration(&chat);
    let ops = operators(&chat, &messages);
    let department = match chat.department_id {
        Some(d) => state.store.get_department(d).await?.map(|d| d.name),
        None => None,
    };
    let title = format!(
        "Chat with {}",
        chat.visitor_name.as_deref().unwrap_or("a visitor")
    );
    let body = html! {
        div.actions {
            a.button href={ "/admin/chats/" (chat.id) "/export.json" } { "Export JSON" }
            a.button href={ "/admin/chats/" (chat.id) "/export.txt" } { "Export text" }
            a.button.danger href={ "/admin/chats/" (chat.id) "/delete" } { "Delete…" }
        }
        div.columns {
            section.card {
                h2 { "Visitor" }
                dl {
                    dt { "Name" } dd { (chat.visitor_name.as_deref().unwrap_or("—")) }
                    dt { "E-mail" } dd { (chat.visitor_email.as_deref().unwrap_or("—")) }
                    dt { "Page" } dd { (chat.page_url.as_deref().unwrap_or("—")) }
                    dt { "Came from" } dd { (chat.referrer.as_deref().unwrap_or("—")) }
                    dt { "Address" } dd { (chat.visitor_ip.as_deref().unwrap_or("—")) }
                }
            }
            section.card {
                h2 { "Chat" }
                dl {
                    dt { "Department" } dd { (department.as_deref().unwrap_or("— (the default)")) }
                    dt { "Status" } dd { span class={ "status " (chat.status) } { (status_label(&chat.status)) } }
                    dt { "Started" } dd { (time(chat.created_at)) }
                    dt { "Accepted" } dd { (maybe_time(chat.accepted_at)) }
                    dt { "Ended" } dd { (maybe_time(chat.closed_at)) @if let Some(by) = &chat.closed_by { " by " (by) } }
                    dt { "Wait" } dd { (wait) }
                    dt { "Duration" } dd { (length) }
                    dt { "Operators" } dd { @if ops.is_empty() { "—" } @else { (ops.join(", ")) } }
                    dt { "Channel" } dd {
                        (chat.channel_name.as_deref().unwrap_or("—"))
                        @if let Some(r) = state.store.channel_removal(&chat.id).await? { " (" (r.as_str()) ")" }
                    }
                }
            }
        }
        section {
            h2 { "Transcript" }
            ol.transcript {
                @for m in &messages { (message(&chat.id, m)) }
            }
        }
    };
    Ok(page(StatusCode::OK, layout(&title, Some(&signed), body)))
}

/// A transcript line's classes: its sender, and whether it is an internal note or was deleted.
fn msg_class(m: &MessageRow) -> String {
    let mut class = format!("msg {}", m.sender);
    if m.internal != 0 {
        class.push_str(" note");
    }
    if m.deleted_at.is_some() {
        class.push_str(" deleted");
    }
    class
}

fn message(chat_id: &str, m: &MessageRow) -> Markup {
    html! {
        li class=(msg_class(m)) {
            div.meta {
                span.author { (m.author.as_deref().unwrap_or(match m.sender.as_str() { "visitor" => "Visitor", "operator" => "Operator", _ => "parley" })) }
                " · " time { (time(m.created_at)) }
                @if m.sender == "system" { " · event" }
                @if m.internal != 0 { " " span.tag.note { "internal note" } " (never shown to the visitor)" }
                @if let Some(d) = m.deleted_at { " " span.tag.deleted title=(time(d)) { "deleted in Mattermost" } " " (time(d)) }
                @else if let Some(e) = m.edited_at { " " span.tag.edited title=(time(e)) { "edited" } " " (time(e)) }
            }
            @if !m.body.is_empty() { div.body { (m.body) } }
            @if !m.files.is_empty() {
                ul.files {
                    @for f in &m.files {
                        li {
                            @let href = format!("/admin/chats/{chat_id}/files/{}", f.id);
                            @if crate::domain::files::is_inline_image(&f.content_type) {
                                a href=(href) { img src=(href) alt=(f.name) loading="lazy"; }
                                br;
                            }
                            a href=(href) { (f.name) }
                            " (" (crate::app::attachments::human_size(f.size)) ")"
                        }
                    }
                }
            }
        }
    }
}

fn attachment(mut response: Response, name: &str, content_type: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `GET /admin/chats/{id}/export.json`.
pub async fn export_json(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (chat, messages) = load(&state, &id).await?;
    let body = json!({
        "chat": {
            "id": chat.id,
            "status": chat.status,
            "visitor": {
                "name": chat.visitor_name, "email": chat.visitor_email,
                "page_url": chat.page_url, "referrer": chat.referrer, "ip": chat.visitor_ip,
            },
            "created_at": rfc3339(chat.created_at),
            "accepted_at": chat.accepted_at.map(rfc3339),
            "closed_at": chat.closed_at.map(rfc3339),
            "closed_by": chat.closed_by,
            "operators": operators(&chat, &messages),
            "channel_name": chat.channel_name,
        },
        "messages": messages.iter().map(|m| json!({
            "id": m.id,
            "sender": m.sender,
            "author": m.author,
            "text": m.body,
            "event": m.event,
            "internal": m.internal != 0,
            "edited_at": m.edited_at.map(rfc3339),
            "deleted_at": m.deleted_at.map(rfc3339),
            "created_at": rfc3339(m.created_at),
            "files": m.files.iter().map(|f| json!({
                "id": f.id, "name": f.name, "content_type": f.content_type, "size": f.size,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    Ok(attachment(
        Json(body).into_response(),
        &format!("chat-{}.json", chat.id),
        "application/json",
    ))
}

/// `GET /admin/chats/{id}/export.txt`.
pub async fn export_text(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (chat, messages) = load(&state, &id).await?;
    let (wait, length) = wait_and_duration(&chat);
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("Chat {}", chat.id));
    line(format!(
        "Visitor: {} <{}>",
        chat.visitor_name.as_deref().unwrap_or("-"),
        chat.visitor_email.as_deref().unwrap_or("-")
    ));
    line(format!("Page: {}", chat.page_url.as_deref().unwrap_or("-")));
    line(format!("Started: {}", time(chat.created_at)));
    line(format!("Accepted: {}", maybe_time(chat.accepted_at)));
    line(format!("Ended: {}", maybe_time(chat.closed_at)));
    line(format!("Wait: {wait}; duration: {length}"));
    line(format!(
        "Operators: {}",
        operators(&chat, &messages).join(", ")
    ));
    line(String::new());
    for m in &messages {
        let who = match m.sender.as_str() {
            "system" => "*".to_owned(),
            _ => m.author.clone().unwrap_or_else(|| m.sender.clone()),
        };
        let mut text = m.body.clone();
        for f in &m.files {
            text.push_str(&format!(
                " [file: {} ({})]",
                f.name,
                crate::app::attachments::human_size(f.size)
            ));
        }
        let mark = if m.internal != 0 {
            " (internal note)"
        } else if m.deleted_at.is_some() {
            " (deleted in Mattermost)"
        } else if m.edited_at.is_some() {
            " (edited)"
        } else {
            ""
        };
        line(format!(
            "[{}] {who}{mark}: {}",
            time(m.created_at),
            text.trim()
        ));
    }
    Ok(attachment(
        out.into_response(),
        &format!("chat-{}.txt", chat.id),
        "text/plain; charset=utf-8",
    ))
}

/// `GET /admin/chats/{id}/files/{file_id}`: the file, for signed-in managers.
pub async fn file(
    State(state): State<AppState>,
    Path((id, file_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    if file_id.len() > 64 {
        return Err(PageError::NotFound("file"));
    }
    let file = state
        .store
        .get_file(&file_id)
        .await?
        .filter(|f| f.chat_id == id)
        .ok_or(PageError::NotFound("file"))?;
    match crate::http::files::serve(&state, &file).await {
        Ok(response) => Ok(response),
        Err(e) if e.code == crate::http::error::ErrorCode::NotFound => {
            Err(PageError::NotFound("file"))
        }
        Err(_) => Err(PageError::Internal),
    }
}

/// `GET /admin/chats/{id}/delete`: what will be deleted, and the button.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (chat, messages) = load(&state, &id).await?;
    let files: usize = messages.iter().map(|m| m.files.len()).sum();
    let body = html! {
        p { "This deletes the chat with "
            strong { (chat.visitor_name.as_deref().unwrap_or("a visitor")) }
            " started " (time(chat.created_at)) ": its " (messages.len()) " messages and " (files) " files, for good. "
            "Its Mattermost channel and request post are removed too, where Mattermost allows it." }
        p { "Use this for a visitor's request to erase their data. It cannot be undone; the audit log records who did it." }
        form method="post" action={ "/admin/chats/" (chat.id) "/delete" } {
            (csrf_field(&signed.csrf))
            button.danger type="submit" { "Delete this chat permanently" }
            " "
            a href={ "/admin/chats/" (chat.id) } { "Cancel" }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Delete a chat", Some(&signed), body),
    ))
}

/// `POST /admin/chats/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (chat, messages) = load(&state, &id).await?;
    let files: usize = messages.iter().map(|m| m.files.len()).sum();
    let mattermost = remove_from_mattermost(&state, &chat).await;
    if state.store.delete_chat(&chat.id).await? {
        if let Err(e) = state.blobs.remove_chat(&chat.id).await {
            tracing::error!(chat_id = %chat.id, error = %e, "could not remove a deleted chat's files");
        }
        // No visitor details in the log: that is what was asked to be erased.
        let detail = format!(
            "{} messages and {files} files deleted; Mattermost: {mattermost}",
            messages.len()
        );
        state
            .store
            .insert_audit(&NewAudit {
                actor: Some(&signed.email),
                action: "chat_deleted",
                target: Some(&chat.id),
                detail: Some(&detail),
                ip: Some(&ip.to_string()),
            })
            .await?;
    }
    Ok(Redirect::to("/admin/chats?deleted=1").into_response())
}

/// Removes what Mattermost holds of a chat, as far as it can: the channel (deleted, or
/// archived when permanent deletion is off) and the request post. Says what happened.
async fn remove_from_mattermost(state: &AppState, chat: &ChatRow) -> String {
    let Some(bridge) = state.bridge() else {
        return "not connected, nothing removed".into();
    };
    let mut said = Vec::new();
    if let Some(post) = &chat.request_post_id {
        said.push(match bridge.delete_post(post).await {
            Ok(()) => "request post deleted".to_owned(),
            Err(e) => format!("request post not deleted ({})", e.short()),
        });
    }
    let removal = state.store.channel_removal(&chat.id).await.ok().flatten();
    if let Some(channel) = &chat.channel_id
        && !matches!(
            removal,
            Some(ChannelRemoval::Deleted | ChannelRemoval::Gone)
        )
    {
        let archived = removal == Some(ChannelRemoval::Archived);
        let mut permanent = PermanentDeletion::Unknown;
        said.push(
            match bridge
                .delete_or_archive_channel(channel, archived, &mut permanent)
                .await
            {
                Ok(Removal::Deleted) => "channel deleted".to_owned(),
                Ok(Removal::Archived) => "channel archived (permanent deletion is off)".to_owned(),
                Ok(Removal::WasArchived | Removal::StillArchived) => {
                    "channel was archived already (permanent deletion is off)".to_owned()
                }
                Ok(Removal::AlreadyGone) => "channel was gone already".to_owned(),
                Err(e) => format!("channel not removed ({})", e.short()),
            },
        );
    }
    if said.is_empty() {
        "nothing to remove".into()
    } else {
        said.join(", ")
    }
}
