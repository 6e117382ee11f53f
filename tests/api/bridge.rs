//! The main flow through the Mattermost simulator: request post, Accept, the chat channel,
//! relaying both ways, closing, and the guarantees (exactly one winner, nothing forged,
//! nothing injected, nothing lost or doubled).

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, VisitorChat,
    live::{next_matching, open_live},
    poll_until, spawn_app, wait_until,
};

const ZWSP: char = '\u{200B}';

#[tokio::test]
async fn a_visitor_chat_is_answered_from_mattermost_end_to_end() {
    let app = spawn_app().await;
    let chat = app
        .start_simple_chat("Hello, I need help with my order")
        .await;
    assert_eq!(app.chat_state(&chat).await["status"], "pending");

    // The request post: details, first message, one Accept button whose secret stays hidden.
    let request = app.request_post(&chat).await;
    let attachment = &request["props"]["attachments"][0];
    let fields = attachment["fields"].to_string();
    for expected in [
        "Erika Visitor",
        "erika@example.com",
        "https://shop.example.com/cart",
        "Hello, I need help",
    ] {
        assert!(
            fields.contains(expected),
            "request shows {expected}: {fields}"
        );
    }
    assert_eq!(attachment["actions"][0]["id"], "accept");
    let over_rest: Value = app
        .http
        .get(format!(
            "{}/api/v4/posts/{}",
            app.sim.url(),
            request["id"].as_str().unwrap()
        ))
        .bearer_auth(&app.alice.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        over_rest["props"]["attachments"][0]["actions"][0]
            .get("integration")
            .is_none(),
        "clients never see the signed context"
    );

    // Accept: a private channel with the operator, the header, and the chat so far.
    let mut live = open_live(&app, &chat, 0).await;
    // Subscribed once `ready` came: the acceptance below is then a live `chat` event.
    next_matching(&mut live, |v| v["type"] == "ready").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    let channel = app.sim.channel(&channel_id).unwrap();
    assert_eq!(channel["type"], "P", "chat channels are private");
    assert!(
        channel["header"]
            .as_str()
            .unwrap()
            .contains("Erika Visitor")
    );
    assert!(app.sim.channel_members(&channel_id).contains(&app.alice.id));
    assert!(!app.sim.channel_members(&channel_id).contains(&app.bob.id));
    app.wait_for_bot_post(&channel_id, "Hello, I need help with my order")
        .await;

    let settled = app.sim.post(request["id"].as_str().unwrap()).unwrap();
    assert!(
        settled["message"]
            .as_str()
            .unwrap()
            .contains("accepted by @alice"),
        "{settled}"
    );
    assert!(
        settled["props"]["attachments"][0].get("actions").is_none(),
        "the button is gone after acceptance"
    );
    let ephemeral = app.sim.ephemeral_posts_for(&app.alice.id);
    let link = ephemeral.last().expect("the clicker gets a note")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    let channel_name = channel["name"].as_str().unwrap();
    assert!(
        link.contains(channel_name),
        "the note links the channel: {link}"
    );

    let state = app.chat_state(&chat).await;
    assert_eq!(state["status"], "active");
    assert_eq!(state["operator"]["name"], "Alice Operator");
    next_matching(&mut live, |v| {
        v["type"] == "chat" && v["chat"]["status"] == "active"
    })
    .await;

    // Visitor → Mattermost.
    assert_eq!(app.send(&chat, "It is order 12345").await.status(), 201);
    let relayed = app
        .wait_for_bot_post(&channel_id, "It is order 12345")
        .await;
    assert!(
        relayed["message"]
            .as_str()
            .unwrap()
            .contains("Erika Visitor"),
        "attributed to the visitor"
    );

    // Mattermost → visitor, live, with the operator's name and safe Markdown.
    app.sim
        .post_as(&app.alice, &channel_id, "Thanks, **looking** into it")
        .await;
    let event = next_matching(&mut live, |v| {
        v["type"] == "message" && v["message"]["sender"] == "operator"
    })
    .await;
    assert_eq!(event["message"]["author"], "Alice Operator");
    assert_eq!(event["message"]["text"], "Thanks, **looking** into it");
    assert!(
        event["message"]["html"]
            .as_str()
            .unwrap()
            .contains("<strong>looking</strong>")
    );

    // The bot's own posts are never echoed back to the visitor.
    let transcript = app.messages(&chat).await;
    let senders: Vec<&str> = transcript
        .iter()
        .map(|m| m["sender"].as_str().unwrap())
        .collect();
    assert_eq!(
        senders,
        ["visitor", "system", "visitor", "operator"],
        "{transcript:?}"
    );

    // An operator ends the chat with !close.
    app.sim.post_as(&app.alice, &channel_id, "!close").await;
    next_matching(&mut live, |v| {
        v["type"] == "chat" && v["chat"]["status"] == "closed"
    })
    .await;
    let closing = app
        .wait_for_message(&chat, |m| m["event"] == "closed_by_operator")
        .await;
    assert_eq!(closing["sender"], "system");
    app.wait_for_bot_post(&channel_id, "Chat closed by").await;
    assert!(
        !app.messages(&chat)
            .await
            .iter()
            .any(|m| m["text"] == "!close"),
        "commands are not shown to the visitor"
    );
    let refused = app.send(&chat, "hello?").await;
    assert_eq!(refused.status(), 409);

    // A new chat from the same visitor is a new request with a new channel.
    let again = app.start_simple_chat("One more question").await;
    let second_channel = app.accept(&again, &app.alice).await;
    assert_ne!(second_channel, channel_id);
}

