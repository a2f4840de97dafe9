//! Who a request is counted against: its [`ClientKey`].
//!
//! The `X-Api-Key` header when present (a shop's backend behind one address still gets one
//! bucket per API key), else the client's address. That address is the TCP peer's, unless
//! the peer is a trusted proxy (`trusted_proxies`): then `X-Forwarded-For` is read from the
//! right, the hop the trusted proxy appended first, skipping further trusted proxies; the
//! first address that is not a trusted proxy is the client. Hops to the left of it were
//! written by the client itself (an AWS ALB appends to what the client sent), so they are
//! never believed, and a peer that is not a trusted proxy has its header ignored altogether.
//! An IPv6 client counts as its /64 network.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use cluster_config::rate_limit::IpNet;
use http::header::HeaderName;
use http::HeaderMap;

use crate::front::request::Request;

/// The header naming a client's API key.
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// The header a load balancer appends the client's address to.
pub const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Longer API keys are cut to this many bytes: a key is not a place to store 96 KiB.
const MAX_API_KEY_BYTES: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An API key, as a 64-bit keyed hash (no allocation per request, and the key itself is
    /// never stored), with its first four bytes for the label of keys of 16 bytes or more.
    ApiKey {
        hash: u64,
        prefix: Option<[u8; 4]>,
    },
    Addr(IpAddr),
    /// The one bucket every key not yet tracked shares while a class tracks `max_keys`.
    Overflow,
}

impl ClientKey {
    /// The key `req` is counted against; `hasher` (one per limiter, randomly keyed) hashes
    /// API keys, so that nobody can make two keys share a bucket on purpose.
    pub fn of(req: &Request, trusted: &[IpNet], hasher: &RandomState) -> Self {
        if let Some(v) = req.headers.get(API_KEY) {
            let bytes = v.as_bytes().trim_ascii();
            if !bytes.is_empty() {
                let bytes = &bytes[..bytes.len().min(MAX_API_KEY_BYTES)];
                let prefix = bytes.first_chunk::<4>().filter(|_| bytes.len() >= 16).copied();
                return ClientKey::ApiKey { hash: hasher.hash_one(bytes), prefix };
            }
        }
        // Requests built without a connection (unit tests) have no peer.
        let peer = req.peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p: SocketAddr| p.ip());
        ClientKey::Addr(per_client(client_addr(peer.to_canonical(), &req.headers, trusted)))
    }
}

/// Shown on `/regions` and the status page: addresses as they are; API keys as a short hash
/// (the same for one key while the router runs) and, for long keys, their first four
/// characters, so operators can tell clients apart without the page handing out working keys.
impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Addr(ip @ IpAddr::V6(_)) => write!(f, "{ip}/64"),
            ClientKey::Addr(ip) => write!(f, "{ip}"),
            ClientKey::Overflow => f.write_str("(new clients past max_keys)"),
            ClientKey::ApiKey { hash, prefix } => {
                let hash = hash >> 40;
                match prefix.map(|p| String::from_utf8_lossy(&p).into_owned()) {
                    Some(prefix) => write!(f, "api-key {prefix}… #{hash:06x}"),
                    None => write!(f, "api-key #{hash:06x}"),
                }
            }
        }
    }
}

/// Never the key itself in logs or debug output.
impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey({self})")
    }
}

/// An IPv6 client is its /64: one subscriber's network holds 2^64 addresses, each of which
/// would otherwise get a bucket of its own.
fn per_client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client's address: `peer`, or what trusted proxies say in `X-Forwarded-For`.
fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    // Several header lines form one list, in order (RFC 9110 section 5.3).
    let lines: Vec<&str> = headers.get_all(FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
    for hop in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
        // A hop we cannot read ends the walk: what is left of it cannot be trusted either.
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    client
}

/// `192.0.2.1`, `2001:db8::1`, and the forms with a port some proxies write
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    fn request(peer: &str, headers: &[(&HeaderName, &str)]) -> Request {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append((*name).clone(), HeaderValue::from_str(value).expect("value"));
        }
        let mut req = Request::new(Method::POST, "/recommendations", map, "");
        req.peer = Some(peer.parse().expect("peer"));
        req
    }

    fn addr(key: ClientKey) -> String {
        key.to_string()
    }

    fn key_of(req: &Request, trusted: &[IpNet]) -> ClientKey {
        ClientKey::of(req, trusted, &RandomState::new())
    }

    #[test]
    fn api_key_wins_over_any_address() {
        let req =
            request("192.0.2.1:5000", &[(&API_KEY, "shop-42-secret-abcdef"), (&FORWARDED_FOR, "1.1.1.1")]);
        let hasher = RandomState::new();
        let key = ClientKey::of(&req, &[], &hasher);
        assert!(matches!(key, ClientKey::ApiKey { prefix: Some(p), .. } if &p == b"shop"));
        let label = key.to_string();
        assert!(label.starts_with("api-key shop… #") && !label.contains("secret"), "{label}");
        assert!(!format!("{key:?}").contains("secret"));
        let short = ClientKey::of(&request("192.0.2.1:1", &[(&API_KEY, "short")]), &[], &hasher);
        assert!(!short.to_string().contains("shor"), "{short}");
        assert_ne!(short, key);
        let again = request("192.0.2.9:1", &[(&API_KEY, "shop-42-secret-abcdef")]);
        assert_eq!(ClientKey::of(&again, &[], &hasher), key);
    }

    #[test]
    fn forwarded_for_from_an_untrusted_peer_is_ignored() {
        let req = request("192.0.2.1:5000", &[(&FORWARDED_FOR, "203.0.113.9")]);
        assert_eq!(addr(key_of(&req, &[])), "192.0.2.1");
        assert_eq!(addr(key_of(&req, &nets(&["10.0.0.0/8"]))), "192.0.2.1");
    }

    #[test]
    fn trusted_proxies_name_the_client_and_spoofed_hops_left_of_it_are_skipped() {
        let lb = nets(&["10.0.0.0/8"]);
        // What the client wrote (198.51.100.1) comes first; the load balancer appended the real one.
        let req = request("10.1.2.3:5000", &[(&FORWARDED_FOR, "198.51.100.1, 203.0.113.9")]);
        assert_eq!(addr(key_of(&req, &lb)), "203.0.113.9");
        // Two trusted proxies in a row, over two header lines, one hop with a port.
        let req =
            request("10.1.2.3:5000", &[(&FORWARDED_FOR, "203.0.113.9:4711"), (&FORWARDED_FOR, "10.9.9.9")]);
        assert_eq!(addr(key_of(&req, &lb)), "203.0.113.9");
        // Garbage ends the walk at the last address read; no header: the proxy itself.
        let req = request("10.1.2.3:5000", &[(&FORWARDED_FOR, "unknown")]);
        assert_eq!(addr(key_of(&req, &lb)), "10.1.2.3");
        let req = request("[::ffff:10.1.2.3]:5000", &[(&FORWARDED_FOR, "[2001:db8::1]:80")]);
        assert_eq!(addr(key_of(&req, &lb)), "2001:db8::/64");
    }

    #[test]
    fn an_ipv6_client_is_its_64_network() {
        let a = key_of(&request("[2001:db8:0:1::1]:5000", &[]), &[]);
        let b = key_of(&request("[2001:db8:0:1:ffff::2]:5000", &[]), &[]);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2001:db8:0:1::/64");
        assert_ne!(a, key_of(&request("[2001:db8:0:2::1]:5000", &[]), &[]));
    }
}
