//! Operator commands typed in a chat's channel (`!note`, `!transfer`, `!invite`, `!info`,
//! `!help`), typing both ways, edits and deletes of operator messages, and accepting a chat by
//! reacting to its request post: through the simulator, from outside.

use std::time::Duration;

use futures_util::SinkExt;
use mattermost_sim::SimUser;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    helpers::live::{handled, next_matching, open_live},
    helpers::{TestApp, VisitorChat, spawn_app, wait_until},
};

const ZWSP: char = '\u{200B}';

/// parley's answers in a channel (its notices and command answers), oldest first.
fn answers(app: &TestApp, channel_id: &str) -> Vec<String> {
    app.bot_posts(channel_id)
        .iter()
        .filter_map(|p| p["message"].as_str())
        .filter(|m| m.starts_with(":information_source:"))
        .map(str::to_owned)
        .collect()
}

/// Posts `command` as `user` and returns parley's next answer in the channel.
async fn run(app: &TestApp, user: &SimUser, channel_id: &str, command: &str) -> String {
    let before = answers(app, channel_id).len();
    app.sim.post_as(user, channel_id, command).await;
    let mut answer = None;
    wait_until(&format!("parley answers `{command}`"), || {
        let list = answers(app, channel_id);
        let done = list.len() > before;
        if done {
            answer = Some(list[before].clone());
        }
        async move { done }
    })
    .await;
    answer.unwrap()
}

/// A chat accepted by Alice, with its channel.
async fn accepted_chat(app: &TestApp, first: &str) -> (VisitorChat, String) {
    let chat = app.start_simple_chat(first).await;
    let channel_id = app.accept(&chat, &app.alice).await;
    app.wait_for_bot_post(&channel_id, first).await;
    (chat, channel_id)
}

type Live =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads live frames until one matches; returns every frame read, the match last.
async fn frames_until(ws: &mut Live, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = next_matching(ws, |_| true).await;
        let done = pred(&frame);
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

fn visitor_texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_note_is_kept_in_the_transcript_and_never_reaches_the_visitor() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "Where is my parcel?").await;
    let mut live = open_live(&app, &chat, 0).await;
    next_matching(&mut live, |v| v["type"] == "ready").await;

    let answer = run(
        &app,
        &app.alice,
        &channel_id,
        "!note VIP customer, called back by phone",
    )
    .await;
    assert!(answer.contains("Note kept"), "{answer}");
    let empty = run(&app, &app.alice, &channel_id, "!note").await;
    assert!(empty.contains("Write the note"), "{empty}");

    app.sim
        .post_as(&app.alice, &channel_id, "Let me check that")
        .await;
    let frames = frames_until(&mut live, |v| {
        v["type"] == "message" && v["message"]["text"] == "Let me check that"
    })
    .await;
    assert!(
        frames.iter().all(|f| !f.to_string().contains("VIP")),
        "the note is not on the live socket: {frames:?}"
    );
    let listed = app.messages(&chat).await;
    assert!(
        !visitor_texts(&listed).iter().any(|t| t.contains("VIP")),
        "the note is not in the visitor API: {listed:?}"
    );
    let mut replay = open_live(&app, &chat, 0).await;
    let frames = frames_until(&mut replay, |v| {
        v["type"] == "message" && v["message"]["text"] == "Let me check that"
    })
    .await;
    assert!(frames.iter().all(|f| !f.to_string().contains("VIP")));

    let transcript = app.transcript(&chat.id).await;
    let notes: Vec<_> = transcript.iter().filter(|m| m.internal == 1).collect();
    assert_eq!(notes.len(), 1, "one note: {transcript:?}");
    assert_eq!(notes[0].body, "VIP customer, called back by phone");
    assert_eq!(notes[0].author.as_deref(), Some("Alice Operator"));
    assert!(
        app.outbox_empty().await,
        "nothing about the note is sent anywhere"
    );
}

