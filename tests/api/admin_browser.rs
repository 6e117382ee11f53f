//! The manager's journey in real Chromium (Debian's, driven by playwright-core from
//! `tests/browser/admin_flow.mjs`): first-run setup, sign-in, finding a chat, reading its
//! transcript, changing a setting, on a laptop and a phone; and an admin connecting Mattermost
//! in the settings (`tests/browser/connection_flow.mjs`).

use serde_json::{Value, json};

use crate::helpers::{run_browser_script, screenshot_dir};
use crate::helpers::{spawn_app, spawn_app_with, wait_until};

#[tokio::test]
async fn a_manager_sets_up_finds_a_chat_and_changes_a_setting_in_chromium() {
    // Arrange: a chat answered by an operator, and the first-run link.
    let app = spawn_app().await;
    app.start_chat(
        json!({"name": "Nora Noise", "email": "nora@example.com", "message": "Anyone there?"}),
    )
    .await;
    let chat = app
        .start_chat(json!({"name": "Gustav Grün", "email": "gustav@example.com", "message": "My parcel 4711 has not arrived.", "page_url": "https://shop.example.com/orders"}))
        .await;
    let channel = app.accept(&chat, &app.alice).await;
    let answer = "It left our warehouse this morning; you will have it tomorrow.";
    app.sim.post_as(&app.alice, &channel, answer).await;
    app.wait_for_message(&chat, |m| m["sender"] == "operator")
        .await;
    let link = app.first_run_link().await.expect("no manager exists yet");

    // Act
    let screenshots = screenshot_dir();
    run_browser_script(
        "admin_flow.mjs",
        &[
            ("PARLEY_URL", &app.url),
            ("SETUP_URL", &link),
            ("VISITOR_NAME", "Gustav Grün"),
            ("OPERATOR_TEXT", answer),
            ("SCREENSHOT_DIR", &screenshots.to_string_lossy()),
        ],
    )
    .await;
    let widget: Value = app.get_json(&app.api("/widget-config")).await;
    assert_eq!(
        widget["title"], "Talk to Acme",
        "the setting reached the widget's API"
    );
    for name in [
        "admin-dashboard.png",
        "admin-chats.png",
        "admin-transcript.png",
        "admin-settings-fixed.png",
        "admin-phone.png",
    ] {
        assert!(screenshots.join(name).exists(), "{name}");
    }
}

#[tokio::test]
async fn an_admin_connects_mattermost_in_chromium_and_parley_goes_online() {
    // Arrange: parley without Mattermost; the simulator ready with the bot.
    let app = spawn_app_with(|s| s.mattermost = None).await;
    let link = app.first_run_link().await.expect("no manager exists yet");
    let screenshots = screenshot_dir();

    // Act
    run_browser_script(
        "connection_flow.mjs",
        &[
            ("PARLEY_URL", &app.url),
            ("SETUP_URL", &link),
            ("MM_URL", &app.sim.url()),
            ("MM_TOKEN", &app.bot.token),
            ("SCREENSHOT_DIR", &screenshots.to_string_lossy()),
        ],
    )
    .await;
    wait_until("parley is online", || async { app.is_online() }).await;
    let chat = app.start_simple_chat("Hello after connecting").await;
    app.request_post(&chat).await;
    assert!(screenshots.join("admin-settings.png").exists());
}
