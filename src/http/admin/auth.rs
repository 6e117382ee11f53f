//! Who may use the back office: sign-in (rate limited, audited), the one-time setup links,
//! sign-out, and the guard every other back-office route passes: a live session, the role the
//! route needs, and for every POST the session's CSRF token and a same-origin `Origin`.

use std::{net::IpAddr, time::Duration};

use axum::{
    Extension, Form,
    body::Body,
    extract::{Path, Query, Request, State, rejection::FormRejection},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::views::{PageError, layout, message_page, page};
use crate::{
    app::accounts::{
        AUDIT_WINDOW, FAILURE_WINDOW, MAX_PASSWORD_CHARS, Role, dummy_hash, hash_password, locked,
        normalise_email, password_problem, session_is_live, verify_password,
    },
    http::state::AppState,
    http::{extract::ClientIp, rate_limit::address_key_text},
    security::{random_token, token_hash},
    storage::{
        audit::NewAudit,
        managers::{ManagerRow, SetupOutcome},
        now_ms,
    },
};

/// The session cookie (its value is the session token; only its hash is stored).
pub const SESSION_COOKIE: &str = "parley_session";
/// Before sign-in, the login and setup forms are protected by a double-submit token kept in
/// this cookie.
pub const FORM_COOKIE: &str = "parley_form";
/// Largest form body read by the CSRF check.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The signed-in manager, put into the request by the guard.
#[derive(Debug, Clone)]
pub struct Signed {
    pub manager_id: i64,
    pub email: String,
    pub role: Role,
    pub csrf: String,
    pub token_hash: String,
}

/// Guard of routes for every manager.
pub async fn require_manager(State(state): State<AppState>, req: Request, next: Next) -> Response {
    guard(state, req, next, Role::Manager).await
}

/// Guard of routes for admins only.
pub async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    guard(state, req, next, Role::Admin).await
}

async fn guard(state: AppState, req: Request, next: Next, needed: Role) -> Response {
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    let jar = CookieJar::from_headers(req.headers());
    let signed = match current_session(&state, &jar).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Some(signed) = signed else {
        if reading {
            let next_page = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/admin");
            let to = format!(
                "/admin/login?{}",
                super::views::query_string(&[("next", next_page)])
            );
            return Redirect::to(&to).into_response();
        }
        return message_page(
            StatusCode::UNAUTHORIZED,
            "Please sign in",
            None,
            "Your session has ended. Sign in again, then repeat what you were doing.",
        );
    };
    if needed == Role::Admin && signed.role != Role::Admin {
        return message_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            Some(&signed),
            "Only admins can open this page. Ask an admin if you need it.",
        );
    }
    let mut req = if reading {
        req
    } else {
        if !same_origin(&state, req.headers()) {
            return forbidden_form(Some(&signed));
        }
        match with_checked_token(req, &signed.csrf).await {
            Ok(req) => req,
            Err(response) => return response,
        }
    };
    req.extensions_mut().insert(signed);
    next.run(req).await
}

/// The live session of the request's cookie, if any (expired ones are removed).
async fn current_session(state: &AppState, jar: &CookieJar) -> Result<Option<Signed>, PageError> {
    let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    let hash = token_hash(&token);
    let Some(row) = state.store.get_session(&hash).await? else {
        return Ok(None);
    };
    let now = now_ms();
    if row.disabled_at.is_some() || !session_is_live(row.created_at, row.last_seen_at, now) {
        state.store.delete_session(&hash).await?;
        return Ok(None);
    }
    let Some(role) = Role::parse(&row.role) else {
        return Ok(None);
    };
    // One write a minute at most, not one per page.
    if now - row.last_seen_at > 60_000 {
        state.store.touch_session(&hash, now).await?;
    }
    Ok(Some(Signed {
        manager_id: row.manager_id,
        email: row.email,
        role,
        csrf: row.csrf_token,
        token_hash: hash,
    }))
}

fn forbidden_form(signed: Option<&Signed>) -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Form refused",
        signed,
        "This form was not sent from this back office, or it is too old. Go back, reload the \
         page and try again.",
    )
}

