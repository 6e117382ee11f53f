//! The Mattermost connection set in the back office: stored as four `settings` rows
//! (`mattermost.url`, `.token`, `.team`, `.channel`), used when the deployment settings
//! (`PARLEY_MATTERMOST_*` or `parley.toml`) set none, and put in force at once by replacing the
//! running bridge (see `mattermost::BridgeSlot`). With several instances a saved change is announced
//! to the others (`cluster::Note::Connection`), which read it from the database.

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::settings::{Source, source};
use crate::{
    app::App,
    cluster::Note,
    config::{MattermostSettings, Settings, base},
    mattermost::Bridge,
    metrics::Metrics,
    storage::{Store, StoreError, audit::NewAudit, now_ms},
};

/// Keys in the `settings` table.
pub mod keys {
    pub const URL: &str = "mattermost.url";
    pub const TOKEN: &str = "mattermost.token";
    pub const TEAM: &str = "mattermost.team";
    pub const CHANNEL: &str = "mattermost.channel";
}

/// How long the values entered in the form (server and token) are kept between its steps.
pub const DRAFT_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Where the connection in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `PARLEY_MATTERMOST_*` or `parley.toml` (or the embedding program): it wins, and the back
    /// office cannot change it.
    Deployment(Source),
    /// Saved in the back office.
    BackOffice,
    /// Not configured: parley runs offline.
    None,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Self::Deployment(Source::Environment) => "environment variables",
            Self::Deployment(Source::File) => "parley.toml",
            Self::Deployment(Source::Default | Source::BackOffice) => "the deployment settings",
            Self::BackOffice => "back office",
            Self::None => "not set",
        }
    }
}

/// Whether the deployment settings set the connection (then the back office shows it
/// read-only), and from where.
pub fn fixed_by_deployment(settings: &Settings) -> Option<Source> {
    settings
        .mattermost
        .as_ref()
        .map(|_| source("mattermost_url"))
}

/// Where the connection in force comes from.
pub fn origin(state: &App) -> Origin {
    match fixed_by_deployment(&state.settings) {
        Some(s) => Origin::Deployment(s),
        None if state.bridge().is_some() => Origin::BackOffice,
        None => Origin::None,
    }
}

/// Says in the log which connection is in force and where it comes from, so that an admin
/// who changed one of two places knows which one counts.
pub fn log_in_force(origin: Origin, mm: Option<&MattermostSettings>) {
    match mm {
        Some(mm) => tracing::info!(
            source = origin.label(),
            server = %base(&mm.url),
            team = %mm.team,
            channel = %mm.channel,
            "Mattermost connection in force, set in the {}",
            origin.label()
        ),
        None => tracing::warn!(
            "Mattermost is not configured: the widget offers the offline form only. Connect it \
             in the back office (Settings), or set PARLEY_MATTERMOST_URL, _TOKEN, _TEAM and \
             _CHANNEL."
        ),
    }
}

/// Whether the connection in force was set in the back office.
pub fn origin_is_back_office(state: &App) -> bool {
    origin(state) == Origin::BackOffice
}

/// The connection saved in the back office, if a complete one is.
pub async fn saved(store: &Store) -> Result<Option<MattermostSettings>, StoreError> {
    let stored = store.list_settings().await?;
    let get = |k: &str| stored.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (Some(url), Some(token), Some(team), Some(channel)) = (
        get(keys::URL),
        get(keys::TOKEN),
        get(keys::TEAM),
        get(keys::CHANNEL),
    ) else {
        return Ok(None);
    };
    match parse_url(url) {
        Ok(url) => Ok(Some(MattermostSettings {
            url,
            token: SecretString::from(token.to_owned()),
            team: team.to_owned(),
            channel: channel.to_owned(),
        })),
        Err(problem) => {
            tracing::warn!(%problem, "the Mattermost URL saved in the back office is not usable");
            Ok(None)
        }
    }
}

/// The connection to use: the deployment settings' when they set one, else the saved one.
pub async fn effective(
    store: &Store,
    settings: &Settings,
) -> Result<Option<MattermostSettings>, StoreError> {
    match &settings.mattermost {
        Some(m) => Ok(Some(m.clone())),
        None => saved(store).await,
    }
}

/// Checks a server address as typed: an http(s) URL with a host, without a trailing slash.
pub fn parse_url(value: &str) -> Result<Url, String> {
    let value = value.trim().trim_end_matches('/');
    let url = Url::parse(value).map_err(|_| {
        format!("`{value}` is not a URL: enter the address you open Mattermost at, e.g. https://chat.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "`{value}` is not an http(s) address: enter the address you open Mattermost at, e.g. https://chat.example.com"
        ));
    }
    Ok(url)
}