#[tokio::test]
async fn simultaneous_accepts_have_exactly_one_winner() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Who takes me?").await;
    let post_id = app.request_post(&chat).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (a, b) = tokio::join!(
        app.sim.click_button(&app.alice, &post_id, "accept"),
        app.sim.click_button(&app.bob, &post_id, "accept"),
    );
    assert_eq!((a.0, b.0), (200, 200), "both clicks are answered");
    let channel_id = app.chat_channel(&chat).await;
    wait_until("the operator joins", || async {
        app.sim.channel_members(&channel_id).len() >= 2
    })
    .await;

    let winner = app.chat_state(&chat).await["operator"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (winner_user, loser_user) = if winner == "Alice Operator" {
        (&app.alice, &app.bob)
    } else {
        (&app.bob, &app.alice)
    };
    let members = app.sim.channel_members(&channel_id);
    assert!(members.contains(&winner_user.id));
    assert!(
        !members.contains(&loser_user.id),
        "the late clicker is not added"
    );
    let loser_note = app.sim.ephemeral_posts_for(&loser_user.id);
    assert!(
        loser_note.last().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains(&format!("already accepted by @{}", winner_user.username)),
        "{loser_note:?}"
    );
    let system_joins = app
        .messages(&chat)
        .await
        .into_iter()
        .filter(|m| m["event"] == "accepted")
        .count();
    assert_eq!(system_joins, 1);
    let chat_channels = app
        .sim
        .channels_in_team(&app.team_id)
        .into_iter()
        .filter(|c| c["purpose"].as_str() == Some(&format!("parley chat {}", chat.id)))
        .count();
    assert_eq!(chat_channels, 1, "one channel per chat");

    // The button is gone, and replaying Mattermost's signed callback changes nothing.
    let (status, _) = app.sim.click_button(loser_user, &post_id, "accept").await;
    assert_eq!(status, 404, "no button left to click");
    let captured = app
        .sim
        .integration_requests()
        .into_iter()
        .find(|r| r["context"]["action"] == "accept")
        .unwrap();
    let mut replay = captured.clone();
    replay.as_object_mut().unwrap().remove("response_status");
    replay["user_id"] = json!(loser_user.id);
    let response: Value = app
        .http
        .post(format!("{}/mattermost/actions", app.url))
        .json(&replay)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        response["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("already accepted"),
        "{response}"
    );
    assert_eq!(app.chat_state(&chat).await["operator"]["name"], winner);
}

