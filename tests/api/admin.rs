//! The back office through HTTP (access control route by route, CSRF, sign-in limits, every
//! page, export, deletion, settings, managers) and `parley doctor` against the simulator,
//! configured well and badly, through the library and the real binary.

use std::time::Duration;

use mattermost_sim::{MattermostSim, SimConfig, SimUser};
use parley::{
    backoffice::{Role, accounts},
    config::{MattermostSettings, Settings},
    departments,
    doctor::{self, Verdict},
    storage::departments::DepartmentRow,
};
use reqwest::{header, multipart};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp,
    backoffice::{Agent, PASSWORD, audit, location, log_in, signed_in, use_setup_link},
    binary::run_binary,
    spawn_app, spawn_app_with, wait_until,
};

#[tokio::test]
async fn the_first_run_link_creates_the_first_admin_once() {
    // Arrange
    let app = spawn_app().await;
    let link = accounts::first_run_link(&app.state.store, &app.url)
        .await
        .unwrap()
        .expect("no manager yet, so there is a first-run link");
    assert!(link.starts_with(&format!("{}/admin/setup/", app.url)));

    // Act
    let agent = Agent::new(&app);
    let (_, html) = agent.page(&link).await;
    assert!(html.contains("Create the first admin"), "{html}");
    let response = use_setup_link(&agent, &link, Some("Boss@Example.com")).await;

    // Assert
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin");
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("parley_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");
    let (status, html) = agent.page("/admin").await;
    assert_eq!(status, 200);
    assert!(html.contains("Dashboard") && html.contains("boss@example.com"));
    assert!(html.contains("Settings"), "an admin sees the admin pages");
    let (status, _) = Agent::new(&app).page(&link).await;
    assert_eq!(status, 410, "the link works once");
    assert!(
        accounts::first_run_link(&app.state.store, &app.url)
            .await
            .unwrap()
            .is_none(),
        "no first-run link once a manager exists"
    );
    let (agent2, response) = log_in(&app, "boss@example.com", PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(agent2.page("/admin").await.0, 200);
    let log = audit(&app).await;
    assert!(log.iter().any(|(a, _, _)| a == "first_admin_created"));
    assert!(
        log.iter()
            .any(|(a, who, _)| a == "sign_in" && who == "boss@example.com")
    );
}

/// Every back-office route: method, path, and who may use it (`None`: anyone).
fn routes(
    chat: &str,
    offline: i64,
    manager: i64,
    department: i64,
) -> Vec<(&'static str, String, Option<Role>)> {
    let m = Some(Role::Manager);
    let a = Some(Role::Admin);
    vec![
        ("GET", "/admin".into(), m),
        ("GET", "/admin/chats".into(), m),
        ("GET", format!("/admin/chats/{chat}"), m),
        ("GET", format!("/admin/chats/{chat}/export.json"), m),
        ("GET", format!("/admin/chats/{chat}/export.txt"), m),
        ("GET", format!("/admin/chats/{chat}/delete"), m),
        ("GET", format!("/admin/chats/{chat}/files/none"), m),
        ("GET", "/admin/offline".into(), m),
        ("POST", format!("/admin/offline/{offline}/handled"), m),
        ("GET", "/admin/departments".into(), m),
        ("GET", "/admin/departments/new".into(), m),
        ("POST", "/admin/departments".into(), m),
        ("GET", format!("/admin/departments/{department}"), m),
        ("POST", format!("/admin/departments/{department}"), m),
        ("GET", format!("/admin/departments/{department}/delete"), m),
        ("GET", "/admin/audit".into(), a),
        ("GET", "/admin/settings".into(), a),
        ("POST", "/admin/settings/test".into(), a),
        ("POST", "/admin/settings/connection/teams".into(), a),
        ("POST", "/admin/settings/connection/channels".into(), a),
        ("POST", "/admin/settings/connection/test".into(), a),
        ("POST", "/admin/settings/connection".into(), a),
        ("GET", "/admin/managers".into(), a),
        ("POST", format!("/admin/managers/{manager}/disable"), a),
        ("POST", format!("/admin/managers/{manager}/enable"), a),
        ("POST", format!("/admin/managers/{manager}/reset"), a),
        ("POST", "/admin/managers".into(), a),
        ("POST", "/admin/settings".into(), a),
        // Last: these end what they act on.
        ("POST", format!("/admin/chats/{chat}/delete"), m),
        ("POST", format!("/admin/departments/{department}/delete"), m),
        ("POST", "/admin/logout".into(), m),
    ]
}

/// A department "Sales" routed to the simulator's team and requests channel.
async fn sales_department(app: &TestApp) -> i64 {
    let mut row = DepartmentRow {
        id: 0,
        name: "Sales".into(),
        team: "support".into(),
        channel: "requests".into(),
        position: 0,
        hours: None,
        timezone: "UTC".into(),
        text_title: None,
        text_greeting: None,
        text_offline: None,
        template_request: None,
        template_channel_display_name: None,
        template_channel_header: None,
        template_first_post: None,
        created_at: 0,
        updated_at: 0,
    };
    departments::validate(&mut row).unwrap();
    app.state.store.insert_department(&row).await.unwrap()
}

async fn offline_message(app: &TestApp) -> i64 {
    let response = app
        .http
        .post(app.api("/offline-messages"))
        .json(&json!({"name": "Olga", "email": "olga@example.com", "message": "Call me back, please"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn every_route_refuses_anonymous_and_under_privileged_requests() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello").await;
    let offline = offline_message(&app).await;
    let department = sales_department(&app).await;
    let (target, _) = accounts::invite(&app.state.store, &app.url, "t@example.com", Role::Manager)
        .await
        .unwrap();
    let anonymous = Agent::new(&app);
    let manager = signed_in(&app, "m@example.com", Role::Manager).await;
    let manager_csrf = manager.csrf().await;

    for (method, path, role) in routes(&chat.id, offline, target.id, department) {
        let role = role.unwrap();
        // Anonymous: pages send to the sign-in page, actions are refused.
        let response = if method == "GET" {
            anonymous.get(&path).await
        } else {
            anonymous.post(&path, &[("csrf", "x")]).await
        };
        if method == "GET" {
            assert_eq!(response.status(), 303, "anonymous {method} {path}");
            assert!(
                location(&response).starts_with("/admin/login?next=%2Fadmin"),
                "anonymous {method} {path} → {}",
                location(&response)
            );
        } else {
            assert_eq!(response.status(), 401, "anonymous {method} {path}");
        }
        // A manager: admin routes are forbidden, even with a valid token.
        if role == Role::Admin {
            let response = if method == "GET" {
                manager.get(&path).await
            } else {
                manager.post(&path, &[("csrf", &manager_csrf)]).await
            };
            assert_eq!(response.status(), 403, "manager {method} {path}");
        }
    }

    // An admin may use every route; a manager every manager route.
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    for (method, path, role) in routes(&chat.id, offline, target.id, department) {
        let agents: Vec<&Agent> = if role == Some(Role::Manager)
            && !path.ends_with("logout")
            && !path.ends_with("/delete")
        {
            vec![&manager, &admin]
        } else {
            vec![&admin]
        };
        for agent in agents {
            let response = if method == "GET" {
                agent.get(&path).await
            } else {
                agent
                    .submit(&path, &[("email", "new@example.com"), ("role", "manager")])
                    .await
            };
            let status = response.status().as_u16();
            assert!(
                ![401, 403].contains(&status) && status != 303
                    || location(&response).starts_with("/admin")
                        && !location(&response).starts_with("/admin/login?"),
                "allowed {method} {path}: {status} → {}",
                location(&response)
            );
        }
    }
}

#[tokio::test]
async fn forms_without_the_session_token_or_from_another_origin_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Please keep me").await;
    let offline = offline_message(&app).await;
    let department = sales_department(&app).await;
    let (target, _) = accounts::invite(&app.state.store, &app.url, "t@example.com", Role::Manager)
        .await
        .unwrap();
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let other = signed_in(&app, "b@example.com", Role::Admin).await;
    let others_token = other.csrf().await;
    let token = admin.csrf().await;

    for (method, path, _) in routes(&chat.id, offline, target.id, department) {
        if method != "POST" {
            continue;
        }
        // Act and assert: no token, a wrong one, another session's one.
        for form in [
            vec![],
            vec![("csrf", "wrong")],
            vec![("csrf", others_token.as_str())],
        ] {
            let response = admin.post(&path, &form).await;
            assert_eq!(response.status(), 403, "POST {path} with {form:?}");
        }
        // The right token from another site.
        let response = admin
            .post_from("https://evil.example", &path, &[("csrf", token.as_str())])
            .await;
        assert_eq!(response.status(), 403, "POST {path} from another origin");
    }
    assert!(app.state.store.get_chat(&chat.id).await.unwrap().is_some());
    assert_eq!(admin.page("/admin").await.0, 200, "still signed in");

    // The sign-in form is protected too (double-submit token).
    let anonymous = Agent::new(&app);
    let response = anonymous
        .post(
            "/admin/login",
            &[("email", "a@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn sign_in_is_limited_per_account_and_failures_are_audited() {
    // Arrange
    let app = spawn_app().await;
    drop(signed_in(&app, "m@example.com", Role::Manager).await);

    // Act: five wrong passwords, then the right one.
    for _ in 0..5 {
        let (_, response) = log_in(&app, "m@example.com", "wrong password!").await;
        assert_eq!(response.status(), 401);
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Wrong e-mail or password")
        );
    }
    let (_, response) = log_in(&app, "m@example.com", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let (_, unknown) = log_in(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), 401, "other accounts are not blocked");
    // Counted on one line per reason (see tests/api/signin_attacks.rs).
    let (log, _) = app.state.store.list_audit("", "", 500, 0).await.unwrap();
    let failed: i64 = log
        .iter()
        .filter(|r| r.action == "sign_in_failed" && r.actor.as_deref() == Some("m@example.com"))
        .map(|r| r.attempts)
        .sum();
    assert_eq!(failed, 6, "{log:?}");
}

#[tokio::test]
async fn a_disabled_manager_is_signed_out_and_cannot_sign_in() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let manager = signed_in(&app, "m@example.com", Role::Manager).await;
    let id = app
        .state
        .store
        .get_manager_by_email("m@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;

    let response = admin
        .submit(&format!("/admin/managers/{id}/disable"), &[])
        .await;

    assert_eq!(response.status(), 303);
    assert_eq!(
        manager.get("/admin").await.status(),
        303,
        "the session ended"
    );
    let (_, response) = log_in(&app, "m@example.com", PASSWORD).await;
    assert_eq!(response.status(), 403);
    admin
        .submit(&format!("/admin/managers/{id}/enable"), &[])
        .await;
    let (_, response) = log_in(&app, "m@example.com", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let log = audit(&app).await;
    assert!(
        log.iter()
            .any(|(a, _, t)| a == "manager_disabled" && t.contains("m@example.com"))
    );
}

#[tokio::test]
async fn managers_are_invited_and_get_new_password_links() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;

    let response = admin
        .submit(
            "/admin/managers",
            &[("email", "New.Person@example.com"), ("role", "manager")],
        )
        .await;
    assert_eq!(response.status(), 201);
    let html = response.text().await.unwrap();
    let start = html
        .find(&format!("{}/admin/setup/", app.url))
        .expect("the link is shown");
    let link: String = html[start..].chars().take_while(|c| *c != '<').collect();
    let invited = Agent::new(&app);
    assert_eq!(use_setup_link(&invited, &link, None).await.status(), 303);
    let (status, html) = invited.page("/admin/chats").await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("/admin/settings"),
        "a manager sees no admin pages"
    );

    // The same e-mail again is refused clearly.
    let response = admin
        .submit(
            "/admin/managers",
            &[("email", "new.person@example.com"), ("role", "admin")],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("exists already"));

    // A reset link sets a new password and ends the old sessions.
    let id = app
        .state
        .store
        .get_manager_by_email("new.person@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let response = admin
        .submit(&format!("/admin/managers/{id}/reset"), &[])
        .await;
    let html = response.text().await.unwrap();
    let start = html.find(&format!("{}/admin/setup/", app.url)).unwrap();
    let reset: String = html[start..].chars().take_while(|c| *c != '<').collect();
    assert_eq!(
        use_setup_link(&Agent::new(&app), &reset, None)
            .await
            .status(),
        303
    );
    assert_eq!(
        invited.get("/admin").await.status(),
        303,
        "old session ended"
    );
    let (_, managers) = admin.page("/admin/managers").await;
    assert!(managers.contains("new.person@example.com"));
}

#[tokio::test]
async fn the_dashboard_shows_chats_the_connection_and_bridge_errors() {
    // Arrange: a chat whose request post Mattermost refuses.
    let app = spawn_app().await;
    let agent = signed_in(&app, "m@example.com", Role::Manager).await;
    app.sim.fail_next_requests(1, 403);
    let refused = app.start_simple_chat("This one fails").await;
    wait_until("the refusal is recorded", || async {
        !app.state
            .store
            .list_bridge_errors(5)
            .await
            .unwrap()
            .is_empty()
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
    parley::jobs::presence::run_once(&app.state).await.unwrap();
    let (_, html) = agent.page("/admin").await;
    assert!(
        html.contains("1 online, 1 away, 0 do not disturb, of 2 operator(s)"),
        "{html}"
    );
    sales_department(&app).await;
    parley::jobs::presence::run_once(&app.state).await.unwrap();
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
    if tokio::time::timeout(Duration::from_secs(5), async {
        while !transcript_marked().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_err()
    {
        let (_, html) = agent.page(&format!("/admin/chats/{}", answered.id)).await;
        panic!("notes, edits and deletions are marked: {html}");
    }
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
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde\0\0\0\x0cIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";
    let form = multipart::Form::new().part(
        "file",
        multipart::Part::bytes(png.to_vec()).file_name("me.png"),
    );
    let response = app
        .http
        .post(app.api(&format!("/chats/{}/files", chat.id)))
        .bearer_auth(&chat.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let file_id = response.json::<Value>().await.unwrap()["message"]["files"][0]["id"]
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
    let files_dir = app.state.settings.data_dir.join("files").join(&chat.id);
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
    assert!(app.state.store.get_chat(&chat.id).await.unwrap().is_none());
    assert!(app.state.store.get_file(&file_id).await.unwrap().is_none());
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

#[tokio::test]
async fn the_audit_log_is_searchable_and_shows_bridge_errors() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let _ = log_in(&app, "a@example.com", "not the password").await;
    app.sim.fail_next_requests(1, 400);
    app.start_simple_chat("refused").await;
    wait_until("the refusal is recorded", || async {
        !app.state
            .store
            .list_bridge_errors(5)
            .await
            .unwrap()
            .is_empty()
    })
    .await;

    let (status, html) = admin.page("/admin/audit").await;
    assert_eq!(status, 200);
    assert!(html.contains("sign_in_failed") && html.contains("bridge_error"));
    let (_, html) = admin.page("/admin/audit?action=bridge_error").await;
    assert!(html.contains("sim.injected_failure") && !html.contains("<code>sign_in</code>"));
    let (_, html) = admin.page("/admin/audit?q=NOT+THE").await;
    assert!(
        html.contains("Nothing matches"),
        "passwords are never logged"
    );
    let (_, html) = admin.page("/admin/audit?q=wrong+e-mail").await;
    assert!(html.contains("sign_in_failed") && !html.contains("bridge_error</code>"));
}

#[tokio::test]
async fn settings_are_validated_stored_served_to_the_widget_and_audited() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let (status, html) = admin.page("/admin/settings").await;
    assert_eq!(status, 200);
    assert!(html.contains("PARLEY_MATTERMOST_TOKEN") && html.contains("set (hidden)"));
    // The live preview frames the demo page, which only parley's own pages may frame.
    assert!(
        html.contains("<iframe class=\"preview\" src=\"/\""),
        "{html}"
    );
    let demo = app.http.get(format!("{}/", app.url)).send().await.unwrap();
    let csp = demo.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(!html.contains(&app.bot.token), "the token is never shown");
    let defaults: Value = app.get_json(&app.api("/widget-config")).await;
    assert_eq!(defaults["title"], "Chat with us");

    let mut form = vec![
        ("title", "Talk to Acme"),
        ("color", "#AA3300"),
        ("greeting", "Hi! We answer within minutes."),
        ("position", "left"),
        ("name_field", "required"),
        ("email_field", "hidden"),
        ("delete_after_hours", "6"),
    ];
    let response = admin.submit("/admin/settings", &form).await;
    assert_eq!(response.status(), 303);
    let widget: Value = app.get_json(&app.api("/widget-config")).await;
    assert_eq!(
        widget,
        json!({"title": "Talk to Acme", "color": "#aa3300", "greeting": "Hi! We answer within minutes.",
               "position": "left", "fields": {"name": "required", "email": "hidden"}})
    );
    let delay =
        parley::backoffice::settings::delete_after(&app.state.store, &app.state.settings).await;
    assert_eq!(delay, Duration::from_secs(6 * 3600));
    let log = audit(&app).await;
    assert!(log.iter().any(|(a, _, d)| a == "settings_changed"
        && d.contains("widget.title")
        && d.contains("Talk to Acme")));

    form[1] = ("color", "red");
    let response = admin.submit("/admin/settings", &form).await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("the colour must look like #1f6feb")
    );
}

#[tokio::test]
async fn test_connection_shows_the_doctors_checks() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;

    let response = admin.submit("/admin/settings/test", &[]).await;

    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("All essential checks passed"), "{html}");
    for check in [
        "reachable",
        "token",
        "team",
        "requests_channel",
        "channels",
        "channel_deletion",
        "post_size",
        "file_uploads",
        "callbacks",
    ] {
        assert!(html.contains(&format!("data-check=\"{check}\"")), "{check}");
    }
    assert!(
        html.contains("EnableAPIChannelDeletion"),
        "the simulator has it off by default"
    );
    assert!(
        audit(&app)
            .await
            .iter()
            .any(|(a, _, _)| a == "connection_tested")
    );
}

// ---------------------------------------------------------------------------------- doctor

struct DoctorWorld {
    sim: MattermostSim,
    bot: SimUser,
    team_id: String,
    channel_id: String,
    settings: Settings,
    _dir: tempfile::TempDir,
}

/// A simulator set up as the README says, and settings pointing at it.
async fn doctor_world() -> DoctorWorld {
    let sim = MattermostSim::start_with(SimConfig {
        enable_api_channel_deletion: true,
        ..SimConfig::default()
    })
    .await;
    let team = sim.create_team("support", "Support");
    let bot = sim.create_bot("parley", "Parley");
    let channel = sim.create_channel(&team, "requests", "Requests", false);
    sim.add_team_member(&team, &bot.id);
    sim.add_channel_member(&channel, &bot.id);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_data_dir(dir.path().to_path_buf());
    settings.public_url = "https://chat-widget.example.com".parse().unwrap();
    settings.mattermost = Some(MattermostSettings {
        url: sim.url().parse().unwrap(),
        token: bot.token.clone().into(),
        team: "support".into(),
        channel: "requests".into(),
    });
    DoctorWorld {
        sim,
        bot,
        team_id: team,
        channel_id: channel,
        settings,
        _dir: dir,
    }
}

fn mm(settings: &mut Settings) -> &mut MattermostSettings {
    settings.mattermost.as_mut().unwrap()
}

#[tokio::test]
async fn the_doctor_passes_a_well_configured_server_and_leaves_nothing_behind() {
    let world = doctor_world().await;

    let report = doctor::run(&world.settings).await;

    assert!(report.passed(), "{report}");
    for c in &report.checks {
        // Without parley's button key the callback check can only state its condition
        // (tests/api/startup.rs runs it for real).
        let expected = if c.id == "callbacks" {
            Verdict::Skipped
        } else {
            Verdict::Ok
        };
        assert_eq!(c.verdict, expected, "{report}");
    }
    let left: Vec<Value> = world
        .sim
        .channels_in_team(&world.team_id)
        .into_iter()
        .filter(|c| {
            c["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("parley-doctor")
        })
        .filter(|c| c["delete_at"] == 0)
        .collect();
    assert!(left.is_empty(), "no live test channel is left: {left:?}");
    assert!(!report.to_string().contains("FAILED"), "{report}");
    assert!(
        world
            .sim
            .request_log()
            .iter()
            .any(|(m, p, s)| m == "DELETE" && p.contains("/channels/") && *s == 200),
        "the test channel was deleted"
    );
}

#[tokio::test]
async fn each_doctor_check_fails_on_its_own() {
    type Setup = fn(&mut DoctorWorld);
    let cases: Vec<(&str, Setup, &str, Verdict, &str)> = vec![
        (
            "not Mattermost",
            |w| mm(&mut w.settings).url = format!("{}/somewhere", w.sim.url()).parse().unwrap(),
            "reachable",
            Verdict::Failed,
            "not as Mattermost",
        ),
        (
            "unreachable",
            |w| mm(&mut w.settings).url = "http://127.0.0.1:9".parse().unwrap(),
            "reachable",
            Verdict::Failed,
            "cannot be used",
        ),
        (
            "bad token",
            |w| mm(&mut w.settings).token = "not-a-token".to_owned().into(),
            "token",
            Verdict::Failed,
            "refuses the token",
        ),
        (
            "user token",
            |w| {
                let user = w.sim.create_user("human", "Hu", "Man");
                w.sim.add_team_member(&w.team_id, &user.id);
                w.sim.add_channel_member(&w.channel_id, &user.id);
                mm(&mut w.settings).token = user.token.into();
            },
            "token",
            Verdict::Warning,
            "not a bot",
        ),
        (
            "unknown team",
            |w| mm(&mut w.settings).team = "nosuchteam".into(),
            "team",
            Verdict::Failed,
            "not found",
        ),
        (
            "bot not in the team",
            |w| {
                let team = w.sim.create_team("sales", "Sales");
                let channel = w.sim.create_channel(&team, "requests", "Requests", false);
                w.sim.add_channel_member(&channel, &w.bot.id);
                mm(&mut w.settings).team = "sales".into();
            },
            "team",
            Verdict::Failed,
            "parley",
        ),
        (
            "unknown channel",
            |w| mm(&mut w.settings).channel = "nosuchchannel".into(),
            "requests_channel",
            Verdict::Failed,
            "nosuchchannel",
        ),
        (
            "bot not in the channel",
            |w| {
                w.sim.create_channel(&w.team_id, "lonely", "Lonely", false);
                mm(&mut w.settings).channel = "lonely".into();
            },
            "requests_channel",
            Verdict::Failed,
            "not a member",
        ),
        (
            "no private channels",
            |w| {
                w.sim
                    .set_config(|c| c.team_user_can_create_private_channels = false)
            },
            "channels",
            Verdict::Failed,
            "may not create private channels",
        ),
        (
            "no permanent deletion",
            |w| w.sim.set_config(|c| c.enable_api_channel_deletion = false),
            "channel_deletion",
            Verdict::Warning,
            "EnableAPIChannelDeletion",
        ),
        (
            "no file attachments",
            |w| w.sim.set_config(|c| c.enable_file_attachments = false),
            "file_uploads",
            Verdict::Warning,
            "disabled",
        ),
        (
            "small files only",
            |w| w.sim.set_config(|c| c.max_file_size = 1_000_000),
            "file_uploads",
            Verdict::Warning,
            "only up to 1 MB",
        ),
        (
            "private public URL",
            |w| w.settings.public_url = "http://10.1.2.3:8080".parse().unwrap(),
            "callbacks",
            // Without parley's button key (no database here) the doctor cannot click a test
            // button: it states the condition instead of warning.
            Verdict::Skipped,
            "AllowedUntrustedInternalConnections",
        ),
        (
            "not configured",
            |w| w.settings.mattermost = None,
            "config",
            Verdict::Failed,
            "not configured",
        ),
    ];
    for (name, setup, id, verdict, words) in cases {
        let mut world = doctor_world().await;
        setup(&mut world);

        let report = doctor::run(&world.settings).await;

        let check = report
            .get(id)
            .unwrap_or_else(|| panic!("{name}: no `{id}` check in\n{report}"));
        assert_eq!(check.verdict, verdict, "{name}:\n{report}");
        let text = format!(
            "{} {}",
            check.found,
            check.advice.clone().unwrap_or_default()
        );
        assert!(text.contains(words), "{name}: `{words}` in `{text}`");
        if verdict == Verdict::Failed {
            assert!(check.advice.is_some(), "{name}: a failure says what to do");
            assert!(!report.passed(), "{name}");
        } else {
            assert!(
                report.passed(),
                "{name}: a warning is not a failure\n{report}"
            );
        }
        // Every other check that ran is fine: each problem shows on its own.
        for other in report.checks.iter().filter(|c| c.id != id) {
            assert!(
                matches!(other.verdict, Verdict::Ok | Verdict::Skipped),
                "{name}: `{}` should not be affected\n{report}",
                other.id
            );
        }
    }
}

#[tokio::test]
async fn parley_doctor_exits_zero_only_when_the_essentials_pass() {
    let world = doctor_world().await;
    let dir = tempfile::tempdir().unwrap();
    let env = |token: &str| {
        vec![
            ("PARLEY_MATTERMOST_URL", world.sim.url()),
            ("PARLEY_MATTERMOST_TOKEN", token.to_owned()),
            ("PARLEY_MATTERMOST_TEAM", "support".to_owned()),
            ("PARLEY_MATTERMOST_CHANNEL", "requests".to_owned()),
        ]
    };

    let good = run_binary(&["doctor"], &env(&world.bot.token), dir.path()).await;
    let bad = run_binary(&["doctor"], &env("wrong-token"), dir.path()).await;

    let out = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(out.contains("All essential checks passed"), "{out}");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.contains("Access token") && out.contains("PARLEY_MATTERMOST_TOKEN"),
        "{out}"
    );
}

#[tokio::test]
async fn parley_admin_create_manager_prints_a_working_link() {
    let app = spawn_app().await;
    let dir = app.state.settings.data_dir.clone();
    let envs = [
        ("PARLEY_DATABASE_URL", app.database_url()),
        ("PARLEY_PUBLIC_URL", app.url.clone()),
    ];

    let output = run_binary(
        &[
            "admin",
            "create-manager",
            "--email",
            "cli@example.com",
            "--role",
            "admin",
        ],
        &envs,
        &dir,
    )
    .await;

    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let link = out
        .lines()
        .find(|l| l.contains("/admin/setup/"))
        .expect("a link")
        .trim()
        .to_owned();
    let agent = Agent::new(&app);
    assert_eq!(use_setup_link(&agent, &link, None).await.status(), 303);
    let (_, html) = agent.page("/admin/settings").await;
    assert!(html.contains("Configuration in force"), "an admin");
    let again = run_binary(
        &["admin", "create-manager", "--email", "cli@example.com"],
        &envs,
        &dir,
    )
    .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("reset-password"));
}

#[tokio::test]
async fn managers_create_preview_edit_and_delete_departments_and_it_is_audited() {
    // Arrange
    let app = spawn_app().await;
    let agent = signed_in(&app, "m@example.com", Role::Manager).await;
    let (status, html) = agent.page("/admin/departments").await;
    assert_eq!(status, 200);
    assert!(html.contains("No departments"), "{html}");

    // Mistakes are refused with their field, and nothing is stored.
    let response = agent
        .submit(
            "/admin/departments",
            &[
                ("name", "Sales"),
                ("team", "support"),
                ("channel", "requests"),
                ("hours", "weekdays"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("hours:"));
    // A channel Mattermost does not know is refused, as by the CLI.
    let response = agent
        .submit(
            "/admin/departments",
            &[
                ("name", "Sales"),
                ("team", "support"),
                ("channel", "no-such-channel"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("channel `no-such-channel` not found")
    );
    assert!(app.state.store.list_departments().await.unwrap().is_empty());

    // Preview: the templates filled with a sample visitor, visitor text escaped, not saved.
    let response = agent
        .submit(
            "/admin/departments",
            &[
                ("name", "Sales"),
                ("team", "support"),
                ("channel", "requests"),
                (
                    "request_template",
                    "@here **{department}**: {nick} ({email}) asks",
                ),
                ("first_post_template", "Hi {nick}, welcome to <Sales>"),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("@here **Sales**: Jane Doe (jane@example.com) asks"),
        "{html}"
    );
    assert!(html.contains("Hi Jane Doe, welcome to &lt;Sales&gt;"));
    assert!(html.contains("Chat: Jane Doe"), "default display name");
    assert!(app.state.store.list_departments().await.unwrap().is_empty());

    // Create.
    let response = agent
        .submit(
            "/admin/departments",
            &[
                ("name", "Sales"),
                ("team", "support"),
                ("channel", "~requests"),
                ("hours", "Mon-Fri 9:00-17:30"),
                ("timezone", "Europe/Berlin"),
                ("greeting", "Questions about prices?"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let rows = app.state.store.list_departments().await.unwrap();
    assert_eq!(rows.len(), 1);
    let id = rows[0].id;
    assert_eq!(rows[0].hours.as_deref(), Some("mon-fri 09:00-17:30"));
    assert_eq!(rows[0].channel, "requests");
    assert_eq!(
        location(&response),
        format!("/admin/departments/{id}?done=created")
    );
    let (_, html) = agent.page(&format!("/admin/departments/{id}")).await;
    assert!(html.contains("Questions about prices?") && html.contains("Preview"));
    let (_, html) = agent.page("/admin/departments").await;
    assert!(html.contains("Sales") && html.contains("mon-fri 09:00-17:30"));
    let status: Value = app.get_json(&app.api("/status")).await;
    assert_eq!(status["departments"][0]["name"], "Sales", "{status}");

    // Edit.
    let response = agent
        .submit(
            &format!("/admin/departments/{id}"),
            &[
                ("name", "Sales team"),
                ("team", "support"),
                ("channel", "requests"),
                ("timezone", "UTC"),
                ("title", "Talk to sales"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let row = app.state.store.get_department(id).await.unwrap().unwrap();
    assert_eq!(row.name, "Sales team");
    assert_eq!(row.hours, None, "emptied: always open");
    assert_eq!(row.text_title.as_deref(), Some("Talk to sales"));
    assert_eq!(row.text_greeting, None);

    // Delete: refused while a chat of it is open, then done.
    let chat = app
        .start_chat(json!({"name": "Erika", "message": "Prices?", "department": id}))
        .await;
    let response = agent
        .submit(&format!("/admin/departments/{id}/delete"), &[])
        .await;
    assert_eq!(response.status(), 409);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("1 waiting or active chat")
    );
    assert!(app.state.store.get_department(id).await.unwrap().is_some());
    let (_, html) = agent.page(&format!("/admin/chats/{}", chat.id)).await;
    assert!(html.contains("Sales team"), "the chat shows its department");
    let (_, html) = agent.page(&format!("/admin/chats?department={id}")).await;
    assert!(html.contains("Erika"), "department filter");
    let (_, html) = agent.page("/admin/chats?department=none").await;
    assert!(!html.contains("Erika"), "default department filter");
    assert!(app.close(&chat).await.status().is_success());
    let response = agent
        .submit(&format!("/admin/departments/{id}/delete"), &[])
        .await;
    assert_eq!(response.status(), 303);
    assert!(app.state.store.get_department(id).await.unwrap().is_none());

    // Audited.
    let log = audit(&app).await;
    for action in [
        "department_created",
        "department_changed",
        "department_removed",
    ] {
        assert!(
            log.iter()
                .any(|(a, who, _)| a == action && who == "m@example.com"),
            "{action} in {log:?}"
        );
    }
    assert!(log.iter().any(|(a, _, detail)| a == "department_changed"
        && detail.contains("name: \"Sales\" → \"Sales team\"")));
}
