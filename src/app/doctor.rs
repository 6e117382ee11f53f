//! `parley doctor`: checks the Mattermost connection and every server setting parley depends
//! on, each with a plain verdict and what to change. The CLI prints the report; the back
//! office's **Test connection** shows the same one.

use std::{fmt, net::IpAddr};

use url::{Host, Url};

use crate::{
    config::{AllowedOrigins, MattermostSettings, Settings, base},
    mattermost::{
        Client, MmError, callback_check,
        channels::{PermanentDeletion, Removal, delete_or_archive_channel},
        wire::CreateChannel,
    },
    security::ActionSigner,
};

/// What to change when Mattermost refuses permanent deletion (a config.json-only setting).
const ENABLE_DELETION: &str = "set ServiceSettings.EnableAPIChannelDeletion to true in \
    Mattermost's config.json, or run `mmctl config set ServiceSettings.EnableAPIChannelDeletion \
    true`";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works, but something is worth changing.
    Warning,
    Failed,
    /// Not tried, because an earlier check failed.
    Skipped,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Failed => "FAILED",
            Self::Skipped => "skipped",
        }
    }
}

/// One check: what was found and, unless all is well, what to do.
#[derive(Debug, Clone)]
pub struct Check {
    /// Stable name (`reachable`, `token`, `team`, `requests_channel`, `channels`,
    /// `channel_deletion`, `post_size`, `file_uploads`, `callbacks`, `origins`).
    pub id: &'static str,
    pub title: &'static str,
    /// parley cannot work without it.
    pub essential: bool,
    pub verdict: Verdict,
    pub found: String,
    pub advice: Option<String>,
}

/// Every check, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every essential check passed.
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .filter(|c| c.essential)
            .all(|c| matches!(c.verdict, Verdict::Ok | Verdict::Warning))
    }

    /// The check with this id.
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    fn push(
        &mut self,
        id: &'static str,
        title: &'static str,
        essential: bool,
        verdict: Verdict,
        found: impl Into<String>,
        advice: Option<String>,
    ) {
        self.checks.push(Check {
            id,
            title,
            essential,
            verdict,
            found: found.into(),
            advice,
        });
    }

    fn skip(&mut self, id: &'static str, title: &'static str, essential: bool, why: &str) {
        self.push(id, title, essential, Verdict::Skipped, why, None);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "[{:^7}] {}: {}", c.verdict.label(), c.title, c.found)?;
            if let Some(advice) = &c.advice {
                writeln!(f, "          → {advice}")?;
            }
        }
        if self.passed() {
            write!(f, "All essential checks passed.")
        } else {
            write!(
                f,
                "Some essential checks failed: parley cannot work with Mattermost until they pass."
            )
        }
    }
}

const T_CONFIG: &str = "Mattermost settings";
const T_REACHABLE: &str = "Server answers and is Mattermost";
const T_TOKEN: &str = "Access token";
const T_TEAM: &str = "Bot in the team";
const T_CHANNEL: &str = "Bot in the requests channel";
const T_CHANNELS: &str = "Creating private channels and adding members";
const T_DELETION: &str = "Permanent deletion of ended chats' channels";
const T_POST_SIZE: &str = "Maximum post size";
const T_FILES: &str = "File uploads";
const T_CALLBACKS: &str = "Mattermost can call parley back (Accept button)";
const T_ORIGINS: &str = "Websites that may embed the widget";

/// Runs every check against the configured server; the callback check only says under which
/// condition the Accept button works (see [`run_with`]).
pub async fn run(settings: &Settings) -> Report {
    run_with(settings, None).await
}

/// Runs every check; with the installation's button key (`signer`) the callback check has
/// Mattermost click a test button whose URL is parley's own, which a running parley of this
/// installation answers.
pub async fn run_with(settings: &Settings, signer: Option<&ActionSigner>) -> Report {
    let mut report = Report::default();
    let Some(mm) = &settings.mattermost else {
        report.push(
            "config",
            T_CONFIG,
            true,
            Verdict::Failed,
            "Mattermost is not configured: parley runs offline (the widget offers the offline form only)",
            Some(
                "connect it in the back office (Settings → Mattermost connection), or set \
                 PARLEY_MATTERMOST_URL, PARLEY_MATTERMOST_TOKEN, PARLEY_MATTERMOST_TEAM and \
                 PARLEY_MATTERMOST_CHANNEL (see the README, \"Connecting Mattermost\")"
                    .into(),
            ),
        );
        return report;
    };
    check_server(&mut report, settings, mm).await;
    check_callbacks(&mut report, settings, mm, signer).await;
    check_origins(&mut report, settings);
    report
}

