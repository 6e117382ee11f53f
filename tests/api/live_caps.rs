//! Caps on visitors' live sockets (issue 12, item 4): per chat (the oldest goes), per client
//! address, and sockets still waiting to authenticate.

use futures_util::{SinkExt, StreamExt};
use parley::config::ProxyTrust;
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest},
};

use crate::{
    helpers::live::next_matching,
    helpers::{TestApp, VisitorChat, poll_until, spawn_app_with},
};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a live socket (without authenticating), as a client at `xff` behind the proxy when
/// given. `Err` carries the HTTP status and body of a refused upgrade.
async fn upgrade(app: &TestApp, chat_id: &str, xff: Option<&str>) -> Result<Socket, (u16, Value)> {
    let url = format!(
        "{}/chats/{chat_id}/live",
        app.api("").replace("http://", "ws://")
    );
    let mut request = url.as_str().into_client_request().unwrap();
    if let Some(xff) = xff {
        request
            .headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
    }
    match connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ))
        }
        Err(e) => panic!("the upgrade failed otherwise: {e}"),
    }
}

/// Opens a socket once the server has let go of a place (it notices a closed socket or an
/// answered authentication a moment later); fails after 10 s.
async fn admitted_soon(app: &TestApp, chat_id: &str, xff: Option<&str>) -> Socket {
    poll_until(
        "a place is free again",
        std::time::Duration::from_secs(10),
        || async { upgrade(app, chat_id, xff).await.ok() },
    )
    .await
}

async fn authenticate(socket: &mut Socket, chat: &VisitorChat) {
    let auth = json!({"type": "auth", "token": chat.token, "after": 0}).to_string();
    socket.send(Message::Text(auth.into())).await.unwrap();
    next_matching(socket, |f| f["type"] == "ready").await;
}

/// Opens and authenticates a socket of the chat.
async fn ready(app: &TestApp, chat: &VisitorChat, xff: Option<&str>) -> Socket {
    let mut socket = upgrade(app, &chat.id, xff).await.expect("admitted");
    authenticate(&mut socket, chat).await;
    socket
}

/// The close frame's code, once the server closes the socket (frames before it are skipped).
async fn close_code(socket: &mut Socket) -> u16 {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Close(Some(close))) => return u16::from(close.code),
                Ok(Message::Close(None)) | Err(_) => return 0,
                Ok(_) => {}
            }
        }
        0
    })
    .await
    .expect("the server closes the socket")
}

#[tokio::test]
async fn a_chat_keeps_its_newest_sockets_and_the_oldest_are_told_why() {
    // Arrange: the default cap (8 a chat).
    let app = spawn_app_with(|_| {}).await;
    let chat = app.start_simple_chat("Hello").await;
    let cap = app.settings().live.per_chat;
    assert_eq!(cap, 8);

    // Act: two tabs more than the cap, one after the other.
    let mut sockets = Vec::new();
    for _ in 0..cap + 2 {
        sockets.push(ready(&app, &chat, None).await);
    }

    // Assert: the two oldest were told they were replaced, and closed with 4409.
    for socket in &mut sockets[..2] {
        let error = next_matching(socket, |f| f["type"] == "error").await;
        assert_eq!(error["code"], "replaced", "{error}");
        assert_eq!(close_code(socket).await, 4409);
    }
    // The others still get the chat's events.
    assert_eq!(app.send(&chat, "Still there?").await.status(), 201);
    for socket in &mut sockets[2..] {
        next_matching(socket, |f| {
            f["type"] == "message" && f["message"]["text"] == "Still there?"
        })
        .await;
    }
    // Another chat is not affected by this one's tabs.
    let other = app.start_simple_chat("Hi").await;
    ready(&app, &other, None).await;
}

#[tokio::test]
async fn sockets_waiting_to_authenticate_are_capped_for_everyone() {
    // Arrange
    let app = spawn_app_with(|s| s.live.pending = 3).await;
    let chat = app.start_simple_chat("Hello").await;

    // Act: three sockets that never say who they are (any chat id: nothing is checked yet).
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(upgrade(&app, "no-such-chat", None).await.expect("admitted"));
    }
    let refused = upgrade(&app, &chat.id, None).await;

    // Assert
    let (status, body) = refused.expect_err("the fourth upgrade is refused");
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "too_many_pending", "{body}");

    // A pending socket that authenticates frees its place.
    let mut first = silent.remove(0);
    let auth = json!({"type": "auth", "token": chat.token}).to_string();
    first.send(Message::Text(auth.into())).await.unwrap();
    assert_eq!(close_code(&mut first).await, 4404, "not a chat: refused");
    let mut socket = admitted_soon(&app, &chat.id, None).await;
    authenticate(&mut socket, &chat).await;
}

#[tokio::test]
async fn one_client_address_holds_at_most_its_share_of_sockets() {
    // Arrange: behind a proxy, so that the test can be several clients.
    let app = spawn_app_with(|s| {
        s.live.per_address = 4;
        s.proxy = ProxyTrust {
            enabled: true,
            hops: 1,
            networks: Vec::new(),
        };
    })
    .await;
    let chat = app.start_simple_chat("Hello").await;
    let other_chat = app.start_simple_chat("Hello again").await;

    // Act: authenticated and silent sockets both count, over several chats.
    let mut held = vec![
        ready(&app, &chat, Some("203.0.113.1")).await,
        ready(&app, &other_chat, Some("203.0.113.1")).await,
        upgrade(&app, &chat.id, Some("203.0.113.1")).await.unwrap(),
        upgrade(&app, &chat.id, Some("203.0.113.1")).await.unwrap(),
    ];
    let refused = upgrade(&app, &chat.id, Some("203.0.113.1")).await;

    // Assert
    let (status, body) = refused.expect_err("the fifth socket is refused");
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "too_many_sockets", "{body}");
    // IPv6 clients count per /64.
    for i in 0..4 {
        held.push(ready(&app, &chat, Some(&format!("2001:db8:0:7::{i}"))).await);
    }
    let refused = upgrade(&app, &chat.id, Some("2001:db8:0:7:ffff::1")).await;
    assert_eq!(refused.expect_err("the /64 is full").0, 429);
    // Another client behind the same proxy is admitted.
    ready(&app, &chat, Some("203.0.113.2")).await;

    // A closed socket gives its place back.
    let mut gone = held.remove(0);
    gone.close(None).await.unwrap();
    admitted_soon(&app, &chat.id, Some("203.0.113.1")).await;
}
