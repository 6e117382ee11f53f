//! The HTTP error contract: every answer carries an `x-request-id` (the client's when it is fit
//! to log, else a fresh one), every JSON error body carries the same id as `error.request_id`,
//! and the request's log lines carry it too.

use reqwest::{Method, RequestBuilder, Response, header::HeaderValue};
use serde_json::{Value, json};

use crate::helpers::{binary::LoggedServer, spawn_app};

const ID: &str = "x-request-id";

fn id_of(response: &Response) -> String {
    let values: Vec<_> = response.headers().get_all(ID).iter().collect();
    assert_eq!(values.len(), 1, "one x-request-id on {}", response.url());
    values[0].to_str().unwrap().to_owned()
}

/// A fresh id is a UUID (v4).
fn is_fresh(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)
}

/// Sends `request` and returns its status, header id and JSON body.
async fn error_of(request: RequestBuilder) -> (u16, String, Value) {
    let response = request.send().await.unwrap();
    let id = id_of(&response);
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, id, body)
}

/// One request of each kind of refusal: each answers with a JSON error whose
/// `request_id` is the id in its header, a fresh one per request.
#[tokio::test]
async fn every_error_body_carries_the_id_of_its_header() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("hello").await;
    let too_big = "x".repeat(70 * 1024);
    let refusals: Vec<(&str, RequestBuilder)> = vec![
        ("unknown route", app.http.get(app.api("/nope"))),
        (
            "no token",
            app.http.get(app.api(&format!("/chats/{}", chat.id))),
        ),
        (
            "unknown chat",
            app.http
                .get(app.api("/chats/nope"))
                .bearer_auth(&chat.token),
        ),
        (
            "not JSON",
            app.http
                .post(app.api("/chats"))
                .header("content-type", "application/json")
                .body("{"),
        ),
        (
            "no content type",
            app.http.post(app.api("/chats")).body("{}"),
        ),
        (
            "wrong field type",
            app.http
                .post(app.api("/chats"))
                .json(&json!({"message": 5})),
        ),
        (
            "empty message",
            app.http
                .post(app.api("/chats"))
                .json(&json!({"message": " "})),
        ),
        (
            "email missing",
            app.http
                .post(app.api("/offline-messages"))
                .json(&json!({"message": "hi"})),
        ),
        (
            "bad query",
            app.http
                .get(app.api(&format!("/chats/{}/messages?after=x", chat.id)))
                .bearer_auth(&chat.token),
        ),
        (
            "body too large",
            app.http
                .post(app.api("/chats"))
                .header("content-type", "application/json")
                .body(too_big),
        ),
        (
            "other site",
            app.http
                .get(app.api("/status"))
                .header("origin", "https://evil.example.net"),
        ),
        (
            "no upgrade",
            app.http.get(app.api(&format!("/chats/{}/live", chat.id))),
        ),
        (
            "forged callback",
            app.http
                .post(format!("{}/mattermost/actions", app.url))
                .json(
                    &json!({"context": {"action": "accept", "chat_id": chat.id, "signature": "x"}}),
                ),
        ),
    ];
    let mut seen = Vec::new();
    for (what, request) in refusals {
        let (status, id, body) = error_of(request).await;
        assert!(status >= 400, "{what}: {status}");
        assert!(body["error"]["code"].is_string(), "{what}: {body}");
        assert_eq!(body["error"]["request_id"], id.as_str(), "{what}: {body}");
        assert!(is_fresh(&id), "{what}: a fresh id is a UUID, not {id:?}");
        assert!(!seen.contains(&id), "{what}: ids are not reused");
        seen.push(id);
    }
}

/// A supplied id of 1 to 64 visible ASCII characters is kept, in the header and the body;
/// anything else (too long, blank, spaces, non-ASCII, two of them) is replaced by a fresh one.
#[tokio::test]
async fn a_fit_supplied_id_is_kept_and_an_unfit_one_replaced() {
    let app = spawn_app().await;
    let unknown = || app.http.get(app.api("/chats/nope"));
    let long = "a".repeat(64);
    for fit in [
        "abc-123",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "Root=1-5e1b;x=\"y\"",
        &long,
    ] {
        let (status, id, body) = error_of(unknown().header(ID, fit)).await;
        assert_eq!(status, 401);
        assert_eq!(id, fit);
        assert_eq!(body["error"]["request_id"], fit);
    }
    let too_long = "a".repeat(65);
    let unfit: Vec<HeaderValue> = vec![
        HeaderValue::from_str(&too_long).unwrap(),
        HeaderValue::from_static(""),
        HeaderValue::from_static("two words"),
        HeaderValue::from_static("tab\there"),
        HeaderValue::from_bytes("café".as_bytes()).unwrap(),
    ];
    for value in unfit {
        let (_, id, body) = error_of(unknown().header(ID, value.clone())).await;
        assert!(
            is_fresh(&id),
            "{value:?} replaced by a fresh id, got {id:?}"
        );
        assert_eq!(body["error"]["request_id"], id.as_str());
    }
    let (_, id, _) = error_of(unknown().header(ID, "one").header(ID, "two")).await;
    assert!(is_fresh(&id), "two ids: neither is chosen, got {id:?}");
}

/// Successful answers, the back office's pages and the plain-text fallback carry an id too,
/// and a cross-origin client may read it.
#[tokio::test]
async fn every_answer_has_an_id() {
    let app = spawn_app().await;
    let get = |url: String| app.http.request(Method::GET, url);
    for (what, url) in [
        ("API", app.api("/status")),
        ("widget", format!("{}/widget.js", app.url)),
        ("back office", format!("{}/admin", app.url)),
        ("back office sign-in", format!("{}/admin/login", app.url)),
        ("unknown page", format!("{}/no-such-page", app.url)),
        ("probe", format!("{}/healthz", app.url)),
    ] {
        let response = get(url.clone()).header(ID, "given-1").send().await.unwrap();
        assert_eq!(id_of(&response), "given-1", "{what}");
        let response = get(url).send().await.unwrap();
        assert!(is_fresh(&id_of(&response)), "{what}");
    }
    let response = app
        .http
        .get(app.api("/status"))
        .header("origin", app.url.as_str())
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains(ID), "{exposed}");
}

/// The real binary's log lines of a request carry its id (the `http` span's field).
#[tokio::test]
async fn log_lines_of_a_request_carry_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = LoggedServer::start(dir.path()).await;
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/chats/nope"))
        .header(ID, "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    server.wait_for("request_id=trace-me-42").await;
    server.stop().await;
}
