//! The Mattermost connection edited in the back office: an app started without Mattermost is
//! connected through the settings forms (teams listed, channel found by search, tested,
//! saved) and goes online without a restart; a later change replaces the running bridge;
//! mistakes are refused with nothing saved; a connection set by the deployment is read-only;
//! the token never appears in a page or the audit log; a saved connection is used at the next
//! start; with several instances (PostgreSQL) a change saved on one applies on all.

use parley::app::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::backoffice::{Agent, audit, location, signed_in, use_setup_link},
    helpers::{TestApp, spawn_app, spawn_app_with, wait_until},
};

/// An app started without any Mattermost settings (the simulator is ready, unused).
async fn offline_app() -> TestApp {
    let app = spawn_app_with(|s| s.mattermost = None).await;
    assert!(app.bridge().is_none());
    app
}

/// Pages an agent saw, to check that none shows a token.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    async fn keep(&mut self, response: reqwest::Response) -> (StatusCode, String) {
        let status = response.status();
        let html = response.text().await.unwrap();
        self.0.push(html.clone());
        (status, html)
    }

    fn never_contain(&self, secret: &str) {
        for html in &self.0 {
            assert!(!html.contains(secret), "a page shows the token: {html}");
        }
    }
}

/// The `data-error` code of the page's problem, if any.
fn error_code(html: &str) -> Option<String> {
    let start = html.find("data-error=\"")? + 12;
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Whether the stored settings hold any part of a Mattermost connection.
async fn connection_stored(app: &TestApp) -> bool {
    let stored = app.stored_settings().await;
    stored.keys().any(|k| k.starts_with("mattermost."))
}

async fn starting_a_chat(app: &TestApp) -> reqwest::Response {
    app.http
        .post(app.api("/chats"))
        .json(&json!({"name": "Erika", "message": "Hello?"}))
        .send()
        .await
        .unwrap()
}

/// Steps 1 to 3 through the forms, then `last` (`test` or the save).
async fn enter(
    admin: &Agent,
    seen: &mut Seen,
    url: &str,
    token: &str,
    team: &str,
    term: &str,
    channel: &str,
) -> (StatusCode, String) {
    let (status, html) = seen
        .keep(
            admin
                .submit(
                    "/admin/settings/connection/teams",
                    &[("url", url), ("token", token)],
                )
                .await,
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!("<option value=\"{team}\"")),
        "the bot's teams are listed: {html}"
    );
    let (status, html) = seen
        .keep(
            admin
                .submit(
                    "/admin/settings/connection/channels",
                    &[("team", team), ("term", term)],
                )
                .await,
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!("name=\"channel\" value=\"{channel}\"")),
        "the search finds ~{channel}: {html}"
    );
    (status, html)
}

/// Enters the simulator's server, token, team `support` and channel `requests`, and saves.
async fn save_simulator(admin: &Agent, seen: &mut Seen, url: &str, token: &str) {
    enter(admin, seen, url, token, "support", "req", "requests").await;
    let form = [
        ("team", "support"),
        ("term", "req"),
        ("channel", "requests"),
    ];
    let response = admin.submit("/admin/settings/connection", &form).await;
    assert_eq!(response.status(), 303, "saved");
}