#[tokio::test]
async fn transfer_hands_the_chat_to_another_operator_and_tells_the_visitor() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "I need a specialist").await;
    let mut live = open_live(&app, &chat, 0).await;
    next_matching(&mut live, |v| v["type"] == "ready").await;

    let answer = run(&app, &app.alice, &channel_id, "!transfer @bob").await;
    assert!(
        answer.contains("@bob") && answer.contains("now has this chat"),
        "{answer}"
    );
    assert!(app.sim.channel_members(&channel_id).contains(&app.bob.id));
    let told = next_matching(&mut live, |v| {
        v["type"] == "message" && v["message"]["event"] == "transferred"
    })
    .await;
    assert_eq!(told["message"]["sender"], "system");
    assert_eq!(told["message"]["author"], "Bob Helper");
    assert_eq!(told["message"]["text"], "You are now talking to Bob Helper");
    let changed = next_matching(&mut live, |v| v["type"] == "chat").await;
    assert_eq!(changed["chat"]["operator"]["name"], "Bob Helper");
    assert_eq!(
        app.chat_state(&chat).await["operator"]["name"],
        "Bob Helper"
    );
    let stored = app.chat(&chat.id).await;
    assert_eq!(
        stored.operator_user_id.as_deref(),
        Some(app.bob.id.as_str())
    );
    assert_eq!(stored.operator_username.as_deref(), Some("bob"));

    // The new operator answers under their own name.
    app.sim
        .post_as(&app.bob, &channel_id, "Hello, Bob here")
        .await;
    let from_bob = next_matching(&mut live, |v| v["message"]["text"] == "Hello, Bob here").await;
    assert_eq!(from_bob["message"]["author"], "Bob Helper");

    // Refusals change nothing.
    let cases = [
        ("!transfer @bob", "already has this chat"),
        ("!transfer @nobody", "There is no Mattermost user"),
        ("!transfer @parley", "is a bot"),
        ("!transfer", "Name one user"),
        ("!transfer @alice @bob", "Name one user"),
    ];
    for (command, expected) in cases {
        let answer = run(&app, &app.bob, &channel_id, command).await;
        assert!(answer.contains(expected), "{command}: {answer}");
    }
    assert_eq!(
        app.chat_state(&chat).await["operator"]["name"],
        "Bob Helper"
    );
    let transfers = app
        .messages(&chat)
        .await
        .into_iter()
        .filter(|m| m["event"] == "transferred")
        .count();
    assert_eq!(transfers, 1, "the visitor was told once");
}

#[tokio::test]
async fn command_arguments_cannot_mention_anyone_or_inject_markdown() {
    let app = spawn_app().await;
    let (_chat, channel_id) = accepted_chat(&app, "hello").await;
    let commands = [
        "!transfer @here",
        "!transfer @channel",
        "!invite @all",
        "!invite [x](https://evil.example)",
        "!transfer ![img](https://evil.example/p.png)",
        "!@here",
        "!**bold**",
    ];
    for command in commands {
        let answer = run(&app, &app.alice, &channel_id, command).await;
        let lower = answer.to_lowercase();
        for mention in ["@here", "@channel", "@all"] {
            assert!(
                !lower.contains(mention),
                "`{mention}` would ping in the answer to {command}: {answer}"
            );
        }
        assert!(
            !answer.replace("\\]", "").contains("](https"),
            "link in: {answer}"
        );
        assert!(!answer.contains("!["), "image in: {answer}");
        assert!(!answer.contains("****"), "markup in: {answer}");
    }
    let all = answers(&app, &channel_id).join("\n");
    assert!(
        all.contains(&format!("@{ZWSP}here")),
        "the input is still shown: {all}"
    );
    assert_eq!(
        app.sim.channel_members(&channel_id).len(),
        2,
        "nobody was added"
    );
}

