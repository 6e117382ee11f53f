//! What operators and orchestrators ask parley: `/readyz` (can it do its work?) and
//! `/metrics` (Prometheus). `/healthz` (is it alive?) needs no handler of its own.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::{
    http::state::AppState,
    mattermost::callback_check::{CHECK_HEADER, REACH_ACTION},
    security::token_hash,
};

/// How long `/readyz` waits for the database.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, serde::Deserialize)]
pub struct HealthQuery {
    check: Option<String>,
}

/// `GET /healthz`: "ok" while the process serves. With `?check=<nonce>` the answer also
/// carries the nonce signed with the installation's key, by which parley tells that its
/// public URL reaches itself (and not another service): see `mattermost::callback_check`.
pub async fn health(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<HealthQuery>,
) -> Response {
    let mut response = "ok".into_response();
    if let Some(nonce) = q.check.filter(|n| !n.is_empty() && n.len() <= 64) {
        let signature = state.signer.sign(REACH_ACTION, &nonce);
        if let Ok(value) = header::HeaderValue::from_str(&signature) {
            response.headers_mut().insert(CHECK_HEADER, value);
        }
    }
    response
}

/// `GET /readyz`: 200 when the database answers and Mattermost is connected (or not
/// configured, parley then runs offline on purpose); 503 otherwise, with what is wrong.
pub async fn ready(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    let database = match tokio::time::timeout(DATABASE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            problems.push("the database does not answer".to_owned());
            "unreachable"
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer in time");
            problems.push("the database does not answer".to_owned());
            "unreachable"
        }
    };
    let mattermost = match state.bridge() {
        None => "not_configured",
        Some(bridge) if bridge.is_online() => "connected",
        Some(bridge) if bridge.is_resolved() => {
            problems.push(
                "the Mattermost event stream is down; parley is reconnecting (visitor messages \
                 wait in the outbox)"
                    .to_owned(),
            );
            "disconnected"
        }
        Some(bridge) => {
            problems.push(match bridge.problem() {
                Some(p) => format!("Mattermost cannot be used: {p}"),
                None => "parley is connecting to Mattermost".to_owned(),
            });
            "disconnected"
        }
    };
    // Not a readiness problem: behind a load balancer or ingress the public URL reaches only
    // ready instances, so making this one unready would keep it so for good.
    let mut warnings = Vec::new();
    let callbacks = match state.bridge().and_then(|b| b.callback_check()) {
        None => "unchecked",
        Some(check) => match check.problem {
            None => "ok",
            Some(p) => {
                warnings.push(p);
                "failing"
            }
        },
    };
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": problems.is_empty(),
        "database": database,
        "mattermost": mattermost,
        "callbacks": callbacks,
        "problems": problems,
        "warnings": warnings,
    });
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `GET /metrics`: Prometheus metrics, for a client with `PARLEY_METRICS_TOKEN` as its bearer
/// token. Without the setting the page is off (404): parley's port faces the visitors'
/// browsers, and chat figures are nobody's business there.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.settings.metrics_token else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are off; set PARLEY_METRICS_TOKEN to turn them on",
        )
            .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Comparing hashes: the time taken tells nothing about the token.
    if given.map(token_hash) != Some(token_hash(token.expose_secret())) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "send PARLEY_METRICS_TOKEN as a bearer token",
        )
            .into_response();
    }
    if let Some(bridge) = state.bridge() {
        state.metrics.set_mattermost_connected(bridge.is_online());
    }
    match state.metrics.render(&state.store).await {
        Ok(text) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not read the figures for /metrics");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer",
            )
                .into_response()
        }
    }
}