#[tokio::test]
async fn an_admin_connects_mattermost_in_the_back_office_and_it_goes_online_without_a_restart() {
    // Arrange: offline, so no chat can be started.
    let app = offline_app().await;
    assert_eq!(starting_a_chat(&app).await.status(), 503);
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let mut seen = Seen::default();
    let (_, html) = seen.keep(admin.get("/admin/settings").await).await;
    assert!(html.contains("data-origin=\"none\""), "{html}");
    assert!(html.contains("action=\"/admin/settings/connection/teams\""));

    // Act: server and token → teams → search "req" → test → save.
    let (url, token) = (app.sim.url(), app.bot.token.clone());
    enter(
        &admin, &mut seen, &url, &token, "support", "req", "requests",
    )
    .await;
    let form = [
        ("team", "support"),
        ("term", "req"),
        ("channel", "requests"),
    ];
    let (status, html) = seen
        .keep(admin.submit("/admin/settings/connection/test", &form).await)
        .await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Checks of the values entered above"),
        "{html}"
    );
    assert!(html.contains("All essential checks passed"), "{html}");
    assert!(!connection_stored(&app).await, "testing saves nothing");
    let response = admin.submit("/admin/settings/connection", &form).await;

    // Assert: saved, audited without the token, applied at once.
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        "/admin/settings?saved=connection#mattermost"
    );
    wait_until("parley connects to the configured Mattermost", || async {
        app.is_online()
    })
    .await;
    let chat = app.start_simple_chat("Is anybody there?").await;
    let post = app.request_post(&chat).await;
    assert_eq!(post["user_id"], app.bot.id.as_str());
    let stored = app.stored_settings().await;
    assert_eq!(stored["mattermost.url"], url);
    assert_eq!(stored["mattermost.team"], "support");
    assert_eq!(stored["mattermost.channel"], "requests");
    let log = audit(&app).await;
    let changed: Vec<_> = log
        .iter()
        .filter(|(a, _, _)| a == "connection_changed")
        .collect();
    assert_eq!(changed.len(), 1, "{log:?}");
    let (_, who, detail) = changed[0];
    assert_eq!(who, "a@example.com");
    assert!(
        detail.contains("team: (none) → support")
            && detail.contains("requests channel: (none) → requests")
            && detail.contains(&url)
            && detail.contains("token: replaced (not shown)"),
        "{detail}"
    );
    for (action, _, detail) in &log {
        assert!(!detail.contains(&token), "{action} logs the token");
    }
    let (_, html) = seen
        .keep(admin.get("/admin/settings?saved=connection").await)
        .await;
    assert!(html.contains("saved and put in force"), "{html}");
    assert!(html.contains("data-origin=\"back_office\""), "{html}");
    assert!(html.contains("set (never shown)"));
    assert!(
        html.contains("set: leave blank to keep the saved token"),
        "{html}"
    );
    assert!(
        html.contains("<td>back office</td>"),
        "the configuration in force says where from"
    );

    // A blank token is never sent to another server than the saved one.
    let elsewhere = url.replace("127.0.0.1", "localhost");
    let asked = app.sim.request_log().len();
    let (status, html) = seen
        .keep(
            admin
                .submit(
                    "/admin/settings/connection/teams",
                    &[("url", &elsewhere), ("token", "")],
                )
                .await,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        error_code(&html).as_deref(),
        Some("token_missing"),
        "{html}"
    );
    assert!(
        !app.sim.request_log()[asked..]
            .iter()
            .any(|(_, p, _)| p.contains("/users/me")),
        "the token was not tried elsewhere"
    );

    // A later edit: a blank token keeps the saved one; another requests channel replaces the
    // running bridge, and the event stream works with the new one.
    let vip = app
        .sim
        .create_channel(&app.team_id, "vip-requests", "VIP requests", false);
    app.sim.add_channel_member(&vip, &app.bot.id);
    app.sim.add_channel_member(&vip, &app.alice.id);
    let before = app.bridge().unwrap();
    enter(
        &admin,
        &mut seen,
        &url,
        "",
        "support",
        "vip",
        "vip-requests",
    )
    .await;
    let form = [
        ("team", "support"),
        ("term", "vip"),
        ("channel", "vip-requests"),
    ];
    let response = admin.submit("/admin/settings/connection", &form).await;
    assert_eq!(response.status(), 303);
    let after = app.bridge().unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&before, &after),
        "the bridge was replaced"
    );
    assert_eq!(after.settings().channel, "vip-requests");
    wait_until("parley is online with the new bridge", || async {
        app.is_online()
    })
    .await;
    let second = app.start_simple_chat("Me too").await;
    let mut found = None;
    wait_until("the request post appears in the new channel", || {
        found = app
            .sim
            .posts_in_channel(&vip)
            .into_iter()
            .find(|p| p["props"]["parley_chat_id"].as_str() == Some(&second.id));
        let done = found.is_some();
        async move { done }
    })
    .await;
    let (status, _) = app
        .sim
        .click_button(&app.alice, found.unwrap()["id"].as_str().unwrap(), "accept")
        .await;
    assert_eq!(status, 200);
    let channel = app.chat_channel(&second).await;
    wait_until("the operator is in the chat channel", || async {
        app.sim.channel_members(&channel).contains(&app.alice.id)
    })
    .await;
    app.sim
        .post_as(&app.alice, &channel, "Hello from the new channel")
        .await;
    let reply = app
        .wait_for_message(&second, |m| m["sender"] == "operator")
        .await;
    assert_eq!(reply["text"], "Hello from the new channel");
    let log = audit(&app).await;
    assert!(log.iter().any(|(a, _, d)| a == "connection_changed"
        && d.contains("requests channel: requests → vip-requests")
        && !d.contains("token")
        && !d.contains("server:")));
    assert_eq!(
        app.stored_settings().await["mattermost.token"],
        token,
        "a blank token kept the saved one"
    );
    seen.never_contain(&token);
}

