//! The real `parley` binary started as an admin would: unknown `PARLEY_*` variables (as
//! Kubernetes sets them), commands run from the wrong directory, and what the log says at start.

use std::{path::Path, process::Stdio, time::Duration};

use mattermost_sim::{MattermostSim, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{binary, poll_until};

/// The variables Kubernetes puts into every pod of a namespace with a Service named `parley`.
const KUBERNETES_VARIABLES: [(&str, &str); 7] = [
    ("PARLEY_PORT", "tcp://10.96.0.12:8080"),
    ("PARLEY_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
    ("PARLEY_PORT_8080_TCP_ADDR", "10.96.0.12"),
    ("PARLEY_PORT_8080_TCP_PORT", "8080"),
    ("PARLEY_PORT_8080_TCP_PROTO", "tcp"),
    ("PARLEY_SERVICE_HOST", "10.96.0.12"),
    ("PARLEY_SERVICE_PORT", "8080"),
];

/// `parley <args>` in `dir`, with no `PARLEY_*` variable but `env`.
fn parley(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = binary::parley(args);
    command
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied());
    command
}

async fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = binary::output(&mut parley(dir, args, env)).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn commands_besides_serve_create_no_database_and_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("data").join("parley.db");
    for args in [
        &["doctor"][..],
        &["archive"],
        &["department", "list"],
        &["admin", "create-manager", "--email", "ops@example.com"],
        &["admin", "reset-password", "--email", "ops@example.com"],
    ] {
        let (code, text) = run(dir.path(), args, &[]).await;
        assert_ne!(code, Some(0), "{args:?}: {text}");
        assert!(
            entries(dir.path()).is_empty(),
            "{args:?} left {:?} behind: {text}",
            entries(dir.path())
        );
        assert!(
            text.contains(&expected.display().to_string()),
            "{args:?} names the database it looked for: {text}"
        );
        for fix in ["PARLEY_DATA_DIR", "PARLEY_DATABASE_URL", "PARLEY_CONFIG"] {
            assert!(
                text.contains(fix),
                "{args:?} says how to point it ({fix}): {text}"
            );
        }
    }

    // Pointed at the right directory, they use the database there.
    let (code, text) = run(dir.path(), &["migrate"], &[]).await;
    assert_eq!(code, Some(0), "{text}");
    let elsewhere = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let env = [("PARLEY_DATA_DIR", data_dir.to_str().unwrap())];
    let (code, text) = run(elsewhere.path(), &["department", "list"], &env).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(entries(elsewhere.path()).is_empty());
}

#[tokio::test]
async fn kubernetes_service_variables_are_ignored_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run(dir.path(), &["doctor"], &KUBERNETES_VARIABLES).await;
    assert!(!text.contains("configuration error"), "{text}");
    assert_ne!(code, Some(2), "{text}");
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("PARLEY_SERVICE_HOST"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {text}");
    for (name, value) in KUBERNETES_VARIABLES {
        assert!(warnings[0].contains(name), "{name} named: {text}");
        assert!(
            !text.contains(value) || value == "8080" || value == "tcp",
            "no values: {text}"
        );
    }

    // A typo in parley.toml is still refused.
    std::fs::write(dir.path().join("parley.toml"), "lisen = \"0.0.0.0:8080\"\n").unwrap();
    let (code, text) = run(dir.path(), &["doctor"], &[]).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("lisen"), "{text}");
}

#[tokio::test]
async fn a_mattermost_url_without_scheme_says_to_add_one() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("PARLEY_MATTERMOST_URL", "127.0.0.1:8065"),
        ("PARLEY_MATTERMOST_TOKEN", "x"),
        ("PARLEY_MATTERMOST_TEAM", "support"),
        ("PARLEY_MATTERMOST_CHANNEL", "requests"),
    ];
    let (code, text) = run(dir.path(), &["doctor"], &env).await;
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("PARLEY_MATTERMOST_URL"), "{text}");
    assert!(text.contains("http:// or https://"), "{text}");
}

