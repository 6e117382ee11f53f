//! The few extra calls `parley doctor` makes to check a server's setup, kept apart from the
//! calls the bridge needs.

use reqwest::Method;
use serde::Deserialize;

use super::client::{Client, MmError, seg};

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
    pub async fn ping(&self) -> Result<Ping, MmError> {
        self.send(self.request(Method::GET, "/system/ping")).await
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
}
