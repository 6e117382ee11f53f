//! Polls the presence of every department's operators: the non-bot members of its requests
//! channel (`GET /channels/{id}/members`, users by `POST /users/ids`) and their statuses
//! (`POST /users/status/ids`). The server runs it at start and every
//! `PARLEY_PRESENCE_POLL_SECONDS`; tests call `run_once`. A failed poll keeps the last
//! known state (a short outage does not turn the widget offline); a team or channel that
//! cannot be used marks its departments offline and is logged with what to change.

use std::collections::{HashMap, HashSet};

use tokio_util::sync::CancellationToken;

use crate::app::Error;
use crate::{
    app::App,
    app::departments::{self, Route},
    domain::presence::{Counts, RouteStatus},
    mattermost::{Bridge, MmError},
};

/// Members fetched per page (Mattermost's maximum).
const PER_PAGE: usize = 200;
/// Ids sent per users/statuses request.
const CHUNK: usize = 200;
/// Most members looked at per channel: a requests channel is a team's operators, not a town
/// square; beyond this, presence is judged on the first ones.
const MAX_MEMBERS: usize = 2000;

/// One poll of every route. Returns the routes polled.
#[tracing::instrument(skip_all)]
pub async fn run_once(state: &App) -> Result<usize, Error> {
    let Some(bridge) = &state.bridge() else {
        return Ok(0);
    };
    let ctx = bridge.context().await?;
    let departments = departments::list(state).await?;
    let mut routes: Vec<Route> = departments.iter().map(|d| d.route()).collect();
    if let Some(default) = departments::route_of(state, None) {
        routes.push(default);
    }
    let mut seen = HashSet::new();
    routes.retain(|r| seen.insert(r.clone()));

    let mut members: Vec<(Route, Vec<String>)> = Vec::new();
    for route in &routes {
        match channel_members(bridge, route).await {
            Ok(ids) => members.push((route.clone(), ids)),
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                bridge.forget_target(route);
                let problem = match e.status() {
                    // The channel was found (the route resolved), so a refusal means the bot
                    // is not in it.
                    Some(403) => {
                        crate::mattermost::not_in_channel(&ctx.bot_username, route).to_string()
                    }
                    _ => format!(
                        "requests channel ~{} in team `{}`: {e}",
                        route.channel, route.team
                    ),
                };
                record(bridge, route, RouteStatus::Problem(problem));
            }
        }
    }

    // Who is an operator: a member that is neither a bot nor deactivated.
    let all: HashSet<&String> = members.iter().flat_map(|(_, ids)| ids).collect();
    let unknown: Vec<String> = all
        .iter()
        .filter(|id| bridge.cached_user(id).is_none())
        .map(|id| (*id).clone())
        .collect();
    for chunk in unknown.chunks(CHUNK) {
        bridge.cache_users(bridge.users_by_ids(chunk).await?);
    }
    let is_operator = |id: &String| {
        id != &ctx.bot_user_id
            && bridge
                .cached_user(id)
                .is_some_and(|u| !u.is_bot && u.delete_at == 0)
    };
    let operators: Vec<String> = all
        .into_iter()
        .filter(|id| is_operator(id))
        .cloned()
        .collect();
    let mut statuses: HashMap<String, String> = HashMap::new();
    for chunk in operators.chunks(CHUNK) {
        for s in bridge.statuses_by_ids(chunk).await? {
            statuses.insert(s.user_id, s.status);
        }
    }
    let statuses_off = !operators.is_empty() && statuses.is_empty();

    for (route, ids) in members {
        let status = if statuses_off {
            RouteStatus::StatusesUnavailable
        } else {
            let mut counts = Counts::default();
            for id in ids.iter().filter(|id| is_operator(id)) {
                counts.operators += 1;
                match statuses.get(id).map(String::as_str) {
                    Some("online") => counts.online += 1,
                    Some("away") => counts.away += 1,
                    Some("dnd") => counts.dnd += 1,
                    _ => {}
                }
            }
            RouteStatus::Known(counts)
        };
        record(bridge, &route, status);
    }
    bridge.presence.retain(|r| routes.contains(r));
    Ok(routes.len())
}

async fn channel_members(bridge: &Bridge, route: &Route) -> Result<Vec<String>, MmError> {
    let target = bridge.target(route).await?;
    let mut ids = Vec::new();
    for page in 0.. {
        let list = bridge
            .channel_members(&target.channel_id, page, PER_PAGE)
            .await?;
        let last = list.len() < PER_PAGE;
        ids.extend(list.into_iter().map(|m| m.user_id));
        if last || ids.len() >= MAX_MEMBERS {
            break;
        }
    }
    Ok(ids)
}

/// Stores a route's status, logging changes worth an admin's attention once.
fn record(bridge: &Bridge, route: &Route, status: RouteStatus) {
    let previous = bridge.presence.set(route.clone(), status.clone());
    if previous.as_ref() == Some(&status) {
        return;
    }
    match &status {
        RouteStatus::Problem(p) => {
            tracing::warn!(
                team = %route.team, channel = %route.channel, problem = %p,
                "a requests channel cannot be used, so what it serves shows offline: {p}"
            )
        }
        RouteStatus::StatusesUnavailable if previous != Some(RouteStatus::StatusesUnavailable) => {
            tracing::warn!(
                "Mattermost reports no user statuses (ServiceSettings.EnableUserStatuses is off?): \
                 departments are shown online whenever they are within their hours"
            )
        }
        RouteStatus::Known(c) => tracing::debug!(
            team = %route.team, channel = %route.channel, operators = c.operators,
            online = c.online, away = c.away, dnd = c.dnd, "operators' presence"
        ),
        _ => {}
    }
}

/// The server's schedule: at start, then every `PARLEY_PRESENCE_POLL_SECONDS`.
pub async fn run_scheduled(state: App, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(state.settings.presence.poll_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = state.connection.watch();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
            // A new connection: poll it at once rather than up to a poll interval later.
            _ = crate::mattermost::replaced(&mut changes) => {}
        }
        if let Err(e) = run_once(&state).await {
            tracing::debug!(error = %e, "polling operators' presence failed; keeping the last known state");
        }
    }
}
