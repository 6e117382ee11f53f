//! How chats end by themselves (`jobs::lifecycle`): the visitor gone before and after
//! acceptance, never while a widget is connected, race-free with a visitor coming back; the
//! reminder of a request nobody accepts; and a closed chat staying closed. The job is run
//! with an explicit `now` instead of waiting for real minutes.

use std::time::Duration;

use parley::{jobs::lifecycle, storage::now_ms};
use serde_json::{Value, json};

use crate::{
    helpers::live::{next_matching, open_live},
    helpers::{TestApp, VisitorChat, spawn_app, spawn_app_with, wait_until},
};

const MINUTE: i64 = 60_000;
/// The default `PARLEY_VISITOR_TIMEOUT_MINUTES`.
const TIMEOUT: i64 = 10 * MINUTE;
/// The default `PARLEY_REMIND_AFTER_MINUTES`.
const REMIND_AFTER: i64 = 3 * MINUTE;

/// One pass of the job, `ahead` ms from now.
async fn run_job_in(app: &TestApp, ahead: i64) -> lifecycle::Report {
    app.run_lifecycle_once(now_ms() + ahead).await
}

/// The chat's status as stored (asking the API would count as the visitor being here).
async fn stored_status(app: &TestApp, chat: &VisitorChat) -> String {
    app.chat(&chat.id).await.status
}

