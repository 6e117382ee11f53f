//! `cargo run --release -p parley-bench [-- --database-url postgres://…]`: measures the
//! simulator's own ceiling, then the release binary of parley (a separate process, so its
//! memory is its own) against the simulator on loopback, and writes the figures between the
//! markers of `docs/benchmarks.md`. A program that prints figures, not a test: nothing here
//! runs in CI.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _, stream};
use mattermost_sim::{MattermostSim, SimConfig, SimUser};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "Measures parley against the Mattermost simulator")]
struct Args {
    /// Also measure on PostgreSQL: a database URL on a server where the role may create
    /// databases (one throw-away database per parley start, made and dropped with `psql`).
    #[arg(long)]
    database_url: Option<String>,
    /// The parley binary; by default `cargo build --release --bin parley` is run first.
    #[arg(long)]
    parley_bin: Option<PathBuf>,
    /// The report whose generated part is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// Length of each load phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent chats in the relay phases.
    #[arg(long, default_value_t = 200)]
    chats: usize,
    /// Idle visitor WebSockets (one chat each).
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Operator posts per second in the Mattermost → visitor phase.
    #[arg(long, default_value_t = 200)]
    operator_rate: u64,
    /// Visitor messages per second in the latency phase (default: half the relayed rate).
    #[arg(long)]
    paced_rate: Option<f64>,
    /// Start-ups measured.
    #[arg(long, default_value_t = 5)]
    starts: usize,
}

const BEGIN: &str = "<!-- bench:begin (written by parley-bench) -->";
const END: &str = "<!-- bench:end -->";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let open_files = open_files_limit();
    if open_files < (args.sockets as u64) + 1_000 {
        bail!(
            "the open-files limit is {open_files}; {} sockets need more: run `ulimit -n {}` first",
            args.sockets,
            args.sockets + 2_000
        );
    }
    let bin = match &args.parley_bin {
        Some(bin) => bin.clone(),
        None => build_parley()?,
    };
    // parley runs in its own temporary directory.
    let bin = std::fs::canonicalize(&bin).with_context(|| format!("{}", bin.display()))?;
    let load_before = load_average();
    let started = Instant::now();

    eprintln!("1. simulator ceiling");
    let (ceiling, ceiling_cpu) = sim_ceiling(args.seconds.min(5)).await?;
    eprintln!("   {ceiling:.0} posts/s, {ceiling_cpu:?} CPU per post");

    let mut databases = vec![Database::Sqlite];
    if let Some(url) = &args.database_url {
        databases.push(Database::Postgres {
            admin_url: url.clone(),
        });
    }
    let mut results = Vec::new();
    for db in &databases {
        eprintln!("== {}", db.name());
        results.push(measure(&args, &bin, db).await?);
    }
    let load_after = load_average();
    let report = render(
        &args,
        (ceiling, ceiling_cpu),
        &results,
        &load_before,
        &load_after,
        started.elapsed(),
    );
    println!("{report}");
    write_report(&args.output, &report)?;
    eprintln!("written to {}", args.output.display());
    Ok(())
}

/// The figures of one database.
struct Figures {
    database: &'static str,
    ready: Vec<Duration>,
    alive: Vec<Duration>,
    idle_rss_kb: Vec<u64>,
    accepted_per_s: f64,
    during_sending_per_s: f64,
    relayed_per_s: f64,
    drain: Duration,
    parley_cpu: Duration,
    bench_cpu: Duration,
    database_cpu: Duration,
    paced_rate: f64,
    to_mattermost: Percentiles,
    visitor_request: Percentiles,
    to_visitor: Percentiles,
    to_visitor_samples: usize,
    sockets: usize,
    rss_before_sockets_kb: u64,
    rss_with_sockets_kb: u64,
}

