//! What a test reads or arranges behind the API: the stored chats, transcripts, audit log,
//! departments and settings, the running bridge, and the use cases a test calls directly.
//! Tests say what they need here instead of reaching into the app's state (`TestApp::state`
//! is private to the helpers), so a change inside the core changes one helper, not fifty tests.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use mattermost_sim::SimUser;
use parley::{
    app::{
        accounts::{self, Role},
        chats, connection, departments,
    },
    config::{MattermostSettings, Settings},
    http::password_work::PasswordWork,
    mattermost::Bridge,
    storage::{
        audit::AuditRow,
        chats::{AcceptOutcome, ChatRow, Operator},
        cleanup::ChannelRemoval,
        departments::DepartmentRow,
        history::BridgeErrorRow,
        managers::ManagerRow,
        messages::MessageRow,
    },
};

use super::{TestApp, VisitorChat};

/// More audit lines than any test writes: "all of them".
const ALL: i64 = 10_000;

/// Reading: the deployment, the bridge, the cluster.
impl TestApp {
    /// The settings the app was started with (its deployment's).
    pub fn settings(&self) -> &Settings {
        &self.state.settings
    }

    /// The app's data directory (files, temporary uploads).
    pub fn data_dir(&self) -> &Path {
        &self.state.settings.data_dir
    }

    /// The running Mattermost bridge, if parley has a connection configured.
    pub fn bridge(&self) -> Option<Arc<Bridge>> {
        self.state.bridge()
    }

    /// Whether this instance leads its cluster (PostgreSQL only).
    pub fn leads(&self) -> bool {
        self.state
            .cluster
            .as_ref()
            .expect("a cluster: several instances need PostgreSQL")
            .is_leader()
    }

    /// Whether the app's database connections are closed (the app was stopped).
    pub async fn database_closed(&self) -> bool {
        self.state.store.ping().await.is_err()
    }

    /// The back office's gate of password checks (its slots, queue and peak).
    pub fn password_checks(&self) -> &PasswordWork {
        &self.state.sign_in.password_work
    }

    /// The settings saved in the back office (key to value).
    pub async fn stored_settings(&self) -> HashMap<String, String> {
        self.state.store.list_settings().await.unwrap()
    }

    /// The channel cleanup's delay as in force: the back office's setting, else the
    /// deployment's.
    pub async fn delete_after_in_force(&self) -> Duration {
        parley::app::settings::delete_after(&self.state.store, &self.state.settings).await
    }
}

/// Reading: chats, their transcripts and files.
impl TestApp {
    /// The chat as stored; fails the test if there is none.
    pub async fn chat(&self, id: &str) -> ChatRow {
        self.state
            .store
            .get_chat(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("chat {id} is stored"))
    }

    /// Whether the chat is no longer stored (deleted).
    pub async fn chat_gone(&self, id: &str) -> bool {
        self.state.store.get_chat(id).await.unwrap().is_none()
    }

    /// How many chats are stored, whatever their status.
    pub async fn chat_count(&self) -> i64 {
        let counts = self.state.store.count_chats_by_status().await.unwrap();
        counts.iter().map(|(_, n)| n).sum()
    }

    /// The chat's stored transcript, internal notes and deleted messages included.
    pub async fn transcript(&self, chat_id: &str) -> Vec<MessageRow> {
        self.state.store.list_transcript(chat_id).await.unwrap()
    }

    /// Whether the uploaded file is no longer stored.
    pub async fn file_gone(&self, file_id: &str) -> bool {
        self.state.store.get_file(file_id).await.unwrap().is_none()
    }

    /// When the visitor of the chat was last seen (Unix ms).
    pub async fn visitor_seen_at(&self, chat_id: &str) -> i64 {
        self.state.store.visitor_seen_at(chat_id).await.unwrap()
    }

    /// The chats whose visitor has not been seen since `unseen_since` (Unix ms), as the
    /// lifecycle job finds them.
    pub async fn chats_left_since(&self, unseen_since: i64) -> Vec<String> {
        self.state
            .store
            .list_chats_left(unseen_since, 100)
            .await
            .unwrap()
    }