/// `Origin` (sent by browsers with every POST) must be parley's own; `Sec-Fetch-Site` must
/// not say cross-site. Clients that send neither rely on the token alone.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let public = state.settings.public_url.origin().ascii_serialization();
    if origin == public {
        return true;
    }
    // Reached directly (e.g. on the listen address) rather than through the public URL.
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        })
}

/// Reads the form body, checks its `csrf` field against `expected`, and gives the request
/// back with the same body for the handler.
async fn with_checked_token(req: Request, expected: &str) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            message_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                None,
                "The form is larger than the back office accepts.",
            )
        })?;
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if !sent.is_some_and(|s| tokens_match(&s, expected)) {
        return Err(forbidden_form(None));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Compares secrets without leaking where they differ (hashes first, then equality).
fn tokens_match(a: &str, b: &str) -> bool {
    !b.is_empty() && Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

fn secure(state: &AppState) -> bool {
    state.settings.public_url.scheme() == "https"
}

fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(state))
        .build()
}

/// The pre-session form token, made when the browser has none.
fn form_token(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    match jar.get(FORM_COOKIE).map(|c| c.value().to_owned()) {
        Some(t) if t.len() >= 32 && t.len() <= 100 => (jar, t),
        _ => {
            let token = random_token();
            (jar.add(cookie(state, FORM_COOKIE, token.clone())), token)
        }
    }
}

fn pre_session_form_ok(state: &AppState, headers: &HeaderMap, jar: &CookieJar, sent: &str) -> bool {
    same_origin(state, headers)
        && jar
            .get(FORM_COOKIE)
            .is_some_and(|c| tokens_match(sent, c.value()))
}

/// Signs a manager in: a new session, its cookie, the known-device cookie, the audit line.
async fn start_session(
    state: &AppState,
    jar: CookieJar,
    manager_id: i64,
    email: &str,
    ip: &str,
) -> Result<CookieJar, PageError> {
    let token = random_token();
    let now = now_ms();
    state
        .store
        .insert_session(&token_hash(&token), manager_id, &random_token(), ip, now)
        .await?;
    state.store.record_login(manager_id, now).await?;
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(email),
            action: "sign_in",
            ip: Some(ip),
            ..NewAudit::default()
        })
        .await?;
    let device = known_device(state, &jar, manager_id).unwrap_or_else(random_token);
    let device_cookie = Cookie::build((DEVICE_COOKIE, device_value(state, manager_id, &device)))
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(state))
        .max_age(time::Duration::days(DEVICE_COOKIE_DAYS))
        .build();
    Ok(jar
        .add(cookie(state, SESSION_COOKIE, token))
        .add(device_cookie)
        .remove(Cookie::build(FORM_COOKIE).path("/admin")))
}

/// A browser that signed in to an account before carries this cookie (signed, naming the
/// account and a random device id): its failed sign-ins on that account are counted apart from
/// everyone else's, so an attacker who spends the account's anonymous budget does not lock the
/// owner out (OWASP's "device cookies").
pub const DEVICE_COOKIE: &str = "parley_device";
const DEVICE_COOKIE_DAYS: i64 = 365;

fn device_value(state: &AppState, manager_id: i64, device: &str) -> String {
    let signed = format!("{manager_id}.{device}");
    let signature = state.signer.sign("known_device", &signed);
    format!("{signed}.{signature}")
}

/// The device id in the request's known-device cookie, if the cookie is genuine and names
/// `manager_id`.
fn known_device(state: &AppState, jar: &CookieJar, manager_id: i64) -> Option<String> {
    let value = jar.get(DEVICE_COOKIE)?.value();
    if value.len() > 200 {
        return None;
    }
    let (signed, signature) = value.rsplit_once('.')?;
    let (id, device) = signed.split_once('.')?;
    (id.parse::<i64>().ok()? == manager_id
        && !device.is_empty()
        && state.signer.verify("known_device", signed, signature))
    .then(|| device.to_owned())
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct NextQuery {
    next: String,
}

/// Only back-office paths are followed after sign-in (no open redirect).
fn safe_next(next: &str) -> &str {
    if next.starts_with("/admin") && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/admin"
    }
}

/// Largest sign-in form accepted (an e-mail of 254 bytes, a password of 200 characters, the
/// tokens and the `next` path fit many times over); larger ones are refused unread.
pub const MAX_LOGIN_FORM_BYTES: usize = 8 * 1024;

