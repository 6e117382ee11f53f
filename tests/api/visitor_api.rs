//! The visitor API's contract: validation with stable codes, tokens, limits, offline mode,
//! CORS and the OpenAPI document.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with};

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("errors are JSON");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned(),
    )
}

#[tokio::test]
async fn bad_chat_requests_get_clear_errors_and_store_nothing() {
    let app = spawn_app().await;
    let long = "x".repeat(4001);
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fields",
            "message missing",
        ),
        (
            json!({"message": "   "}),
            StatusCode::BAD_REQUEST,
            "message_required",
            "blank message",
        ),
        (
            json!({"message": long}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "message_too_long",
            "oversized message",
        ),
        (
            json!({"message": "hi", "email": "nope"}),
            StatusCode::BAD_REQUEST,
            "email_invalid",
            "bad e-mail",
        ),
        (
            json!({"message": "hi", "name": "a\u{0}b"}),
            StatusCode::BAD_REQUEST,
            "invalid_characters",
            "NUL in name",
        ),
        (
            json!({"message": "hi", "name": "n".repeat(201)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "field_too_long",
            "long name",
        ),
        (
            json!({"message": "hi", "page_url": "javascript:alert(1)"}),
            StatusCode::BAD_REQUEST,
            "url_invalid",
            "script URL",
        ),
        (
            json!({"message": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fields",
            "wrong type",
        ),
        (
            json!({"message": "hi", "admin": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fields",
            "unknown field",
        ),
    ];
    for (body, status, code, why) in cases {
        let response = app
            .http
            .post(app.api("/chats"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (status, code.to_owned()),
            "{why}"
        );
    }

    let raw = |body: &'static [u8], content_type: &'static str| {
        app.http
            .post(app.api("/chats"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        (
            raw(b"{not json", "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(b"{\"message\":\"\xff\xfe\"}", "application/json")
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(b"message=hi", "application/x-www-form-urlencoded")
                .await
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(error_code(response).await, (status, code.to_owned()));
    }
    let huge = format!("{{\"message\":\"{}\"}}", "y".repeat(100_000));
    let response = app
        .http
        .post(app.api("/chats"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

    assert!(
        app.sim
            .posts_in_channel(&app.requests_channel_id)
            .is_empty(),
        "no refused request reached Mattermost"
    );
}

#[tokio::test]
async fn a_chat_is_only_readable_with_its_own_token() {
    let app = spawn_app().await;
    let mine = app.start_simple_chat("hello").await;
    let other = app.start_simple_chat("someone else").await;

    let get = |id: &str, auth: Option<&str>| {
        let mut r = app.http.get(app.api(&format!("/chats/{id}/messages")));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let cases = [
        (
            get(&mine.id, None).await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no token",
        ),
        (
            get(&mine.id, Some("Bearer wrong")).await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong token",
        ),
        (
            get(&mine.id, Some(&format!("Bearer {}", other.token)))
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "another chat's token",
        ),
        (
            get(&mine.id, Some(&format!("Basic {}", mine.token)))
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong scheme",
        ),
        (
            get("no-such-chat", Some(&format!("Bearer {}", mine.token)))
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown chat",
        ),
    ];
    for (response, status, code, why) in cases {
        assert_eq!(
            error_code(response).await,
            (status, code.to_owned()),
            "{why}"
        );
    }
    let ok = get(&mine.id, Some(&format!("bearer {}", mine.token)))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["messages"][0]["text"], "hello");
    assert_eq!(body["messages"][0]["sender"], "visitor");

    let response = app.send(&other, "x").await;
    assert_eq!(
        response.status(),
        201,
        "the other chat works with its own token"
    );
    let response = app
        .http
        .post(app.api(&format!("/chats/{}/messages", mine.id)))
        .bearer_auth(&other.token)
        .json(&json!({"text": "sneaky"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "writing needs the chat's own token");
}

#[tokio::test]
async fn messages_are_listed_in_order_after_an_id() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("one").await;
    for text in ["two", "three"] {
        assert_eq!(app.send(&chat, text).await.status(), 201);
    }
    let all = app.messages(&chat).await;
    let texts: Vec<&str> = all.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    let first_id = all[0]["id"].as_i64().unwrap();
    let body: Value = app
        .http
        .get(app.api(&format!("/chats/{}/messages?after={first_id}", chat.id)))
        .bearer_auth(&chat.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    let response = app
        .http
        .get(app.api(&format!("/chats/{}/messages?after=abc", chat.id)))
        .bearer_auth(&chat.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "invalid_query".into())
    );
}

#[tokio::test]
async fn message_floods_are_refused_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.limits.messages_per_minute = 3;
        s.limits.chats_per_minute_per_ip = 2;
    })
    .await;
    let chat = app.start_simple_chat("hi").await;
    for i in 0..3 {
        assert_eq!(app.send(&chat, &format!("m{i}")).await.status(), 201);
    }
    let refused = app.send(&chat, "one too many").await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&wait),
        "Retry-After is a sensible number of seconds: {wait}"
    );
    assert_eq!(error_code(refused).await.1, "rate_limited");

    app.start_simple_chat("second chat").await;
    let response = app
        .http
        .post(app.api("/chats"))
        .json(&json!({"message": "third chat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        429,
        "chat creation is limited per address"
    );
}

#[tokio::test]
async fn without_mattermost_parley_is_offline_and_takes_messages() {
    let app = spawn_app_with(|s| s.mattermost = None).await;
    let status: Value = app.get_json(&app.api("/status")).await;
    assert_eq!(status["online"], false);

    let response = app
        .http
        .post(app.api("/chats"))
        .json(&json!({"message": "hello?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::SERVICE_UNAVAILABLE, "offline".into())
    );

    let response = app
        .http
        .post(app.api("/offline-messages"))
        .json(&json!({"name": "Erika", "email": "erika@example.com", "message": "Please call me back"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = app
        .http
        .post(app.api("/offline-messages"))
        .json(&json!({"message": "no address"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "email_required".into())
    );
}

#[tokio::test]
async fn the_widget_api_answers_other_origins_and_documents_itself() {
    let app = spawn_app_with(|s| {
        s.allowed_origins =
            parley::config::AllowedOrigins::List(vec!["https://shop.example.com".into()])
    })
    .await;
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.api("/chats"))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    let foreign = app
        .http
        .get(app.api("/status"))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    // Unlisted sites are refused, with a grant to read only the reason (for the console).
    assert_eq!(foreign.status(), 403);
    let refusal: Value = foreign.json().await.unwrap();
    assert_eq!(refusal["error"]["code"], "origin_not_allowed");

    let live = format!("{}/chats/x/live", app.api("").replace("http://", "ws://"));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            live.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example.net".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "the live socket refuses unlisted sites");

    let doc: Value = app.get_json(&app.api("/openapi.json")).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/chats",
        "/chats/{id}",
        "/chats/{id}/messages",
        "/chats/{id}/close",
        "/chats/{id}/live",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }

    let widget = app
        .http
        .get(format!("{}/widget.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(widget.status(), 200);
    assert!(
        widget.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/javascript")
    );
    let demo = app
        .http
        .get(&app.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        demo.contains("/widget.js"),
        "the demo page embeds the widget"
    );
    let unknown = app.http.get(app.api("/nope")).send().await.unwrap();
    assert_eq!(
        error_code(unknown).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
}
