//! The REST calls the rest of parley makes through the [`Bridge`]: the client itself is private
//! to the adapter. Most pass a call on under the client's own name; those the application reads
//! events from answer in [`events`] types, not wire types.

use super::{
    Bridge, BridgeEvent, MmError, events,
    wire::{
        Channel, ChannelMember, CreateChannel, FileInfo, NewPost, Post, PostList, PostPatch,
        Status, User,
    },
};

impl Bridge {
    /// `POST /posts`.
    pub async fn create_post(&self, post: &NewPost<'_>) -> Result<Post, MmError> {
        self.client.create_post(post).await
    }

    /// `PUT /posts/{id}/patch`.
    pub async fn patch_post(&self, id: &str, patch: &PostPatch<'_>) -> Result<Post, MmError> {
        self.client.patch_post(id, patch).await
    }

    /// `DELETE /posts/{id}`.
    pub async fn delete_post(&self, id: &str) -> Result<(), MmError> {
        self.client.delete_post(id).await
    }

    /// `GET /channels/{id}/posts?since=`: posts created or changed after `since` (ms), as the
    /// server lists them (the outbox looks for its own posts' keys among them).
    pub async fn posts_since(&self, channel_id: &str, since: i64) -> Result<PostList, MmError> {
        self.client.posts_since(channel_id, since).await
    }

    /// What happened in a channel after `since` (ms) as events, oldest post first: what a
    /// catch-up applies after a connection the server did not resume.
    pub async fn missed_posts(
        &self,
        channel_id: &str,
        since: i64,
    ) -> Result<Vec<BridgeEvent>, MmError> {
        let list = self.client.posts_since(channel_id, since).await?;
        Ok(super::translate::missed_posts(list))
    }

    /// `GET /posts/{id}/reactions`: every reaction on a post.
    pub async fn reactions(&self, post_id: &str) -> Result<Vec<events::Reaction>, MmError> {
        let list = self.client.reactions(post_id).await?;
        Ok(list.into_iter().map(super::translate::reaction).collect())
    }

    /// `POST /channels`.
    pub async fn create_channel(&self, body: &CreateChannel<'_>) -> Result<Channel, MmError> {
        self.client.create_channel(body).await
    }

    /// `GET /teams/{team_id}/channels/name/{name}?include_deleted=`.
    pub async fn channel_by_name(
        &self,
        team_id: &str,
        name: &str,
        include_deleted: bool,
    ) -> Result<Channel, MmError> {
        self.client
            .channel_by_name(team_id, name, include_deleted)
            .await
    }

    /// `POST /channels/{id}/members` (idempotent on the server).
    pub async fn add_channel_member(&self, channel_id: &str, user_id: &str) -> Result<(), MmError> {
        self.client.add_channel_member(channel_id, user_id).await
    }

    /// `GET /channels/{id}/members?page=&per_page=` (at most 200 per page).
    pub async fn channel_members(
        &self,
        channel_id: &str,
        page: usize,
        per_page: usize,
    ) -> Result<Vec<ChannelMember>, MmError> {
        self.client
            .channel_members(channel_id, page, per_page)
            .await
    }

    /// Whether the bot can use `channel` in `team` (see [`super::Client::check_in_mattermost`]).
    pub async fn check_in_mattermost(&self, team: &str, channel: &str) -> Result<(), MmError> {
        self.client.check_in_mattermost(team, channel).await
    }

    /// `POST /users/ids`: the users with these ids (unknown ids are left out).
    pub async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>, MmError> {
        self.client.users_by_ids(ids).await
    }

    /// `POST /users/status/ids`: statuses of these users.
    pub async fn statuses_by_ids(&self, ids: &[String]) -> Result<Vec<Status>, MmError> {
        self.client.statuses_by_ids(ids).await
    }

    /// `POST /files`: uploads one file into a channel, streamed from disk.
    pub async fn upload_file(
        &self,
        channel_id: &str,
        name: &str,
        file: tokio::fs::File,
        size: u64,
    ) -> Result<FileInfo, MmError> {
        self.client.upload_file(channel_id, name, file, size).await
    }

    /// `GET /files/{id}/info`.
    pub async fn file_info(&self, id: &str) -> Result<FileInfo, MmError> {
        self.client.file_info(id).await
    }

    /// `GET /files/{id}`: the bytes, as a response to stream from.
    pub async fn download_file(&self, id: &str) -> Result<reqwest::Response, MmError> {
        self.client.download_file(id).await
    }
}
