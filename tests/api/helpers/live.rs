//! The visitor's live socket as the widget uses it: open and authenticate, then read events
//! until one matches.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{TestApp, VisitorChat};

/// A live socket to the test app.
pub type LiveSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the visitor's live socket and authenticates.
pub async fn open_live(app: &TestApp, chat: &VisitorChat, after: i64) -> LiveSocket {
    let url = format!(
        "{}/api/v1/chats/{}/live",
        app.url.replace("http://", "ws://"),
        chat.id
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let auth = json!({"type": "auth", "token": chat.token, "after": after}).to_string();
    ws.send(Message::Text(auth.into())).await.unwrap();
    ws
}

/// Reads frames until one matches, failing after 10 s.
pub async fn next_matching<S>(ws: &mut S, pred: impl Fn(&Value) -> bool) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let frame = ws.next().await.expect("socket open").expect("frame");
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if pred(&v) {
                    return v;
                }
            }
        }
    })
    .await
    .expect("the expected live event arrives")
}

/// Returns once the server has handled every frame sent on `ws` before: it reads a socket's
/// frames one after another, so its answer to a ping sent now comes after them. Text frames
/// read meanwhile are skipped.
pub async fn handled(ws: &mut LiveSocket) {
    let payload = uuid::Uuid::new_v4().as_bytes().to_vec();
    ws.send(Message::Ping(payload.clone().into()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let frame = ws.next().await.expect("socket open").expect("frame");
            if matches!(&frame, Message::Pong(p) if p.as_ref() == payload.as_slice()) {
                return;
            }
        }
    })
    .await
    .expect("the server answers the ping")
}