#[tokio::test]
async fn wrong_values_are_refused_with_a_clear_message_and_nothing_is_saved() {
    let app = offline_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let mut seen = Seen::default();
    let url = app.sim.url();
    let token = app.bot.token.clone();
    let somewhere = format!("{url}/somewhere");

    // Step 1: each mistake with its code.
    for (u, t, code) in [
        ("chat.example.com", token.as_str(), "invalid_url"),
        (url.as_str(), "", "token_missing"),
        (url.as_str(), "not-a-valid-token", "token_refused"),
        (somewhere.as_str(), token.as_str(), "not_mattermost"),
        ("http://127.0.0.1:9", token.as_str(), "unreachable"),
    ] {
        let (status, html) = seen
            .keep(
                admin
                    .submit(
                        "/admin/settings/connection/teams",
                        &[("url", u), ("token", t)],
                    )
                    .await,
            )
            .await;
        assert_eq!(status, 422, "{u} {code}");
        assert_eq!(error_code(&html).as_deref(), Some(code), "{u}: {html}");
        assert!(
            !html.contains("/admin/settings/connection/channels"),
            "no step 2"
        );
    }
    // A bot in no team is told so.
    let loner = app.sim.create_bot("loner", "Loner");
    let (status, html) = seen
        .keep(
            admin
                .submit(
                    "/admin/settings/connection/teams",
                    &[("url", &url), ("token", &loner.token)],
                )
                .await,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error_code(&html).as_deref(), Some("no_team"), "{html}");
    assert!(
        html.contains("@loner is not a member of any team"),
        "{html}"
    );

    // Later steps need step 1 first (the token is never in the page to resend).
    let form = [
        ("team", "support"),
        ("term", "req"),
        ("channel", "requests"),
    ];
    let (status, html) = seen
        .keep(admin.submit("/admin/settings/connection", &form).await)
        .await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&html).as_deref(), Some("draft_expired"));

    // Step 3: an unknown channel, and one the bot is not in, are refused on save.
    enter(
        &admin, &mut seen, &url, &token, "support", "req", "requests",
    )
    .await;
    let lonely = app
        .sim
        .create_channel(&app.team_id, "lonely", "Lonely", false);
    for channel in ["nosuchchannel", "lonely"] {
        let (status, html) = seen
            .keep(
                admin
                    .submit(
                        "/admin/settings/connection",
                        &[
                            ("team", "support"),
                            ("term", "req"),
                            ("channel_name", channel),
                        ],
                    )
                    .await,
            )
            .await;
        assert_eq!(status, 422, "{channel}");
        assert_eq!(
            error_code(&html).as_deref(),
            Some("checks_failed"),
            "{html}"
        );
        assert!(html.contains("Nothing was saved"));
        assert!(
            html.contains("data-check=\"requests_channel\""),
            "the checks are shown: {html}"
        );
    }
    assert!(!app.sim.channel_members(&lonely).contains(&app.bot.id));
    // A team the bot is not in.
    let (status, html) = seen
        .keep(
            admin
                .submit(
                    "/admin/settings/connection/channels",
                    &[("team", "elsewhere"), ("term", "req")],
                )
                .await,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error_code(&html).as_deref(), Some("team_unknown"));

    // Nothing saved, nothing applied, nothing audited as changed.
    assert!(!connection_stored(&app).await);
    assert!(app.bridge().is_none());
    assert!(
        !audit(&app)
            .await
            .iter()
            .any(|(a, _, _)| a == "connection_changed")
    );
    seen.never_contain(&token);
    seen.never_contain(&loner.token);
}

