//! `SimConfig`: the handful of server settings parley's behaviour depends on.

/// Server settings, named after the Mattermost settings they mirror.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `ServiceSettings.EnableAPIChannelDeletion` (default false): gates `?permanent=true`.
    pub enable_api_channel_deletion: bool,
    /// Maximum post message length in runes (`MaxPostSize`, 16383 on modern schemas).
    pub max_post_size: usize,
    /// `FileSettings.MaxFileSize` in bytes (default 100 MiB).
    pub max_file_size: u64,
    /// `ServiceSettings.AllowedUntrustedInternalConnections`: space/comma separated
    /// hosts, IPs or CIDRs that action callbacks may reach although they are internal.
    pub allowed_untrusted_internal_connections: String,
    /// Reported as `Version` in the client config and in the WebSocket `hello`.
    pub server_version: String,
    /// `ServiceSettings.EnableUserStatuses` (default true): when off, `/users/status/ids`
    /// answers an empty list.
    pub enable_user_statuses: bool,
    /// `FileSettings.EnableFileAttachments` (default true): uploads answer 501 when false.
    pub enable_file_attachments: bool,
    /// Whether the permission scheme gives `team_user` the `create_private_channel`
    /// permission (the default scheme does; a custom scheme may take it away).
    pub team_user_can_create_private_channels: bool,
    /// How often the server pings each WebSocket (`pingInterval` in web_conn.go: 60 s).
    pub websocket_ping_interval: std::time::Duration,
    /// A WebSocket that has not answered with a pong for this long is dropped
    /// (`pongWaitTime`: 100 s).
    pub websocket_pong_wait: std::time::Duration,
    /// A user whose last WebSocket closed goes `offline` this much later (2-3 s seen on a
    /// real server), unless their status was set manually.
    pub offline_after_last_socket: std::time::Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            enable_api_channel_deletion: false,
            max_post_size: 16383,
            max_file_size: 104_857_600,
            allowed_untrusted_internal_connections: String::new(),
            server_version: "10.5.0".to_owned(),
            enable_user_statuses: true,
            enable_file_attachments: true,
            team_user_can_create_private_channels: true,
            websocket_ping_interval: std::time::Duration::from_secs(60),
            websocket_pong_wait: std::time::Duration::from_secs(100),
            offline_after_last_socket: std::time::Duration::from_secs(2),
        }
    }
}