    /// Whether a widget of the chat has its live socket open on this instance.
    pub fn has_live_socket(&self, chat_id: &str) -> bool {
        self.state
            .hub
            .connected_chats()
            .iter()
            .any(|c| c == chat_id)
    }

    /// How the chat's channel was removed, once it was.
    pub async fn channel_removal(&self, chat_id: &str) -> Option<ChannelRemoval> {
        self.state.store.channel_removal(chat_id).await.unwrap()
    }

    /// The tasks waiting in the outbox.
    pub async fn outbox_depth(&self) -> i64 {
        self.state.store.outbox_depth().await.unwrap()
    }

    /// Whether the outbox has nothing left to do.
    pub async fn outbox_empty(&self) -> bool {
        self.outbox_depth().await == 0
    }

    /// The Accept button's signature for the chat, as parley puts it on the request post.
    pub fn accept_signature(&self, chat_id: &str) -> String {
        self.state.signer.sign("accept", chat_id)
    }
}

/// Reading: the back office's records.
impl TestApp {
    /// The whole audit log, newest first.
    pub async fn audit_entries(&self) -> Vec<AuditRow> {
        self.state.store.list_audit("", "", ALL, 0).await.unwrap().0
    }

    /// How many lines the audit log holds.
    pub async fn audit_count(&self) -> i64 {
        self.state.store.list_audit("", "", 1, 0).await.unwrap().1
    }

    /// The recorded bridge errors, newest first.
    pub async fn bridge_errors(&self) -> Vec<BridgeErrorRow> {
        self.state.store.list_bridge_errors(100).await.unwrap()
    }

    /// The departments, in their order.
    pub async fn departments(&self) -> Vec<DepartmentRow> {
        self.state.store.list_departments().await.unwrap()
    }

    /// The department, if it exists.
    pub async fn department(&self, id: i64) -> Option<DepartmentRow> {
        self.state.store.get_department(id).await.unwrap()
    }

    /// The id of the manager with this e-mail address; fails the test if there is none.
    pub async fn manager_id(&self, email: &str) -> i64 {
        self.state
            .store
            .get_manager_by_email(email)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("a manager {email}"))
            .id
    }
}

/// Arranging: what the back office, the CLI or Mattermost would have done.
impl TestApp {
    /// Saves a department as the back office would (validated first); returns its id.
    pub async fn add_department(&self, mut row: DepartmentRow) -> i64 {
        departments::validate(&mut row).expect("a valid department");
        self.state.store.insert_department(&row).await.unwrap()
    }

    /// A new first-run link while no manager exists, else `None`.
    pub async fn first_run_link(&self) -> Option<String> {
        accounts::first_run_link(&self.state.store, &self.url)
            .await
            .unwrap()
    }

    /// Creates a manager as an admin's invitation would; returns it and its setup link.
    pub async fn invite(&self, email: &str, role: Role) -> (ManagerRow, String) {
        accounts::invite(&self.state.store, &self.url, email, role)
            .await
            .unwrap()
    }

    /// Applies a Mattermost connection as saving it in the back office does (a new bridge).
    pub fn apply_connection(&self, mm: MattermostSettings) {
        connection::apply(&self.state, Some(mm));
    }

    /// Accepts the chat for `user` (shown as `name`) the way a click on Accept does, without
    /// Mattermost: the use case itself.
    pub async fn accept_as(&self, chat: &VisitorChat, user: &SimUser, name: &str) -> AcceptOutcome {
        let operator = Operator {
            user_id: user.id.clone(),
            username: user.username.clone(),
            name: name.into(),
        };
        chats::accept(&self.state, &chat.id, &operator)
            .await
            .unwrap()
    }

    /// Ends the chat as the lifecycle job does when its visitor has not been seen since
    /// `unseen_since`; returns the ended chat, or `None` if the visitor came back.
    pub async fn end_if_visitor_left(
        &self,
        chat: &VisitorChat,
        unseen_since: i64,
    ) -> Option<ChatRow> {
        chats::close_visitor_left(&self.state, &chat.id, unseen_since)
            .await
            .unwrap()
    }
}