async fn measure(args: &Args, bin: &Path, db: &Database) -> anyhow::Result<Figures> {
    eprintln!("5. start-up to ready, memory at idle");
    let mut ready = Vec::new();
    let mut alive = Vec::new();
    let mut idle_rss_kb = Vec::new();
    for _ in 0..args.starts {
        let world = World::new().await;
        let parley = Parley::spawn(bin, &world, db)?;
        let (to_alive, to_ready) = parley.wait_ready().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        alive.push(to_alive);
        ready.push(to_ready);
        idle_rss_kb.push(parley.rss_kb());
        parley.stop();
    }
    eprintln!("   ready in {:?} (median)", median(&ready));

    let world = World::new().await;
    let parley = Parley::spawn(bin, &world, db)?;
    parley.wait_ready().await?;
    let seen = Seen::watch(&world.sim);
    eprintln!("   opening {} accepted chats", args.chats);
    let chats = open_accepted_chats(&parley, &world, &seen, args.chats).await?;

    eprintln!("3. Mattermost → visitor");
    let (to_visitor, to_visitor_samples) =
        operator_to_visitor(&world, &chats, &seen, &parley, args).await?;
    eprintln!("   p50 {:?} p99 {:?}", to_visitor.p50, to_visitor.p99);

    eprintln!("2. visitor → Mattermost, as fast as visitors send");
    let load = relay_flat_out(&parley, &chats, &seen, args.seconds).await?;
    eprintln!(
        "   accepted {:.0}/s, relayed {:.0}/s, drained {:?} after the last send",
        load.accepted_per_s, load.relayed_per_s, load.drain
    );
    let paced_rate = args
        .paced_rate
        .unwrap_or((load.relayed_per_s / 2.0).max(1.0));
    eprintln!("   latency at {paced_rate:.0} messages/s");
    let (to_mattermost, visitor_request) =
        relay_paced(&parley, &chats, &seen, args.seconds, paced_rate).await?;
    eprintln!("   p50 {:?} p99 {:?}", to_mattermost.p50, to_mattermost.p99);
    parley.stop();

    eprintln!("4. {} idle visitor WebSockets", args.sockets);
    let world = World::new().await;
    let parley = Parley::spawn(bin, &world, db)?;
    parley.wait_ready().await?;
    let (rss_before_sockets_kb, rss_with_sockets_kb) =
        idle_sockets(&parley, &world, args.sockets).await?;
    eprintln!("   {rss_before_sockets_kb} kB before, {rss_with_sockets_kb} kB with the sockets");
    parley.stop();

    Ok(Figures {
        database: db.name(),
        ready,
        alive,
        idle_rss_kb,
        accepted_per_s: load.accepted_per_s,
        during_sending_per_s: load.during_sending_per_s,
        relayed_per_s: load.relayed_per_s,
        drain: load.drain,
        parley_cpu: load.parley_cpu,
        bench_cpu: load.bench_cpu,
        database_cpu: load.database_cpu,
        paced_rate,
        to_mattermost,
        visitor_request,
        to_visitor,
        to_visitor_samples,
        sockets: args.sockets,
        rss_before_sockets_kb,
        rss_with_sockets_kb,
    })
}

// ----- the simulator -------------------------------------------------------------------

/// A fresh simulator seeded as parley's tests seed it: team, requests channel, bot, operator.
struct World {
    sim: MattermostSim,
    bot: SimUser,
    alice: SimUser,
    team_id: String,
}

impl World {
    async fn new() -> Self {
        let sim = MattermostSim::start_with(SimConfig {
            allowed_untrusted_internal_connections: "127.0.0.1 localhost".into(),
            ..SimConfig::default()
        })
        .await;
        let team_id = sim.create_team("support", "Support");
        let bot = sim.create_bot("parley", "Parley");
        let alice = sim.create_user("alice", "Alice", "Operator");
        let requests = sim.create_channel(&team_id, "requests", "Chat requests", false);
        for user in [&bot, &alice] {
            sim.add_team_member(&team_id, &user.id);
            sim.add_channel_member(&requests, &user.id);
        }
        sim.make_system_admin(&bot.id);
        sim.set_status(&alice.id, "online");
        Self {
            sim,
            bot,
            alice,
            team_id,
        }
    }
}

