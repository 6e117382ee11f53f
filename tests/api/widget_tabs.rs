//! The widget in real Chromium with one chat open in more tabs than the per-chat socket cap
//! (`tests/browser/widget_tabs.mjs`): the oldest tab parks instead of fighting for the socket.

use crate::helpers::run_browser_script;
use crate::helpers::spawn_app_with;

#[tokio::test]
async fn widget_tabs_beyond_the_socket_cap_park_instead_of_fighting() {
    let app = spawn_app_with(|s| s.live.per_chat = 2).await;
    let chat = app.start_simple_chat("Hello from three tabs").await;

    run_browser_script(
        "widget_tabs.mjs",
        &[
            ("PAGE_URL", &format!("{}/", app.url)),
            ("CHAT_ID", &chat.id),
            ("CHAT_TOKEN", &chat.token),
        ],
    )
    .await;
}
