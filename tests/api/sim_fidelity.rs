//! parley against the ways a real Mattermost server differs from a naive one
//! (mattermost-api.md §13), now that the simulator behaves the same way.

use crate::helpers::{spawn_app, wait_until};

#[tokio::test]
async fn a_vanished_channel_does_not_stop_the_catch_up_of_the_other_chats() {
    let app = spawn_app().await;
    // The first chat's channel is deleted for good while parley is not listening; the second
    // chat's operator writes meanwhile.
    let gone = app.start_simple_chat("first").await;
    let gone_channel = app.accept(&gone, &app.alice).await;
    let chat = app.start_simple_chat("second").await;
    let channel = app.accept(&chat, &app.bob).await;
    app.wait_for_bot_post(&channel, "second").await;

    app.sim.set_websockets_down(true);
    wait_until("parley notices", || async { !app.is_online() }).await;
    app.sim.delete_channel_permanently(&gone_channel);
    app.sim
        .post_as(&app.bob, &channel, "written while parley was away")
        .await;
    app.sim.set_websockets_down(false);

    // The catch-up of a fresh connection fails for the vanished channel (403) and goes on.
    app.wait_for_message(&chat, |m| m["text"] == "written while parley was away")
        .await;
}

/// WebSocket upgrades parley made so far.
fn websocket_upgrades(app: &crate::helpers::TestApp) -> usize {
    app.sim
        .request_log()
        .iter()
        .filter(|(_, path, _)| path.trim_end_matches('/') == "/api/v4/websocket")
        .count()
}

#[tokio::test]
async fn parley_answers_the_keep_alive_pings_and_keeps_its_socket() {
    let app = spawn_app().await;
    app.sim.set_config(|c| {
        c.websocket_ping_interval = std::time::Duration::from_millis(200);
        c.websocket_pong_wait = std::time::Duration::from_millis(2000);
    });
    // The settings apply to sockets opened from now on.
    app.sim.drop_websockets();
    wait_until("parley connects again", || async {
        app.sim.websocket_connections() == 1 && app.is_online()
    })
    .await;
    let upgrades = websocket_upgrades(&app);
    let pongs = app.sim.websocket_pongs();
    // Twenty pings answered take four seconds, twice the time a silent socket has.
    wait_until("parley answers twenty pings", || async {
        app.sim.websocket_pongs() >= pongs + 20
    })
    .await;
    assert_eq!(
        websocket_upgrades(&app),
        upgrades,
        "the socket was never dropped"
    );
    assert!(app.is_online());
}

/// `/api/v1/status` after a presence poll.
async fn polled_status(app: &crate::helpers::TestApp) -> serde_json::Value {
    app.poll_presence().await;
    app.get_json(&app.api("/status")).await
}

#[tokio::test]
async fn the_widget_goes_offline_when_the_last_operator_closes_mattermost() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = spawn_app().await;
    // Alice is online (not a status she chose) with her Mattermost open.
    let url = format!(
        "{}/api/v4/websocket",
        app.sim.url().replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", app.alice.token).parse().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    wait_until("the widget is online", || async {
        polled_status(&app).await["online"] == true
    })
    .await;

    // She closes her last Mattermost window: a few seconds later she is offline, and so is
    // the widget.
    drop(socket);
    wait_until("the widget is offline", || async {
        polled_status(&app).await["online"] == false
    })
    .await;
}
