//! Black-box tests of the simulator itself, over real HTTP and WebSocket connections.

use axum::Json;
use axum::http::HeaderMap;
use futures_util::{SinkExt, StreamExt};
use mattermost_sim::{MattermostSim, SimConfig, SimUser};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct World {
    sim: MattermostSim,
    team: String,
    channel: String,
    bot: SimUser,
    alice: SimUser,
    http: reqwest::Client,
}

async fn world_with(config: SimConfig) -> World {
    let sim = MattermostSim::start_with(config).await;
    let team = sim.create_team("support", "Support");
    let channel = sim.create_channel(&team, "requests", "Requests", false);
    let bot = sim.create_bot("parley", "Parley");
    let alice = sim.create_user("alice", "Alice", "Smith");
    for u in [&bot, &alice] {
        sim.add_team_member(&team, &u.id);
        sim.add_channel_member(&channel, &u.id);
    }
    World {
        sim,
        team,
        channel,
        bot,
        alice,
        http: reqwest::Client::new(),
    }
}

async fn world() -> World {
    world_with(SimConfig {
        allowed_untrusted_internal_connections: "127.0.0.1 localhost".into(),
        ..SimConfig::default()
    })
    .await
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v4{path}", self.sim.url())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        user: &SimUser,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&user.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post_json(&self, user: &SimUser, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, user, path, Some(body))
            .await
    }

    async fn get(&self, user: &SimUser, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, user, path, None).await
    }

    async fn create_channel(&self, name: &str) -> (u16, Value) {
        self.post_json(
            &self.bot,
            "/channels",
            json!({"team_id": self.team, "name": name, "display_name": "Chat", "type": "O"}),
        )
        .await
    }
}

