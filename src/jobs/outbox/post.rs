//! Posting exactly once: `pending_post_id` covers quick retries, and after Mattermost's
//! 30-second memory a retry first looks for the post by its `parley_key` prop.

use std::collections::HashMap;

use serde_json::Value;

use crate::app::Error;
use crate::{
    mattermost::{
        Bridge, MmError, format,
        wire::{NewPost, Post},
    },
    storage::{now_ms, outbox::OutboxRow},
};

/// Mattermost remembers a `pending_post_id` for 30 s; after that a retry first looks for the
/// post by its `parley_key` prop.
const DEDUP_WINDOW_MS: i64 = 25_000;

/// Where a post goes and the key that makes it unique.
#[derive(Clone, Copy)]
pub(super) struct PostTarget<'a> {
    pub(super) channel_id: &'a str,
    pub(super) key: &'a str,
}

/// Creates a post exactly once: `pending_post_id` covers quick retries, and after
/// Mattermost's 30-second memory a retry first looks for a post carrying the same key.
pub(super) async fn post_once(
    bridge: &Bridge,
    row: &OutboxRow,
    target: &PostTarget<'_>,
    message: &str,
    props: Value,
    file_ids: Vec<String>,
) -> Result<Post, Error> {
    let PostTarget { channel_id, key } = *target;
    Ok(create_post_once(
        bridge,
        row.first_attempt_at,
        channel_id,
        key,
        message,
        props,
        file_ids,
    )
    .await?)
}

/// `post_once` for posts outside the outbox (offline messages): `first_attempt_at` is when
/// the first try started, if one failed before.
pub(crate) async fn create_post_once(
    bridge: &Bridge,
    first_attempt_at: Option<i64>,
    channel_id: &str,
    key: &str,
    message: &str,
    mut props: Value,
    file_ids: Vec<String>,
) -> Result<Post, MmError> {
    let now = now_ms();
    if let Some(first) = first_attempt_at
        && now - first > DEDUP_WINDOW_MS
    {
        let mut list = bridge.posts_since(channel_id, first - 5_000).await?;
        if let Some(post) = made_with_key(&list.posts, key).and_then(|id| list.posts.remove(&id)) {
            return Ok(post);
        }
    }
    props[format::KEY_PROP] = Value::String(key.to_owned());
    let post = NewPost {
        channel_id,
        message,
        pending_post_id: Some(key),
        props,
        file_ids,
    };
    bridge.create_post(&post).await
}

/// The live post made with `key`, among posts listed by `posts?since`. The list also holds
/// deleted posts and, on a real server, a soft-deleted copy of the old version of every edited
/// post: that copy keeps the old props (the key among them) under a new id, with
/// `original_id` naming the post, which an edit (e.g. the Accept click rewriting the request
/// post) may have left without the key. Either way the answer is the post itself.
fn made_with_key(posts: &HashMap<String, Post>, key: &str) -> Option<String> {
    let has_key = |p: &&Post| p.props.get(format::KEY_PROP).and_then(Value::as_str) == Some(key);
    let live = |id: &str| posts.get(id).is_some_and(|p| p.delete_at == 0);
    if let Some(post) = posts
        .values()
        .filter(has_key)
        .find(|p| p.original_id.is_empty() && p.delete_at == 0)
    {
        return Some(post.id.clone());
    }
    posts
        .values()
        .filter(has_key)
        .find(|p| !p.original_id.is_empty() && live(&p.original_id))
        .map(|copy| copy.original_id.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn listed(id: &str, key: Option<&str>, original_id: &str, delete_at: i64) -> (String, Post) {
        let props = key.map_or(json!({}), |k| json!({ format::KEY_PROP: k }));
        let post = serde_json::from_value(json!({
            "id": id, "channel_id": "c", "user_id": "bot", "props": props,
            "original_id": original_id, "delete_at": delete_at,
        }))
        .unwrap();
        (id.to_owned(), post)
    }

    #[test]
    fn a_post_made_with_a_key_is_found_past_deleted_posts_and_edit_copies() {
        // The edited post lost the key (its props were replaced); its old version kept it.
        let edited: HashMap<_, _> = [
            listed("copy", Some("k"), "post", 5),
            listed("post", None, "", 0),
            listed("other", Some("x"), "", 0),
        ]
        .into();
        assert_eq!(made_with_key(&edited, "k").as_deref(), Some("post"));
        // The post still has its key, next to its copy: the post.
        let both: HashMap<_, _> = [
            listed("copy", Some("k"), "post", 5),
            listed("post", Some("k"), "", 0),
        ]
        .into();
        assert_eq!(made_with_key(&both, "k").as_deref(), Some("post"));
        // Deleted, or only an old version of a post deleted since: none.
        let deleted: HashMap<_, _> = [
            listed("gone", Some("k"), "", 7),
            listed("copy", Some("k"), "gone", 5),
        ]
        .into();
        assert_eq!(made_with_key(&deleted, "k"), None);
        assert_eq!(made_with_key(&HashMap::new(), "k"), None);
    }
}