/// Posts per second the simulator accepts from 64 concurrent clients posting as the bot
/// into 16 channels, with a `pending_post_id` and props as parley sends them.
/// The simulator's ceiling: posts per second, and the CPU time this process (simulator and
/// clients) spent per post.
async fn sim_ceiling(seconds: u64) -> anyhow::Result<(f64, Duration)> {
    let world = World::new().await;
    let channels: Vec<String> = (0..16)
        .map(|i| {
            let id = world
                .sim
                .create_channel(&world.team_id, &format!("c{i}"), "c", true);
            world.sim.add_channel_member(&id, &world.bot.id);
            id
        })
        .collect();
    let http = reqwest::Client::new();
    let url = format!("{}/api/v4/posts", world.sim.url());
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = cpu_time(std::process::id());
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (http, url, token) = (http.clone(), url.clone(), world.bot.token.clone());
            let channel = channels[i % channels.len()].clone();
            tokio::spawn(async move {
                let mut ok = 0u64;
                while Instant::now() < end {
                    let body = json!({
                        "channel_id": channel,
                        "message": "**Erika Visitor:** where is my parcel?",
                        "pending_post_id": uuid::Uuid::new_v4().simple().to_string(),
                        "props": {"parley_chat_id": "c", "parley_message_id": ok},
                    });
                    let sent = http.post(&url).bearer_auth(&token).json(&body).send();
                    if matches!(sent.await, Ok(r) if r.status() == 201) {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    let cpu = cpu_time(std::process::id()).saturating_sub(cpu_before);
    Ok((
        total as f64 / started.elapsed().as_secs_f64(),
        cpu / total.max(1) as u32,
    ))
}

/// When each marked post (text containing `bm<n>z`) appeared in the simulator.
#[derive(Clone)]
struct Seen {
    posts: Arc<Mutex<HashMap<u64, Instant>>>,
    requests: Arc<Mutex<HashMap<String, String>>>,
    last: Arc<Mutex<Instant>>,
}

impl Seen {
    fn watch(sim: &MattermostSim) -> Self {
        let seen = Seen {
            posts: Arc::default(),
            requests: Arc::default(),
            last: Arc::new(Mutex::new(Instant::now())),
        };
        let mut rx = sim.watch_posts();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Some(post) = rx.recv().await {
                *s.last.lock().unwrap() = post.at;
                if let Some(n) = marker(&post.message) {
                    s.posts.lock().unwrap().insert(n, post.at);
                }
                if let Some(chat) = post.props["parley_chat_id"].as_str()
                    && post.props["attachments"].is_array()
                {
                    s.requests
                        .lock()
                        .unwrap()
                        .insert(chat.to_owned(), post.id.clone());
                }
            }
        });
        seen
    }

    fn at(&self, n: u64) -> Option<Instant> {
        self.posts.lock().unwrap().get(&n).copied()
    }

    /// Waits until no post arrived for `quiet`.
    async fn settle(&self, quiet: Duration) {
        loop {
            tokio::time::sleep(quiet / 4).await;
            if self.last.lock().unwrap().elapsed() >= quiet {
                return;
            }
        }
    }
}

static NEXT_MARK: AtomicU64 = AtomicU64::new(1);

fn next_mark() -> u64 {
    NEXT_MARK.fetch_add(1, Ordering::Relaxed)
}

fn marker(text: &str) -> Option<u64> {
    let start = text.find("bm")? + 2;
    let rest = &text[start..];
    rest[..rest.find('z')?].parse().ok()
}

// ----- parley --------------------------------------------------------------------------

enum Database {
    Sqlite,
    Postgres { admin_url: String },
}

impl Database {
    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// The release binary of parley, running against a simulator, with its own data directory
/// (and database).
struct Parley {
    child: Child,
    url: String,
    http: reqwest::Client,
    started: Instant,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl Parley {
    fn spawn(bin: &Path, world: &World, db: &Database) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .env("PARLEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("PARLEY_PUBLIC_URL", &url)
            .env("PARLEY_DATA_DIR", dir.path())
            .env("PARLEY_MATTERMOST_URL", world.sim.url())
            .env("PARLEY_MATTERMOST_TOKEN", &world.bot.token)
            .env("PARLEY_MATTERMOST_TEAM", "support")
            .env("PARLEY_MATTERMOST_CHANNEL", "requests")
            .env("PARLEY_RATE_LIMIT_CHATS_PER_MINUTE", "100000000")
            .env("PARLEY_RATE_LIMIT_MESSAGES_PER_MINUTE", "100000000")
            // Every visitor of the bench is one address (loopback): the caps on sockets per
            // address and waiting for their token would refuse the idle-socket phase.
            .env("PARLEY_MAX_SOCKETS_PER_ADDRESS", "100000")
            .env("PARLEY_MAX_PENDING_SOCKETS", "100000")
            .env("PARLEY_REMIND_AFTER_MINUTES", "0")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("parley.log"))?);
        let postgres = match db {
            Database::Sqlite => None,
            Database::Postgres { admin_url } => {
                let name = format!("parley_bench_{}", uuid::Uuid::new_v4().simple());
                psql(admin_url, &format!("CREATE DATABASE {name}"))?;
                let mut db_url = url::Url::parse(admin_url)?;
                db_url.set_path(&name);
                cmd.env("PARLEY_DATABASE_URL", db_url.as_str());
                Some((admin_url.clone(), name))
            }
        };
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            child,
            url,
            http: reqwest::Client::new(),
            started,
            _dir: dir,
            postgres,
        })
    }

    /// Time from the spawn to the first `/healthz` answer and to `/readyz` answering 200
    /// (database up, Mattermost connected).
    async fn wait_ready(&self) -> anyhow::Result<(Duration, Duration)> {
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()?;
        let mut alive = None;
        let mut last_answer = String::from("no answer");
        while self.started.elapsed() < Duration::from_secs(30) {
            if alive.is_none() {
                if probe
                    .get(format!("{}/healthz", self.url))
                    .send()
                    .await
                    .is_ok()
                {
                    alive = Some(self.started.elapsed());
                }
            } else if let Ok(r) = probe.get(format!("{}/readyz", self.url)).send().await {
                if r.status() == 200 {
                    return Ok((alive.unwrap_or_default(), self.started.elapsed()));
                }
                last_answer = r.text().await.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bail!("parley did not become ready within 30 s; /readyz said: {last_answer}")
    }

    fn rss_kb(&self) -> u64 {
        rss_kb(self.child.id())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((admin, name)) = &self.postgres
            && let Err(e) = psql(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
        {
            eprintln!("could not drop {name}: {e}");
        }
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn build_parley() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building the release binary of parley");
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "parley"])
        .status()?;
    if !status.success() {
        bail!("cargo build --release --bin parley failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    Ok(PathBuf::from(target).join("release/parley"))
}

/// A visitor's chat, accepted by the operator: it has a channel.
#[derive(Clone)]
struct Chat {
    id: String,
    token: String,
    channel: String,
}

async fn start_chat(parley: &Parley, i: usize) -> anyhow::Result<(String, String)> {
    let body = json!({
        "name": format!("Visitor {i}"),
        "email": format!("visitor{i}@example.com"),
        "message": "Hello, where is my parcel?",
        "page_url": "https://shop.example.com/cart",
    });
    let r = parley.http.post(parley.api("/chats")).json(&body).send();
    let r = r.await?;
    if r.status() != 201 {
        bail!("starting a chat: {}", r.status());
    }
    let v: Value = r.json().await?;
    Ok((
        v["id"].as_str().unwrap_or_default().to_owned(),
        v["token"].as_str().unwrap_or_default().to_owned(),
    ))
}

async fn start_chats(parley: &Parley, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    stream::iter(0..n)
        .map(|i| start_chat(parley, i))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn open_accepted_chats(
    parley: &Parley,
    world: &World,
    seen: &Seen,
    n: usize,
) -> anyhow::Result<Vec<Chat>> {
    let started = start_chats(parley, n).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let request_posts = loop {
        let posts = seen.requests.lock().unwrap().clone();
        if started.iter().all(|(id, _)| posts.contains_key(id)) {
            break posts;
        }
        if Instant::now() > deadline {
            bail!("request posts missing after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let clicks = stream::iter(&started)
        .map(|(id, _)| {
            let post = request_posts[id].clone();
            async move {
                let (status, body) = world.sim.click_button(&world.alice, &post, "accept").await;
                if status != 200 {
                    bail!("accept: {status} {body}");
                }
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<anyhow::Result<()>>>()
        .await;
    clicks.into_iter().collect::<anyhow::Result<()>>()?;
    let mut chats = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        seen.settle(Duration::from_millis(500)).await;
        let channels: HashMap<String, String> = world
            .sim
            .channels_in_team(&world.team_id)
            .into_iter()
            .filter_map(|c| {
                let purpose = c["purpose"].as_str()?.strip_prefix("parley chat ")?;
                Some((purpose.to_owned(), c["id"].as_str()?.to_owned()))
            })
            .collect();
        if started.iter().all(|(id, _)| channels.contains_key(id)) {
            for (id, token) in &started {
                chats.push(Chat {
                    id: id.clone(),
                    token: token.clone(),
                    channel: channels[id].clone(),
                });
            }
            return Ok(chats);
        }
        if Instant::now() > deadline {
            bail!("chat channels missing after 60 s");
        }
    }
}

struct Load {
    accepted_per_s: f64,
    /// Posts appearing while the visitors still send (after a 1 s warm-up).
    during_sending_per_s: f64,
    /// Every message, from the first send to the last post.
    relayed_per_s: f64,
    drain: Duration,
    /// CPU time parley spent per message, from the first send to the last post.
    parley_cpu: Duration,
    /// CPU time this process (simulator and visitors) spent per message meanwhile.
    bench_cpu: Duration,
    /// CPU time PostgreSQL's processes spent per message meanwhile (zero on SQLite).
    database_cpu: Duration,
}

/// Every chat's visitor sends as fast as parley answers, for `seconds`. The relayed rate is
/// every message sent over the time from the first send to its post in the simulator (the
/// backlog drained included).
async fn relay_flat_out(
    parley: &Parley,
    chats: &[Chat],
    seen: &Seen,
    seconds: u64,
) -> anyhow::Result<Load> {
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let cpu_before = (
        cpu_time(parley.pid()),
        cpu_time(std::process::id()),
        postgres_cpu_time(),
    );
    let tasks: Vec<_> = chats
        .iter()
        .map(|chat| {
            let (http, url, token) = (
                parley.http.clone(),
                parley.api(&format!("/chats/{}/messages", chat.id)),
                chat.token.clone(),
            );
            tokio::spawn(async move {
                let mut sent = Vec::new();
                while Instant::now() < end {
                    let n = next_mark();
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"text": format!("Order bm{n}z please")}))
                        .send()
                        .await;
                    if matches!(r, Ok(r) if r.status() == 201) {
                        sent.push(n);
                    }
                }
                sent
            })
        })
        .collect();
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await?);
    }
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(300);
    let last = loop {
        let times: Vec<Instant> = sent.iter().filter_map(|n| seen.at(*n)).collect();
        if times.len() == sent.len() {
            break times.into_iter().max().unwrap_or(stopped);
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} messages not relayed 5 minutes after the last",
                sent.len() - times.len(),
                sent.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let per_message =
        |cpu: Duration, before: Duration| cpu.saturating_sub(before) / sent.len().max(1) as u32;
    let parley_cpu = per_message(cpu_time(parley.pid()), cpu_before.0);
    let bench_cpu = per_message(cpu_time(std::process::id()), cpu_before.1);
    let database_cpu = per_message(postgres_cpu_time(), cpu_before.2);
    let warm = start + Duration::from_secs(1);
    let in_window = sent
        .iter()
        .filter_map(|n| seen.at(*n))
        .filter(|at| *at >= warm && *at <= stopped)
        .count();
    Ok(Load {
        accepted_per_s: sent.len() as f64 / (stopped - start).as_secs_f64(),
        during_sending_per_s: in_window as f64 / (stopped - warm).as_secs_f64(),
        relayed_per_s: sent.len() as f64 / (last.max(stopped) - start).as_secs_f64(),
        drain: last.saturating_duration_since(stopped),
        parley_cpu,
        bench_cpu,
        database_cpu,
    })
}

/// Visitors send `rate` messages per second in all, evenly spread; returns the latency from
/// each `201` to its post in the simulator, and the visitor's request time.
async fn relay_paced(
    parley: &Parley,
    chats: &[Chat],
    seen: &Seen,
    seconds: u64,
    rate: f64,
) -> anyhow::Result<(Percentiles, Percentiles)> {
    let period = Duration::from_secs_f64(chats.len() as f64 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = chats
        .iter()
        .enumerate()
        .map(|(i, chat)| {
            let (http, url, token) = (
                parley.http.clone(),
                parley.api(&format!("/chats/{}/messages", chat.id)),
                chat.token.clone(),
            );
            let first = start + period.mul_f64(i as f64 / chats.len() as f64);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(first.into(), period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut sent = Vec::new();
                loop {
                    ticks.tick().await;
                    if Instant::now() >= end {
                        return sent;
                    }
                    let n = next_mark();
                    let asked = Instant::now();
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"text": format!("Order bm{n}z please")}))
                        .send()
                        .await;
                    if matches!(r, Ok(r) if r.status() == 201) {
                        sent.push((n, asked, Instant::now()));
                    }
                }
            })
        })
        .collect();
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await?);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.iter().any(|(n, _, _)| seen.at(*n).is_none()) {
        if Instant::now() > deadline {
            bail!("paced messages not relayed after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let latency = sent
        .iter()
        .map(|(n, _, answered)| seen.at(*n).unwrap().saturating_duration_since(*answered))
        .collect();
    let request = sent
        .iter()
        .map(|(_, asked, answered)| *answered - *asked)
        .collect();
    Ok((Percentiles::of(latency), Percentiles::of(request)))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a chat's live socket and waits for its `ready` frame.
async fn open_live(parley: &Parley, id: &str, token: &str) -> anyhow::Result<Socket> {
    let url = format!("ws{}/api/v1/chats/{id}/live", &parley.url[4..]);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let auth = json!({"type": "auth", "token": token}).to_string();
    ws.send(Message::Text(auth.into())).await?;
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame? {
            let v: Value = serde_json::from_str(text.as_str())?;
            if v["type"] == "ready" {
                return Ok(ws);
            }
        }
    }
    bail!("the live socket closed before `ready`")
}

/// The operator posts `operator_rate` messages a second round the chats; latency from the
/// post's creation in the simulator to the frame on the visitor's socket.
async fn operator_to_visitor(
    world: &World,
    chats: &[Chat],
    seen: &Seen,
    parley: &Parley,
    args: &Args,
) -> anyhow::Result<(Percentiles, usize)> {
    let frames: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut readers = Vec::new();
    for chat in chats {
        let mut ws = open_live(parley, &chat.id, &chat.token).await?;
        let frames = frames.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                if let Message::Text(text) = frame
                    && let Some(n) = marker(text.as_str())
                {
                    frames.lock().unwrap().insert(n, Instant::now());
                }
            }
        }));
    }
    // Backlogs delivered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let period = Duration::from_secs_f64(1.0 / args.operator_rate as f64);
    let mut ticks = tokio::time::interval(period);
    let mut marks = Vec::new();
    let mut posts = Vec::new();
    let end = Instant::now() + Duration::from_secs(args.seconds.min(5));
    let mut i = 0;
    while Instant::now() < end {
        ticks.tick().await;
        let n = next_mark();
        marks.push(n);
        let (sim, alice, channel) = (
            world.sim.clone(),
            world.alice.clone(),
            chats[i % chats.len()].channel.clone(),
        );
        posts.push(tokio::spawn(async move {
            sim.post_as(&alice, &channel, &format!("On its way bm{n}z"))
                .await
        }));
        i += 1;
    }
    for p in posts {
        p.await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = frames.lock().unwrap().len();
        if marks.iter().all(|n| frames.lock().unwrap().contains_key(n)) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} operator posts reached the visitors",
                got,
                marks.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in readers {
        r.abort();
    }
    let frames = frames.lock().unwrap();
    let latency = marks
        .iter()
        .filter_map(|n| Some(frames[n].saturating_duration_since(seen.at(*n)?)))
        .collect();
    Ok((Percentiles::of(latency), marks.len()))
}

/// RSS before and after opening `n` idle live sockets, one per chat.
async fn idle_sockets(parley: &Parley, world: &World, n: usize) -> anyhow::Result<(u64, u64)> {
    let seen = Seen::watch(&world.sim);
    eprintln!("   starting {n} chats");
    let chats = start_chats(parley, n).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.requests.lock().unwrap().len() < n {
        if Instant::now() > deadline {
            bail!("request posts missing after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen.settle(Duration::from_secs(1)).await;
    let before = parley.rss_kb();
    eprintln!("   opening {n} sockets");
    let sockets = stream::iter(&chats)
        .map(|(id, token)| open_live(parley, id, token))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<Socket>>>()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let with = parley.rss_kb();
    drop(sockets);
    Ok((before, with))
}

// ----- figures -------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Percentiles {
    p50: Duration,
    p99: Duration,
    samples: usize,
}

impl Percentiles {
    fn of(mut v: Vec<Duration>) -> Self {
        v.sort();
        let at = |q: f64| {
            v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Self {
            p50: at(0.5),
            p99: at(0.99),
            samples: v.len(),
        }
    }
}

fn median<T: Ord + Copy + Default>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// User plus system CPU time of a process so far (`/proc/<pid>/stat`, in the kernel's fixed
/// 100 ticks a second).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// CPU time of every process named `postgres` (the server and its backends, which are also
/// busy for parley; nothing else on the machine runs PostgreSQL during a bench).
fn postgres_cpu_time() -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_time)
        .sum()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(1024)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "?".into());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "?".into());
    format!(
        "- CPU: {model}, {cpus} CPUs\n- RAM: {:.1} GB\n- OS: {os}, Linux {}\n- {}\n- date: {}",
        ram_kb as f64 / 1024.0 / 1024.0,
        command_output("uname", &["-r"]),
        command_output("rustc", &["-V"]),
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    )
}

