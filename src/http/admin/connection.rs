//! The Mattermost connection on the settings page (admins only), edited in steps without any
//! script: (1) server and bot token → the bot's teams (`GET /users/me/teams`); (2) a team and a
//! search term → channels (`POST /teams/{id}/channels/search`); (3) a channel → **Test** (the
//! doctor's checks on the entered values) or **Save** (refused unless the essential checks
//! pass; then stored, audited and put in force at once). Each step is a form POST that renders
//! the page again. The token typed in step 1 is kept on the server as the session's draft
//! (`connection_drafts`, 30 minutes), never written back into a page; the other values travel
//! in the forms. A connection set by `PARLEY_MATTERMOST_*` or `parley.toml` wins: the form is
//! then disabled and its routes refuse.

use axum::{
    Extension, Form,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{
    auth::Signed,
    pages::connection_state,
    settings::{report_view, settings_page},
    views::{PageError, csrf_field},
};
use crate::{
    app::connection::{self, DRAFT_LIFETIME, Origin},
    app::doctor::{self, Report},
    config::{MattermostSettings, base},
    http::extract::ClientIp,
    http::state::AppState,
    mattermost::{
        Client, MmError,
        wire::{Channel, Team},
    },
    storage::{audit::NewAudit, now_ms},
};

/// The fields of the connection forms (each step sends the ones it has).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConnectionForm {
    url: String,
    token: String,
    /// Team name.
    team: String,
    term: String,
    /// Channel name picked from the search results.
    channel: String,
    /// Channel name typed exactly (wins over `channel`).
    channel_name: String,
}

/// Something the admin has to change, with a stable code (`data-error` on the page).
#[derive(Debug, Clone)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

fn problem(code: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        code,
        message: message.into(),
    }
}

/// What the connection card shows besides the connection in force.
#[derive(Debug, Default)]
pub struct Editor {
    pub url: String,
    /// Steps 2 and 3 are open: a server and token are at hand (the session's draft).
    pub draft: bool,
    pub teams: Vec<Team>,
    pub team: String,
    pub term: String,
    /// Search results (step 3), once searched.
    pub channels: Option<Vec<Channel>>,
    pub channel: String,
    pub problem: Option<Problem>,
    pub report: Option<Report>,
    /// The report is of the entered values, not of the connection in force.
    pub report_of_entered: bool,
}

impl Editor {
    /// The form as first shown: the connection in force.
    pub fn initial(state: &AppState) -> Self {
        let bridge = state.bridge();
        let mm = bridge.as_ref().map(|b| b.settings());
        Self {
            url: mm.map(|m| base(&m.url)).unwrap_or_default(),
            team: mm.map(|m| m.team.clone()).unwrap_or_default(),
            channel: mm.map(|m| m.channel.clone()).unwrap_or_default(),
            ..Self::default()
        }
    }
}

/// The server and token entered in step 1.
struct Draft {
    url: Url,
    token: SecretString,
}

impl Draft {
    fn client(&self) -> Client {
        Client::new(&base(&self.url), self.token.clone())
    }

    fn settings(&self, team: &str, channel: &str) -> MattermostSettings {
        MattermostSettings {
            url: self.url.clone(),
            token: self.token.clone(),
            team: team.to_owned(),
            channel: channel.to_owned(),
        }
    }
}

async fn load_draft(state: &AppState, signed: &Signed) -> Result<Option<Draft>, PageError> {
    let since = now_ms() - DRAFT_LIFETIME.as_millis() as i64;
    let row = state
        .store
        .get_connection_draft(&signed.token_hash, since)
        .await?;
    Ok(row.and_then(|r| {
        Some(Draft {
            url: connection::parse_url(&r.url).ok()?,
            token: SecretString::from(r.token),
        })
    }))
}