#[tokio::test]
async fn forged_accept_callbacks_are_refused() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Is anyone there?").await;
    let post = app.request_post(&chat).await;
    let forged = |context: Value| {
        app.http
            .post(format!("{}/mattermost/actions", app.url))
            .json(&json!({
                "user_id": app.bob.id, "user_name": "bob", "post_id": post["id"],
                "channel_id": app.requests_channel_id, "context": context
            }))
            .send()
    };
    let cases = [
        json!({"action": "accept", "chat_id": chat.id}),
        json!({"action": "accept", "chat_id": chat.id, "signature": "00ff"}),
        json!({"action": "accept", "chat_id": chat.id, "signature": "not hex"}),
        json!({}),
    ];
    for context in cases {
        let response = forged(context.clone()).await.unwrap();
        assert_eq!(response.status(), 403, "{context}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
    }
    // A signature for one chat does not open another.
    let other = app.start_simple_chat("Another").await;
    app.request_post(&other).await;
    let (status, _) = app
        .sim
        .click_button(&app.alice, post["id"].as_str().unwrap(), "accept")
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.chat_state(&other).await["status"], "pending");
    assert_eq!(app.chat_state(&chat).await["status"], "active");
}

#[tokio::test]
async fn visitor_text_cannot_mention_or_format_in_mattermost() {
    let app = spawn_app().await;
    let chat = app
        .start_chat(json!({"name": "@here", "message": "@channel @all hi @alice ![x](https://evil.example/p.png) [click](https://evil.example)"}))
        .await;
    let request = app.request_post(&chat).await;
    let channel_id = app.accept(&chat, &app.alice).await;
    app.send(&chat, "# Big\n@here look\n```\ncode\n```").await;
    app.wait_for_bot_post(&channel_id, "look").await;

    let mut texts = vec![request["message"].as_str().unwrap().to_owned()];
    for field in request["props"]["attachments"][0]["fields"]
        .as_array()
        .unwrap()
    {
        texts.push(field["value"].as_str().unwrap().to_owned());
    }
    texts.extend(
        app.bot_posts(&channel_id)
            .iter()
            .map(|p| p["message"].as_str().unwrap().to_owned()),
    );
    texts.push(
        app.sim.channel(&channel_id).unwrap()["header"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    for text in &texts {
        let lower = text.to_lowercase();
        for mention in ["@channel", "@all", "@here", "@alice"] {
            assert!(
                !lower.contains(mention),
                "`{mention}` would ping in: {text}"
            );
        }
        assert!(!text.contains("!["), "no image in: {text}");
        assert!(
            !text.replace("\\]", "").contains("](https"),
            "no link syntax in: {text}"
        );
        assert!(!text.contains("\n# "), "no heading in: {text}");
        assert!(!text.contains("```"), "no code fence in: {text}");
    }
    assert!(
        texts.iter().any(|t| t.contains(&format!("@{ZWSP}channel"))),
        "the text itself is still shown"
    );
}

#[tokio::test]
async fn operator_markdown_cannot_run_script_in_the_widget() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("hi").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    app.sim
        .post_as(
            &app.alice,
            &channel_id,
            "<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) **ok**",
        )
        .await;
    let m = app
        .wait_for_message(&chat, |m| m["sender"] == "operator")
        .await;
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("<strong>ok</strong>"), "{html}");
    for bad in ["<script", "<img", "javascript:", "onerror=\""] {
        assert!(
            !html.to_lowercase().contains(bad),
            "`{bad}` survived: {html}"
        );
    }
}

