//! Deployment settings: compiled defaults, then an optional `parley.toml`, then `PARLEY_*`
//! environment variables; validated once at start. Owns nothing else.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// Errors found while loading or validating the settings; each says which key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the settings: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// The raw settings as written by the admin (file or environment), before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSettings {
    listen: String,
    public_url: Option<String>,
    database_url: Option<String>,
    data_dir: PathBuf,
    mattermost_url: Option<String>,
    #[serde(skip_serializing)]
    mattermost_token: Option<SecretString>,
    mattermost_team: Option<String>,
    mattermost_channel: Option<String>,
    allowed_origins: String,
    delete_after_hours: u64,
    audit_retention_days: u64,
    visitor_timeout_minutes: u64,
    remind_after_minutes: u64,
    remind_with_here: bool,
    max_message_chars: usize,
    max_field_chars: usize,
    rate_limit_chats_per_minute: u32,
    rate_limit_messages_per_minute: u32,
    max_file_mb: u64,
    max_files_per_message: usize,
    max_chat_files_mb: u64,
    file_types: String,
    trust_proxy_headers: bool,
    trusted_proxy_hops: Option<usize>,
    trusted_proxies: String,
    max_sockets_per_chat: usize,
    max_sockets_per_address: usize,
    max_pending_sockets: usize,
    max_stored_files_mb: u64,
    max_uploads_mb_per_day: u64,
    min_free_disk_mb: u64,
    log_format: String,
    presence_away_counts: bool,
    presence_dnd_counts: bool,
    presence_poll_seconds: u64,
    prechat_phone: bool,
    #[serde(skip_serializing)]
    metrics_token: Option<SecretString>,
    config: Option<PathBuf>,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            database_url: None,
            data_dir: PathBuf::from("./data"),
            mattermost_url: None,
            mattermost_token: None,
            mattermost_team: None,
            mattermost_channel: None,
            allowed_origins: String::new(),
            delete_after_hours: 24,
            audit_retention_days: 365,
            visitor_timeout_minutes: 10,
            remind_after_minutes: 3,
            remind_with_here: true,
            max_message_chars: 4000,
            max_field_chars: 200,
            rate_limit_chats_per_minute: 5,
            rate_limit_messages_per_minute: 30,
            max_file_mb: 10,
            max_files_per_message: 5,
            max_chat_files_mb: 50,
            file_types: DEFAULT_FILE_TYPES.join(","),
            trust_proxy_headers: false,
            trusted_proxy_hops: None,
            trusted_proxies: String::new(),
            max_sockets_per_chat: 8,
            max_sockets_per_address: 64,
            max_pending_sockets: 256,
            max_stored_files_mb: 10 * 1024,
            max_uploads_mb_per_day: 2 * 1024,
            min_free_disk_mb: 1024,
            log_format: "pretty".into(),
            presence_away_counts: true,
            presence_dnd_counts: false,
            presence_poll_seconds: 30,
            prechat_phone: false,
            metrics_token: None,
            config: None,
        }
    }
}

/// Where parley's database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(PostgresUrl),
}

impl DatabaseUrl {
    /// The database as a person can find it (a SQLite file as an absolute path, a PostgreSQL
    /// URL without its password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            Self::Postgres(url) => url.redacted(),
        }
    }
}

impl DatabaseUrl {
    /// Reads `PARLEY_DATABASE_URL`: `sqlite://path` or `postgres://…`.
    pub fn parse(u: &str) -> Result<Self, ConfigError> {
        if let Some(rest) = u.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(invalid(
                    "PARLEY_DATABASE_URL",
                    "a SQLite URL needs a file path, e.g. sqlite://./data/parley.db",
                ));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if u.starts_with("postgres://") || u.starts_with("postgresql://") {
            if Url::parse(u).is_err() {
                return Err(invalid(
                    "PARLEY_DATABASE_URL",
                    "is not a valid URL, e.g. postgres://parley:secret@db.example.com/parley",
                ));
            }
            Ok(Self::Postgres(PostgresUrl(u.to_owned())))
        } else {
            Err(invalid(
                "PARLEY_DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ))
        }
    }
}

/// A `postgres://` URL. It may carry a password, so `Debug` shows it without one.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL as given, password included: for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PostgresUrl {
    /// The URL with any password replaced, for messages and logs.
    pub fn redacted(&self) -> String {
        match Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("redacted"));
                }
                if url.query().is_some_and(|q| q.contains("password")) {
                    url.set_query(Some("password=redacted"));
                }
                url.to_string()
            }
            Err(_) => "postgres://…".into(),
        }
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&self.redacted())
            .finish()
    }
}