/// What Mattermost sends parley when someone clicks the request's Accept button: also a
/// click that was on its way while the request settled, or from a client that still shows
/// the button.
async fn click_accept_anyway(app: &TestApp, chat: &VisitorChat, post_id: &str) -> Value {
    let response = app
        .http
        .post(format!("{}/mattermost/actions", app.url))
        .json(&json!({
            "user_id": app.bob.id, "user_name": "bob", "post_id": post_id,
            "channel_id": app.requests_channel_id,
            "context": {
                "action": "accept", "chat_id": chat.id,
                "signature": app.accept_signature(&chat.id),
            }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The chat's channel, if parley ever created one.
fn channel_of(app: &TestApp, chat: &VisitorChat) -> Option<Value> {
    let purpose = format!("parley chat {}", chat.id);
    app.sim
        .channels_in_team(&app.team_id)
        .into_iter()
        .find(|c| c["purpose"].as_str() == Some(&purpose))
}

/// parley's reminders in the requests channel.
fn reminders(app: &TestApp) -> Vec<Value> {
    app.bot_posts(&app.requests_channel_id)
        .into_iter()
        .filter(|p| {
            p["message"]
                .as_str()
                .unwrap_or_default()
                .contains("has been waiting")
        })
        .collect()
}

#[tokio::test]
async fn a_visitor_gone_before_acceptance_settles_the_request_and_no_channel_is_ever_made() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("anyone there?").await;
    app.send(&chat, "hello?").await;
    let post_id = app.request_post(&chat).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Not yet: the visitor was here a moment ago.
    assert_eq!(run_job_in(&app, TIMEOUT - MINUTE).await.ended, 0);
    assert_eq!(stored_status(&app, &chat).await, "pending");

    let report = run_job_in(&app, TIMEOUT + MINUTE).await;
    assert_eq!(report.ended, 1);
    let settled = "the visitor left (no connection for 10 minutes) before anyone accepted";
    wait_until("the request post is settled", || async {
        app.sim.post(&post_id).unwrap()["message"]
            .as_str()
            .unwrap()
            .contains(settled)
    })
    .await;
    let post = app.sim.post(&post_id).unwrap();
    assert!(
        post["props"]["attachments"][0].get("actions").is_none(),
        "the button is gone: {post}"
    );
    let state = app.chat_state(&chat).await;
    assert_eq!(state["status"], "closed");
    let last = app.messages(&chat).await.pop().unwrap();
    assert_eq!(last["sender"], "system");
    assert_eq!(last["event"], "visitor_left");
    wait_until("the outbox drains", || app.outbox_empty()).await;

    // A click on its way meanwhile is refused, saying why, and leaves the post as it is.
    let answer = click_accept_anyway(&app, &chat, &post_id).await;
    let text = answer["ephemeral_text"].as_str().unwrap();
    assert!(
        text.contains("can no longer be accepted") && text.contains(settled),
        "{answer}"
    );
    assert!(
        answer["update"]["message"]
            .as_str()
            .unwrap()
            .contains(settled),
        "{answer}"
    );
    // The button itself no longer exists.
    let (status, _) = app.sim.click_button(&app.alice, &post_id, "accept").await;
    assert_ne!(status, 200);
    // Nothing was accepted, no channel was made, and none ever will be.
    let state = app.chat_state(&chat).await;
    assert_eq!(state["status"], "closed");
    assert!(state["operator"].is_null());
    wait_until("the outbox drains", || app.outbox_empty()).await;
    assert!(channel_of(&app, &chat).is_none());
}

#[tokio::test]
async fn a_visitor_gone_after_acceptance_is_announced_and_finds_the_chat_ended_on_return() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("quick question").await;
    let channel_id = app.accept(&chat, &app.alice).await;

    assert_eq!(run_job_in(&app, TIMEOUT + MINUTE).await.ended, 1);
    app.wait_for_bot_post(
        &channel_id,
        "The visitor left (no connection for 10 minutes).",
    )
    .await;

    // The widget coming back shows the end...
    let mut live = open_live(&app, &chat, 0).await;
    let ready = next_matching(&mut live, |v| v["type"] == "ready").await;
    assert_eq!(ready["chat"]["status"], "closed");
    next_matching(&mut live, |v| v["message"]["event"] == "visitor_left").await;
    // ...and cannot write in the chat.
    let refused = app.send(&chat, "I'm back").await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "chat_closed"
    );
    // It stays ended: later passes leave it alone.
    assert_eq!(
        run_job_in(&app, 10 * TIMEOUT).await,
        lifecycle::Report::default()
    );
    assert_eq!(stored_status(&app, &chat).await, "closed");
}

#[tokio::test]
async fn a_connected_widget_is_never_timed_out_and_the_timeout_counts_from_its_going() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("I'll wait").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    let mut live = open_live(&app, &chat, 0).await;
    next_matching(&mut live, |v| v["type"] == "ready").await;

    // However long the widget stays quiet, the instance holding its socket says it is here.
    let report = app.run_lifecycle_once(now_ms() + 6 * TIMEOUT).await;
    assert_eq!(report.ended, 0);
    assert!(report.present >= 1, "{report:?}");
    assert_eq!(stored_status(&app, &chat).await, "active");

    // Once a widget goes, the timeout counts from then.
    let other = app.start_simple_chat("someone else").await;
    let other_channel = app.accept(&other, &app.bob).await;
    let mut second = open_live(&app, &other, 0).await;
    next_matching(&mut second, |v| v["type"] == "ready").await;
    let going = now_ms();
    drop(second);
    wait_until("the socket's going is noted", || async {
        !app.has_live_socket(&other.id) && app.visitor_seen_at(&other.id).await >= going
    })
    .await;
    let seen = app.visitor_seen_at(&other.id).await;
    app.run_lifecycle_once(seen + TIMEOUT - 1_000).await;
    assert_eq!(stored_status(&app, &other).await, "active");
    app.run_lifecycle_once(seen + TIMEOUT + 1_000).await;
    assert_eq!(stored_status(&app, &other).await, "closed");
    app.wait_for_bot_post(&other_channel, "The visitor left")
        .await;
    // The first widget is still connected: its chat goes on.
    assert_eq!(stored_status(&app, &chat).await, "active");
    assert!(
        app.bot_posts(&channel_id)
            .iter()
            .all(|p| { !p["message"].as_str().unwrap_or_default().contains("left") })
    );
    drop(live);
}

#[tokio::test]
async fn the_server_ends_left_chats_by_itself_but_not_one_whose_widget_is_connected() {
    let app = spawn_app_with(|s| {
        s.visitor_timeout = Duration::from_millis(800);
        s.remind_after = None;
    })
    .await;
    let here = app.start_simple_chat("I stay").await;
    let mut live = open_live(&app, &here, 0).await;
    next_matching(&mut live, |v| v["type"] == "ready").await;
    let gone = app.start_simple_chat("I leave").await;

    wait_until("the left chat ends", || async {
        stored_status(&app, &gone).await == "closed"
    })
    .await;
    // Judged twice the timeout later, the connected one is still waiting for an operator.
    let report = app.run_lifecycle_once(now_ms() + 1600).await;
    assert_eq!(report.ended, 0);
    assert_eq!(stored_status(&app, &here).await, "pending");
    drop(live);
}

