//! `parley department list|add|edit|remove`: managing departments until the back office
//! can. Every change is validated (`super::validate`) and, when Mattermost is reachable, the
//! team and requests channel are checked there too (the bot must be in both).

use clap::{Args, Subcommand};

use crate::app::departments::{Invalid, validate};
use crate::{
    config::{Settings, base},
    mattermost::Client,
    storage::{
        Store, StoreError,
        departments::{DepartmentRow, RemoveOutcome},
    },
};

/// The department subcommands.
#[derive(Debug, Subcommand)]
pub enum DepartmentCommand {
    /// List the departments (without any, the configured team and channel are the default).
    List,
    /// Add a department: at least --name, --team and --channel.
    Add {
        #[command(flatten)]
        fields: Fields,
    },
    /// Change a department (given by id or name); options not given stay as they are, an
    /// empty value ("") resets a text or template to its default and removes the hours.
    Edit {
        /// The department's id or name.
        department: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Remove a department (given by id or name). Refused while chats of it are open.
    Remove {
        /// The department's id or name.
        department: String,
    },
}

/// A department's settings as options.
#[derive(Debug, Args)]
pub struct Fields {
    /// Name shown to visitors, e.g. "Sales".
    #[arg(long)]
    pub name: Option<String>,
    /// Team name (as in its URL) where this department's chat channels are created.
    #[arg(long)]
    pub team: Option<String>,
    /// Requests channel name (as in its URL) in that team.
    #[arg(long)]
    pub channel: Option<String>,
    /// Position in the widget's list (lower first).
    #[arg(long)]
    pub position: Option<i64>,
    /// Online hours, e.g. "mon-fri 09:00-17:30; sat 10:00-14:00" ("" = always).
    #[arg(long)]
    pub hours: Option<String>,
    /// IANA time zone of the hours, e.g. Europe/Berlin (default UTC).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Widget title for this department.
    #[arg(long)]
    pub title: Option<String>,
    /// Widget greeting above the pre-chat form.
    #[arg(long)]
    pub greeting: Option<String>,
    /// Widget text above the offline form.
    #[arg(long)]
    pub offline_text: Option<String>,
    /// Template of the request post's text.
    #[arg(long)]
    pub request_template: Option<String>,
    /// Template of the chat channel's display name (cut to 64 characters).
    #[arg(long)]
    pub channel_display_name_template: Option<String>,
    /// Template of the chat channel's header.
    #[arg(long)]
    pub channel_header_template: Option<String>,
    /// Template of the first post in the chat channel ("" = none).
    #[arg(long)]
    pub first_post_template: Option<String>,
    /// Save even if Mattermost does not know the team or channel (yet).
    #[arg(long)]
    pub no_check: bool,
}

/// Why a department command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(String),
    #[error("{0:#}")]
    Open(anyhow::Error),
}

/// Runs a department command; returns what to print.
pub async fn run(command: DepartmentCommand, settings: &Settings) -> Result<String, CliError> {
    let store = crate::cli::open_existing_store(settings)
        .await
        .map_err(CliError::Open)?;
    match command {
        DepartmentCommand::List => list(&store, settings).await,
        DepartmentCommand::Add { fields } => {
            let (Some(name), Some(team), Some(channel)) =
                (&fields.name, &fields.team, &fields.channel)
            else {
                return Err(CliError::Refused(
                    "a department needs at least --name, --team and --channel".into(),
                ));
            };
            let mut row = DepartmentRow::new(name, team, channel);
            apply(&mut row, &fields);
            validate(&mut row)?;
            let note = check(settings, &row, fields.no_check).await?;
            let id = store.insert_department(&row).await?;
            Ok(format!("added department {id} \"{}\"{note}", row.name))
        }
        DepartmentCommand::Edit { department, fields } => {
            let mut row = find(&store, &department).await?;
            let before = row.clone();
            apply(&mut row, &fields);
            validate(&mut row)?;
            let note = if (row.team.as_str(), row.channel.as_str())
                != (before.team.as_str(), before.channel.as_str())
            {
                check(settings, &row, fields.no_check).await?
            } else {
                String::new()
            };
            store.update_department(&row).await?;
            Ok(format!(
                "changed department {} \"{}\"{note}",
                row.id, row.name
            ))
        }
        DepartmentCommand::Remove { department } => {
            let row = find(&store, &department).await?;
            match store.delete_department(row.id).await? {
                RemoveOutcome::Removed => {
                    Ok(format!("removed department {} \"{}\"", row.id, row.name))
                }
                RemoveOutcome::NotFound => {
                    Err(CliError::Refused(format!("no department `{department}`")))
                }
                RemoveOutcome::HasOpenChats(n) => Err(CliError::Refused(format!(
                    "department \"{}\" has {n} open chat(s); remove it once they have ended",
                    row.name
                ))),
            }
        }
    }
}

