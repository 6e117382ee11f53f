//! Request ids (`x-request-id`): one per request, kept from the client or a proxy when it is
//! fit to log, else a fresh UUID; echoed in the response, carried by the request's log span
//! and by every JSON error body (`error.request_id`), so a visitor's report finds its log lines.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tower_http::request_id::RequestId;

/// The header, as proxies (nginx `$request_id`, Heroku, load balancers) and clients send it.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id kept from a request: a UUID (36) or a proxy's trace id fits, with room.
const MAX_LEN: usize = 64;

tokio::task_local! {
    /// The id of the request being answered, for error bodies built deep in a handler.
    static CURRENT: HeaderValue;
}

/// Whether a supplied id may be kept: 1 to 64 visible ASCII characters. The id is written into
/// every log line of the request and echoed to the client, so anything else (control
/// characters, spaces, escapes, non-ASCII, a kilobyte of text) is replaced, not refused: a bad
/// correlation header is no reason to fail the request.
pub fn is_fit(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
}

/// Drops a supplied id that is not [`is_fit`], so that the next layer makes a fresh one.
/// Runs before `SetRequestIdLayer`, which keeps any id present.
pub async fn drop_unfit(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let unfit = headers.get_all(&HEADER).iter().count() > 1
        || headers.get(&HEADER).is_some_and(|v| !is_fit(v));
    if unfit {
        headers.remove(&HEADER);
    }
    request
}

/// The id `SetRequestIdLayer` gave the request, as text.
pub fn of<B>(request: &axum::http::Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
}

/// Answers the request with its id known to [`current`].
pub async fn scope(request: Request, next: Next) -> Response {
    match request.extensions().get::<RequestId>() {
        Some(id) => {
            let id = id.header_value().clone();
            CURRENT.scope(id, next.run(request)).await
        }
        None => next.run(request).await,
    }
}

/// The id of the request being answered, if any (none outside a request, e.g. in a job).
pub fn current() -> Option<String> {
    CURRENT
        .try_with(|id| id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;
    use crate::http::{admin::views::PageError, error::ApiError};

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn error_bodies_and_the_back_office_error_page_name_the_current_id() {
        let (api, page) = CURRENT
            .scope(HeaderValue::from_static("req-42"), async {
                (
                    ApiError::not_found("chat").into_response(),
                    PageError::Internal.into_response(),
                )
            })
            .await;
        let api: serde_json::Value = serde_json::from_str(&body(api).await).unwrap();
        assert_eq!(api["error"]["request_id"], "req-42");
        assert!(body(page).await.contains("request id req-42"));
        // Outside a request there is no id to name.
        let api: serde_json::Value =
            serde_json::from_str(&body(ApiError::not_found("chat").into_response()).await).unwrap();
        assert!(api["error"].get("request_id").is_none());
    }

    #[test]
    fn only_short_visible_ascii_ids_are_kept() {
        for fit in [
            "a",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            &"x".repeat(64),
            "Root=1-5e1b4151;Parent=53995c3f",
        ] {
            assert!(is_fit(&HeaderValue::from_str(fit).unwrap()), "{fit:?}");
        }
        for unfit in ["", "has space", &"x".repeat(65), "tab\there"] {
            assert!(!is_fit(&HeaderValue::from_str(unfit).unwrap()), "{unfit:?}");
        }
        let obs = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert!(!is_fit(&obs), "non-ASCII");
    }
}
