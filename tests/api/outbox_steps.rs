//! The outbox as a step (`jobs::outbox::drain_until_idle`): a drain does all delivery work
//! that is due, in order, and returns once it is recorded, through the running worker or,
//! without one, by passes of its own; work waiting out a backoff stays waiting.

use std::time::Duration;

use crate::helpers::{TestApp, VisitorChat, spawn_app, spawn_app_with, wait_until};

/// The bot's posts in a channel that contain `prefix`, from it on, oldest first.
fn relayed(app: &TestApp, channel_id: &str, prefix: &str) -> Vec<String> {
    app.bot_posts(channel_id)
        .iter()
        .filter_map(|p| {
            let m = p["message"].as_str()?;
            Some(m[m.find(prefix)?..].to_owned())
        })
        .collect()
}

/// The chat's request post, if parley has made it (no waiting).
fn request_post_now(app: &TestApp, chat: &VisitorChat) -> Option<serde_json::Value> {
    app.sim
        .posts_in_channel(&app.requests_channel_id)
        .into_iter()
        .find(|p| p["props"]["parley_chat_id"].as_str() == Some(&chat.id))
}

/// The chat's channel id, if parley has made it (no waiting).
fn chat_channel_now(app: &TestApp, chat: &VisitorChat) -> Option<String> {
    let purpose = format!("parley chat {}", chat.id);
    app.sim
        .channels_in_team(&app.team_id)
        .into_iter()
        .find(|c| c["purpose"].as_str() == Some(&purpose))
        .map(|c| c["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_drain_delivers_everything_due_in_order_and_returns_once_it_is_recorded() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("first").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    // A slow Mattermost: the tasks are still being delivered when the drain is asked for.
    app.sim.set_delay(Duration::from_millis(30));
    let expected: Vec<String> = (0..40).map(|i| format!("step-{i:02}")).collect();
    for text in &expected {
        assert_eq!(app.send(&chat, text).await.status(), 201);
    }
    // More than one lane's worth of tasks (16), delivered and recorded by the time it returns.
    app.drain_outbox().await;
    assert!(app.outbox_empty().await, "nothing left undelivered");
    assert_eq!(relayed(&app, &channel_id, "step-"), expected);
}

#[tokio::test]
async fn a_drain_leaves_a_delivery_that_waits_out_a_backoff() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("first").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    app.drain_outbox().await;

    app.sim.set_down(true);
    assert_eq!(app.send(&chat, "during the outage").await.status(), 201);
    app.wait_for_failed_delivery().await;
    // Returns although the task is not delivered: it is not due until its retry.
    app.drain_outbox().await;
    assert!(!app.outbox_empty().await);
    assert!(relayed(&app, &channel_id, "during the outage").is_empty());

    app.sim.set_down(false);
    wait_until("the outbox drains after the outage", || app.outbox_empty()).await;
    app.drain_outbox().await;
    assert_eq!(relayed(&app, &channel_id, "during the outage").len(), 1);
}

#[tokio::test]
async fn without_the_worker_a_drain_delivers_by_passes_of_its_own() {
    let app = spawn_app_with(|s| s.run_background_jobs = false).await;
    // What the jobs would have done at start: the connection resolved, an operator present.
    app.poll_presence().await;
    let chat = app.start_simple_chat("nobody runs the outbox").await;
    assert!(request_post_now(&app, &chat).is_none(), "no worker here");

    app.drain_outbox().await;
    // (The first message waits in the outbox for the chat's channel.)
    let post = request_post_now(&app, &chat).expect("the request post is made by the drain");

    let (status, _) = app
        .sim
        .click_button(&app.alice, post["id"].as_str().unwrap(), "accept")
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.send(&chat, "after the accept").await.status(), 201);
    assert!(
        chat_channel_now(&app, &chat).is_none(),
        "nothing happens by itself"
    );

    // The channel first, then (in a later pass) what waited for it.
    app.drain_outbox().await;
    let channel_id = chat_channel_now(&app, &chat).expect("the chat channel is made");
    assert!(app.sim.channel_members(&channel_id).contains(&app.alice.id));
    assert_eq!(
        relayed(&app, &channel_id, "after the accept"),
        ["after the accept"]
    );
    assert!(app.outbox_empty().await);
}
