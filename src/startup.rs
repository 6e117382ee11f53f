//! Builds a running parley from settings: opens the database, binds the listener (port 0
//! works, for tests), connects the Mattermost bridge and starts the background jobs.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{
        App,
        accounts::{FirstRun, first_run_at_start},
        connection,
    },
    cluster::{self, Cluster},
    config::{DatabaseUrl, Settings},
    http::{
        self, live_sockets::LiveSockets, rate_limit::RateLimits, sign_in_limits::SignInLimits,
        state::AppState,
    },
    jobs,
    live::Hub,
    mattermost::BridgeSlot,
    metrics::Metrics,
    security::{ActionSigner, FileLinks, random_token},
    storage::{Store, blobs::Blobs},
};

/// A built application, ready to serve.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    /// With PostgreSQL: what this instance needs to work beside others.
    cluster: Option<cluster::Parts>,
}

impl Application {
    /// Opens storage (applying migrations) and binds `PARLEY_LISTEN`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        Self::build_with_listener(settings, listener).await
    }

    /// Like `build`, on a listener bound by the caller (tests bind first to learn the port
    /// that goes into `public_url`).
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let store = Store::open(&settings.database).await?;
        let key = store
            .value_or_insert("action_signing_key", random_token)
            .await?;
        let metrics = Metrics::new();
        // The deployment settings' connection wins; else the one saved in the back office.
        let effective = connection::effective(&store, &settings).await?;
        let origin = match (connection::fixed_by_deployment(&settings), &effective) {
            (Some(source), _) => connection::Origin::Deployment(source),
            (None, Some(_)) => connection::Origin::BackOffice,
            (None, None) => connection::Origin::None,
        };
        connection::log_in_force(origin, effective.as_ref());
        let bridge = effective.map(|m| connection::bridge_for(m, &metrics));
        let blobs = Blobs::open(&settings.data_dir)
            .await
            .with_context(|| format!("preparing {}", settings.data_dir.join("files").display()))?;
        let signer = ActionSigner::new(&key);
        let links = FileLinks::new(crate::config::base(&settings.public_url), signer.clone());
        // On PostgreSQL any number of instances may share the database: events go through
        // it, and one instance at a time leads (see `cluster`).
        let (cluster, parts) = match &settings.database {
            DatabaseUrl::Postgres(url) => {
                let (cluster, parts) = Cluster::connect(url.expose())
                    .await
                    .context("listening for the other instances' events")?;
                (Some(cluster), Some(parts))
            }
            DatabaseUrl::Sqlite(_) => (None, None),
        };
        let hub = match &cluster {
            Some(c) => Hub::relayed(links, Arc::new(c.clone())),
            None => Hub::new(links),
        };
        let rate_limits = Arc::new(RateLimits::new(&settings.limits));
        let live_sockets = LiveSockets::new(settings.live.clone());
        let app = App {
            settings: Arc::new(settings),
            store,
            hub,
            connection: BridgeSlot::new(bridge),
            signer,
            blobs,
            outbox: Default::default(),
            metrics,
            cluster,
        };
        announce_first_run(&app).await?;
        let state = AppState {
            app,
            rate_limits,
            live_sockets,
            sign_in: Arc::new(SignInLimits::new()),
        };
        Ok(Self {
            listener,
            state,
            shutdown: CancellationToken::new(),
            cluster: parts,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state (tests use it to drive jobs).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A token that stops the server and its jobs when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then lets jobs finish and closes the
    /// database connections.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            shutdown,
            cluster,
        } = self;
        let mut jobs = JoinSet::new();
        let mut led = JoinSet::new();
        let background = state.settings.run_background_jobs;
        if background {
            jobs.spawn(forget_idle_limits(state.clone(), shutdown.clone()));
        }
        match cluster {
            // Several instances: the leader runs the event stream and the scheduled jobs.
            Some(parts) => {
                let leader_jobs = background.then_some(jobs::spawn_all);
                jobs.spawn(jobs::cluster::run(
                    state.app.clone(),
                    parts,
                    shutdown.clone(),
                    leader_jobs,
                ));
            }
            None if background => led = jobs::spawn_all(state.app.clone(), shutdown.clone()),
            None => {}
        }
        let store = state.store.clone();
        let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        let stop = shutdown.clone();
        // Small WebSocket frames go out at once instead of waiting for the previous one's ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        shutdown.cancel();
        while jobs.join_next().await.is_some() {}
        while led.join_next().await.is_some() {}
        store.close().await;
        served?;
        Ok(())
    }
}

async fn forget_idle_limits(state: AppState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                state.rate_limits.forget_idle();
                state.sign_in.forget_idle();
                crate::app::accounts::forget_expired_sessions(&state.store).await;
            }
        }
    }
}

/// With no manager yet, logs a one-time link to create the first admin, once: when it is
/// made. Later starts (while it works) say when it was logged and how to get a new one.
async fn announce_first_run(state: &App) -> anyhow::Result<()> {
    let base = crate::config::base(&state.settings.public_url);
    match first_run_at_start(&state.store, &base).await? {
        None => {}
        Some(FirstRun::New(link)) => tracing::warn!(
            "no back-office account exists yet: open {link} within 24 hours to create the \
             first admin (this link is logged only now; `parley admin create-manager --email … \
             --role admin` makes another)"
        ),
        Some(FirstRun::Pending {
            created_at,
            expires_at,
        }) => tracing::warn!(
            link_logged_at = %crate::storage::rfc3339(created_at),
            valid_until = %crate::storage::rfc3339(expires_at),
            "no back-office account exists yet: the first-run link was logged when it was made \
             (/admin/setup/…, not repeated); without it, run `parley admin create-manager \
             --email … --role admin` for a new link"
        ),
    }
    Ok(())
}