#[tokio::test]
async fn invite_adds_a_colleague_without_telling_the_visitor() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "a tricky question").await;
    let before = app.messages(&chat).await.len();

    let answer = run(&app, &app.alice, &channel_id, "!invite @Bob").await;
    assert!(
        answer.contains("@bob") && answer.contains("added"),
        "{answer}"
    );
    assert!(app.sim.channel_members(&channel_id).contains(&app.bob.id));
    assert_eq!(
        app.chat_state(&chat).await["operator"]["name"],
        "Alice Operator",
        "the operator stays"
    );
    assert_eq!(
        app.messages(&chat).await.len(),
        before,
        "the visitor is not told"
    );

    let outsider = app.sim.create_user("carol", "Carol", "Outside");
    let answer = run(&app, &app.alice, &channel_id, "!invite @carol").await;
    assert!(answer.contains("not a member of this team"), "{answer}");
    assert!(!app.sim.channel_members(&channel_id).contains(&outsider.id));
    let answer = run(&app, &app.alice, &channel_id, "!invite @alice").await;
    assert!(answer.contains("already has this chat"), "{answer}");
}

#[tokio::test]
async fn info_shows_the_visitor_details_and_earlier_chats() {
    let app = spawn_app().await;
    let earlier = app
        .start_chat(json!({"name": "Erika", "email": "ERIKA@example.com", "message": "first time"}))
        .await;
    app.close(&earlier).await;
    app.start_chat(json!({"email": "erika@example.com", "message": "second time"}))
        .await;
    app.start_chat(json!({"email": "someone@example.com", "message": "not her"}))
        .await;
    let chat = app
        .start_chat(json!({
            "name": "Erika @here *Visitor*", "email": "erika@example.com", "message": "third time",
            "page_url": "https://shop.example.com/cart", "referrer": "https://search.example/?q=shop"
        }))
        .await;
    let channel_id = app.accept(&chat, &app.alice).await;

    let answer = run(&app, &app.alice, &channel_id, "!info").await;
    for expected in [
        "erika@example.com",
        "https://shop.example.com/cart",
        "https://search.example/?q=shop",
        "**IP address:** 127.0.0.1",
        "**Started:** ",
        "**Waited:** ",
        "before it was accepted",
        "**Earlier chats with this e-mail:** 2: ",
        "(closed)",
        "(pending)",
    ] {
        assert!(answer.contains(expected), "`{expected}` in: {answer}");
    }
    assert!(
        answer.contains("Erika @\u{200B}here \\*Visitor\\*"),
        "{answer}"
    );
    assert!(!answer.contains("someone@"), "{answer}");

    let anonymous = app.start_chat(json!({"message": "no details"})).await;
    let channel_id = app.accept(&anonymous, &app.alice).await;
    let answer = run(&app, &app.alice, &channel_id, "!info").await;
    assert!(answer.contains("no e-mail address given"), "{answer}");
    assert!(answer.contains("**E-mail:** –"), "{answer}");
}

#[tokio::test]
async fn help_and_unknown_commands_are_answered_in_mattermost_only() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "hi").await;
    let help = run(&app, &app.alice, &channel_id, "!help").await;
    for command in [
        "!close",
        "!note <text>",
        "!transfer @user",
        "!invite @user",
        "!info",
        "!help",
    ] {
        assert!(help.contains(command), "{command} in: {help}");
    }
    let unknown = run(&app, &app.alice, &channel_id, "!frobnicate now").await;
    assert!(
        unknown.contains("Unknown command") && unknown.contains("frobnicate"),
        "{unknown}"
    );
    assert!(unknown.contains("!help"), "points to the list: {unknown}");
    let texts = visitor_texts(&app.messages(&chat).await);
    assert!(
        texts.iter().all(|t| !t.starts_with('!')),
        "commands stay in Mattermost: {texts:?}"
    );
}