/// How parley reaches Mattermost. Present only when every part is configured.
#[derive(Debug, Clone)]
pub struct MattermostSettings {
    /// Base URL of the server, without a trailing slash.
    pub url: Url,
    /// The bot's access token; `Debug` prints it redacted.
    pub token: SecretString,
    /// Team name (the URL slug) where chat channels are created.
    pub team: String,
    /// Name of the requests channel in that team.
    pub channel: String,
}

impl MattermostSettings {
    /// The configured team and requests channel: the default department's route.
    pub fn default_route(&self) -> crate::domain::department::Route {
        crate::domain::department::Route {
            team: self.team.clone(),
            channel: self.channel.clone(),
        }
    }
}

/// Which web pages may embed the widget, besides parley's own (`PARLEY_PUBLIC_URL`'s origin,
/// always allowed: the demo page and the back office's preview).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: every website (only when set explicitly).
    Any,
    /// These origins; empty (the default): parley's own only.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Whether a page of `origin` (as browsers send it, e.g. `https://shop.example.com`) is
    /// listed (parley's own origin aside: see [`Settings::origin_allowed`]).
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|allowed| allowed == origin),
        }
    }

    /// How the setting reads, for `doctor` and the back office.
    pub fn describe(&self, own: &str) -> String {
        match self {
            Self::Any => "* (every website)".to_owned(),
            Self::List(list) if list.is_empty() => format!("only parley's own ({own})"),
            Self::List(list) => format!("{} and parley's own ({own})", list.join(", ")),
        }
    }
}

/// Log output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Limits that protect Mattermost and the database from abuse.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_chars: usize,
    pub max_field_chars: usize,
    pub chats_per_minute_per_ip: u32,
    pub messages_per_minute: u32,
}

/// What visitors may upload. Types are decided from a file's content.
#[derive(Debug, Clone)]
pub struct FileLimits {
    pub max_bytes: u64,
    pub max_per_message: usize,
    /// Everything a visitor may upload into one chat, together.
    pub max_chat_bytes: u64,
    /// All files kept (every chat, visitors' and operators'), together; 0: no limit.
    pub max_stored_bytes: u64,
    /// What visitors may upload in any 24 hours, all chats together; 0: no limit.
    pub max_daily_bytes: u64,
    /// Uploads are refused while the data directory's disk has less free space than this.
    pub min_free_disk_bytes: u64,
    /// Allowed content types (`image/png`, …).
    pub types: Vec<String>,
}

/// Images, PDFs, plain text and office documents: what visitors send support, and nothing a
/// browser would run (no HTML, SVG or scripts).
pub const DEFAULT_FILE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
];

/// Which proxies in front of parley are trusted to say who the client is.
///
/// With `enabled`, the client address comes from `X-Forwarded-For`, read from the right: each
/// trusted proxy appends the address it saw, so only the right-hand entries are theirs and
/// anything to the left may be the client's own invention. Without `networks`, the client is
/// the `hops`-th entry from the right (1: the entry the proxy in front of parley wrote). With
/// `networks`, the header counts only when the connection comes from one of them, and the
/// client is the first entry from the right outside them.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    pub enabled: bool,
    pub hops: usize,
    pub networks: Vec<ipnet::IpNet>,
}

/// Caps on visitors' live sockets (per process).
#[derive(Debug, Clone)]
pub struct LiveLimits {
    /// Sockets of one chat (its tabs); a new one closes the oldest.
    pub per_chat: usize,
    /// Sockets from one client address (an IPv6 /64 counts as one), authenticated or not.
    pub per_address: usize,
    /// Sockets still waiting for their authentication frame, all clients together.
    pub pending: usize,
}

/// Which Mattermost statuses make an operator count as available, and how often parley asks.
#[derive(Debug, Clone)]
pub struct PresenceSettings {
    /// `away` (idle for a few minutes, still signed in) counts as available.
    pub away_counts: bool,
    /// `dnd` (do not disturb) counts as available.
    pub dnd_counts: bool,
    /// How often statuses are polled (Mattermost does not send other users' status changes
    /// to a bot).
    pub poll_every: Duration,
}

