//! Departments, presence and online hours, templates, and offline messages posted to the
//! requests channel, through the simulator: what visitors see at `/api/v1/status` and
//! `POST /api/v1/chats`, and what reaches Mattermost.

use std::{process::Output, time::Duration};

use mattermost_sim::{SimConfig, SimUser};
use parley::storage::departments::DepartmentRow;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, backoffice::department, binary, poll_until, spawn_app, spawn_app_with, wait_until,
};

const ZWSP: char = '\u{200B}';

async fn add(app: &TestApp, row: DepartmentRow) -> i64 {
    app.add_department(row).await
}

async fn status(app: &TestApp) -> Value {
    app.get_json(&app.api("/status")).await
}

/// Polls presence now (the server does it every 30 s) and returns `/status`.
async fn poll_and_status(app: &TestApp) -> Value {
    app.poll_presence().await;
    status(app).await
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("errors are JSON");
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// A second team "sales" with a requests channel "sales-requests", the bot and Sam (an
/// operator of Sales only) in both.
fn sales_team(app: &TestApp) -> (String, String, SimUser) {
    let team = app.sim.create_team("sales", "Sales");
    let channel = app
        .sim
        .create_channel(&team, "sales-requests", "Sales requests", true);
    let sam = app.sim.create_user("sam", "Sam", "Seller");
    for user in [&app.bot, &sam] {
        app.sim.add_team_member(&team, &user.id);
        app.sim.add_channel_member(&channel, &user.id);
    }
    (team, channel, sam)
}

fn posts_with(app: &TestApp, channel_id: &str, needle: &str) -> Vec<Value> {
    app.bot_posts(channel_id)
        .into_iter()
        .filter(|p| p.to_string().contains(needle))
        .collect()
}

#[tokio::test]
async fn each_department_has_its_requests_channel_and_team() {
    let app = spawn_app().await;
    let (sales_team_id, sales_channel, sam) = sales_team(&app);
    let support = add(&app, department("Support", "support", "requests")).await;
    let mut sales_row = department("Sales", "sales", "sales-requests");
    sales_row.text_greeting = Some("Ask us about prices".into());
    let sales = add(&app, sales_row).await;
    app.sim.set_status(&sam.id, "online");
    app.sim.set_status(&app.alice.id, "offline");

    // Both are listed with their own state: Sam is in Sales; Support's Alice and Bob are not
    // online.
    let s = poll_and_status(&app).await;
    let list = s["departments"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{s}");
    let by_name = |name: &str| list.iter().find(|d| d["name"] == name).unwrap().clone();
    assert_eq!(by_name("Sales")["online"], true);
    assert_eq!(by_name("Sales")["texts"]["greeting"], "Ask us about prices");
    assert_eq!(by_name("Support")["online"], false);
    assert_eq!(s["online"], true, "some department is online");

    // A chat for Sales: the request in ~sales-requests, the chat channel in team sales.
    let chat = app
        .start_chat(json!({"name": "Erika", "message": "How much is it?", "department": sales}))
        .await;
    let mut request = None;
    wait_until("the request reaches the sales channel", || {
        request = posts_with(&app, &sales_channel, &chat.id)
            .into_iter()
            .next();
        let found = request.is_some();
        async move { found }
    })
    .await;
    assert!(posts_with(&app, &app.requests_channel_id, &chat.id).is_empty());
    let (code, _) = app
        .sim
        .click_button(&sam, request.unwrap()["id"].as_str().unwrap(), "accept")
        .await;
    assert_eq!(code, 200);
    let purpose = format!("parley chat {}", chat.id);
    wait_until("the chat channel is created in the sales team", || {
        let found = app
            .sim
            .channels_in_team(&sales_team_id)
            .iter()
            .any(|c| c["purpose"].as_str() == Some(&purpose));
        async move { found }
    })
    .await;
    let note = app.sim.ephemeral_posts_for(&sam.id);
    let note = note.last().expect("the clicker gets a note")["message"].to_string();
    assert!(
        note.contains("/sales/channels/chat-"),
        "the link names the sales team: {note}"
    );
    assert!(
        !app.sim
            .channels_in_team(&app.team_id)
            .iter()
            .any(|c| c["purpose"].as_str() == Some(&purpose))
    );

    // Support is offline: no chat for it, but an unknown department is a mistake.
    let response = app
        .http
        .post(app.api("/chats"))
        .json(&json!({"message": "hello", "department": support}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::SERVICE_UNAVAILABLE, "offline".into())
    );
    let response = app
        .http
        .post(app.api("/chats"))
        .json(&json!({"message": "hello", "department": 999}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "department_invalid".into())
    );
}

#[tokio::test]
async fn operators_presence_decides_online_and_away_and_dnd_follow_the_settings() {
    let app = spawn_app().await;
    // Someone online who is not in the requests channel does not count, nor does the bot.
    let carol = app.sim.create_user("carol", "Carol", "Elsewhere");
    app.sim.add_team_member(&app.team_id, &carol.id);
    app.sim.set_status(&carol.id, "online");
    app.sim.set_status(&app.bot.id, "online");

    let cases = [
        ("online", true, "online counts"),
        (
            "away",
            true,
            "away counts by default (PARLEY_PRESENCE_AWAY_COUNTS)",
        ),
        (
            "dnd",
            false,
            "dnd does not count by default (PARLEY_PRESENCE_DND_COUNTS)",
        ),
        ("ooo", false, "out of office does not count"),
        ("offline", false, "offline does not count"),
    ];
    for (alice, online, why) in cases {
        app.sim.set_status(&app.alice.id, alice);
        assert_eq!(poll_and_status(&app).await["online"], online, "{why}");
    }
    // Offline: a chat is refused, so the widget offers the offline form instead.
    let response = app
        .http
        .post(app.api("/chats"))
        .json(&json!({"message": "anyone there?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::SERVICE_UNAVAILABLE, "offline".into())
    );
    // Back online: the next poll shows it.
    app.sim.set_status(&app.bob.id, "online");
    assert_eq!(poll_and_status(&app).await["online"], true);

    let app = spawn_app_with(|s| {
        s.presence.away_counts = false;
        s.presence.dnd_counts = true;
    })
    .await;
    app.sim.set_status(&app.alice.id, "away");
    assert_eq!(
        poll_and_status(&app).await["online"],
        false,
        "away not counted"
    );
    app.sim.set_status(&app.alice.id, "dnd");
    assert_eq!(poll_and_status(&app).await["online"], true, "dnd counted");
}

#[tokio::test]
async fn presence_reaches_the_status_by_itself_and_statuses_switched_off_do_not_hide_the_widget() {
    let app = spawn_app_with(|s| s.presence.poll_every = Duration::from_secs(5)).await;
    app.sim.set_status(&app.alice.id, "offline");
    poll_until(
        "the poller notices nobody is there",
        Duration::from_secs(15),
        || async { (status(&app).await["online"] == false).then_some(()) },
    )
    .await;

    app.sim
        .set_config(|c: &mut SimConfig| c.enable_user_statuses = false);
    assert_eq!(
        poll_and_status(&app).await["online"],
        true,
        "without statuses, presence cannot decide"
    );
}

#[tokio::test]
async fn online_hours_are_read_in_the_departments_time_zone() {
    let app = spawn_app().await;
    // Open two hours around the current time in Tokyo (UTC+9, no DST): the same hours in
    // London (8 or 9 hours behind) are closed now.
    let tokyo =
        jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap());
    let minute = |m: i32| {
        let m = (m + 24 * 60) % (24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let now = tokyo.hour() as i32 * 60 + tokyo.minute() as i32;
    let hours = format!("daily {}-{}", minute(now - 60), minute(now + 60));
    let mut open = department("Tokyo desk", "support", "requests");
    open.hours = Some(hours.clone());
    open.timezone = "Asia/Tokyo".into();
    add(&app, open).await;
    let mut closed = department("London desk", "support", "requests");
    closed.hours = Some(hours);
    closed.timezone = "Europe/London".into();
    let london = add(&app, closed).await;

    let s = poll_and_status(&app).await;
    let list = s["departments"].as_array().unwrap();
    assert_eq!(list[0]["online"], true, "{s}");
    assert_eq!(list[1]["online"], false, "{s}");
    let response = app
        .http
        .post(app.api("/chats"))
        .json(&json!({"message": "hello", "department": london}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::SERVICE_UNAVAILABLE, "offline".into())
    );
}

#[tokio::test]
async fn templates_shape_the_posts_and_visitors_cannot_inject_into_them() {
    let app = spawn_app_with(|s| s.prechat_phone = true).await;
    let mut row = department("Sales & Service", "support", "requests");
    row.template_request =
        Some("**{department}**: {nick} asks{#phone} (call {phone}){/phone} {unknown} {url}".into());
    row.template_channel_display_name = Some("{department} · {nick} · {email}".into());
    row.template_channel_header = Some("{nick}{#email} <{email}>{/email} · {id}".into());
    row.template_first_post =
        Some("Chat with **{nick}** since {time_created}:\n> {message}".into());
    let id = add(&app, row).await;
    assert_eq!(status(&app).await["fields"]["phone"], true);

    let nick = "@channel Eve {email} **boss** ![x](https://t.example/x.png) and a very long name";
    let chat = app
        .start_chat(json!({
            "name": nick, "email": "eve@example.com", "phone": "+49 30 1234",
            "message": "@here [click](https://evil.example)", "department": id
        }))
        .await;
    let request = app.request_post(&chat).await;
    let message = request["message"].as_str().unwrap();
    // `&` is escaped (no character reference may be decoded): Mattermost shows "Sales & Service".
    assert!(message.starts_with("**Sales \\& Service**: @"), "{message}");
    // A leading `+` is escaped (it could start a list): Mattermost shows "+49 30 1234".
    assert!(message.contains("(call \\+49 30 1234)"), "{message}");
    assert!(
        message.contains("{unknown}"),
        "an unknown variable is shown as written: {message}"
    );
    assert!(
        message.contains(&format!("{}/admin/chats/{}", app.url, chat.id)),
        "{message}"
    );
    assert!(message.contains(&format!("@{ZWSP}channel")), "{message}");
    assert!(
        !message.contains("**boss**") && !message.contains("!["),
        "{message}"
    );
    assert!(
        !message.contains("eve@example.com"),
        "values are not templates: {message}"
    );

    let channel_id = app.accept(&chat, &app.alice).await;
    let channel = app.sim.channel(&channel_id).unwrap();
    let display_name = channel["display_name"].as_str().unwrap();
    assert!(
        display_name.starts_with("Sales & Service · @channel Eve"),
        "{display_name}"
    );
    assert_eq!(
        display_name.chars().count(),
        64,
        "cut to Mattermost's limit"
    );
    let header = channel["header"].as_str().unwrap();
    assert!(
        header.ends_with(&format!("<eve@example.com> · {}", chat.id)),
        "{header}"
    );
    assert!(!header.contains("@channel"), "{header}");

    // The first post comes first, then the conversation so far; nothing in it is live.
    let first = app.wait_for_bot_post(&channel_id, "since").await;
    let text = first["message"].as_str().unwrap();
    assert!(text.starts_with("Chat with **@"), "{text}");
    assert!(text.contains(&format!("@{ZWSP}here \\[click\\]")), "{text}");
    wait_until(
        "the first message is relayed after the first post",
        || async { app.bot_posts(&channel_id).len() >= 2 },
    )
    .await;
    let posts = app.bot_posts(&channel_id);
    assert_eq!(posts[0]["id"], first["id"], "the first post is first");
}

/// Runs the real `parley department …` against the app's database and simulator.
async fn parley_department(app: &TestApp, args: &[&str]) -> Output {
    let args: Vec<&str> = ["department"].iter().chain(args).copied().collect();
    let mut command = binary::parley_on(app, &args);
    binary::output(binary::with_mattermost(&mut command, app)).await
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn the_cli_manages_departments_and_refuses_mistakes() {
    let app = spawn_app().await;
    sales_team(&app);
    let refused = [
        (
            vec!["--request-template", "New chat from {nick"],
            "request template",
        ),
        (vec!["--hours", "mon-fri 9-17"], "hours"),
        (vec!["--timezone", "Berlin"], "timezone"),
        (
            vec!["--channel-header-template", "{#email}x"],
            "channel header template",
        ),
    ];
    for (extra, why) in refused {
        let mut args = vec![
            "add",
            "--name",
            "Sales",
            "--team",
            "sales",
            "--channel",
            "sales-requests",
        ];
        args.extend(extra);
        let out = parley_department(&app, &args).await;
        assert!(!out.status.success(), "{why} is refused: {}", text(&out));
        assert!(
            text(&out).contains(why),
            "the error names the {why}: {}",
            text(&out)
        );
    }
    // Mattermost is reachable, so an unknown channel is reported, unless told otherwise.
    let out = parley_department(
        &app,
        &[
            "add",
            "--name",
            "Sales",
            "--team",
            "sales",
            "--channel",
            "nope",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("channel `nope` not found"),
        "{}",
        text(&out)
    );

    let out = parley_department(
        &app,
        &[
            "add",
            "--name",
            "Sales",
            "--team",
            "sales",
            "--channel",
            "sales-requests",
            "--hours",
            "mon-fri 09:00-17:30",
            "--timezone",
            "Europe/Berlin",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = parley_department(&app, &["edit", "Sales", "--greeting", "Hi from Sales"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = parley_department(&app, &["list"]).await;
    let listed = text(&out);
    assert!(
        listed.contains("Sales") && listed.contains("mon-fri 09:00-17:30 (Europe/Berlin)"),
        "{listed}"
    );
    assert!(listed.contains("custom: greeting"), "{listed}");
    let s = status(&app).await;
    assert_eq!(s["departments"][0]["texts"]["greeting"], "Hi from Sales");

    let out = parley_department(&app, &["remove", "Sales"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        status(&app).await["departments"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn offline_messages_are_posted_to_the_requests_channel_once_even_after_an_outage() {
    let app = spawn_app().await;
    app.sim.set_status(&app.alice.id, "offline");
    assert_eq!(poll_and_status(&app).await["online"], false);

    let leave = |message: &'static str| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.api("/offline-messages"))
                .json(&json!({"name": "Erika @all", "email": "erika@example.com", "message": message}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
    };
    leave("Please call me back").await;
    let post = app
        .wait_for_bot_post(
            &app.requests_channel_id,
            "Message left while nobody was online",
        )
        .await;
    let shown = post.to_string();
    assert!(
        shown.contains("Please call me back") && shown.contains("erika@example.com"),
        "{shown}"
    );
    assert!(
        post["props"]["attachments"][0].get("actions").is_none(),
        "no button"
    );
    assert!(!shown.contains("@all"), "{shown}");

    // Mattermost is down: the message waits, and is posted once when it is back.
    app.sim.set_down(true);
    leave("Second message during the outage").await;
    app.wait_for_failed_offline_post().await;
    app.sim.set_down(false);
    wait_until("the second message is posted after the outage", || async {
        !posts_with(
            &app,
            &app.requests_channel_id,
            "Second message during the outage",
        )
        .is_empty()
    })
    .await;
    // Nothing due is left that could post either one again.
    app.drain_outbox().await;
    assert_eq!(
        posts_with(&app, &app.requests_channel_id, "Please call me back").len(),
        1
    );
    assert_eq!(
        posts_with(
            &app,
            &app.requests_channel_id,
            "Second message during the outage"
        )
        .len(),
        1
    );

    // A department's offline messages go to its channel.
    let (_, sales_channel, _) = sales_team(&app);
    let sales = add(&app, department("Sales", "sales", "sales-requests")).await;
    let response = app
        .http
        .post(app.api("/offline-messages"))
        .json(&json!({"email": "erika@example.com", "message": "For sales", "department": sales}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    wait_until("the message reaches the sales channel", || async {
        !posts_with(&app, &sales_channel, "For sales").is_empty()
    })
    .await;
}