/// Why a sign-in was refused: the status, a stable code (in the page as `data-code` on the
/// alert, for scripts and tests), the text shown, and when to try again.
#[derive(Debug, Clone)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    text: String,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
            retry_after: None,
        }
    }

    fn wait(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait.max(Duration::from_secs(1)));
        self
    }

    fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sign_in_busy",
            "Many sign-ins are being checked right now. Try again in a few seconds.",
        )
        .wait(Duration::from_secs(BUSY_RETRY_SECS))
    }
}

/// What a refused request is told to wait when the password checks are all taken.
const BUSY_RETRY_SECS: u64 = 2;

/// A wait in words: "5 seconds", "a minute", "14 minutes".
fn minutes(wait: Duration) -> String {
    let secs = wait.as_secs().max(1);
    match secs.div_ceil(60) {
        _ if secs < 60 => format!("{secs} seconds"),
        1 => "a minute".to_owned(),
        n => format!("{n} minutes"),
    }
}

fn login_form(token: &str, next: &str, email: &str, problem: Option<&Refusal>) -> maud::Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(p) = problem { p.error role="alert" data-code=(p.code) { (p.text) } }
            form.card method="post" action="/admin/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label { "E-mail" input type="email" name="email" value=(email) required maxlength="254" autocomplete="username"; }
                label { "Password" input type="password" name="password" required maxlength="200" autocomplete="current-password"; }
                button type="submit" { "Sign in" }
            }
            p.hint { "No account yet? An admin creates one for you and sends you a link." }
        },
    )
}

/// `GET /admin/login`.
pub async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Response {
    let (jar, token) = form_token(&state, jar);
    let markup = login_form(&token, safe_next(&q.next), "", None);
    (jar, page(StatusCode::OK, markup)).into_response()
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
    csrf: String,
    next: String,
}

/// `POST /admin/login`. In order: the form token; the fields' sizes (refused unread beyond
/// them); the address's budget; the account's failure budget (its own for a known device);
/// a place among the password checks (or 503); the check. Refusals are audited with bounded
/// values only and counted on one line per address, account and reason per window.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let (status, text) = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                (StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
            } else {
                (StatusCode::BAD_REQUEST, "The form could not be read.")
            };
            let refusal = Refusal::new(status, "invalid_form", text);
            let (jar, token) = form_token(&state, jar);
            return Ok(refused(jar, &token, "/admin", "", &refusal));
        }
    };
    if !pre_session_form_ok(&state, &headers, &jar, &form.csrf) {
        return Ok(forbidden_form(None));
    }
    let next = safe_next(&form.next).to_owned();
    let (jar, token) = form_token(&state, jar);
    let Some(email) = normalise_email(&form.email) else {
        let refusal = Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
            "Enter your e-mail address (at most 254 characters).",
        );
        return Ok(refused(jar, &token, &next, "", &refusal));
    };
    if form.password.chars().count() > MAX_PASSWORD_CHARS {
        let refusal = Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_too_long",
            format!("Passwords have at most {MAX_PASSWORD_CHARS} characters."),
        );
        return Ok(refused(jar, &token, &next, &email, &refusal));
    }
    let outcome = check_sign_in(&state, &jar, ip, &email, form.password).await?;
    match outcome {
        Ok(manager) => {
            let jar =
                start_session(&state, jar, manager.id, &manager.email, &ip.to_string()).await?;
            Ok((jar, Redirect::to(&next)).into_response())
        }
        Err(refusal) => Ok(refused(jar, &token, &next, &email, &refusal)),
    }
}

/// The login page again, with what went wrong (and `Retry-After` when there is a wait).
fn refused(jar: CookieJar, token: &str, next: &str, email: &str, refusal: &Refusal) -> Response {
    let mut response = (
        jar,
        page(
            refusal.status,
            login_form(token, next, email, Some(refusal)),
        ),
    )
        .into_response();
    if let Some(wait) = refusal.retry_after {
        let secs = wait.as_secs_f64().ceil() as u64;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_str(&secs.to_string()).expect("digits"),
        );
    }
    response
}

