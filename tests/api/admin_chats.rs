//! Chats and offline messages in the back office: the dashboard, search and transcripts,
//! export, deletion with the files, and offline messages marked handled.

use std::time::Duration;

use parley::app::accounts::Role;
use reqwest::header;
use serde_json::{Value, json};

use crate::helpers::{
    PNG,
    backoffice::{audit, location, offline_message, sales_department, signed_in},
    poll_until, spawn_app, spawn_app_with, upload, wait_until,
};

#[tokio::test]
async fn the_dashboard_shows_chats_the_connection_and_bridge_errors() {
    // Arrange: a chat whose request post Mattermost refuses.
    let app = spawn_app().await;
    let agent = signed_in(&app, "m@example.com", Role::Manager).await;
    app.sim.fail_next_requests(1, 403);
    let refused = app.start_simple_chat("This one fails").await;
    wait_until("the refusal is recorded", || async {
        !app.bridge_errors().await.is_empty()
    })
    .await;
    app.start_simple_chat("Waiting for help").await;

    // Act
    let (status, html) = agent.page("/admin").await;

    // Assert
    assert_eq!(status, 200);
    assert!(html.contains("class=\"dot ok\""), "connected: {html}");
    assert!(html.contains("waiting") && html.contains("today"));
    assert!(
        html.contains("sim.injected_failure"),
        "the error id is shown: {html}"
    );
    assert!(html.contains(&refused.id[..8]));
    assert!(html.contains("Erika Visitor"), "who is waiting");

    // Operators online now, from the presence poll; per department when there are some.
    app.sim.set_status(&app.bob.id, "away");
    app.poll_presence().await;
    let (_, html) = agent.page("/admin").await;
    assert!(
        html.contains("1 online, 1 away, 0 do not disturb, of 2 operator(s)"),
        "{html}"
    );
    sales_department(&app).await;
    app.poll_presence().await;
    let (_, html) = agent.page("/admin").await;
    assert!(
        html.contains("Sales</a>: 1 online, 1 away"),
        "per department: {html}"
    );
}

#[tokio::test]
async fn chats_can_be_found_and_their_transcript_read() {
    // Arrange: one chat answered by Alice, one still waiting.
    let app = spawn_app().await;
    let agent = signed_in(&app, "m@example.com", Role::Manager).await;
    let answered = app.start_chat(json!({"name": "Paula Parcel", "email": "paula@example.com", "message": "Where is my parcel 4711?"})).await;
    let channel = app.accept(&answered, &app.alice).await;
    app.sim
        .post_as(&app.alice, &channel, "It left the warehouse today.")
        .await;
    app.wait_for_message(&answered, |m| m["sender"] == "operator")
        .await;
    // A note, an edited post and a deleted one.
    app.sim
        .post_as(&app.alice, &channel, "!note VIP customer, be quick")
        .await;
    let edited = app.sim.post_as(&app.alice, &channel, "Tracking: 123").await;
    app.wait_for_message(&answered, |m| m["text"] == "Tracking: 123")
        .await;
    let edited_id = edited["id"].as_str().unwrap().to_owned();
    app.sim
        .edit_post_as(&app.alice, &edited_id, "Tracking: 124")
        .await;
    let gone = app
        .sim
        .post_as(&app.alice, &channel, "Oops, wrong chat")
        .await;
    app.wait_for_message(&answered, |m| m["text"] == "Oops, wrong chat")
        .await;
    app.sim
        .delete_post_as(&app.alice, gone["id"].as_str().unwrap())
        .await;
    let waiting = app
        .start_chat(json!({"name": "Walter Wait", "message": "<b>Anyone</b> there?"}))
        .await;

    // Act and assert: filters.
    let (_, html) = agent.page("/admin/chats?q=parcel+4711").await;
    assert!(
        html.contains("Paula Parcel") && !html.contains("Walter Wait"),
        "text search"
    );
    let (_, html) = agent.page("/admin/chats?status=pending").await;
    assert!(
        !html.contains("Paula Parcel") && html.contains("Walter Wait"),
        "status filter"
    );
    let (_, html) = agent.page("/admin/chats?operator=alice").await;
    assert!(
        html.contains("Paula Parcel") && !html.contains("Walter Wait"),
        "operator filter"
    );
    let (_, html) = agent
        .page("/admin/chats?from=2000-01-01&to=2000-01-02")
        .await;
    assert!(
        !html.contains("Paula Parcel") && html.contains("No chats match"),
        "date range"
    );
    let (_, html) = agent.page("/admin/chats").await;
    assert!(html.contains("Page 1 of 1 (2 in all)"));

    // The transcript.
    let (status, html) = agent.page(&format!("/admin/chats/{}", answered.id)).await;
    assert_eq!(status, 200);
    for expected in [
        "Where is my parcel 4711?",
        "It left the warehouse today.",
        "Alice Operator",
        "paula@example.com",
        "joined the chat",
        "Wait",
        "Duration",
    ] {
        assert!(html.contains(expected), "`{expected}` on the chat's page");
    }
    let transcript_marked = || async {
        let (_, html) = agent.page(&format!("/admin/chats/{}", answered.id)).await;
        html.contains("class=\"msg operator note\"")
            && html.contains("VIP customer, be quick")
            && html.contains("class=\"msg operator deleted\"")
            && html.contains("deleted in Mattermost")
            && html.contains("Tracking: 124")
            && html.contains("edited")
    };
    poll_until(
        "notes, edits and deletions are marked",
        Duration::from_secs(5),
        || async { transcript_marked().await.then_some(()) },
    )
    .await;
    let (_, html) = agent.page(&format!("/admin/chats/{}", waiting.id)).await;
    assert!(
        html.contains("&lt;b&gt;Anyone&lt;/b&gt; there?"),
        "visitor text is escaped"
    );
    let response = agent.get(&format!("/admin/chats/{}", waiting.id)).await;
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(agent.get("/admin/chats/no-such-chat").await.status(), 404);
}