/// The card on the settings page.
pub fn card(state: &AppState, signed: &Signed, ed: &Editor) -> Markup {
    let (status, dot) = connection_state(state);
    let bridge = state.bridge();
    let mm = bridge.as_ref().map(|b| b.settings());
    let origin = connection::origin(state);
    let saved_token = mm.is_some();
    html! {
        section.card id="mattermost" {
            h2 { "Mattermost connection" }
            p { span class={ "dot " (dot) } data-connection=(dot) {} (status) }
            dl {
                dt { "Server" } dd { (mm.map(|m| base(&m.url)).unwrap_or_else(|| "not set".into())) }
                dt { "Team" } dd { (mm.map(|m| m.team.clone()).unwrap_or_else(|| "not set".into())) }
                dt { "Requests channel" } dd { (mm.map(|m| m.channel.clone()).unwrap_or_else(|| "not set".into())) }
                dt { "Token" } dd { (if saved_token { "set (never shown)" } else { "not set" }) }
                dt { "Set in" } dd data-origin=(match origin { Origin::Deployment(_) => "deployment", Origin::BackOffice => "back_office", Origin::None => "none" }) { (origin.label()) }
            }
            @if let Some(p) = &ed.problem {
                p.error role="alert" data-error=(p.code) { (p.message) }
            }
            @if let Origin::Deployment(_) = origin {
                p.hint id="connection-fixed" {
                    "The connection is set by the PARLEY_MATTERMOST_* settings (" (origin.label()) "), which win over the back office: change them there and restart parley. "
                    "The README's \"Connecting Mattermost\" says how to set up the bot."
                }
                fieldset disabled {
                    legend { "Change the connection" }
                    label { "Mattermost URL" input type="url" name="url" value=(ed.url) disabled; }
                    label { "Bot access token" input type="password" name="token" value="" placeholder="set (never shown)" disabled; }
                    button type="button" disabled { "List the bot's teams" }
                }
            } @else {
                (steps(signed, ed, saved_token))
            }
            form method="post" action="/admin/settings/test" {
                (csrf_field(&signed.csrf))
                button.secondary type="submit" { "Test connection" }
                " " span.hint { "checks the connection in force" }
            }
            @if let Some(r) = &ed.report {
                p.hint {
                    @if ed.report_of_entered {
                        "Checks of the values entered above (not saved). Where the advice names a "
                        code { "PARLEY_MATTERMOST_…" } " setting, the value entered above is meant."
                    } @else {
                        "Checks of the connection in force:"
                    }
                }
                (report_view(r))
            }
        }
    }
}

fn steps(signed: &Signed, ed: &Editor, saved_token: bool) -> Markup {
    let picked_in_results = ed
        .channels
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.name == ed.channel));
    html! {
        form.step method="post" action="/admin/settings/connection/teams" {
            (csrf_field(&signed.csrf))
            fieldset {
                legend { "1. Server and bot" }
                label { "Mattermost URL"
                    input type="url" name="url" value=(ed.url) placeholder="https://chat.example.com" required; }
                label { "Bot access token"
                    // Never given a value: the token is not sent back to the browser.
                    input type="password" name="token" value="" autocomplete="off"
                        placeholder=(if saved_token { "set: leave blank to keep the saved token" } else { "the bot account's access token" }); }
                button type="submit" { "List the bot's teams" }
            }
        }
        @if ed.draft {
            form.step method="post" action="/admin/settings/connection/channels" {
                (csrf_field(&signed.csrf))
                fieldset {
                    legend { "2. Team and requests channel" }
                    p.hint { "Server " strong { (ed.url) } "; the token entered is kept on the server for 30 minutes, never shown." }
                    label { "Team"
                        select name="team" {
                            @for t in &ed.teams {
                                option value=(t.name) selected[t.name == ed.team] {
                                    (if t.display_name.is_empty() { &t.name } else { &t.display_name }) " (" (t.name) ")"
                                }
                            }
                        }
                    }
                    label { "Find the requests channel (part of its name)"
                        input type="search" name="term" value=(ed.term) placeholder="e.g. requests"; }
                    button type="submit" { "Search channels" }
                }
            }
        }
        @if let (true, Some(channels)) = (ed.draft, &ed.channels) {
            form.step method="post" action="/admin/settings/connection" {
                (csrf_field(&signed.csrf))
                input type="hidden" name="team" value=(ed.team);
                input type="hidden" name="term" value=(ed.term);
                fieldset {
                    legend { "3. Requests channel in " (ed.team) }
                    @if channels.is_empty() {
                        p.empty { "No public channel of this team matches \u{201c}" (ed.term) "\u{201d}." }
                    }
                    @for c in channels {
                        label.check {
                            input type="radio" name="channel" value=(c.name) checked[c.name == ed.channel];
                            " " (if c.display_name.is_empty() { &c.name } else { &c.display_name }) " (~" (c.name) ")"
                            @if c.kind == "P" { " · private" }
                        }
                    }
                    label { "Or its exact name, as in its URL (private channels are not found by search)"
                        input type="text" name="channel_name" value=(if picked_in_results { "" } else { ed.channel.as_str() }) placeholder="e.g. chat-requests"; }
                    p {
                        button.secondary type="submit" formaction="/admin/settings/connection/test" { "Test these settings" }
                        " "
                        button type="submit" { "Save and connect" }
                    }
                    p.hint { "Saving runs the same checks first and refuses when an essential one fails. The connection is then used at once, without a restart." }
                }
            }
        }
    }
}