/// Checks a sign-in whose fields are valid: the manager signed in, or why not (audited).
async fn check_sign_in(
    state: &AppState,
    jar: &CookieJar,
    ip: IpAddr,
    email: &str,
    password: String,
) -> Result<Result<ManagerRow, Refusal>, PageError> {
    let manager = state.store.get_manager_by_email(email).await?;
    // Only an account's own e-mail goes into the log: an unknown one is whatever the client
    // typed, so it is left out (the detail says "no such account").
    let actor = manager.as_ref().map(|m| m.email.clone());
    let audit = |detail: &'static str| {
        let actor = actor.clone();
        let address = address_key_text(ip);
        async move {
            let _one_at_a_time = state.sign_in.audit_counting.lock().await;
            let now = now_ms();
            state
                .store
                .count_audit(
                    &NewAudit {
                        actor: actor.as_deref(),
                        action: "sign_in_failed",
                        detail: Some(detail),
                        ip: Some(&address),
                        ..NewAudit::default()
                    },
                    now - AUDIT_WINDOW.as_millis() as i64,
                )
                .await
        }
    };
    let backoffice = &state.sign_in;
    if let Err(wait) = backoffice.allow_address(ip) {
        audit("too many attempts from this address").await?;
        return Ok(Err(Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "Too many sign-in attempts from your network. Try again in {}.",
                minutes(wait)
            ),
        )
        .wait(wait)));
    }
    let Ok(ticket) = backoffice.password_work.admit() else {
        audit("server busy").await?;
        return Ok(Err(Refusal::busy()));
    };
    // The attempt counts as a failure until the password is found right; counting first keeps
    // parallel guesses within the budget.
    let now = now_ms();
    let device = manager
        .as_ref()
        .and_then(|m| known_device(state, jar, m.id))
        .unwrap_or_default();
    let lock = match &manager {
        Some(m) => {
            let window_start = now - FAILURE_WINDOW.as_millis() as i64;
            let (failures, first_at) = state
                .store
                .count_sign_in_attempt(m.id, &device, now, window_start)
                .await?;
            locked(failures, first_at, now)
        }
        None => backoffice.count_unknown_attempt(email, now),
    };
    if let Some(wait) = lock {
        audit("account locked after failed sign-ins").await?;
        return Ok(Err(Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "account_locked",
            format!(
                "Too many failed sign-ins for this account. Try again in {} from this browser, \
                 sign in from a browser you used before, or ask an admin to unlock the account.",
                minutes(wait)
            ),
        )
        .wait(wait)));
    }
    let stored = manager
        .as_ref()
        .and_then(|m| m.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_owned());
    let Ok(matches) = ticket
        .run(move || verify_password(&password, &stored))
        .await
    else {
        return Ok(Err(Refusal::busy()));
    };
    let manager = manager.filter(|m| matches && m.password_hash.is_some());
    let Some(manager) = manager else {
        audit(if actor.is_some() {
            "wrong password"
        } else {
            "no such account"
        })
        .await?;
        return Ok(Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "wrong_credentials",
            "Wrong e-mail or password.",
        )));
    };
    state
        .store
        .forget_sign_in_failures(manager.id, &device)
        .await?;
    if manager.disabled_at.is_some() {
        audit("account disabled").await?;
        return Ok(Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "account_disabled",
            "This account is disabled. Ask an admin to enable it.",
        )));
    }
    Ok(Ok(manager))
}

/// `POST /admin/logout`.
pub async fn logout(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
) -> Result<Response, PageError> {
    state.store.delete_session(&signed.token_hash).await?;
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(&signed.email),
            action: "sign_out",
            ip: Some(&ip.to_string()),
            ..NewAudit::default()
        })
        .await?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/admin"));
    Ok((jar, Redirect::to("/admin/login")).into_response())
}

fn invalid_link() -> Response {
    message_page(
        StatusCode::GONE,
        "Link not valid",
        None,
        "This link is invalid, was used already, or has expired. Ask an admin for a new one \
         (or run `parley admin create-manager --email …` on the server).",
    )
}