#[tokio::test]
async fn a_connection_set_by_the_deployment_is_read_only() {
    // Arrange: spawn_app sets the connection in the settings, as the environment would.
    let app = spawn_app().await;
    let other = app
        .sim
        .create_channel(&app.team_id, "other", "Other", false);
    app.sim.add_channel_member(&other, &app.bot.id);
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let (status, html) = admin.page("/admin/settings").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-origin=\"deployment\""), "{html}");
    assert!(html.contains("id=\"connection-fixed\""), "{html}");
    assert!(
        html.contains("<fieldset disabled>"),
        "the form is disabled: {html}"
    );
    assert!(
        !html.contains("action=\"/admin/settings/connection"),
        "{html}"
    );
    assert!(!html.contains(&app.bot.token));

    // Act: every step posted anyway.
    let url = app.sim.url();
    let attempts: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/admin/settings/connection/teams",
            vec![("url", &url), ("token", &app.bot.token)],
        ),
        (
            "/admin/settings/connection/channels",
            vec![("team", "support"), ("term", "oth")],
        ),
        (
            "/admin/settings/connection/test",
            vec![("team", "support"), ("channel", "other")],
        ),
        (
            "/admin/settings/connection",
            vec![("team", "support"), ("channel", "other")],
        ),
    ];
    for (path, form) in attempts {
        let response = admin.submit(path, &form).await;
        assert_eq!(response.status(), 409, "{path}");
        let html = response.text().await.unwrap();
        assert_eq!(
            error_code(&html).as_deref(),
            Some("set_by_deployment"),
            "{path}"
        );
        assert!(!html.contains(&app.bot.token));
    }

    // Assert
    assert!(!connection_stored(&app).await);
    assert_eq!(app.bridge().unwrap().settings().channel, "requests");
}

#[tokio::test]
async fn a_connection_saved_in_the_back_office_is_used_at_the_next_start() {
    // Arrange: connect through the forms, then stop.
    let mut app = offline_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let mut seen = Seen::default();
    let (url, token) = (app.sim.url(), app.bot.token.clone());
    save_simulator(&admin, &mut seen, &url, &token).await;
    app.stop().await;

    // Act: the same deployment settings (no Mattermost in them), the same database.
    assert!(app.settings().mattermost.is_none());
    let mut restarted = app.another_instance().await;

    // Assert
    wait_until("the restarted parley connects", || async {
        restarted.is_online()
    })
    .await;
    assert_eq!(restarted.bridge().unwrap().settings().team, "support");
    let response = app
        .http
        .post(format!("{}/api/v1/chats", restarted.url))
        .json(&json!({"name": "Erika", "message": "After the restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    restarted.stop().await;
}

#[tokio::test]
async fn with_several_instances_a_change_saved_on_one_applies_on_all() {
    if std::env::var_os("PARLEY_TEST_DATABASE_URL").is_none() {
        eprintln!("skipped: several instances need PostgreSQL (./scripts/test-postgres)");
        return;
    }
    // Arrange: A leads, B follows; neither has Mattermost.
    let a = offline_app().await;
    wait_until("A leads", || async { a.leads() }).await;
    let mut b = a.another_instance().await;
    assert!(!b.leads());

    // Act: an admin on the follower connects Mattermost.
    let (_, link) = b.invite("a@example.com", Role::Admin).await;
    let admin = Agent::at(&b.url);
    assert_eq!(use_setup_link(&admin, &link, None).await.status(), 303);
    let mut seen = Seen::default();
    let (url, token) = (a.sim.url(), a.bot.token.clone());
    save_simulator(&admin, &mut seen, &url, &token).await;

    // Assert: the leader took it (its event stream is up), and the follower knows it.
    wait_until("the leader connects with the saved connection", || async {
        a.is_online()
    })
    .await;
    assert_eq!(a.bridge().unwrap().settings().channel, "requests");
    wait_until(
        "the follower is online through the leader's state",
        || async { b.is_online() },
    )
    .await;
    let response = a
        .http
        .post(format!("{}/api/v1/chats", b.url))
        .json(&json!({"name": "Erika", "message": "Through B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let chat: Value = response.json().await.unwrap();
    let chat = crate::helpers::VisitorChat {
        id: chat["id"].as_str().unwrap().to_owned(),
        token: chat["token"].as_str().unwrap().to_owned(),
    };
    a.request_post(&chat).await;
    b.stop().await;
}

#[tokio::test]
async fn the_page_after_save_and_connect_shows_the_outcome_not_a_race() {
    let app = offline_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let mut seen = Seen::default();
    let (url, token) = (app.sim.url(), app.bot.token.clone());
    enter(
        &admin, &mut seen, &url, &token, "support", "req", "requests",
    )
    .await;
    let form = [
        ("team", "support"),
        ("term", "req"),
        ("channel", "requests"),
    ];
    // A slow server: connecting takes longer than the redirect.
    app.sim.set_delay(std::time::Duration::from_millis(50));
    let response = admin.submit("/admin/settings/connection", &form).await;
    assert_eq!(response.status(), 303);
    let (status, html) = seen.keep(admin.get(&location(&response)).await).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("saved and put in force: connected."),
        "{html}"
    );
    assert!(html.contains("data-connection=\"ok\""), "{html}");
    assert!(!html.contains("not connected"), "{html}");
    app.sim.set_delay(std::time::Duration::ZERO);
}