/// Validated settings for one parley process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PARLEY_*` environment variables that are no setting (e.g. the `PARLEY_SERVICE_HOST`,
    /// `PARLEY_PORT=tcp://…` Kubernetes adds for a Service named `parley`): ignored, and
    /// logged once at start (names only: values may be secrets).
    pub ignored_env: Vec<String>,
    pub listen: SocketAddr,
    /// Where browsers and Mattermost reach parley, without a trailing slash.
    pub public_url: Url,
    pub database: DatabaseUrl,
    pub data_dir: PathBuf,
    pub mattermost: Option<MattermostSettings>,
    pub allowed_origins: AllowedOrigins,
    pub delete_after: Duration,
    /// Audit-log lines older than this are deleted; `None` (0 days): kept forever.
    pub audit_retention: Option<Duration>,
    pub limits: Limits,
    pub files: FileLimits,
    /// A chat ends when no widget has been connected to it for this long.
    pub visitor_timeout: Duration,
    /// The requests channel is reminded of a request nobody accepted after this long (once);
    /// `None`: never.
    pub remind_after: Option<Duration>,
    /// The reminder says `@here`.
    pub remind_with_here: bool,
    /// Which `X-Forwarded-For` entry is the client's (see [`ProxyTrust`]).
    pub proxy: ProxyTrust,
    /// How many live sockets a chat, an address and the not-yet-authenticated may hold.
    pub live: LiveLimits,
    pub log_format: LogFormat,
    pub presence: PresenceSettings,
    /// Ask for a phone number (optional) in the widget's forms.
    pub prechat_phone: bool,
    /// Bearer token that `/metrics` requires; without one `/metrics` is off.
    pub metrics_token: Option<SecretString>,
    /// Background loops (outbox worker, Mattermost events); tests drive them by hand when off.
    pub run_background_jobs: bool,
}

