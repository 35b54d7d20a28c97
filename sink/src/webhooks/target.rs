//! Where deliveries may go. Private, loopback, link-local and other internal addresses are
//! refused unless allowed (local development, tests), checked on the addresses a name resolves
//! to, on every attempt, inside the HTTP client's own resolver, so a name cannot resolve to a
//! public address when checked and an internal one when connected.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Ends every refusal, so a delivery error can be recognised as one.
pub const NOT_REACHABLE: &str = "which webhooks may not reach";

/// True for addresses a webhook must not reach from inside the deployment: every special-use
/// range of the IANA registries (RFC 6890 and later), and IPv6 transition prefixes, which can
/// carry an internal IPv4 address (NAT64, 6to4, Teredo, IPv4-compatible).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let [first, second, ..] = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || v6.segments()[..6] == [0; 6] // IPv4-compatible, ::/96
                || (first == 0x0064 && second == 0xff9b) // NAT64, 64:ff9b::/96 and 64:ff9b:1::/48
                || first == 0x2002 // 6to4
                || (first == 0x2001 && second == 0) // Teredo
                || (first == 0x2001 && second == 0x0db8) // documentation
                || (first == 0x2001 && (0x10..0x30).contains(&second)) // ORCHID
                || (first == 0x2001 && second == 2 && v6.segments()[2] == 0) // benchmarking
                || (first == 0x0100 && v6.segments()[1..4] == [0; 3]) // discard-only
        }
    }
}

/// Resolves with the system resolver and refuses names that lead to internal addresses.
pub struct GuardedResolver {
    pub allow_internal: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_internal = self.allow_internal;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.iter().copied().filter(|addr| allow_internal || !is_internal(addr.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves only to private or internal addresses, {NOT_REACHABLE}").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The error for a URL naming an internal address literally (the resolver never sees those).
pub fn refused_literal(url: &reqwest::Url, allow_internal: bool) -> Option<String> {
    let host = url.host_str()?;
    let ip: IpAddr = host.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    (!allow_internal && is_internal(ip)).then(|| format!("{ip} is a private or internal address, {NOT_REACHABLE}"))
}

/// Through a proxy, which resolves the target itself: the error when the target's name resolves
/// to any internal address (the proxy might connect to that one), or does not resolve.
pub async fn refused_through_proxy(url: &reqwest::Url, allow_internal: bool) -> Option<String> {
    if allow_internal {
        return None;
    }
    if let Some(refused) = refused_literal(url, allow_internal) {
        return Some(refused);
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default().unwrap_or(443);
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let internal: Vec<IpAddr> = addrs.map(|addr| addr.ip()).filter(|ip| is_internal(*ip)).collect();
            (!internal.is_empty())
                .then(|| format!("{host} resolves to internal addresses ({internal:?}), {NOT_REACHABLE}"))
        }
        Err(error) => Some(format!("{host} does not resolve ({error}), so it cannot be checked, {NOT_REACHABLE}")),
    }
}

pub fn resolver(allow_internal: bool) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver { allow_internal })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "2002:a00:1::1",
            "2001::1",
            "::10.0.0.1",
            "fec0::1",
            "2001:db8::1",
            "100::1",
            "192.0.0.8",
            "192.88.99.1",
            "198.18.0.1",
        ] {
            assert!(is_internal(internal.parse().expect("ip")), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "2001:4860:4860::8888", "192.0.3.1"] {
            assert!(!is_internal(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn literal_internal_urls_are_refused_unless_allowed() {
        let url = reqwest::Url::parse("http://169.254.169.254/latest/meta-data").expect("url");
        assert!(refused_literal(&url, false).is_some());
        assert!(refused_literal(&url, true).is_none());
        assert!(refused_literal(&reqwest::Url::parse("https://example.com/").expect("url"), false).is_none());
    }
}
