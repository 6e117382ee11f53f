//! Visitor-controlled text on its way into Mattermost, end to end: a chat started, accepted,
//! written in, given a file, asked about (`!info`), reminded of and closed, and an offline
//! message, all with hostile name, e-mail, page, referrer, message and file name. Every post
//! the bot made, every ephemeral answer and the chat channel's header are then read with a
//! port of Mattermost's mention detection (tests/support/mattermost_mentions.rs) and a
//! Markdown parser: nobody is mentioned but the operator parley names itself, and no link or
//! image leads anywhere but to Mattermost or parley.

#[path = "../support/mattermost_mentions.rs"]
mod mattermost;

use mattermost::{Keywords, mentions};
use parley::storage::now_ms;
use pulldown_cmark::{Event, Parser, Tag};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with, wait_until};

/// Names and texts that mentioned someone or brought in links on a real Mattermost through
/// the escaping of 8557767, aimed at `bob` (who never takes part) and the whole channel.
const NAME: &str = "[Verify](https://evil.example) ![t](https://evil.example/p.png) _@here x-@bob";
const EMAIL: &str = "x.@channel.example";
const MESSAGE: &str = "help x.@channel _@here @@all x-@bob :@bob &commat;channel &#64;all &#x40;here \\@channel <@bob> [login](https://evil.example)";
const PAGE: &str = "https://shop.example/x.@here?q=&commat;all&r=_@channel";
const REFERRER: &str = "https://evil.example/-@bob";
const FILE_NAME: &str = "x.@here &commat;all [a](https://evil.example).txt";

/// Where a link may lead: Mattermost itself (permalinks, channels) or parley.
fn allowed_link(app: &TestApp, url: &str) -> bool {
    url.starts_with(&app.sim.url()) || url.starts_with(&app.url)
}

/// Fails unless `text` (Markdown Mattermost scans and renders) mentions nobody but the
/// operator `alice`, whom parley names on purpose, and links nowhere else.
fn assert_inert(app: &TestApp, what: &str, text: &str) {
    let found = mentions(text, &Keywords::Anyone);
    assert!(
        !found.here && !found.channel && !found.all,
        "{what} mentions the channel: {text:?} ({found:?})"
    );
    assert!(
        found.ids.iter().all(|k| k == "@alice"),
        "{what} mentions someone: {text:?} ({found:?})"
    );
    assert!(
        found
            .other_potential
            .iter()
            .all(|n| n.is_empty() || n == "alice"),
        "{what} names someone: {text:?} ({found:?})"
    );
    for event in Parser::new(text) {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                panic!("{what} shows an image from {dest_url}: {text:?}")
            }
            Event::Start(Tag::Link { dest_url, .. }) => assert!(
                allowed_link(app, &dest_url),
                "{what} links to {dest_url}: {text:?}"
            ),
            _ => {}
        }
    }
}

/// Every string in a post Mattermost scans or shows: the message and everything in the
/// attachments (pretext, text, field values, and the rest for good measure).
fn post_texts(post: &Value) -> Vec<String> {
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut out = vec![post["message"].as_str().unwrap_or_default().to_owned()];
    strings(&post["props"]["attachments"], &mut out);
    out
}

fn bot_posts_everywhere(app: &TestApp) -> Vec<Value> {
    app.sim
        .channels_in_team(&app.team_id)
        .iter()
        .flat_map(|c| app.sim.posts_in_channel(c["id"].as_str().unwrap()))
        .filter(|p| p["user_id"] == app.bot.id.as_str())
        .collect()
}

fn any_post_contains(app: &TestApp, needle: &str) -> bool {
    bot_posts_everywhere(app)
        .iter()
        .any(|p| post_texts(p).iter().any(|t| t.contains(needle)))
}

