//! `/users/...`: user lookup and statuses.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, json_response};

fn user_not_found() -> ApiError {
    ApiError::new(
        404,
        "app.user.missing_account.const",
        "Unable to find the user.",
    )
}

/// `GET /users/{user_id}` (`me` allowed).
pub async fn get_user(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(user_id): Path<String>,
) -> ApiResult<Response> {
    if user_id == "me" {
        return Ok(json_response(200, caller.to_json()));
    }
    let st = shared.lock();
    let user = st.users.get(&user_id).ok_or_else(user_not_found)?;
    Ok(json_response(200, user.to_json()))
}

/// `GET /users/username/{username}`.
pub async fn get_by_username(
    State(shared): State<Shared>,
    Caller(_): Caller,
    Path(username): Path<String>,
) -> ApiResult<Response> {
    let st = shared.lock();
    let user = st
        .users
        .values()
        .find(|u| u.username == username)
        .ok_or_else(user_not_found)?;
    Ok(json_response(200, user.to_json()))
}

/// `POST /users/ids`: the users with these ids, in the server's order; unknown ids are left
/// out (`getUsersByIds`: an empty list is 400 `user_ids`).
pub async fn users_by_ids(
    State(shared): State<Shared>,
    Caller(_): Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let ids: Vec<String> = serde_json::from_slice(&body).unwrap_or_default();
    if ids.is_empty() {
        return Err(ApiError::invalid_param("user_ids"));
    }
    let st = shared.lock();
    let out: Vec<Value> = ids
        .iter()
        .filter_map(|id| st.users.get(id))
        .map(|u| u.to_json())
        .collect();
    Ok(json_response(200, Value::Array(out)))
}

/// `POST /users/status/ids`: unknown ids come back `offline`; every id must be 26
/// characters long (`getUserStatusesByIds`); with `EnableUserStatuses` off the answer is an
/// empty list.
pub async fn statuses_by_ids(
    State(shared): State<Shared>,
    Caller(_): Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let ids: Vec<String> = serde_json::from_slice(&body).unwrap_or_default();
    if ids.is_empty() || ids.iter().any(|id| id.len() != 26) {
        return Err(ApiError::invalid_param("user_ids"));
    }
    let st = shared.lock();
    if !st.config.enable_user_statuses {
        return Ok(json_response(200, Value::Array(Vec::new())));
    }
    let out: Vec<Value> = ids
        .iter()
        .map(|id| match st.statuses.get(id) {
            Some(s) => json!({
                "user_id": id, "status": s.status, "manual": s.manual,
                "last_activity_at": s.last_activity_at, "dnd_end_time": 0
            }),
            None => json!({
                "user_id": id, "status": "offline", "manual": false,
                "last_activity_at": 0, "dnd_end_time": 0
            }),
        })
        .collect();
    Ok(json_response(200, Value::Array(out)))
}
