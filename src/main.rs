//! The `parley` command: `serve` (default), `migrate`, `healthcheck`.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use parley::{config::Settings, startup::Application, storage::Store, telemetry};

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
    let url = format!("http://{}/healthz", settings.listen);
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
