//! Races between a request post still on its way to Mattermost and what happens to its chat
//! meanwhile: the visitor ending the chat, an operator reacting to the post. The simulator
//! stores the post (and announces it) at once but holds its answer back.

use serde_json::Value;

use crate::helpers::{TestApp, VisitorChat, poll_until, spawn_app, wait_until};

/// Every post in the requests channel for the chat, edit copies and deleted ones left out.
fn request_posts(app: &TestApp, chat: &VisitorChat) -> Vec<Value> {
    app.sim
        .posts_in_channel(&app.requests_channel_id)
        .into_iter()
        .filter(|p| p["delete_at"].as_i64() == Some(0))
        .filter(|p| p["original_id"].as_str().unwrap_or_default().is_empty())
        .filter(|p| p["props"]["parley_chat_id"].as_str() == Some(&chat.id))
        .collect()
}

/// Whether parley has recorded the chat's request post.
async fn recorded_request_post(app: &TestApp, chat: &VisitorChat) -> bool {
    let row = app.chat(&chat.id).await;
    row.request_post_id.is_some()
}

/// Whether a post still offers an action (the Accept button).
fn has_button(post: &Value) -> bool {
    post["props"]["attachments"].as_array().is_some_and(|a| {
        a.iter()
            .any(|att| att["actions"].as_array().is_some_and(|x| !x.is_empty()))
    })
}

/// How the create of a chat's request post and the visitor ending the chat interleave.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// Ended while Mattermost was down: the post is made afterwards.
    EndedBeforeThePost,
    /// Ended after the post was made, before parley had the answer.
    EndedBeforeTheAnswer,
    /// ...and the answer is lost: the retry comes within Mattermost's 30-second memory.
    AnswerLost,
    /// ...and the retry comes later: parley looks for its post by key.
    AnswerLostRetriedLate,
    /// ...and meanwhile an operator clicked Accept on the post (which rewrites it, without
    /// parley's key) before the late retry.
    ClickedThenRetriedLate,
}

