//! `/channels/...` and channel lookups under `/teams/...`: create, read, patch,
//! members, archive and permanent delete, with the real server's error ids.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, json_response, parse_body, query_params, status_ok};
use crate::model::{Channel, User, new_id, now_ms};
use crate::state::State as SimState;
use crate::validate;
use crate::ws::{Broadcast, WsEvent};

/// `TeamSettings.MaxChannelsPerTeam` default.
const MAX_CHANNELS_PER_TEAM: usize = 2000;

pub fn channel_not_found() -> ApiError {
    ApiError::new(
        404,
        "app.channel.get.existing.app_error",
        "Unable to find the existing channel.",
    )
}

fn by_name_not_found() -> ApiError {
    ApiError::new(
        404,
        "app.channel.get_by_name.missing.app_error",
        "Channel does not exist.",
    )
}

fn duplicate_name() -> ApiError {
    ApiError::new(
        400,
        "store.sql_channel.save_channel.exists.app_error",
        "A channel with that name already exists on the same team.",
    )
}

/// Go's `strconv.ParseBool`; anything else is false (its error is discarded).
pub fn parse_bool(s: Option<&String>) -> bool {
    matches!(
        s.map(String::as_str),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateChannel {
    team_id: String,
    name: String,
    display_name: String,
    #[serde(rename = "type")]
    channel_type: String,
    purpose: String,
    header: String,
}

/// `POST /channels`.
pub async fn create(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateChannel = parse_body(&body, "channel")?;
    let mut st = shared.lock();
    // create_public_channel / create_private_channel come from team_user.
    if !caller.system_admin && !st.is_team_member(&req.team_id, &caller.id) {
        return Err(ApiError::forbidden());
    }
    // A permission scheme without `create_private_channel` for team members.
    if req.channel_type == "P"
        && !caller.system_admin
        && !st.config.team_user_can_create_private_channels
    {
        return Err(ApiError::forbidden());
    }
    match req.channel_type.as_str() {
        "O" | "P" => {}
        "D" | "G" => {
            return Err(ApiError::new(
                400,
                "api.channel.create_channel.direct_channel.app_error",
                "Must use createDirectChannel API service for direct message channel creation.",
            ));
        }
        _ => {
            return Err(ApiError::new(
                400,
                "model.channel.is_valid.type.app_error",
                "Invalid type.",
            ));
        }
    }
    let name = validate::sanitize_unicode(&req.name);
    let display_name = validate::sanitize_unicode(&req.display_name);
    validate::validate_display_name(&display_name)?;
    if name.len() > validate::CHANNEL_NAME_MAX {
        // The real server does not check the length first: the database refuses the row
        // (mattermost-api.md §13).
        return Err(ApiError::new(
            500,
            "app.channel.create_channel.internal_error",
            "Unable to save the channel.",
        ));
    }
    validate::validate_channel_name(&name)?;
    validate::validate_header(&req.header)?;
    validate::validate_purpose(&req.purpose)?;
    if st.channel_by_name(&req.team_id, &name).is_some() {
        return Err(duplicate_name());
    }
    let live = st
        .channels
        .values()
        .filter(|c| c.team_id == req.team_id && c.delete_at == 0)
        .count();
    if live >= MAX_CHANNELS_PER_TEAM {
        return Err(ApiError::new(
            400,
            "store.sql_channel.save_channel.limit.app_error",
            "You've reached the limit of the number of allowed channels.",
        ));
    }
    let now = now_ms();
    let channel = Channel {
        id: new_id(),
        team_id: req.team_id.clone(),
        channel_type: req.channel_type.clone(),
        name,
        display_name,
        header: req.header,
        purpose: req.purpose,
        creator_id: caller.id.clone(),
        create_at: now,
        update_at: now,
        delete_at: 0,
        last_post_at: now,
        total_msg_count: 0,
    };
    st.channel_order.push(channel.id.clone());
    st.channels.insert(channel.id.clone(), channel.clone());
    st.add_channel_member_raw(&channel.id, &caller.id, true);
    let ev = WsEvent::new(
        "channel_created",
        json!({"channel_id": channel.id, "team_id": channel.team_id}),
        Broadcast {
            user_id: caller.id.clone(),
            ..Broadcast::default()
        },
    );
    st.publish(&ev);
    Ok(json_response(201, channel.to_json()))
}

/// `read_public_channel` on the team for public channels, `read_channel` for private.
fn check_read(st: &SimState, caller: &User, channel: &Channel) -> ApiResult<()> {
    if st.can_read_channel(caller, channel) {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// `GET /channels/{channel_id}` (archived channels included).
pub async fn get(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(channel_id): Path<String>,
) -> ApiResult<Response> {
    let st = shared.lock();
    let channel = st.channels.get(&channel_id).ok_or_else(channel_not_found)?;
    check_read(&st, &caller, channel)?;
    Ok(json_response(200, channel.to_json()))
}

fn lookup_by_name(
    st: &SimState,
    caller: &User,
    team_id: &str,
    name: &str,
    uri: &Uri,
) -> ApiResult<Response> {
    let include_deleted = parse_bool(query_params(uri.query()).get("include_deleted"));
    let channel = st
        .channel_by_name(team_id, name)
        .filter(|c| include_deleted || c.delete_at == 0)
        .ok_or_else(by_name_not_found)?;
    if channel.is_private() {
        // A private channel the caller can't read is reported as missing.
        if !st.can_read_channel(caller, channel) {
            return Err(by_name_not_found());
        }
    } else {
        check_read(st, caller, channel)?;
    }
    Ok(json_response(200, channel.to_json()))
}

/// `GET /teams/{team_id}/channels/name/{channel_name}?include_deleted=`.
pub async fn get_by_name(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path((team_id, channel_name)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult<Response> {
    let st = shared.lock();
    lookup_by_name(&st, &caller, &team_id, &channel_name, &uri)
}

/// `GET /teams/name/{team_name}/channels/name/{channel_name}?include_deleted=`.
pub async fn get_by_team_name_and_name(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path((team_name, channel_name)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult<Response> {
    let st = shared.lock();
    let team_id = st
        .teams
        .values()
        .find(|t| t.name == team_name)
        .map(|t| t.id.clone())
        .ok_or_else(|| {
            ApiError::new(
                404,
                "app.team.get_by_name.missing.app_error",
                "Unable to find the existing team.",
            )
        })?;
    lookup_by_name(&st, &caller, &team_id, &channel_name, &uri)
}

#[derive(Deserialize)]
struct SearchBody {
    #[serde(default)]
    term: String,
}

/// `POST /teams/{team_id}/channels/search`: live public channels whose name or display
/// name contains the term; without `list_team_channels` only the caller's channels. Answers
/// 200 as the server's code does (the spec says 201; mattermost-api.md §2).
pub async fn search(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(team_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: SearchBody = parse_body(&body, "channel_search")?;
    let term = req.term.to_lowercase();
    let st = shared.lock();
    let can_list = caller.system_admin || st.is_team_member(&team_id, &caller.id);
    let found: Vec<Value> = st
        .channel_order
        .iter()
        .filter_map(|id| st.channels.get(id))
        .filter(|c| c.team_id == team_id && c.delete_at == 0 && !c.is_private())
        .filter(|c| can_list || st.is_channel_member(&c.id, &caller.id))
        .filter(|c| {
            c.name.to_lowercase().contains(&term) || c.display_name.to_lowercase().contains(&term)
        })
        .map(Channel::to_json)
        .collect();
    Ok(json_response(200, Value::Array(found)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChannelPatch {
    header: Option<String>,
    display_name: Option<String>,
    name: Option<String>,
    purpose: Option<String>,
}

/// `PUT /channels/{channel_id}/patch`; header/display name/purpose changes write the
/// matching system post.
pub async fn patch(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(channel_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: ChannelPatch = parse_body(&body, "channel")?;
    let mut st = shared.lock();
    let old = st
        .channels
        .get(&channel_id)
        .cloned()
        .ok_or_else(channel_not_found)?;
    if !st.has_channel_role(&caller, &channel_id) {
        return Err(ApiError::forbidden());
    }
    if old.delete_at != 0 {
        return Err(ApiError::new(
            400,
            "api.channel.update_channel.deleted.app_error",
            "The channel has been archived or deleted.",
        ));
    }
    let mut new = old.clone();
    if let Some(name) = req.name {
        let name = validate::sanitize_unicode(&name);
        validate::validate_channel_name(&name)?;
        if name != old.name && st.channel_by_name(&old.team_id, &name).is_some() {
            return Err(ApiError::new(
                400,
                "store.sql_channel.update.exists.app_error",
                "A channel with that handle already exists.",
            ));
        }
        new.name = name;
    }
    if let Some(dn) = req.display_name {
        let dn = validate::sanitize_unicode(&dn);
        validate::validate_display_name(&dn)?;
        new.display_name = dn;
    }
    if let Some(h) = req.header {
        validate::validate_header(&h)?;
        new.header = h;
    }
    if let Some(p) = req.purpose {
        validate::validate_purpose(&p)?;
        new.purpose = p;
    }
    new.update_at = now_ms();
    st.channels.insert(channel_id.clone(), new.clone());
    let who = caller.username.clone();
    if new.display_name != old.display_name {
        let msg = format!(
            "{who} updated the channel display name from: {} to: {}",
            old.display_name, new.display_name
        );
        let props = json!({"username": who, "old_displayname": old.display_name, "new_displayname": new.display_name});
        st.system_post(
            &channel_id,
            &caller.id,
            "system_displayname_change",
            msg,
            props,
        );
    }
    if new.header != old.header {
        let msg = if old.header.is_empty() {
            format!("{who} updated the channel header to: {}", new.header)
        } else if new.header.is_empty() {
            format!("{who} removed the channel header (was: {})", old.header)
        } else {
            format!(
                "{who} updated the channel header from: {} to: {}",
                old.header, new.header
            )
        };
        let props = json!({"username": who, "old_header": old.header, "new_header": new.header});
        st.system_post(&channel_id, &caller.id, "system_header_change", msg, props);
    }
    if new.purpose != old.purpose {
        let msg = if old.purpose.is_empty() {
            format!("{who} updated the channel purpose to: {}", new.purpose)
        } else if new.purpose.is_empty() {
            format!("{who} removed the channel purpose (was: {})", old.purpose)
        } else {
            format!(
                "{who} updated the channel purpose from: {} to: {}",
                old.purpose, new.purpose
            )
        };
        let props =
            json!({"username": who, "old_purpose": old.purpose, "new_purpose": new.purpose});
        st.system_post(&channel_id, &caller.id, "system_purpose_change", msg, props);
    }
    let ev = WsEvent::new(
        "channel_updated",
        json!({"channel": new.to_json().to_string()}),
        Broadcast {
            channel_id: channel_id.clone(),
            ..Broadcast::default()
        },
    );
    st.publish(&ev);
    Ok(json_response(200, new.to_json()))
}

/// `GET /channels/{channel_id}/members?page=&per_page=`.
pub async fn members(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(channel_id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let q = query_params(uri.query());
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(60)
        .min(200);
    let st = shared.lock();
    let channel = st.channels.get(&channel_id).ok_or_else(channel_not_found)?;
    check_read(&st, &caller, channel)?;
    let out: Vec<Value> = st
        .channel_members
        .get(&channel_id)
        .map(|m| {
            m.iter()
                .skip(page * per_page)
                .take(per_page)
                .map(|cm| cm.to_json(&channel_id))
                .collect()
        })
        .unwrap_or_default();
    Ok(json_response(200, Value::Array(out)))
}

/// `GET /channels/{channel_id}/members/{user_id}`.
pub async fn member(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path((channel_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let user_id = if user_id == "me" {
        caller.id.clone()
    } else {
        user_id
    };
    let st = shared.lock();
    let channel = st.channels.get(&channel_id).ok_or_else(channel_not_found)?;
    check_read(&st, &caller, channel)?;
    let member = st
        .channel_member_json(&channel_id, &user_id)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "app.channel.get_member.missing.app_error",
                "No channel member found for that user ID and channel ID.",
            )
        })?;
    Ok(json_response(200, member))
}

#[derive(Deserialize)]
struct AddMember {
    #[serde(default)]
    user_id: String,
}

/// `POST /channels/{channel_id}/members` `{user_id}`: idempotent 201; the target must
/// already be on the team; writes a join/add system post and `user_added`.
pub async fn add_member(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(channel_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: AddMember = parse_body(&body, "user_id")?;
    if req.user_id.is_empty() {
        return Err(ApiError::invalid_body("user_id"));
    }
    let mut st = shared.lock();
    let channel = st
        .channels
        .get(&channel_id)
        .cloned()
        .ok_or_else(channel_not_found)?;
    let joining_self = req.user_id == caller.id;
    let allowed = st.has_channel_role(&caller, &channel_id)
        // join_public_channels (team_user) lets anyone on the team join a public channel.
        || (joining_self && !channel.is_private() && st.is_team_member(&channel.team_id, &caller.id));
    if !allowed {
        return Err(ApiError::forbidden());
    }
    // An archived channel takes new members on the real server (201); posting there then
    // fails with `can_not_post_to_deleted` (mattermost-api.md §13).
    let target = st.users.get(&req.user_id).cloned().ok_or_else(|| {
        ApiError::new(
            404,
            "app.user.missing_account.const",
            "Unable to find the user.",
        )
    })?;
    if !st.is_team_member(&channel.team_id, &target.id) {
        return Err(ApiError::new(
            404,
            "app.team.get_member.missing.app_error",
            "No team member found for that user ID and team ID.",
        ));
    }
    if st.add_channel_member_raw(&channel_id, &target.id, false) {
        if joining_self {
            st.system_post(
                &channel_id,
                &caller.id,
                "system_join_channel",
                format!("{} joined the channel.", caller.username),
                json!({"username": caller.username}),
            );
        } else {
            st.system_post(
                &channel_id,
                &caller.id,
                "system_add_to_channel",
                format!(
                    "{} added to the channel by {}.",
                    target.username, caller.username
                ),
                json!({
                    "userId": caller.id, "username": caller.username,
                    "addedUserId": target.id, "addedUsername": target.username
                }),
            );
        }
        let ev = WsEvent::new(
            "user_added",
            json!({"user_id": target.id, "team_id": channel.team_id}),
            Broadcast {
                channel_id: channel_id.clone(),
                ..Broadcast::default()
            },
        );
        st.publish(&ev);
    }
    let member = st
        .channel_member_json(&channel_id, &target.id)
        .unwrap_or(Value::Null);
    Ok(json_response(201, member))
}

/// `DELETE /channels/{channel_id}[?permanent=true]`: archive, or purge when
/// `EnableAPIChannelDeletion` is on (401 when it is off — not 403).
pub async fn delete(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(channel_id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let permanent = parse_bool(query_params(uri.query()).get("permanent"));
    let mut st = shared.lock();
    let channel = st
        .channels
        .get(&channel_id)
        .cloned()
        .ok_or_else(channel_not_found)?;
    if !st.has_channel_role(&caller, &channel_id) {
        return Err(ApiError::forbidden());
    }
    let now = now_ms();
    if permanent {
        if !st.config.enable_api_channel_deletion {
            return Err(ApiError::new(
                401,
                "api.user.delete_channel.not_enabled.app_error",
                "Permanent channel deletion feature is not enabled. Please contact your System Administrator.",
            ));
        }
        purge_channel(&mut st, &channel_id);
    } else {
        if channel.delete_at != 0 {
            return Err(ApiError::new(
                400,
                "api.channel.delete_channel.deleted.app_error",
                "The channel has been archived or deleted.",
            ));
        }
        // The system post is written first, while posting is still allowed.
        st.system_post(
            &channel_id,
            &caller.id,
            "system_channel_deleted",
            format!("{} archived the channel", caller.username),
            json!({"username": caller.username}),
        );
        if let Some(ch) = st.channels.get_mut(&channel_id) {
            ch.delete_at = now;
            ch.update_at = now;
        }
    }
    let ev = WsEvent::new(
        "channel_deleted",
        json!({"channel_id": channel_id, "delete_at": now}),
        Broadcast {
            team_id: channel.team_id.clone(),
            ..Broadcast::default()
        },
    );
    st.publish(&ev);
    Ok(status_ok())
}

/// Removes a channel with its members, posts and files (`PermanentDeleteChannel`).
pub(crate) fn purge_channel(st: &mut SimState, channel_id: &str) {
    st.channels.remove(channel_id);
    st.channel_order.retain(|id| id != channel_id);
    st.channel_members.remove(channel_id);
    let post_ids: Vec<String> = st
        .posts
        .values()
        .filter(|p| p.channel_id == channel_id)
        .map(|p| p.id.clone())
        .collect();
    for id in &post_ids {
        st.posts.remove(id);
    }
    st.post_order.retain(|id| st.posts.contains_key(id));
    st.files.retain(|_, f| f.info.channel_id != channel_id);
}
