//! One rule for removing a chat channel, whoever removes it (the back office's chat deletion,
//! the cleanup job): delete, else archive; a 404 with Mattermost's channel error id means the
//! channel is gone, a bare 404 (a proxy in front of the wrong path) is a failure, never "gone".

use parley::{app::accounts::Role, jobs::cleanup::Report, storage::cleanup::ChannelRemoval};

use crate::helpers::{
    TestApp, VisitorChat,
    backoffice::{audit, signed_in},
    wait_until,
};

/// A chat an operator accepted and the visitor ended, with everything parley had to post for
/// it delivered: its channel id and when it ended.
async fn ended_chat(app: &TestApp) -> (VisitorChat, String, i64) {
    let chat = app.start_simple_chat("please erase me later").await;
    let channel = app.accept(&chat, &app.alice).await;
    assert_eq!(app.close(&chat).await.status(), 200);
    app.wait_for_bot_post(&channel, "ended the chat").await;
    wait_until("the outbox is drained", || app.outbox_empty()).await;
    let row = app.chat(&chat.id).await;
    (
        chat,
        channel,
        row.closed_at.expect("an ended chat has closed_at"),
    )
}

/// The permanent deletion request for `channel`, and the archiving one.
fn delete_paths(channel: &str) -> [String; 2] {
    [
        format!("/api/v4/channels/{channel}?permanent=true"),
        format!("/api/v4/channels/{channel}"),
    ]
}

/// Deletes the chat in the back office and returns the audit entry's detail.
async fn delete_in_back_office(app: &TestApp, chat: &VisitorChat) -> String {
    // A manager of its own per deletion: an address can be invited once.
    let email = format!("m-{}@example.com", &chat.id[..8]);
    let agent = signed_in(app, &email, Role::Manager).await;
    let response = agent
        .submit(&format!("/admin/chats/{}/delete", chat.id), &[])
        .await;
    assert_eq!(response.status(), 303);
    assert!(app.chat_gone(&chat.id).await);
    audit(app)
        .await
        .into_iter()
        .find(|(action, _, detail)| action == "chat_deleted" && detail.starts_with(&chat.id))
        .expect("an audit entry")
        .2
}

#[tokio::test]
async fn the_back_office_never_counts_a_bare_404_as_a_gone_channel() {
    // At either step: the permanent deletion (allowed) and the archiving (deletion refused).
    for (deletion_allowed, step) in [(true, 0), (false, 1)] {
        let app = crate::helpers::spawn_app().await;
        app.sim
            .set_config(|c| c.enable_api_channel_deletion = deletion_allowed);
        let (chat, channel, _) = ended_chat(&app).await;
        app.sim
            .bare_404_next("DELETE", &delete_paths(&channel)[step], 1);

        let detail = delete_in_back_office(&app, &chat).await;

        assert!(
            detail.contains("channel not removed (") && !detail.contains("gone"),
            "a proxy's 404 is a failure (deletion allowed: {deletion_allowed}): {detail}"
        );
        assert!(
            app.sim.channel(&channel).is_some(),
            "the channel is still there"
        );
    }
}

#[tokio::test]
async fn the_back_office_says_what_became_of_the_channel() {
    // Mattermost's own 404 for a channel someone deleted: gone already.
    let app = crate::helpers::spawn_app().await;
    let (chat, channel, _) = ended_chat(&app).await;
    app.sim.delete_channel_permanently(&channel);
    let detail = delete_in_back_office(&app, &chat).await;
    assert!(detail.contains("channel was gone already"), "{detail}");

    // Permanent deletion refused: archived, or archived already (by someone else, or by the
    // cleanup job, whose record skips the archiving request).
    let app = crate::helpers::spawn_app().await;
    let (chat, channel, _) = ended_chat(&app).await;
    let detail = delete_in_back_office(&app, &chat).await;
    assert!(
        detail.contains("channel archived (permanent deletion is off)"),
        "{detail}"
    );
    assert_ne!(app.sim.channel(&channel).unwrap()["delete_at"], 0);

    let (chat, channel, closed_at) = ended_chat(&app).await;
    let report = app
        .run_cleanup_once(closed_at + app.settings().delete_after.as_millis() as i64)
        .await;
    assert_eq!(report.archived, 1, "{report}");
    let detail = delete_in_back_office(&app, &chat).await;
    assert!(
        detail.contains("channel was archived already (permanent deletion is off)"),
        "{detail}"
    );
    assert_ne!(app.sim.channel(&channel).unwrap()["delete_at"], 0);
}

#[tokio::test]
async fn the_cleanup_never_counts_a_bare_404_as_a_gone_channel() {
    for (deletion_allowed, step) in [(true, 0), (false, 1)] {
        let app = crate::helpers::spawn_app().await;
        app.sim
            .set_config(|c| c.enable_api_channel_deletion = deletion_allowed);
        let (chat, channel, closed_at) = ended_chat(&app).await;
        app.sim
            .bare_404_next("DELETE", &delete_paths(&channel)[step], 1);
        let now = closed_at + app.settings().delete_after.as_millis() as i64;
        let run = || app.run_cleanup_once(now);

        let report = run().await;

        assert_eq!(
            (report.failed, report.gone, report.deleted, report.archived),
            (1, 0, 0, 0),
            "deletion allowed: {deletion_allowed}: {report}"
        );
        assert!(report.is_failure());
        assert_eq!(app.channel_removal(&chat.id).await, None);
        assert_eq!(app.sim.channel(&channel).unwrap()["delete_at"], 0);

        // The next run removes it.
        let report = run().await;
        let expected = if deletion_allowed {
            Report {
                deleted: 1,
                ..Report::default()
            }
        } else {
            Report {
                archived: 1,
                deletion_disabled: true,
                ..Report::default()
            }
        };
        assert_eq!(report, expected);
        let recorded = if deletion_allowed {
            ChannelRemoval::Deleted
        } else {
            ChannelRemoval::Archived
        };
        assert_eq!(app.channel_removal(&chat.id).await, Some(recorded));
    }
}