#[tokio::test]
async fn a_chat_ended_while_its_request_post_is_on_its_way_gets_one_settled_post() {
    let app = spawn_app().await;
    for order in [
        Order::EndedBeforeThePost,
        Order::EndedBeforeTheAnswer,
        Order::AnswerLost,
        Order::AnswerLostRetriedLate,
        Order::ClickedThenRetriedLate,
    ] {
        let chat = match order {
            Order::EndedBeforeThePost => {
                app.sim.set_down(true);
                let chat = app.start_simple_chat("hello? never mind").await;
                assert_eq!(app.close(&chat).await.status(), 200);
                app.sim.set_down(false);
                chat
            }
            _ => {
                app.sim.hold_post_answers(true);
                let chat = app.start_simple_chat("hello? never mind").await;
                let post_id = app.request_post(&chat).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                if matches!(
                    order,
                    Order::AnswerLostRetriedLate | Order::ClickedThenRetriedLate
                ) {
                    first_tried_a_minute_ago(&app, &chat).await;
                }
                assert_eq!(app.close(&chat).await.status(), 200);
                if matches!(order, Order::ClickedThenRetriedLate) {
                    let (status, _) = app.sim.click_button(&app.bob, &post_id, "accept").await;
                    assert_eq!(status, 200);
                }
                let lose = !matches!(order, Order::EndedBeforeTheAnswer);
                let lost_before = lost_answers(&app);
                app.sim.lose_post_answers(lose);
                app.sim.hold_post_answers(false);
                if lose {
                    wait_until("the create's answer is lost", || async {
                        lost_answers(&app) > lost_before
                    })
                    .await;
                    app.sim.lose_post_answers(false);
                }
                chat
            }
        };
        wait_until(
            &format!("{order:?}: the request post is settled"),
            || async {
                let posts = request_posts(&app, &chat);
                recorded_request_post(&app, &chat).await
                    && posts.iter().all(|p| !has_button(p))
                    && posts.iter().any(|p| {
                        p["message"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("left before anyone accepted")
                    })
            },
        )
        .await;
        wait_until("the outbox drains", || app.outbox_empty()).await;
        let posts = request_posts(&app, &chat);
        assert_eq!(
            posts.len(),
            1,
            "{order:?}: exactly one request post: {posts:#?}"
        );
        assert!(!has_button(&posts[0]), "{order:?}: no live Accept button");
        let row = app.chat(&chat.id).await;
        assert_eq!(
            row.request_post_id.as_deref(),
            posts[0]["id"].as_str(),
            "{order:?}: parley knows its request post"
        );
        if matches!(order, Order::EndedBeforeThePost) {
            // Made after the chat ended, the post never offered the button, not even for
            // the moment before its update (the simulator keeps every earlier version).
            let every_version = app
                .sim
                .posts_in_channel(&app.requests_channel_id)
                .into_iter()
                .chain(app.sim.edit_copies_in_channel(&app.requests_channel_id))
                .filter(|p| p["props"]["parley_chat_id"].as_str() == Some(&chat.id))
                .collect::<Vec<_>>();
            assert!(
                every_version.iter().all(|p| !has_button(p)),
                "a chat that ended first never gets a live Accept button: {every_version:#?}"
            );
        }
    }
}

/// Answers to parley's creates that the simulator lost so far.
fn lost_answers(app: &TestApp) -> usize {
    app.sim
        .request_log()
        .iter()
        .filter(|(m, p, s)| m == "POST" && p == "/api/v4/posts" && *s == 504)
        .count()
}

#[tokio::test]
async fn a_reaction_before_parley_has_recorded_the_request_post_accepts_the_chat() {
    let app = spawn_app().await;
    // A chat whose request post parley knows: its acceptance shows when parley has handled
    // the reaction events before it (they are applied in order).
    let marker = app.start_simple_chat("first visitor").await;
    let marker_post = app.request_post(&marker).await;
    wait_until("parley has recorded the first request post", || {
        recorded_request_post(&app, &marker)
    })
    .await;

    app.sim.hold_post_answers(true);
    let chat = app.start_simple_chat("second visitor").await;
    let post_id = app.request_post(&chat).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sim
        .react_as(&app.alice, &post_id, "white_check_mark")
        .await;
    app.sim
        .react_as(
            &app.bob,
            marker_post["id"].as_str().unwrap(),
            "white_check_mark",
        )
        .await;
    wait_until("the first chat is accepted", || async {
        app.chat_state(&marker).await["status"] == "active"
    })
    .await;
    // Alice's reaction event came and went while parley still waited for the create answer.
    assert_eq!(app.chat_state(&chat).await["status"], "pending");
    app.sim.hold_post_answers(false);

    wait_until("the second chat is accepted by Alice", || async {
        let state = app.chat_state(&chat).await;
        state["status"] == "active" && state["operator"]["name"] == "Alice Operator"
    })
    .await;
    wait_until("the request post says so", || async {
        app.sim.post(&post_id).unwrap()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("accepted by @alice")
    })
    .await;
}

/// Makes the chat's request post task look as if its first try was a minute ago: a retry then
/// looks for the post by its key before creating it (past Mattermost's 30-second memory of
/// `pending_post_id`). Set before the first failure is recorded, which keeps it.
async fn first_tried_a_minute_ago(app: &TestApp, chat: &VisitorChat) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&app.database_url())
        .await
        .unwrap();
    let a_minute_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let done = sqlx::query(
        "UPDATE outbox SET first_attempt_at = $1 WHERE chat_id = $2 AND kind = 'request_post'",
    )
    .bind(a_minute_ago)
    .bind(&chat.id)
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_retried_request_post_is_found_again_after_an_edit_not_its_old_copy() {
    let app = spawn_app().await;
    app.sim.hold_post_answers(true);
    let chat = app.start_simple_chat("take me").await;
    let post_id = app.request_post(&chat).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    first_tried_a_minute_ago(&app, &chat).await;
    // Accepted while the create's answer is on its way: the click rewrites the post, and the
    // server keeps the old version (with parley's key) as a soft-deleted copy.
    let (status, _) = app.sim.click_button(&app.alice, &post_id, "accept").await;
    assert_eq!(status, 200);
    assert_eq!(
        app.sim
            .edit_copies_in_channel(&app.requests_channel_id)
            .len(),
        1
    );
    // ...and the answer is lost: parley tries again and looks for its post by key.
    app.sim.lose_post_answers(true);
    app.sim.hold_post_answers(false);
    wait_until("the create's answer is lost", || async {
        lost_answers(&app) > 0
    })
    .await;
    app.sim.lose_post_answers(false);

    wait_until("parley records the request post", || {
        recorded_request_post(&app, &chat)
    })
    .await;
    let chat_row = app.chat(&chat.id).await;
    assert_eq!(
        chat_row.request_post_id.as_deref(),
        Some(post_id.as_str()),
        "the post itself, not the copy of its old version"
    );
    assert_eq!(
        request_posts(&app, &chat).len(),
        1,
        "no second request post"
    );
}

