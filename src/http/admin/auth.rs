//! Who may use the back office: sign-in (rate limited, audited), the one-time setup links,
//! sign-out, and the guard every other back-office route passes: a live session, the role the
//! route needs, and for every POST the session's CSRF token and a same-origin `Origin`.

use axum::{
    Extension, Form,
    body::Body,
    extract::{Path, Query, Request, State},
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
    backoffice::{
        Role,
        accounts::{
            dummy_hash, hash_password, normalise_email, password_problem, session_is_live,
            verify_password,
        },
    },
    http::extract::ClientIp,
    security::{random_token, token_hash},
    state::AppState,
    storage::{audit::NewAudit, managers::SetupOutcome, now_ms},
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

/// Signs a manager in: a new session, its cookie, the audit line.
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
    Ok(jar
        .add(cookie(state, SESSION_COOKIE, token))
        .remove(Cookie::build(FORM_COOKIE).path("/admin")))
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

fn login_form(token: &str, next: &str, email: &str, problem: Option<&str>) -> maud::Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(p) = problem { p.error role="alert" { (p) } }
            form.card method="post" action="/admin/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label { "E-mail" input type="email" name="email" value=(email) required autocomplete="username"; }
                label { "Password" input type="password" name="password" required autocomplete="current-password"; }
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

/// `POST /admin/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    if !pre_session_form_ok(&state, &headers, &jar, &form.csrf) {
        return Ok(forbidden_form(None));
    }
    let ip_text = ip.to_string();
    let next = safe_next(&form.next).to_owned();
    let email = normalise_email(&form.email).unwrap_or_else(|| form.email.trim().to_lowercase());
    let fail = |status: StatusCode, text: &str| {
        let (jar, token) = form_token(&state, jar.clone());
        (
            jar,
            page(status, login_form(&token, &next, &email, Some(text))),
        )
            .into_response()
    };
    if !state.backoffice.allow_login(ip, &email) {
        state
            .store
            .insert_audit(&NewAudit {
                actor: Some(&email),
                action: "sign_in_failed",
                detail: Some("too many attempts"),
                ip: Some(&ip_text),
                ..NewAudit::default()
            })
            .await?;
        let mut response = fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts. Wait a minute, then try again.",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        return Ok(response);
    }
    let manager = state.store.get_manager_by_email(&email).await?;
    let stored = manager
        .as_ref()
        .and_then(|m| m.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_owned());
    let password = form.password.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    let manager = manager.filter(|m| matches && m.password_hash.is_some());
    let Some(manager) = manager else {
        state
            .store
            .insert_audit(&NewAudit {
                actor: Some(&email),
                action: "sign_in_failed",
                detail: Some("wrong e-mail or password"),
                ip: Some(&ip_text),
                ..NewAudit::default()
            })
            .await?;
        return Ok(fail(StatusCode::UNAUTHORIZED, "Wrong e-mail or password."));
    };
    if manager.disabled_at.is_some() {
        state
            .store
            .insert_audit(&NewAudit {
                actor: Some(&email),
                action: "sign_in_failed",
                detail: Some("account disabled"),
                ip: Some(&ip_text),
                ..NewAudit::default()
            })
            .await?;
        return Ok(fail(
            StatusCode::FORBIDDEN,
            "This account is disabled. Ask an admin to enable it.",
        ));
    }
    let jar = start_session(&state, jar, manager.id, &manager.email, &ip_text).await?;
    Ok((jar, Redirect::to(&next)).into_response())
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
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| PageError::Internal)?
        .map_err(|e| {
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