#[tokio::test]
async fn auth_is_required_and_parsed_like_mattermost() {
    let w = world().await;
    let resp = w.http.get(w.url("/users/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], "api.context.session_expired.app_error");
    assert_eq!(body["status_code"], 401);
    assert_eq!(body["detailed_error"], "");

    let bad = w
        .http
        .get(w.url("/users/me"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    for header in [
        format!("bearer {}", w.bot.token),
        format!("Token {}", w.bot.token),
    ] {
        let resp = w
            .http
            .get(w.url("/users/me"))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let me: Value = resp.json().await.unwrap();
        assert_eq!(me["id"], w.bot.id.as_str());
        assert_eq!(me["is_bot"], true);
    }
    let q = w
        .http
        .get(format!(
            "{}?access_token={}",
            w.url("/users/me"),
            w.alice.token
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), 200);
}

#[tokio::test]
async fn channel_creation_rules() {
    let w = world().await;
    let (status, ch) = w.create_channel("lhc-1").await;
    assert_eq!(status, 201);
    assert_eq!(ch["name"], "lhc-1");
    assert_eq!(ch["id"].as_str().unwrap().len(), 26);
    let id = ch["id"].as_str().unwrap().to_owned();
    assert_eq!(w.sim.channel_members(&id), vec![w.bot.id.clone()]);

    let (status, err) = w.create_channel("lhc-1").await;
    assert_eq!(status, 400);
    assert_eq!(err["id"], "store.sql_channel.save_channel.exists.app_error");

    // Archive, then the name is still taken.
    let (status, body) = w
        .send(
            reqwest::Method::DELETE,
            &w.bot,
            &format!("/channels/{id}"),
            None,
        )
        .await;
    assert_eq!((status, body), (200, json!({"status": "OK"})));
    let (status, err) = w
        .send(
            reqwest::Method::DELETE,
            &w.bot,
            &format!("/channels/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["id"], "api.channel.delete_channel.deleted.app_error");
    let (status, err) = w.create_channel("lhc-1").await;
    assert_eq!(status, 400);
    assert_eq!(err["id"], "store.sql_channel.save_channel.exists.app_error");
    assert!(
        w.sim.channel_by_name(&w.team, "lhc-1").unwrap()["delete_at"]
            .as_i64()
            .unwrap()
            > 0
    );

    // Archived channels are hidden by name unless include_deleted=true.
    let (status, err) = w
        .send(
            reqwest::Method::GET,
            &w.bot,
            &format!("/teams/{}/channels/name/lhc-1", w.team),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(err["id"], "app.channel.get_by_name.missing.app_error");
    let (status, _) = w
        .send(
            reqwest::Method::GET,
            &w.bot,
            "/teams/name/support/channels/name/lhc-1?include_deleted=true",
            None,
        )
        .await;
    assert_eq!(status, 200);

    let (status, err) = w
        .create_channel("0123456789abcdef0123456789abcdef01234567")
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["id"], "model.channel.is_valid.name.app_error");
    let (status, err) = w.create_channel("Bad Name").await;
    assert_eq!(status, 400);
    assert_eq!(err["id"], "model.channel.is_valid.1_or_more.app_error");
    // Too long is the database's refusal on a real server (mattermost-api.md §13).
    let (status, _) = w.create_channel(&"a".repeat(65)).await;
    assert_eq!(status, 500);

    // Not on the team: no permission.
    let outsider = w.sim.create_user("eve", "Eve", "");
    let (status, err) = w
        .post_json(
            &outsider,
            "/channels",
            json!({"team_id": w.team, "name": "x1", "display_name": "X", "type": "P"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(err["id"], "api.context.permissions.app_error");

    // Adding someone who is not on the team.
    let (_, ch2) = w.create_channel("lhc-2").await;
    let ch2 = ch2["id"].as_str().unwrap().to_owned();
    let (status, err) = w
        .post_json(
            &w.bot,
            &format!("/channels/{ch2}/members"),
            json!({"user_id": outsider.id}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(err["id"], "app.team.get_member.missing.app_error");
    let (status, member) = w
        .post_json(
            &w.bot,
            &format!("/channels/{ch2}/members"),
            json!({"user_id": w.alice.id}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(member["user_id"], w.alice.id.as_str());
    let posts = w.sim.posts_in_channel(&ch2);
    assert_eq!(posts.last().unwrap()["type"], "system_add_to_channel");
}

#[tokio::test]
async fn permanent_delete_needs_the_setting() {
    let w = world().await;
    let (_, ch) = w.create_channel("lhc-9").await;
    let id = ch["id"].as_str().unwrap().to_owned();
    let path = format!("/channels/{id}?permanent=true");
    let (status, err) = w.send(reqwest::Method::DELETE, &w.bot, &path, None).await;
    assert_eq!(status, 401);
    assert_eq!(err["id"], "api.user.delete_channel.not_enabled.app_error");
    assert!(w.sim.channel(&id).is_some());

    w.sim.set_config(|c| c.enable_api_channel_deletion = true);
    let (status, _) = w.send(reqwest::Method::DELETE, &w.bot, &path, None).await;
    assert_eq!(status, 200);
    assert!(w.sim.channel(&id).is_none());
    let (status, _) = w
        .send(
            reqwest::Method::GET,
            &w.bot,
            &format!("/channels/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // The name is free again.
    assert_eq!(w.create_channel("lhc-9").await.0, 201);
}

#[tokio::test]
async fn pending_post_id_deduplicates() {
    let w = world().await;
    let body = json!({"channel_id": w.channel, "message": "hi", "pending_post_id": "abc:1"});
    let (s1, p1) = w.post_json(&w.bot, "/posts", body.clone()).await;
    let (s2, p2) = w.post_json(&w.bot, "/posts", body).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(p1["id"], p2["id"]);
    assert_eq!(p1["props"]["from_bot"], "true");
    assert_eq!(w.sim.posts_in_channel(&w.channel).len(), 1);

    let long = "x".repeat(16384);
    let (status, err) = w
        .post_json(
            &w.bot,
            "/posts",
            json!({"channel_id": w.channel, "message": long}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["id"], "model.post.is_valid.message_length.app_error");
}

/// A local integration endpoint that records what it receives and answers `reply`.
async fn integration(reply: Value) -> (String, Arc<Mutex<Vec<(HeaderMap, Value)>>>) {
    let seen: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
    let seen2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let seen = seen2.clone();
            let reply = reply.clone();
            async move {
                seen.lock().unwrap().push((headers, body));
                Json(reply)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn post_card(w: &World, url: &str) -> Value {
    let (status, post) = w
        .post_json(
            &w.bot,
            "/posts",
            json!({
                "channel_id": w.channel,
                "message": "New chat",
                "props": {"attachments": [{"text": "visitor", "actions": [
                    {"id": "accept", "name": "Accept", "integration": {"url": url, "context": {"secret": "s3"}}},
                    {"name": "No id", "integration": {"url": url}}
                ]}]}
            }),
        )
        .await;
    assert_eq!(status, 201);
    post
}

#[tokio::test]
async fn button_click_calls_integration_and_applies_update() {
    let w = world().await;
    let (url, seen) = integration(json!({
        "update": {"message": "Accepted by alice", "props": {}},
        "ephemeral_text": "You took it <https://x.test|chat>"
    }))
    .await;
    let post = post_card(&w, &url).await;
    let post_id = post["id"].as_str().unwrap().to_owned();

    // Integrations are stripped from what clients see, kept in storage.
    let actions = &post["props"]["attachments"][0]["actions"];
    assert!(actions[0].get("integration").is_none());
    assert_eq!(actions[0]["id"], "accept");
    assert_eq!(actions[1]["id"].as_str().unwrap().len(), 26);
    let (_, fetched) = w
        .send(
            reqwest::Method::GET,
            &w.alice,
            &format!("/posts/{post_id}"),
            None,
        )
        .await;
    assert!(
        fetched["props"]["attachments"][0]["actions"][0]
            .get("integration")
            .is_none()
    );
    let stored = w.sim.post(&post_id).unwrap();
    assert_eq!(
        stored["props"]["attachments"][0]["actions"][0]["integration"]["context"]["secret"],
        "s3"
    );

    let (status, body) = w.sim.click_button(&w.alice, &post_id, "accept").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "OK");
    assert!(body["trigger_id"].is_string());

    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (headers, req) = &calls[0];
    assert_eq!(headers["user-agent"], "Mattermost-Bot/1.1");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(req["user_id"], w.alice.id.as_str());
    assert_eq!(req["user_name"], "alice");
    assert_eq!(req["channel_name"], "requests");
    assert_eq!(req["team_domain"], "support");
    assert_eq!(req["post_id"], post_id.as_str());
    assert_eq!(req["context"], json!({"secret": "s3"}));

    let updated = w.sim.post(&post_id).unwrap();
    assert_eq!(updated["message"], "Accepted by alice");
    assert_eq!(updated["props"], json!({}));
    assert!(updated["edit_at"].as_i64().unwrap() > 0);

    let eph = w.sim.ephemeral_posts_for(&w.alice.id);
    assert_eq!(eph.len(), 1);
    assert_eq!(eph[0]["message"], "You took it [chat](https://x.test)");
    let recorded = w.sim.integration_requests();
    assert_eq!(recorded[0]["response_status"], 200);

    // Unknown and malformed action ids.
    let (status, _) = w.sim.click_button(&w.alice, &post_id, "nothere").await;
    assert_eq!(status, 404);
    let (status, _) = w.sim.click_button(&w.alice, &post_id, "bad-id").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn loopback_callbacks_are_refused_unless_allowed() {
    let w = world_with(SimConfig::default()).await;
    let (url, seen) = integration(json!({})).await;
    let post = post_card(&w, &url).await;
    let post_id = post["id"].as_str().unwrap();
    let (status, err) = w.sim.click_button(&w.alice, post_id, "accept").await;
    assert_eq!(status, 400);
    assert_eq!(err["id"], "api.post.do_action.action_integration.app_error");
    assert!(seen.lock().unwrap().is_empty());

    w.sim
        .set_config(|c| c.allowed_untrusted_internal_connections = "127.0.0.1".into());
    let (status, _) = w.sim.click_button(&w.alice, post_id, "accept").await;
    assert_eq!(status, 200);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(w: &World, user: &SimUser, query: &str) -> Ws {
    let url = format!(
        "{}/api/v4/websocket{query}",
        w.sim.url().replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", user.token).parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("websocket message in time")
            .expect("socket open")
            .expect("no error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn wait_for_connections(sim: &MattermostSim, n: usize) {
    for _ in 0..100 {
        if sim.websocket_connections() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} websocket connections");
}

#[tokio::test]
async fn websocket_hello_posted_and_resume() {
    let w = world().await;
    let mut ws = connect(&w, &w.bot, "").await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["event"], "hello");
    assert_eq!(hello["seq"], 0);
    assert_eq!(hello["broadcast"]["user_id"], w.bot.id.as_str());
    let conn_id = hello["data"]["connection_id"].as_str().unwrap().to_owned();
    wait_for_connections(&w.sim, 1).await;

    w.sim.post_as(&w.alice, &w.channel, "hello bot").await;
    let posted = next_json(&mut ws).await;
    assert_eq!(posted["event"], "posted");
    assert_eq!(posted["seq"], 1);
    assert_eq!(posted["data"]["channel_name"], "requests");
    assert_eq!(posted["data"]["sender_name"], "@alice");
    let inner: Value = serde_json::from_str(posted["data"]["post"].as_str().unwrap()).unwrap();
    assert_eq!(inner["message"], "hello bot");

    // Cut the socket; events published meanwhile are queued for the connection.
    w.sim.drop_websockets();
    assert_eq!(w.sim.websocket_connections(), 0);
    w.sim.post_as(&w.alice, &w.channel, "while away").await;

    let mut ws2 = connect(
        &w,
        &w.bot,
        &format!("?connection_id={conn_id}&sequence_number=2"),
    )
    .await;
    let replay = next_json(&mut ws2).await;
    assert_eq!(replay["event"], "posted", "no hello on a successful resume");
    assert_eq!(replay["seq"], 2);
    wait_for_connections(&w.sim, 1).await;

    // Asking again for seq 1 (still in the dead queue) replays it with its number.
    w.sim.drop_websockets();
    let mut ws3 = connect(
        &w,
        &w.bot,
        &format!("?connection_id={conn_id}&sequence_number=1"),
    )
    .await;
    assert_eq!(next_json(&mut ws3).await["seq"], 1);
    assert_eq!(next_json(&mut ws3).await["seq"], 2);

    // An unavailable sequence gives a new connection id and a fresh hello.
    w.sim.drop_websockets();
    let mut ws4 = connect(
        &w,
        &w.bot,
        &format!("?connection_id={conn_id}&sequence_number=99"),
    )
    .await;
    let hello = next_json(&mut ws4).await;
    assert_eq!(hello["event"], "hello");
    assert_eq!(hello["seq"], 0);
    assert_ne!(hello["data"]["connection_id"], conn_id.as_str());
}

#[tokio::test]
async fn websocket_challenge_auth_and_typing() {
    let w = world().await;
    let url = format!(
        "{}/api/v4/websocket",
        w.sim.url().replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"seq": 1, "action": "authentication_challenge", "data": {"token": w.bot.token}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["event"], "hello");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"status": "OK", "seq_reply": 1})
    );

    let mut alice = connect(&w, &w.alice, "").await;
    assert_eq!(next_json(&mut alice).await["event"], "hello");
    alice
        .send(Message::Text(
            json!({"seq": 1, "action": "user_typing", "data": {"channel_id": w.channel, "parent_id": ""}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut alice).await["seq_reply"], 1);
    let typing = next_json(&mut ws).await;
    assert_eq!(typing["event"], "typing");
    assert_eq!(typing["data"]["user_id"], w.alice.id.as_str());

    // A bad token closes the socket.
    let (mut bad, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    bad.send(Message::Text(
        json!({"seq": 1, "action": "authentication_challenge", "data": {"token": "nope"}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), bad.next())
        .await
        .unwrap();
    assert!(!matches!(end, Some(Ok(Message::Text(_)))));
}

#[tokio::test]
async fn fault_injection() {
    let w = world().await;
    w.sim.fail_next_requests(2, 502);
    for _ in 0..2 {
        let (status, err) = w
            .send(reqwest::Method::GET, &w.bot, "/users/me", None)
            .await;
        assert_eq!(status, 502);
        assert_eq!(err["id"], "sim.injected_failure");
    }
    assert_eq!(
        w.send(reqwest::Method::GET, &w.bot, "/users/me", None)
            .await
            .0,
        200
    );

    w.sim.rate_limit_next_requests(1, 7);
    let resp = w
        .http
        .get(w.url("/users/me"))
        .bearer_auth(&w.bot.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["x-ratelimit-reset"], "7");
    assert!(resp.headers().contains_key("x-ratelimit-limit"));
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(resp.text().await.unwrap().trim(), "limit exceeded");

    let mut ws = connect(&w, &w.bot, "").await;
    next_json(&mut ws).await;
    wait_for_connections(&w.sim, 1).await;
    w.sim.set_down(true);
    assert_eq!(w.sim.websocket_connections(), 0);
    assert_eq!(
        w.send(reqwest::Method::GET, &w.bot, "/users/me", None)
            .await
            .0,
        503
    );
    let url = format!(
        "{}/api/v4/websocket",
        w.sim.url().replace("http://", "ws://")
    );
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err()
    );
    w.sim.set_down(false);
    assert_eq!(
        w.send(reqwest::Method::GET, &w.bot, "/users/me", None)
            .await
            .0,
        200
    );

    let log = w.sim.request_log();
    assert!(log.contains(&("GET".into(), "/api/v4/users/me".into(), 429)));
    assert!(log.contains(&("GET".into(), "/api/v4/users/me".into(), 503)));
}

/// A 3x2 PNG header is enough for the dimension sniffing.
fn tiny_png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend_from_slice(&3u32.to_be_bytes());
    v.extend_from_slice(&2u32.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0]);
    v
}

async fn upload(w: &World, bytes: Vec<u8>, name: &str) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("channel_id", w.channel.clone())
        .part(
            "files",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        )
        .text("client_ids", "c1");
    let resp = w
        .http
        .post(w.url("/files"))
        .bearer_auth(&w.bot.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn files_upload_info_download_and_limits() {
    let w = world().await;
    let png = tiny_png();
    let (status, body) = upload(&w, png.clone(), "shot.PNG").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["client_ids"], json!(["c1"]));
    let info = &body["file_infos"][0];
    assert_eq!(info["extension"], "png");
    assert_eq!(info["mime_type"], "image/png");
    assert_eq!(info["width"], 3);
    assert_eq!(info["height"], 2);
    assert_eq!(info["size"], png.len());
    let file_id = info["id"].as_str().unwrap().to_owned();

    let (status, fetched) = w
        .send(
            reqwest::Method::GET,
            &w.alice,
            &format!("/files/{file_id}/info"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched["name"], "shot.PNG");
    let resp = w
        .http
        .get(w.url(&format!("/files/{file_id}")))
        .bearer_auth(&w.alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), png);

    let (status, post) = w
        .post_json(
            &w.bot,
            "/posts",
            json!({"channel_id": w.channel, "message": "file", "file_ids": [file_id]}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(post["metadata"]["files"][0]["id"], file_id.as_str());
    assert_eq!(post["metadata"]["files"][0]["post_id"], post["id"]);

    // Outsiders cannot read it.
    let eve = w.sim.create_user("eve", "Eve", "");
    let (status, _) = w
        .send(
            reqwest::Method::GET,
            &eve,
            &format!("/files/{file_id}/info"),
            None,
        )
        .await;
    assert_eq!(status, 403);

    w.sim.set_config(|c| c.max_file_size = 10);
    let (status, err) = upload(&w, vec![0u8; 100], "big.bin").await;
    assert_eq!(status, 413);
    assert_eq!(err["id"], "api.file.upload_file.too_large.app_error");
}

#[tokio::test]
async fn posts_since_and_edits() {
    let w = world().await;
    let first = w.sim.post_as(&w.alice, &w.channel, "one").await;
    let t = first["create_at"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = w.sim.post_as(&w.alice, &w.channel, "two").await;
    let edited = w
        .sim
        .edit_post_as(&w.alice, first["id"].as_str().unwrap(), "one!")
        .await;
    assert!(edited["edit_at"].as_i64().unwrap() > 0);
    w.sim
        .delete_post_as(&w.alice, second["id"].as_str().unwrap())
        .await;
    let (status, list) = w
        .send(
            reqwest::Method::GET,
            &w.bot,
            &format!("/channels/{}/posts?since={t}", w.channel),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // The edited post, the deleted one, and the copy of the edited post's old version that
    // the real server keeps (soft-deleted, `original_id` set, old props), messages of deleted
    // posts blanked (mattermost-api.md §13).
    assert_eq!(list["order"].as_array().unwrap().len(), 3);
    let second_id = second["id"].as_str().unwrap();
    assert!(list["posts"][second_id]["delete_at"].as_i64().unwrap() > 0);
    assert_eq!(list["posts"][second_id]["message"], "");
    let first_id = first["id"].as_str().unwrap();
    assert_eq!(list["posts"][first_id]["message"], "one!");
    let copies: Vec<&Value> = list["posts"]
        .as_object()
        .unwrap()
        .values()
        .filter(|p| p["original_id"] == first_id)
        .collect();
    assert_eq!(copies.len(), 1);
    assert!(copies[0]["delete_at"].as_i64().unwrap() > 0);
    assert_ne!(copies[0]["id"], first_id);
    // Patching or deleting a deleted (or unknown) post is a permission failure.
    for (method, path) in [
        (reqwest::Method::DELETE, format!("/posts/{second_id}")),
        (reqwest::Method::PUT, format!("/posts/{second_id}/patch")),
        (
            reqwest::Method::DELETE,
            "/posts/unknownunknownunknownunk".to_owned(),
        ),
    ] {
        let body = (method == reqwest::Method::PUT).then(|| json!({"message": "x"}));
        let (status, err) = w.send(method, &w.alice, &path, body).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(err["id"], "api.context.permissions.app_error");
    }

    let (_, page) = w
        .send(
            reqwest::Method::GET,
            &w.bot,
            &format!("/channels/{}/posts?page=0&per_page=10", w.channel),
            None,
        )
        .await;
    assert_eq!(page["order"], json!([first["id"]]));

    // Ephemeral posts need system admin.
    let body = json!({"user_id": w.alice.id, "post": {"channel_id": w.channel, "message": "psst"}});
    assert_eq!(
        w.post_json(&w.bot, "/posts/ephemeral", body.clone())
            .await
            .0,
        403
    );
    w.sim.make_system_admin(&w.bot.id);
    let (status, eph) = w.post_json(&w.bot, "/posts/ephemeral", body).await;
    assert_eq!(status, 201);
    assert_eq!(eph["type"], "system_ephemeral");
    assert_eq!(w.sim.ephemeral_posts_for(&w.alice.id).len(), 1);
}

#[tokio::test]
async fn simultaneous_clicks_reach_the_integration_concurrently() {
    let w = world().await;
    // The endpoint only answers once both clicks are inside it at the same time.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let barrier = barrier.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), barrier.wait())
                    .await
                    .expect("both clicks in flight together");
                Json(json!({"ephemeral_text": "ok"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let post = post_card(&w, &url).await;
    let post_id = post["id"].as_str().unwrap();
    let bob = w.sim.create_user("bob", "Bob", "");
    w.sim.add_team_member(&w.team, &bob.id);
    let (a, b) = tokio::join!(
        w.sim.click_button(&w.alice, post_id, "accept"),
        w.sim.click_button(&bob, post_id, "accept"),
    );
    assert_eq!((a.0, b.0), (200, 200));
    assert_eq!(w.sim.integration_requests().len(), 2);
}

#[tokio::test]
async fn reactions_are_saved_listed_and_broadcast_like_the_server() {
    let w = world().await;
    let post = w.sim.post_as(&w.bot, &w.channel, "a request").await;
    let post_id = post["id"].as_str().unwrap();
    let mut ws = connect(&w, &w.bot, "").await;
    assert_eq!(next_json(&mut ws).await["event"], "hello");
    wait_for_connections(&w.sim, 1).await;

    // The server writes the Reaction without a status: 200, not the reference's 201.
    let body = json!({"user_id": w.alice.id, "post_id": post_id, "emoji_name": "white_check_mark"});
    let (status, reaction) = w.post_json(&w.alice, "/reactions", body.clone()).await;
    assert_eq!(status, 200, "{reaction}");
    assert_eq!(reaction["emoji_name"], "white_check_mark");
    assert_eq!(reaction["channel_id"], w.channel.as_str());
    assert!(reaction["create_at"].as_i64().unwrap() > 0);

    // Other events may come first (e.g. a status change); the reaction's is the one wanted.
    let event = loop {
        let event = next_json(&mut ws).await;
        if event["event"] == "reaction_added" {
            break event;
        }
    };
    assert_eq!(event["broadcast"]["channel_id"], w.channel.as_str());
    let inner: Value = serde_json::from_str(
        event["data"]["reaction"]
            .as_str()
            .expect("data.reaction is a JSON string"),
    )
    .unwrap();
    assert_eq!(inner["user_id"], w.alice.id.as_str());
    assert_eq!(inner["post_id"], post_id);

    let (status, list) = w
        .send(
            reqwest::Method::GET,
            &w.bot,
            &format!("/posts/{post_id}/reactions"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let stored = w.sim.post(post_id).unwrap();
    assert_eq!(stored["has_reactions"], true);
    // The post's update time moves to the reaction's (the same millisecond as the post's own,
    // on a fast machine, so "later" is not what to check).
    assert_eq!(stored["update_at"], reaction["update_at"]);
    assert!(stored["update_at"].as_i64() >= post["update_at"].as_i64());

    // Reacting again is an upsert: still one reaction.
    assert_eq!(w.post_json(&w.alice, "/reactions", body).await.0, 200);
    assert_eq!(w.sim.reactions_on(post_id).len(), 1);

    let refusals = [
        (
            json!({"user_id": w.bot.id, "post_id": post_id, "emoji_name": "smile"}),
            403,
            "api.reaction.save_reaction.user_id.app_error",
        ),
        (
            json!({"user_id": w.alice.id, "post_id": "short", "emoji_name": "smile"}),
            400,
            "api.reaction.save_reaction.invalid.app_error",
        ),
        (
            json!({"user_id": w.alice.id, "post_id": post_id, "emoji_name": "no_such_emoji"}),
            404,
            "app.emoji.get_by_name.no_result",
        ),
        (
            json!({"user_id": w.alice.id, "post_id": post_id, "emoji_name": "bad name"}),
            400,
            "model.reaction.is_valid.emoji_name.app_error",
        ),
    ];
    for (body, status, id) in refusals {
        let (got, err) = w.post_json(&w.alice, "/reactions", body.clone()).await;
        assert_eq!((got, err["id"].as_str().unwrap()), (status, id), "{body}");
    }
    // Not a member of the channel: no add_reaction.
    let outsider = w.sim.create_user("olga", "Olga", "Outside");
    w.sim.add_team_member(&w.team, &outsider.id);
    let (status, _) = w
        .post_json(
            &outsider,
            "/reactions",
            json!({"user_id": outsider.id, "post_id": post_id, "emoji_name": "smile"}),
        )
        .await;
    assert_eq!(status, 403);

    let seen = w.sim.react_as(&w.bot, post_id, "eyes").await;
    assert_eq!(seen["user_id"], w.bot.id.as_str());
    assert_eq!(w.sim.reactions_on(post_id).len(), 2);
}

#[tokio::test]
async fn typing_needs_a_member_and_is_recorded() {
    let w = world().await;
    let mut bot = connect(&w, &w.bot, "").await;
    assert_eq!(next_json(&mut bot).await["event"], "hello");
    wait_for_connections(&w.sim, 1).await;

    w.sim.typing_as(&w.alice, &w.channel);
    let typing = next_json(&mut bot).await;
    assert_eq!(typing["event"], "typing");
    assert_eq!(typing["broadcast"]["channel_id"], w.channel.as_str());
    assert_eq!(typing["broadcast"]["omit_users"][&w.alice.id], true);
    let log = w.sim.typing_events();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["user_id"], w.alice.id.as_str());

    // Typing where one may not post is the invalid-param error, and nothing is sent.
    let (_, other) = w.create_channel("elsewhere").await;
    let other_id = other["id"].as_str().unwrap();
    bot.send(Message::Text(
        json!({"seq": 1, "action": "user_typing", "data": {"channel_id": "nope", "parent_id": ""}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = loop {
        // (the new channel's own events may come first)
        let frame = next_json(&mut bot).await;
        if frame.get("seq_reply").is_some() {
            break frame;
        }
    };
    assert_eq!(reply["status"], "FAIL");
    assert_eq!(
        reply["error"]["id"],
        "api.websocket_handler.invalid_param.app_error"
    );
    let mut alice = connect(&w, &w.alice, "").await;
    assert_eq!(next_json(&mut alice).await["event"], "hello");
    alice
        .send(Message::Text(
            json!({"seq": 1, "action": "user_typing", "data": {"channel_id": other_id}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut alice).await["status"], "FAIL");
    assert_eq!(w.sim.typing_events().len(), 1);
}

#[tokio::test]
async fn websockets_down_refuses_upgrades_and_forgets_connections() {
    let w = world().await;
    let mut ws = connect(&w, &w.bot, "").await;
    let hello = next_json(&mut ws).await;
    let conn_id = hello["data"]["connection_id"].as_str().unwrap().to_owned();
    wait_for_connections(&w.sim, 1).await;

    w.sim.set_websockets_down(true);
    wait_for_connections(&w.sim, 0).await;
    let url = format!(
        "{}/api/v4/websocket",
        w.sim.url().replace("http://", "ws://")
    );
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err()
    );
    // REST still answers.
    w.sim.post_as(&w.alice, &w.channel, "missed").await;

    w.sim.set_websockets_down(false);
    let mut again = connect(
        &w,
        &w.bot,
        &format!("?connection_id={conn_id}&sequence_number=1"),
    )
    .await;
    let hello = next_json(&mut again).await;
    assert_eq!(hello["event"], "hello", "the old connection is gone");
    assert_ne!(hello["data"]["connection_id"], conn_id.as_str());
}

#[tokio::test]
async fn watch_posts_reports_every_post_as_it_is_stored() {
    // Arrange
    let w = world().await;
    let mut posts = w.sim.watch_posts();
    let before = w.sim.post_count();

    // Act
    let made = w.sim.post_as(&w.alice, &w.channel, "hello bench").await;

    // Assert
    let seen = posts.recv().await.expect("the post is reported");
    assert_eq!(seen.id, made["id"].as_str().unwrap());
    assert_eq!(seen.channel_id, w.channel);
    assert_eq!(seen.user_id, w.alice.id);
    assert_eq!(seen.message, "hello bench");
    assert_eq!(w.sim.post_count(), before + 1);
}

#[tokio::test]
async fn my_teams_and_channel_search_answer_like_mattermost() {
    // Arrange
    let w = world().await;
    let other = w.sim.create_team("sales", "Sales");
    w.sim
        .create_channel(&other, "sales-requests", "Sales requests", false);
    let private = w.sim.create_channel(&w.team, "requests-vip", "VIP", true);
    w.sim.add_channel_member(&private, &w.bot.id);
    w.sim.create_channel(&w.team, "random", "Random", false);
    let outsider = w.sim.create_user("olga", "Olga", "Out");

    // Act and assert: the caller's teams only, as Team objects.
    let (status, teams) = w.get(&w.bot, "/users/me/teams").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = teams
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["support"]);
    assert_eq!(teams[0]["display_name"], "Support");
    assert_eq!(teams[0]["id"], w.team.as_str());
    let (status, teams) = w.get(&outsider, "/users/me/teams").await;
    assert_eq!((status, teams), (200, json!([])));

    // Search: 200 (the spec says 201), public channels whose name or display name has the
    // term, in this team only.
    let path = format!("/teams/{}/channels/search", w.team);
    let (status, found) = w.post_json(&w.bot, &path, json!({"term": "REQ"})).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["requests"],
        "private and other teams' channels are not found"
    );
    assert_eq!(found[0]["type"], "O");
    assert_eq!(found[0]["display_name"], "Requests");
    let (_, found) = w.post_json(&w.bot, &path, json!({"term": "rand"})).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    // Without `list_team_channels` (not on the team): only the caller's own channels.
    let (status, found) = w.post_json(&outsider, &path, json!({"term": "r"})).await;
    assert_eq!((status, found), (200, json!([])));
    // A body that is not JSON is refused like the server does.
    let response = w
        .http
        .post(w.url(&path))
        .bearer_auth(&w.bot.token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_socket_that_never_answers_the_keep_alive_ping_is_dropped() {
    let w = world_with(SimConfig {
        websocket_ping_interval: Duration::from_millis(50),
        websocket_pong_wait: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    // Never read: tungstenite answers pings only while the socket is read.
    let _silent = connect(&w, &w.alice, "").await;
    wait_for_connections(&w.sim, 1).await;
    let started = std::time::Instant::now();
    let mut answering = connect(&w, &w.bot, "").await;
    // The reading client answers every ping and stays past the other's deadline.
    while w.sim.websocket_connections() != 1 {
        tokio::time::timeout(Duration::from_secs(5), answering.next())
            .await
            .expect("a frame in time")
            .expect("the socket stays open")
            .expect("no error");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the silent socket is dropped"
        );
    }
    assert!(w.sim.websocket_pongs() > 0);
}

#[tokio::test]
async fn a_create_sent_again_while_the_first_is_saving_is_refused_then_answered() {
    let w = world().await;
    let body =
        json!({"channel_id": w.channel, "message": "once", "pending_post_id": "bot:1234567890"});
    w.sim.hold_post_saves(true);
    let first = {
        let w_url = w.url("/posts");
        let http = w.http.clone();
        let token = w.bot.token.clone();
        let body = body.clone();
        tokio::spawn(async move {
            http.post(w_url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // The second one overlaps the first (which is waiting to be saved).
    for _ in 0..500 {
        if w.sim.posts_being_saved() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(w.sim.posts_being_saved(), 1);
    let again = w.post_json(&w.bot, "/posts", body.clone()).await;
    assert_eq!(again.0, 500);
    assert_eq!(again.1["id"], "api.post.deduplicate_create_post.pending");
    w.sim.hold_post_saves(false);
    assert_eq!(first.await.unwrap(), 201);
    let (status, post) = w.post_json(&w.bot, "/posts", body).await;
    assert_eq!(status, 201);
    let posts: Vec<Value> = w
        .sim
        .posts_in_channel(&w.channel)
        .into_iter()
        .filter(|p| p["message"] == "once")
        .collect();
    assert_eq!(posts.len(), 1, "one post");
    assert_eq!(posts[0]["id"], post["id"]);
}

#[tokio::test]
async fn archived_channels_take_members_but_not_posts_and_long_names_are_a_500() {
    let w = world().await;
    w.sim.make_system_admin(&w.bot.id);
    let (status, channel) = w
        .post_json(
            &w.bot,
            "/channels",
            json!({"team_id": w.team, "name": "to-archive", "display_name": "To archive", "type": "P"}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().unwrap().to_owned();
    let (status, _) = w
        .send(
            reqwest::Method::DELETE,
            &w.bot,
            &format!("/channels/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, member) = w
        .post_json(
            &w.bot,
            &format!("/channels/{id}/members"),
            json!({"user_id": w.alice.id}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    let (status, err) = w
        .post_json(&w.bot, "/posts", json!({"channel_id": id, "message": "hi"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["id"],
        "api.post.create_post.can_not_post_to_deleted.error"
    );

    let (status, err) = w
        .post_json(
            &w.bot,
            "/channels",
            json!({"team_id": w.team, "name": "a".repeat(65), "display_name": "Long", "type": "P"}),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(err["id"], "app.channel.create_channel.internal_error");
}
