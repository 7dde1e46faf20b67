//! The client's address: the socket peer (or the gateway's view of it), and behind trusted
//! proxies the right-most `X-Forwarded-For` entry that is not itself a trusted proxy; and the
//! bucket an address counts against for rate limiting.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use ipnet::IpNet;

use super::request_context::GatewayPeer;

/// The client's address: the socket peer in the host, the gateway's view in Lambda; through a
/// trusted proxy, the right-most `X-Forwarded-For` entry that is not itself trusted.
/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports for an
/// IPv4 client) are unmapped first, so one client is one address however it connected.
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => addr.ip(),
        None => req.extensions().get::<GatewayPeer>()?.0,
    }
    .to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    Some(
        forwarded_for(req.headers())
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// Every address in the `X-Forwarded-For` headers, left (first hop) to right (last hop),
/// unmapped; a hop may carry a port (`192.0.2.1:4711`, `[2001:db8::1]:443`, as some proxies
/// write it); entries that are not addresses are skipped.
pub fn forwarded_for(headers: &http::HeaderMap) -> Vec<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| parse_hop(hop.trim()))
        .map(|ip| ip.to_canonical())
        .collect()
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        // `[2001:db8::1]` without a port.
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// What an address counts against: itself for IPv4, its /64 for IPv6 (an IPv6 client is
/// handed a whole /64 and can rotate through 2⁶⁴ addresses of it).
pub fn rate_limit_bucket(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1));
            format!("{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_from(peer: &str, xff: Option<&str>) -> Request {
        let mut req = http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(
            format!("{peer}:40000").parse::<SocketAddr>().unwrap(),
        ));
        if let Some(xff) = xff {
            req.headers_mut()
                .insert("x-forwarded-for", xff.parse().unwrap());
        }
        req
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Untrusted peer: its X-Forwarded-For is ignored (it could say anything).
        let req = request_from("198.51.100.7", Some("203.0.113.9"));
        assert_eq!(client_ip(&req, &trusted), Some(ip("198.51.100.7")));
        // Trusted peer: the right-most untrusted hop is the client; spoofed left entries lose.
        let req = request_from("10.0.0.2", Some("1.2.3.4, 203.0.113.9, 10.0.0.5"));
        assert_eq!(client_ip(&req, &trusted), Some(ip("203.0.113.9")));
        // No trust configured: the peer, whatever the header says.
        assert_eq!(client_ip(&req, &[]), Some(ip("10.0.0.2")));
        // In Lambda the gateway's view stands in for the socket peer.
        let mut req = http::Request::get("/")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(client_ip(&req, &trusted), None);
        req.extensions_mut().insert(GatewayPeer(ip("192.0.2.1")));
        assert_eq!(client_ip(&req, &trusted), Some(ip("192.0.2.1")));
    }

    #[test]
    fn hops_with_ports_and_mapped_addresses_are_understood() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let req = request_from("10.0.0.2", Some("203.0.113.9:4711, 10.0.0.5:80"));
        assert_eq!(client_ip(&req, &trusted), Some(ip("203.0.113.9")));
        let req = request_from("10.0.0.2", Some("[2001:db8::7]:443"));
        assert_eq!(client_ip(&req, &trusted), Some(ip("2001:db8::7")));
        let req = request_from("10.0.0.2", Some("[2001:db8::8], ::ffff:198.51.100.1"));
        assert_eq!(client_ip(&req, &trusted), Some(ip("198.51.100.1")));
        // No usable hop: the peer itself, never one bucket shared by everyone.
        let req = request_from("10.0.0.2", Some("unknown, garbage"));
        assert_eq!(client_ip(&req, &trusted), Some(ip("10.0.0.2")));
        // A dual-stack socket's mapped peer is the IPv4 client.
        let req = request_from("[::ffff:198.51.100.7]", None);
        assert_eq!(client_ip(&req, &[]), Some(ip("198.51.100.7")));
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_ipv4_per_address() {
        let bucket = |s: &str| rate_limit_bucket(s.parse().unwrap());
        assert_eq!(bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            bucket("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "2001:db8:1:2::/64"
        );
        assert_ne!(bucket("2001:db8:1:3::1"), bucket("2001:db8:1:2::1"));
        assert_eq!(bucket("198.51.100.7"), "198.51.100.7");
        assert_eq!(bucket("::ffff:198.51.100.7"), "198.51.100.7");
    }
}
