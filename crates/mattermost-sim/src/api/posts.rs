//! `/posts/...` and `/channels/{id}/posts`: create (with pending_post_id dedup), read,
//! patch, soft delete, channel listings and ephemeral posts.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, json_response, parse_body, query_params, status_ok};
use crate::model::{Post, generate_action_ids, now_ms};
use crate::state::{PostUpdate, State as SimState};

/// Most posts a `since` query returns.
const SINCE_LIMIT: usize = 1000;

pub fn post_not_found() -> ApiError {
    ApiError::new(404, "app.post.get.app_error", "Unable to get the post.")
}

fn check_length(st: &SimState, message: &str) -> ApiResult<()> {
    if message.chars().count() > st.config.max_post_size {
        return Err(ApiError::new(
            400,
            "model.post.is_valid.message_length.app_error",
            "Post Message property is longer than the maximum permitted length.",
        ));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreatePost {
    channel_id: String,
    message: String,
    root_id: String,
    file_ids: Vec<String>,
    props: Option<Map<String, Value>>,
    pending_post_id: String,
    #[serde(rename = "type")]
    post_type: String,
}

/// `POST /posts[?set_online=false]`.
pub async fn create(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreatePost = parse_body(&body, "post")?;
    let set_online = query_params(uri.query())
        .get("set_online")
        .is_none_or(|v| v != "false");
    let pending = req.pending_post_id.clone();
    let held = {
        let mut st = shared.lock();
        // The real server notes a pending_post_id when a create starts and the post's id once
        // it is saved; the same id sent again in between is refused (app/post.go
        // `deduplicateCreatePost`), a later retry gets the saved post.
        if !pending.is_empty() && st.saving_pending_posts.contains(&pending) {
            return Err(ApiError::new(
                500,
                "api.post.deduplicate_create_post.pending",
                "Post rejected by deduplication since another post with the same pending post id is still being created.",
            ));
        }
        let hold = st
            .faults
            .hold_post_saves
            .as_ref()
            .filter(|hold| !pending.is_empty() && *hold.borrow())
            .map(|hold| hold.subscribe());
        if hold.is_some() {
            st.saving_pending_posts.insert(pending.clone());
        }
        hold
    };
    let Some(mut hold) = held else {
        return create_now(&mut shared.lock(), &caller, req, set_online);
    };
    // The save goes on when the client gives up waiting, as the real server's does.
    let saving = tokio::spawn(async move {
        let _ = hold.wait_for(|held| !held).await;
        let mut st = shared.lock();
        st.saving_pending_posts.remove(&pending);
        create_now(&mut st, &caller, req, set_online)
    });
    saving
        .await
        .unwrap_or_else(|_| Err(ApiError::new(500, "sim.panic", "the create failed")))
}

fn create_now(
    st: &mut SimState,
    caller: &crate::model::User,
    req: CreatePost,
    set_online: bool,
) -> ApiResult<Response> {
    let caller = caller.clone();
    // create_post is a channel role; a missing channel is also a permission failure.
    let channel = st
        .channels
        .get(&req.channel_id)
        .cloned()
        .filter(|_| st.has_channel_role(&caller, &req.channel_id))
        .ok_or_else(ApiError::forbidden)?;
    if channel.delete_at != 0 {
        return Err(ApiError::new(
            400,
            "api.post.create_post.can_not_post_to_deleted.error",
            "Can not post to deleted channel.",
        ));
    }
    if let Some(existing) = st.dedup_pending(&req.pending_post_id) {
        let rendered = st.render_post(&existing, true);
        return Ok(json_response(201, rendered));
    }
    if req.post_type.starts_with("system_") {
        return Err(ApiError::invalid_param("post.type"));
    }
    check_length(st, &req.message)?;
    if !req.root_id.is_empty() {
        let root = st
            .posts
            .get(&req.root_id)
            .filter(|p| p.delete_at == 0 && p.root_id.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "api.post.create_post.root_id.app_error",
                    "Invalid RootId parameter.",
                )
            })?;
        if root.channel_id != req.channel_id {
            return Err(ApiError::new(
                400,
                "api.post.create_post.channel_root_id.app_error",
                "Invalid ChannelId for RootId parameter.",
            ));
        }
    }
    let mut post = Post::new(&caller.id, &req.channel_id, &req.message, &req.post_type);
    post.root_id = req.root_id.clone();
    post.pending_post_id = req.pending_post_id;
    post.props = req.props.unwrap_or_default();
    generate_action_ids(&mut post.props);
    if caller.is_bot {
        post.props.insert("from_bot".into(), json!("true"));
    }
    // Files that are unknown, someone else's, already attached or from another
    // channel are skipped, as `attachFilesToPost` does.
    for file_id in req.file_ids {
        if let Some(f) = st.files.get_mut(&file_id)
            && f.info.user_id == caller.id
            && f.info.post_id.is_empty()
            && f.info.channel_id == req.channel_id
            && f.info.delete_at == 0
        {
            f.info.post_id = post.id.clone();
            f.info.update_at = post.create_at;
            post.file_ids.push(file_id);
        }
    }
    if !post.root_id.is_empty()
        && let Some(root) = st.posts.get_mut(&post.root_id)
    {
        root.reply_count += 1;
        root.last_reply_at = post.create_at;
    }
    if set_online {
        st.touch_online(&caller.id);
    }
    let post = st.insert_post(post);
    Ok(json_response(201, st.render_post(&post, true)))
}