impl Settings {
    /// Loads defaults < `parley.toml` (or the file named by `PARLEY_CONFIG`) < `PARLEY_*` variables.
    pub fn load() -> Result<Self, ConfigError> {
        // Unknown keys in the environment are not typos of the admin's but other software's
        // (Kubernetes' service links): they are left out. In `parley.toml` they stay errors.
        let ignored_env = ignored_env_names(std::env::vars_os().map(|(k, _)| k));
        let env = Env::prefixed("PARLEY_").filter(|key| SETTING_KEYS.iter().any(|k| key == *k));
        let file = std::env::var_os("PARLEY_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("parley.toml"));
        let raw: RawSettings = Figment::from(Serialized::defaults(RawSettings::default()))
            .merge(Toml::file(&file))
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        let mut settings = raw.validate()?;
        settings.ignored_env = ignored_env;
        Ok(settings)
    }

    /// Settings for tests and embedding: defaults with the given data dir, no Mattermost.
    pub fn for_data_dir(data_dir: PathBuf) -> Self {
        RawSettings {
            data_dir,
            listen: "127.0.0.1:0".into(),
            ..RawSettings::default()
        }
        .validate()
        .expect("the defaults are valid")
    }
}

impl RawSettings {
    fn validate(self) -> Result<Settings, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            invalid(
                "PARLEY_LISTEN",
                format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;
        let public_url = match &self.public_url {
            Some(u) => parse_http_url("PARLEY_PUBLIC_URL", u)?,
            None => Url::parse(&format!("http://{listen}")).expect("socket address forms a URL"),
        };
        let database = match &self.database_url {
            None => DatabaseUrl::Sqlite(self.data_dir.join("parley.db")),
            Some(u) => DatabaseUrl::parse(u)?,
        };
        let mattermost = self.mattermost_settings()?;
        let allowed_origins = parse_origins(&self.allowed_origins)?;
        if self.max_message_chars == 0 || self.max_message_chars > 16_000 {
            return Err(invalid(
                "PARLEY_MAX_MESSAGE_CHARS",
                "must be between 1 and 16000",
            ));
        }
        if self.max_field_chars == 0 || self.max_field_chars > 2000 {
            return Err(invalid(
                "PARLEY_MAX_FIELD_CHARS",
                "must be between 1 and 2000",
            ));
        }
        if self.rate_limit_chats_per_minute == 0 {
            return Err(invalid(
                "PARLEY_RATE_LIMIT_CHATS_PER_MINUTE",
                "must be at least 1",
            ));
        }
        if self.rate_limit_messages_per_minute == 0 {
            return Err(invalid(
                "PARLEY_RATE_LIMIT_MESSAGES_PER_MINUTE",
                "must be at least 1",
            ));
        }
        let files = self.file_limits()?;
        let proxy = self.proxy_trust()?;
        let live = self.live_limits()?;
        // A week at most: longer is a typo, and minutes beyond that would overflow nothing
        // but make no sense for a live chat.
        const WEEK_MINUTES: u64 = 7 * 24 * 60;
        if self.visitor_timeout_minutes == 0 || self.visitor_timeout_minutes > WEEK_MINUTES {
            return Err(invalid(
                "PARLEY_VISITOR_TIMEOUT_MINUTES",
                format!("must be between 1 and {WEEK_MINUTES}"),
            ));
        }
        if self.remind_after_minutes > WEEK_MINUTES {
            return Err(invalid(
                "PARLEY_REMIND_AFTER_MINUTES",
                format!("must be between 0 (never) and {WEEK_MINUTES}"),
            ));
        }
        let log_format = match self.log_format.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "PARLEY_LOG_FORMAT",
                    format!("`{other}` is neither `pretty` nor `json`"),
                ));
            }
        };
        if !(5..=3600).contains(&self.presence_poll_seconds) {
            return Err(invalid(
                "PARLEY_PRESENCE_POLL_SECONDS",
                "must be between 5 and 3600",
            ));
        }
        let metrics_token = match &self.metrics_token {
            Some(t) if t.expose_secret().trim().chars().count() < 16 => {
                return Err(invalid(
                    "PARLEY_METRICS_TOKEN",
                    "must be at least 16 characters (e.g. the output of `openssl rand -hex 32`)",
                ));
            }
            other => other.clone(),
        };
        Ok(Settings {
            ignored_env: Vec::new(),
            listen,
            public_url,
            database,
            data_dir: self.data_dir,
            mattermost,
            allowed_origins,
            delete_after: Duration::from_secs(self.delete_after_hours.saturating_mul(3600)),
            audit_retention: (self.audit_retention_days > 0)
                .then(|| Duration::from_secs(self.audit_retention_days.saturating_mul(86_400))),
            limits: Limits {
                max_message_chars: self.max_message_chars,
                max_field_chars: self.max_field_chars,
                chats_per_minute_per_ip: self.rate_limit_chats_per_minute,
                messages_per_minute: self.rate_limit_messages_per_minute,
            },
            files,
            visitor_timeout: Duration::from_secs(self.visitor_timeout_minutes * 60),
            remind_after: (self.remind_after_minutes > 0)
                .then(|| Duration::from_secs(self.remind_after_minutes * 60)),
            remind_with_here: self.remind_with_here,
            proxy,
            live,
            log_format,
            presence: PresenceSettings {
                away_counts: self.presence_away_counts,
                dnd_counts: self.presence_dnd_counts,
                poll_every: Duration::from_secs(self.presence_poll_seconds),
            },
            prechat_phone: self.prechat_phone,
            metrics_token,
            run_background_jobs: true,
        })
    }

    fn file_limits(&self) -> Result<FileLimits, ConfigError> {
        const MIB: u64 = 1024 * 1024;
        if self.max_file_mb == 0 || self.max_file_mb > 1024 {
            return Err(invalid("PARLEY_MAX_FILE_MB", "must be between 1 and 1024"));
        }
        if self.max_files_per_message == 0 || self.max_files_per_message > 10 {
            // Mattermost attaches at most 10 files to a post.
            return Err(invalid(
                "PARLEY_MAX_FILES_PER_MESSAGE",
                "must be between 1 and 10",
            ));
        }
        if self.max_chat_files_mb < self.max_file_mb {
            return Err(invalid(
                "PARLEY_MAX_CHAT_FILES_MB",
                "must be at least PARLEY_MAX_FILE_MB",
            ));
        }
        for (key, value) in [
            ("PARLEY_MAX_STORED_FILES_MB", self.max_stored_files_mb),
            ("PARLEY_MAX_UPLOADS_MB_PER_DAY", self.max_uploads_mb_per_day),
        ] {
            if value != 0 && value < self.max_file_mb {
                return Err(invalid(
                    key,
                    "must be 0 (no limit) or at least PARLEY_MAX_FILE_MB",
                ));
            }
        }
        let mut types = Vec::new();
        for t in self
            .file_types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let t = t.to_ascii_lowercase();
            let valid = t.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && !b.contains('/')
                    && !t.contains(char::is_whitespace)
            });
            if !valid {
                return Err(invalid(
                    "PARLEY_FILE_TYPES",
                    format!("`{t}` is not a content type like image/png"),
                ));
            }
            if matches!(
                t.as_str(),
                "text/html" | "image/svg+xml" | "application/xhtml+xml"
            ) {
                return Err(invalid(
                    "PARLEY_FILE_TYPES",
                    format!("`{t}` can carry script and is never allowed"),
                ));
            }
            types.push(t);
        }
        Ok(FileLimits {
            max_bytes: self.max_file_mb * MIB,
            max_per_message: self.max_files_per_message,
            max_chat_bytes: self.max_chat_files_mb * MIB,
            max_stored_bytes: self.max_stored_files_mb.saturating_mul(MIB),
            max_daily_bytes: self.max_uploads_mb_per_day.saturating_mul(MIB),
            min_free_disk_bytes: self.min_free_disk_mb.saturating_mul(MIB),
            types,
        })
    }

    fn proxy_trust(&self) -> Result<ProxyTrust, ConfigError> {
        let mut networks = Vec::new();
        for part in self
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            // A bare address is a network of one.
            let net = part
                .parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    invalid(
                        "PARLEY_TRUSTED_PROXIES",
                        format!("`{part}` is not an address or network like 10.0.0.0/8"),
                    )
                })?;
            networks.push(net.trunc());
        }
        if !self.trust_proxy_headers && (!networks.is_empty() || self.trusted_proxy_hops.is_some())
        {
            return Err(invalid(
                "PARLEY_TRUST_PROXY_HEADERS",
                "PARLEY_TRUSTED_PROXIES and PARLEY_TRUSTED_PROXY_HOPS only apply with PARLEY_TRUST_PROXY_HEADERS=true",
            ));
        }
        if !networks.is_empty() && self.trusted_proxy_hops.is_some() {
            return Err(invalid(
                "PARLEY_TRUSTED_PROXY_HOPS",
                "set either PARLEY_TRUSTED_PROXY_HOPS or PARLEY_TRUSTED_PROXIES, not both",
            ));
        }
        let hops = self.trusted_proxy_hops.unwrap_or(1);
        if !(1..=10).contains(&hops) {
            return Err(invalid(
                "PARLEY_TRUSTED_PROXY_HOPS",
                "must be between 1 and 10",
            ));
        }
        Ok(ProxyTrust {
            enabled: self.trust_proxy_headers,
            hops,
            networks,
        })
    }

    fn live_limits(&self) -> Result<LiveLimits, ConfigError> {
        for (key, value) in [
            ("PARLEY_MAX_SOCKETS_PER_CHAT", self.max_sockets_per_chat),
            (
                "PARLEY_MAX_SOCKETS_PER_ADDRESS",
                self.max_sockets_per_address,
            ),
            ("PARLEY_MAX_PENDING_SOCKETS", self.max_pending_sockets),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(invalid(key, "must be between 1 and 100000"));
            }
        }
        Ok(LiveLimits {
            per_chat: self.max_sockets_per_chat,
            per_address: self.max_sockets_per_address,
            pending: self.max_pending_sockets,
        })
    }

    fn mattermost_settings(&self) -> Result<Option<MattermostSettings>, ConfigError> {
        let present = [
            self.mattermost_url.is_some(),
            self.mattermost_token.is_some(),
            self.mattermost_team.is_some(),
            self.mattermost_channel.is_some(),
        ];
        if present.iter().all(|p| !p) {
            return Ok(None);
        }
        let missing: Vec<&str> = [
            "PARLEY_MATTERMOST_URL",
            "PARLEY_MATTERMOST_TOKEN",
            "PARLEY_MATTERMOST_TEAM",
            "PARLEY_MATTERMOST_CHANNEL",
        ]
        .into_iter()
        .zip(present)
        .filter(|(_, p)| !p)
        .map(|(k, _)| k)
        .collect();
        if !missing.is_empty() {
            return Err(invalid(
                "PARLEY_MATTERMOST_*",
                format!(
                    "Mattermost is partly configured; also set {} (or unset them all to run offline)",
                    missing.join(", ")
                ),
            ));
        }
        let url = parse_http_url(
            "PARLEY_MATTERMOST_URL",
            self.mattermost_url.as_deref().unwrap_or_default(),
        )?;
        let team = self.mattermost_team.clone().unwrap_or_default();
        let channel = self.mattermost_channel.clone().unwrap_or_default();
        if team.trim().is_empty() {
            return Err(invalid("PARLEY_MATTERMOST_TEAM", "must not be empty"));
        }
        if channel.trim().is_empty() {
            return Err(invalid("PARLEY_MATTERMOST_CHANNEL", "must not be empty"));
        }
        Ok(Some(MattermostSettings {
            url,
            token: self.mattermost_token.clone().expect("checked above"),
            team: team.trim().to_owned(),
            channel: channel.trim().trim_start_matches('~').to_owned(),
        }))
    }
}