/// A `parley serve` child whose JSON log lines are collected.
struct Served {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    url: String,
}

impl Served {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut env = env.to_vec();
        env.extend([
            ("PARLEY_LISTEN", "127.0.0.1:0"),
            ("PARLEY_LOG_FORMAT", "json"),
        ]);
        let mut child = parley(dir, &["serve"], &env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("parley serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(json!({ "message": line }));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let mut served = Self {
            child,
            lines,
            seen: Vec::new(),
            url: String::new(),
        };
        let listening = served
            .wait_for_line("parley is listening", |l| {
                message(l) == "parley is listening"
            })
            .await;
        served.url = format!("http://{}", listening["address"].as_str().unwrap());
        served
    }

    /// The first line (seen or to come, within 30 s) that matches.
    async fn wait_for_line(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("waiting for the log line: {what}; seen {:#?}", self.seen)
                })
                .unwrap_or_else(|| {
                    panic!("parley ended before logging: {what}; seen {:#?}", self.seen)
                });
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
        }
    }

    /// Stops the process and returns every line it logged.
    async fn stop(mut self) -> Vec<Value> {
        self.child.kill().await.ok();
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        self.seen
    }
}

fn message(line: &Value) -> &str {
    line["message"].as_str().unwrap_or_default()
}

fn errors(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["level"] == "ERROR").collect()
}