#[tokio::test]
async fn commands_after_the_end_still_note_and_inform_but_change_nothing() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "bye soon").await;
    app.close(&chat).await;
    app.wait_for_bot_post(&channel_id, "ended the chat").await;
    let answer = run(&app, &app.alice, &channel_id, "!transfer @bob").await;
    assert!(answer.contains("This chat has ended"), "{answer}");
    assert!(!app.sim.channel_members(&channel_id).contains(&app.bob.id));
    let answer = run(&app, &app.alice, &channel_id, "!note refund promised").await;
    assert!(answer.contains("Note kept"), "{answer}");
    let answer = run(&app, &app.alice, &channel_id, "!info").await;
    assert!(answer.contains("erika@example.com"), "{answer}");
}

#[tokio::test]
async fn a_command_seen_again_after_a_reconnect_is_applied_once() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "hello").await;
    let chat_id = chat.id.clone();
    run(&app, &app.alice, &channel_id, "!note only once").await;
    run(&app, &app.alice, &channel_id, "!invite @bob").await;

    // Resumed: the server replays what the dropped socket may have missed.
    app.sim.drop_websockets();
    wait_until("parley resumes", || async {
        app.sim.websocket_connections() == 1
    })
    .await;
    // Afresh: parley fetches every post since the last operator message, commands included.
    let catch_ups_before = catch_ups(&app, &channel_id);
    app.sim.set_websockets_down(true);
    wait_until("parley notices", || async { !app.is_online() }).await;
    app.sim.set_websockets_down(false);
    wait_until("parley is back", || async { app.is_online() }).await;
    wait_until("parley caught up over REST", || async {
        catch_ups(&app, &channel_id) > catch_ups_before
    })
    .await;

    // Commands are applied in order: once this is answered, any replay has been handled.
    run(&app, &app.alice, &channel_id, "!help").await;
    let all = answers(&app, &channel_id);
    assert_eq!(
        all.iter().filter(|a| a.contains("Note kept")).count(),
        1,
        "{all:?}"
    );
    assert_eq!(
        all.iter().filter(|a| a.contains("was added")).count(),
        1,
        "{all:?}"
    );
    let notes = app
        .transcript(&chat_id)
        .await
        .into_iter()
        .filter(|m| m.internal == 1)
        .count();
    assert_eq!(notes, 1);
}

/// How often parley listed a channel's posts (its catch-up after a fresh connection).
fn catch_ups(app: &TestApp, channel_id: &str) -> usize {
    let path = format!("/api/v4/channels/{channel_id}/posts");
    app.sim
        .request_log()
        .iter()
        .filter(|(method, p, _)| method == "GET" && *p == path)
        .count()
}

#[tokio::test]
async fn an_operator_typing_shows_in_the_widget() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "hello").await;
    let mut live = open_live(&app, &chat, 0).await;
    next_matching(&mut live, |v| v["type"] == "ready").await;

    app.sim.typing_as(&app.alice, &channel_id);
    let typing = next_matching(&mut live, |v| v["type"] == "typing").await;
    assert_eq!(typing, json!({"type": "typing", "name": "Alice Operator"}));

    // Typing in another channel (the requests channel) is nobody's business.
    app.sim.typing_as(&app.bob, &app.requests_channel_id);
    app.sim
        .post_as(&app.alice, &channel_id, "Here you go")
        .await;
    let frames = frames_until(&mut live, |v| v["message"]["text"] == "Here you go").await;
    assert!(frames.iter().all(|f| f["type"] != "typing"), "{frames:?}");
}

/// `user_typing` actions parley's bot sent for a channel.
fn bot_typing(app: &TestApp, channel_id: &str) -> usize {
    app.sim
        .typing_events()
        .iter()
        .filter(|e| e["user_id"] == app.bot.id.as_str() && e["channel_id"] == channel_id)
        .count()
}

async fn send_typing(ws: &mut Live) {
    let frame = json!({"type": "typing"}).to_string();
    ws.send(Message::Text(frame.into())).await.unwrap();
}

