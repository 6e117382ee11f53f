//! `spawn_app()`: a real parley on a random port with a temporary SQLite database, connected
//! to a fresh Mattermost simulator with a team, a requests channel, a bot and two operators.
//! With `PARLEY_TEST_DATABASE_URL=postgres://…` set, each app gets a throw-away PostgreSQL
//! database of its own instead, dropped with the app.

pub mod backoffice;
pub mod binary;
mod inspect;
pub mod jobs;
pub mod live;

use std::{future::Future, time::Duration};

use mattermost_sim::{MattermostSim, SimConfig, SimUser};
use parley::{
    config::{DatabaseUrl, MattermostSettings, Settings},
    http::state::AppState,
    startup::Application,
};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub sim: MattermostSim,
    pub bot: SimUser,
    pub alice: SimUser,
    pub bob: SimUser,
    pub team_id: String,
    pub requests_channel_id: String,
    /// Private to the helpers: tests read through the typed helpers (helpers/inspect.rs,
    /// helpers/jobs.rs), never the app's internals.
    state: AppState,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// `None` for another instance on an app's data directory (the first app owns it).
    _dir: Option<tempfile::TempDir>,
    _database: Option<TestDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A started visitor chat.
#[derive(Clone)]
pub struct VisitorChat {
    pub id: String,
    pub token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    // `TEST_LOG=1 cargo nextest run --no-capture` shows parley's log.
    if std::env::var_os("TEST_LOG").is_some() {
        parley::telemetry::init(parley::config::LogFormat::Pretty);
    }
    let sim = MattermostSim::start_with(SimConfig {
        allowed_untrusted_internal_connections: "127.0.0.1 localhost".into(),
        ..SimConfig::default()
    })
    .await;
    let team_id = sim.create_team("support", "Support");
    let bot = sim.create_bot("parley", "Parley");
    let alice = sim.create_user("alice", "Alice", "Operator");
    let bob = sim.create_user("bob", "Bob", "Helper");
    let requests_channel_id = sim.create_channel(&team_id, "requests", "Chat requests", false);
    for user in [&bot, &alice, &bob] {
        sim.add_team_member(&team_id, &user.id);
        sim.add_channel_member(&requests_channel_id, &user.id);
    }
    // An operator is present, so the widget is online (see tests/api/departments.rs).
    sim.set_status(&alice.id, "online");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_data_dir(dir.path().to_path_buf());
    let database = TestDatabase::create_if_configured().await;
    if let Some(db) = &database {
        settings.database = db.url.clone();
    }
    settings.mattermost = Some(MattermostSettings {
        url: sim.url().parse().unwrap(),
        token: bot.token.clone().into(),
        team: "support".into(),
        channel: "requests".into(),
    });
    // Generous limits; the rate-limit test sets its own.
    settings.limits.chats_per_minute_per_ip = 1000;
    settings.limits.messages_per_minute = 1000;
    // The suite must not depend on the free space of the machine it runs on (CI machines have
    // had less than the default floor); tests/api/upload_room.rs sets the floor it tests.
    settings.files.min_free_disk_bytes = 0;
    customise(&mut settings);
    let app = start(settings).await;
    let state = app.state().clone();
    let url = format!("http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());

    let test = TestApp {
        url,
        http: reqwest::Client::new(),
        sim,
        bot,
        alice,
        bob,
        team_id,
        requests_channel_id,
        state,
        shutdown,
        task: Some(task),
        _dir: Some(dir),
        _database: database,
    };
    // Without the background jobs nothing connects (the event stream is one of them).
    if test.state.bridge().is_some() && test.state.settings.run_background_jobs {
        wait_until("parley connects to Mattermost", || async {
            test.state.online()
        })
        .await;
        // The start-up check of the Accept button makes calls of its own: done before a test
        // injects failures or counts calls.
        wait_until("parley checks that Mattermost can call it back", || async {
            test.state
                .bridge()
                .is_some_and(|b| b.callback_check().is_some())
        })
        .await;
    }
    test
}

/// A PostgreSQL database made for one test app (`PARLEY_TEST_DATABASE_URL` names the server
/// and a database to connect to for creating it), dropped when the app is.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: DatabaseUrl,
}

