//! Cleanup of chat channels: permanent deletion when Mattermost allows it, archiving (with
//! advice) when it does not, idempotence, the `parley archive` command and the server's
//! schedule.

use std::{process::Output, time::Duration};

use parley::{jobs::cleanup::Report, storage::cleanup::ChannelRemoval};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, VisitorChat, binary, spawn_app, spawn_app_with, wait_until};

/// A chat an operator accepted and the visitor ended, once everything parley had to post for
/// it (the closing notice included) is delivered.
struct EndedChat {
    chat: VisitorChat,
    channel_id: String,
    channel_name: String,
    closed_at: i64,
}

async fn ended_chat(app: &TestApp, text: &str) -> EndedChat {
    let chat = app.start_simple_chat(text).await;
    let channel_id = app.accept(&chat, &app.alice).await;
    assert_eq!(app.close(&chat).await.status(), 200);
    app.wait_for_bot_post(&channel_id, "ended the chat").await;
    wait_until("the outbox is drained", || app.outbox_empty()).await;
    let row = app.chat(&chat.id).await;
    EndedChat {
        chat,
        channel_name: row.channel_name.unwrap(),
        closed_at: row.closed_at.expect("an ended chat has closed_at"),
        channel_id,
    }
}

/// One cleanup run as the server would do it at `now` (ms), with the app's delay (24 h).
async fn run_at(app: &TestApp, now: i64) -> Report {
    app.run_cleanup_once(now).await
}

/// The moment `ended` has been over for exactly the configured delay.
fn delay_later(app: &TestApp, ended: &EndedChat) -> i64 {
    ended.closed_at + app.settings().delete_after.as_millis() as i64
}

fn deletes_sent(app: &TestApp) -> usize {
    app.sim
        .request_log()
        .iter()
        .filter(|(method, path, _)| method == "DELETE" && path.starts_with("/api/v4/channels/"))
        .count()
}

async fn removal(app: &TestApp, chat: &VisitorChat) -> Option<ChannelRemoval> {
    app.channel_removal(&chat.id).await
}

fn is_chat_channel_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    matches!(parts.as_slice(), ["chat", id, suffix]
        if id.len() == 8 && suffix.len() == 6
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
}

#[tokio::test]
async fn channels_of_chats_ended_long_enough_ago_are_deleted_permanently() {
    let app = spawn_app().await;
    assert_eq!(
        app.settings().delete_after,
        Duration::from_secs(24 * 3600),
        "the default delay"
    );
    app.sim.set_config(|c| c.enable_api_channel_deletion = true);
    let old = ended_chat(&app, "an old question").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let recent = ended_chat(&app, "a recent question").await;
    assert!(recent.closed_at > old.closed_at);
    let active = app.start_simple_chat("still talking").await;
    let active_channel = app.accept(&active, &app.alice).await;

    // The moment the old chat has been over for 24 hours, the recent one not quite.
    let now = delay_later(&app, &old);
    let report = run_at(&app, now).await;
    assert_eq!(
        report,
        Report {
            deleted: 1,
            ..Report::default()
        }
    );
    assert!(!report.is_failure());
    assert!(report.advice().is_none());
    assert!(
        app.sim.channel(&old.channel_id).is_none(),
        "deleted for good"
    );
    assert!(
        app.sim
            .channel_by_name(&app.team_id, &old.channel_name)
            .is_none(),
        "its name is free again"
    );
    assert_eq!(
        removal(&app, &old.chat).await,
        Some(ChannelRemoval::Deleted)
    );
    for channel in [&recent.channel_id, &active_channel] {
        assert_eq!(app.sim.channel(channel).unwrap()["delete_at"], 0);
    }
    assert_eq!(removal(&app, &recent.chat).await, None);

    // Running again changes nothing and asks Mattermost nothing.
    let before = deletes_sent(&app);
    assert_eq!(run_at(&app, now).await, Report::default());
    assert_eq!(deletes_sent(&app), before);

    // A day after the recent chat ended, its channel goes too; the active chat's never.
    let report = run_at(&app, delay_later(&app, &recent) + 3_600_000).await;
    assert_eq!(report.deleted, 1);
    assert!(app.sim.channel(&recent.channel_id).is_none());
    assert_eq!(app.sim.channel(&active_channel).unwrap()["delete_at"], 0);

    // Every chat gets a name of its own (`chat-<id8>-<random6>`), so a visitor's next chat
    // never collides with the channel of an earlier one, deleted or archived.
    let active_name = app.sim.channel(&active_channel).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    for name in [&old.channel_name, &recent.channel_name, &active_name] {
        assert!(is_chat_channel_name(name), "{name}");
    }
    assert_ne!(old.channel_name, recent.channel_name);
    assert_ne!(recent.channel_name, active_name);
}