#[tokio::test]
async fn a_visitor_typing_shows_in_mattermost_and_is_never_queued() {
    let app = spawn_app().await;
    let pending = app.start_simple_chat("still waiting").await;
    let mut waiting = open_live(&app, &pending, 0).await;
    next_matching(&mut waiting, |v| v["type"] == "ready").await;
    send_typing(&mut waiting).await;

    let (chat, channel_id) = accepted_chat(&app, "hello").await;
    let mut live = open_live(&app, &chat, 0).await;
    next_matching(&mut live, |v| v["type"] == "ready").await;
    for _ in 0..3 {
        send_typing(&mut live).await;
    }
    wait_until("the bot types in the chat channel", || async {
        bot_typing(&app, &channel_id) >= 1
    })
    .await;
    let event = app.sim.typing_events().last().unwrap().clone();
    assert_eq!(event["parent_id"], "");
    assert!(
        app.sim
            .typing_events()
            .iter()
            .all(|e| e["user_id"] == app.bot.id.as_str() && e["channel_id"] == channel_id.as_str()),
        "only the active chat's channel, and nothing for the pending chat: {:?}",
        app.sim.typing_events()
    );

    // While the event stream is down typing is dropped, not delivered later.
    app.sim.set_websockets_down(true);
    wait_until("parley notices", || async { !app.is_online() }).await;
    let mut during = open_live(&app, &chat, 0).await;
    next_matching(&mut during, |v| v["type"] == "ready").await;
    send_typing(&mut during).await;
    // Handled (and dropped) before the stream is back.
    handled(&mut during).await;
    app.sim.set_websockets_down(false);
    wait_until("parley is back", || async { app.is_online() }).await;
    let mut after = open_live(&app, &chat, 0).await;
    next_matching(&mut after, |v| v["type"] == "ready").await;
    send_typing(&mut after).await;
    wait_until("typing goes through again", || async {
        bot_typing(&app, &channel_id) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bot_typing(&app, &channel_id),
        2,
        "one for the three quick frames, none for the outage, one after it"
    );
}

#[tokio::test]
async fn edits_and_deletes_reach_the_widget_and_the_list() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "How much is it?").await;
    let mut live = open_live(&app, &chat, 0).await;
    next_matching(&mut live, |v| v["type"] == "ready").await;

    let price = app
        .sim
        .post_as(&app.alice, &channel_id, "It is 10 EUR")
        .await;
    let shown = next_matching(&mut live, |v| v["message"]["text"] == "It is 10 EUR").await;
    let id = shown["message"]["id"].as_i64().unwrap();
    assert!(shown["message"]["edited_at"].is_null());

    app.sim
        .edit_post_as(
            &app.alice,
            price["id"].as_str().unwrap(),
            "It is **12** EUR",
        )
        .await;
    let updated = next_matching(&mut live, |v| v["type"] == "message_updated").await;
    assert_eq!(updated["message"]["id"], id);
    assert_eq!(updated["message"]["text"], "It is **12** EUR");
    assert!(
        updated["message"]["html"]
            .as_str()
            .unwrap()
            .contains("<strong>12</strong>")
    );
    assert!(updated["message"]["edited_at"].is_string());
    let listed = app.wait_for_message(&chat, |m| m["id"] == id).await;
    assert_eq!(listed["text"], "It is **12** EUR");
    assert!(listed["edited_at"].is_string());

    let oops = app
        .sim
        .post_as(&app.alice, &channel_id, "wrong chat, sorry")
        .await;
    let shown = next_matching(&mut live, |v| v["message"]["text"] == "wrong chat, sorry").await;
    let oops_id = shown["message"]["id"].as_i64().unwrap();
    app.sim
        .delete_post_as(&app.alice, oops["id"].as_str().unwrap())
        .await;
    let deleted = next_matching(&mut live, |v| v["type"] == "message_deleted").await;
    assert_eq!(deleted, json!({"type": "message_deleted", "id": oops_id}));
    assert!(
        !app.messages(&chat).await.iter().any(|m| m["id"] == oops_id),
        "the list leaves deleted messages out"
    );
    let kept = app.transcript(&chat.id).await;
    let kept = kept.iter().find(|m| m.id == oops_id).unwrap();
    assert!(kept.deleted_at.is_some(), "kept for the back office");
    assert_eq!(kept.body, "wrong chat, sorry");

    // parley's own posts (the visitor's relayed text) are not the operators' to rewrite.
    let relayed = app.wait_for_bot_post(&channel_id, "How much is it?").await;
    app.sim
        .edit_post_as(&app.bot, relayed["id"].as_str().unwrap(), "tampered")
        .await;
    // Events are applied in order: once this edit shows, the one before was handled.
    app.sim
        .edit_post_as(&app.alice, price["id"].as_str().unwrap(), "It is 11 EUR")
        .await;
    next_matching(&mut live, |v| {
        v["type"] == "message_updated" && v["message"]["text"] == "It is 11 EUR"
    })
    .await;
    let texts = visitor_texts(&app.messages(&chat).await);
    assert!(texts.contains(&"How much is it?".to_owned()), "{texts:?}");
    assert!(!texts.contains(&"tampered".to_owned()), "{texts:?}");
}

