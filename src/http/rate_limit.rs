//! Per-IP and per-chat rate limits, so a script cannot flood Mattermost through parley.
//! Refusals carry the time to wait, sent as `Retry-After`.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};

use crate::{config::Limits, http::error::ApiError};

/// The limiters of one process.
pub struct RateLimits {
    chats_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    messages_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    messages_per_chat: DefaultKeyedRateLimiter<String>,
    offline_per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least one"))
}

impl RateLimits {
    pub fn new(limits: &Limits) -> Self {
        let messages = limits.messages_per_minute;
        Self {
            chats_per_ip: governor::RateLimiter::keyed(per_minute(limits.chats_per_minute_per_ip)),
            // One address may host several visitors (an office behind NAT).
            messages_per_ip: governor::RateLimiter::keyed(per_minute(messages.saturating_mul(4))),
            messages_per_chat: governor::RateLimiter::keyed(per_minute(messages)),
            offline_per_ip: governor::RateLimiter::keyed(per_minute(
                limits.chats_per_minute_per_ip,
            )),
        }
    }

    pub fn check_new_chat(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(self.chats_per_ip.check_key(&ip))
    }

    pub fn check_offline_message(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(self.offline_per_ip.check_key(&ip))
    }

    pub fn check_message(&self, ip: IpAddr, chat_id: &str) -> Result<(), ApiError> {
        check(self.messages_per_chat.check_key(&chat_id.to_owned()))?;
        check(self.messages_per_ip.check_key(&ip))
    }

    /// Forgets idle keys so memory does not grow with every visitor ever seen.
    pub fn forget_idle(&self) {
        self.chats_per_ip.retain_recent();
        self.messages_per_ip.retain_recent();
        self.messages_per_chat.retain_recent();
        self.offline_per_ip.retain_recent();
    }
}

fn check(
    r: Result<(), governor::NotUntil<governor::clock::QuantaInstant>>,
) -> Result<(), ApiError> {
    r.map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::rate_limited(wait.max(Duration::from_secs(1)))
    })
}