#[tokio::test]
async fn an_offline_refusal_is_no_error_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::start(dir.path(), &[]).await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let response = http
            .post(format!("{}/api/v1/chats", served.url))
            .json(&json!({"name": "Ann", "message": "hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "offline", "{body}");
    }
    // A later request's log line shows the earlier ones were logged.
    let health = http
        .get(format!("{}/readyz", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    served
        .wait_for_line("the Mattermost connection in force", |l| {
            message(l).contains("Mattermost is not configured")
        })
        .await;
    let lines = served.stop().await;
    assert!(errors(&lines).is_empty(), "no ERROR: {:#?}", errors(&lines));
}

#[tokio::test]
async fn the_log_names_the_connection_in_force_and_says_connected_once() {
    let sim = MattermostSim::start_with(SimConfig {
        allowed_untrusted_internal_connections: "127.0.0.1 localhost".into(),
        ..SimConfig::default()
    })
    .await;
    let team = sim.create_team("support", "Support");
    let bot = sim.create_bot("parley", "Parley");
    let alice = sim.create_user("alice", "Alice", "Operator");
    let requests = sim.create_channel(&team, "requests", "Chat requests", false);
    for user in [&bot, &alice] {
        sim.add_team_member(&team, &user.id);
        sim.add_channel_member(&requests, &user.id);
    }
    sim.set_status(&alice.id, "online");
    let dir = tempfile::tempdir().unwrap();
    let sim_url = sim.url();
    let mut env = KUBERNETES_VARIABLES.to_vec();
    env.extend([
        ("PARLEY_MATTERMOST_URL", sim_url.as_str()),
        ("PARLEY_MATTERMOST_TOKEN", bot.token.as_str()),
        ("PARLEY_MATTERMOST_TEAM", "support"),
        ("PARLEY_MATTERMOST_CHANNEL", "~requests"),
    ]);
    let mut served = Served::start(dir.path(), &env).await;
    let in_force = served
        .wait_for_line("the Mattermost connection in force", |l| {
            message(l).contains("Mattermost connection")
        })
        .await;
    assert_eq!(in_force["source"], "environment variables", "{in_force}");
    assert_eq!(in_force["channel"], "requests", "{in_force}");

    // Ready, and a chat reaches Mattermost: every task that needs the connection has it.
    let http = reqwest::Client::new();
    poll_until("parley gets ready", Duration::from_secs(20), || async {
        let ready = http
            .get(format!("{}/readyz", served.url))
            .send()
            .await
            .unwrap();
        (ready.status() == 200).then_some(())
    })
    .await;
    let started = http
        .post(format!("{}/api/v1/chats", served.url))
        .json(&json!({"name": "Ann", "message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201, "{}", started.text().await.unwrap());
    poll_until(
        "the request post appears",
        Duration::from_secs(20),
        || async {
            sim.posts_in_channel(&requests)
                .iter()
                .any(|p| p["user_id"] == bot.id.as_str())
                .then_some(())
        },
    )
    .await;
    let lines = served.stop().await;
    let connected: Vec<_> = lines
        .iter()
        .filter(|l| message(l) == "connected to Mattermost")
        .collect();
    assert_eq!(connected.len(), 1, "{connected:#?}");
    assert!(errors(&lines).is_empty(), "{:#?}", errors(&lines));
    let ignored: Vec<_> = lines
        .iter()
        .filter(|l| message(l).contains("ignoring PARLEY_"))
        .collect();
    assert_eq!(
        ignored.len(),
        1,
        "served with Kubernetes' variables: {lines:#?}"
    );
}

mod readiness {
    use std::time::Duration;

    use parley::config::MattermostSettings;
    use serde_json::Value;

    use crate::{
        helpers::backoffice::signed_in,
        helpers::{TestApp, poll_until, spawn_app},
    };

    async fn readyz(app: &TestApp) -> (u16, Value) {
        app.get_status_json(&format!("{}/readyz", app.url)).await
    }

    /// Waits (up to 60 s: the event stream's back-off reaches 30 s) until `/readyz` answers
    /// `status` with a body that `matches`.
    async fn wait_for_readyz(
        app: &TestApp,
        status: u16,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let what = format!("/readyz answers {status} as expected");
        poll_until(&what, Duration::from_secs(60), || async {
            let (now, body) = readyz(app).await;
            (now == status && matches(&body)).then_some(body)
        })
        .await
    }

    #[tokio::test]
    async fn a_bot_outside_the_requests_channel_is_not_ready_and_says_how_to_fix_it() {
        let app = spawn_app().await;
        let lobby = app
            .sim
            .create_channel(&app.team_id, "lobby", "Lobby", false);
        app.sim.add_channel_member(&lobby, &app.alice.id);
        let mm = MattermostSettings {
            channel: "lobby".into(),
            ..app.bridge().unwrap().settings().clone()
        };
        app.apply_connection(mm);

        let body =
            wait_for_readyz(&app, 503, |b| b["problems"].to_string().contains("invite")).await;
        let problem = body["problems"][0].as_str().unwrap_or_default().to_owned();
        assert!(problem.contains("/invite @parley"), "{body}");
        assert!(problem.contains("~lobby"), "{body}");
        assert_eq!(body["mattermost"], "disconnected", "{body}");
        let status: Value = app.get_json(&app.api("/status")).await;
        assert_ne!(status["online"], true, "{status}");

        // The dashboard says the same, and no word of a department.
        let agent = signed_in(&app, "m@example.com", parley::app::accounts::Role::Manager).await;
        let (_, html) = agent.page("/admin").await;
        assert!(html.contains("/invite @parley"), "{html}");
        assert!(html.contains("~lobby"), "{html}");
        assert!(!html.contains("a department"), "{html}");
        assert!(!html.contains("dot ok"), "not green: {html}");

        // Invited: ready without a restart.
        app.sim.add_channel_member(&lobby, &app.bot.id);
        let body = wait_for_readyz(&app, 200, |_| true).await;
        assert_eq!(body["mattermost"], "connected", "{body}");
    }
}

mod callbacks {
    use std::time::Duration;

    use parley::app::accounts::Role;
    use serde_json::Value;

    use super::run;
    use crate::{
        helpers::backoffice::signed_in,
        helpers::{TestApp, poll_until, spawn_app},
    };

    /// Waits up to 30 s for a `/readyz` body that `matches`; returns the status and the body.
    async fn wait_for_readyz(app: &TestApp, matches: impl Fn(&Value) -> bool) -> (u16, Value) {
        poll_until("/readyz matches", Duration::from_secs(30), || async {
            let (status, body) = app.get_status_json(&format!("{}/readyz", app.url)).await;
            matches(&body).then_some((status, body))
        })
        .await
    }

    #[tokio::test]
    async fn the_accept_button_is_checked_at_start_and_a_refused_callback_is_shown() {
        let app = spawn_app().await;
        let (status, body) = wait_for_readyz(&app, |b| b["callbacks"] == "ok").await;
        assert_eq!(status, 200, "{body}");
        let agent = signed_in(&app, "m@example.com", Role::Manager).await;
        let (_, html) = agent.page("/admin").await;
        assert!(
            html.contains("Accept button: Mattermost reaches parley"),
            "{html}"
        );

        // Mattermost now refuses to call loopback addresses (as a real server does by default).
        app.sim
            .set_config(|c| c.allowed_untrusted_internal_connections = String::new());
        let mm = app.bridge().unwrap().settings().clone();
        app.apply_connection(mm);
        let (status, body) = wait_for_readyz(&app, |b| b["callbacks"] == "failing").await;
        assert_eq!(status, 200, "a warning, not unready: {body}");
        let warning = body["warnings"][0].as_str().unwrap();
        assert!(
            warning.contains("AllowedUntrustedInternalConnections"),
            "{body}"
        );
        assert!(warning.contains("✅"), "{body}");
        let (_, html) = agent.page("/admin").await;
        assert!(
            html.contains("Accept button: Mattermost cannot call parley back"),
            "{html}"
        );

        // The request post tells operators the other way to accept.
        let chat = app.start_simple_chat("hello").await;
        let post = app.request_post(&chat).await;
        let footer = post["props"]["attachments"][0]["footer"]
            .as_str()
            .unwrap_or_default();
        assert!(footer.contains("✅"), "{post}");
    }

    #[tokio::test]
    async fn doctor_checks_that_mattermost_can_call_this_parley_back() {
        let app = spawn_app().await;
        let dir = tempfile::tempdir().unwrap();
        let database = app.database_url();
        let data_dir = app.data_dir().display().to_string();
        let sim_url = app.sim.url();
        let doctor = |public_url: String| {
            let (database, data_dir, sim_url, token) = (
                database.clone(),
                data_dir.clone(),
                sim_url.clone(),
                app.bot.token.clone(),
            );
            let dir = dir.path().to_owned();
            async move {
                let env = [
                    ("PARLEY_DATABASE_URL", database.as_str()),
                    ("PARLEY_DATA_DIR", data_dir.as_str()),
                    ("PARLEY_MATTERMOST_URL", sim_url.as_str()),
                    ("PARLEY_MATTERMOST_TOKEN", token.as_str()),
                    ("PARLEY_MATTERMOST_TEAM", "support"),
                    ("PARLEY_MATTERMOST_CHANNEL", "requests"),
                    ("PARLEY_PUBLIC_URL", public_url.as_str()),
                ];
                let (_, text) = run(&dir, &["doctor"], &env).await;
                text.lines()
                    .skip_while(|l| !l.contains("Mattermost can call parley back"))
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };

        let good = doctor(app.url.clone()).await;
        assert!(good.starts_with("[  ok   ]"), "{good}");
        assert!(good.contains("Accept button works"), "{good}");

        // Nothing listens there.
        let nowhere = doctor("http://127.0.0.1:9".into()).await;
        assert!(nowhere.starts_with("[warning]"), "{nowhere}");
        assert!(nowhere.contains("cannot be reached"), "{nowhere}");
        assert!(nowhere.contains("✅"), "{nowhere}");

        // Something else listens there.
        let other = doctor(app.sim.url()).await;
        assert!(other.contains("not as this parley"), "{other}");

        // Mattermost refuses the address.
        app.sim
            .set_config(|c| c.allowed_untrusted_internal_connections = String::new());
        let refused = doctor(app.url.clone()).await;
        assert!(refused.starts_with("[warning]"), "{refused}");
        assert!(
            refused.contains("AllowedUntrustedInternalConnections"),
            "{refused}"
        );
    }
}
