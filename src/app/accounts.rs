//! Manager accounts: Argon2id passwords, one-time setup links (first run, new managers,
//! password resets), session lifetimes and the sign-in limits: per address, and per account
//! counting failures only, with a budget of its own for each known device.

use std::time::Duration;

use crate::{
    security::{random_token, token_hash},
    storage::{Store, StoreError, managers::ManagerRow, now_ms},
};
use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

/// A manager's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including connection settings and managers.
    Admin,
    /// Chats, offline messages (and departments), not settings or managers.
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "manager" => Some(Self::Manager),
            _ => None,
        }
    }
}

/// A session ends after this long without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after sign-in, used or not.
pub const SESSION_ABSOLUTE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a first-run link works (a start after that, still without a manager, makes a new one).
pub const FIRST_RUN_LINK_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long a link for a new manager or a password reset works.
pub const SETUP_LINK_LIFETIME: Duration = Duration::from_secs(72 * 3600);
/// Shortest accepted password.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest accepted password (a longer one cannot be right, so it is refused unchecked).
pub const MAX_PASSWORD_CHARS: usize = 200;

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Hashes a password with Argon2id (the crate's default parameters, OWASP's minimum).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())?
        .to_string())
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A stored hash of a random password, verified when the account is unknown so that an
/// unknown e-mail takes as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_token()).expect("hashing works"))
}

/// Why a password is not accepted, if it is not.
pub fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        Some(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ))
    } else if n > MAX_PASSWORD_CHARS {
        Some(format!(
            "the password must have at most {MAX_PASSWORD_CHARS} characters"
        ))
    } else {
        None
    }
}

/// Normalises an e-mail address used as a sign-in name; `None` if it is not one.
pub fn normalise_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email)
}

/// The link for a setup token.
pub fn setup_link(public_base: &str, token: &str) -> String {
    format!("{}/admin/setup/{token}", public_base.trim_end_matches('/'))
}

/// When no manager exists, makes a new first-run link (replacing an earlier one) and returns
/// it; otherwise `None`.
pub async fn first_run_link(
    store: &Store,
    public_base: &str,
) -> Result<Option<String>, StoreError> {
    if store.count_managers().await? > 0 {
        return Ok(None);
    }
    let token = random_token();
    let now = now_ms();
    store
        .insert_setup_token(
            &token_hash(&token),
            None,
            now,
            now + ms(FIRST_RUN_LINK_LIFETIME),
        )
        .await?;
    Ok(Some(setup_link(public_base, &token)))
}

/// What a start without any manager does about the first-run link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstRun {
    /// A new link, made just now: the only time it is shown.
    New(String),
    /// A link made (and shown) at an earlier start still works until `expires_at` (Unix ms).
    Pending { created_at: i64, expires_at: i64 },
}

/// At start, with no manager yet: a new first-run link unless an earlier one still works
/// (a link is logged only when it is made, so an old log does not hold a fresh one and a
/// restart does not break the link someone is about to open); `None` once a manager exists.
pub async fn first_run_at_start(
    store: &Store,
    public_base: &str,
) -> Result<Option<FirstRun>, StoreError> {
    if store.count_managers().await? > 0 {
        return Ok(None);
    }
    if let Some((created_at, expires_at)) = store.live_first_run_link(now_ms()).await? {
        return Ok(Some(FirstRun::Pending {
            created_at,
            expires_at,
        }));
    }
    Ok(first_run_link(store, public_base).await?.map(FirstRun::New))
}

/// Why a manager could not be created.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("`{0}` is not an e-mail address")]
    InvalidEmail(String),
    #[error("a manager with the e-mail {0} exists already")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a manager without a password and returns a setup link for that person.
#[tracing::instrument(skip_all, fields(role = role.as_str()))]
pub async fn invite(
    store: &Store,
    public_base: &str,
    email: &str,
    role: Role,
) -> Result<(ManagerRow, String), InviteError> {
    let email =
        normalise_email(email).ok_or_else(|| InviteError::InvalidEmail(email.trim().into()))?;
    let manager = store
        .insert_manager(&email, role.as_str(), now_ms())
        .await?
        .ok_or(InviteError::Exists(email))?;
    let link = reset_link(store, public_base, manager.id).await?;
    Ok((manager, link))
}

/// A new setup link for an existing manager (a password reset); earlier links stop working.
#[tracing::instrument(skip_all, fields(manager_id))]
pub async fn reset_link(
    store: &Store,
    public_base: &str,
    manager_id: i64,
) -> Result<String, StoreError> {
    let token = random_token();
    let now = now_ms();
    store
        .insert_setup_token(
            &token_hash(&token),
            Some(manager_id),
            now,
            now + ms(SETUP_LINK_LIFETIME),
        )
        .await?;
    Ok(setup_link(public_base, &token))
}

/// Clears the sign-in lock of `manager` (every browser's budget) and audits it; whether
/// there were failures to clear.
#[tracing::instrument(skip_all, fields(manager_id = manager.id))]
pub async fn unlock(store: &Store, manager: &ManagerRow) -> Result<bool, StoreError> {
    let cleared = store.unlock_sign_in(manager.id).await? > 0;
    store
        .insert_audit(&crate::storage::audit::NewAudit {
            actor: Some("parley admin"),
            action: "sign_in_unlocked",
            target: Some(&manager.email),
            ..Default::default()
        })
        .await?;
    Ok(cleared)
}

/// Whether a session started at `created_at` and last used at `last_seen_at` still holds.
pub fn session_is_live(created_at: i64, last_seen_at: i64, now: i64) -> bool {
    now - last_seen_at < ms(SESSION_IDLE) && now - created_at < ms(SESSION_ABSOLUTE)
}

/// Removes sessions past their idle or absolute lifetime (they are refused anyway; this keeps
/// the table small).
pub async fn forget_expired_sessions(store: &Store) {
    let now = now_ms();
    let result = store
        .delete_expired_sessions(now - ms(SESSION_IDLE), now - ms(SESSION_ABSOLUTE))
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not remove expired back-office sessions");
    }
    let lifetime = ms(super::connection::DRAFT_LIFETIME);
    if let Err(e) = store.delete_old_connection_drafts(now - lifetime).await {
        tracing::warn!(error = %e, "could not remove old drafts of the Mattermost connection");
    }
}

/// Failed sign-ins one budget allows within [`FAILURE_WINDOW`]; the next attempts are refused
/// until the window ends (or `parley admin unlock`).
pub const MAX_FAILURES: i64 = 5;
/// The window failed sign-ins are counted in, from the first failure.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Refused sign-ins within this window share one audit line (per address, account, reason).
pub const AUDIT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Whether a budget with `failures` counted in a window that began at `first_at` is spent:
/// `Some(wait)` until the window ends.
pub fn locked(failures: i64, first_at: i64, now: i64) -> Option<Duration> {
    let end = first_at + ms(FAILURE_WINDOW);
    (failures > MAX_FAILURES && end > now).then(|| Duration::from_millis((end - now) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalise_email(" Ann@Example.COM "),
            Some("ann@example.com".into())
        );
        for bad in ["", "ann", "ann@", "@x.com", "ann@x", "a b@x.com"] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let h = 3_600_000;
        assert!(session_is_live(0, 0, h));
        assert!(!session_is_live(0, 0, 9 * h));
        assert!(session_is_live(0, 7 * 24 * h - 2 * h, 7 * 24 * h - h));
        assert!(!session_is_live(0, 7 * 24 * h, 7 * 24 * h + 1));
    }
}
