//! The client's address: the socket peer (or the gateway's view of it), and behind trusted
//! proxies the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use ipnet::IpNet;

use super::request_context::GatewayPeer;

/// The client's address: the socket peer in the host, the gateway's view in Lambda; through a
/// trusted proxy, the right-most `X-Forwarded-For` entry that is not itself trusted.
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => addr.ip(),
        None => req.extensions().get::<GatewayPeer>()?.0,
    };
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

/// Every address in the `X-Forwarded-For` headers, left (first hop) to right (last hop);
/// entries that are not addresses are skipped.
pub fn forwarded_for(headers: &http::HeaderMap) -> Vec<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect()
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
}