#[tokio::test]
async fn edits_and_deletes_made_while_parley_was_not_listening_are_caught_up() {
    let app = spawn_app().await;
    let (chat, channel_id) = accepted_chat(&app, "hello").await;
    let keep = app
        .sim
        .post_as(&app.alice, &channel_id, "first answer")
        .await;
    let drop = app
        .sim
        .post_as(&app.alice, &channel_id, "second answer")
        .await;
    app.wait_for_message(&chat, |m| m["text"] == "second answer")
        .await;

    app.sim.set_websockets_down(true);
    wait_until("parley notices", || async { !app.is_online() }).await;
    app.sim
        .edit_post_as(
            &app.alice,
            keep["id"].as_str().unwrap(),
            "first answer, corrected",
        )
        .await;
    app.sim
        .delete_post_as(&app.alice, drop["id"].as_str().unwrap())
        .await;
    app.sim.set_websockets_down(false);

    app.wait_for_message(&chat, |m| m["text"] == "first answer, corrected")
        .await;
    wait_until("the deleted answer leaves the list", || async {
        !visitor_texts(&app.messages(&chat).await).contains(&"second answer".to_owned())
    })
    .await;
}

/// Waits until the request post is settled with `status_line` and has no button.
async fn wait_for_settled(app: &TestApp, post_id: &str, status_line: &str) {
    wait_until(
        &format!("the request post says `{status_line}`"),
        || async {
            let post = app.sim.post(post_id).unwrap();
            post["message"].as_str().unwrap().contains(status_line)
                && post["props"]["attachments"][0].get("actions").is_none()
        },
    )
    .await;
}

#[tokio::test]
async fn a_check_mark_on_the_request_accepts_the_chat() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Anyone there?").await;
    let request = app.request_post(&chat).await;
    let post_id = request["id"].as_str().unwrap();

    let reaction = app
        .sim
        .react_as(&app.alice, post_id, "white_check_mark")
        .await;
    assert_eq!(reaction["emoji_name"], "white_check_mark");
    let channel_id = app.chat_channel(&chat).await;
    wait_until("Alice joins the chat channel", || async {
        app.sim.channel_members(&channel_id).contains(&app.alice.id)
    })
    .await;
    let state = app.chat_state(&chat).await;
    assert_eq!(state["status"], "active");
    assert_eq!(state["operator"]["name"], "Alice Operator");
    wait_for_settled(&app, post_id, "accepted by @alice").await;
    app.wait_for_bot_post(&channel_id, "Anyone there?").await;
    let joined = app
        .messages(&chat)
        .await
        .into_iter()
        .filter(|m| m["event"] == "accepted")
        .count();
    assert_eq!(joined, 1);

    // Later reactions change nothing.
    app.sim
        .react_as(&app.bob, post_id, "white_check_mark")
        .await;
    app.sim.post_as(&app.alice, &channel_id, "Hi!").await;
    app.wait_for_message(&chat, |m| m["text"] == "Hi!").await;
    assert_eq!(
        app.chat_state(&chat).await["operator"]["name"],
        "Alice Operator"
    );
    assert!(!app.sim.channel_members(&channel_id).contains(&app.bob.id));
}

