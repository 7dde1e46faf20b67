//! The SSRF guard for outbound requests to user-supplied URLs (webhook endpoints): which
//! addresses they may reach.
//!
//! A URL is checked at registration and again at every delivery: its scheme (`https`, unless
//! insecure URLs are allowed for development), then every address its host resolves to. One
//! refused address refuses the URL: a name that also resolves to an internal address is not
//! a public endpoint. The caller connects to the addresses [`check`] returns, never resolving
//! the name again, so a DNS answer that changes between the check and the connection (DNS
//! rebinding) cannot reach an internal address.
//!
//! Refused: every range IANA's special-purpose registries mark as not globally reachable
//! (loopback, private, link-local including the cloud metadata address 169.254.169.254, CGNAT
//! 100.64/10, documentation, benchmarking, reserved, multicast, unspecified, IPv6 ULA and
//! link-local), and IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64, 6to4)
//! when the embedded address is refused.

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
};

use ipnet::{Ipv4Net, Ipv6Net};

/// What the guard lets through besides public `https` addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `http://` URLs too (`WEBHOOK_ALLOW_INSECURE=1`, development).
    pub allow_insecure: bool,
    /// Loopback and private addresses too (`WEBHOOK_ALLOW_PRIVATE_TARGETS=1`, development
    /// and tests only).
    pub allow_private: bool,
}

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the URL does not parse: {0}")]
    Malformed(String),
    #[error("the URL must use https")]
    Insecure,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("{host} does not resolve: {error}")]
    Unresolvable { host: String, error: String },
    #[error("{host} resolves to {addr}, a {range} address, which webhooks may not reach")]
    Forbidden {
        host: String,
        addr: IpAddr,
        range: &'static str,
    },
}

/// Resolves a host name to addresses: the system resolver in deployments, a fixed table in
/// tests (a name that changes its answer between registration and delivery).
pub trait Resolve: Send + Sync + 'static {
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + '_>>;
}

/// `getaddrinfo`, through tokio's blocking pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + '_>> {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// A URL that passed the guard, with the addresses it may be called at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub url: url::Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

