//! The manager's journey in real Chromium (Debian's, driven by playwright-core from
//! `tests/browser/admin_flow.mjs`): first-run setup, sign-in, finding a chat, reading its
//! transcript, changing a setting, on a laptop and a phone; and an admin connecting Mattermost
//! in the settings (`tests/browser/connection_flow.mjs`).

use std::path::PathBuf;

use parley::backoffice::accounts;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with, wait_until};

#[tokio::test]
async fn a_manager_sets_up_finds_a_chat_and_changes_a_setting_in_chromium() {
    // Arrange: a chat answered by an operator, and the first-run link.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does it)"
    );
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
    let link = accounts::first_run_link(&app.state.store, &app.url)
        .await
        .unwrap()
        .expect("no manager exists yet");

    // Act
    let screenshots = root.join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("admin_flow.mjs"))
        .current_dir(&browser_dir)
        .env("PARLEY_URL", &app.url)
        .env("SETUP_URL", &link)
        .env("VISITOR_NAME", "Gustav Grün")
        .env("OPERATOR_TEXT", answer)
        .env("SCREENSHOT_DIR", &screenshots)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (install Node.js and Debian's chromium)");

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser flow failed:\n{stdout}\n{stderr}"
    );
    let widget: Value = app
        .http
        .get(app.api("/widget-config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does it)"
    );
    let app = spawn_app_with(|s| s.mattermost = None).await;
    let link = accounts::first_run_link(&app.state.store, &app.url)
        .await
        .unwrap()
        .expect("no manager exists yet");
    let screenshots = root.join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();

    // Act
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("connection_flow.mjs"))
        .current_dir(&browser_dir)
        .env("PARLEY_URL", &app.url)
        .env("SETUP_URL", &link)
        .env("MM_URL", app.sim.url())
        .env("MM_TOKEN", &app.bot.token)
        .env("SCREENSHOT_DIR", &screenshots)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (install Node.js and Debian's chromium)");

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser flow failed:\n{stdout}\n{stderr}"
    );
    wait_until("parley is online", || async { app.state.online() }).await;
    let chat = app.start_simple_chat("Hello after connecting").await;
    app.request_post(&chat).await;
    assert!(screenshots.join("admin-settings.png").exists());
}
