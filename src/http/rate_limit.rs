//! Per-IP and per-chat rate limits, so a script cannot flood Mattermost through parley.
//! Refusals carry the time to wait, sent as `Retry-After`. IPv6 addresses count per /64 (see
//! [`address_key`]).

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    time::Duration,
};

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
        check(self.chats_per_ip.check_key(&address_key(ip)))
    }

    pub fn check_offline_message(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(self.offline_per_ip.check_key(&address_key(ip)))
    }

    pub fn check_message(&self, ip: IpAddr, chat_id: &str) -> Result<(), ApiError> {
        check(self.messages_per_chat.check_key(&chat_id.to_owned()))?;
        check(self.messages_per_ip.check_key(&address_key(ip)))
    }

    /// Forgets idle keys so memory does not grow with every visitor ever seen.
    pub fn forget_idle(&self) {
        self.chats_per_ip.retain_recent();
        self.messages_per_ip.retain_recent();
        self.messages_per_chat.retain_recent();
        self.offline_per_ip.retain_recent();
    }
}

/// The key an address is counted under: an IPv4 address as it is (an IPv4-mapped IPv6
/// address as its IPv4 address), an IPv6 address as its /64 network. One subscriber or host
/// usually gets a whole /64 and can pick any address in it, so counting single IPv6 addresses
/// would let one client take 2^64 budgets.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

/// How an address key is written in the audit log: `2001:db8:1:2::/64` for an IPv6 network.
pub fn address_key_text(ip: IpAddr) -> String {
    match address_key(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(address_key_text(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(address_key_text("192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    #[test]
    fn one_ipv6_network_shares_one_budget() {
        let limits = RateLimits::new(&crate::config::Limits {
            max_message_chars: 4000,
            max_field_chars: 200,
            chats_per_minute_per_ip: 3,
            messages_per_minute: 30,
        });
        let allowed = (1..=10u16)
            .filter(|i| {
                let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, *i, 0, 0, 1));
                limits.check_new_chat(ip).is_ok()
            })
            .count();
        assert_eq!(allowed, 3);
    }
}