#[tokio::test]
async fn a_retry_that_overlaps_a_create_still_being_saved_doubles_nothing() {
    let app = spawn_app().await;
    // The server takes longer to save the request post than parley waits for an answer (15 s):
    // parley tries again with the same pending_post_id and is refused while the first is saving.
    app.sim.hold_post_saves(true);
    let chat = app.start_simple_chat("slow server").await;
    let refused = || {
        app.sim
            .request_log()
            .iter()
            .any(|(m, p, s)| m == "POST" && p == "/api/v4/posts" && *s == 500)
    };
    poll_until(
        "parley's retry overlaps the first create",
        std::time::Duration::from_secs(60),
        || async { refused().then_some(()) },
    )
    .await;
    assert_eq!(app.sim.posts_being_saved(), 1);
    app.sim.hold_post_saves(false);

    wait_until("parley records the request post", || {
        recorded_request_post(&app, &chat)
    })
    .await;
    let posts = request_posts(&app, &chat);
    assert_eq!(posts.len(), 1, "one request post: {posts:#?}");
    let row = app.chat(&chat.id).await;
    assert_eq!(row.request_post_id.as_deref(), posts[0]["id"].as_str());
}

#[tokio::test]
async fn a_click_before_parley_has_recorded_the_request_post_accepts_the_chat() {
    let app = spawn_app().await;
    app.sim.hold_post_answers(true);
    let chat = app.start_simple_chat("first visitor").await;
    let other = app.start_simple_chat("second visitor").await;
    let post = app.request_post(&chat).await;
    let post_id = post["id"].as_str().unwrap().to_owned();
    let other_post_id = app.request_post(&other).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!recorded_request_post(&app, &chat).await);

    // The chat's signed context with another chat's request post, or a post that does not
    // exist, is refused although parley has no post id to compare with yet: Mattermost says
    // which chat a post belongs to.
    let context = post["props"]["attachments"][0]["actions"][0]["integration"]["context"].clone();
    for wrong in [other_post_id.as_str(), "0123456789abcdefghijklmnop", ""] {
        let body = serde_json::json!({
            "user_id": app.alice.id, "post_id": wrong, "context": context,
            "channel_id": app.requests_channel_id,
        });
        let response = app
            .http
            .post(format!("{}/mattermost/actions", app.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{wrong}");
        assert_eq!(app.chat_state(&chat).await["status"], "pending", "{wrong}");
    }

    // Mattermost's own click on the post accepts at once.
    let (status, _) = app.sim.click_button(&app.alice, &post_id, "accept").await;
    assert_eq!(status, 200);
    let state = app.chat_state(&chat).await;
    assert_eq!(state["status"], "active", "{state}");
    assert_eq!(state["operator"]["name"], "Alice Operator");
    assert_eq!(app.chat_state(&other).await["status"], "pending");

    app.sim.hold_post_answers(false);
    let channel_id = app.chat_channel(&chat).await;
    wait_until("Alice is in the chat channel", || async {
        app.sim.channel_members(&channel_id).contains(&app.alice.id)
    })
    .await;
}
