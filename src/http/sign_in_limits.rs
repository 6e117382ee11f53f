//! The back office's sign-in limits, held per process: attempts per address, the failure
//! budgets of e-mails that are no account, and the bound on password hashing. (The failure
//! budgets of accounts are in the database, so every instance and `parley admin unlock` see
//! them; see `app::accounts`.)

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use sha2::{Digest, Sha256};

use super::{password_work::PasswordWork, rate_limit::address_key};
use crate::{
    app::accounts::{FAILURE_WINDOW, locked},
    storage::now_ms,
};

/// Most unknown e-mails whose failures are kept in memory; beyond it they are not counted
/// (the per-address limit still holds), so memory stays bounded.
const MAX_UNKNOWN_TRACKED: usize = 100_000;

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Process-wide state of the back office: the per-address sign-in limit, the failure budgets
/// of e-mails that are no account, and the bound on password hashing. (The failure budgets of
/// accounts are in the database, so every instance and `parley admin unlock` see them.)
pub struct SignInLimits {
    login_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// SHA-256 of an unknown e-mail → (failures, window start): unknown e-mails are locked like
    /// accounts, so a lock does not tell an attacker which e-mails are accounts.
    unknown: std::sync::Mutex<std::collections::HashMap<[u8; 32], (i64, i64)>>,
    /// The bound on concurrent password hashing.
    pub password_work: PasswordWork,
    /// Held while a refused sign-in is counted on its audit line, so that concurrent refusals
    /// add to one line instead of racing to write one each (per process).
    pub audit_counting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SignInLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignInLimits")
    }
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl SignInLimits {
    /// Per address (an IPv6 address per /64): 20 attempts, then one every 3 s.
    pub fn new() -> Self {
        Self::with_password_work(PasswordWork::for_this_machine())
    }

    pub fn with_password_work(password_work: PasswordWork) -> Self {
        let n = |v: u32| NonZeroU32::new(v).expect("non-zero");
        Self {
            login_per_ip: governor::RateLimiter::keyed(Quota::per_minute(n(20))),
            unknown: Default::default(),
            password_work,
            audit_counting: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether the address may try to sign in now (every attempt counts), else how long to
    /// wait.
    pub fn allow_address(&self, ip: IpAddr) -> Result<(), Duration> {
        self.login_per_ip
            .check_key(&address_key(ip))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Counts an attempt on an e-mail that is no account (every one fails) and says whether
    /// its budget is spent, like [`Store::count_sign_in_attempt`] with [`locked`] for accounts.
    pub fn count_unknown_attempt(&self, email: &str, now: i64) -> Option<Duration> {
        let key: [u8; 32] = Sha256::digest(email.as_bytes()).into();
        let mut unknown = self.unknown.lock().expect("not poisoned");
        if unknown.len() >= MAX_UNKNOWN_TRACKED && !unknown.contains_key(&key) {
            return None;
        }
        let entry = unknown.entry(key).or_insert((0, now));
        if entry.1 < now - ms(FAILURE_WINDOW) {
            *entry = (0, now);
        }
        entry.0 += 1;
        locked(entry.0, entry.1, now)
    }

    /// Forgets idle keys and ended failure windows.
    pub fn forget_idle(&self) {
        self.login_per_ip.retain_recent();
        let cutoff = now_ms() - ms(FAILURE_WINDOW);
        self.unknown
            .lock()
            .expect("not poisoned")
            .retain(|_, (_, first_at)| *first_at >= cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::accounts::MAX_FAILURES;

    #[test]
    fn an_address_is_limited_and_ipv6_per_64() {
        let limits = SignInLimits::new();
        let allowed = (0..30u16)
            .filter(|i| {
                limits
                    .allow_address(IpAddr::from([0x2001, 0xdb8, 0, 7, *i, 1, 2, 3]))
                    .is_ok()
            })
            .count();
        assert_eq!(allowed, 20);
        assert!(
            limits
                .allow_address(IpAddr::from([0x2001, 0xdb8, 0, 8, 0, 0, 0, 1]))
                .is_ok()
        );
    }

    #[test]
    fn unknown_emails_lock_like_accounts_and_unlock_after_the_window() {
        let limits = SignInLimits::new();
        let now = 1_000_000_000;
        for _ in 0..MAX_FAILURES {
            assert_eq!(limits.count_unknown_attempt("x@example.com", now), None);
        }
        let wait = limits.count_unknown_attempt("x@example.com", now + 1000);
        assert_eq!(wait, Some(FAILURE_WINDOW - Duration::from_secs(1)));
        assert_eq!(limits.count_unknown_attempt("y@example.com", now), None);
        let later = now + ms(FAILURE_WINDOW) + 1;
        assert_eq!(limits.count_unknown_attempt("x@example.com", later), None);
    }
}