#[tokio::test]
async fn a_visitor_coming_back_at_the_moment_the_job_judges_keeps_the_chat() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("hello").await;
    app.request_post(&chat).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    // The job judges at a moment when the visitor has just been away for the timeout...
    let unseen_since = now_ms();
    let left = app.chats_left_since(unseen_since).await;
    assert!(left.contains(&chat.id));
    tokio::time::sleep(Duration::from_millis(5)).await;
    // ...and the widget reconnects before the job ends the chat.
    let mut live = open_live(&app, &chat, 0).await;
    let ready = next_matching(&mut live, |v| v["type"] == "ready").await;
    assert_eq!(ready["chat"]["status"], "pending");
    let ended = app.end_if_visitor_left(&chat, unseen_since).await;
    assert!(ended.is_none(), "the visitor came back: the chat stays");
    assert_eq!(stored_status(&app, &chat).await, "pending");

    // The other order: the job first, then the widget, which finds the chat ended.
    let late = app.start_simple_chat("hello again").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let unseen_since = now_ms();
    let ended = app.end_if_visitor_left(&late, unseen_since).await;
    assert!(ended.is_some());
    let mut live = open_live(&app, &late, 0).await;
    let ready = next_matching(&mut live, |v| v["type"] == "ready").await;
    assert_eq!(ready["chat"]["status"], "closed");
}

