//! Files embedded in the binary: the widget script (joined by `build.rs`), the demo page, and the OpenAPI document.
//! Nothing is read from disk at run time.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

/// Joined by `build.rs` from the parts in `assets/widget/` (script parts, CSS, translations).
const WIDGET_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/widget.js"));
const DEMO_HTML: &str = include_str!("../../assets/demo.html");
const OPENAPI_JSON: &str = include_str!("../../assets/openapi.json");

fn with_type(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// `GET /widget.js`. Short caching: sites embed a fixed URL, and updates should reach them.
pub async fn widget_js() -> Response {
    with_type(
        WIDGET_JS,
        "application/javascript; charset=utf-8",
        "public, max-age=300",
    )
}

/// `GET /`: a demo page with the widget. Only parley's own pages may frame it (the
/// settings page shows it as the widget's live preview).
pub async fn demo_page() -> Response {
    let mut response = with_type(DEMO_HTML, "text/html; charset=utf-8", "no-cache");
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'self'",
        ),
    );
    response
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    with_type(OPENAPI_JSON, "application/json", "public, max-age=300")
}
