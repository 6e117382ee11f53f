//! The `parley` command: `serve` (default), `migrate`, `healthcheck`, `archive`, `department`,
//! `doctor`, `admin`.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use parley::{
    cli::departments::DepartmentCommand,
    cli::open_existing_store,
    config::Settings,
    jobs::cleanup,
    mattermost::Bridge,
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

// Parsed once per run: the size of the department options does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Manage departments (list, add, edit, remove): which requests channel and team each
    /// uses, its online hours, texts and templates.
    Department {
        #[command(subcommand)]
        command: DepartmentCommand,
    },
    /// Check the Mattermost connection and every server setting parley depends on, and say
    /// what to change. Exits 0 when every essential check passed.
    Doctor,
    /// Manage back-office accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a back-office account and print a one-time link for that person to set a
    /// password (valid 72 hours).
    CreateManager {
        /// The person's e-mail address (their sign-in name).
        #[arg(long)]
        email: String,
        /// `admin` (everything) or `manager` (chats and offline messages).
        #[arg(long, default_value = "manager", value_parser = ["admin", "manager"])]
        role: String,
    },
    /// Print a new one-time link for a manager to set a password (e.g. a forgotten one).
    ResetPassword {
        #[arg(long)]
        email: String,
    },
    /// Clear a manager's sign-in lock (after too many failed sign-ins), for every browser.
    Unlock {
        #[arg(long)]
        email: String,
    },
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
    if !settings.ignored_env.is_empty() {
        tracing::warn!(
            variables = %settings.ignored_env.join(", "),
            "ignoring PARLEY_* environment variables that are no parley setting (Kubernetes \
             sets such for a Service named `parley`); check the spelling if you meant a setting"
        );
    }
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
            Command::Archive => archive(&with_saved_connection(settings).await?).await,
            Command::Department { command } => {
                let settings = with_saved_connection(settings).await?;
                let report = parley::cli::departments::run(command, &settings).await?;
                println!("{report}");
                Ok(())
            }
            Command::Doctor => {
                let settings = match with_saved_connection(settings.clone()).await {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!(
                            "parley: could not read the connection saved in the back office: {e:#}\n\
                             Checking the PARLEY_MATTERMOST_* settings only.\n"
                        );
                        settings
                    }
                };
                return doctor(&settings).await;
            }
            Command::Admin(command) => admin(&settings, command).await,
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("parley: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The settings with the Mattermost connection saved in the back office filled in, when
/// `PARLEY_MATTERMOST_*` (or `parley.toml`) set none: what the server would use.
async fn with_saved_connection(mut settings: Settings) -> anyhow::Result<Settings> {
    if settings.mattermost.is_none() {
        let store = open_existing_store(&settings).await?;
        settings.mattermost = parley::app::connection::saved(&store).await?;
        store.close().await;
    }
    Ok(settings)
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
        println!(
            "Mattermost is not configured (PARLEY_MATTERMOST_* or the back office): no channels were removed."
        );
        return Ok(());
    };
    let store = open_existing_store(settings).await?;
    let bridge = Bridge::new(mattermost.clone());
    let delete_after = parley::app::settings::delete_after(&store, settings).await;
    let report = cleanup::run_once(&store, &bridge, delete_after, now_ms()).await?;
    match delete_after.as_secs() / 3600 {
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

async fn doctor(settings: &Settings) -> anyhow::Result<ExitCode> {
    // The key the server signs its buttons with: with it the doctor's test button is answered
    // by the running server, which checks that Mattermost can call it back.
    let signer = match Store::open_existing(&settings.database).await {
        Ok(Some(store)) => {
            let key = store.value("action_signing_key").await.ok().flatten();
            store.close().await;
            key.map(|k| parley::security::ActionSigner::new(&k))
        }
        _ => None,
    };
    let report = parley::app::doctor::run_with(settings, signer.as_ref()).await;
    println!("{report}");
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn admin(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    use parley::app::accounts::{self, Role};
    let store = open_existing_store(settings).await?;
    let public = parley::config::base(&settings.public_url);
    match command {
        AdminCommand::CreateManager { email, role } => {
            let role = Role::parse(&role).unwrap_or(Role::Manager);
            let (manager, link) = accounts::invite(&store, &public, &email, role)
                .await
                .map_err(|e| match e {
                    accounts::InviteError::Exists(_) => anyhow::anyhow!(
                        "{e}; `parley admin reset-password --email {}` prints a new link",
                        email.trim()
                    ),
                    other => other.into(),
                })?;
            println!(
                "Created {} ({}). Send them this link to set a password (it works once, for 72 hours):\n{link}",
                manager.email,
                role.as_str()
            );
        }
        AdminCommand::ResetPassword { email } => {
            let normalised = accounts::normalise_email(&email).unwrap_or_default();
            let manager = store
                .get_manager_by_email(&normalised)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no manager has the e-mail {}", email.trim()))?;
            let link = accounts::reset_link(&store, &public, manager.id).await?;
            println!(
                "A new link for {} to set a password (it works once, for 72 hours):\n{link}",
                manager.email
            );
        }
        AdminCommand::Unlock { email } => {
            let normalised = accounts::normalise_email(&email).unwrap_or_default();
            let manager = store
                .get_manager_by_email(&normalised)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no manager has the e-mail {}", email.trim()))?;
            let cleared = accounts::unlock(&store, &manager).await?;
            if cleared {
                println!("{} can sign in again.", manager.email);
            } else {
                println!("{} was not locked.", manager.email);
            }
        }
    }
    Ok(())
}