#[tokio::test]
async fn the_visitor_closing_tells_the_channel_and_ends_the_chat() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("quick question").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    let response = app.close(&chat).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "closed");
    app.wait_for_bot_post(&channel_id, "ended the chat").await;
    let refused = app.send(&chat, "one more").await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "chat_closed"
    );
    // Closing again is harmless.
    let again = app.close(&chat).await;
    assert_eq!(again.status(), 200);
    // An operator writing after the end reaches nobody, and is told so.
    app.sim
        .post_as(&app.alice, &channel_id, "are you there?")
        .await;
    app.wait_for_bot_post(&channel_id, "the visitor will not see")
        .await;
    assert!(
        !app.messages(&chat)
            .await
            .iter()
            .any(|m| m["text"] == "are you there?")
    );
}

#[tokio::test]
async fn a_visitor_leaving_before_acceptance_removes_the_button() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("nobody home?").await;
    app.send(&chat, "still waiting").await;
    let request = app.request_post(&chat).await;
    app.close(&chat).await;
    let post_id = request["id"].as_str().unwrap().to_owned();
    wait_until("the request post is settled", || async {
        app.sim.post(&post_id).unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("left before")
    })
    .await;
    let post = app.sim.post(&post_id).unwrap();
    assert!(post["props"]["attachments"][0].get("actions").is_none());
    wait_until("the outbox drains", || app.outbox_empty()).await;
    let (status, _) = app.sim.click_button(&app.alice, &post_id, "accept").await;
    assert_ne!(status, 200, "the button no longer exists");
    assert_eq!(app.chat_state(&chat).await["status"], "closed");
}

