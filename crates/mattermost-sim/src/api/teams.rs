//! `/teams/...` and `/users/{id}/teams`: team lookup for members.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::Value;

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, json_response};
use crate::model::User;
use crate::state::State as SimState;

/// `view_team`: members and system admins; others get 403 like the real server.
fn check_view(st: &SimState, caller: &User, team_id: &str) -> ApiResult<()> {
    if caller.system_admin || st.is_team_member(team_id, &caller.id) {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// `GET /teams/{team_id}`.
pub async fn get_team(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(team_id): Path<String>,
) -> ApiResult<Response> {
    let st = shared.lock();
    let team = st.teams.get(&team_id).ok_or_else(|| {
        ApiError::new(
            404,
            "app.team.get.find.app_error",
            "Unable to find the existing team.",
        )
    })?;
    check_view(&st, &caller, &team.id)?;
    Ok(json_response(200, team.to_json()))
}

/// `GET /teams/name/{name}`.
pub async fn get_team_by_name(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let st = shared.lock();
    let team = st.teams.values().find(|t| t.name == name).ok_or_else(|| {
        ApiError::new(
            404,
            "app.team.get_by_name.missing.app_error",
            "Unable to find the existing team.",
        )
    })?;
    check_view(&st, &caller, &team.id)?;
    Ok(json_response(200, team.to_json()))
}

/// `GET /users/{user_id}/teams` (`me` allowed; others need system admin).
pub async fn teams_for_user(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(user_id): Path<String>,
) -> ApiResult<Response> {
    let user_id = if user_id == "me" {
        caller.id.clone()
    } else {
        user_id
    };
    if user_id != caller.id && !caller.system_admin {
        return Err(ApiError::forbidden());
    }
    let st = shared.lock();
    let mut teams: Vec<_> = st
        .teams
        .values()
        .filter(|t| st.is_team_member(&t.id, &user_id))
        .collect();
    teams.sort_by_key(|t| t.create_at);
    Ok(json_response(
        200,
        Value::Array(teams.iter().map(|t| t.to_json()).collect()),
    ))
}

/// `GET /teams/{team_id}/members/{user_id}` (`me` allowed): needs `view_team`; a user who is
/// not a member gets 404 `app.team.get_member.missing.app_error` (api4/team.go
/// `getTeamMember`).
pub async fn team_member(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path((team_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let user_id = if user_id == "me" {
        caller.id.clone()
    } else {
        user_id
    };
    let st = shared.lock();
    if !st.teams.contains_key(&team_id) {
        return Err(ApiError::forbidden());
    }
    check_view(&st, &caller, &team_id)?;
    if !st.is_team_member(&team_id, &user_id) {
        return Err(ApiError::new(
            404,
            "app.team.get_member.missing.app_error",
            "No team member found for that user ID and team ID.",
        ));
    }
    let roles = if st.users.get(&user_id).is_some_and(|u| u.system_admin) {
        "team_user team_admin"
    } else {
        "team_user"
    };
    Ok(json_response(
        200,
        serde_json::json!({
            "team_id": team_id, "user_id": user_id, "roles": roles, "delete_at": 0,
            "scheme_user": true, "scheme_admin": roles.contains("team_admin"),
            "explicit_roles": "",
        }),
    ))
}
