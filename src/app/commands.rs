//! The operators' commands, typed as a post starting with `!` in a chat's channel: ONE table,
//! [`COMMANDS`] (name, argument, help text, handler). `!help` is generated from it and [`run`]
//! finds a command in it; adding a command is adding a line. Answers are built by
//! `mattermost::answers`, which makes every piece of echoed text inert, and are delivered
//! through the outbox.

use futures_util::future::BoxFuture;

use crate::{
    app::App,
    app::Error,
    app::chats,
    domain::ChatStatus,
    mattermost::{Bridge, MmError, answers, events::Post, wire::User},
    storage::{
        chats::{ChatRow, Operator, Transfer},
        messages::NewNote,
        now_ms,
    },
};

/// One `!` command.
pub struct Command {
    /// What follows the `!` (matched without regard to case).
    pub name: &'static str,
    /// What it takes, as shown in `!help` (`<text>`, `@user`); empty when nothing.
    pub argument: &'static str,
    /// What it does, as shown in `!help`.
    pub help: &'static str,
    /// Only while the chat is active; once it ended, the answer says so and nothing changes.
    pub while_active: bool,
    handler: Handler,
}

/// Carries out a command; returns the answer to post in the channel, if any.
type Handler = for<'a> fn(&'a Call<'a>) -> BoxFuture<'a, Result<Option<String>, Error>>;

/// What a handler is given: the command's post, its author and the text after the name.
pub struct Call<'a> {
    state: &'a App,
    bridge: &'a Bridge,
    chat: &'a ChatRow,
    post: &'a Post,
    user: &'a User,
    argument: &'a str,
}

/// Every command, in the order `!help` lists them.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "close",
        argument: "",
        help: "end the chat",
        while_active: true,
        handler: |call| Box::pin(close(call)),
    },
    Command {
        name: "note",
        argument: "<text>",
        help: "an internal note, kept in the transcript, never shown to the visitor",
        while_active: false,
        handler: |call| Box::pin(note(call)),
    },
    Command {
        name: "transfer",
        argument: "@user",
        help: "hand the chat to another operator (added to this channel; the visitor is told)",
        while_active: true,
        handler: |call| Box::pin(transfer(call)),
    },
    Command {
        name: "invite",
        argument: "@user",
        help: "add a colleague to this channel (the visitor is not told)",
        while_active: true,
        handler: |call| Box::pin(invite(call)),
    },
    Command {
        name: "info",
        argument: "",
        help: "the visitor's details and earlier chats",
        while_active: false,
        handler: |call| Box::pin(info(call)),
    },
    Command {
        name: "help",
        argument: "",
        help: "this list",
        while_active: false,
        handler: |_| Box::pin(async { Ok(Some(help())) }),
    },
];

impl Command {
    /// How it is typed: `!note <text>`.
    pub fn usage(&self) -> String {
        match self.argument {
            "" => format!("!{}", self.name),
            argument => format!("!{} {argument}", self.name),
        }
    }
}

/// The command named `word` (any case).
pub fn find(word: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name.eq_ignore_ascii_case(word))
}

/// `!help`: every command of the table with its help text.
pub fn help() -> String {
    let lines: Vec<(String, &str)> = COMMANDS.iter().map(|c| (c.usage(), c.help)).collect();
    answers::help(&lines)
}

/// Carries out an operator command (`command`: the text after `!`) and answers in the channel.
/// The post is already claimed, so a command runs once however often it is seen.
#[tracing::instrument(skip_all, fields(chat_id = %chat.id))]
pub async fn run(
    state: &App,
    bridge: &Bridge,
    chat: &ChatRow,
    command: &str,
    post: &Post,
    user: &User,
) -> Result<(), Error> {
    let mut parts = command.trim_start().splitn(2, char::is_whitespace);
    let word = parts.next().unwrap_or_default();
    let argument = parts.next().unwrap_or_default().trim();
    let answer = match find(word) {
        None => Some(answers::unknown_command(word)),
        Some(command) if command.while_active && chat.status() != ChatStatus::Active => {
            Some(answers::chat_has_ended())
        }
        Some(command) => {
            let call = Call {
                state,
                bridge,
                chat,
                post,
                user,
                argument,
            };
            (command.handler)(&call).await?
        }
    };
    if let Some(answer) = answer {
        state.store.enqueue_reply(&chat.id, &answer).await?;
        state.wake_outbox();
    }
    Ok(())
}