/// Renders the settings page with the card in this state.
async fn show(
    state: &AppState,
    signed: &Signed,
    ed: Editor,
    status: StatusCode,
) -> Result<Response, PageError> {
    settings_page(state, signed, &ed, None, status).await
}

/// Refuses every change while the deployment settings set the connection.
async fn refuse_if_fixed(state: &AppState, signed: &Signed) -> Result<Option<Response>, PageError> {
    let Some(source) = connection::fixed_by_deployment(&state.settings) else {
        return Ok(None);
    };
    let ed = Editor {
        problem: Some(problem(
            "set_by_deployment",
            format!(
                "Nothing was changed: the connection is set by the PARLEY_MATTERMOST_* settings ({}), which win over the back office.",
                Origin::Deployment(source).label()
            ),
        )),
        ..Editor::initial(state)
    };
    show(state, signed, ed, StatusCode::CONFLICT)
        .await
        .map(Some)
}

/// What to tell the admin about a failed call, by kind; the details go to the log.
fn explain(e: &MmError, url: &str, doing: &str) -> Problem {
    tracing::warn!(error = %e, server = ?url, "{doing} failed");
    match e {
        MmError::Unreachable(_) => problem(
            "unreachable",
            format!(
                "parley cannot reach {url}: check the address, and that this machine can reach it (DNS, firewall, proxy, TLS certificate)."
            ),
        ),
        MmError::Api { status: 401, .. } => problem(
            "token_refused",
            "Mattermost refuses the token (wrong, revoked, or a personal token while personal access tokens are disabled): copy the bot's token again from Integrations → Bot Accounts.",
        ),
        MmError::Api { status, id, .. } => problem(
            "mattermost_error",
            format!("Mattermost refused {doing} ({status} {id})."),
        ),
        MmError::RateLimited { .. } => problem(
            "mattermost_error",
            "Mattermost is rate limiting parley: try again in a minute.",
        ),
        MmError::Setup(p) => problem("setup", format!("{p}.")),
        MmError::Protocol(detail) => not_mattermost(url, detail),
    }
}

/// The one answer for every server that is not Mattermost (a redirect, a web page, other
/// JSON): no token was sent to it (the ping goes without), nor to where it points.
fn not_mattermost(url: &str, detail: &str) -> Problem {
    problem(
        "not_mattermost",
        format!(
            "This address does not answer like a Mattermost server: {url}: {detail}. Enter the address you open Mattermost at, without a path such as /api/v4 or a team name."
        ),
    )
}

