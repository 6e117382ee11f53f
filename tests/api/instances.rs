//! Several instances on one PostgreSQL database (PostgreSQL only: skipped without
//! `PARLEY_TEST_DATABASE_URL`; `./scripts/test-postgres` runs it). Two instances share the
//! database, the data directory and the Mattermost simulator; the visitor is on the one that
//! does not lead; traffic goes through both; the leader is stopped mid-stream, and the other
//! takes over. Every message must arrive exactly once, in order, both ways.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{VisitorChat, spawn_app, wait_until};

/// Messages each way before the leader stops, and after.
const BEFORE: usize = 8;
const AFTER: usize = 8;

async fn send(http: &reqwest::Client, base: &str, chat: &VisitorChat, text: &str) {
    let response = http
        .post(format!("{base}/api/v1/chats/{}/messages", chat.id))
        .bearer_auth(&chat.token)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "sending {text} to {base}");
}

/// The numbered tokens (`visitor-07`) found in `texts`, in order.
fn tokens<'a>(texts: impl IntoIterator<Item = &'a str>, prefix: &str) -> Vec<String> {
    texts
        .into_iter()
        .flat_map(|t| t.split(|c: char| !(c.is_alphanumeric() || c == '-')))
        .filter(|w| w.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

#[tokio::test]
async fn two_instances_serve_any_visitor_and_the_leader_hands_over() {
    if std::env::var_os("PARLEY_TEST_DATABASE_URL").is_none() {
        eprintln!(
            "skipped: several instances need PostgreSQL; set PARLEY_TEST_DATABASE_URL or run \
             ./scripts/test-postgres"
        );
        return;
    }
    // A leads (it started first); B follows and knows Mattermost's state from A.
    let mut a = spawn_app().await;
    wait_until("A leads", || async { a.leads() }).await;
    // A second instance on A's database, data directory and simulator.
    let mut b = a.another_instance().await;
    wait_until("B is online through the leader's state", || async {
        b.is_online()
    })
    .await;
    assert!(!b.leads(), "only one instance leads");
    let status: Value = a
        .http
        .get(format!("{}/api/v1/status", b.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["online"], true,
        "a follower answers /status: {status}"
    );

    // The visitor is on B; the request goes out through A's outbox; Alice accepts.
    let http = reqwest::Client::new();
    let chat = b
        .start_chat(json!({"name": "Erika Visitor", "email": "erika@example.com", "message": "Hello from B"}))
        .await;
    let channel = a.accept(&chat, &a.alice).await;

    let ws_url = format!(
        "{}/api/v1/chats/{}/live",
        b.url.replace("http://", "ws://"),
        chat.id
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let auth = json!({"type": "auth", "token": chat.token, "after": 0}).to_string();
    ws.send(Message::Text(auth.into())).await.unwrap();

    // Typing both ways crosses instances: B's visitor to A's event stream, and back.
    let typing = json!({"type": "typing"}).to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a
        .sim
        .typing_events()
        .iter()
        .any(|e| e.to_string().contains(&channel))
    {
        assert!(
            Instant::now() < deadline,
            "the visitor's typing reaches Mattermost through the leader"
        );
        ws.send(Message::Text(typing.clone().into())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    a.sim.typing_as(&a.alice, &channel);
    crate::helpers::live::next_matching(&mut ws, |f| f["type"] == "typing").await;

    // Traffic through both instances, both ways.
    for i in 0..BEFORE {
        let via = if i % 2 == 0 { &a.url } else { &b.url };
        send(&http, via, &chat, &format!("visitor-{i:02}")).await;
        a.sim
            .post_as(&a.alice, &channel, &format!("operator-{i:02}"))
            .await;
    }
    // The leader goes away mid-stream: its jobs stop and its connections close.
    let stopped = Instant::now();
    a.stop().await;
    assert!(
        a.database_closed().await,
        "the stopped instance's database connections are closed"
    );
    for i in BEFORE..BEFORE + AFTER {
        send(&http, &b.url, &chat, &format!("visitor-{i:02}")).await;
        a.sim
            .post_as(&a.alice, &channel, &format!("operator-{i:02}"))
            .await;
    }
    wait_until("B takes over", || async { b.leads() }).await;
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(5), "took over in {took:?}");

    // Mattermost got every visitor message once, in order.
    let total = BEFORE + AFTER;
    let relayed = || {
        let posts = a.bot_posts(&channel);
        tokens(
            posts
                .iter()
                .map(|p| p["message"].as_str().unwrap_or_default()),
            "visitor-",
        )
    };
    wait_until("every visitor message is posted", || {
        let done = relayed().len() >= total;
        async move { done }
    })
    .await;
    assert_eq!(
        relayed(),
        numbered("visitor-", total),
        "posted once, in order"
    );

    // The visitor's socket on B got every message once, in order, both ways.
    let mut frames: Vec<Value> = Vec::new();
    let seen = |frames: &[Value], prefix: &str| {
        tokens(
            frames
                .iter()
                .filter(|f| f["type"] == "message")
                .map(|f| f["message"]["text"].as_str().unwrap_or_default()),
            prefix,
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while seen(&frames, "operator-").len() < total || seen(&frames, "visitor-").len() < total {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("every message reaches the socket; got {frames:?}"))
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = frame {
            frames.push(serde_json::from_str(t.as_str()).unwrap());
        }
    }
    // A moment more: nothing doubled arrives late.
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_millis(500), ws.next()).await
    {
        if let Message::Text(t) = frame {
            frames.push(serde_json::from_str(t.as_str()).unwrap());
        }
    }
    assert_eq!(seen(&frames, "visitor-"), numbered("visitor-", total));
    assert_eq!(seen(&frames, "operator-"), numbered("operator-", total));
    let ids: Vec<i64> = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["message"]["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend: {ids:?}");

    // The transcript, read on B, has each message once, too.
    let body: Value = http
        .get(format!(
            "{}/api/v1/chats/{}/messages?after=0",
            b.url, chat.id
        ))
        .bearer_auth(&chat.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        tokens(texts.clone(), "visitor-"),
        numbered("visitor-", total)
    );
    assert_eq!(tokens(texts, "operator-"), numbered("operator-", total));

    // The new leader runs the event stream: an edit reaches the socket.
    let last = a
        .sim
        .posts_in_channel(&channel)
        .into_iter()
        .rfind(|p| p["message"].as_str() == Some("operator-00"))
        .unwrap();
    a.sim
        .edit_post_as(
            &a.alice,
            last["id"].as_str().unwrap(),
            "operator-00 (edited)",
        )
        .await;
    crate::helpers::live::next_matching(&mut ws, |f| f["type"] == "message_updated").await;

    b.stop().await;
}

#[tokio::test]
async fn sockets_catch_up_after_the_event_listener_reconnects() {
    use sqlx::Connection as _;

    if std::env::var_os("PARLEY_TEST_DATABASE_URL").is_none() {
        eprintln!(
            "skipped: the event listener exists with PostgreSQL only; set \
             PARLEY_TEST_DATABASE_URL or run ./scripts/test-postgres"
        );
        return;
    }
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello").await;
    let channel = app.accept(&chat, &app.alice).await;
    let mut ws = crate::helpers::live::open_live(&app, &chat, 0).await;
    crate::helpers::live::next_matching(&mut ws, |f| f["type"] == "ready").await;

    // The listening connection goes away (a network cut, a restarted pooler)...
    let mut admin = sqlx::PgConnection::connect(&app.database_url())
        .await
        .unwrap();
    let ended: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the listener's connection was found");
    admin.close().await.unwrap();

    // ...and what happens meanwhile still reaches the socket, once.
    app.sim.post_as(&app.alice, &channel, "operator-00").await;
    let got = crate::helpers::live::next_matching(&mut ws, |f| {
        f["type"] == "message" && f["message"]["text"] == "operator-00"
    })
    .await;
    app.sim.post_as(&app.alice, &channel, "operator-01").await;
    let next = crate::helpers::live::next_matching(&mut ws, |f| f["type"] == "message").await;
    assert_eq!(next["message"]["text"], "operator-01", "nothing doubled");
    assert!(next["message"]["id"].as_i64() > got["message"]["id"].as_i64());
}