/// Which websites may embed the widget; `*` works but lets every website drive the API.
fn check_origins(report: &mut Report, settings: &Settings) {
    let found = format!(
        "PARLEY_ALLOWED_ORIGINS: {}",
        settings.allowed_origins.describe(&settings.own_origin())
    );
    let (verdict, advice) = match &settings.allowed_origins {
        AllowedOrigins::Any => (
            Verdict::Warning,
            Some(
                "`*` lets any website start chats and send messages through its visitors' \
                 browsers: list the origins of the sites that embed the widget instead, e.g. \
                 PARLEY_ALLOWED_ORIGINS=https://www.example.com"
                    .to_owned(),
            ),
        ),
        AllowedOrigins::List(list) if list.is_empty() => (
            Verdict::Ok,
            Some(
                "only pages of parley itself can use the widget: add your website's origin to \
                 PARLEY_ALLOWED_ORIGINS to embed it there"
                    .to_owned(),
            ),
        ),
        AllowedOrigins::List(_) => (Verdict::Ok, None),
    };
    report.push("origins", T_ORIGINS, false, verdict, found, advice);
}

async fn check_server(report: &mut Report, settings: &Settings, mm: &MattermostSettings) {
    let client = Client::new(&base(&mm.url), mm.token.clone());
    let url = base(&mm.url);
    let later = [
        ("token", T_TOKEN, true),
        ("team", T_TEAM, true),
        ("requests_channel", T_CHANNEL, true),
        ("channels", T_CHANNELS, true),
        ("channel_deletion", T_DELETION, false),
        ("post_size", T_POST_SIZE, false),
        ("file_uploads", T_FILES, false),
    ];
    let skip_from = |report: &mut Report, from: usize, why: &str| {
        for &(id, title, essential) in &later[from..] {
            report.skip(id, title, essential, why);
        }
    };

    // 1. The URL answers, and it is Mattermost.
    let ping = client.ping().await;
    match &ping {
        Ok(ping) if ping.status.eq_ignore_ascii_case("ok") => report.push(
            "reachable",
            T_REACHABLE,
            true,
            Verdict::Ok,
            match &ping.version {
                Some(v) if !v.is_empty() => format!("{url} answers (Mattermost {v})"),
                _ => format!("{url} answers"),
            },
            None,
        ),
        Ok(_) | Err(MmError::Protocol(_)) | Err(MmError::Api { status: 404, .. }) => {
            let why = match &ping {
                Err(MmError::Protocol(detail)) => detail.clone(),
                _ => "no /api/v4/system/ping".to_owned(),
            };
            report.push(
                "reachable",
                T_REACHABLE,
                true,
                Verdict::Failed,
                format!("{url} answers, but not as Mattermost does ({why})"),
                Some(
                    "PARLEY_MATTERMOST_URL must be the address you open Mattermost at, without \
                     a path such as /api/v4 or a team name"
                        .into(),
                ),
            );
            return skip_from(report, 0, "the server is not Mattermost");
        }
        Err(e) => {
            report.push(
                "reachable",
                T_REACHABLE,
                true,
                Verdict::Failed,
                format!("{url} cannot be used: {e}"),
                Some(
                    "check PARLEY_MATTERMOST_URL, and that this machine can reach it (DNS, \
                     firewall, proxy, TLS certificate)"
                        .into(),
                ),
            );
            return skip_from(report, 0, "the server cannot be reached");
        }
    }

    // 2. The token is valid; whose is it?
    let me = match client.me_with_roles().await {
        Ok(me) => {
            let (verdict, found, advice) = if me.is_bot {
                (
                    Verdict::Ok,
                    format!("valid: bot account @{}", me.username),
                    None,
                )
            } else {
                (
                    Verdict::Warning,
                    format!("valid: user account @{} (not a bot)", me.username),
                    Some(
                        "a bot account is recommended: its posts are marked as a bot's and its \
                         token works even when personal access tokens are disabled"
                            .into(),
                    ),
                )
            };
            report.push("token", T_TOKEN, true, verdict, found, advice);
            me
        }
        Err(e) => {
            let found = match e.status() {
                Some(401) => "Mattermost refuses the token (wrong, revoked, or a personal token \
                              while personal access tokens are disabled)"
                    .to_owned(),
                _ => format!("the token could not be checked: {e}"),
            };
            report.push(
                "token",
                T_TOKEN,
                true,
                Verdict::Failed,
                found,
                Some(
                    "create a new token in Integrations → Bot Accounts and set it as \
                     PARLEY_MATTERMOST_TOKEN"
                        .into(),
                ),
            );
            return skip_from(report, 1, "the token does not work");
        }
    };

    // 3. The bot is on the team.
    let team = match client.team_by_name(&mm.team).await {
        Ok(team) => team,
        Err(e) => {
            report.push(
                "team",
                T_TEAM,
                true,
                Verdict::Failed,
                format!(
                    "team `{}` not found, or the bot is not a member of it ({})",
                    mm.team,
                    e.short()
                ),
                Some(format!(
                    "check PARLEY_MATTERMOST_TEAM (the team's name as in its URL) and add @{} to \
                     the team (`mmctl team users add {} {}`)",
                    me.username, mm.team, me.username
                )),
            );
            return skip_from(report, 2, "the team is not usable");
        }
    };
    match client.team_member(&team.id, &me.id).await {
        Ok(()) => report.push(
            "team",
            T_TEAM,
            true,
            Verdict::Ok,
            format!("@{} is a member of team `{}`", me.username, team.name),
            None,
        ),
        Err(e) => {
            report.push(
                "team",
                T_TEAM,
                true,
                Verdict::Failed,
                format!(
                    "@{} is not a member of team `{}` ({})",
                    me.username,
                    team.name,
                    e.short()
                ),
                Some(format!(
                    "add @{} to the team: Main menu → View members → Add members, or `mmctl team \
                     users add {} {}`",
                    me.username, team.name, me.username
                )),
            );
            return skip_from(report, 2, "the bot is not on the team");
        }
    }

    // 4. The requests channel exists and the bot is in it.
    let channel_check = async {
        let channel = client.channel_by_name(&team.id, &mm.channel, false).await?;
        client.channel_member(&channel.id, &me.id).await.map(|_| ())
    };
    match channel_check.await {
        Ok(()) => report.push(
            "requests_channel",
            T_CHANNEL,
            true,
            Verdict::Ok,
            format!("@{} is a member of `{}`", me.username, mm.channel),
            None,
        ),
        Err(e) => report.push(
            "requests_channel",
            T_CHANNEL,
            true,
            Verdict::Failed,
            format!(
                "channel `{}` not found in team `{}`, or @{} is not a member of it ({})",
                mm.channel,
                team.name,
                me.username,
                e.short()
            ),
            Some(format!(
                "check PARLEY_MATTERMOST_CHANNEL (the channel's name as in its URL, not its \
                 display name) and type `/invite @{}` in that channel",
                me.username
            )),
        ),
    }

    // 5. Private channels: create one, add a member, then delete it (which also tells whether
    // permanent deletion is allowed). The bot adds itself: allowed only with the same
    // `manage_private_channel_members` permission, and nobody is disturbed.
    let name = format!(
        "parley-doctor-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let create = CreateChannel {
        team_id: &team.id,
        name: &name,
        display_name: "parley doctor check",
        kind: "P",
        purpose: "Created by parley doctor to check permissions; it deletes it at once.",
        header: "",
    };
    let channel = match client.create_channel(&create).await {
        Ok(c) => c,
        Err(e) => {
            report.push(
                "channels",
                T_CHANNELS,
                true,
                Verdict::Failed,
                format!(
                    "@{} may not create private channels in `{}` ({})",
                    me.username,
                    team.name,
                    e.short()
                ),
                Some(
                    "give team members (or the bot) the permission to create private channels: \
                     System Console → User Management → Permissions"
                        .into(),
                ),
            );
            report.skip(
                "channel_deletion",
                T_DELETION,
                false,
                "no test channel could be created",
            );
            return check_client_config(report, settings, &client).await;
        }
    };
    match client.add_channel_member(&channel.id, &me.id).await {
        Ok(()) => report.push(
            "channels",
            T_CHANNELS,
            true,
            Verdict::Ok,
            format!("created and joined a test channel `{name}`"),
            None,
        ),
        Err(e) => report.push(
            "channels",
            T_CHANNELS,
            true,
            Verdict::Failed,
            format!(
                "@{} created a private channel but may not add members to it ({})",
                me.username,
                e.short()
            ),
            Some(
                "give channel members the permission to manage private channel members: System \
                 Console → User Management → Permissions"
                    .into(),
            ),
        ),
    }
    let mut permanent = PermanentDeletion::Unknown;
    match delete_or_archive_channel(&client, &channel.id, false, &mut permanent).await {
        Ok(Removal::Deleted) => report.push(
            "channel_deletion",
            T_DELETION,
            false,
            Verdict::Ok,
            "allowed: ended chats' channels are deleted with their posts and files",
            None,
        ),
        Ok(Removal::Archived | Removal::WasArchived | Removal::StillArchived) => report.push(
            "channel_deletion",
            T_DELETION,
            false,
            Verdict::Warning,
            format!(
                "refused (EnableAPIChannelDeletion is off): ended chats' channels are only \
                 archived, and so was the test channel `{name}`"
            ),
            Some(ENABLE_DELETION.into()),
        ),
        // Someone removed the test channel first: nothing was learned about deletion.
        Ok(Removal::AlreadyGone) => report.push(
            "channel_deletion",
            T_DELETION,
            false,
            Verdict::Warning,
            format!(
                "not checked: the test channel `{name}` was gone before parley could delete it"
            ),
            None,
        ),
        Err(e) if permanent == PermanentDeletion::Refused => report.push(
            "channel_deletion",
            T_DELETION,
            false,
            Verdict::Warning,
            format!(
                "refused (EnableAPIChannelDeletion is off), and archiving the test channel \
                 `{name}` failed too ({}); delete it by hand",
                e.short()
            ),
            Some(ENABLE_DELETION.into()),
        ),
        Err(e) => report.push(
            "channel_deletion",
            T_DELETION,
            false,
            Verdict::Warning,
            format!(
                "the test channel `{name}` could not be deleted ({})",
                e.short()
            ),
            Some(format!(
                "delete `{name}` by hand, and let the bot delete the channels it creates (the \
                 delete_private_channel permission)"
            )),
        ),
    }
    check_client_config(report, settings, &client).await;
}