#[tokio::test]
async fn other_reactions_bots_and_other_posts_accept_nothing() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Waiting here").await;
    let request = app.request_post(&chat).await;
    let post_id = request["id"].as_str().unwrap().to_owned();
    let chatter = app
        .sim
        .post_as(&app.alice, &app.requests_channel_id, "coffee anyone?")
        .await;

    app.sim
        .react_as(&app.bot, &post_id, "white_check_mark")
        .await;
    app.sim.react_as(&app.alice, &post_id, "eyes").await;
    app.sim
        .react_as(
            &app.bob,
            chatter["id"].as_str().unwrap(),
            "white_check_mark",
        )
        .await;

    // Reactions are applied in order: once this one accepts, the ones before were seen.
    let marker = app.start_simple_chat("Second visitor").await;
    let marker_post = app.request_post(&marker).await;
    app.sim
        .react_as(
            &app.bob,
            marker_post["id"].as_str().unwrap(),
            "white_check_mark",
        )
        .await;
    wait_until("the second chat is accepted", || async {
        app.chat_state(&marker).await["status"] == "active"
    })
    .await;
    assert_eq!(app.chat_state(&chat).await["status"], "pending");
    let post = app.sim.post(&post_id).unwrap();
    assert_eq!(
        post["props"]["attachments"][0]["actions"][0]["id"], "accept",
        "the button is still there"
    );
}

#[tokio::test]
async fn a_click_and_a_reaction_at_once_have_exactly_one_winner() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Who takes me?").await;
    let post_id = app.request_post(&chat).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (click, _) = tokio::join!(
        app.sim.click_button(&app.bob, &post_id, "accept"),
        app.sim.react_as(&app.alice, &post_id, "white_check_mark"),
    );
    assert_eq!(click.0, 200);
    let channel_id = app.chat_channel(&chat).await;
    wait_until("the winner joins", || async {
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
    wait_for_settled(
        &app,
        &post_id,
        &format!("accepted by @{}", winner_user.username),
    )
    .await;
    wait_until("the outbox drains", || app.outbox_empty()).await;
    let members = app.sim.channel_members(&channel_id);
    assert!(members.contains(&winner_user.id));
    assert!(!members.contains(&loser_user.id), "{members:?}");
    let joined = app
        .messages(&chat)
        .await
        .into_iter()
        .filter(|m| m["event"] == "accepted")
        .count();
    assert_eq!(joined, 1, "one acceptance");
    let channels = app
        .sim
        .channels_in_team(&app.team_id)
        .into_iter()
        .filter(|c| c["purpose"].as_str() == Some(&format!("parley chat {}", chat.id)))
        .count();
    assert_eq!(channels, 1);
}

#[tokio::test]
async fn a_reaction_made_while_parley_was_not_listening_still_accepts() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello?").await;
    let post_id = app.request_post(&chat).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sim.set_websockets_down(true);
    wait_until("parley notices", || async { !app.is_online() }).await;
    app.sim
        .react_as(&app.alice, &post_id, "white_check_mark")
        .await;
    app.sim.set_websockets_down(false);

    wait_until("the chat is accepted after the reconnect", || async {
        app.chat_state(&chat).await["status"] == "active"
    })
    .await;
    assert_eq!(
        app.chat_state(&chat).await["operator"]["name"],
        "Alice Operator"
    );
    wait_for_settled(&app, &post_id, "accepted by @alice").await;
    let looked = app
        .sim
        .request_log()
        .iter()
        .any(|(m, p, _)| m == "GET" && *p == format!("/api/v4/posts/{post_id}/reactions"));
    assert!(looked, "parley looked at the request's reactions");
}
