//! What parley's posts, channel names and headers look like in Mattermost. Every piece of
//! visitor text passes through `escape_for_mattermost` here, and nowhere else builds posts.

use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};

use crate::{
    domain::department::{Department, TemplateKind, template_for},
    domain::{
        markdown::escape_for_mattermost,
        template::{self, Target, Trust, Values},
    },
    security::ActionSigner,
    storage::{chats::ChatRow, offline::OfflineMessageRow},
};

/// The id of the Accept button. Only `[A-Za-z0-9]`: the click route refuses anything else.
pub const ACCEPT_ACTION_ID: &str = "accept";
/// The context key saying what a button does.
pub const ACCEPT_ACTION: &str = "accept";
/// A prop on every parley post naming its chat, for support and debugging.
pub const CHAT_PROP: &str = "parley_chat_id";
/// A prop carrying the outbox key, to recognise an earlier delivery of the same task.
pub const KEY_PROP: &str = "parley_key";

/// The name shown for the visitor: what they typed, else "Visitor" and a short id.
pub fn visitor_name(chat: &ChatRow) -> String {
    chat.visitor_name
        .clone()
        .unwrap_or_else(|| format!("Visitor {}", &chat.id[..6.min(chat.id.len())]))
}

/// A channel name that no earlier, archived or later chat can have: a random part makes it
/// new even for the same chat after a collision. Stays well below the 64-character limit and
/// never looks like a 40-hex or `id__id` DM name.
pub fn channel_name(chat_id: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let suffix: String = (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let short: String = chat_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("chat-{}-{suffix}", short.to_ascii_lowercase())
}

/// What the templates of a chat's posts are filled with.
#[derive(Debug, Clone, Copy)]
pub struct ChatTemplates<'a> {
    pub chat: &'a ChatRow,
    pub department: Option<&'a Department>,
    /// The visitor's first message (`{message}`).
    pub first_message: &'a str,
    /// `PARLEY_PUBLIC_URL` without a trailing slash, for `{url}`.
    pub public_url: &'a str,
}