#[tokio::test]
async fn without_permanent_deletion_channels_are_archived_until_the_admin_allows_it() {
    let app = spawn_app().await; // EnableAPIChannelDeletion is off, as on a stock server
    let first = ended_chat(&app, "first").await;
    let second = ended_chat(&app, "second").await;
    let now = delay_later(&app, &second);

    let before = deletes_sent(&app);
    let report = run_at(&app, now).await;
    assert_eq!(
        (report.deleted, report.archived, report.gone, report.failed),
        (0, 2, 0, 0)
    );
    assert!(report.deletion_disabled);
    assert!(!report.is_failure(), "archiving instead is not a failure");
    let summary = report.to_string();
    assert!(
        summary.starts_with("deleted 0, archived 2, already gone 0, failed 0"),
        "{summary}"
    );
    assert!(
        summary.contains("ServiceSettings.EnableAPIChannelDeletion")
            && summary.contains("config.json"),
        "the summary says which setting to change: {summary}"
    );
    assert_eq!(
        summary.matches("EnableAPIChannelDeletion is off").count(),
        1,
        "said once per run: {summary}"
    );
    assert_eq!(
        deletes_sent(&app) - before,
        3,
        "one refused permanent deletion, then two archives"
    );
    for ended in [&first, &second] {
        let channel = app
            .sim
            .channel(&ended.channel_id)
            .expect("archived, not gone");
        assert_ne!(channel["delete_at"], 0);
        assert_eq!(
            removal(&app, &ended.chat).await,
            Some(ChannelRemoval::Archived)
        );
    }

    // Later runs try once whether deletion is allowed now, and leave the archives alone.
    let before = deletes_sent(&app);
    let report = run_at(&app, now).await;
    assert_eq!(
        (report.deleted, report.archived, report.still_archived),
        (0, 0, 2)
    );
    assert!(report.deletion_disabled && !report.is_failure());
    assert_eq!(deletes_sent(&app) - before, 1);

    // The admin enables the setting: the archived channels are deleted on the next run.
    app.sim.set_config(|c| c.enable_api_channel_deletion = true);
    let report = run_at(&app, now).await;
    assert_eq!(
        report,
        Report {
            deleted: 2,
            ..Report::default()
        }
    );
    for ended in [&first, &second] {
        assert!(app.sim.channel(&ended.channel_id).is_none());
        assert_eq!(
            removal(&app, &ended.chat).await,
            Some(ChannelRemoval::Deleted)
        );
    }
    assert_eq!(run_at(&app, now).await, Report::default());
}

#[tokio::test]
async fn channels_removed_in_mattermost_meanwhile_count_as_done() {
    let app = spawn_app().await;
    let purged = ended_chat(&app, "purged by an admin").await;
    let archived = ended_chat(&app, "archived by an operator").await;
    let delete_as_alice = |channel_id: &str, permanent: bool| {
        let url = format!(
            "{}/api/v4/channels/{channel_id}{}",
            app.sim.url(),
            if permanent { "?permanent=true" } else { "" }
        );
        app.http.delete(url).bearer_auth(&app.alice.token).send()
    };
    app.sim.set_config(|c| c.enable_api_channel_deletion = true);
    let response = delete_as_alice(&purged.channel_id, true).await.unwrap();
    assert_eq!(response.status(), 200);
    app.sim
        .set_config(|c| c.enable_api_channel_deletion = false);
    let response = delete_as_alice(&archived.channel_id, false).await.unwrap();
    assert_eq!(response.status(), 200);

    let now = delay_later(&app, &archived);
    let report = run_at(&app, now).await;
    assert_eq!(
        (report.deleted, report.archived, report.gone, report.failed),
        (0, 1, 1, 0),
        "{report}"
    );
    assert!(!report.is_failure());
    assert_eq!(
        removal(&app, &purged.chat).await,
        Some(ChannelRemoval::Gone)
    );
    assert_eq!(
        removal(&app, &archived.chat).await,
        Some(ChannelRemoval::Archived)
    );

    app.sim.set_config(|c| c.enable_api_channel_deletion = true);
    let report = run_at(&app, now).await;
    assert_eq!(
        report,
        Report {
            deleted: 1,
            ..Report::default()
        }
    );
    assert!(app.sim.channel(&archived.channel_id).is_none());
    assert_eq!(
        removal(&app, &purged.chat).await,
        Some(ChannelRemoval::Gone)
    );
}

