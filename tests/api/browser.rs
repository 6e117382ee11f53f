//! The widget in real Chromium (Debian's, driven by playwright-core from
//! `tests/browser/widget_flow.mjs`), embedded in a page of another origin, against the real
//! server and the simulator. This test serves that page and acts as the operator when the
//! script asks (accepting, writing, sending a file, typing, editing, letting time pass for
//! a reminder) or reports what Mattermost received.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::State,
    response::Html,
    routing::{get, post},
};
use base64::Engine as _;
use mattermost_sim::{MattermostSim, SimUser};
use parley::storage::now_ms;
use serde_json::{Value, json};

use crate::helpers::{TestApp, backoffice::department, spawn_app_with};
use crate::helpers::{run_browser_script, screenshot_dir};

/// The newest request post in the requests channel.
fn newest_request(op: &Operator) -> Value {
    op.sim
        .posts_in_channel(&op.requests_channel_id)
        .into_iter()
        .rev()
        .find(|p| {
            p["props"]["parley_chat_id"].is_string()
                && !p["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("has been waiting")
        })
        .expect("a request post exists")
}

/// Time passes with nobody accepting: one pass of the lifecycle job as of just after the
/// reminder is due (the widget is connected, so its chat does not time out).
async fn remind(State(op): State<Operator>) -> Json<Value> {
    let after = op
        .app
        .settings()
        .remind_after
        .expect("reminders are on by default");
    let now = now_ms() + after.as_millis() as i64 + 1_000;
    let report = op.app.run_lifecycle_once(now).await;
    Json(json!({"ok": true, "reminded": report.reminded}))
}

/// The newest request post: its text and whether it still has its Accept button.
async fn request_post(State(op): State<Operator>) -> Json<Value> {
    let post = newest_request(&op);
    let button = post["props"]["attachments"][0]["actions"].is_array();
    Json(json!({"ok": true, "message": post["message"], "button": button}))
}

#[derive(Clone)]
struct Operator {
    sim: MattermostSim,
    alice: SimUser,
    team_id: String,
    requests_channel_id: String,
    parley_url: String,
    channel: Arc<Mutex<Option<String>>>,
    /// The app itself, for the job steps and the departments the script asks for (a failing
    /// step fails the request, and so the script).
    app: Arc<TestApp>,
}

async fn host_page(State(op): State<Operator>) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
         <body style=\"font-family: Georgia, serif; background: #fdf6e3\"><h1>Example Shop</h1>\
         <p>A customer's website on another origin.</p>\
         <script src=\"{}/widget.js\" async></script></body></html>",
        op.parley_url
    ))
}

