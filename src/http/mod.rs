//! The HTTP surface: one route table, and the layers every request passes through (CORS for
//! the widget's sites, body limits, tracing without secrets, security headers).

pub mod actions;
pub mod admin;
pub mod assets;
pub mod error;
pub mod extract;
pub mod files;
pub mod live;
pub mod probes;
pub mod rate_limit;
pub mod visitor;
pub mod widget_config;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    routing::{get, post},
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::{config::AllowedOrigins, state::AppState};
use error::ApiError;

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
        .layer(cors(&state.settings.allowed_origins));

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
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(
                    // Path only: no query strings or headers (tokens) in logs.
                    |req: &axum::http::Request<_>| {
                        tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                    },
                )
                .on_failure(log_failure),
        )
        .with_state(state)
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
/// the allowed sites. No cookies are used, so credentials stay off.
fn cors(origins: &AllowedOrigins) -> CorsLayer {
    let allow = match origins {
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600))
}