impl ChatTemplates<'_> {
    /// The variables: visitor-provided values are escaped when rendered into Markdown.
    pub fn values(&self) -> Values {
        let chat = self.chat;
        let zone = self
            .department
            .map_or(jiff::tz::TimeZone::UTC, |d| d.zone.clone());
        let created = jiff::Timestamp::from_millisecond(chat.created_at)
            .map(|t| {
                t.to_zoned_datetime(zone)
                    .strftime("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .ok();
        let url = format!("{}/admin/chats/{}", self.public_url, chat.id);
        let mut v = Values::default();
        v.set("nick", Some(&visitor_name(chat)), Trust::Visitor)
            .set("email", chat.visitor_email.as_deref(), Trust::Visitor)
            .set("phone", chat.visitor_phone.as_deref(), Trust::Visitor)
            .set(
                "department",
                self.department.map(|d| d.name.as_str()),
                Trust::Visitor,
            )
            .set("id", Some(&chat.id), Trust::Parley)
            .set("url", Some(&url), Trust::Parley)
            .set("page_url", chat.page_url.as_deref(), Trust::Visitor)
            .set("referrer", chat.referrer.as_deref(), Trust::Visitor)
            .set("message", Some(self.first_message), Trust::Visitor)
            .set("time_created", created.as_deref(), Trust::Parley);
        v
    }

    /// Renders the department's template of `kind` (or the default).
    pub fn render(&self, kind: TemplateKind) -> String {
        let template = template_for(self.department, kind);
        template::render(template, &self.values(), kind.target())
    }
}

/// Display name of the chat's channel: the template, on one line, at most 64 characters
/// (Mattermost's limit); the default when the template renders to nothing.
pub fn channel_display_name(t: &ChatTemplates<'_>) -> String {
    let name = t.render(TemplateKind::ChannelDisplayName);
    let name = if name.trim().is_empty() {
        template::render(
            TemplateKind::ChannelDisplayName.default_template(),
            &t.values(),
            Target::Plain,
        )
    } else {
        name
    };
    template::truncate(name.trim(), 64)
}

/// The channel header: the visitor's details, escaped (at most 1024 characters).
pub fn channel_header(t: &ChatTemplates<'_>) -> String {
    template::truncate(&t.render(TemplateKind::ChannelHeader), 1024)
}

/// The first post in the chat's channel, if the template gives one.
pub fn first_post(t: &ChatTemplates<'_>, max: usize) -> Option<String> {
    let text = t.render(TemplateKind::FirstPost);
    (!text.trim().is_empty()).then(|| template::truncate(&text, max))
}

/// The channel purpose names the chat, so parley can recognise a channel it created earlier.
pub fn channel_purpose(chat_id: &str) -> String {
    format!("parley chat {chat_id}")
}

fn details_fields(chat: &ChatRow, first_message: Option<&str>) -> Vec<Value> {
    let mut fields = vec![json!({
        "title": "Visitor", "value": escape_for_mattermost(&visitor_name(chat)), "short": true
    })];
    if let Some(email) = &chat.visitor_email {
        fields
            .push(json!({"title": "E-mail", "value": escape_for_mattermost(email), "short": true}));
    }
    if let Some(phone) = &chat.visitor_phone {
        fields
            .push(json!({"title": "Phone", "value": escape_for_mattermost(phone), "short": true}));
    }
    if let Some(page) = &chat.page_url {
        fields.push(json!({"title": "Page", "value": escape_for_mattermost(page), "short": false}));
    }
    if let Some(text) = first_message {
        fields.push(json!({
            "title": "Message", "value": escape_for_mattermost(&truncate(text, 1000)), "short": false
        }));
    }
    fields
}

/// The request post's hint for when the Accept button fails.
pub const ACCEPT_BY_REACTION: &str =
    "If Accept fails, react with ✅ (:white_check_mark:) to accept.";

/// The request post: the request template (who is asking), the details with the first
/// message, and the signed Accept button.
pub fn request_post(
    t: &ChatTemplates<'_>,
    actions_url: &str,
    signer: &ActionSigner,
) -> (String, Value) {
    let chat = t.chat;
    let first_message = t.first_message;
    let name = escape_for_mattermost(&visitor_name(chat));
    let mut message = template::truncate(&t.render(TemplateKind::Request), 4000);
    if message.trim().is_empty() {
        message = format!("**New chat request** from {name}");
    }
    let props = json!({
        CHAT_PROP: chat.id,
        "attachments": [{
            "fallback": format!("New chat request from {name}"),
            "color": "#1f6feb",
            "fields": details_fields(chat, Some(first_message)),
            // For when the button cannot work (Mattermost cannot reach parley): the reaction
            // comes over the event stream instead.
            "footer": ACCEPT_BY_REACTION,
            "actions": [{
                "id": ACCEPT_ACTION_ID,
                "type": "button",
                "name": "Accept",
                "style": "primary",
                "integration": {
                    "url": actions_url,
                    "context": {
                        "action": ACCEPT_ACTION,
                        "chat_id": chat.id,
                        "signature": signer.sign(ACCEPT_ACTION, &chat.id),
                    }
                }
            }]
        }]
    });
    (message, props)
}

/// The request post after the chat was settled: same details, a status line, no button.
pub fn settled_request(chat: &ChatRow, status_line: &str) -> (String, Value) {
    let name = escape_for_mattermost(&visitor_name(chat));
    let message = format!("**Chat request** from {name}: {status_line}");
    let props = json!({
        CHAT_PROP: chat.id,
        "attachments": [{
            "fallback": format!("Chat request from {name}: {status_line}"),
            "color": "#8b949e",
            "fields": details_fields(chat, None),
        }]
    });
    (message, props)
}

/// The answer only the operator who accepted sees: where the chat continues. The visitor's
/// name is made inert like everywhere else (it would otherwise bring links and images into a
/// message from the bot).
pub fn accepted_answer(chat: &ChatRow, channel_name: &str, link: &str) -> String {
    format!(
        "You accepted the chat with {}. It continues in ~{channel_name} ({link}); the channel opens in a moment.",
        escape_for_mattermost(&visitor_name(chat))
    )
}

/// An offline message as posted into the requests channel: who wrote, how to answer, the
/// message; no button (nobody can accept it).
pub fn offline_message_post(m: &OfflineMessageRow, department: Option<&str>) -> (String, Value) {
    let name = m.name.clone().unwrap_or_else(|| "A visitor".to_owned());
    let name = escape_for_mattermost(&name);
    let message = format!("**Message left while nobody was online** from {name}");
    let mut fields =
        vec![json!({"title": "E-mail", "value": escape_for_mattermost(&m.email), "short": true})];
    if let Some(phone) = &m.phone {
        fields
            .push(json!({"title": "Phone", "value": escape_for_mattermost(phone), "short": true}));
    }
    if let Some(d) = department {
        fields
            .push(json!({"title": "Department", "value": escape_for_mattermost(d), "short": true}));
    }
    if let Some(page) = &m.page_url {
        fields.push(json!({"title": "Page", "value": escape_for_mattermost(page), "short": false}));
    }
    fields.push(json!({
        "title": "Message", "value": escape_for_mattermost(&truncate(&m.body, 3000)), "short": false
    }));
    let props = json!({
        "parley_offline_message_id": m.id,
        "attachments": [{
            "fallback": format!("Message left while nobody was online, from {name}"),
            "color": "#d29922",
            "fields": fields,
        }]
    });
    (message, props)
}

/// A visitor message as posted by the bot: the visitor's name in bold, then their text, both
/// made inert.
pub fn relay_message(visitor: &str, text: &str) -> String {
    format!(
        "**{}:** {}",
        escape_for_mattermost(visitor),
        escape_for_mattermost(text)
    )
}

/// The line added to a relayed message when Mattermost would not take one of its files.
pub fn file_refused_note(name: &str) -> String {
    format!(
        "\n_(The file {} could not be uploaded to Mattermost: it is larger than this server allows, or uploads are off. parley keeps it with the chat.)_",
        escape_for_mattermost(name)
    )
}

/// A notice from parley in the chat's channel.
pub fn notice(text: &str) -> String {
    format!(":information_source: _{}_", escape_for_mattermost(text))
}

/// The reminder in the requests channel about a request nobody accepted. A new post rather
/// than a reply to the request: with collapsed reply threads (the default on recent servers)
/// a reply is hidden in the thread and notifies nobody without a mention, while a post in the
/// channel marks it unread for everyone. The link opens the request with its Accept button.
pub fn reminder(
    chat: &ChatRow,
    waited: Duration,
    request_link: Option<&str>,
    with_here: bool,
) -> String {
    let here = if with_here { "@here " } else { "" };
    let name = escape_for_mattermost(&visitor_name(chat));
    let waited = duration_text(waited);
    match request_link {
        Some(link) => format!(
            "{here}:hourglass: **{name}** has been waiting {waited} for an operator. [Open the request]({link}) to accept it."
        ),
        None => format!(
            "{here}:hourglass: **{name}** has been waiting {waited} for an operator; accept the request above."
        ),
    }
}

/// A duration as people say it: whole minutes, rounded down ("1 minute", "10 minutes"), or
/// seconds below a minute (only test settings are that short).
pub fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if secs >= 60 {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

/// Splits a post body into pieces of at most `max` characters (Mattermost refuses longer
/// posts and the REST API does not split them), preferring line and word boundaries.
pub fn split_for_post(message: &str, max: usize) -> Vec<String> {
    let max = max.max(100);
    let mut parts = Vec::new();
    let mut rest: &str = message;
    while rest.chars().count() > max {
        let byte_limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..byte_limit];
        let cut = window
            .rfind('\n')
            .or_else(|| window.rfind(' '))
            .filter(|&i| i > byte_limit / 2)
            .unwrap_or(byte_limit);
        // Never end a piece on a lone backslash: it would escape the next piece's first char.
        let cut = if window[..cut].ends_with('\\') && !window[..cut].ends_with("\\\\") {
            cut - 1
        } else {
            cut
        };
        // Never start a piece with an `@` that kept no zero-width space because a letter or
        // digit came before it (`erika@example.com`): alone at the start it would mention.
        let cut = if rest[cut..].starts_with('@')
            && window[..cut].ends_with(|c: char| c.is_ascii_alphanumeric())
        {
            cut - 1
        } else {
            cut
        };
        parts.push(rest[..cut].to_owned());
        rest = rest[cut..].trim_start_matches(['\n', ' ']);
    }
    parts.push(rest.to_owned());
    parts
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_valid_and_fresh() {
        let a = channel_name("3f2a9c1b-aaaa-bbbb");
        let b = channel_name("3f2a9c1b-aaaa-bbbb");
        assert_ne!(a, b);
        assert!(a.len() <= 64);
        assert!(a.starts_with("chat-3f2a9c1b-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        // Whatever the chat id: a real server answers a name over 64 characters with a 500,
        // which would be retried as transient.
        let long = "A".repeat(500);
        for id in ["", "é-ü-ß", "----", long.as_str(), "ABCDEF12-x"] {
            let name = channel_name(id);
            assert!(name.len() <= 64, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
    }

    fn chat(email: Option<&str>, page: Option<&str>) -> ChatRow {
        ChatRow {
            id: "3f2a9c1b-aaaa-bbbb".into(),
            token_hash: String::new(),
            status: "pending".into(),
            visitor_name: Some("Erika *V*".into()),
            visitor_email: email.map(str::to_owned),
            page_url: page.map(str::to_owned),
            referrer: None,
            visitor_ip: None,
            created_at: 0,
            accepted_at: None,
            closed_at: None,
            closed_by: None,
            operator_user_id: None,
            operator_username: None,
            operator_name: None,
            request_post_id: None,
            channel_id: None,
            channel_name: None,
            last_post_at: 0,
            department_id: None,
            visitor_phone: None,
            visitor_seen_at: 0,
        }
    }

    #[test]
    fn default_templates_give_the_familiar_texts() {
        let t = |chat| ChatTemplates {
            chat,
            department: None,
            first_message: "hi",
            public_url: "https://p.example",
        };
        let full = chat(
            Some("erika@example.com"),
            Some("https://shop.example.com/a_b"),
        );
        assert_eq!(
            channel_header(&t(&full)),
            r"**Erika \*V\*** · erika@example.com · page: https://shop.example.com/a\_b · type `!close` to end the chat"
        );
        let bare = chat(None, None);
        assert_eq!(
            channel_header(&t(&bare)),
            r"**Erika \*V\*** · type `!close` to end the chat"
        );
        assert_eq!(channel_display_name(&t(&bare)), "Chat: Erika *V*");
        assert_eq!(first_post(&t(&bare), 4000), None);
    }

    #[test]
    fn relay_message_neutralises_mentions_and_markup() {
        let m = relay_message("@here Erika", "@channel ![x](http://t)");
        assert!(!m.contains("@here"));
        assert!(!m.contains("@channel"));
        assert!(!m.contains("!["));
    }

    fn named_chat(name: &str) -> ChatRow {
        ChatRow {
            visitor_name: Some(name.into()),
            ..chat(None, None)
        }
    }

    #[test]
    fn the_reminder_mentions_here_only_when_asked_and_never_through_the_name() {
        let c = named_chat("@channel [x](http://evil)");
        let link = "https://mm.example.com/support/pl/abc";
        let with = reminder(&c, Duration::from_secs(180), Some(link), true);
        assert!(with.starts_with("@here "), "{with}");
        assert!(with.contains("waiting 3 minutes"), "{with}");
        assert!(with.contains(&format!("]({link})")), "{with}");
        assert!(!with.contains("@channel"), "{with}");
        assert!(!with.contains("[x](http://evil)"), "{with}");
        let without = reminder(&c, Duration::from_secs(180), None, false);
        assert!(!without.contains("@here"), "{without}");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let cases = [
            (60, "1 minute"),
            (600, "10 minutes"),
            (90, "1 minute"),
            (1, "1 second"),
            (2, "2 seconds"),
            (0, "0 seconds"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                duration_text(Duration::from_secs(secs)),
                expected,
                "{secs} s"
            );
        }
    }

    #[test]
    fn no_piece_starts_with_an_at_that_kept_no_zero_width_space() {
        // A long run without spaces, cut exactly before the `@` of an e-mail address.
        for at in 195..205 {
            let text = format!("{}@alice", "a".repeat(at));
            let escaped = escape_for_mattermost(&text);
            for part in split_for_post(&escaped, 200) {
                assert!(!part.starts_with('@'), "{at}: {part:?}");
            }
        }
    }

    #[test]
    fn long_posts_are_split_without_losing_text() {
        let text = "word ".repeat(300);
        let parts = split_for_post(&text, 200);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= 200));
        let joined: String = parts.join(" ");
        assert_eq!(joined.split_whitespace().count(), 300);
    }
}
