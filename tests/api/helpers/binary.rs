//! The real `parley` binary (`CARGO_BIN_EXE_parley`) as an admin runs it: a command with none
//! of the test's own `PARLEY_*` variables, pointed at a test app's database and simulator when
//! asked, its output, and a served instance whose log is read line by line.

use std::{
    path::Path,
    process::{Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{io::AsyncBufReadExt, process::Command};

use super::{TestApp, wait_until};

/// `parley <args>` without the `PARLEY_*` variables of the test's environment (so a
/// developer's own settings never leak in), killed when dropped.
pub fn parley(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command.args(args).kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PARLEY_") {
            command.env_remove(key);
        }
    }
    command
}

/// `parley <args>` with its data in `dir` and no config file, as the back-office commands
/// and `parley doctor` run in a fresh installation.
pub fn parley_in(dir: &Path, args: &[&str]) -> Command {
    let mut command = parley(args);
    command
        .env("PARLEY_CONFIG", dir.join("no-such-parley.toml"))
        .env("PARLEY_DATA_DIR", dir);
    command
}

/// `parley <args>` on the app's database and data directory (no Mattermost settings).
pub fn parley_on(app: &TestApp, args: &[&str]) -> Command {
    let mut command = parley_in(app.data_dir(), args);
    command.env("PARLEY_DATABASE_URL", app.database_url());
    command
}

/// Points `command` at the app's simulator, team and requests channel.
pub fn with_mattermost<'a>(command: &'a mut Command, app: &TestApp) -> &'a mut Command {
    command
        .env("PARLEY_MATTERMOST_URL", app.sim.url())
        .env("PARLEY_MATTERMOST_TOKEN", &app.bot.token)
        .env("PARLEY_MATTERMOST_TEAM", "support")
        .env("PARLEY_MATTERMOST_CHANNEL", "requests")
}

/// Runs `command` to its end (at most 60 s) and returns what it printed and its status.
pub async fn output(command: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the parley command finishes")
        .expect("the parley command runs")
}

/// `parley <args>` in a fresh installation at `dir` (public URL set) with `envs` added.
pub async fn run_binary(args: &[&str], envs: &[(&str, String)], dir: &Path) -> Output {
    let mut command = parley_in(dir, args);
    command.env("PARLEY_PUBLIC_URL", "https://chat-widget.example.com");
    for (k, v) in envs {
        command.env(k, v);
    }
    output(&mut command).await
}

/// `text` without SGR colour sequences (`ESC [ … m`).
pub fn without_colours(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\u{1b}[") {
        out.push_str(&rest[..at]);
        rest = &rest[at + 2..];
        match rest.find('m') {
            Some(end) if rest[..end].chars().all(|c| c.is_ascii_digit() || c == ';') => {
                rest = &rest[end + 1..]
            }
            _ => out.push_str("\u{1b}["),
        }
    }
    out.push_str(rest);
    out
}

/// parley's log, read line by line from the real binary's piped stdout.
pub struct LoggedServer {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl LoggedServer {
    /// Starts `parley serve` on a free port of 127.0.0.1 with its data in `dir`, and waits
    /// until it listens; returns it with its URL.
    pub async fn start(dir: &Path) -> (Self, String) {
        let mut command = parley_in(dir, &["serve"]);
        command
            .env("PARLEY_LISTEN", "127.0.0.1:0")
            .env(
                "RUST_LOG",
                "debug,sqlx=warn,hyper=info,h2=info,reqwest=info",
            )
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let lines: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let sink = lines.clone();
        tokio::spawn(async move {
            loop {
                let mut line = Vec::new();
                match out.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink.lock().unwrap().push(line),
                }
            }
        });
        let server = Self { child, lines };
        server.wait_for("parley is listening").await;
        // Colour codes (if any: that is checked later) are not part of the address.
        let listening = without_colours(&server.text());
        let at = listening.find("address=").expect("the address is logged") + 8;
        let address: String = listening[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        (server, format!("http://{address}"))
    }

    /// The whole log so far, lossily as text.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    pub fn raw(&self) -> Vec<u8> {
        self.lines.lock().unwrap().concat()
    }

    pub async fn wait_for(&self, needle: &str) {
        wait_until(&format!("the log says `{needle}`"), || async {
            self.text().contains(needle)
        })
        .await;
    }

    pub async fn stop(mut self) {
        self.child.kill().await.ok();
    }
}