fn readable_post(st: &SimState, caller: &crate::model::User, post_id: &str) -> ApiResult<Post> {
    let post = st
        .posts
        .get(post_id)
        .filter(|p| p.delete_at == 0)
        .cloned()
        .ok_or_else(post_not_found)?;
    let channel = st
        .channels
        .get(&post.channel_id)
        .ok_or_else(post_not_found)?;
    if !st.can_read_channel(caller, channel) {
        return Err(ApiError::forbidden());
    }
    Ok(post)
}

/// A post to patch or delete. The real server checks the permission on the post's channel
/// first, and finds none for a deleted or unknown post: `403 api.context.permissions.app_error`,
/// not 404 (mattermost-api.md §13).
fn changeable_post(st: &SimState, caller: &crate::model::User, post_id: &str) -> ApiResult<Post> {
    readable_post(st, caller, post_id).map_err(|e| {
        if e.status == 404 {
            ApiError::forbidden()
        } else {
            e
        }
    })
}

/// `GET /posts/{post_id}` (deleted posts are 404).
pub async fn get(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(post_id): Path<String>,
) -> ApiResult<Response> {
    let st = shared.lock();
    let post = readable_post(&st, &caller, &post_id)?;
    Ok(json_response(200, st.render_post(&post, true)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PostPatch {
    message: Option<String>,
    props: Option<Map<String, Value>>,
    file_ids: Option<Vec<String>>,
    is_pinned: Option<bool>,
}

/// Own posts need `edit_post`/`delete_post` (channel role); others' need the
/// `*_others_posts` permissions, which only admins have by default.
fn check_author_or_admin(st: &SimState, caller: &crate::model::User, post: &Post) -> ApiResult<()> {
    let ok = if post.user_id == caller.id {
        st.has_channel_role(caller, &post.channel_id)
    } else {
        caller.system_admin
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// `PUT /posts/{post_id}/patch`: `props`, when given, replaces the whole map.
pub async fn patch(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(post_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: PostPatch = parse_body(&body, "post")?;
    let mut st = shared.lock();
    let post = changeable_post(&st, &caller, &post_id)?;
    check_author_or_admin(&st, &caller, &post)?;
    if let Some(m) = &req.message {
        check_length(&st, m)?;
    }
    let update = PostUpdate {
        message: req.message.unwrap_or(post.message.clone()),
        props: req.props.unwrap_or(post.props.clone()),
        file_ids: req.file_ids,
        is_pinned: req.is_pinned.unwrap_or(post.is_pinned),
    };
    let updated = st.update_post(&post_id, update)?;
    Ok(json_response(200, st.render_post(&updated, true)))
}

/// `DELETE /posts/{post_id}`: soft delete plus `post_deleted`.
pub async fn delete(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(post_id): Path<String>,
) -> ApiResult<Response> {
    let mut st = shared.lock();
    let post = changeable_post(&st, &caller, &post_id)?;
    check_author_or_admin(&st, &caller, &post)?;
    let now = now_ms();
    let mut deleted = post.clone();
    deleted.delete_at = now;
    deleted.update_at = now;
    deleted
        .props
        .insert("deleteBy".into(), json!(caller.id.clone()));
    for file_id in &deleted.file_ids {
        if let Some(f) = st.files.get_mut(file_id) {
            f.info.delete_at = now;
        }
    }
    st.posts.insert(post_id.clone(), deleted.clone());
    st.emit_post_event("post_deleted", &deleted);
    Ok(status_ok())
}

/// `GET /channels/{channel_id}/posts`: `?since=` (modified after, deleted included,
/// up to 1000) or `?page=&per_page=` (live posts, newest first).
pub async fn for_channel(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(channel_id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let q = query_params(uri.query());
    let st = shared.lock();
    // A channel that is gone (deleted for good) is a permission failure, for a system admin
    // too (mattermost-api.md §13).
    let channel = st
        .channels
        .get(&channel_id)
        .ok_or_else(ApiError::forbidden)?;
    if !st.can_read_channel(&caller, channel) {
        return Err(ApiError::forbidden());
    }
    let mut posts: Vec<&Post> = st
        .post_order
        .iter()
        .rev()
        .filter_map(|id| st.posts.get(id))
        .filter(|p| p.channel_id == channel_id)
        .collect();
    if let Some(since) = q.get("since") {
        let since: i64 = since
            .parse()
            .map_err(|_| ApiError::invalid_param("since"))?;
        posts.retain(|p| p.update_at > since);
        posts.truncate(SINCE_LIMIT);
        // Listed with their message blanked, as the real server does; edit copies keep
        // their old props (mattermost-api.md §13).
        let map: Map<String, Value> = posts
            .iter()
            .map(|p| {
                let mut v = st.render_post(p, true);
                if p.delete_at != 0 {
                    v["message"] = json!("");
                }
                (p.id.clone(), v)
            })
            .collect();
        return Ok(list_response(&posts, map));
    } else {
        let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(0);
        let per_page: usize = q
            .get("per_page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(60)
            .min(200);
        posts.retain(|p| p.delete_at == 0);
        posts = posts
            .into_iter()
            .skip(page * per_page)
            .take(per_page)
            .collect();
    }
    let map: Map<String, Value> = posts
        .iter()
        .map(|p| (p.id.clone(), st.render_post(p, true)))
        .collect();
    Ok(list_response(&posts, map))
}

fn list_response(posts: &[&Post], map: Map<String, Value>) -> Response {
    let order: Vec<Value> = posts.iter().map(|p| json!(p.id)).collect();
    json_response(
        200,
        json!({
            "order": order,
            "posts": map,
            "next_post_id": "",
            "prev_post_id": "",
            "has_next": false,
            "first_inaccessible_post_time": 0,
        }),
    )
}

#[derive(Deserialize)]
struct EphemeralRequest {
    #[serde(default)]
    user_id: String,
    post: EphemeralPost,
}

#[derive(Deserialize)]
struct EphemeralPost {
    #[serde(default)]
    channel_id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    props: Option<Map<String, Value>>,
}

/// `POST /posts/ephemeral`: needs `create_post_ephemeral` (system admin only); the
/// post is not stored, only delivered to `user_id`.
pub async fn create_ephemeral(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    body: Bytes,
) -> ApiResult<Response> {
    if !caller.system_admin {
        return Err(ApiError::forbidden());
    }
    let req: EphemeralRequest = parse_body(&body, "ephemeral_post")?;
    if req.user_id.is_empty() {
        return Err(ApiError::invalid_body("user_id"));
    }
    let mut st = shared.lock();
    let mut post = Post::new(
        &caller.id,
        &req.post.channel_id,
        &req.post.message,
        "system_ephemeral",
    );
    post.props = req.post.props.unwrap_or_default();
    generate_action_ids(&mut post.props);
    let rendered = st.send_ephemeral(&req.user_id, &post);
    Ok(json_response(201, rendered))
}