/// `POST /admin/settings/connection/teams`: step 1.
pub async fn teams(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Form(form): Form<ConnectionForm>,
) -> Result<Response, PageError> {
    if let Some(refused) = refuse_if_fixed(&state, &signed).await? {
        return Ok(refused);
    }
    let mut ed = Editor {
        url: form.url.trim().trim_end_matches('/').to_owned(),
        ..Editor::initial(&state)
    };
    let url = match connection::parse_url(&form.url) {
        Ok(u) => u,
        Err(message) => {
            ed.problem = Some(problem("invalid_url", message));
            return show(&state, &signed, ed, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let token = match form.token.trim() {
        "" => match state
            .bridge()
            .filter(|_| connection::origin(&state) == Origin::BackOffice)
        {
            // Only to the saved server: a typo must not hand the token to whoever answers.
            Some(b) if base(&b.settings().url) == base(&url) => b.settings().token.clone(),
            Some(_) => {
                ed.problem = Some(problem(
                    "token_missing",
                    "Enter the bot's access token for this server: the saved token is only sent to the saved server.",
                ));
                return show(&state, &signed, ed, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
            None => {
                ed.problem = Some(problem("token_missing", "Enter the bot's access token."));
                return show(&state, &signed, ed, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        },
        typed => SecretString::from(typed.to_owned()),
    };
    let draft = Draft { url, token };
    let shown = base(&draft.url);
    let teams = match server_teams(&draft.client(), &shown).await {
        Ok(teams) => teams,
        Err(p) => {
            ed.problem = Some(p);
            return show(&state, &signed, ed, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    state
        .store
        .put_connection_draft(
            &signed.token_hash,
            &shown,
            draft.token.expose_secret(),
            now_ms(),
        )
        .await?;
    if !teams.iter().any(|t| t.name == ed.team) {
        ed.team = teams.first().map(|t| t.name.clone()).unwrap_or_default();
    }
    ed.url = shown;
    ed.teams = teams;
    ed.draft = true;
    show(&state, &signed, ed, StatusCode::OK).await
}

/// The server is Mattermost, the token works, and the bot's teams (at least one).
async fn server_teams(client: &Client, url: &str) -> Result<Vec<Team>, Problem> {
    match client.ping().await {
        Ok(p) if p.status.eq_ignore_ascii_case("ok") => {}
        Ok(p) => {
            return Err(not_mattermost(
                url,
                &format!("its ping answers {:?}, not OK", p.status),
            ));
        }
        // A refusal of the ping, which every Mattermost answers to anyone, even signed out.
        Err(MmError::Api { status, .. }) if status < 500 => {
            return Err(not_mattermost(
                url,
                &format!("/api/v4/system/ping answers {status}"),
            ));
        }
        Err(e) => return Err(explain(&e, url, "the ping")),
    }
    let me = client
        .me_with_roles()
        .await
        .map_err(|e| explain(&e, url, "checking the token"))?;
    let teams = client
        .my_teams()
        .await
        .map_err(|e| explain(&e, url, "listing the bot's teams"))?;
    if teams.is_empty() {
        return Err(problem(
            "no_team",
            format!(
                "@{} is not a member of any team: add it to the team where chats are to be created (Main menu → View members → Add members), then try again.",
                me.username
            ),
        ));
    }
    Ok(teams)
}

/// Steps 2 and 3 start here: the draft and the team, or the page to show instead.
async fn entered(
    state: &AppState,
    signed: &Signed,
    form: &ConnectionForm,
) -> Result<Result<(Draft, Editor, Team), Response>, PageError> {
    let mut ed = Editor {
        team: form.team.trim().to_owned(),
        term: form.term.trim().to_owned(),
        ..Editor::initial(state)
    };
    let Some(draft) = load_draft(state, signed).await? else {
        ed.problem = Some(problem(
            "draft_expired",
            "The server and token entered are no longer at hand (they are kept for 30 minutes): enter them again.",
        ));
        return Ok(Err(show(state, signed, ed, StatusCode::CONFLICT).await?));
    };
    ed.url = base(&draft.url);
    ed.draft = true;
    let teams = match draft.client().my_teams().await {
        Ok(t) => t,
        Err(e) => {
            ed.problem = Some(explain(&e, &ed.url, "listing the bot's teams"));
            return Ok(Err(show(state, signed, ed, StatusCode::BAD_GATEWAY).await?));
        }
    };
    ed.teams = teams;
    let Some(team) = ed.teams.iter().find(|t| t.name == ed.team).cloned() else {
        ed.problem = Some(problem(
            "team_unknown",
            format!(
                "The bot is not a member of a team `{}`: choose one of its teams.",
                ed.team
            ),
        ));
        return Ok(Err(show(
            state,
            signed,
            ed,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await?));
    };
    Ok(Ok((draft, ed, team)))
}

/// Searches the team's channels for the editor's term (when it has one).
async fn search(draft: &Draft, team: &Team, ed: &mut Editor) {
    if ed.term.is_empty() {
        ed.channels = Some(Vec::new());
        return;
    }
    match draft.client().search_channels(&team.id, &ed.term).await {
        Ok(found) => {
            ed.channels = Some(
                found
                    .into_iter()
                    .filter(|c| c.delete_at == 0 && matches!(c.kind.as_str(), "O" | "P"))
                    .collect(),
            )
        }
        Err(e) => {
            ed.channels = Some(Vec::new());
            ed.problem = Some(explain(&e, &ed.url, "searching the channels"));
        }
    }
}

/// `POST /admin/settings/connection/channels`: step 2.
pub async fn channels(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    Form(form): Form<ConnectionForm>,
) -> Result<Response, PageError> {
    if let Some(refused) = refuse_if_fixed(&state, &signed).await? {
        return Ok(refused);
    }
    let (draft, mut ed, team) = match entered(&state, &signed, &form).await? {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    if ed.term.is_empty() {
        ed.problem = Some(problem(
            "term_missing",
            "Type part of the requests channel's name to search for it.",
        ));
        return show(&state, &signed, ed, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    search(&draft, &team, &mut ed).await;
    let status = if ed.problem.is_some() {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    show(&state, &signed, ed, status).await
}

/// Step 3 (test or save): the entered connection, or the page to show instead.
async fn chosen(
    state: &AppState,
    signed: &Signed,
    form: &ConnectionForm,
) -> Result<Result<(MattermostSettings, Editor), Response>, PageError> {
    let (draft, mut ed, team) = match entered(state, signed, form).await? {
        Ok(x) => x,
        Err(page) => return Ok(Err(page)),
    };
    search(&draft, &team, &mut ed).await;
    let typed = form.channel_name.trim().trim_start_matches('~').trim();
    ed.channel = if typed.is_empty() {
        form.channel.trim().to_owned()
    } else {
        typed.to_owned()
    };
    if ed.channel.is_empty() {
        ed.problem = Some(problem(
            "channel_missing",
            "Pick the requests channel from the results, or type its exact name.",
        ));
        return Ok(Err(show(
            state,
            signed,
            ed,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await?));
    }
    let mm = draft.settings(&team.name, &ed.channel);
    Ok(Ok((mm, ed)))
}

/// The doctor's checks of a connection, with the deployment's other settings.
async fn check(state: &AppState, mm: &MattermostSettings) -> Report {
    let mut settings = (*state.settings).clone();
    settings.mattermost = Some(mm.clone());
    doctor::run_with(&settings, Some(&state.signer)).await
}

/// The entered connection and the doctor's report on it, or the page to show instead (the
/// connection is fixed by the deployment, or a step's values are missing or wrong).
async fn checked(
    state: &AppState,
    signed: &Signed,
    form: &ConnectionForm,
) -> Result<Result<(MattermostSettings, Editor, Report), Response>, PageError> {
    if let Some(refused) = refuse_if_fixed(state, signed).await? {
        return Ok(Err(refused));
    }
    let (mm, ed) = match chosen(state, signed, form).await? {
        Ok(x) => x,
        Err(page) => return Ok(Err(page)),
    };
    let report = check(state, &mm).await;
    Ok(Ok((mm, ed, report)))
}

/// `POST /admin/settings/connection/test`: the doctor's checks on the entered values.
pub async fn test(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Form(form): Form<ConnectionForm>,
) -> Result<Response, PageError> {
    let (_, mut ed, report) = match checked(&state, &signed, &form).await? {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    audit_test(&state, &signed, &ip.to_string(), &report, true).await?;
    ed.report = Some(report);
    ed.report_of_entered = true;
    show(&state, &signed, ed, StatusCode::OK).await
}

/// Records a test of a connection (the entered one or the one in force).
pub async fn audit_test(
    state: &AppState,
    signed: &Signed,
    ip: &str,
    report: &Report,
    entered: bool,
) -> Result<(), PageError> {
    let verdict = if report.passed() {
        "all essential checks passed"
    } else {
        "essential checks failed"
    };
    let detail = if entered {
        format!("entered values (not saved): {verdict}")
    } else {
        verdict.to_owned()
    };
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(&signed.email),
            action: "connection_tested",
            detail: Some(&detail),
            ip: Some(ip),
            ..NewAudit::default()
        })
        .await?;
    Ok(())
}

/// `POST /admin/settings/connection`: checks, then saves and applies the entered connection.
pub async fn save(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    Form(form): Form<ConnectionForm>,
) -> Result<Response, PageError> {
    let (mm, mut ed, report) = match checked(&state, &signed, &form).await? {
        Ok(x) => x,
        Err(page) => return Ok(page),
    };
    if !report.passed() {
        ed.problem = Some(problem(
            "checks_failed",
            "Nothing was saved: an essential check failed (see below). Correct the values and try again.",
        ));
        ed.report = Some(report);
        ed.report_of_entered = true;
        return show(&state, &signed, ed, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    connection::save(&state, mm, &signed.email, &ip.to_string()).await?;
    state
        .store
        .delete_connection_draft(&signed.token_hash)
        .await?;
    Ok(Redirect::to("/admin/settings?saved=connection#mattermost").into_response())
}