/// `!close`: ends the chat (the closing notice is the answer).
async fn close(call: &Call<'_>) -> Result<Option<String>, Error> {
    let user = call.user;
    chats::close_by_operator(call.state, call.chat, &user.display_name(), &user.username).await?;
    Ok(None)
}

/// `!note <text>`: kept in the transcript, never sent to the visitor (no live event, no
/// outbox task; the visitor API leaves notes out).
async fn note(call: &Call<'_>) -> Result<Option<String>, Error> {
    let text = call.argument;
    if text.is_empty() {
        return Ok(Some(answers::note_needs_text()));
    }
    let note = NewNote {
        author: &call.user.display_name(),
        body: text,
        post_id: &call.post.id,
        created_at: if call.post.create_at > 0 {
            call.post.create_at
        } else {
            now_ms()
        },
    };
    call.state.store.insert_note(&call.chat.id, &note).await?;
    Ok(Some(answers::note_saved()))
}

/// `!transfer @user`: adds them to the channel, makes them the chat's operator and tells the
/// visitor. Returns the answer when nothing changed (the handover queues its own).
async fn transfer(call: &Call<'_>) -> Result<Option<String>, Error> {
    let (state, bridge, chat) = (call.state, call.bridge, call.chat);
    let (target, channel_id) = match colleague(call, "transfer").await {
        Ok(found) => found,
        Err(answer) => return Ok(Some(answer)),
    };
    if let Err(answer) = add_to_channel(bridge, channel_id, &target).await {
        return Ok(Some(answer));
    }
    let to = Operator {
        user_id: target.id.clone(),
        username: target.username.clone(),
        name: target.display_name(),
    };
    let system_text = format!("You are now talking to {}", to.name);
    let reply = answers::transferred(chat.operator_username.as_deref(), &to.username, &to.name);
    let handover = Transfer {
        from_user_id: chat.operator_user_id.as_deref().unwrap_or_default(),
        to: &to,
        system_text: &system_text,
        reply: &reply,
    };
    match state
        .store
        .transfer_chat(&chat.id, &handover, now_ms())
        .await?
    {
        Some((chat, notice)) => {
            // The reply to the channel was stored with the handover.
            state.chat_changed(&chat, &notice);
            Ok(None)
        }
        // Ended, or handed to someone else, while this command ran.
        None => Ok(Some(answers::chat_has_changed())),
    }
}

/// `!invite @user`: adds a colleague to the channel. The visitor is not told (they see the
/// colleague's name once they write).
async fn invite(call: &Call<'_>) -> Result<Option<String>, Error> {
    let (target, channel_id) = match colleague(call, "invite").await {
        Ok(found) => found,
        Err(answer) => return Ok(Some(answer)),
    };
    Ok(Some(
        match add_to_channel(call.bridge, channel_id, &target).await {
            Ok(()) => answers::invited(&target.username, &target.display_name()),
            Err(answer) => answer,
        },
    ))
}

/// The colleague named by `!transfer` or `!invite` (`command`) and the chat's channel, or the
/// answer that says why not: no such operator, already the chat's operator, or no channel yet.
async fn colleague<'c>(call: &'c Call<'_>, command: &str) -> Result<(User, &'c str), String> {
    let target = operator_named(call.bridge, command, call.argument).await?;
    if call.chat.operator_user_id.as_deref() == Some(target.id.as_str()) {
        return Err(answers::already_operator(&target.username));
    }
    let channel_id = call
        .chat
        .channel_id
        .as_deref()
        .ok_or_else(answers::try_again)?;
    Ok((target, channel_id))
}

