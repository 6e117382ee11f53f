//! Files both ways: a visitor's upload reaches the chat channel (also when sent before an
//! operator accepted, and through an outage), an operator's file reaches the visitor and stays
//! in parley's storage, and every refusal is clear and keeps nothing.

use std::path::Path;

use serde_json::Value;

use crate::helpers::{PNG, TestApp, spawn_app, spawn_app_with, upload, wait_until};

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
const HTML: &[u8] = b"<html><script>alert(document.cookie)</script></html>";

/// Bot posts in the channel that carry files.
fn posts_with_files(app: &TestApp, channel_id: &str) -> Vec<Value> {
    app.bot_posts(channel_id)
        .into_iter()
        .filter(|p| p["file_ids"].as_array().is_some_and(|ids| !ids.is_empty()))
        .collect()
}

async fn wait_for_file_posts(app: &TestApp, channel_id: &str, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} post(s) with files in the channel"),
        || async { posts_with_files(app, channel_id).len() >= n },
    )
    .await;
    posts_with_files(app, channel_id)
}

/// Every file stored under the data dir's `files/` (not `tmp/`).
fn stored_files(app: &TestApp) -> Vec<String> {
    let root = app.data_dir().join("files");
    let mut found = Vec::new();
    for chat_dir in std::fs::read_dir(&root).unwrap().flatten() {
        if chat_dir.file_name() == "tmp" {
            continue;
        }
        for f in std::fs::read_dir(chat_dir.path()).unwrap().flatten() {
            found.push(f.path().display().to_string());
        }
    }
    found
}

