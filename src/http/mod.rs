//! The HTTP surface: one route table, and the layers every request passes through (CORS for
//! the widget's sites, body limits, tracing without secrets, security headers).

pub mod actions;
pub mod admin;
pub mod assets;
pub mod client_addr;
pub mod error;
pub mod extract;
pub mod files;
pub mod live;
pub mod live_sockets;
pub mod password_work;
pub mod probes;
pub mod rate_limit;
pub mod request_id;
pub mod sign_in_limits;
pub mod state;
pub mod visitor;
pub mod widget_config;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::{
    config::{AllowedOrigins, Settings},
    http::state::AppState,
};
use error::{ApiError, ErrorCode};

/// Largest JSON body accepted (a 4000-character message is at most 16 KiB of UTF-8).
const MAX_JSON_BODY: usize = 64 * 1024;

/// Every route of parley.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/status", get(visitor::get_status))
        .route("/chats", post(visitor::create_chat))
        .route("/chats/{id}", get(visitor::get_chat))
        .route(
            "/chats/{id}/messages",
            get(visitor::list_messages).post(visitor::post_message),
        )
        .route("/chats/{id}/close", post(visitor::close_chat))
        .route(
            "/chats/{id}/files",
            post(files::upload).layer(DefaultBodyLimit::max(files::max_upload_body(&state))),
        )
        .route(
            "/chats/{id}/files/{file_id}",
            get(files::download_for_visitor),
        )
        .route("/files/{file_id}", get(files::download_signed))
        .route("/chats/{id}/live", get(live::live))
        .route("/offline-messages", post(visitor::create_offline_message))
        .route("/widget-config", get(widget_config::get_widget_config))
        .route("/openapi.json", get(assets::openapi))
        .fallback(|| async { ApiError::not_found("API route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_other_origins,
        ))
        .layer(cors(&state.settings));

    Router::new()
        .nest("/api/v1", api)
        .route("/", get(assets::demo_page))
        .route("/widget.js", get(assets::widget_js))
        .route("/mattermost/actions", post(actions::handle_action))
        .route("/healthz", get(probes::health))
        .merge(admin::router(&state))
        .route("/readyz", get(probes::ready))
        .route("/metrics", get(probes::metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(axum::middleware::from_fn(request_id::scope))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(
                    // Path only, without secrets: no query strings or headers (tokens) in
                    // logs, and a setup link's token is cut out of its path. The request id
                    // is in every line of the request.
                    |req: &axum::http::Request<_>| {
                        let path = loggable_path(req.uri().path());
                        let id = request_id::of(req).unwrap_or_default();
                        tracing::info_span!(
                            "http",
                            method = %req.method(),
                            path = ?path,
                            request_id = %id
                        )
                    },
                )
                .on_failure(log_failure),
        )
        // Outermost: the id is settled before the span opens, and echoed on every answer.
        .layer(PropagateRequestIdLayer::new(request_id::HEADER))
        .layer(SetRequestIdLayer::new(request_id::HEADER, MakeRequestUuid))
        .layer(axum::middleware::map_request(request_id::drop_unfit))
        .with_state(state)
}

/// A request path as it may be logged: the secret segment of a setup link
/// (`/admin/setup/{token}`, with or without a path prefix) becomes `…`.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const SETUP: &str = "/admin/setup/";
    match path.find(SETUP) {
        Some(at) => format!("{}…", &path[..at + SETUP.len()]).into(),
        None => path.into(),
    }
}

/// A failed request, at the level it deserves. A 503 is parley saying "not now" (offline, not
/// ready) as designed, and whatever caused it is logged where it is known; a 500 has already
/// been logged with its cause (`ApiError::internal`), so this line only marks the request.
fn log_failure(
    failure: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass as Class;
    let latency_ms = latency.as_millis() as u64;
    match failure {
        Class::StatusCode(code) if code == StatusCode::SERVICE_UNAVAILABLE => {
            tracing::debug!(
                status = code.as_u16(),
                latency_ms,
                "request refused for now"
            )
        }
        Class::StatusCode(code) => {
            tracing::warn!(status = code.as_u16(), latency_ms, "request failed")
        }
        Class::Error(error) => tracing::warn!(%error, latency_ms, "request failed"),
    }
}

/// The widget runs on the customer's site, so the API answers cross-origin requests from
/// the allowed sites and parley's own. No cookies are used, so credentials stay off.
fn cors(settings: &Settings) -> CorsLayer {
    let own = settings.own_origin();
    let allow = match &settings.allowed_origins {
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .map(String::as_str)
                .chain([own.as_str()])
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([header::RETRY_AFTER, request_id::HEADER])
        .max_age(std::time::Duration::from_secs(600))
}

/// A browser request from a page whose origin is not allowed is refused here, not only left
/// without a CORS grant: CORS only stops the page from reading answers, while the request
/// itself would still act. The refusal carries a grant for that origin, so the widget can
/// read the reason and name the setting in the console (only simple requests get that far:
/// a preflight from such a page is refused by the CORS layer, which the console reports).
async fn refuse_other_origins(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let refused = origin.as_ref().filter(|o| {
        request.method() != Method::OPTIONS
            && !o.to_str().is_ok_and(|o| state.settings.origin_allowed(o))
    });
    let Some(origin) = refused else {
        return next.run(request).await;
    };
    let shown = origin.to_str().unwrap_or("this website");
    let mut response = ApiError::new(
        ErrorCode::OriginNotAllowed,
        format!(
            "pages of {shown} may not use this chat: its origin is not in parley's \
             PARLEY_ALLOWED_ORIGINS"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    response
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn setup_tokens_are_cut_from_logged_paths() {
        assert_eq!(loggable_path("/admin/setup/abcDEF_12-x"), "/admin/setup/…");
        assert_eq!(loggable_path("/admin/setup/a/b"), "/admin/setup/…");
        assert_eq!(
            loggable_path("/support/admin/setup/tok"),
            "/support/admin/setup/…"
        );
        assert_eq!(loggable_path("/api/v1/chats/1"), "/api/v1/chats/1");
        assert_eq!(loggable_path("/admin/settings"), "/admin/settings");
    }
}
