//! Whether the Accept button can work: Mattermost must reach `PARLEY_PUBLIC_URL` (a wrong
//! port, or a private address that `AllowedUntrustedInternalConnections` does not list, makes
//! every click fail with Mattermost's generic "Action integration error", which parley would
//! otherwise never hear of). Two checks, each answered only by a parley of this installation
//! (the answer is signed with the key every instance shares):
//! - `round_trip`: the bot posts a button whose URL is parley's own callback into a private
//!   channel only it is in (`parley-check`), clicks it, and deletes the post: Mattermost's
//!   own rule for callbacks decides, exactly as for an operator's click;
//! - `reach`: when that fails, parley fetches `PUBLIC_URL/healthz?check=<nonce>` itself, to
//!   say whether the URL leads to parley at all.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use url::Url;

use tokio_util::sync::CancellationToken;

use super::{
    BridgeSlot, Client, MmError, replaced,
    wire::{CreateChannel, NewPost},
};
use crate::{config::base, security::ActionSigner, storage::now_ms};

/// How often the check runs again while all is well (a changed proxy or firewall).
const RECHECK_EVERY: Duration = Duration::from_secs(3600);
/// How often it runs again while it fails, so a fix shows within minutes.
const RECHECK_FAILED_EVERY: Duration = Duration::from_secs(300);

/// The `action` of the check button's context (the Accept button's is `accept`).
pub const CHECK_ACTION: &str = "check";
/// The header `/healthz?check=` answers with.
pub const CHECK_HEADER: &str = "x-parley-check";
/// What the `/healthz` answer signs (a separate domain from any button).
pub const REACH_ACTION: &str = "healthz";
/// The private channel the check button is posted in.
pub const CHECK_CHANNEL: &str = "parley-check";
const ACTION_ID: &str = "check";

/// The outcome of both checks, as shown in `/readyz`, the dashboard and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackCheck {
    /// When it ran (ms since the epoch).
    pub at_ms: i64,
    /// `None`: all well; else what is wrong and what to do.
    pub problem: Option<String>,
}

/// A fresh random nonce.
fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The Accept button's callback URL for a public URL.
pub fn actions_url(public_url: &Url) -> String {
    format!("{}/mattermost/actions", base(public_url))
}

/// Fetches `PUBLIC_URL/healthz?check=…` and checks the signed answer: `Ok` when a parley of
/// this installation answered.
pub async fn reach(public_url: &Url, signer: &ActionSigner) -> Result<(), String> {
    let nonce = nonce();
    let url = format!("{}/healthz?check={nonce}", base(public_url));
    let shown = base(public_url);
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?
        .get(&url)
        .send()
        .await
        .map_err(|e| {
            format!(
                "{shown}/healthz cannot be reached from parley ({}): check PARLEY_PUBLIC_URL \
                 (scheme, host and port where Mattermost and browsers reach parley)",
                without_url(&e)
            )
        })?;
    let signed = response
        .headers()
        .get(CHECK_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| signer.verify(REACH_ACTION, &nonce, sig));
    if response.status().is_success() && signed {
        Ok(())
    } else {
        Err(format!(
            "{shown}/healthz answers ({}), but not as this parley: PARLEY_PUBLIC_URL points at \
             something else (another port or service?)",
            response.status()
        ))
    }
}