/// A short digest of the whole connection (token included), to tell whether two instances use
/// the same one without showing any of it.
pub fn fingerprint(mm: &MattermostSettings) -> String {
    let mut hash = Sha256::new();
    for part in [
        base(&mm.url).as_str(),
        mm.token.expose_secret(),
        &mm.team,
        &mm.channel,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// Whether two connections are the same.
pub fn same(a: Option<&MattermostSettings>, b: Option<&MattermostSettings>) -> bool {
    a.map(fingerprint) == b.map(fingerprint)
}

/// A bridge for a connection, counting its calls in `metrics`.
pub fn bridge_for(mm: MattermostSettings, metrics: &Metrics) -> Arc<Bridge> {
    Arc::new(Bridge::new(mm).with_metrics(metrics.clone()))
}

/// Puts a connection in force on this instance: the running bridge is replaced (the event
/// stream reconnects, the jobs take the new one on their next pass).
pub fn apply(state: &App, mm: Option<MattermostSettings>) {
    let origin = match (&mm, fixed_by_deployment(&state.settings)) {
        (_, Some(source)) => Origin::Deployment(source),
        (Some(_), None) => Origin::BackOffice,
        (None, None) => Origin::None,
    };
    log_in_force(origin, mm.as_ref());
    let bridge = mm.map(|m| bridge_for(m, &state.metrics));
    state.connection.replace(bridge);
}

/// Reads the saved connection again and puts it in force if it differs from the one here
/// (another instance saved a change). Nothing happens while the deployment settings set it.
#[tracing::instrument(skip_all)]
pub async fn reload(state: &App) {
    if fixed_by_deployment(&state.settings).is_some() {
        return;
    }
    let saved = match saved(&state.store).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the Mattermost connection");
            return;
        }
    };
    let current = state.bridge();
    if same(saved.as_ref(), current.as_ref().map(|b| b.settings())) {
        return;
    }
    tracing::info!(
        server = saved.as_ref().map(|m| base(&m.url)).unwrap_or_default(),
        "the Mattermost connection was changed in the back office; applying it"
    );
    apply(state, saved);
}

/// Saves a connection checked by the caller, records who changed what (never the token), and
/// puts it in force here and on the other instances.
#[tracing::instrument(skip_all, fields(actor))]
pub async fn save(
    state: &App,
    new: MattermostSettings,
    actor: &str,
    ip: &str,
) -> Result<(), StoreError> {
    let old = saved(&state.store).await?;
    let mut changes = Vec::new();
    let url = base(&new.url);
    let old_url = old.as_ref().map(|m| base(&m.url));
    if old_url.as_deref() != Some(url.as_str()) {
        changes.push(format!(
            "server: {} → {url}",
            old_url.as_deref().unwrap_or("(none)")
        ));
    }
    for (what, before, after) in [
        ("team", old.as_ref().map(|m| m.team.as_str()), &new.team),
        (
            "requests channel",
            old.as_ref().map(|m| m.channel.as_str()),
            &new.channel,
        ),
    ] {
        if before != Some(after.as_str()) {
            changes.push(format!("{what}: {} → {after}", before.unwrap_or("(none)")));
        }
    }
    let token_changed = old
        .as_ref()
        .is_none_or(|m| m.token.expose_secret() != new.token.expose_secret());
    if token_changed {
        changes.push("token: replaced (not shown)".into());
    }
    if changes.is_empty() {
        changes.push("saved unchanged".into());
    }
    let values = [
        (keys::URL, url.clone()),
        (keys::TOKEN, new.token.expose_secret().to_owned()),
        (keys::TEAM, new.team.clone()),
        (keys::CHANNEL, new.channel.clone()),
    ];
    state.store.put_settings(&values, actor, now_ms()).await?;
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(actor),
            action: "connection_changed",
            detail: Some(&changes.join("; ")),
            ip: Some(ip),
            ..NewAudit::default()
        })
        .await?;
    if !same(Some(&new), state.bridge().as_ref().map(|b| b.settings())) {
        apply(state, Some(new));
    }
    if let Some(cluster) = &state.cluster {
        cluster.send(Note::Connection);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mm(token: &str, channel: &str) -> MattermostSettings {
        MattermostSettings {
            url: parse_url("https://chat.example.com/").unwrap(),
            token: SecretString::from(token.to_owned()),
            team: "support".into(),
            channel: channel.into(),
        }
    }

    #[test]
    fn addresses_are_checked_and_tidied() {
        assert_eq!(
            base(&parse_url(" https://chat.example.com/ ").unwrap()),
            "https://chat.example.com"
        );
        for bad in ["chat.example.com", "ftp://chat.example.com", "https://", ""] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fingerprint_tells_connections_apart_without_showing_the_token() {
        let a = mm("secret-token-1", "requests");
        assert_eq!(
            fingerprint(&a),
            fingerprint(&mm("secret-token-1", "requests"))
        );
        assert_ne!(
            fingerprint(&a),
            fingerprint(&mm("secret-token-2", "requests"))
        );
        assert_ne!(fingerprint(&a), fingerprint(&mm("secret-token-1", "vip")));
        assert!(!fingerprint(&a).contains("secret"));
        assert_eq!(fingerprint(&a).len(), 16);
        assert!(same(Some(&a), Some(&mm("secret-token-1", "requests"))));
        assert!(!same(Some(&a), None));
        assert!(same(None, None));
    }
}
