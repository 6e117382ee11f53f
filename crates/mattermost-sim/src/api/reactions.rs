//! `/reactions` and `/posts/{id}/reactions`: emoji reactions, as MM:api4/reaction.go and
//! MM:app/reaction.go handle them. Saving answers **200** with the Reaction: the server writes
//! the body without a status, although the API reference says 201.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use crate::Shared;
use crate::api::posts::post_not_found;
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, json_response};
use crate::validate::is_id;

/// `EmojiNameMaxLength`.
const EMOJI_NAME_MAX: usize = 64;

/// A few of the server's system emoji names (MM:model/emoji_data.go has them all); any
/// other name would have to be a custom emoji, which the sim does not have.
const SYSTEM_EMOJI: &[&str] = &[
    "+1",
    "-1",
    "thumbsup",
    "thumbsdown",
    "white_check_mark",
    "heavy_check_mark",
    "ballot_box_with_check",
    "x",
    "eyes",
    "smile",
    "slightly_smiling_face",
    "grinning",
    "joy",
    "heart",
    "tada",
    "raised_hands",
    "clap",
    "pray",
    "ok_hand",
    "wave",
    "rocket",
    "fire",
    "100",
    "thinking_face",
    "hourglass",
    "hourglass_flowing_sand",
    "warning",
    "question",
    "exclamation",
    "star",
    "sunglasses",
    "hand",
    "raising_hand",
    "point_up",
    "muscle",
];

#[derive(Deserialize)]
struct SaveReaction {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    post_id: String,
    #[serde(default)]
    emoji_name: String,
}

/// `POST /reactions` `{user_id, post_id, emoji_name}`: only as oneself, with `add_reaction`
/// in the post's channel (channel members), a known emoji, not in an archived channel.
pub async fn save(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let req: SaveReaction =
        serde_json::from_slice(&body).map_err(|_| ApiError::invalid_param("reaction"))?;
    if !is_id(&req.user_id)
        || !is_id(&req.post_id)
        || req.emoji_name.is_empty()
        || req.emoji_name.len() > EMOJI_NAME_MAX
    {
        return Err(ApiError::new(
            400,
            "api.reaction.save_reaction.invalid.app_error",
            "Reaction is not valid.",
        ));
    }
    if req.user_id != caller.id {
        return Err(ApiError::new(
            403,
            "api.reaction.save_reaction.user_id.app_error",
            "You cannot save reaction for the other user.",
        ));
    }
    let mut st = shared.lock();
    // SessionHasPermissionToChannelByPost: add_reaction comes from channel_user.
    let post = st.posts.get(&req.post_id).cloned();
    let allowed = match &post {
        Some(p) => st.has_channel_role(&caller, &p.channel_id),
        None => caller.system_admin,
    };
    if !allowed {
        return Err(ApiError::forbidden());
    }
    let post = post
        .filter(|p| p.delete_at == 0)
        .ok_or_else(post_not_found)?;
    let valid_name = req
        .emoji_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '_'));
    if !valid_name {
        return Err(ApiError::new(
            400,
            "model.reaction.is_valid.emoji_name.app_error",
            "Invalid emoji name.",
        ));
    }
    if !SYSTEM_EMOJI.contains(&req.emoji_name.as_str()) {
        return Err(ApiError::new(
            404,
            "app.emoji.get_by_name.no_result",
            "Unable to find the emoji.",
        ));
    }
    if st
        .channels
        .get(&post.channel_id)
        .is_none_or(|c| c.delete_at != 0)
    {
        return Err(ApiError::new(
            403,
            "api.reaction.save.archived_channel.app_error",
            "You cannot react to posts in an archived channel.",
        ));
    }
    let reaction = st.save_reaction(&caller.id, &post.id, &req.emoji_name);
    Ok(json_response(
        200,
        serde_json::to_value(reaction).unwrap_or(Value::Null),
    ))
}

/// `GET /posts/{post_id}/reactions`: needs read access to the post's channel.
pub async fn for_post(
    State(shared): State<Shared>,
    Caller(caller): Caller,
    Path(post_id): Path<String>,
) -> ApiResult<Response> {
    let st = shared.lock();
    let channel = st
        .posts
        .get(&post_id)
        .and_then(|p| st.channels.get(&p.channel_id));
    if !channel.is_some_and(|c| st.can_read_channel(&caller, c)) {
        return Err(ApiError::forbidden());
    }
    let list = st.reactions_for_post(&post_id);
    Ok(json_response(
        200,
        serde_json::to_value(list).unwrap_or(Value::Null),
    ))
}