impl TestDatabase {
    async fn create_if_configured() -> Option<Self> {
        use sqlx::{Connection as _, Executor as _};

        let admin_url = std::env::var("PARLEY_TEST_DATABASE_URL").ok()?;
        let name = format!("parley_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PARLEY_TEST_DATABASE_URL reaches PostgreSQL");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("the test role may create databases");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("PARLEY_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        let url = DatabaseUrl::parse(url.as_str()).expect("a PostgreSQL URL");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        use sqlx::{Connection as _, Executor as _};

        // Drop runs inside the test's runtime, which cannot be awaited here; a thread with its
        // own runtime does the work while this one waits. FORCE ends the app's connections.
        // PostgreSQL 15 also waits for every backend to acknowledge the drop, and one that is
        // still authenticating a connection of this (now blocked) runtime would hold it up to
        // `authentication_timeout` (60 s): hence peer or trust authentication for the tests
        // (see scripts/test-postgres).
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// Binds first so `public_url` (the callback address Mattermost uses) has the real port.
async fn start(mut settings: Settings) -> Application {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    settings.listen = addr;
    settings.public_url = format!("http://{addr}").parse().unwrap();
    Application::build_with_listener(settings, listener)
        .await
        .expect("parley builds")
}

/// Polls `condition` until it holds; fails the test after 10 s with `what`.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_until(what, Duration::from_secs(10), || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `found` until it gives a value and returns it; fails the test after `within` with
/// `what`. The one polling loop of the tests (each poll is short; the deadline is generous for
/// a loaded machine).
pub async fn poll_until<T, F, Fut>(what: &str, within: Duration, mut found: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = found().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// Another parley on this app's settings: its database, data directory and simulator (a
    /// second instance of a cluster, or the same deployment started again after
    /// [`TestApp::stop`]). It does not wait for a Mattermost connection.
    pub async fn another_instance(&self) -> TestApp {
        let app = start((*self.state.settings).clone()).await;
        let state = app.state().clone();
        let url = format!("http://{}", app.local_addr());
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        TestApp {
            url,
            http: reqwest::Client::new(),
            sim: self.sim.clone(),
            bot: self.bot.clone(),
            alice: self.alice.clone(),
            bob: self.bob.clone(),
            team_id: self.team_id.clone(),
            requests_channel_id: self.requests_channel_id.clone(),
            state,
            shutdown,
            task: Some(task),
            _dir: None,
            _database: None,
        }
    }

    /// Stops the app and waits until it has (its jobs ended, its database connections
    /// closed); the simulator and the database stay.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("the app task")
                .expect("the app stops cleanly");
        }
    }

    /// The app's `PARLEY_DATABASE_URL`, for running the real binary against its database.
    pub fn database_url(&self) -> String {
        match &self.state.settings.database {
            parley::config::DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            parley::config::DatabaseUrl::Postgres(url) => url.expose().to_owned(),
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    /// GETs `url` (from [`TestApp::api`] or any other) and returns its status and JSON body.
    pub async fn get_status_json(&self, url: &str) -> (u16, Value) {
        let response = self.http.get(url).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// GETs `url` and returns its JSON body, whatever the status.
    pub async fn get_json(&self, url: &str) -> Value {
        self.get_status_json(url).await.1
    }

    pub async fn start_chat(&self, body: Value) -> VisitorChat {
        let response = self
            .http
            .post(self.api("/chats"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "starting a chat");
        let body: Value = response.json().await.unwrap();
        VisitorChat {
            id: body["id"].as_str().unwrap().to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn start_simple_chat(&self, message: &str) -> VisitorChat {
        self.start_chat(json!({"name": "Erika Visitor", "email": "erika@example.com", "message": message, "page_url": "https://shop.example.com/cart"}))
            .await
    }

    /// A request to one of the chat's API paths, with the visitor's token.
    fn visitor_request(
        &self,
        method: reqwest::Method,
        chat: &VisitorChat,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.api(&format!("/chats/{}{path}", chat.id)))
            .bearer_auth(&chat.token)
    }

    pub async fn send(&self, chat: &VisitorChat, text: &str) -> reqwest::Response {
        self.visitor_request(reqwest::Method::POST, chat, "/messages")
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap()
    }

    /// The visitor ends the chat.
    pub async fn close(&self, chat: &VisitorChat) -> reqwest::Response {
        self.visitor_request(reqwest::Method::POST, chat, "/close")
            .send()
            .await
            .unwrap()
    }

    pub async fn chat_state(&self, chat: &VisitorChat) -> Value {
        let response = self.visitor_request(reqwest::Method::GET, chat, "").send();
        response.await.unwrap().json().await.unwrap()
    }

    pub async fn messages(&self, chat: &VisitorChat) -> Vec<Value> {
        let response = self.visitor_request(reqwest::Method::GET, chat, "/messages?after=0");
        let body: Value = response.send().await.unwrap().json().await.unwrap();
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// The request post of the chat in the requests channel, once it exists.
    pub async fn request_post(&self, chat: &VisitorChat) -> Value {
        let mut found = None;
        wait_until("the request post appears", || {
            let posts = self.sim.posts_in_channel(&self.requests_channel_id);
            found = posts
                .into_iter()
                .find(|p| p["props"]["parley_chat_id"].as_str() == Some(&chat.id));
            let done = found.is_some();
            async move { done }
        })
        .await;
        found.unwrap()
    }

    /// Clicks Accept as `user` and returns the chat's channel id once it exists.
    pub async fn accept(&self, chat: &VisitorChat, user: &SimUser) -> String {
        let post = self.request_post(chat).await;
        let (status, _) = self
            .sim
            .click_button(user, post["id"].as_str().unwrap(), "accept")
            .await;
        assert_eq!(status, 200, "the click succeeds");
        let channel_id = self.chat_channel(chat).await;
        wait_until("the operator is added to the chat channel", || async {
            self.sim.channel_members(&channel_id).contains(&user.id)
        })
        .await;
        channel_id
    }

    /// The chat's Mattermost channel id, once parley created it.
    pub async fn chat_channel(&self, chat: &VisitorChat) -> String {
        let mut channel = None;
        wait_until("the chat channel exists", || {
            let purpose = format!("parley chat {}", chat.id);
            channel = self
                .sim
                .channels_in_team(&self.team_id)
                .into_iter()
                .find(|c| c["purpose"].as_str() == Some(&purpose));
            let done = channel.is_some();
            async move { done }
        })
        .await;
        channel.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// Posts in a channel by the bot (parley), oldest first, without deleted or system posts.
    pub fn bot_posts(&self, channel_id: &str) -> Vec<Value> {
        self.sim
            .posts_in_channel(channel_id)
            .into_iter()
            .filter(|p| p["user_id"] == self.bot.id.as_str())
            .filter(|p| p["type"].as_str().unwrap_or_default().is_empty())
            .collect()
    }

    /// Waits until the bot has posted a message containing `needle` in the channel.
    pub async fn wait_for_bot_post(&self, channel_id: &str, needle: &str) -> Value {
        let mut found = None;
        wait_until(&format!("parley posts `{needle}`"), || {
            found = self
                .bot_posts(channel_id)
                .into_iter()
                .find(|p| p["message"].as_str().unwrap_or_default().contains(needle));
            let done = found.is_some();
            async move { done }
        })
        .await;
        found.unwrap()
    }

    /// Waits until the visitor's transcript has a message matching `pred`.
    pub async fn wait_for_message(
        &self,
        chat: &VisitorChat,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        poll_until("a message", Duration::from_secs(10), || async {
            self.messages(chat).await.into_iter().find(|m| pred(m))
        })
        .await
    }
}

/// Where the browser tests put their screenshots (`target/screenshots`; the README's images
/// are copied from there).
pub fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// Runs `tests/browser/{script}` with node (real Chromium through playwright-core) and the
/// given environment, prints what it said, and fails the test with its output if it failed.
pub async fn run_browser_script(script: &str, env: &[(&str, &str)]) {
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does it)"
    );
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join(script))
        .current_dir(&browser_dir)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (install Node.js and Debian's chromium)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
}

/// A real 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A file part whose declared type is a lie on purpose for some tests; parley must not trust it.
fn part(name: &str, bytes: &[u8]) -> Part {
    Part::bytes(bytes.to_vec())
        .file_name(name.to_owned())
        .mime_str("image/png")
        .unwrap()
}

/// Sends a visitor upload (optional text and files); returns the status and the JSON body.
pub async fn upload(
    app: &TestApp,
    chat: &VisitorChat,
    text: Option<&str>,
    files: &[(&str, &[u8])],
) -> (u16, Value) {
    let mut form = Form::new();
    if let Some(text) = text {
        form = form.text("text", text.to_owned());
    }
    for (name, bytes) in files {
        form = form.part("file", part(name, bytes));
    }
    let response = app
        .http
        .post(app.api(&format!("/chats/{}/files", chat.id)))
        .bearer_auth(&chat.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
