//! Issue 12's smaller holes: the Accept callback bound to the request post, log lines that
//! untrusted values cannot split or colour, setup tokens kept out of the log, no redirects
//! for the connection form's token, allowed origins, the download CSP and error bodies that
//! do not echo input.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use parley::{app::accounts::Role, config::AllowedOrigins};
use serde_json::{Value, json};

use crate::helpers::{
    PNG,
    backoffice::signed_in,
    binary::{LoggedServer, without_colours},
    run_browser_script, spawn_app, spawn_app_with, upload, wait_until,
};

/// The Accept button's context as parley signed it (the simulator keeps it in the props).
fn accept_context(post: &Value) -> Value {
    post["props"]["attachments"][0]["actions"][0]["integration"]["context"].clone()
}

#[tokio::test]
async fn a_replayed_accept_context_needs_the_chats_request_post() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello?").await;
    let post = app.request_post(&chat).await;
    let post_id = post["id"].as_str().unwrap().to_owned();
    let other = app.start_simple_chat("Another").await;
    let other_post = app.request_post(&other).await;
    let context = accept_context(&post);
    assert!(context["signature"].is_string(), "{post}");

    let callback = |body: Value| {
        app.http
            .post(format!("{}/mattermost/actions", app.url))
            .json(&body)
            .send()
    };
    let unknown = app.sim.create_user("mallory", "Mal", "Lory");
    let users = [&app.alice.id, &app.bob.id, &unknown.id, &app.bot.id];
    // Every post id but the chat's own request post: missing, empty, another chat's request,
    // an unknown id, the right one with a suffix or in another case.
    let post_ids = [
        None,
        Some(String::new()),
        Some(other_post["id"].as_str().unwrap().to_owned()),
        Some("0123456789abcdefghijklmnop".to_owned()),
        Some(format!("{post_id} ")),
        Some(post_id.to_uppercase()),
    ];
    for user_id in users {
        for post_field in &post_ids {
            let mut body = json!({
                "user_id": user_id, "user_name": "someone",
                "channel_id": app.requests_channel_id, "context": context,
            });
            if let Some(id) = post_field {
                body["post_id"] = json!(id);
            }
            let response = callback(body.clone()).await.unwrap();
            assert_eq!(response.status(), 403, "{body}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["error"]["code"], "forbidden", "{body}");
        }
    }
    assert_eq!(app.chat_state(&chat).await["status"], "pending");
    assert_eq!(app.chat_state(&other).await["status"], "pending");

    // Mattermost's own click (which names the post) still accepts, once.
    app.accept(&chat, &app.alice).await;
    assert_eq!(
        app.chat_state(&chat).await["operator"]["name"],
        "Alice Operator"
    );
    // Replaying it as another user, with the right post, changes nothing either.
    for user_id in users {
        let body = json!({
            "user_id": user_id, "post_id": post_id, "context": context,
            "channel_id": app.requests_channel_id,
        });
        let response = callback(body).await.unwrap();
        assert!(response.status() == 200 || response.status() == 403);
        let state = app.chat_state(&chat).await;
        assert_eq!(state["operator"]["name"], "Alice Operator", "{state}");
    }
}