#[tokio::test]
async fn a_chat_exports_as_json_and_as_text() {
    let app = spawn_app().await;
    let agent = signed_in(&app, "m@example.com", Role::Manager).await;
    let chat = app.start_simple_chat("My order is late").await;
    app.send(&chat, "Order 123").await;

    let response = agent
        .get(&format!("/admin/chats/{}/export.json", chat.id))
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["chat"]["id"], chat.id.as_str());
    assert_eq!(body["chat"]["visitor"]["email"], "erika@example.com");
    let texts: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["My order is late", "Order 123"]);

    let response = agent
        .get(&format!("/admin/chats/{}/export.txt", chat.id))
        .await;
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("Visitor: Erika Visitor <erika@example.com>"),
        "{text}"
    );
    assert!(
        text.contains("Erika Visitor: My order is late")
            && text.contains("Erika Visitor: Order 123"),
        "{text}"
    );
}

#[tokio::test]
async fn deleting_a_chat_removes_it_with_its_files_and_is_audited() {
    // Arrange: an accepted chat with a file.
    let app = spawn_app_with(|_| {}).await;
    app.sim.set_config(|c| c.enable_api_channel_deletion = true);
    let agent = signed_in(&app, "m@example.com", Role::Manager).await;
    let chat = app.start_simple_chat("Please forget me").await;
    let channel = app.accept(&chat, &app.alice).await;
    let (status, body) = upload(&app, &chat, None, &[("me.png", PNG)]).await;
    assert_eq!(status, 201);
    let file_id = body["message"]["files"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, html) = agent.page(&format!("/admin/chats/{}", chat.id)).await;
    assert!(html.contains(&format!("/admin/chats/{}/files/{file_id}", chat.id)));
    let file = agent
        .get(&format!("/admin/chats/{}/files/{file_id}", chat.id))
        .await;
    assert_eq!(file.status(), 200);
    assert!(file.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let files_dir = app.data_dir().join("files").join(&chat.id);
    assert!(files_dir.exists());

    // Act: the confirmation page, then the deletion.
    let (status, html) = agent
        .page(&format!("/admin/chats/{}/delete", chat.id))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Delete this chat permanently"));
    let response = agent
        .submit(&format!("/admin/chats/{}/delete", chat.id), &[])
        .await;

    // Assert
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/chats?deleted=1");
    assert!(app.chat_gone(&chat.id).await);
    assert!(app.file_gone(&file_id).await);
    assert!(!files_dir.exists(), "the files are gone from disk");
    assert_eq!(
        agent
            .get(&format!("/admin/chats/{}", chat.id))
            .await
            .status(),
        404
    );
    assert!(
        app.sim.channel(&channel).is_none(),
        "the Mattermost channel is deleted"
    );
    let log = audit(&app).await;
    let entry = log
        .iter()
        .find(|(a, _, _)| a == "chat_deleted")
        .expect("an audit entry");
    assert_eq!(entry.1, "m@example.com");
    assert!(
        entry.2.contains(&chat.id)
            && entry.2.contains("1 files")
            && entry.2.contains("channel deleted"),
        "{entry:?}"
    );
    assert!(
        !entry.2.contains("erika"),
        "no visitor details stay behind: {entry:?}"
    );
}

#[tokio::test]
async fn offline_messages_are_listed_and_marked_handled() {
    let app = spawn_app().await;
    let agent = signed_in(&app, "m@example.com", Role::Manager).await;
    let id = offline_message(&app).await;

    let (_, html) = agent.page("/admin/offline").await;
    assert!(html.contains("Call me back, please") && html.contains("olga@example.com"));
    let response = agent
        .submit(&format!("/admin/offline/{id}/handled"), &[])
        .await;
    assert_eq!(response.status(), 303);

    let (_, open) = agent.page("/admin/offline").await;
    assert!(!open.contains("Call me back, please"), "no longer open");
    let (_, handled) = agent.page("/admin/offline?show=handled").await;
    assert!(handled.contains("Call me back, please") && handled.contains("Handled "));
    assert_eq!(
        agent
            .submit("/admin/offline/999999/handled", &[])
            .await
            .status(),
        404
    );
}