/// Post size and file uploads, from the public client configuration.
async fn check_client_config(report: &mut Report, settings: &Settings, client: &Client) {
    let config = match client.client_config().await {
        Ok(c) => c,
        Err(e) => {
            let why = format!("the client configuration could not be read ({})", e.short());
            report.push(
                "post_size",
                T_POST_SIZE,
                false,
                Verdict::Warning,
                why.clone(),
                None,
            );
            report.push("file_uploads", T_FILES, false, Verdict::Warning, why, None);
            return;
        }
    };
    let text = |key: &str| {
        config
            .get(key)
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| Some(v.to_string()))
            })
            .unwrap_or_default()
    };
    match text("MaxPostSize").parse::<usize>() {
        Ok(n) => report.push(
            "post_size",
            T_POST_SIZE,
            false,
            Verdict::Ok,
            if n < settings.limits.max_message_chars {
                format!(
                    "{n} characters; longer visitor messages (up to {}) are split into several posts",
                    settings.limits.max_message_chars
                )
            } else {
                format!("{n} characters")
            },
            None,
        ),
        Err(_) => report.push(
            "post_size",
            T_POST_SIZE,
            false,
            Verdict::Warning,
            "not reported by the server; parley assumes 4000 characters",
            None,
        ),
    }
    if text("EnableFileAttachments") == "false" {
        report.push(
            "file_uploads",
            T_FILES,
            false,
            Verdict::Warning,
            "file attachments are disabled: files visitors send cannot be passed on to operators",
            Some(
                "enable System Console → Site Configuration → File Sharing and Downloads → Allow \
                 File Sharing (FileSettings.EnableFileAttachments)"
                    .into(),
            ),
        );
        return;
    }
    let parley_max = settings.files.max_bytes;
    match text("MaxFileSize").parse::<u64>() {
        Ok(mm_max) if mm_max < parley_max => report.push(
            "file_uploads",
            T_FILES,
            false,
            Verdict::Warning,
            format!(
                "allowed, but only up to {} MB while parley accepts up to {} MB",
                mm_max / 1_000_000,
                parley_max / (1024 * 1024)
            ),
            Some("lower PARLEY_MAX_FILE_MB, or raise Mattermost's FileSettings.MaxFileSize".into()),
        ),
        _ => report.push("file_uploads", T_FILES, false, Verdict::Ok, "allowed", None),
    }
}

