//! Driving the background jobs from tests: run a step now instead of sleeping until the
//! server's loop has run, and wait for what a step leaves behind (a failed try, say).

use std::time::Duration;

use parley::jobs;
use tokio_util::sync::CancellationToken;

use super::{TestApp, poll_until, wait_until};

impl TestApp {
    /// Does all outbox work that is due now, in order (through the running worker), and the
    /// offline messages' posts after it; returns once it is recorded.
    pub async fn drain_outbox(&self) {
        tokio::time::timeout(
            Duration::from_secs(30),
            jobs::outbox::drain_until_idle(&self.state),
        )
        .await
        .expect("the outbox drains within 30 s");
    }

    /// One pass of the lifecycle job, judging the chats as of `now` (Unix ms).
    pub async fn run_lifecycle_once(&self, now: i64) -> jobs::lifecycle::Report {
        jobs::lifecycle::run_once(&self.state, now)
            .await
            .expect("a lifecycle pass")
    }

    /// One poll of the operators' presence (it also resolves the Mattermost connection).
    pub async fn poll_presence(&self) {
        jobs::presence::run_once(&self.state)
            .await
            .expect("a presence poll");
    }

    /// Waits until the outbox has tried a delivery that failed (it waits for its retry):
    /// the worker ran during an outage.
    pub async fn wait_for_failed_delivery(&self) {
        poll_until(
            "a delivery fails and waits for its retry",
            Duration::from_secs(10),
            || async {
                let tasks = self.state.store.list_outbox_due(0, 1000).await.unwrap();
                tasks.iter().any(|t| t.attempts > 0).then_some(())
            },
        )
        .await
    }

    /// Waits until posting an offline message was tried and failed (it waits for its retry).
    pub async fn wait_for_failed_offline_post(&self) {
        poll_until(
            "an offline message's post fails",
            Duration::from_secs(10),
            || async {
                let rows = self.state.store.list_offline_to_post(1000).await.unwrap();
                rows.iter().any(|r| r.post_attempts > 0).then_some(())
            },
        )
        .await
    }

    /// Whether parley has a working connection to Mattermost (its event stream is up).
    pub fn is_online(&self) -> bool {
        self.state.online()
    }

    /// Waits until parley has noticed that Mattermost is unreachable.
    pub async fn wait_until_offline(&self) {
        wait_until("parley notices that Mattermost is gone", || async {
            !self.is_online()
        })
        .await
    }

    /// One cleanup run as the server would do it at `now` (Unix ms), with the deployment's
    /// delay.
    pub async fn run_cleanup_once(&self, now: i64) -> jobs::cleanup::Report {
        let bridge = self.state.bridge().expect("a Mattermost connection");
        jobs::cleanup::run_once(
            &self.state.store,
            &bridge,
            self.state.settings.delete_after,
            now,
        )
        .await
        .expect("the cleanup runs")
    }

    /// Runs the server's cleanup loop on its own schedule (`first` after now, then `every`)
    /// until `stop` is cancelled.
    pub fn spawn_cleanup_every(&self, stop: CancellationToken, first: Duration, every: Duration) {
        tokio::spawn(jobs::cleanup::run_every(
            self.state.app.clone(),
            stop,
            first,
            every,
        ));
    }

    /// One retention run at `now` (Unix ms), keeping the audit log for `keep` (`None`:
    /// forever).
    pub async fn delete_expired(
        &self,
        keep: Option<Duration>,
        now: i64,
    ) -> jobs::retention::Report {
        jobs::retention::delete_expired(&self.state.store, keep, now)
            .await
            .expect("a retention run")
    }
}
