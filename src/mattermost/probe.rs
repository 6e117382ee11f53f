//! The few extra calls `parley doctor`, the back office's connection and department forms make
//! to check a server's setup, kept apart from the calls the bridge needs.

use reqwest::Method;
use serde::Deserialize;

use super::{
    client::{Client, MmError, seg},
    wire::{Channel, Team},
};

/// The token's owner, with what the doctor reports about it.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub roles: String,
}

/// Answer of `GET /system/ping`.
#[derive(Debug, Clone, Deserialize)]
pub struct Ping {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub version: Option<String>,
}

impl Client {
    /// `GET /system/ping`: answers `{"status":"OK"}` on any Mattermost server, signed in or not.
    /// Sent without the token, so a server that does not answer it like Mattermost (a typo, a
    /// web page) never sees the token.
    pub async fn ping(&self) -> Result<Ping, MmError> {
        self.send(self.anonymous_request(Method::GET, "/system/ping"))
            .await
    }

    /// `GET /users/me` with the roles.
    pub async fn me_with_roles(&self) -> Result<Me, MmError> {
        self.send(self.request(Method::GET, "/users/me")).await
    }

    /// `GET /teams/{team_id}/members/{user_id}`: 404 `app.team.get_member.missing.app_error`
    /// when the user is not on the team.
    pub async fn team_member(&self, team_id: &str, user_id: &str) -> Result<(), MmError> {
        let path = format!("/teams/{}/members/{}", seg(team_id), seg(user_id));
        let _: serde_json::Value = self.send(self.request(Method::GET, &path)).await?;
        Ok(())
    }

    /// `DELETE /posts/{id}` (the request post of a chat deleted for a privacy request).
    pub async fn delete_post(&self, id: &str) -> Result<(), MmError> {
        let path = format!("/posts/{}", seg(id));
        let _: serde_json::Value = self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    /// `GET /users/me/teams`: the teams the token's owner is a member of.
    pub async fn my_teams(&self) -> Result<Vec<Team>, MmError> {
        let teams: Option<Vec<Team>> = self
            .send(self.request(Method::GET, "/users/me/teams"))
            .await?;
        Ok(teams.unwrap_or_default())
    }

    /// `POST /teams/{team_id}/channels/search` with `{term}`: the team's channels whose name or
    /// display name contains the term (public ones; mattermost-api.md §2). The spec says 201,
    /// the server writes 200: any success is taken.
    pub async fn search_channels(
        &self,
        team_id: &str,
        term: &str,
    ) -> Result<Vec<Channel>, MmError> {
        let path = format!("/teams/{}/channels/search", seg(team_id));
        let request = self
            .request(Method::POST, &path)
            .json(&serde_json::json!({ "term": term }));
        let channels: Option<Vec<Channel>> = self.send(request).await?;
        Ok(channels.unwrap_or_default())
    }

    /// Whether the bot can use `channel` in `team`: the team and channel exist and the bot is a
    /// member of both (a private channel the bot is not in looks missing). Asked when a
    /// department is saved (back office, `parley department`).
    pub async fn check_in_mattermost(&self, team: &str, channel: &str) -> Result<(), MmError> {
        let not_found = |what: String| MmError::Api {
            status: 404,
            id: String::new(),
            message: what,
        };
        let t = self
            .team_by_name(team)
            .await
            .map_err(|e| match e.status() {
                Some(403 | 404) => not_found(format!(
                    "team `{team}` not found in Mattermost, or the bot is not a member of it"
                )),
                _ => e,
            })?;
        let c = self
            .channel_by_name(&t.id, channel, false)
            .await
            .map_err(|e| match e.status() {
                Some(403 | 404) => not_found(format!(
                    "channel `{channel}` not found in team `{team}`, or the bot cannot see it"
                )),
                _ => e,
            })?;
        self.channel_member(&c.id, "me")
            .await
            .map_err(|e| match e.status() {
                Some(403 | 404) => not_found(format!(
                    "the bot is not a member of channel `{channel}` (invite it with /invite)"
                )),
                _ => e,
            })?;
        Ok(())
    }
}
