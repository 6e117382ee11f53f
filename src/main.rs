//! The `parley` command: `serve` (default), `migrate`, `healthcheck`, `archive`.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use parley::{
    config::Settings,
    jobs::cleanup,
    mattermost::Client,
    startup::Application,
    storage::{Store, now_ms},
    telemetry,
};

#[derive(Parser)]
#[command(version, about = "Website live chat answered from Mattermost")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 if the server at PARLEY_LISTEN answers /healthz (for containers and systemd).
    Healthcheck,
    /// Remove the Mattermost channels of chats that ended at least PARLEY_DELETE_AFTER_HOURS
    /// ago: delete them permanently, or archive them where Mattermost refuses that. The server
    /// does the same every ten minutes; this is for cron. Exits non-zero only when something
    /// failed.
    Archive,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("parley: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::Migrate => {
                Store::open(&settings.database).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Healthcheck => healthcheck(&settings).await,
            Command::Archive => archive(&settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parley: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let public_url = settings.public_url.clone();
    let app = Application::build(settings).await?;
    tracing::info!(address = %app.local_addr(), public_url = %public_url, "parley is listening");
    let stop = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    app.run_until_stopped().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    let mut address = settings.listen;
    // Listening on every interface (0.0.0.0, as in a container): ask on loopback.
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{address}/healthz");
    let response = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    println!("ok");
    Ok(())
}

async fn archive(settings: &Settings) -> anyhow::Result<()> {
    let Some(mattermost) = &settings.mattermost else {
        // Nothing can be removed, and nothing is wrong: a cron entry on an offline
        // installation should not fail.
        println!("Mattermost is not configured (PARLEY_MATTERMOST_*): no channels were removed.");
        return Ok(());
    };
    let store = Store::open(&settings.database).await?;
    let client = Client::new(
        &parley::config::base(&mattermost.url),
        mattermost.token.clone(),
    );
    let report = cleanup::run_once(&store, &client, settings.delete_after, now_ms()).await?;
    match settings.delete_after.as_secs() / 3600 {
        0 => println!("Channels of ended chats: {report}"),
        hours => println!("Channels of chats that ended at least {hours} h ago: {report}"),
    }
    if let Some(reason) = &report.stopped {
        anyhow::bail!("the cleanup of chat channels stopped early: {reason}");
    }
    anyhow::ensure!(
        report.failed == 0,
        "{} chat channel(s) could not be removed (the log says why)",
        report.failed
    );
    Ok(())
}