/// Every key of [`RawSettings`], as `PARLEY_` variables name them (lower case, no prefix).
const SETTING_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "database_url",
    "data_dir",
    "mattermost_url",
    "mattermost_token",
    "mattermost_team",
    "mattermost_channel",
    "allowed_origins",
    "delete_after_hours",
    "audit_retention_days",
    "visitor_timeout_minutes",
    "remind_after_minutes",
    "remind_with_here",
    "max_message_chars",
    "max_field_chars",
    "rate_limit_chats_per_minute",
    "rate_limit_messages_per_minute",
    "max_file_mb",
    "max_files_per_message",
    "max_chat_files_mb",
    "file_types",
    "trust_proxy_headers",
    "trusted_proxy_hops",
    "trusted_proxies",
    "max_sockets_per_chat",
    "max_sockets_per_address",
    "max_pending_sockets",
    "max_stored_files_mb",
    "max_uploads_mb_per_day",
    "min_free_disk_mb",
    "log_format",
    "presence_away_counts",
    "presence_dnd_counts",
    "presence_poll_seconds",
    "prechat_phone",
    "metrics_token",
    "config",
];

/// The `PARLEY_*` variable names among `names` that set nothing, sorted.
fn ignored_env_names(names: impl Iterator<Item = std::ffi::OsString>) -> Vec<String> {
    let mut ignored: Vec<String> = names
        .filter_map(|k| k.into_string().ok())
        .filter(|k| {
            k.strip_prefix("PARLEY_")
                .is_some_and(|rest| !SETTING_KEYS.contains(&rest.to_ascii_lowercase().as_str()))
        })
        .collect();
    ignored.sort();
    ignored
}

