//! The closed bridge's rule for events the application could not apply (docs/decisions.md
//! "The closed bridge"): a post that fails makes the event stream start afresh, and the
//! catch-up of the new connection applies it, once; a failed typing event is only logged and
//! the connection goes on.

use mattermost_sim::SimUser;

use crate::helpers::{TestApp, VisitorChat, spawn_app, wait_until};

/// An accepted chat, and a colleague parley has never seen (not in the requests channel, so
/// not polled for presence) in its channel: applying what she does asks Mattermost who she is.
async fn chat_with_a_stranger(app: &TestApp) -> (VisitorChat, String, SimUser) {
    let chat = app.start_simple_chat("hello").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    let carol = app.sim.create_user("carol", "Carol", "Jones");
    app.sim.add_team_member(&app.team_id, &carol.id);
    app.sim.add_channel_member(&channel_id, &carol.id);
    (chat, channel_id, carol)
}

/// How often parley listed a channel's posts (its catch-up after a fresh connection).
fn catch_ups(app: &TestApp, channel_id: &str) -> usize {
    let path = format!("/api/v4/channels/{channel_id}/posts");
    app.sim
        .request_log()
        .iter()
        .filter(|(method, p, _)| method == "GET" && *p == path)
        .count()
}

/// Whether parley's look-up of a user was answered `status`.
fn user_lookup_answered(app: &TestApp, user_id: &str, status: u16) -> bool {
    let path = format!("/api/v4/users/{user_id}");
    app.sim
        .request_log()
        .iter()
        .any(|(method, p, s)| method == "GET" && *p == path && *s == status)
}

#[tokio::test]
async fn a_post_that_could_not_be_applied_is_applied_by_the_catch_up_of_a_fresh_connection() {
    let app = spawn_app().await;
    let (chat, channel_id, carol) = chat_with_a_stranger(&app).await;
    let catch_ups_before = catch_ups(&app, &channel_id);

    // That look-up fails once (a proxy's bare 404): the post cannot be applied.
    app.sim
        .bare_404_next("GET", &format!("/api/v4/users/{}", carol.id), 1);
    app.sim
        .post_as(&carol, &channel_id, "written by carol")
        .await;

    app.wait_for_message(&chat, |m| m["text"] == "written by carol")
        .await;
    assert!(
        user_lookup_answered(&app, &carol.id, 404),
        "the first attempt failed"
    );
    assert!(
        catch_ups(&app, &channel_id) > catch_ups_before,
        "applied by the catch-up of a new connection, not resumed past"
    );
    let copies = app
        .messages(&chat)
        .await
        .iter()
        .filter(|m| m["text"] == "written by carol")
        .count();
    assert_eq!(copies, 1, "applied once");
}

#[tokio::test]
async fn a_typing_event_that_could_not_be_applied_does_not_end_the_connection() {
    let app = spawn_app().await;
    let (chat, channel_id, carol) = chat_with_a_stranger(&app).await;
    let catch_ups_before = catch_ups(&app, &channel_id);

    app.sim
        .bare_404_next("GET", &format!("/api/v4/users/{}", carol.id), 1);
    app.sim.typing_as(&carol, &channel_id);
    wait_until("parley tried to name who types", || async {
        user_lookup_answered(&app, &carol.id, 404)
    })
    .await;

    // Events are applied in order: once this post is through, the typing was handled.
    app.sim
        .post_as(&app.alice, &channel_id, "after the typing")
        .await;
    app.wait_for_message(&chat, |m| m["text"] == "after the typing")
        .await;
    assert_eq!(
        catch_ups(&app, &channel_id),
        catch_ups_before,
        "no fresh connection, so no catch-up"
    );
}
