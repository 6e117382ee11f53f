//! The "untrusted" outgoing HTTP rule for action callbacks: destinations that resolve
//! to internal addresses are refused unless listed in
//! `AllowedUntrustedInternalConnections` (MM:public/shared/httpservice/client.go).

use std::net::{IpAddr, Ipv4Addr};
use url::{Host, Url};

/// Loopback, private (RFC1918), CGNAT, link-local, ULA, unspecified and similar.
fn is_reserved(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_reserved_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_reserved_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (seg0 & 0xffc0) == 0xfe80 // fe80::/10 link local
        }
    }
}

fn is_reserved_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10
        || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(ip) & mask) == (u32::from(net) & mask)
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(ip) & mask) == (u128::from(net) & mask)
        }
        _ => false,
    }
}

fn trusted_entries(allowed: &str) -> Vec<&str> {
    allowed
        .split([' ', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn ip_allowed(ip: IpAddr, entries: &[&str]) -> bool {
    !is_reserved(ip)
        || entries
            .iter()
            .any(|e| e.parse::<IpAddr>().is_ok_and(|listed| listed == ip) || in_cidr(ip, e))
}

/// Ok when the sim may POST to `url`; Err carries the reason (the real error text).
pub async fn check_destination(url: &Url, allowed: &str) -> Result<(), String> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("unsupported protocol scheme {:?}", url.scheme()));
    }
    let entries = trusted_entries(allowed);
    let host = url.host().ok_or("missing host")?;
    let ips: Vec<IpAddr> = match host {
        Host::Ipv4(v4) => vec![IpAddr::V4(v4)],
        Host::Ipv6(v6) => vec![IpAddr::V6(v6)],
        Host::Domain(name) => {
            // A listed host name is trusted whatever it resolves to.
            if entries.iter().any(|e| e.eq_ignore_ascii_case(name)) {
                return Ok(());
            }
            let port = url.port_or_known_default().unwrap_or(80);
            tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| e.to_string())?
                .map(|sa| sa.ip())
                .collect()
        }
    };
    if ips.is_empty() {
        return Err("no addresses".into());
    }
    for ip in ips {
        if !ip_allowed(ip, &entries) {
            return Err(
                "address forbidden, you may need to set AllowedUntrustedInternalConnections to allow an integration access to your internal network"
                    .into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[tokio::test]
    async fn loopback_rules() {
        let u = Url::parse("http://127.0.0.1:9/x").unwrap();
        assert!(check_destination(&u, "").await.is_err());
        assert!(check_destination(&u, "127.0.0.1 localhost").await.is_ok());
        assert!(
            check_destination(&u, "10.0.0.0/8,127.0.0.0/8")
                .await
                .is_ok()
        );
        let l = Url::parse("http://localhost:9/x").unwrap();
        assert!(check_destination(&l, "").await.is_err());
        assert!(check_destination(&l, "localhost").await.is_ok());
        assert!(is_reserved(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(!is_reserved("93.184.216.34".parse().unwrap()));
    }
}
