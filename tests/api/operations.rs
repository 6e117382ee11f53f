//! What an admin's monitoring sees: `/readyz` (database and Mattermost) and the Prometheus
//! metrics at `/metrics`, protected by `PARLEY_METRICS_TOKEN`.

use futures_util::SinkExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, wait_until};

const METRICS_TOKEN: &str = "metrics-token-for-the-tests-0123456789";

async fn readyz(app: &TestApp) -> (u16, Value) {
    app.get_status_json(&format!("{}/readyz", app.url)).await
}

async fn spawn_app_with_metrics() -> TestApp {
    spawn_app_with(|s| s.metrics_token = Some(SecretString::from(METRICS_TOKEN))).await
}

/// The metrics text, scraped with the token.
async fn metrics(app: &TestApp) -> String {
    let response = app
        .http
        .get(format!("{}/metrics", app.url))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "scraping /metrics");
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of one series, e.g. `parley_chats{status="active"}`; `None` when absent.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

#[tokio::test]
async fn readyz_is_ready_while_the_database_answers_and_mattermost_is_connected() {
    let app = spawn_app().await;

    let (status, body) = readyz(&app).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "ready": true,
            "database": "ok",
            "mattermost": "connected",
            "callbacks": "ok",
            "problems": [],
            "warnings": []
        })
    );
}

#[tokio::test]
async fn readyz_answers_503_and_says_why_while_mattermost_is_down() {
    let app = spawn_app().await;

    app.sim.set_down(true);
    wait_until("parley notices Mattermost is down", || async {
        !app.is_online()
    })
    .await;
    let (status, body) = readyz(&app).await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["database"], "ok", "the database is fine: {body}");
    assert_eq!(body["mattermost"], "disconnected");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("the Mattermost event stream is down"),
        "{body}"
    );

    // Back up: ready again.
    app.sim.set_down(false);
    wait_until("parley reconnects", || async { app.is_online() }).await;
    assert_eq!(readyz(&app).await.0, 200);
}

#[tokio::test]
async fn readyz_is_ready_when_mattermost_is_not_configured() {
    let app = spawn_app_with(|s| s.mattermost = None).await;

    let (status, body) = readyz(&app).await;

    assert_eq!(status, 200, "offline on purpose is ready: {body}");
    assert_eq!(body["mattermost"], "not_configured");
}

#[tokio::test]
async fn metrics_are_off_without_a_token_and_refused_without_the_right_one() {
    let off = spawn_app().await;
    let response = off
        .http
        .get(format!("{}/metrics", off.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "off without PARLEY_METRICS_TOKEN");

    let app = spawn_app_with_metrics().await;
    let cases = [
        (None, "no token"),
        (Some("wrong-token-of-some-length"), "a wrong token"),
    ];
    for (token, what) in cases {
        let mut request = app.http.get(format!("{}/metrics", app.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{what}");
    }
}

#[tokio::test]
async fn metrics_show_the_counters_moving_after_a_relayed_message() {
    let app = spawn_app_with_metrics().await;
    let before = metrics(&app).await;
    assert_eq!(
        value(
            &before,
            "parley_messages_relayed_total{direction=\"to_mattermost\"}"
        ),
        Some(0.0),
        "{before}"
    );
    assert_eq!(value(&before, "parley_chats{status=\"active\"}"), Some(0.0));
    assert_eq!(value(&before, "parley_mattermost_connected"), Some(1.0));

    // A chat, accepted; the visitor's message goes to Mattermost and an operator answers.
    let chat = app.start_simple_chat("Where is my parcel?").await;
    let channel = app.accept(&chat, &app.alice).await;
    let live = format!(
        "{}/api/v1/chats/{}/live",
        app.url.replace("http://", "ws://"),
        chat.id
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(live).await.unwrap();
    let auth = json!({"type": "auth", "token": chat.token}).to_string();
    socket.send(Message::Text(auth.into())).await.unwrap();
    app.wait_for_bot_post(&channel, "Where is my parcel?").await;
    app.sim
        .post_as(&app.alice, &channel, "It left the warehouse today.")
        .await;
    app.wait_for_message(&chat, |m| m["text"] == "It left the warehouse today.")
        .await;
    wait_until("the outbox is empty", || app.outbox_empty()).await;

    let after = metrics(&app).await;
    let relayed_out = value(
        &after,
        "parley_messages_relayed_total{direction=\"to_mattermost\"}",
    );
    assert_eq!(relayed_out, Some(1.0), "{after}");
    assert_eq!(
        value(
            &after,
            "parley_messages_relayed_total{direction=\"to_visitor\"}"
        ),
        Some(1.0)
    );
    assert_eq!(value(&after, "parley_chats{status=\"active\"}"), Some(1.0));
    assert_eq!(value(&after, "parley_chats{status=\"pending\"}"), Some(0.0));
    assert_eq!(value(&after, "parley_outbox_depth"), Some(0.0));
    assert_eq!(value(&after, "parley_outbox_oldest_age_seconds"), Some(0.0));
    assert_eq!(value(&after, "parley_visitor_websockets"), Some(1.0));
    let posts = "parley_mattermost_request_duration_seconds_count{endpoint=\"POST /posts\"}";
    // The request post and the relayed message at least.
    assert!(value(&after, posts).unwrap_or(0.0) >= 2.0, "{after}");
    assert!(after.contains("endpoint=\"POST /channels\""), "{after}");

    // The visitor leaves: the socket is no longer counted.
    socket.close(None).await.unwrap();
    drop(socket);
    wait_until("the socket is no longer counted", || async {
        value(&metrics(&app).await, "parley_visitor_websockets") == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn metrics_count_mattermost_errors_backlog_and_reconnects() {
    let app = spawn_app_with_metrics().await;
    let chat = app.start_simple_chat("Hello?").await;
    let channel = app.accept(&chat, &app.alice).await;
    app.wait_for_bot_post(&channel, "Hello?").await;

    // Mattermost fails: the message waits in the outbox, and the failures are counted.
    app.sim.set_down(true);
    assert_eq!(app.send(&chat, "Anyone there?").await.status(), 201);
    wait_until("a delivery has failed", || async {
        let text = metrics(&app).await;
        text.lines().any(|l| {
            l.starts_with("parley_mattermost_request_errors_total{")
                && l.contains("error=\"status_5xx\"")
        })
    })
    .await;
    let during = metrics(&app).await;
    assert_eq!(value(&during, "parley_outbox_depth"), Some(1.0), "{during}");
    assert!(value(&during, "parley_outbox_oldest_age_seconds").unwrap() >= 0.0);
    assert_eq!(value(&during, "parley_mattermost_connected"), Some(0.0));

    // Back again: the stream reconnected (counted) and the backlog drains.
    app.sim.set_down(false);
    wait_until("parley reconnects", || async { app.is_online() }).await;
    app.wait_for_bot_post(&channel, "Anyone there?").await;
    wait_until("the outbox is empty", || app.outbox_empty()).await;
    let after = metrics(&app).await;
    assert!(
        value(&after, "parley_mattermost_stream_reconnects_total").unwrap() >= 1.0,
        "{after}"
    );
    assert_eq!(value(&after, "parley_outbox_depth"), Some(0.0));
    assert_eq!(
        value(
            &after,
            "parley_messages_relayed_total{direction=\"to_mattermost\"}"
        ),
        Some(2.0)
    );
}
