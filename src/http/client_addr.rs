//! Who the client is: the TCP peer, or, behind trusted proxies, the address the outermost
//! trusted proxy saw, read from the right of `X-Forwarded-For` (see [`ProxyTrust`]).

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::config::ProxyTrust;

/// The client's address for limits, chats and the audit log. Any doubt (a header missing,
/// shorter than the configured hops, or with an entry that is not an address where the client
/// should be) gives the peer: the proxy's own address, which the client cannot choose.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trust: &ProxyTrust) -> IpAddr {
    let peer = canonical(peer);
    if !trust.enabled || (!trust.networks.is_empty() && !is_trusted(peer, trust)) {
        return peer;
    }
    // Several header lines make one list, in order (RFC 9110 §5.3).
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let found = if trust.networks.is_empty() {
        entries
            .len()
            .checked_sub(trust.hops)
            .and_then(|i| parse(entries[i]))
    } else {
        from_networks(&entries, trust)
    };
    found.unwrap_or(peer)
}

/// Walks from the right past the trusted proxies' own addresses; the first other entry is the
/// client. When every entry is a trusted address, the leftmost one is (a client inside the
/// trusted network).
fn from_networks(entries: &[&str], trust: &ProxyTrust) -> Option<IpAddr> {
    let mut last = None;
    for entry in entries.iter().rev() {
        let ip = parse(entry)?;
        if !is_trusted(ip, trust) {
            return Some(ip);
        }
        last = Some(ip);
    }
    last
}

fn is_trusted(ip: IpAddr, trust: &ProxyTrust) -> bool {
    trust.networks.iter().any(|n| n.contains(&ip))
}

/// One entry: a bare IPv4 or IPv6 address as nginx (`$remote_addr`) and most proxies write it.
/// Ports, brackets, `unknown` and obfuscated identifiers are not addresses and are not trusted.
fn parse(entry: &str) -> Option<IpAddr> {
    entry.parse().ok().map(canonical)
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:192.0.2.1`) is the IPv4 client, so it
/// shares one set of limits.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "10.0.0.2";

    fn addr(trust: &ProxyTrust, xff: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in xff {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        client_addr(PEER.parse().unwrap(), &headers, trust).to_string()
    }

    fn hops(n: usize) -> ProxyTrust {
        ProxyTrust {
            enabled: true,
            hops: n,
            networks: Vec::new(),
        }
    }

    fn networks(list: &[&str]) -> ProxyTrust {
        ProxyTrust {
            enabled: true,
            hops: 1,
            networks: list.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn without_trust_the_header_is_ignored() {
        let off = ProxyTrust::default();
        assert_eq!(addr(&off, &["203.0.113.7"]), PEER);
    }

    #[test]
    fn one_hop_takes_the_entry_the_proxy_appended() {
        let t = hops(1);
        assert_eq!(addr(&t, &["203.0.113.7"]), "203.0.113.7");
        assert_eq!(addr(&t, &["1.2.3.4, 203.0.113.7"]), "203.0.113.7");
        assert_eq!(addr(&t, &["1.2.3.4", "203.0.113.7"]), "203.0.113.7");
        assert_eq!(addr(&t, &["2001:db8::1"]), "2001:db8::1");
        assert_eq!(addr(&t, &["::ffff:203.0.113.7"]), "203.0.113.7");
    }

    #[test]
    fn n_hops_count_from_the_right() {
        let t = hops(2);
        assert_eq!(
            addr(&t, &["6.6.6.6, 203.0.113.7, 198.51.100.1"]),
            "203.0.113.7"
        );
        // Fewer entries than proxies: the chain is not what was configured.
        assert_eq!(addr(&t, &["203.0.113.7"]), PEER);
    }

    #[test]
    fn anything_but_an_address_where_the_client_should_be_gives_the_peer() {
        let t = hops(1);
        for bad in [
            "",
            "unknown",
            "203.0.113.7:443",
            "[2001:db8::1]",
            "_hidden",
            "203.0.113.7 6.6.6.6",
            "1.2.3.4, ",
            "999.1.1.1",
        ] {
            assert_eq!(addr(&t, &[bad]), PEER, "{bad:?}");
        }
        assert_eq!(addr(&t, &[]), PEER);
    }

    #[test]
    fn networks_trust_only_a_trusted_peer_and_skip_trusted_entries() {
        let t = networks(&["10.0.0.0/8", "192.0.2.0/24"]);
        assert_eq!(
            addr(&t, &["6.6.6.6, 203.0.113.7, 192.0.2.9"]),
            "203.0.113.7"
        );
        assert_eq!(addr(&t, &["203.0.113.7"]), "203.0.113.7");
        // Everything trusted: the deepest trusted address.
        assert_eq!(addr(&t, &["10.1.1.1, 192.0.2.9"]), "10.1.1.1");
        // A bad entry before the client is found stops the walk.
        assert_eq!(addr(&t, &["203.0.113.7, junk, 192.0.2.9"]), PEER);
        // A peer outside the networks is the client itself, header or not.
        let outside = networks(&["192.0.2.0/24"]);
        assert_eq!(addr(&outside, &["203.0.113.7"]), PEER);
    }
}