fn parse_http_url(key: &'static str, value: &str) -> Result<Url, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let no_scheme = || {
        invalid(
            key,
            format!(
                "`{value}` is not a URL: it needs http:// or https:// in front, e.g. http://{trimmed}"
            ),
        )
    };
    let url = match Url::parse(trimmed) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => return Err(no_scheme()),
        Err(e) => return Err(invalid(key, format!("`{value}` is not a URL ({e})"))),
    };
    // `127.0.0.1:8065` and `chat.example.com:8065` parse, as a scheme and a path.
    if !matches!(url.scheme(), "http" | "https") && url.host().is_none() && !trimmed.contains("//")
    {
        return Err(no_scheme());
    }
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            key,
            format!("`{value}` must be an http:// or https:// URL"),
        ));
    }
    Ok(url)
}

fn parse_origins(value: &str) -> Result<AllowedOrigins, ConfigError> {
    let value = value.trim();
    if value == "*" {
        return Ok(AllowedOrigins::Any);
    }
    let mut origins = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let url = parse_http_url("PARLEY_ALLOWED_ORIGINS", part)?;
        origins.push(url.origin().ascii_serialization());
    }
    Ok(AllowedOrigins::List(origins))
}

impl Settings {
    /// parley's own origin (`PARLEY_PUBLIC_URL`'s), e.g. `https://chat-widget.example.com`.
    pub fn own_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// Whether a page of `origin` may use the widget API: parley's own pages, and the sites
    /// `PARLEY_ALLOWED_ORIGINS` lists (or every site with `*`).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        origin == self.own_origin() || self.allowed_origins.allows(origin)
    }
}

