//! What parley answers to operator commands in a chat's channel (`!help`, `!info`, …). Like
//! `format`, this is where post text is built: every piece of text a user controls (the
//! visitor's details, what an operator typed after a command, display names) passes through
//! `escape_for_mattermost`, so it can neither mention anyone nor bring in Markdown. Only
//! usernames Mattermost itself returned are written as real mentions.

use crate::{
    domain::markdown::escape_for_mattermost,
    storage::chats::{ChatRow, EarlierChat},
};

use super::format;

/// How answers start, so operators tell them from messages.
const MARK: &str = ":information_source:";

/// `!help`: the commands as `(usage, what it does)`, from the command table
/// (`operator_commands`). Both are parley's own text, written as they are.
pub fn help(commands: &[(String, &str)]) -> String {
    let mut text = format!("{MARK} **parley commands** (typed here, never shown to the visitor):");
    for (usage, what) in commands {
        text.push_str(&format!("\n`{usage}`: {what}"));
    }
    text
}

/// An unknown `!word`.
pub fn unknown_command(word: &str) -> String {
    format!(
        "{MARK} Unknown command **!{}**; the visitor did not see it. Type `!help` for the list of commands.",
        escape_for_mattermost(word)
    )
}

/// `!note` without text.
pub fn note_needs_text() -> String {
    format!("{MARK} Write the note after the command, e.g. `!note called back by phone`.")
}

/// A note was kept.
pub fn note_saved() -> String {
    format!("{MARK} Note kept in the transcript; the visitor does not see it.")
}

/// `!transfer`/`!invite` without exactly one `@username`.
pub fn needs_username(command: &str) -> String {
    format!("{MARK} Name one user, e.g. `!{command} @alice`.")
}

/// The argument is not something a username can be.
pub fn not_a_username(argument: &str) -> String {
    format!(
        "{MARK} {} is not a Mattermost username.",
        escape_for_mattermost(argument)
    )
}

/// No user has this (syntactically valid) username.
pub fn no_such_user(username: &str) -> String {
    format!(
        "{MARK} There is no Mattermost user {}.",
        quiet_mention(username)
    )
}

/// Bots cannot take chats or be invited.
pub fn is_a_bot(username: &str) -> String {
    format!(
        "{MARK} {} is a bot, not an operator.",
        quiet_mention(username)
    )
}

/// The account is deactivated.
pub fn deactivated(username: &str) -> String {
    format!(
        "{MARK} {}'s account is deactivated.",
        quiet_mention(username)
    )
}

/// `!transfer` to the operator who has the chat.
pub fn already_operator(username: &str) -> String {
    format!("{MARK} {} already has this chat.", quiet_mention(username))
}

/// The user is not in the team, so Mattermost will not add them to the channel.
pub fn not_in_team(username: &str) -> String {
    format!(
        "{MARK} {} is not a member of this team, so they cannot join this channel. Add them to the team first.",
        quiet_mention(username)
    )
}

/// Mattermost refused to add the user for another reason (its message, made inert).
pub fn could_not_add(username: &str, reason: &str) -> String {
    format!(
        "{MARK} {} could not be added to this channel: {}",
        quiet_mention(username),
        escape_for_mattermost(reason)
    )
}

/// Mattermost did not answer; nothing changed.
pub fn try_again() -> String {
    format!("{MARK} Mattermost did not answer in time; nothing changed. Please try again.")
}

/// `!transfer`/`!invite`/`!close` in a chat that has ended.
pub fn chat_has_ended() -> String {
    format!("{MARK} This chat has ended; the visitor will not see messages written here.")
}

/// The chat ended or changed hands while a `!transfer` ran; nothing was done.
pub fn chat_has_changed() -> String {
    format!("{MARK} The chat ended or was handed over meanwhile; nothing was done.")
}

/// The chat changed hands; the new operator is mentioned so they notice.
pub fn transferred(from_username: Option<&str>, to_username: &str, to_name: &str) -> String {
    let from = from_username.map_or_else(|| "the previous operator".to_owned(), quiet_mention);
    format!(
        "{MARK} @{to_username} ({}) now has this chat, handed over by {from}. The visitor was told.",
        escape_for_mattermost(to_name)
    )
}

/// A colleague was added to the channel.
pub fn invited(username: &str, name: &str) -> String {
    format!(
        "{MARK} @{username} ({}) was added to this channel. The visitor was not told; they see what @{username} writes here.",
        escape_for_mattermost(name)
    )
}

/// `!info`: who the visitor is, where they came from, how long they waited, and their
/// earlier chats (by e-mail).
pub fn info(chat: &ChatRow, earlier_total: i64, earlier: &[EarlierChat], now: i64) -> String {
    let value = |v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map_or_else(|| "–".to_owned(), escape_for_mattermost)
    };
    let mut lines = vec![
        format!("{MARK} **The visitor**"),
        format!(
            "**Name:** {}",
            escape_for_mattermost(&format::visitor_name(chat))
        ),
        format!("**E-mail:** {}", value(&chat.visitor_email)),
        format!("**Page:** {}", value(&chat.page_url)),
        format!("**Referrer:** {}", value(&chat.referrer)),
        // An address parley parsed itself; escaping would only show `127\.0.0.1`.
        format!(
            "**IP address:** {}",
            chat.visitor_ip.as_deref().unwrap_or("–")
        ),
        format!("**Started:** {}", when(chat.created_at)),
    ];
    lines.push(match chat.accepted_at {
        Some(at) => format!(
            "**Waited:** {} before it was accepted",
            duration(at - chat.created_at)
        ),
        None => format!("**Waiting:** {}", duration(now - chat.created_at)),
    });
    if let Some(username) = &chat.operator_username {
        lines.push(format!("**Operator:** {}", quiet_mention(username)));
    }
    lines.push(match &chat.visitor_email {
        None => "**Earlier chats:** unknown (no e-mail address given)".to_owned(),
        Some(_) if earlier_total == 0 => "**Earlier chats with this e-mail:** none".to_owned(),
        Some(_) => {
            let mut list: Vec<String> = earlier
                .iter()
                .map(|c| {
                    let by = c
                        .operator_username
                        .as_deref()
                        .map(|u| format!(", {}", quiet_mention(u)))
                        .unwrap_or_default();
                    format!("{} ({}{by})", when(c.created_at), c.status)
                })
                .collect();
            let shown = list.len() as i64;
            if earlier_total > shown {
                list.push(format!("and {} older", earlier_total - shown));
            }
            format!(
                "**Earlier chats with this e-mail:** {earlier_total}: {}",
                list.join("; ")
            )
        }
    });
    lines.join("\n")
}

/// `@username` that does not notify anyone (for names echoed from input or only mentioned).
fn quiet_mention(username: &str) -> String {
    escape_for_mattermost(&format!("@{username}"))
}

/// A stored time as `2024-05-01 14:03 UTC`.
fn when(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A duration in milliseconds as `45 s`, `3 min 12 s` or `2 h 5 min`.
fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12_400), "12 s");
        assert_eq!(duration(192_000), "3 min 12 s");
        assert_eq!(duration(7_500_000), "2 h 5 min");
        assert_eq!(duration(-5), "0 s");
    }

    #[test]
    fn echoed_input_cannot_mention_or_format() {
        for text in [
            unknown_command("@here"),
            not_a_username("[x](https://evil.example)"),
            no_such_user("channel"),
        ] {
            assert!(!text.contains("@here"), "{text}");
            assert!(!text.contains("@channel"), "{text}");
            assert!(!text.contains("[x]("), "{text}");
        }
    }
}
