//! The back office's look: the page layout (maud templates escape every value), shared
//! pieces (times, durations, pagination, the CSRF field) and the error pages.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, html};

use super::auth::Signed;
use crate::{app::accounts::Role, storage::StoreError};

const STYLESHEET: &str = include_str!("../../../assets/admin.css");

/// `GET /admin/static/admin.css`.
pub async fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
    <rect width=\"16\" height=\"16\" rx=\"4\" fill=\"#1f6feb\"/>\
    <path d=\"M4 5h8v5H8l-3 2v-2H4z\" fill=\"#fff\"/></svg>";

/// `GET /admin/static/icon.svg`: the tab's icon (without it, browsers ask for a missing
/// `/favicon.ico`).
pub async fn icon() -> Response {
    let mut response = ICON.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

/// A whole page: header with the navigation for the signed-in manager, then `body`.
pub fn layout(title: &str, signed: Option<&Signed>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · parley" }
                link rel="stylesheet" href="/admin/static/admin.css";
                link rel="icon" href="/admin/static/icon.svg" type="image/svg+xml";
            }
            body {
                header.top {
                    a.brand href="/admin" { "parley" }
                    @if let Some(s) = signed {
                        nav {
                            a href="/admin" { "Dashboard" }
                            a href="/admin/chats" { "Chats" }
                            a href="/admin/offline" { "Offline messages" }
                            a href="/admin/departments" { "Departments" }
                            @if s.role == Role::Admin {
                                a href="/admin/audit" { "Audit log" }
                                a href="/admin/settings" { "Settings" }
                                a href="/admin/managers" { "Managers" }
                            }
                        }
                        form.logout method="post" action="/admin/logout" {
                            (csrf_field(&s.csrf))
                            span.who { (s.email) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden field every form of a session carries.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// An HTML response.
pub fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A short page saying what went wrong and what to do.
pub fn message_page(
    status: StatusCode,
    title: &str,
    signed: Option<&Signed>,
    text: &str,
) -> Response {
    page(
        status,
        layout(
            title,
            signed,
            html! { p.notice { (text) } p { a href="/admin" { "Back to the back office" } } },
        ),
    )
}

/// Errors of back-office handlers, shown as pages.
#[derive(Debug)]
pub enum PageError {
    NotFound(&'static str),
    Internal,
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("page"),
            other => {
                // Logged once with its chain; the page stays opaque.
                let _ = crate::http::error::ApiError::internal(&other);
                Self::Internal
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound(what) => message_page(
                StatusCode::NOT_FOUND,
                "Not found",
                None,
                &format!("This {what} does not exist (any more)."),
            ),
            Self::Internal => message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                None,
                &match crate::http::request_id::current() {
                    Some(id) => format!(
                        "Something went wrong on our side; the log says what (request id {id}). \
                         Please try again."
                    ),
                    None => {
                        "Something went wrong on our side; the log says what. Please try again."
                            .to_owned()
                    }
                },
            ),
        }
    }
}

/// Stored milliseconds as `2025-01-31 14:05 UTC`.
pub fn time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Optional stored milliseconds, or a dash.
pub fn maybe_time(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "—".into())
}

/// A duration in words: `45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Links to the previous and next pages; `query` is the list's query without `page`.
pub fn pagination(path: &str, query: &str, page: i64, per_page: i64, total: i64) -> Markup {
    let pages = ((total + per_page - 1) / per_page).max(1);
    let link = |p: i64| {
        if query.is_empty() {
            format!("{path}?page={p}")
        } else {
            format!("{path}?{query}&page={p}")
        }
    };
    html! {
        nav.pages aria-label="Pages" {
            @if page > 1 { a rel="prev" href=(link(page - 1)) { "← Newer" } }
            span { "Page " (page) " of " (pages) " (" (total) " in all)" }
            @if page < pages { a rel="next" href=(link(page + 1)) { "Older →" } }
        }
    }
}

/// A query string of the non-empty pairs.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

/// The page number of a `page` query value (1 when absent or bad).
pub fn page_number(value: Option<&str>) -> i64 {
    value
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|p| *p >= 1 && *p <= 1_000_000)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(200_000), "3 min 20 s");
        assert_eq!(duration(7_500_000), "2 h 5 min");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
    }

    #[test]
    fn values_are_escaped() {
        let m = layout("<script>", None, html! { p { ("<b>&") } });
        let s = m.into_string();
        assert!(
            s.contains("&lt;script&gt;") && s.contains("&lt;b&gt;&amp;"),
            "{s}"
        );
        assert!(!s.contains("<script>"));
    }
}