/// Whether Mattermost can call parley back. Mattermost refuses private addresses unless
/// `AllowedUntrustedInternalConnections` lists them, and a bot cannot read that setting: so the
/// check is a real click on a test button when it can be made (a running parley of this
/// installation answers it), and otherwise says under which condition Accept works.
async fn check_callbacks(
    report: &mut Report,
    settings: &Settings,
    mm: &MattermostSettings,
    signer: Option<&ActionSigner>,
) {
    let public_url = &settings.public_url;
    let host = public_url.host_str().unwrap_or_default().to_owned();
    let shown = base(public_url);
    let not_checked = |why: &str| {
        let found = if is_private(public_url) {
            format!(
                "not checked ({why}). PARLEY_PUBLIC_URL ({shown}) is a private address: the \
                 Accept button works if Mattermost's AllowedUntrustedInternalConnections lists \
                 `{host}`"
            )
        } else {
            format!(
                "not checked ({why}). The Accept button works if the Mattermost server reaches \
                 PARLEY_PUBLIC_URL ({shown})"
            )
        };
        let advice = "run `parley doctor` with the server's PARLEY_DATA_DIR or PARLEY_DATABASE_URL \
                      while the server runs, or see \"callbacks\" in the server's /readyz";
        (found, Some(advice.to_owned()))
    };
    let (verdict, found, advice) = match signer {
        None => {
            let why = format!(
                "it needs the server's database, and there is none at {}",
                settings.database.describe()
            );
            let (found, advice) = not_checked(&why);
            (Verdict::Skipped, found, advice)
        }
        Some(_) if !report.passed() => {
            let (found, advice) = not_checked("an essential check failed");
            (Verdict::Skipped, found, advice)
        }
        Some(signer) => {
            let client = Client::new(&base(&mm.url), mm.token.clone());
            let outcome = match client.team_by_name(&mm.team).await {
                Ok(team) => callback_check::run(&client, &team.id, public_url, signer).await,
                Err(e) => Err(format!("the team could not be read ({})", e.short())),
            };
            match outcome {
                Ok(()) => (
                    Verdict::Ok,
                    format!(
                        "Mattermost called a test button back at {shown}/mattermost/actions: the \
                         Accept button works"
                    ),
                    None,
                ),
                Err(problem) => (
                    Verdict::Warning,
                    problem,
                    Some(
                        "until this is fixed, operators accept a chat with a ✅ reaction on its \
                         request post"
                            .into(),
                    ),
                ),
            }
        }
    };
    report.push("callbacks", T_CALLBACKS, false, verdict, found, advice);
}

/// Loopback, private, link-local and unique-local addresses, `localhost` and single-label or
/// `.local`/`.internal`/`.lan` names.
fn is_private(url: &Url) -> bool {
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(Host::Domain(name)) => {
            let name = name.to_ascii_lowercase();
            return name == "localhost"
                || !name.contains('.')
                || [".localhost", ".local", ".internal", ".lan", ".home.arpa"]
                    .iter()
                    .any(|s| name.ends_with(s));
        }
        None => return false,
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_private;

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "http://127.0.0.1:8080",
            "http://10.0.0.5",
            "http://192.168.1.2",
            "http://172.20.0.1",
            "http://localhost:8080",
            "http://parley",
            "http://parley.internal",
            "http://[::1]:8080",
            "http://[fd00::1]",
        ] {
            assert!(is_private(&private.parse().unwrap()), "{private}");
        }
        for public in ["https://chat.example.com", "http://93.184.216.34"] {
            assert!(!is_private(&public.parse().unwrap()), "{public}");
        }
    }
}