/// Runs the real `parley archive` against the app's database and simulator.
async fn parley_archive(app: &TestApp, mattermost: bool) -> Output {
    let mut command = binary::parley_on(app, &["archive"]);
    command.env("PARLEY_DELETE_AFTER_HOURS", "0");
    if mattermost {
        binary::with_mattermost(&mut command, app);
    }
    binary::output(&mut command).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn parley_archive_prints_a_summary_and_fails_only_on_real_failures() {
    let app = spawn_app().await;
    let ended = ended_chat(&app, "for the cron job").await;
    let active = app.start_simple_chat("still talking").await;
    let active_channel = app.accept(&active, &app.alice).await;

    // Permanent deletion refused: archived, exit 0, and the summary says what to change.
    let output = parley_archive(&app, true).await;
    let printed = stdout(&output);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("deleted 0, archived 1, already gone 0, failed 0"),
        "{printed}"
    );
    assert!(
        printed.contains("ServiceSettings.EnableAPIChannelDeletion"),
        "{printed}"
    );
    assert_ne!(app.sim.channel(&ended.channel_id).unwrap()["delete_at"], 0);
    assert_eq!(app.sim.channel(&active_channel).unwrap()["delete_at"], 0);

    // Mattermost down: a real failure.
    app.sim.set_down(true);
    let output = parley_archive(&app, true).await;
    app.sim.set_down(false);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("failed 1"),
        "the summary is printed anyway: {}",
        stdout(&output)
    );

    // Deletion allowed now: the archived channel goes for good.
    app.sim.set_config(|c| c.enable_api_channel_deletion = true);
    let output = parley_archive(&app, true).await;
    let printed = stdout(&output);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("deleted 1, archived 0, already gone 0, failed 0"),
        "{printed}"
    );
    assert!(!printed.contains("EnableAPIChannelDeletion"), "{printed}");
    assert!(app.sim.channel(&ended.channel_id).is_none());
    assert_eq!(app.sim.channel(&active_channel).unwrap()["delete_at"], 0);

    // Without Mattermost settings there is nothing to do, and that is no failure.
    let output = parley_archive(&app, false).await;
    assert!(output.status.success());
    assert!(
        stdout(&output).contains("not configured"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test]
async fn the_scheduled_cleanup_waits_for_the_last_messages_of_a_chat() {
    let app = spawn_app_with(|settings| settings.delete_after = Duration::ZERO).await;
    // The server's own schedule first runs 30 s after start; here the same loop runs often.
    let stop = CancellationToken::new();
    app.spawn_cleanup_every(
        stop.clone(),
        Duration::from_millis(10),
        Duration::from_millis(20),
    );
    let chat = app.start_simple_chat("short one").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    app.wait_for_bot_post(&channel_id, "short one").await;
    // Mattermost hiccups: the closing notice has to wait out a few retries.
    app.sim.fail_next_requests(3, 503);
    assert_eq!(app.close(&chat).await.status(), 200);
    wait_until("the channel is archived", || async {
        app.sim
            .channel(&channel_id)
            .is_some_and(|c| c["delete_at"] != 0)
    })
    .await;
    // The closing notice went out before the channel was archived.
    let posts = app.sim.posts_in_channel(&channel_id);
    let notice = posts
        .iter()
        .position(|p| {
            p["message"]
                .as_str()
                .unwrap_or_default()
                .contains("ended the chat")
        })
        .expect("the closing notice was posted");
    let archived = posts
        .iter()
        .position(|p| p["type"] == "system_channel_deleted")
        .expect("the archive note");
    assert!(notice < archived);
    assert!(app.outbox_empty().await, "nothing failed to deliver");
    stop.cancel();
}
