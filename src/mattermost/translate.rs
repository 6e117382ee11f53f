//! From what Mattermost sends (wire types) to [`BridgeEvent`]s: WebSocket events, and the post
//! lists of a catch-up (which hold new, edited and deleted posts alike).

use serde_json::Value;

use super::{
    events::{self, BridgeEvent},
    wire::{self, PostList, WsEvent},
};

/// The event a WebSocket event stands for, if parley acts on it. Connection events (`hello`)
/// are the stream's own; unreadable payloads are skipped.
pub(super) fn event(ws: &WsEvent) -> Option<BridgeEvent> {
    match ws.event.as_str() {
        "posted" => Some(BridgeEvent::Posted(post(embedded(&ws.data, "post")?))),
        "post_edited" => Some(BridgeEvent::Edited(post(embedded(&ws.data, "post")?))),
        "post_deleted" => Some(BridgeEvent::Deleted(post(embedded(&ws.data, "post")?))),
        // The channel of `typing` is only in the broadcast.
        "typing" => Some(BridgeEvent::Typing {
            channel_id: ws.broadcast.channel_id.clone(),
            user_id: ws
                .data
                .get("user_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }),
        "reaction_added" => Some(BridgeEvent::Reaction(reaction(embedded(
            &ws.data, "reaction",
        )?))),
        _ => None,
    }
}

/// A post as the application reads it.
pub(super) fn post(p: wire::Post) -> events::Post {
    let from_bot = p.from_bot();
    events::Post {
        id: p.id,
        channel_id: p.channel_id,
        user_id: p.user_id,
        message: p.message,
        file_ids: p.file_ids.unwrap_or_default(),
        is_system: !p.kind.is_empty(),
        from_bot,
        create_at: p.create_at,
        edit_at: p.edit_at,
        delete_at: p.delete_at,
    }
}

/// A reaction as the application reads it.
pub(super) fn reaction(r: wire::Reaction) -> events::Reaction {
    events::Reaction {
        user_id: r.user_id,
        post_id: r.post_id,
        emoji_name: r.emoji_name,
        create_at: r.create_at,
    }
}

/// The events a catch-up list stands for, oldest post first: a deleted post is `Deleted`; an
/// edited one is `Edited` and then `Posted` (parley may never have seen it); the soft-deleted
/// copy an edit leaves of the old version is skipped (the edited post is listed too and
/// carries the change).
pub(super) fn missed_posts(list: PostList) -> Vec<BridgeEvent> {
    let mut posts: Vec<wire::Post> = list.posts.into_values().collect();
    posts.sort_by(|a, b| (a.create_at, &a.id).cmp(&(b.create_at, &b.id)));
    let mut events = Vec::with_capacity(posts.len());
    for p in posts {
        if !p.original_id.is_empty() {
            continue;
        }
        let p = post(p);
        if p.delete_at > 0 {
            events.push(BridgeEvent::Deleted(p));
            continue;
        }
        if p.edit_at > 0 {
            events.push(BridgeEvent::Edited(p.clone()));
        }
        events.push(BridgeEvent::Posted(p));
    }
    events
}

/// A value embedded in a WebSocket event's data: a JSON string (what the server sends) or an
/// object.
fn embedded<T: serde::de::DeserializeOwned>(data: &Value, key: &str) -> Option<T> {
    match data.get(key)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => serde_json::from_value(other.clone()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ws(event: &str, data: Value, channel_id: &str) -> WsEvent {
        serde_json::from_value(json!({
            "event": event,
            "data": data,
            "seq": 3,
            "broadcast": { "channel_id": channel_id },
        }))
        .unwrap()
    }

    fn wire_post(id: &str, create_at: i64) -> Value {
        json!({
            "id": id, "channel_id": "c1", "user_id": "u1", "message": " hi ",
            "create_at": create_at, "edit_at": 0, "delete_at": 0,
        })
    }

    #[test]
    fn posts_arrive_as_a_json_string_or_an_object() {
        let as_string = json!({ "post": wire_post("p1", 5).to_string() });
        let as_object = json!({ "post": wire_post("p1", 5) });
        for data in [as_string, as_object] {
            let Some(BridgeEvent::Posted(p)) = event(&ws("posted", data, "c1")) else {
                panic!("a post");
            };
            assert_eq!(p.id, "p1");
            assert_eq!(p.message, " hi ", "the text as written");
            assert!(p.file_ids.is_empty() && !p.is_system && !p.from_bot);
        }
    }

    #[test]
    fn each_post_event_keeps_its_kind() {
        let data = json!({ "post": wire_post("p1", 5).to_string() });
        assert!(matches!(
            event(&ws("post_edited", data.clone(), "c1")),
            Some(BridgeEvent::Edited(_))
        ));
        assert!(matches!(
            event(&ws("post_deleted", data, "c1")),
            Some(BridgeEvent::Deleted(_))
        ));
    }

    #[test]
    fn system_and_bot_posts_are_marked() {
        let mut p = wire_post("p1", 5);
        p["type"] = json!("system_join_channel");
        p["props"] = json!({ "from_bot": "true" });
        p["file_ids"] = json!(["f1"]);
        let data = json!({ "post": p.to_string() });
        let Some(BridgeEvent::Posted(p)) = event(&ws("posted", data, "c1")) else {
            panic!("a post");
        };
        assert!(p.is_system && p.from_bot);
        assert_eq!(p.file_ids, ["f1"]);
    }

    #[test]
    fn typing_names_its_channel_in_the_broadcast() {
        let typing = event(&ws("typing", json!({ "user_id": "u2" }), "c9"));
        assert_eq!(
            typing,
            Some(BridgeEvent::Typing {
                channel_id: "c9".into(),
                user_id: "u2".into()
            })
        );
    }

    #[test]
    fn reactions_are_read_and_other_events_and_bad_payloads_skipped() {
        let reaction = json!({ "user_id": "u1", "post_id": "p1", "emoji_name": "white_check_mark", "create_at": 7 });
        let data = json!({ "reaction": reaction.to_string() });
        assert_eq!(
            event(&ws("reaction_added", data, "")),
            Some(BridgeEvent::Reaction(events::Reaction {
                user_id: "u1".into(),
                post_id: "p1".into(),
                emoji_name: "white_check_mark".into(),
                create_at: 7,
            }))
        );
        assert_eq!(event(&ws("hello", json!({}), "")), None);
        assert_eq!(event(&ws("reaction_removed", json!({}), "")), None);
        assert_eq!(
            event(&ws("posted", json!({ "post": "{not json" }), "")),
            None
        );
        assert_eq!(event(&ws("posted", json!({}), "")), None);
    }

    #[test]
    fn a_catch_up_list_becomes_events_oldest_first() {
        let mut edited = wire_post("b-edited", 20);
        edited["edit_at"] = json!(25);
        let mut old_version = wire_post("old", 20);
        old_version["original_id"] = json!("b-edited");
        old_version["delete_at"] = json!(25);
        let mut deleted = wire_post("c-deleted", 30);
        deleted["delete_at"] = json!(31);
        let list: PostList = serde_json::from_value(json!({
            "order": [],
            "posts": {
                "c-deleted": deleted,
                "old": old_version,
                "b-edited": edited,
                "a-new": wire_post("a-new", 20),
                "first": wire_post("first", 10),
            },
        }))
        .unwrap();
        let seen: Vec<(&str, String)> = missed_posts(list)
            .into_iter()
            .map(|e| match e {
                BridgeEvent::Posted(p) => ("posted", p.id),
                BridgeEvent::Edited(p) => ("edited", p.id),
                BridgeEvent::Deleted(p) => ("deleted", p.id),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("posted", "first".to_owned()),
                ("posted", "a-new".to_owned()),
                ("edited", "b-edited".to_owned()),
                ("posted", "b-edited".to_owned()),
                ("deleted", "c-deleted".to_owned()),
            ]
        );
    }
}
