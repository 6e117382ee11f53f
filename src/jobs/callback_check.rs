//! The scheduled check that Mattermost's Accept callbacks reach parley (the check itself is
//! `mattermost::callback_check`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    mattermost::{
        callback_check::{RECHECK_EVERY, RECHECK_FAILED_EVERY},
        slot::replaced,
    },
};

/// The server's schedule: once the connection in force is resolved, then hourly (every five
/// minutes while it fails), and anew for each new connection.
pub async fn run_scheduled(state: App, shutdown: CancellationToken) {
    let mut changes = state.connection.watch();
    loop {
        changes.borrow_and_update();
        let wait = match state.bridge() {
            None => None,
            Some(bridge) => match bridge.context().await {
                // The stream keeps trying and logs why; try again with it.
                Err(_) => Some(Duration::from_secs(5)),
                Ok(ctx) => {
                    let passed = bridge
                        .check_callbacks(&ctx.team_id, &state.settings.public_url, &state.signer)
                        .await;
                    Some(if passed {
                        RECHECK_EVERY
                    } else {
                        RECHECK_FAILED_EVERY
                    })
                }
            },
        };
        let sleep = async {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = replaced(&mut changes) => {}
            _ = sleep => {}
        }
    }
}