async fn list(store: &Store, settings: &Settings) -> Result<String, CliError> {
    let rows = store.list_departments().await?;
    if rows.is_empty() {
        return Ok(match &settings.mattermost {
            Some(m) => format!(
                "no departments: chats go to ~{} in team {} (PARLEY_MATTERMOST_TEAM/_CHANNEL)",
                m.channel, m.team
            ),
            None => "no departments, and Mattermost is not configured".into(),
        });
    }
    let mut out = Vec::new();
    for r in rows {
        let hours = r.hours.as_deref().unwrap_or("always");
        out.push(format!(
            "{}\t{}\tteam {} channel ~{}\thours {hours} ({})\tposition {}",
            r.id, r.name, r.team, r.channel, r.timezone, r.position
        ));
        let customised: Vec<&str> = [
            ("title", &r.text_title),
            ("greeting", &r.text_greeting),
            ("offline text", &r.text_offline),
            ("request template", &r.template_request),
            (
                "channel display name template",
                &r.template_channel_display_name,
            ),
            ("channel header template", &r.template_channel_header),
            ("first post template", &r.template_first_post),
        ]
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| *k)
        .collect();
        if !customised.is_empty() {
            out.push(format!("\tcustom: {}", customised.join(", ")));
        }
    }
    Ok(out.join("\n"))
}

/// A department by id, else by name.
async fn find(store: &Store, which: &str) -> Result<DepartmentRow, CliError> {
    let rows = store.list_departments().await?;
    let found = which
        .parse::<i64>()
        .ok()
        .and_then(|id| rows.iter().find(|r| r.id == id))
        .or_else(|| rows.iter().find(|r| r.name == which.trim()));
    found.cloned().ok_or_else(|| {
        CliError::Refused(format!(
            "no department `{which}` (see `parley department list`)"
        ))
    })
}

/// Copies the given options onto a department; `""` clears optional values.
fn apply(row: &mut DepartmentRow, f: &Fields) {
    fn set(target: &mut String, value: &Option<String>) {
        if let Some(v) = value {
            *target = v.clone();
        }
    }
    fn set_opt(target: &mut Option<String>, value: &Option<String>) {
        if let Some(v) = value {
            *target = Some(v.clone());
        }
    }
    set(&mut row.name, &f.name);
    set(&mut row.team, &f.team);
    set(&mut row.channel, &f.channel);
    set(&mut row.timezone, &f.timezone);
    if let Some(p) = f.position {
        row.position = p;
    }
    set_opt(&mut row.hours, &f.hours);
    set_opt(&mut row.text_title, &f.title);
    set_opt(&mut row.text_greeting, &f.greeting);
    set_opt(&mut row.text_offline, &f.offline_text);
    set_opt(&mut row.template_request, &f.request_template);
    set_opt(
        &mut row.template_channel_display_name,
        &f.channel_display_name_template,
    );
    set_opt(&mut row.template_channel_header, &f.channel_header_template);
    set_opt(&mut row.template_first_post, &f.first_post_template);
    // The first post is the one template whose empty value means something ("none");
    // clearing it from the CLI means the default, which is also none.
    if row.template_first_post.as_deref() == Some("") {
        row.template_first_post = None;
    }
}

/// Asks Mattermost whether the team and channel exist and the bot is in both. Unknown ones
/// are refused (unless `no_check`); an unreachable server only gives a note.
async fn check(
    settings: &Settings,
    row: &DepartmentRow,
    no_check: bool,
) -> Result<String, CliError> {
    let Some(mm) = &settings.mattermost else {
        return Ok(" (Mattermost is not configured: the team and channel were not checked)".into());
    };
    if no_check {
        return Ok(" (not checked in Mattermost)".into());
    }
    let client = Client::new(&base(&mm.url), mm.token.clone());
    match client.check_in_mattermost(&row.team, &row.channel).await {
        Ok(()) => Ok(String::new()),
        Err(e) if e.is_transient() => Ok(format!(
            " (Mattermost could not be asked: {e}; the server reports an unknown team or channel when it starts)"
        )),
        Err(e) => Err(CliError::Refused(format!(
            "{e}. Fix the names or add the bot, or save anyway with --no-check"
        ))),
    }
}