/// Texts of the visitor's messages as they arrived in the channel, in order.
fn relayed_texts(app: &TestApp, channel_id: &str, prefix: &str) -> Vec<String> {
    app.bot_posts(channel_id)
        .iter()
        .filter_map(|p| {
            let m = p["message"].as_str()?;
            let i = m.find(prefix)?;
            Some(m[i..].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn mattermost_down_for_a_while_loses_and_doubles_nothing() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("before the outage").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    app.wait_for_bot_post(&channel_id, "before the outage")
        .await;

    app.sim.set_down(true);
    for i in 0..5 {
        assert_eq!(
            app.send(&chat, &format!("msg-{i}")).await.status(),
            201,
            "acknowledged while Mattermost is down"
        );
    }
    // The worker tried during the outage, and nothing went through.
    app.wait_for_failed_delivery().await;
    assert!(relayed_texts(&app, &channel_id, "msg-").is_empty());
    app.sim.set_down(false);

    // Then flaky: errors and a rate limit on the way back.
    app.sim.fail_next_requests(2, 502);
    for i in 5..8 {
        app.send(&chat, &format!("msg-{i}")).await;
    }
    app.sim.rate_limit_next_requests(1, 1);
    for i in 8..10 {
        app.send(&chat, &format!("msg-{i}")).await;
    }
    let expected: Vec<String> = (0..10).map(|i| format!("msg-{i}")).collect();
    poll_until(
        "all ten messages are relayed",
        Duration::from_secs(30),
        || async { (relayed_texts(&app, &channel_id, "msg-").len() >= 10).then_some(()) },
    )
    .await;
    wait_until("the outbox drains", || app.outbox_empty()).await;
    assert_eq!(
        relayed_texts(&app, &channel_id, "msg-"),
        expected,
        "every message once, in order"
    );
}

#[tokio::test]
async fn visitors_writing_at_once_get_every_message_relayed_once_in_transcript_order() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut chats = Vec::new();
    for i in 0..4 {
        let chat = app.start_simple_chat(&format!("chat {i} starts")).await;
        let channel_id = app.accept(&chat, &app.alice).await;
        chats.push((chat, channel_id));
    }
    let closed = app.start_simple_chat("this one ends").await;
    app.accept(&closed, &app.alice).await;
    assert_eq!(app.close(&closed).await.status(), 200);

    // Two tabs per chat write at the same time, and the closed chat's visitor too: the
    // messages waiting for the database are stored together.
    let mut writers = tokio::task::JoinSet::new();
    for (c, (chat, _)) in chats.iter().enumerate() {
        for tab in 0..2 {
            let (app, chat) = (app.clone(), chat.clone());
            writers.spawn(async move {
                for n in 0..15 {
                    let response = app.send(&chat, &format!("m-{c}-{tab}-{n}")).await;
                    assert_eq!(response.status(), 201);
                }
            });
        }
    }
    for n in 0..5 {
        let (app, closed) = (app.clone(), closed.clone());
        writers.spawn(async move {
            assert_eq!(app.send(&closed, &format!("late-{n}")).await.status(), 409);
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    wait_until("the outbox drains", || app.outbox_empty()).await;
    for (c, (chat, channel_id)) in chats.iter().enumerate() {
        let transcript: Vec<String> = app
            .messages(chat)
            .await
            .iter()
            .filter_map(|m| m["text"].as_str())
            .filter(|t| t.starts_with("m-"))
            .map(str::to_owned)
            .collect();
        assert_eq!(transcript.len(), 30, "every message stored: {transcript:?}");
        for tab in 0..2 {
            let prefix = format!("m-{c}-{tab}-");
            let sent: Vec<&String> = transcript
                .iter()
                .filter(|t| t.starts_with(&prefix))
                .collect();
            assert_eq!(sent.len(), 15);
            let mut in_order = sent.clone();
            in_order.sort_by_key(|t| t.rsplit('-').next().unwrap().parse::<u32>().unwrap());
            assert_eq!(sent, in_order, "a tab's messages keep their order");
        }
        assert_eq!(
            relayed_texts(&app, channel_id, "m-"),
            transcript,
            "Mattermost has each message once, in the transcript's order"
        );
    }
    assert!(
        app.messages(&closed)
            .await
            .iter()
            .all(|m| !m["text"].as_str().unwrap_or_default().starts_with("late-")),
        "nothing stored in the closed chat"
    );
}

#[tokio::test]
async fn operator_messages_survive_a_dropped_event_stream() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("hello").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    let mut live = open_live(&app, &chat, 0).await;

    // Dropped while the operator writes: resumed with connection_id/sequence_number.
    app.sim.drop_websockets();
    app.sim
        .post_as(&app.alice, &channel_id, "written during the drop")
        .await;
    next_matching(&mut live, |v| {
        v["message"]["text"] == "written during the drop"
    })
    .await;

    // Down long enough that the stream must start afresh: caught up over REST.
    app.sim.set_down(true);
    app.wait_until_offline().await;
    app.sim.set_down(false);
    app.sim
        .post_as(&app.alice, &channel_id, "written right after the outage")
        .await;
    next_matching(&mut live, |v| {
        v["message"]["text"] == "written right after the outage"
    })
    .await;

    wait_until("parley is back online", || async { app.is_online() }).await;
    app.sim
        .post_as(&app.alice, &channel_id, "and one more")
        .await;
    app.wait_for_message(&chat, |m| m["text"] == "and one more")
        .await;
    let operator_texts: Vec<String> = app
        .messages(&chat)
        .await
        .iter()
        .filter(|m| m["sender"] == "operator")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        operator_texts,
        [
            "written during the drop",
            "written right after the outage",
            "and one more"
        ],
        "each post applied exactly once"
    );
}

#[tokio::test]
async fn the_live_socket_refuses_a_wrong_token_and_replays_after_an_id() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("first").await;
    app.send(&chat, "second").await;

    let wrong = VisitorChat {
        id: chat.id.clone(),
        token: "wrong".into(),
    };
    let mut ws = open_live(&app, &wrong, 0).await;
    let error = next_matching(&mut ws, |v| v["type"] == "error").await;
    assert_eq!(error["code"], "unauthorized");

    let first_id = app.messages(&chat).await[0]["id"].as_i64().unwrap();
    let mut ws = open_live(&app, &chat, first_id).await;
    let ready = next_matching(&mut ws, |v| v["type"] == "ready").await;
    assert_eq!(ready["chat"]["status"], "pending");
    let replayed = next_matching(&mut ws, |v| v["type"] == "message").await;
    assert_eq!(
        replayed["message"]["text"], "second",
        "only messages after `after` are replayed"
    );
}