fn setup_form(token: &str, first_run: bool, email: &str, problem: Option<&str>) -> maud::Markup {
    let title = if first_run {
        "Create the first admin"
    } else {
        "Set your password"
    };
    layout(
        title,
        None,
        html! {
            @if first_run {
                p { "Nobody can sign in to this parley yet. The account you create here is an admin: it can change settings and invite other managers." }
            }
            @if let Some(p) = problem { p.error role="alert" { (p) } }
            form.card method="post" {
                input type="hidden" name="csrf" value=(token);
                @if first_run {
                    label { "Your e-mail" input type="email" name="email" value=(email) required autocomplete="username"; }
                } @else {
                    p { "Account: " strong { (email) } }
                }
                label { "Password (at least 10 characters)" input type="password" name="password" required minlength="10" autocomplete="new-password"; }
                label { "The same password again" input type="password" name="password2" required minlength="10" autocomplete="new-password"; }
                button type="submit" { "Save and sign in" }
            }
        },
    )
}

/// What a setup link is for: `Some(None)` first run, `Some(Some(email))` a manager's.
async fn setup_target(state: &AppState, token: &str) -> Result<Option<Option<String>>, PageError> {
    if token.len() > 100 {
        return Ok(None);
    }
    let Some(row) = state.store.get_setup_token(&token_hash(token)).await? else {
        return Ok(None);
    };
    if row.used_at.is_some() || row.expires_at <= now_ms() {
        return Ok(None);
    }
    match row.manager_id {
        None if state.store.count_managers().await? > 0 => Ok(None),
        None => Ok(Some(None)),
        Some(id) => Ok(state.store.get_manager(id).await?.map(|m| Some(m.email))),
    }
}

/// `GET /admin/setup/{token}`.
pub async fn setup_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    jar: CookieJar,
) -> Result<Response, PageError> {
    let Some(target) = setup_target(&state, &token).await? else {
        return Ok(invalid_link());
    };
    let (jar, form_token) = form_token(&state, jar);
    let markup = setup_form(
        &form_token,
        target.is_none(),
        target.as_deref().unwrap_or_default(),
        None,
    );
    Ok((jar, page(StatusCode::OK, markup)).into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct SetupForm {
    csrf: String,
    email: String,
    password: String,
    password2: String,
}

/// `POST /admin/setup/{token}`: sets the password (creating the first admin on first run)
/// and signs the manager in.
pub async fn setup(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<SetupForm>,
) -> Result<Response, PageError> {
    if !pre_session_form_ok(&state, &headers, &jar, &form.csrf) {
        return Ok(forbidden_form(None));
    }
    let Some(target) = setup_target(&state, &token).await? else {
        return Ok(invalid_link());
    };
    let first_run = target.is_none();
    let email = match &target {
        Some(email) => Some(email.clone()),
        None => normalise_email(&form.email),
    };
    let problem = if email.is_none() {
        Some("Enter a valid e-mail address.".to_owned())
    } else if form.password != form.password2 {
        Some("The two passwords differ.".to_owned())
    } else {
        password_problem(&form.password).map(|p| {
            let mut p = p;
            p[..1].make_ascii_uppercase();
            format!("{p}.")
        })
    };
    if let Some(problem) = problem {
        let shown = email.clone().unwrap_or_else(|| form.email.clone());
        let markup = setup_form(&form.csrf, first_run, &shown, Some(&problem));
        return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, markup));
    }
    let email = email.expect("checked above");
    let password = form.password.clone();
    let Ok(hashed) = state
        .sign_in
        .password_work
        .run(move || hash_password(&password))
        .await
    else {
        let busy = Refusal::busy();
        let markup = setup_form(&form.csrf, first_run, &email, Some(&busy.text));
        let mut response = page(busy.status, markup);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
        return Ok(response);
    };
    let hash = hashed.map_err(|e| {
        tracing::error!(error = %e, "hashing a password failed");
        PageError::Internal
    })?;
    let outcome = state
        .store
        .complete_setup(&token_hash(&token), &email, &hash, now_ms())
        .await?;
    let SetupOutcome::Done(manager) = outcome else {
        return Ok(invalid_link());
    };
    let ip_text = ip.to_string();
    state
        .store
        .insert_audit(&NewAudit {
            actor: Some(&manager.email),
            action: if first_run {
                "first_admin_created"
            } else {
                "password_set"
            },
            target: Some(&manager.email),
            ip: Some(&ip_text),
            ..NewAudit::default()
        })
        .await?;
    let jar = start_session(&state, jar, manager.id, &manager.email, &ip_text).await?;
    Ok((jar, Redirect::to("/admin")).into_response())
}
