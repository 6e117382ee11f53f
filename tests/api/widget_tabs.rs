//! The widget in real Chromium with one chat open in more tabs than the per-chat socket cap
//! (`tests/browser/widget_tabs.mjs`): the oldest tab parks instead of fighting for the socket.

use std::path::PathBuf;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn widget_tabs_beyond_the_socket_cap_park_instead_of_fighting() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does it)"
    );
    let app = spawn_app_with(|s| s.live.per_chat = 2).await;
    let chat = app.start_simple_chat("Hello from three tabs").await;

    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("widget_tabs.mjs"))
        .current_dir(&browser_dir)
        .env("PAGE_URL", format!("{}/", app.url))
        .env("CHAT_ID", &chat.id)
        .env("CHAT_TOKEN", &chat.token)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (install Node.js and Debian's chromium)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the tabs flow failed:\n{stdout}\n{stderr}"
    );
}
