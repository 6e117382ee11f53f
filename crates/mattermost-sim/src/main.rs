//! `cargo run -p mattermost-sim [-- --port 8065]`: a seeded simulator for trying parley
//! by hand. Prints the tokens and the PARLEY_MATTERMOST_* variables to use.

use mattermost_sim::{MattermostSim, SimConfig};
use std::net::SocketAddr;

#[tokio::main]
async fn main() {
    let mut port: u16 = 8065;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("--port needs a number")
            }
            other => {
                eprintln!("unknown argument {other}; usage: mattermost-sim [--port N]");
                std::process::exit(2);
            }
        }
    }
    let config = SimConfig {
        allowed_untrusted_internal_connections: "127.0.0.1 localhost".into(),
        ..SimConfig::default()
    };
    let sim = MattermostSim::start_on(config, SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("bind");
    let team = sim.create_team("support", "Support");
    let requests = sim.create_channel(&team, "requests", "Requests", false);
    let bot = sim.create_bot("parley", "Parley");
    let alice = sim.create_user("alice", "Alice", "Operator");
    let bob = sim.create_user("bob", "Bob", "Operator");
    for user in [&bot, &alice, &bob] {
        sim.add_team_member(&team, &user.id);
        sim.add_channel_member(&requests, &user.id);
    }
    // Ephemeral posts need system admin.
    sim.make_system_admin(&bot.id);
    println!("Mattermost simulator on {}", sim.url());
    println!("bot   parley token: {}", bot.token);
    println!("user  alice  token: {}", alice.token);
    println!("user  bob    token: {}", bob.token);
    println!();
    println!("PARLEY_MATTERMOST_URL={}", sim.url());
    println!("PARLEY_MATTERMOST_TOKEN={}", bot.token);
    println!("PARLEY_MATTERMOST_TEAM=support");
    println!("PARLEY_MATTERMOST_CHANNEL=requests");
    tokio::signal::ctrl_c().await.ok();
}
