//! Requests through a reverse proxy: `X-Forwarded-Proto` and `X-Forwarded-Host` are believed
//! only from the addresses in `trusted_proxies` (IPs or CIDR blocks); links are then written with
//! the scheme and host the client used (`https://…` behind an HTTPS proxy). From anyone else they
//! are ignored, so a client cannot make the service write links to `http://evil.example`.

use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, header};
use std::net::{IpAddr, SocketAddr};

/// The scheme the client used, as decided here (a client-sent value is removed first).
pub const PROTO: HeaderName = HeaderName::from_static("x-wangge-proto");

/// An IP or a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Block {
    type Err = String;
    fn from_str(s: &str) -> Result<Block, String> {
        let (ip, bits) = match s.trim().split_once('/') {
            Some((ip, b)) => (ip, Some(b)),
            None => (s.trim(), None),
        };
        let net: IpAddr = ip.parse().map_err(|_| {
            format!("{s:?}: expected an IP address or a CIDR block such as 10.0.0.0/8")
        })?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Block { net, bits })
    }
}

impl Block {
    /// Does the block hold `ip`? (IPv4-mapped IPv6 addresses count as IPv4.)
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn first(h: &axum::http::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The address of the client a request comes from: the peer, or — when the peer is a trusted
/// proxy — the last address in `X-Forwarded-For` that is not one of the trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The key rate limits and the audit log use ("unknown" without an address).
    #[must_use]
    pub fn key(self) -> String {
        self.0
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or(ClientAddr(None)))
    }
}

fn forwarded_for(h: &axum::http::HeaderMap, trusted: &[Block]) -> Option<IpAddr> {
    let all: Vec<IpAddr> = h
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    all.into_iter()
        .rev()
        .find(|ip| !trusted.iter().any(|b| b.contains(*ip)))
}

/// Decide the scheme and host links are written with, and the client's address (also put in
/// the request's extensions as [`ClientAddr`]).
pub fn apply(req: &mut axum::extract::Request, trusted: &[Block]) -> ClientAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let from_proxy = peer.is_some_and(|p| trusted.iter().any(|b| b.contains(p)));
    let client = ClientAddr(if from_proxy {
        forwarded_for(req.headers(), trusted).or(peer)
    } else {
        peer
    });
    req.extensions_mut().insert(client);
    let h = req.headers_mut();
    h.remove(PROTO);
    if peer.is_some_and(|p| trusted.iter().any(|b| b.contains(p))) {
        if let Some(proto) = first(h, "x-forwarded-proto")
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| p == "https" || p == "http")
            && let Ok(v) = HeaderValue::from_str(&proto)
        {
            h.insert(PROTO, v);
        }
        if let Some(host) = first(h, "x-forwarded-host")
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
            && let Ok(v) = HeaderValue::from_str(&host)
        {
            h.insert(header::HOST, v);
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let b: Block = "10.0.0.0/8".parse().unwrap();
        assert!(b.contains("10.1.2.3".parse().unwrap()));
        assert!(!b.contains("11.0.0.1".parse().unwrap()));
        assert!(b.contains("::ffff:10.0.0.7".parse().unwrap()));
        let one: Block = "127.0.0.1".parse().unwrap();
        assert!(
            one.contains("127.0.0.1".parse().unwrap())
                && !one.contains("127.0.0.2".parse().unwrap())
        );
        let v6: Block = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Block>().is_err() && "x".parse::<Block>().is_err());
    }

    fn client_of(peer: &str, xff: Option<&str>) -> Option<IpAddr> {
        let mut req = axum::extract::Request::new(axum::body::Body::empty());
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        if let Some(x) = xff {
            req.headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_str(x).unwrap());
        }
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        apply(&mut req, &trusted).0
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // a client cannot choose its address by sending the header itself
        assert_eq!(
            client_of("203.0.113.9:5000", Some("1.2.3.4")),
            ip("203.0.113.9")
        );
        // through our proxy: the last address it did not add itself
        assert_eq!(
            client_of("10.0.0.2:5000", Some("1.2.3.4, 198.51.100.7")),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_of("10.0.0.2:5000", Some("198.51.100.7, 10.0.0.9")),
            ip("198.51.100.7")
        );
        assert_eq!(client_of("10.0.0.2:5000", None), ip("10.0.0.2"));
    }
}