#[tokio::test]
async fn the_log_escapes_untrusted_values_and_never_shows_a_setup_token_again() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = LoggedServer::start(dir.path()).await;
    let http = reqwest::Client::new();

    // The first start shows the first-run link, once.
    server.wait_for("/admin/setup/").await;
    let log = without_colours(&server.text());
    let at = log.find("/admin/setup/").unwrap() + "/admin/setup/".len();
    let token: String = log[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(token.len() >= 43, "{log}");

    // Forged callbacks whose user ids hold line breaks and terminal escapes.
    for user_id in [
        "evil\nINJECTED-LINE fake entry",
        "evil\r\nINJECTED-LINE\u{1b}[31mred\u{1b}[0m",
        "\u{1b}]0;title\u{7}\u{1b}[2JINJECTED-LINE\u{85}\u{2028}",
    ] {
        let response = http
            .post(format!("{url}/mattermost/actions"))
            .json(&json!({"user_id": user_id, "post_id": "p", "context": {"action": "accept"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    }
    wait_until("the three refusals are logged", || async {
        server.text().matches("refused an unsigned").count() == 3
    })
    .await;
    let log = without_colours(&server.text());
    for line in log.lines() {
        assert!(
            !line.trim_start().starts_with("INJECTED-LINE") && !line.starts_with("[31m"),
            "a value started a line of its own: {line:?}"
        );
    }
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused an unsigned"))
        .collect();
    assert_eq!(refusals.len(), 3, "{log}");
    for line in refusals {
        assert!(line.contains("INJECTED-LINE"), "one line each: {line}");
        assert!(line.contains("\\n") || line.contains("\\u{1b}"), "{line}");
    }
    // A request to the setup page: logged, without the token.
    let page = http
        .get(format!("{url}/admin/setup/{token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    wait_until("the setup request is logged", || async {
        let log = without_colours(&server.text());
        log.lines()
            .filter(|l| l.contains("admin/setup/") && l.contains("finished processing"))
            .count()
            == 1
    })
    .await;
    let log = without_colours(&server.text());
    assert!(log.contains("/admin/setup/…"), "{log}");

    // Output that is not a terminal has no colours, and no value brings its own escapes.
    let raw = server.raw();
    assert!(!raw.contains(&0x1b), "{}", server.text());
    assert!(!raw.contains(&b'\r'), "{}", server.text());
    // The token was in the log once: when the link was made.
    assert_eq!(log.matches(&token).count(), 1, "{log}");
    server.stop().await;

    // A restart does not show the link again (it still works), and says how to get one.
    let (server, _) = LoggedServer::start(dir.path()).await;
    server
        .wait_for("first-run link was logged when it was made")
        .await;
    let log = server.text();
    assert!(!log.contains(&token), "{log}");
    assert!(log.contains("parley admin create-manager"), "{log}");
    server.stop().await;
}

/// What a recording server saw: method, path and Authorization header of each request.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

async fn record(State(seen): State<(Seen, Answer)>, request: Request) -> Response {
    let (seen, answer) = seen;
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    seen.lock().unwrap().push((
        request.method().to_string(),
        request.uri().path().to_owned(),
        auth,
    ));
    match answer {
        Answer::RedirectTo(target) => {
            let mut headers = HeaderMap::new();
            let to = format!("{target}{}", request.uri().path());
            headers.insert(header::LOCATION, to.parse().unwrap());
            (StatusCode::FOUND, headers).into_response()
        }
        Answer::Html => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Welcome to our shop</body></html>",
        )
            .into_response(),
        Answer::OtherJson => axum::Json(json!({"hello": "world"})).into_response(),
        // Looks like Mattermost to anything that follows a redirect here.
        Answer::LikeMattermost => {
            axum::Json(json!({"status": "OK", "id": "u1", "username": "x"})).into_response()
        }
    }
}

#[derive(Clone)]
enum Answer {
    RedirectTo(&'static str),
    Html,
    OtherJson,
    LikeMattermost,
}

/// A local HTTP server recording what it is sent and answering `answer`.
async fn recording_server(answer: Answer) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .fallback(record)
        .with_state((seen.clone(), answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// The `data-error` code of a back-office page's problem.
fn error_code(html: &str) -> Option<String> {
    let start = html.find("data-error=\"")? + 12;
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

#[tokio::test]
async fn the_connection_form_sends_the_token_to_no_redirect_and_no_other_server() {
    let app = spawn_app_with(|s| s.mattermost = None).await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let token = "typed-secret-token-0123456789";
    let (elsewhere, elsewhere_seen) = recording_server(Answer::LikeMattermost).await;
    let target: &'static str = Box::leak(elsewhere.clone().into_boxed_str());
    let (redirecting, redirecting_seen) = recording_server(Answer::RedirectTo(target)).await;
    // The same origin, redirecting to another of its own paths.
    let (html, html_seen) = recording_server(Answer::Html).await;
    let (json_site, json_seen) = recording_server(Answer::OtherJson).await;

    for (typed, seen) in [
        (&redirecting, &redirecting_seen),
        (&html, &html_seen),
        (&json_site, &json_seen),
        (&format!("{redirecting}/mattermost"), &redirecting_seen),
    ] {
        let response = admin
            .submit(
                "/admin/settings/connection/teams",
                &[("url", typed.as_str()), ("token", token)],
            )
            .await;
        assert_eq!(response.status(), 422, "{typed}");
        let page = response.text().await.unwrap();
        assert_eq!(
            error_code(&page).as_deref(),
            Some("not_mattermost"),
            "{page}"
        );
        assert!(
            page.contains("This address does not answer like a Mattermost server"),
            "{page}"
        );
        assert!(!page.contains(token));
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.is_empty(), "{typed} was asked");
        assert!(
            seen.iter().all(|(_, _, auth)| auth.is_none()),
            "the token went to a server that is not Mattermost: {seen:?}"
        );
    }
    // `parley doctor` (the same client) says so too, and follows no redirect either.
    let mut settings = app.settings().clone();
    settings.mattermost = Some(parley::config::MattermostSettings {
        url: redirecting.parse().unwrap(),
        token: token.to_owned().into(),
        team: "support".into(),
        channel: "requests".into(),
    });
    let report = parley::app::doctor::run(&settings).await;
    let reachable = report.get("reachable").unwrap();
    assert_eq!(reachable.verdict, parley::app::doctor::Verdict::Failed);
    assert!(reachable.found.contains("redirect"), "{report}");
    assert!(
        redirecting_seen
            .lock()
            .unwrap()
            .iter()
            .all(|(_, _, auth)| auth.is_none())
    );
    assert!(
        elsewhere_seen.lock().unwrap().is_empty(),
        "a redirect was followed: {:?}",
        elsewhere_seen.lock().unwrap()
    );
    assert!(
        app.stored_settings()
            .await
            .keys()
            .all(|k| !k.starts_with("mattermost.")),
        "nothing saved"
    );
}

#[tokio::test]
async fn only_allowed_origins_may_use_the_visitor_api() {
    let app = spawn_app().await;
    let foreign = "https://evil.example.net";
    let chat_body = json!({"name": "Erika", "message": "Hello?"});
    let post_from = |origin: Option<&str>| {
        let mut request = app.http.post(app.api("/chats")).json(&chat_body);
        if let Some(o) = origin {
            request = request.header("origin", o);
        }
        request.send()
    };

    // By default, parley's own pages (the demo page) and clients without an Origin only.
    for origin in [foreign, "null", "http://127.0.0.1", "https://127.0.0.1:1"] {
        for path in ["/status", "/widget-config", "/chats/x", "/openapi.json"] {
            let response = app
                .http
                .get(app.api(path))
                .header("origin", origin)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{origin} {path}");
            // The refusal may be read there, so the widget can tell the site's developer.
            assert_eq!(response.headers()["access-control-allow-origin"], origin);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "origin_not_allowed", "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("PARLEY_ALLOWED_ORIGINS")
            );
        }
        let response = post_from(Some(origin)).await.unwrap();
        assert_eq!(response.status(), 403, "{origin}");
        // A preflight from there gets no grant: the browser never sends the request.
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, app.api("/chats"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert!(
            preflight
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }
    let chats = app.chat_count().await;
    assert_eq!(chats, 0, "no refused request started a chat");

    let own = app.url.clone();
    let response = post_from(Some(&own)).await.unwrap();
    assert_eq!(response.status(), 201, "parley's own origin");
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        own.as_str()
    );
    let response = post_from(None).await.unwrap();
    assert_eq!(
        response.status(),
        201,
        "no Origin (not a browser's cross-site request)"
    );

    // `*`, set explicitly, lets every site in.
    let open = spawn_app_with(|s| s.allowed_origins = AllowedOrigins::Any).await;
    let response = open
        .http
        .post(open.api("/chats"))
        .header("origin", foreign)
        .json(&chat_body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // A listed site works, others still do not.
    let listed = spawn_app_with(|s| {
        s.allowed_origins = AllowedOrigins::List(vec!["https://shop.example.com".into()])
    })
    .await;
    for (origin, status) in [("https://shop.example.com", 201), (foreign, 403)] {
        let response = listed
            .http
            .post(listed.api("/chats"))
            .header("origin", origin)
            .json(&chat_body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{origin}");
    }
}

#[tokio::test]
async fn downloads_carry_the_documented_csp() {
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello").await;
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let docs = docs.split_whitespace().collect::<Vec<_>>().join(" ");
    for (name, bytes) in [("photo.png", PNG), ("notes.txt", &b"plain <b>text</b>"[..])] {
        let (status, body) = upload(&app, &chat, None, &[(name, bytes)]).await;
        assert!((200..300).contains(&status), "{status} {body}");
        let url = body["message"]["files"][0]["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(csp, parley::http::files::DOWNLOAD_CSP, "{name}");
        assert!(csp.starts_with("default-src 'none'") && csp.ends_with("; sandbox"));
        assert!(!csp.contains("script"), "{csp}");
        assert!(
            docs.contains(&format!("`Content-Security-Policy: {csp}`")),
            "docs/api.md states the policy sent: {csp}"
        );
    }
}

#[tokio::test]
async fn error_bodies_never_echo_the_input() {
    let app = spawn_app().await;
    let marker = "SECRET<b>marker</b>";
    let cases = [
        (json!({"message": "hi", "department": marker}), "department"),
        (
            json!({"message": "hi", marker: 1}),
            "not part of this request",
        ),
        (json!({"message": "hi", "name": {marker: marker}}), "name"),
        (json!({"message": [marker]}), "message"),
        (json!({"name": marker}), "`message`"),
        (json!({"message": "hi", "department": 1.5}), "department"),
    ];
    for (body, names) in cases {
        let response = app
            .http
            .post(app.api("/chats"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{body}");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("SECRET"),
            "the error echoes the input: {text}"
        );
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["error"]["code"], "invalid_fields");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(names),
            "{body}: {text}"
        );
    }
    // The same for Mattermost's callback and the offline form.
    for (path, body) in [
        (
            "/mattermost/actions",
            json!({"user_id": 7, "post_id": marker}),
        ),
        (
            "/api/v1/offline-messages",
            json!({"email": [marker], "message": "x"}),
        ),
    ] {
        let response = app
            .http
            .post(format!("{}{path}", app.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        assert!(!text.contains("SECRET"), "{path}: {text}");
    }
}

#[tokio::test]
async fn a_refused_website_gets_a_console_message_naming_the_setting() {
    let app = spawn_app().await;
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Shop</title></head>\
         <body><h1>A site parley does not allow</h1>\
         <script src=\"{}/widget.js\" async></script></body></html>",
        app.url
    );
    let site = Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    // 127.0.0.2: another origin than parley's 127.0.0.1, and not in its allowed origins.
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let site_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });

    run_browser_script("origin_refused.mjs", &[("HOST_PAGE_URL", &site_url)]).await;
}

#[tokio::test]
async fn doctor_and_back_office_say_which_websites_are_allowed() {
    for (origins, any) in [
        (AllowedOrigins::List(vec![]), false),
        (
            AllowedOrigins::List(vec!["https://shop.example.com".into()]),
            false,
        ),
        (AllowedOrigins::Any, true),
    ] {
        let listed = origins.clone();
        let app = spawn_app_with(move |s| s.allowed_origins = listed).await;
        let own = app.url.clone();
        let report = parley::app::doctor::run(app.settings()).await;
        let check = report.get("origins").expect("doctor checks the origins");
        let expected = if any {
            parley::app::doctor::Verdict::Warning
        } else {
            parley::app::doctor::Verdict::Ok
        };
        assert_eq!(check.verdict, expected, "{report}");
        assert!(report.passed(), "{report}");

        let admin = signed_in(&app, "a@example.com", Role::Admin).await;
        for path in ["/admin", "/admin/settings"] {
            let (status, html) = admin.page(path).await;
            assert_eq!(status, 200);
            assert!(
                html.contains(&format!("data-any=\"{any}\"")),
                "{path}: {html}"
            );
            match &origins {
                AllowedOrigins::Any => {
                    assert!(html.contains("PARLEY_ALLOWED_ORIGINS is `*`"), "{html}");
                    assert!(check.found.contains('*'));
                }
                AllowedOrigins::List(list) => {
                    assert!(html.contains(&format!("parley's own ({own})")), "{html}");
                    assert!(check.found.contains(&own), "{}", check.found);
                    for site in list {
                        assert!(
                            html.contains(site.as_str()) && check.found.contains(site.as_str())
                        );
                    }
                }
            }
        }
    }
}