/// Has Mattermost click a button whose URL is parley's callback: `Ok` when the call reached a
/// parley of this installation. `team_id` is where the private check channel is kept.
pub async fn round_trip(
    client: &Client,
    team_id: &str,
    public_url: &Url,
    signer: &ActionSigner,
) -> Result<(), String> {
    let failed = |what: &str, e: MmError| format!("the check could not run: {what} ({e})");
    let channel = match client.channel_by_name(team_id, CHECK_CHANNEL, false).await {
        Ok(channel) => channel,
        Err(e) if matches!(e.status(), Some(403 | 404)) => client
            .create_channel(&CreateChannel {
                team_id,
                name: CHECK_CHANNEL,
                display_name: "parley check",
                kind: "P",
                purpose: "parley checks here that Mattermost can call it back (the Accept button).",
                header: "",
            })
            .await
            .map_err(|e| failed("creating the private channel ~parley-check", e))?,
        Err(e) => return Err(failed("finding the private channel ~parley-check", e)),
    };
    let nonce = nonce();
    let props = json!({
        "attachments": [{
            "text": "parley checks that Mattermost can call it back; this post is deleted at once.",
            "actions": [{
                "id": ACTION_ID,
                "type": "button",
                "name": "Check",
                "integration": {
                    "url": actions_url(public_url),
                    "context": {
                        "action": CHECK_ACTION,
                        "chat_id": nonce,
                        "signature": signer.sign(CHECK_ACTION, &nonce),
                    }
                }
            }]
        }]
    });
    let post = client
        .create_post(&NewPost {
            channel_id: &channel.id,
            message: "",
            pending_post_id: None,
            props,
            file_ids: Vec::new(),
        })
        .await
        .map_err(|e| failed("posting the check button", e))?;
    let clicked = client.click(&post.id, ACTION_ID).await;
    if let Err(e) = client.delete_post(&post.id).await {
        tracing::debug!(error = %e, "could not delete the callback check post");
    }
    match clicked {
        Ok(()) => Ok(()),
        Err(e) if e.id() == Some("api.post.do_action.action_integration.app_error") => {
            Err(unreachable_advice(public_url))
        }
        Err(e) => Err(failed("clicking the check button", e)),
    }
}

/// What to do when Mattermost could not call `public_url`.
pub fn unreachable_advice(public_url: &Url) -> String {
    let shown = base(public_url);
    let host = public_url.host_str().unwrap_or_default();
    format!(
        "Mattermost cannot call parley back at {shown}/mattermost/actions, so the Accept button \
         fails (\"Action integration error\"); operators can still accept with a ✅ reaction. \
         Set PARLEY_PUBLIC_URL to an address the Mattermost server reaches; if it is a private \
         address, list `{host}` in Mattermost's System Console → Environment → Developer → \
         Allow untrusted internal connections to (ServiceSettings.AllowedUntrustedInternalConnections)"
    )
}

/// Mattermost's round trip decides; when it fails, parley's own look at the URL tells whether
/// it is parley at all. (Not the other way round: parley may be unable to reach its own
/// public address, behind a NAT without hairpinning, while Mattermost can.)
pub async fn run(
    client: &Client,
    team_id: &str,
    public_url: &Url,
    signer: &ActionSigner,
) -> Result<(), String> {
    let Err(problem) = round_trip(client, team_id, public_url, signer).await else {
        return Ok(());
    };
    match reach(public_url, signer).await {
        Ok(()) => Err(problem),
        Err(reach) => Err(format!("{reach}. {problem}")),
    }
}

/// The server's schedule: once the connection in force is resolved, then hourly (every five
/// minutes while it fails), and anew for each new connection (`connection`: the bridge in
/// force).
pub async fn run_scheduled(
    connection: BridgeSlot,
    public_url: Url,
    signer: ActionSigner,
    shutdown: CancellationToken,
) {
    let mut changes = connection.watch();
    loop {
        changes.borrow_and_update();
        let wait = match connection.get() {
            None => None,
            Some(bridge) => match bridge.context().await {
                // The stream keeps trying and logs why; try again with it.
                Err(_) => Some(Duration::from_secs(5)),
                Ok(ctx) => {
                    let outcome = run(&bridge.client, &ctx.team_id, &public_url, &signer).await;
                    let failed = outcome.is_err();
                    bridge.set_callback_check(CallbackCheck {
                        at_ms: now_ms(),
                        problem: outcome.err(),
                    });
                    Some(if failed {
                        RECHECK_FAILED_EVERY
                    } else {
                        RECHECK_EVERY
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

impl Client {
    /// `POST /posts/{id}/actions/{action_id}`: clicks a button as the token's user.
    pub async fn click(&self, post_id: &str, action_id: &str) -> Result<(), MmError> {
        let _: serde_json::Value = self
            .send(
                self.request(
                    Method::POST,
                    &format!("/posts/{}/actions/{}", seg(post_id), seg(action_id)),
                )
                .json(&json!({})),
            )
            .await?;
        Ok(())
    }
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A reqwest error without the URL (which is already shown).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url") {
        e.truncate(i);
    }
    e
}