/// `!info`: the visitor's details and their earlier chats by e-mail.
async fn info(call: &Call<'_>) -> Result<Option<String>, Error> {
    let chat = call.chat;
    let (total, earlier) = match &chat.visitor_email {
        Some(email) => {
            call.state
                .store
                .list_chats_by_email(email, &chat.id, EARLIER_CHATS_SHOWN)
                .await?
        }
        None => (0, Vec::new()),
    };
    Ok(Some(answers::info(chat, total, &earlier, now_ms())))
}

/// How many earlier chats `!info` lists by date.
const EARLIER_CHATS_SHOWN: i64 = 10;

/// The one `@username` after a command, as a user who can take chats; otherwise the answer
/// that says why not.
async fn operator_named(bridge: &Bridge, command: &str, argument: &str) -> Result<User, String> {
    let mut words = argument.split_whitespace();
    let (Some(word), None) = (words.next(), words.next()) else {
        return Err(answers::needs_username(command));
    };
    let username = word.strip_prefix('@').unwrap_or(word).to_ascii_lowercase();
    if !is_username(&username) {
        return Err(answers::not_a_username(word));
    }
    match bridge.user_by_username(&username).await {
        Ok(user) if user.is_bot => Err(answers::is_a_bot(&user.username)),
        Ok(user) if user.delete_at > 0 => Err(answers::deactivated(&user.username)),
        Ok(user) => Ok(user),
        Err(e) if e.status() == Some(404) => Err(answers::no_such_user(&username)),
        Err(e) if e.is_transient() => Err(answers::try_again()),
        Err(e) => Err(answers::could_not_add(&username, &refusal(&e))),
    }
}

/// Mattermost usernames: lowercase letters, digits, `.`, `-` and `_` (at most 64).
fn is_username(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
}

/// Adds a user to a chat channel (idempotent on the server), or says why not.
async fn add_to_channel(bridge: &Bridge, channel_id: &str, user: &User) -> Result<(), String> {
    match bridge.add_channel_member(channel_id, &user.id).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_team_member() => Err(answers::not_in_team(&user.username)),
        Err(e) if e.is_transient() => Err(answers::try_again()),
        Err(e) => Err(answers::could_not_add(&user.username, &refusal(&e))),
    }
}

/// Mattermost's own words for a refusal.
fn refusal(e: &MmError) -> String {
    match e {
        MmError::Api { message, .. } if !message.is_empty() => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn help_is_the_table_in_order() {
        // The text operators have seen since `!help` was written by hand.
        assert_eq!(
            help(),
            ":information_source: **parley commands** (typed here, never shown to the visitor):\n\
             `!close`: end the chat\n\
             `!note <text>`: an internal note, kept in the transcript, never shown to the visitor\n\
             `!transfer @user`: hand the chat to another operator (added to this channel; the visitor is told)\n\
             `!invite @user`: add a colleague to this channel (the visitor is not told)\n\
             `!info`: the visitor's details and earlier chats\n\
             `!help`: this list"
        );
    }

    #[test]
    fn every_command_is_found_by_its_name_in_any_case_and_listed_once() {
        let mut names = HashSet::new();
        for command in COMMANDS {
            assert!(names.insert(command.name), "{} twice", command.name);
            assert!(help().contains(&format!("`{}`", command.usage())));
            let found = find(&command.name.to_ascii_uppercase()).map(|c| c.name);
            assert_eq!(found, Some(command.name));
        }
        assert!(find("hlep").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn only_changes_to_the_chat_need_it_active() {
        let active: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.while_active)
            .map(|c| c.name)
            .collect();
        assert_eq!(active, ["close", "transfer", "invite"]);
    }

    #[test]
    fn usernames_are_what_mattermost_allows() {
        for ok in ["alice", "bob.smith", "a-b_c", "x1"] {
            assert!(is_username(ok), "{ok}");
        }
        for bad in ["", "Alice", "@alice", "a b", "al!ce", &"a".repeat(65)] {
            assert!(!is_username(bad), "{bad}");
        }
    }
}