fn render(
    args: &Args,
    (ceiling, ceiling_cpu): (f64, Duration),
    results: &[Figures],
    load_before: &str,
    load_after: &str,
    took: Duration,
) -> String {
    let mut command = "cargo run --release -p parley-bench".to_owned();
    if args.database_url.is_some() {
        command.push_str(" -- --database-url postgres://…");
    }
    let mut out = format!(
        "Command: `{command}` (took {:.0} s; load average {load_before} before, {load_after} after)\n\n{}\n\n",
        took.as_secs_f64(),
        machine()
    );
    out.push_str(&format!(
        "Simulator ceiling (64 clients posting directly, nothing else running): **{ceiling:.0} posts/s**, \
         {} of CPU per post (simulator and clients)\n\n",
        us(ceiling_cpu)
    ));
    let header: Vec<&str> = results.iter().map(|f| f.database).collect();
    out.push_str(&format!("| figure | target | {} |\n", header.join(" | ")));
    out.push_str(&format!("|---|---|{}\n", "---|".repeat(results.len())));
    let mut row = |name: &str, target: &str, cell: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = results.iter().map(cell).collect();
        out.push_str(&format!("| {name} | {target} | {} |\n", cells.join(" | ")));
    };
    row(
        &format!(
            "visitor messages accepted (`201`) per second, {} chats sending flat out",
            args.chats
        ),
        "",
        &|f| format!("{:.0}", f.accepted_per_s),
    );
    row(
        "posts appearing in the simulator per second while visitors send",
        "",
        &|f| format!("{:.0}", f.during_sending_per_s),
    );
    row(
        "2. relayed messages per second (all sent ÷ first send → last post)",
        "≥ 2,000",
        &|f| format!("**{:.0}**", f.relayed_per_s),
    );
    row("relayed rate / simulator ceiling", "≥ 80 %", &|f| {
        format!("**{:.0} %**", f.relayed_per_s / ceiling * 100.0)
    });
    row("backlog drained after the last send", "", &|f| ms(f.drain));
    row(
        "CPU per relayed message: parley / bench process (simulator and visitors) / PostgreSQL",
        "",
        &|f| {
            format!(
                "{} / {} / {}",
                us(f.parley_cpu),
                us(f.bench_cpu),
                us(f.database_cpu)
            )
        },
    );
    row(
        "messages per second the machine's CPUs allow at that cost",
        "",
        &|f| {
            let per_message = (f.parley_cpu + f.bench_cpu + f.database_cpu).as_secs_f64();
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            format!("{:.0}", cpus / per_message.max(1e-9))
        },
    );
    row("2. `201` → post in the simulator, p50", "< 2 ms", &|f| {
        format!("**{}** (at {:.0}/s)", ms(f.to_mattermost.p50), f.paced_rate)
    });
    row("2. `201` → post in the simulator, p99", "< 10 ms", &|f| {
        format!(
            "**{}** ({} samples)",
            ms(f.to_mattermost.p99),
            f.to_mattermost.samples
        )
    });
    row(
        "visitor's `POST /messages` round trip, p50 / p99",
        "",
        &|f| {
            format!(
                "{} / {}",
                ms(f.visitor_request.p50),
                ms(f.visitor_request.p99)
            )
        },
    );
    row(
        "3. operator post → visitor's WebSocket frame, p50",
        "< 2 ms",
        &|f| {
            format!(
                "**{}** ({} posts at {}/s)",
                ms(f.to_visitor.p50),
                f.to_visitor_samples,
                args.operator_rate
            )
        },
    );
    row(
        "3. operator post → visitor's WebSocket frame, p99",
        "< 10 ms",
        &|f| format!("**{}**", ms(f.to_visitor.p99)),
    );
    row("4. RSS with idle visitor WebSockets", "< 300 MB", &|f| {
        format!("**{}** ({} sockets)", mb(f.rss_with_sockets_kb), f.sockets)
    });
    row("4. memory per connection", "", &|f| {
        let delta = f
            .rss_with_sockets_kb
            .saturating_sub(f.rss_before_sockets_kb);
        format!(
            "{:.1} kB (RSS before: {})",
            delta as f64 / f.sockets.max(1) as f64,
            mb(f.rss_before_sockets_kb)
        )
    });
    row(
        "5. start to `/readyz` 200 (median; min–max)",
        "< 200 ms",
        &|f| {
            let min = f.ready.iter().min().copied().unwrap_or_default();
            let max = f.ready.iter().max().copied().unwrap_or_default();
            format!("**{}** ({}–{})", ms(median(&f.ready)), ms(min), ms(max))
        },
    );
    row("start to first `/healthz` answer (median)", "", &|f| {
        ms(median(&f.alive))
    });
    row("5. RSS at idle (median)", "", &|f| {
        mb(median(&f.idle_rss_kb))
    });
    out
}

/// Replaces what lies between the markers (or writes a new file with them).
fn write_report(path: &Path, report: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{BEGIN}\n{report}{}", &old[..b], &old[e..])
        }
        _ => format!("# Benchmarks\n\n{BEGIN}\n{report}{END}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