fn tmp_is_empty(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("files").join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

#[tokio::test]
async fn a_visitors_files_reach_the_chat_channel_before_and_after_acceptance() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("My order arrived broken").await;

    // Sent while nobody has accepted yet: stored and shown at once, posted later.
    let (status, body) = upload(&app, &chat, Some("Here is a photo"), &[("broken.png", PNG)]).await;
    assert_eq!(status, 201, "{body}");
    let message = &body["message"];
    assert_eq!(message["text"], "Here is a photo");
    let file = &message["files"][0];
    assert_eq!(file["name"], "broken.png");
    assert_eq!(file["content_type"], "image/png");
    assert_eq!(file["image"], true);
    assert_eq!(file["size"], PNG.len());

    let channel_id = app.accept(&chat, &app.alice).await;
    let posts = wait_for_file_posts(&app, &channel_id, 1).await;
    assert!(
        posts[0]["message"]
            .as_str()
            .unwrap()
            .contains("Here is a photo")
    );
    let mm_file = posts[0]["file_ids"][0].as_str().unwrap();
    assert_eq!(
        app.sim.file_bytes(mm_file).unwrap(),
        PNG,
        "the same bytes in Mattermost"
    );
    assert_eq!(
        posts[0]["metadata"]["files"][0]["name"], "broken.png",
        "Mattermost knows the name, so it previews the image"
    );

    // After acceptance, without text.
    let (status, body) = upload(&app, &chat, None, &[("invoice.pdf", PDF)]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["message"]["files"][0]["content_type"],
        "application/pdf"
    );
    assert_eq!(body["message"]["files"][0]["image"], false);
    let posts = wait_for_file_posts(&app, &channel_id, 2).await;
    assert_eq!(posts.len(), 2);
    let mm_pdf = posts[1]["file_ids"][0].as_str().unwrap();
    assert_eq!(app.sim.file_bytes(mm_pdf).unwrap(), PDF);

    // Both are in the transcript, with working links.
    let messages = app.messages(&chat).await;
    let with_files: Vec<&Value> = messages
        .iter()
        .filter(|m| !m["files"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(with_files.len(), 2);
    wait_until("delivery is done", || app.outbox_empty()).await;
}

#[tokio::test]
async fn downloads_are_for_the_chats_visitor_and_never_run_in_parleys_origin() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello").await;
    let other = app.start_simple_chat("Someone else").await;
    let (_, body) = upload(&app, &chat, None, &[("photo.png", PNG)]).await;
    let image = body["message"]["files"][0].clone();
    let (_, body) = upload(
        &app,
        &chat,
        None,
        &[("notes.txt", b"plain <b>text</b> notes")],
    )
    .await;
    let text_file = body["message"]["files"][0].clone();

    // The signed link works without a token and shows the image inline.
    let response = app
        .http
        .get(image["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);

    // Anything that is not an image is downloaded, never shown.
    let response = app
        .http
        .get(text_file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"notes.txt\"")
    );

    // A tampered or foreign link is refused.
    let url = image["url"].as_str().unwrap();
    let tampered = url.replace("signature=", "signature=00");
    let response = app.http.get(&tampered).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_link");
    let (_, foreign) = url.split_once("?").unwrap();
    let other_file = text_file["id"].as_str().unwrap();
    let response = app
        .http
        .get(app.api(&format!("/files/{other_file}?{foreign}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "a signature is bound to its file");

    // With the token: the chat's own file yes, another chat's file no.
    let own = app
        .http
        .get(app.api(&format!(
            "/chats/{}/files/{}",
            chat.id,
            image["id"].as_str().unwrap()
        )))
        .bearer_auth(&chat.token)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let stolen = app
        .http
        .get(app.api(&format!(
            "/chats/{}/files/{}",
            other.id,
            image["id"].as_str().unwrap()
        )))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stolen.status(),
        404,
        "another chat's visitor cannot fetch the file"
    );
    let no_token = app
        .http
        .get(app.api(&format!(
            "/chats/{}/files/{}",
            chat.id,
            image["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
}

#[tokio::test]
async fn refused_files_get_clear_errors_and_nothing_is_kept() {
    let app = spawn_app_with(|s| {
        s.files.max_bytes = 1024;
        s.files.max_per_message = 2;
        s.files.max_chat_bytes = 2048;
    })
    .await;
    let chat = app.start_simple_chat("Hello").await;
    let big = vec![b'a'; 1025];
    type Files<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(&str, Files, u16, &str)> = vec![
        ("oversize", vec![("big.txt", &big)], 413, "file_too_large"),
        ("empty", vec![("empty.png", b"")], 422, "file_empty"),
        (
            "disguised HTML",
            vec![("evil.png", HTML)],
            415,
            "file_type_not_allowed",
        ),
        (
            "SVG",
            vec![(
                "logo.svg",
                b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
            )],
            415,
            "file_type_not_allowed",
        ),
        (
            "too many",
            vec![("a.png", PNG), ("b.png", PNG), ("c.png", PNG)],
            422,
            "too_many_files",
        ),
        // A good file followed by a bad one: the good one is not kept either.
        (
            "one bad among good",
            vec![("good.png", PNG), ("evil.png", HTML)],
            415,
            "file_type_not_allowed",
        ),
        ("no file", vec![], 422, "file_required"),
    ];
    for (what, files, status, code) in cases {
        let (got, body) = upload(&app, &chat, Some("see attached"), &files).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 10,
            "{what}"
        );
    }
    // Not multipart at all.
    let response = app
        .http
        .post(app.api(&format!("/chats/{}/files", chat.id)))
        .bearer_auth(&chat.token)
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "multipart_required");

    assert!(
        stored_files(&app).is_empty(),
        "refused uploads keep no bytes"
    );
    assert!(tmp_is_empty(app.data_dir()), "no temporary leftovers");
    assert_eq!(app.messages(&chat).await.len(), 1, "only the first message");

    // A path in the name is display text only; the file lands in parley's own place.
    let (status, body) = upload(
        &app,
        &chat,
        None,
        &[("../../../etc/passwd.txt", b"root:x:0:0")],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"]["files"][0]["name"], "passwd.txt");
    let stored = stored_files(&app);
    assert_eq!(stored.len(), 1);
    let files_dir = app.data_dir().join("files");
    assert!(stored[0].starts_with(&files_dir.display().to_string()));
    assert!(!app.data_dir().join("etc").exists());

    // The chat's allowance (2 KiB): 10 + 1000 + 1000 bytes fit, one more byte does not.
    let kb = vec![b'k'; 1000];
    assert_eq!(upload(&app, &chat, None, &[("a.txt", &kb)]).await.0, 201);
    assert_eq!(upload(&app, &chat, None, &[("b.txt", &kb)]).await.0, 201);
    let (status, body) = upload(&app, &chat, None, &[("c.txt", &kb[..100])]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "chat_files_limit");
    assert_eq!(stored_files(&app).len(), 3);

    // Closed chats take no files.
    app.close(&chat).await;
    let (status, body) = upload(&app, &chat, None, &[("late.png", PNG)]).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "chat_closed");
}

#[tokio::test]
async fn an_outage_during_file_delivery_delays_it_but_never_loses_or_doubles_it() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    wait_until("the greeting is delivered", || app.outbox_empty()).await;

    app.sim.set_down(true);
    let (status, _) = upload(&app, &chat, Some("first"), &[("one.png", PNG)]).await;
    assert_eq!(status, 201, "the visitor is not kept waiting by Mattermost");
    // The worker tried during the outage, and nothing went through.
    app.wait_for_failed_delivery().await;
    assert!(posts_with_files(&app, &channel_id).is_empty());
    app.sim.set_down(false);
    // Flaky afterwards: failures between the upload and the post.
    app.sim.fail_next_requests(3, 502);
    let (status, _) = upload(&app, &chat, Some("second"), &[("two.pdf", PDF)]).await;
    assert_eq!(status, 201);

    let posts = wait_for_file_posts(&app, &channel_id, 2).await;
    wait_until("delivery is done", || app.outbox_empty()).await;
    let posts_now = posts_with_files(&app, &channel_id);
    assert_eq!(
        posts_now.len(),
        2,
        "each file message posted once: {posts:#?}"
    );
    assert!(posts_now[0]["message"].as_str().unwrap().contains("first"));
    assert!(posts_now[1]["message"].as_str().unwrap().contains("second"));
    for p in &posts_now {
        assert_eq!(p["file_ids"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn an_operators_file_reaches_the_visitor_and_stays_after_mattermost_is_gone() {
    let app = spawn_app_with(|s| s.files.max_bytes = 4096).await;
    let chat = app.start_simple_chat("Can you send the manual?").await;
    let channel_id = app.accept(&chat, &app.alice).await;

    let image = app
        .sim
        .upload_file_as(&app.alice, &channel_id, "diagram.png", PNG.to_vec())
        .await;
    let page = app
        .sim
        .upload_file_as(&app.alice, &channel_id, "manual.html", HTML.to_vec())
        .await;
    let ids = vec![
        image["id"].as_str().unwrap().to_owned(),
        page["id"].as_str().unwrap().to_owned(),
    ];
    app.sim
        .post_with_files_as(&app.alice, &channel_id, "Here you go", &ids)
        .await;
    let message = app
        .wait_for_message(&chat, |m| m["text"] == "Here you go")
        .await;
    assert_eq!(message["sender"], "operator");
    assert_eq!(message["author"], "Alice Operator");
    let files = message["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["name"], "diagram.png");
    assert_eq!(files[0]["image"], true);
    assert_eq!(files[1]["name"], "manual.html");
    assert_eq!(files[1]["image"], false);

    // An image alone, without text, is a message too; one over the limit is reported.
    let big = app
        .sim
        .upload_file_as(&app.alice, &channel_id, "huge.png", vec![0u8; 5000])
        .await;
    app.sim
        .post_with_files_as(
            &app.alice,
            &channel_id,
            "",
            &[big["id"].as_str().unwrap().to_owned()],
        )
        .await;
    app.wait_for_bot_post(&channel_id, "huge.png").await;

    // Mattermost gone: parley still serves its own copies.
    app.sim.set_down(true);
    let response = app
        .http
        .get(files[0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);
    let response = app
        .http
        .get(files[1]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-type"], "application/octet-stream",
        "HTML is never served as HTML"
    );
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), HTML);
}

#[tokio::test]
async fn a_file_mattermost_refuses_leaves_the_text_and_a_note() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    // This server's FileSettings.MaxFileSize is smaller than the visitor's file.
    app.sim.set_config(|c| c.max_file_size = 16);
    let (status, _) = upload(&app, &chat, Some("the screenshot"), &[("shot.png", PNG)]).await;
    assert_eq!(status, 201);
    let post = app.wait_for_bot_post(&channel_id, "the screenshot").await;
    let text = post["message"].as_str().unwrap();
    assert!(
        text.contains("shot.png could not be uploaded to Mattermost"),
        "{text}"
    );
    wait_until("delivery is done", || app.outbox_empty()).await;
}

#[tokio::test]
async fn a_deleted_operator_post_takes_its_files_from_the_visitor() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello").await;
    let channel_id = app.accept(&chat, &app.alice).await;
    let file = app
        .sim
        .upload_file_as(&app.alice, &channel_id, "wrong-customer.png", PNG.to_vec())
        .await;
    let post = app
        .sim
        .post_with_files_as(
            &app.alice,
            &channel_id,
            "oops",
            &[file["id"].as_str().unwrap().to_owned()],
        )
        .await;
    let message = app.wait_for_message(&chat, |m| m["text"] == "oops").await;
    let url = message["files"][0]["url"].as_str().unwrap().to_owned();
    let file_id = message["files"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 200);

    app.sim
        .delete_post_as(&app.alice, post["id"].as_str().unwrap())
        .await;
    wait_until("the message is gone from the transcript", || async {
        app.messages(&chat)
            .await
            .iter()
            .all(|m| m["text"] != "oops")
    })
    .await;
    assert_eq!(
        app.http.get(&url).send().await.unwrap().status(),
        404,
        "a link handed out earlier stops working"
    );
    let with_token = app
        .http
        .get(app.api(&format!("/chats/{}/files/{file_id}", chat.id)))
        .bearer_auth(&chat.token)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 404);
}
