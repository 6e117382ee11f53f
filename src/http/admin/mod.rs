//! The back office under `/admin`: server-rendered pages for managers. The route table says
//! who may use each route: anyone (sign-in, setup links, the stylesheet), every signed-in
//! manager, or admins only. The guards check the session and role, and on every POST the
//! session's CSRF token and the `Origin`; pages get a strict CSP (no script at all).

pub mod auth;
pub mod chats;
pub mod connection;
pub mod departments;
pub mod managers;
pub mod pages;
pub mod settings;
pub mod views;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, header},
    middleware::from_fn_with_state,
    routing::{get, post},
};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::state::AppState;

/// Every back-office route.
pub fn router(state: &AppState) -> Router<AppState> {
    let public = Router::new()
        .route(
            "/admin/login",
            get(auth::login_page)
                .post(auth::login)
                .layer(DefaultBodyLimit::max(auth::MAX_LOGIN_FORM_BYTES)),
        )
        .route(
            "/admin/setup/{token}",
            get(auth::setup_page).post(auth::setup),
        )
        .route("/admin/static/admin.css", get(views::stylesheet))
        .route("/admin/static/icon.svg", get(views::icon));
    let managers = Router::new()
        .route("/admin", get(pages::dashboard))
        .route("/admin/chats", get(chats::list))
        .route("/admin/chats/{id}", get(chats::show))
        .route("/admin/chats/{id}/export.json", get(chats::export_json))
        .route("/admin/chats/{id}/export.txt", get(chats::export_text))
        .route(
            "/admin/chats/{id}/delete",
            get(chats::confirm_delete).post(chats::delete),
        )
        .route("/admin/chats/{id}/files/{file_id}", get(chats::file))
        .route(
            "/admin/departments",
            get(departments::list).post(departments::create),
        )
        .route("/admin/departments/new", get(departments::new_page))
        .route(
            "/admin/departments/{id}",
            get(departments::edit_page).post(departments::update),
        )
        .route(
            "/admin/departments/{id}/delete",
            get(departments::confirm_delete).post(departments::delete),
        )
        .route("/admin/offline", get(pages::offline))
        .route("/admin/offline/{id}/handled", post(pages::mark_handled))
        .route("/admin/logout", post(auth::logout))
        .route_layer(from_fn_with_state(state.clone(), auth::require_manager));
    let admins = Router::new()
        .route("/admin/audit", get(pages::audit))
        .route(
            "/admin/settings",
            get(settings::page_handler).post(settings::save),
        )
        .route("/admin/settings/test", post(settings::test_connection))
        .route("/admin/settings/connection", post(connection::save))
        .route("/admin/settings/connection/teams", post(connection::teams))
        .route(
            "/admin/settings/connection/channels",
            post(connection::channels),
        )
        .route("/admin/settings/connection/test", post(connection::test))
        .route(
            "/admin/managers",
            get(managers::page_handler).post(managers::create),
        )
        .route("/admin/managers/{id}/disable", post(managers::disable))
        .route("/admin/managers/{id}/enable", post(managers::enable))
        .route("/admin/managers/{id}/reset", post(managers::reset))
        .route_layer(from_fn_with_state(state.clone(), auth::require_admin));
    public
        .merge(managers)
        .merge(admins)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 frame-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
}