/// Base URL without a trailing slash, for joining paths.
pub fn base(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings::default()
    }

    #[test]
    fn defaults_are_valid_and_offline() {
        let s = raw().validate().unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(s.mattermost.is_none());
        assert_eq!(s.allowed_origins, AllowedOrigins::List(vec![]));
        assert!(s.origin_allowed("http://127.0.0.1:8080"));
        assert!(!s.origin_allowed("https://shop.example.com"));
        assert_eq!(
            s.database,
            DatabaseUrl::Sqlite(PathBuf::from("./data/parley.db"))
        );
        assert_eq!(s.visitor_timeout, Duration::from_secs(600));
        assert_eq!(s.remind_after, Some(Duration::from_secs(180)));
        assert!(s.remind_with_here);
    }

    #[test]
    fn a_reminder_after_zero_minutes_means_never() {
        let mut r = raw();
        r.remind_after_minutes = 0;
        assert_eq!(r.validate().unwrap().remind_after, None);
    }

    #[test]
    fn partial_mattermost_settings_name_what_is_missing() {
        let mut r = raw();
        r.mattermost_url = Some("https://chat.example.com".into());
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("PARLEY_MATTERMOST_TOKEN"), "{err}");
        assert!(err.contains("PARLEY_MATTERMOST_CHANNEL"), "{err}");
    }

    #[test]
    fn token_never_appears_in_debug_output() {
        let mut r = raw();
        r.mattermost_url = Some("https://chat.example.com/".into());
        r.mattermost_token = Some(SecretString::from("very-secret-token"));
        r.mattermost_team = Some("support".into());
        r.mattermost_channel = Some("~requests".into());
        let s = r.validate().unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("very-secret-token"), "{printed}");
        assert_eq!(s.mattermost.unwrap().channel, "requests");
    }

    #[test]
    fn bad_values_name_their_key() {
        type Mutation = fn(&mut RawSettings);
        let cases: Vec<(Mutation, &str)> = vec![
            (|r| r.listen = "nonsense".into(), "PARLEY_LISTEN"),
            (
                |r| r.public_url = Some("ftp://x".into()),
                "PARLEY_PUBLIC_URL",
            ),
            (
                |r| r.database_url = Some("mysql://x".into()),
                "PARLEY_DATABASE_URL",
            ),
            (
                |r| r.allowed_origins = "not a url".into(),
                "PARLEY_ALLOWED_ORIGINS",
            ),
            (|r| r.log_format = "xml".into(), "PARLEY_LOG_FORMAT"),
            (
                |r| r.metrics_token = Some(SecretString::from("short")),
                "PARLEY_METRICS_TOKEN",
            ),
            (|r| r.max_message_chars = 0, "PARLEY_MAX_MESSAGE_CHARS"),
            (|r| r.max_file_mb = 0, "PARLEY_MAX_FILE_MB"),
            (
                |r| r.max_files_per_message = 11,
                "PARLEY_MAX_FILES_PER_MESSAGE",
            ),
            (
                |r| r.file_types = "image/png,text/html".into(),
                "PARLEY_FILE_TYPES",
            ),
            (|r| r.file_types = "png".into(), "PARLEY_FILE_TYPES"),
            (
                |r| r.presence_poll_seconds = 1,
                "PARLEY_PRESENCE_POLL_SECONDS",
            ),
            (
                |r| r.visitor_timeout_minutes = 0,
                "PARLEY_VISITOR_TIMEOUT_MINUTES",
            ),
            (
                |r| r.remind_after_minutes = 100_000,
                "PARLEY_REMIND_AFTER_MINUTES",
            ),
            (
                |r| {
                    r.trust_proxy_headers = true;
                    r.trusted_proxies = "10.0.0.0/8, proxy.example.com".into();
                },
                "PARLEY_TRUSTED_PROXIES",
            ),
            (
                |r| {
                    r.trust_proxy_headers = true;
                    r.trusted_proxy_hops = Some(0);
                },
                "PARLEY_TRUSTED_PROXY_HOPS",
            ),
            (
                |r| {
                    r.trust_proxy_headers = true;
                    r.trusted_proxy_hops = Some(2);
                    r.trusted_proxies = "10.0.0.0/8".into();
                },
                "PARLEY_TRUSTED_PROXY_HOPS",
            ),
            (
                |r| r.trusted_proxies = "10.0.0.0/8".into(),
                "PARLEY_TRUST_PROXY_HEADERS",
            ),
            (
                |r| r.max_sockets_per_chat = 0,
                "PARLEY_MAX_SOCKETS_PER_CHAT",
            ),
            (|r| r.max_pending_sockets = 0, "PARLEY_MAX_PENDING_SOCKETS"),
            (|r| r.max_stored_files_mb = 1, "PARLEY_MAX_STORED_FILES_MB"),
        ];
        for (mutate, key) in cases {
            let mut r = raw();
            mutate(&mut r);
            let err = r.validate().unwrap_err().to_string();
            assert!(err.contains(key), "expected {key} in `{err}`");
        }
    }

    #[test]
    fn postgres_password_never_appears_in_debug_output() {
        let mut r = raw();
        r.database_url = Some("postgres://parley:db-secret@db.example.com:5432/parley".into());
        let s = r.validate().unwrap();
        let DatabaseUrl::Postgres(url) = &s.database else {
            panic!("a PostgreSQL URL: {:?}", s.database);
        };
        assert_eq!(
            url.expose(),
            "postgres://parley:db-secret@db.example.com:5432/parley"
        );
        let printed = format!("{s:?}");
        assert!(!printed.contains("db-secret"), "{printed}");
        assert!(printed.contains("db.example.com"), "{printed}");
    }

    #[test]
    fn trusting_proxy_headers_alone_means_one_proxy() {
        let mut r = raw();
        r.trust_proxy_headers = true;
        let s = r.validate().unwrap();
        assert!(s.proxy.enabled);
        assert_eq!(s.proxy.hops, 1);
        assert!(s.proxy.networks.is_empty());
        let mut r = raw();
        r.trust_proxy_headers = true;
        r.trusted_proxies = "10.1.2.3/8, 2001:db8::1".into();
        let nets: Vec<String> = r
            .validate()
            .unwrap()
            .proxy
            .networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "2001:db8::1/128"]);
    }

    #[test]
    fn the_key_list_names_every_setting() {
        let mut keys: Vec<String> = serde_json::to_value(RawSettings::default())
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        // Not serialised, so that they never leave the process.
        keys.extend(["mattermost_token".into(), "metrics_token".into()]);
        keys.sort();
        let mut listed: Vec<String> = SETTING_KEYS.iter().map(|k| k.to_string()).collect();
        listed.sort();
        assert_eq!(keys, listed);
    }

    #[test]
    fn kubernetes_service_variables_are_ignored_and_settings_kept() {
        let names = [
            "PARLEY_PORT",
            "PARLEY_PORT_8080_TCP",
            "PARLEY_PORT_8080_TCP_ADDR",
            "PARLEY_SERVICE_HOST",
            "PARLEY_SERVICE_PORT_HTTP",
            "PARLEY_LISTEN",
            "PARLEY_MATTERMOST_URL",
            "PARLEY_CONFIG",
            "PATH",
            "PARLEYX",
        ]
        .map(std::ffi::OsString::from);
        assert_eq!(
            ignored_env_names(names.into_iter()),
            [
                "PARLEY_PORT",
                "PARLEY_PORT_8080_TCP",
                "PARLEY_PORT_8080_TCP_ADDR",
                "PARLEY_SERVICE_HOST",
                "PARLEY_SERVICE_PORT_HTTP",
            ]
        );
    }

    #[test]
    fn a_url_without_scheme_says_to_add_one() {
        for value in [
            "127.0.0.1:8065",
            "chat.example.com",
            "chat.example.com:8065",
            "localhost:8065/",
        ] {
            let err = parse_http_url("PARLEY_MATTERMOST_URL", value)
                .unwrap_err()
                .to_string();
            assert!(err.contains("http:// or https://"), "{value}: {err}");
            assert!(err.starts_with("PARLEY_MATTERMOST_URL"), "{err}");
        }
        let err = parse_http_url("PARLEY_PUBLIC_URL", "ftp://x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http:// or https://"), "{err}");
        assert!(parse_http_url("K", "http://127.0.0.1:8065/").is_ok());
    }

    #[test]
    fn origins_are_normalised() {
        let o = parse_origins("https://shop.example.com/, http://localhost:3000").unwrap();
        assert_eq!(
            o,
            AllowedOrigins::List(vec![
                "https://shop.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
    }
}