/// Alice clicks Accept on the newest request and waits for the chat's channel.
async fn accept(State(op): State<Operator>) -> Json<Value> {
    let request = newest_request(&op);
    let chat_id = request["props"]["parley_chat_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = op
        .sim
        .click_button(&op.alice, request["id"].as_str().unwrap(), "accept")
        .await;
    assert_eq!(status, 200);
    let purpose = format!("parley chat {chat_id}");
    for _ in 0..500 {
        let channel = op
            .sim
            .channels_in_team(&op.team_id)
            .into_iter()
            .find(|c| c["purpose"].as_str() == Some(&purpose));
        if let Some(c) = channel {
            let id = c["id"].as_str().unwrap().to_owned();
            if op.sim.channel_members(&id).contains(&op.alice.id) {
                *op.channel.lock().unwrap() = Some(id);
                return Json(json!({"ok": true, "operator": "Alice Operator"}));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Json(json!({"ok": false, "error": "the chat channel never appeared"}))
}

fn chat_channel(op: &Operator) -> String {
    op.channel
        .lock()
        .unwrap()
        .clone()
        .expect("accept came first")
}

/// Alice writes in the accepted chat's channel.
async fn operator_message(State(op): State<Operator>, Json(body): Json<Value>) -> Json<Value> {
    let channel = chat_channel(&op);
    op.sim
        .post_as(
            &op.alice,
            &channel,
            body["text"].as_str().unwrap_or_default(),
        )
        .await;
    Json(json!({"ok": true}))
}

/// Alice uploads a file (`{"name", "text", "base64"}`) and posts it in the chat's channel.
async fn operator_file(State(op): State<Operator>, Json(body): Json<Value>) -> Json<Value> {
    let channel = chat_channel(&op);
    let Ok(bytes) = base64::engine::general_purpose::STANDARD
        .decode(body["base64"].as_str().unwrap_or_default())
    else {
        return Json(json!({"ok": false, "error": "`base64` is not base64"}));
    };
    let name = body["name"].as_str().unwrap_or("file.png");
    let info = op
        .sim
        .upload_file_as(&op.alice, &channel, name, bytes)
        .await;
    let file_id = info["id"].as_str().unwrap_or_default().to_owned();
    op.sim
        .post_with_files_as(
            &op.alice,
            &channel,
            body["text"].as_str().unwrap_or_default(),
            std::slice::from_ref(&file_id),
        )
        .await;
    Json(json!({"ok": true, "file_id": file_id}))
}

/// The posts with files in the chat's channel: their text and, per file, what the simulator
/// stored (name, type, size, whether the bytes are a PNG).
async fn channel_files(State(op): State<Operator>) -> Json<Value> {
    let channel = chat_channel(&op);
    let posts: Vec<Value> = op
        .sim
        .posts_in_channel(&channel)
        .into_iter()
        .filter(|p| p["file_ids"].as_array().is_some_and(|ids| !ids.is_empty()))
        .map(|p| {
            let files: Vec<Value> = p["metadata"]["files"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|f| {
                    let bytes = op
                        .sim
                        .file_bytes(f["id"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                    json!({
                        "name": f["name"],
                        "mime_type": f["mime_type"],
                        "size": bytes.len(),
                        "png": bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                    })
                })
                .collect();
            json!({"user_id": p["user_id"], "message": p["message"], "files": files})
        })
        .collect();
    Json(json!({"ok": true, "posts": posts}))
}

/// Sets Alice's Mattermost status (`{"status"}`) and polls presence at once (the server does
/// it every 30 s).
async fn presence(State(op): State<Operator>, Json(body): Json<Value>) -> Json<Value> {
    op.sim
        .set_status(&op.alice.id, body["status"].as_str().unwrap_or("online"));
    op.app.poll_presence().await;
    Json(json!({"ok": true}))
}

/// The bot's posts in the requests channel containing `{"needle"}`.
async fn requests_posts(State(op): State<Operator>, Json(body): Json<Value>) -> Json<Value> {
    let needle = body["needle"].as_str().unwrap_or_default();
    let posts: Vec<Value> = op
        .sim
        .posts_in_channel(&op.requests_channel_id)
        .into_iter()
        .filter(|p| p.to_string().contains(needle))
        .map(|p| json!({"message": p["message"], "props": p["props"]}))
        .collect();
    Json(json!({"ok": true, "posts": posts}))
}

/// Adds the departments `{"departments": [{"name", "greeting"}]}` (all to the requests
/// channel) as the back office would.
async fn add_departments(State(op): State<Operator>, Json(body): Json<Value>) -> Json<Value> {
    for d in body["departments"].as_array().cloned().unwrap_or_default() {
        let mut row = department(d["name"].as_str().unwrap_or("Sales"), "support", "requests");
        row.text_greeting = d["greeting"].as_str().map(str::to_owned);
        op.app.add_department(row).await;
    }
    Json(json!({"ok": true}))
}

/// Alice types in the chat's channel.
async fn operator_typing(State(op): State<Operator>) -> Json<Value> {
    op.sim.typing_as(&op.alice, &chat_channel(&op));
    Json(json!({"ok": true}))
}

/// Alice edits her newest post containing `match` to `text`.
async fn operator_edit(State(op): State<Operator>, Json(body): Json<Value>) -> Json<Value> {
    let needle = body["match"].as_str().unwrap_or_default();
    let post = op
        .sim
        .posts_in_channel(&chat_channel(&op))
        .into_iter()
        .rev()
        .find(|p| {
            p["user_id"] == op.alice.id.as_str()
                && p["delete_at"] == 0
                && p["message"].as_str().unwrap_or_default().contains(needle)
        });
    let Some(post) = post else {
        return Json(json!({"ok": false, "error": "no such post by Alice"}));
    };
    op.sim
        .edit_post_as(
            &op.alice,
            post["id"].as_str().unwrap_or_default(),
            body["text"].as_str().unwrap_or_default(),
        )
        .await;
    Json(json!({"ok": true}))
}

/// How often parley's bot said "typing" in the chat's channel (the visitor typing).
async fn visitor_typing(State(op): State<Operator>) -> Json<Value> {
    let channel = chat_channel(&op);
    let count = op
        .sim
        .typing_events()
        .iter()
        .filter(|e| e["channel_id"] == channel.as_str() && e["user_id"] != op.alice.id.as_str())
        .count();
    Json(json!({"ok": true, "count": count}))
}

#[tokio::test]
async fn the_widget_works_in_chromium_from_another_origin() {
    // 127.0.0.2 is another origin than parley's 127.0.0.1, as a customer's site would be,
    // and parley allows it as the README's embed step says.
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let site_url = format!("http://{}", listener.local_addr().unwrap());
    let allowed = site_url.clone();
    let app = Arc::new(
        spawn_app_with(move |s| {
            s.allowed_origins = parley::config::AllowedOrigins::List(vec![allowed]);
        })
        .await,
    );
    let operator = Operator {
        sim: app.sim.clone(),
        alice: app.alice.clone(),
        team_id: app.team_id.clone(),
        requests_channel_id: app.requests_channel_id.clone(),
        parley_url: app.url.clone(),
        channel: Arc::default(),
        app: app.clone(),
    };
    let site = Router::new()
        .route("/", get(host_page))
        .route("/control/accept", post(accept))
        .route("/control/operator-message", post(operator_message))
        .route("/control/operator-file", post(operator_file))
        .route("/control/channel-files", post(channel_files))
        .route("/control/presence", post(presence))
        .route("/control/requests-posts", post(requests_posts))
        .route("/control/departments", post(add_departments))
        .route("/control/operator-typing", post(operator_typing))
        .route("/control/operator-edit", post(operator_edit))
        .route("/control/visitor-typing", post(visitor_typing))
        .route("/control/remind", post(remind))
        .route("/control/request-post", post(request_post))
        .with_state(operator);
    tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });

    let screenshots = screenshot_dir();
    run_browser_script(
        "widget_flow.mjs",
        &[
            ("HOST_PAGE_URL", &format!("{site_url}/")),
            ("PARLEY_URL", &app.url),
            ("CONTROL_URL", &format!("{site_url}/control")),
            ("SCREENSHOT_DIR", &screenshots.to_string_lossy()),
        ],
    )
    .await;
    assert!(screenshots.join("widget-chat.png").exists());
    assert!(screenshots.join("widget-files.png").exists());
    assert!(screenshots.join("widget-offline.png").exists());
}