/// Checks `raw` under `policy`, resolving its host with `resolver`.
pub async fn check(
    raw: &str,
    policy: Policy,
    resolver: &Arc<dyn Resolve>,
) -> Result<Checked, Refused> {
    let url = url::Url::parse(raw).map_err(|e| Refused::Malformed(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_insecure => {}
        "http" => return Err(Refused::Insecure),
        other => return Err(Refused::Malformed(format!("unsupported scheme {other}"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(Refused::Malformed("the URL has no host".into())),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Refused::Malformed("the URL has no port".into()))?;
    let addrs = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        _ => resolver
            .resolve(&host, port)
            .await
            .map_err(|e| Refused::Unresolvable {
                host: host.clone(),
                error: e.to_string(),
            })?,
    };
    if addrs.is_empty() {
        return Err(Refused::Unresolvable {
            host,
            error: "no addresses".into(),
        });
    }
    for addr in &addrs {
        if let Err(range) = allowed(addr.ip(), policy) {
            return Err(Refused::Forbidden {
                host,
                addr: addr.ip(),
                range,
            });
        }
    }
    Ok(Checked { url, host, addrs })
}

/// Whether `policy` lets a request reach `ip`; the refused range's name otherwise.
pub fn allowed(ip: IpAddr, policy: Policy) -> Result<(), &'static str> {
    match forbidden(ip) {
        Some(_) if policy.allow_private && is_local(ip) => Ok(()),
        Some(range) => Err(range),
        None => Ok(()),
    }
}

/// What `allow_private` lets through: loopback and the private and ULA ranges (a receiver on
/// this machine or this network), never metadata or multicast addresses.
fn is_local(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

const V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "unspecified (this network)"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

const V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved (IPv4-compatible)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignment"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "reserved (SRv6)"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
];

/// The name of the refused range `ip` is in, or `None` for a globally reachable address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4.iter().find_map(|(net, name)| {
        let net: Ipv4Net = net.parse().ok()?;
        net.contains(&ip).then_some(*name)
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // Forms that carry an IPv4 address: refused when that address is.
    let embedded = if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // NAT64 well-known prefix 64:ff9b::/96.
        Some(Ipv4Addr::from(u32::from(s[6]) << 16 | u32::from(s[7])))
    } else if s[0] == 0x2002 {
        // 6to4 2002::/16: the IPv4 address is in bits 16..48.
        Some(Ipv4Addr::from(u32::from(s[1]) << 16 | u32::from(s[2])))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return forbidden_v4(v4);
    }
    V6.iter().find_map(|(net, name)| {
        let net: Ipv6Net = net.parse().ok()?;
        net.contains(&ip).then_some(*name)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        for refused in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.200",
            "198.18.0.1",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{refused} must be refused");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82a::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert_eq!(forbidden(ip), None, "{public} is public");
        }
    }

    /// A resolver answering from a table, and refusing any other name.
    struct Table(HashMap<&'static str, Vec<IpAddr>>);

    impl Resolve for Table {
        fn resolve(
            &self,
            host: &str,
            port: u16,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + '_>> {
            let found = self.0.get(host).map(|ips| {
                ips.iter()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect::<Vec<_>>()
            });
            Box::pin(async move { found.ok_or_else(|| std::io::Error::other("no such host")) })
        }
    }

    fn table(entries: &[(&'static str, &[&str])]) -> Arc<dyn Resolve> {
        Arc::new(Table(
            entries
                .iter()
                .map(|(host, ips)| (*host, ips.iter().map(|ip| ip.parse().unwrap()).collect()))
                .collect(),
        ))
    }

    #[tokio::test]
    async fn urls_are_checked_by_scheme_credentials_and_every_resolved_address() {
        let dns = table(&[
            ("hooks.example.com", &["93.184.216.34", "2606:4700::1"]),
            ("mixed.example.com", &["93.184.216.34", "10.0.0.8"]),
            ("localhost", &["127.0.0.1", "::1"]),
        ]);
        let strict = Policy::default();
        let ok = check("https://hooks.example.com/in?x=1", strict, &dns)
            .await
            .unwrap();
        assert_eq!(ok.host, "hooks.example.com");
        assert_eq!(ok.addrs.len(), 2);
        assert!(ok.addrs.iter().all(|a| a.port() == 443));

        let refused = |raw: &'static str, policy: Policy| {
            let dns = dns.clone();
            async move { check(raw, policy, &dns).await.unwrap_err() }
        };
        assert_eq!(
            refused("http://hooks.example.com/", strict).await,
            Refused::Insecure
        );
        assert_eq!(
            refused("https://u:p@hooks.example.com/", strict).await,
            Refused::Credentials
        );
        assert!(matches!(
            refused("ftp://hooks.example.com/", strict).await,
            Refused::Malformed(_)
        ));
        assert!(matches!(
            refused("not a url", strict).await,
            Refused::Malformed(_)
        ));
        assert!(matches!(
            refused("https://nowhere.example/", strict).await,
            Refused::Unresolvable { .. }
        ));
        for raw in [
            "https://127.0.0.1/",
            "https://10.0.0.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://169.254.169.254/latest/meta-data/",
            "https://localhost:8443/",
            "https://mixed.example.com/",
        ] {
            let err = refused(raw, strict).await;
            assert!(matches!(err, Refused::Forbidden { .. }), "{raw}: {err}");
        }
        let err = refused("https://mixed.example.com/", strict).await;
        assert_eq!(
            err.to_string(),
            "mixed.example.com resolves to 10.0.0.8, a private address, which webhooks may not \
             reach"
        );

        // Development: http and loopback allowed, the metadata address still not.
        let dev = Policy {
            allow_insecure: true,
            allow_private: true,
        };
        let local = check("http://localhost:9000/hook", dev, &dns)
            .await
            .unwrap();
        assert_eq!(local.addrs[0].port(), 9000);
        assert!(matches!(
            refused("http://169.254.169.254/", dev).await,
            Refused::Forbidden { .. }
        ));
    }
}