#[tokio::test]
async fn visitors_reconnecting_while_the_job_runs_keep_their_chat_or_see_it_end() {
    let app = spawn_app().await;
    let mut chats = Vec::new();
    for i in 0..12 {
        chats.push(app.start_simple_chat(&format!("question {i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let unseen_since = now_ms();
    let now = unseen_since + TIMEOUT;
    tokio::time::sleep(Duration::from_millis(5)).await;

    let reconnecting = futures_util::future::join_all(chats.iter().map(|chat| async {
        let mut ws = open_live(&app, chat, 0).await;
        let ready = next_matching(&mut ws, |v| v["type"] == "ready").await;
        (ws, ready)
    }));
    let (sockets, report) = tokio::join!(reconnecting, app.run_lifecycle_once(now));

    // Each chat is either kept (its visitor was seen in time) or ended, and then the widget
    // shows it ended: never a widget believing in a chat that is over.
    let mut ended = 0;
    for (chat, (mut ws, ready)) in chats.iter().zip(sockets) {
        if stored_status(&app, chat).await == "closed" {
            ended += 1;
            if ready["chat"]["status"] != "closed" {
                next_matching(&mut ws, |v| {
                    v["type"] == "chat" && v["chat"]["status"] == "closed"
                })
                .await;
            }
        } else {
            let seen = app.visitor_seen_at(&chat.id).await;
            assert!(seen >= unseen_since, "kept chats were seen in time");
        }
    }
    assert_eq!(ended, report.ended);
    let again = app.run_lifecycle_once(now).await;
    assert_eq!(again.ended, 0, "the chats kept stay open");
}

#[tokio::test]
async fn a_request_nobody_accepts_is_reminded_of_once_and_the_visitor_told_they_wait() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("anyone?").await;
    let post_id = app.request_post(&chat).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut live = open_live(&app, &chat, 0).await;
    let ready = next_matching(&mut live, |v| v["type"] == "ready").await;
    assert_eq!(ready["chat"]["visitor"]["name"], "Erika Visitor");
    assert_eq!(ready["chat"]["visitor"]["email"], "erika@example.com");

    assert_eq!(run_job_in(&app, REMIND_AFTER - MINUTE).await.reminded, 0);
    assert_eq!(run_job_in(&app, REMIND_AFTER + 1_000).await.reminded, 1);

    // The visitor hears at once that they are still in the queue.
    let waiting = next_matching(&mut live, |v| v["message"]["event"] == "still_waiting").await;
    assert_eq!(waiting["message"]["sender"], "system");
    assert!(
        waiting["message"]["text"]
            .as_str()
            .unwrap()
            .contains("leave a message")
    );
    // The requests channel is reminded with @here, in a post of its own linking the request.
    let reminder = app
        .wait_for_bot_post(&app.requests_channel_id, "has been waiting")
        .await;
    let text = reminder["message"].as_str().unwrap();
    assert!(text.starts_with("@here "), "{text}");
    assert!(text.contains("Erika Visitor"), "{text}");
    assert!(text.contains(&format!("/support/pl/{post_id})")), "{text}");
    assert_eq!(reminder["root_id"], "");

    // Once per chat, however often the job runs (the widget is connected: no timeout). No
    // second reminder is even queued.
    for minutes in [5, 8, 30] {
        let report = run_job_in(&app, minutes * MINUTE).await;
        assert_eq!((report.reminded, report.ended), (0, 0));
    }
    assert_eq!(reminders(&app).len(), 1);
    let notices = app.messages(&chat).await;
    let waiting = notices
        .iter()
        .filter(|m| m["event"] == "still_waiting")
        .count();
    assert_eq!(waiting, 1);

    // Leaving a message instead ends the chat (the widget then shows the offline form).
    app.close(&chat).await;
    wait_until("the request post is settled", || async {
        app.sim.post(&post_id).unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("left before anyone accepted")
    })
    .await;
}

#[tokio::test]
async fn the_reminder_may_leave_out_here_and_accepted_chats_get_none() {
    let app = spawn_app_with(|s| s.remind_with_here = false).await;
    let waiting = app.start_simple_chat("hello?").await;
    app.request_post(&waiting).await;
    let accepted = app.start_simple_chat("me too").await;
    app.accept(&accepted, &app.alice).await;

    let report = run_job_in(&app, REMIND_AFTER + 1_000).await;
    assert_eq!(report.reminded, 1, "only the request nobody accepted");
    let reminder = app
        .wait_for_bot_post(&app.requests_channel_id, "has been waiting")
        .await;
    let text = reminder["message"].as_str().unwrap();
    assert!(!text.contains("@here"), "{text}");
    assert!(text.starts_with(":hourglass: "), "{text}");
    assert_eq!(
        reminder["props"]["parley_chat_id"].as_str(),
        Some(waiting.id.as_str())
    );
}

#[tokio::test]
async fn no_reminder_when_switched_off() {
    let app = spawn_app_with(|s| s.remind_after = None).await;
    let chat = app.start_simple_chat("hello?").await;
    app.request_post(&chat).await;
    assert_eq!(run_job_in(&app, TIMEOUT - MINUTE).await.reminded, 0);
    assert!(reminders(&app).is_empty());
    assert!(
        !app.messages(&chat)
            .await
            .iter()
            .any(|m| m["event"] == "still_waiting")
    );
}

#[tokio::test]
async fn a_reminder_held_up_by_an_outage_is_dropped_if_the_chat_was_accepted_meanwhile() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("hello?").await;
    app.request_post(&chat).await;
    // The post is in Mattermost before parley has finished its task (it still reads the post's
    // reactions and records the delivery): going down before that left the request task
    // retrying ahead of the reminder, and the reminder was not reached in time. Left is the
    // first message, which waits for the chat's channel.
    wait_until("the request is delivered", || async {
        app.outbox_depth().await == 1
    })
    .await;
    app.sim.set_down(true);
    assert_eq!(run_job_in(&app, REMIND_AFTER + 1_000).await.reminded, 1);
    app.accept_as(&chat, &app.alice, "Alice Operator").await;
    // Still down: the reminder is dropped (that needs no Mattermost call). Left are the first
    // message and the new channel, which wait for Mattermost.
    wait_until("the reminder is dropped", || async {
        app.outbox_depth().await == 2
    })
    .await;
    app.sim.set_down(false);
    let channel_id = app.chat_channel(&chat).await;
    app.wait_for_bot_post(&channel_id, "hello?").await;
    wait_until("the outbox drains", || app.outbox_empty()).await;
    assert!(reminders(&app).is_empty(), "{:?}", reminders(&app));
}

#[tokio::test]
async fn a_closed_chat_stays_closed_and_a_new_one_can_start() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("first question").await;
    app.accept(&chat, &app.alice).await;
    assert_eq!(app.close(&chat).await.status(), 200);

    let refused = app.send(&chat, "one more thing").await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "chat_closed"
    );
    // Neither coming back nor time changes that, nor does it end twice.
    let mut live = open_live(&app, &chat, 0).await;
    let ready = next_matching(&mut live, |v| v["type"] == "ready").await;
    assert_eq!(ready["chat"]["status"], "closed");
    assert_eq!(
        run_job_in(&app, 10 * TIMEOUT).await,
        lifecycle::Report::default()
    );
    assert_eq!(app.close(&chat).await.status(), 200);
    let endings: Vec<Value> = app
        .messages(&chat)
        .await
        .into_iter()
        .filter(|m| m["sender"] == "system" && m["event"] != "accepted")
        .collect();
    assert_eq!(endings.len(), 1, "{endings:?}");
    assert_eq!(endings[0]["event"], "closed_by_visitor");
    assert_eq!(app.chat_state(&chat).await["status"], "closed");

    // A new chat starts afresh, with its own request.
    let next = app.start_simple_chat("a new question").await;
    assert_ne!(next.id, chat.id);
    assert_eq!(app.chat_state(&next).await["status"], "pending");
    let request = app.request_post(&next).await;
    assert_eq!(
        request["props"]["attachments"][0]["actions"][0]["id"],
        "accept"
    );
}