async fn upload(app: &TestApp, chat: &crate::helpers::VisitorChat, text: &str) -> u16 {
    let part = Part::bytes(b"hello".to_vec())
        .file_name(FILE_NAME.to_owned())
        .mime_str("text/plain")
        .unwrap();
    let form = Form::new().text("text", text.to_owned()).part("file", part);
    app.http
        .post(app.api(&format!("/chats/{}/files", chat.id)))
        .bearer_auth(&chat.token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn hostile_visitor_text_mentions_nobody_and_brings_no_links_anywhere_in_mattermost() {
    // No `@here` of parley's own in the reminder: any would be the visitor's.
    let app = spawn_app_with(|s| s.remind_with_here = false).await;
    // Mattermost refuses files, so parley names the file in a note.
    app.sim.set_config(|c| c.enable_file_attachments = false);

    let chat = app
        .start_chat(json!({
            "name": NAME, "email": EMAIL, "message": MESSAGE, "page_url": PAGE,
            "referrer": REFERRER, "phone": "+49 30 1234-56",
        }))
        .await;
    app.request_post(&chat).await;
    let report = app.run_lifecycle_once(now_ms() + 3 * 60_000 + 1_000).await;
    assert_eq!(report.reminded, 1);
    wait_until("the reminder is posted", || async {
        any_post_contains(&app, "has been waiting")
    })
    .await;

    let channel_id = app.accept(&chat, &app.alice).await;
    assert_eq!(app.send(&chat, MESSAGE).await.status(), 201);
    assert_eq!(upload(&app, &chat, "the file").await, 201);
    app.sim.post_as(&app.alice, &channel_id, "!info").await;
    wait_until("the message, the file note and !info arrive", || async {
        any_post_contains(&app, "could not be uploaded")
            && any_post_contains(&app, "The visitor")
            && app.bot_posts(&channel_id).len() >= 3
    })
    .await;
    assert_eq!(app.close(&chat).await.status(), 200);
    wait_until("the close notice arrives", || async {
        any_post_contains(&app, "ended the chat")
    })
    .await;

    let offline = app
        .http
        .post(app.api("/offline-messages"))
        .json(&json!({
            "name": NAME, "email": EMAIL, "message": MESSAGE, "page_url": PAGE,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(offline.status(), 201);
    wait_until("the offline message is posted", || async {
        any_post_contains(&app, "Message left while nobody was online")
    })
    .await;

    let posts = bot_posts_everywhere(&app);
    // request, reminder, relayed message (with the file note), !info, close notice, offline.
    assert!(posts.len() >= 6, "{posts:#?}");
    for post in &posts {
        for text in post_texts(post) {
            assert_inert(&app, &format!("post {}", post["id"]), &text);
        }
    }
    let ephemeral = app.sim.ephemeral_posts_for(&app.alice.id);
    assert!(
        ephemeral.iter().any(|p| p["message"]
            .as_str()
            .unwrap_or_default()
            .contains("You accepted")),
        "{ephemeral:#?}"
    );
    for post in &ephemeral {
        for text in post_texts(post) {
            assert_inert(&app, "the ephemeral answer", &text);
        }
    }

    // The channel: the header is Markdown (made inert), the purpose is parley's own, and the
    // display name is plain text, shown as typed (Mattermost renders no Markdown there and
    // looks for no mentions in it).
    let channel = app.sim.channel(&channel_id).unwrap();
    assert_inert(&app, "the header", channel["header"].as_str().unwrap());
    assert_eq!(channel["purpose"], format!("parley chat {}", chat.id));
    let display_name = channel["display_name"].as_str().unwrap();
    assert!(
        format!("Chat: {NAME}").starts_with(display_name.trim_end_matches('…')),
        "{display_name:?}"
    );
}

/// Operator Markdown with `<` in code (issue 12, item 5): the widget shows the `<`, not
/// `&lt;`, and HTML-looking text stays text without swallowing the Markdown after it.
#[tokio::test]
async fn operator_code_with_a_less_than_sign_shows_it_in_the_widget() {
    let app = spawn_app_with(|_| {}).await;
    let chat = app.start_simple_chat("hi").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    let cases = [
        ("`if a<b`", "<code>if a&lt;b</code>"),
        ("```\nx <= 1 && y\n```", "x &lt;= 1 &amp;&amp; y"),
        ("<div>\n**still bold**", "<strong>still bold</strong>"),
        ("1 < 2 <b>x</b>", "1 &lt; 2 &lt;b&gt;x&lt;/b&gt;"),
    ];
    for (i, (markdown, want)) in cases.iter().enumerate() {
        app.sim.post_as(&app.alice, &channel_id, markdown).await;
        let m = app
            .wait_for_message(&chat, |m| {
                m["sender"] == "operator" && m["text"].as_str() == Some(markdown)
            })
            .await;
        let html = m["html"].as_str().unwrap();
        assert!(html.contains(want), "case {i}: {markdown:?} -> {html}");
        assert!(!html.contains("&amp;lt;"), "case {i}: {html}");
        assert!(!html.contains("<div") && !html.contains("<b>"), "{html}");
    }
}
