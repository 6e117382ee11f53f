//! Room for uploads (issue 12, item 4): a quota on all files kept, a daily quota on visitors'
//! uploads, and a floor of free disk space; a refusal is `507` with a clear code and keeps
//! nothing.

use serde_json::Value;

use crate::helpers::{self, TestApp, VisitorChat, spawn_app_with, wait_until};

/// Plain text of `n` bytes (an allowed type).
fn text_file(n: usize) -> Vec<u8> {
    "note ".repeat(n / 5 + 1).into_bytes()[..n].to_vec()
}

async fn upload(app: &TestApp, chat: &VisitorChat, bytes: Vec<u8>) -> (u16, Value) {
    helpers::upload(app, chat, None, &[("notes.txt", &bytes)]).await
}

/// Files under the data dir's `files/` (kept and temporary).
fn files_on_disk(app: &TestApp) -> usize {
    walk(&app.data_dir().join("files"))
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Messages with files in the chat, and files on disk (all chats).
async fn kept(app: &TestApp, chat: &VisitorChat) -> (usize, usize) {
    let with_files = app
        .messages(chat)
        .await
        .into_iter()
        .filter(|m| m["files"].as_array().is_some_and(|f| !f.is_empty()))
        .count();
    (with_files, files_on_disk(app))
}

/// Uploads `bytes`, expecting a refusal with `code` that leaves neither a message nor a file.
async fn assert_refused_and_nothing_kept(
    app: &TestApp,
    chat: &VisitorChat,
    bytes: Vec<u8>,
    code: &str,
) {
    let before = kept(app, chat).await;
    let (status, body) = upload(app, chat, bytes).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("try again later"),
        "{body}"
    );
    wait_until("the refused upload's temporary file is gone", || async {
        kept(app, chat).await == before
    })
    .await;
}

#[tokio::test]
async fn uploads_past_the_quota_for_all_files_are_refused_and_keep_nothing() {
    // Arrange: room for two 1,200-byte files, whatever the chat.
    let app = spawn_app_with(|s| {
        s.files.max_stored_bytes = 3000;
        s.files.max_daily_bytes = 0;
    })
    .await;
    let first = app.start_simple_chat("Hello").await;
    let second = app.start_simple_chat("Hello").await;
    assert_eq!(upload(&app, &first, text_file(1200)).await.0, 201);
    assert_eq!(upload(&app, &second, text_file(1200)).await.0, 201);

    // Act + Assert: a third would pass the quota; a small one still fits.
    assert_refused_and_nothing_kept(&app, &first, text_file(1200), "storage_full").await;
    assert_eq!(upload(&app, &second, text_file(500)).await.0, 201);
    // Full now: refused before the body is read.
    assert_refused_and_nothing_kept(&app, &first, text_file(200), "storage_full").await;
}

#[tokio::test]
async fn uploads_past_the_daily_quota_are_refused_and_keep_nothing() {
    // Arrange
    let app = spawn_app_with(|s| {
        s.files.max_stored_bytes = 0;
        s.files.max_daily_bytes = 3000;
    })
    .await;
    let first = app.start_simple_chat("Hello").await;
    let second = app.start_simple_chat("Hello").await;
    assert_eq!(upload(&app, &first, text_file(1400)).await.0, 201);
    assert_eq!(upload(&app, &second, text_file(1400)).await.0, 201);

    // Act + Assert
    assert_refused_and_nothing_kept(&app, &second, text_file(1400), "daily_upload_limit").await;
}

#[tokio::test]
async fn uploads_are_refused_below_the_free_disk_floor() {
    // Arrange: a floor above any real disk's free space.
    let app = spawn_app_with(|s| s.files.min_free_disk_bytes = u64::MAX / 2).await;
    let chat = app.start_simple_chat("Hello").await;

    // Act + Assert
    assert_refused_and_nothing_kept(&app, &chat, text_file(1200), "storage_full").await;
    // Text messages do not need the disk's room.
    assert_eq!(app.send(&chat, "Without the file then").await.status(), 201);
}

#[tokio::test]
async fn uploads_are_received_above_the_free_disk_floor() {
    // Arrange: a floor of one byte is below any disk's free space.
    let app = spawn_app_with(|s| s.files.min_free_disk_bytes = 1).await;
    let chat = app.start_simple_chat("Hello").await;

    // Act + Assert
    assert_eq!(upload(&app, &chat, text_file(1200)).await.0, 201);
}
