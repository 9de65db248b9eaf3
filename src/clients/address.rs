//! Who a request comes from. The TCP peer, unless the peer is one of `--trusted-proxies`:
//! then `X-Forwarded-For` is walked from the right (each proxy appends the address it saw)
//! and the first address that is not a trusted proxy is the client. Entries left of it
//! were written by the client or by proxies we do not know, so they are never believed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use actix_http::header::HeaderMap;
use ipnet::IpNet;

/// Bits of an IPv6 address that name one subscriber: ISPs and mobile carriers hand each
/// line a whole /64 and a device may pick any address in it, so a limit keyed by the full
/// address would be a limit on nothing.
pub const IPV6_CLIENT_PREFIX: u8 = 64;

/// What the per-client limits count: an IPv4 address, or the /64 of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of `ip`. An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, what a dual-stack
    /// listener reports) is keyed as the IPv4 address: keyed by its /64, every IPv4 client
    /// would share one key.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & (u128::MAX << (128 - IPV6_CLIENT_PREFIX));
                ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }

    /// The key of a request whose peer is unknown (a request built in-process, never one
    /// from a socket): all of them share it.
    pub fn unknown() -> Self {
        ClientKey(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/{IPV6_CLIENT_PREFIX}"),
        }
    }
}

/// `--trusted-proxies`: the networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether a header an edge adds (`--region-header`) is believed from `peer`: from any
    /// peer when no proxies are configured (the operator says the edge is in front), else
    /// only from a trusted one (`None`, a request not from a socket, is not one).
    pub fn believes_edge_headers_from(&self, peer: Option<IpAddr>) -> bool {
        self.0.is_empty() || peer.is_some_and(|p| self.trusts(p))
    }

    /// The client address of a request from `peer` carrying the `X-Forwarded-For` header
    /// values `forwarded_for` (in the order received; several header lines read as one
    /// comma-separated list).
    ///
    /// From an untrusted peer the header is ignored. From a trusted one, the first entry
    /// from the right that is not a trusted proxy is the client; an entry that is not an
    /// IP address ends the walk and the peer is the client (a proxy we trust would not
    /// write one, so the list cannot be read past it); when every entry is a trusted proxy
    /// the request started inside them and the leftmost entry is the client.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a [u8]>) -> IpAddr {
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        // Only requests through a trusted proxy get here: collecting is off the common path.
        let values: Vec<&[u8]> = forwarded_for.into_iter().collect();
        let entries = values.iter().rev().flat_map(|v| v.rsplit(|&b| b == b','));
        let mut client = peer;
        for entry in entries {
            let Some(ip) = std::str::from_utf8(entry)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
            else {
                return peer;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// [`client_ip`](Self::client_ip) of a request, as a [`ClientKey`]; `peer` is `None`
    /// only for requests that did not come from a socket.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientKey {
        match peer {
            Some(peer) => {
                let forwarded = headers.get_all("x-forwarded-for").map(|v| v.as_bytes());
                ClientKey::of(self.client_ip(peer, forwarded))
            }
            None => ClientKey::unknown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::header::{HeaderName, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| crate::config::parse_cidr(n).unwrap()).collect())
    }

    fn client(p: &TrustedProxies, peer: &str, xff: &[&str]) -> IpAddr {
        p.client_ip(ip(peer), xff.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(client(&none, "203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&p, "203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
    }

    #[test]
    fn the_walk_takes_the_first_untrusted_address_from_the_right() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7"]);
        // client, then a CDN edge we trust (192.0.2.7), then our nginx (10.0.0.5) as peer.
        assert_eq!(client(&p, "10.0.0.5", &["198.51.100.1, 192.0.2.7"]), ip("198.51.100.1"));
        // What the client wrote itself, left of its own address, is never believed.
        assert_eq!(
            client(&p, "10.0.0.5", &["1.2.3.4, 198.51.100.1, 192.0.2.7"]),
            ip("198.51.100.1")
        );
        // Spaces are optional; several header lines read as one list, in order.
        assert_eq!(
            client(&p, "10.0.0.5", &["1.2.3.4,198.51.100.1", "192.0.2.7"]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&p, "10.0.0.5", &[]), ip("10.0.0.5"));
    }

    #[test]
    fn an_unparseable_entry_ends_the_walk_at_the_peer() {
        let p = proxies(&["10.0.0.0/8"]);
        for xff in ["198.51.100.1, unknown", "198.51.100.1:5555", "198.51.100.1,", "", "_"] {
            assert_eq!(client(&p, "10.0.0.5", &[xff]), ip("10.0.0.5"), "{xff:?}");
        }
        // Garbage left of the client is never reached.
        assert_eq!(client(&p, "10.0.0.5", &["garbage, 198.51.100.1"]), ip("198.51.100.1"));
        // Nor read past: a trusted hop followed by garbage gives the peer.
        assert_eq!(client(&p, "10.0.0.5", &["garbage, 10.1.1.1"]), ip("10.0.0.5"));
        let invalid_utf8: &[u8] = &[0xff, b'1'];
        assert_eq!(p.client_ip(ip("10.0.0.5"), [invalid_utf8]), ip("10.0.0.5"));
    }

    #[test]
    fn when_every_entry_is_trusted_the_leftmost_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(client(&p, "10.0.0.5", &["10.9.9.9, 10.1.1.1"]), ip("10.9.9.9"));
    }

    #[test]
    fn ipv6_entries_and_mapped_peers() {
        let p = proxies(&["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(client(&p, "fd00::1", &["2001:db8::1"]), ip("2001:db8::1"));
        // A dual-stack listener reports an IPv4 proxy as ::ffff:10.0.0.5: still trusted.
        assert_eq!(client(&p, "::ffff:10.0.0.5", &["198.51.100.1"]), ip("198.51.100.1"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = ClientKey::of(ip("2001:db8:1:2:aaaa::1"));
        let b = ClientKey::of(ip("2001:db8:1:2:bbbb:cccc:dddd:eeee"));
        let other = ClientKey::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_clients_are_keyed_by_their_address_mapped_or_not() {
        let a = ClientKey::of(ip("198.51.100.1"));
        assert_eq!(a, ClientKey::of(ip("::ffff:198.51.100.1")));
        assert_ne!(a, ClientKey::of(ip("198.51.100.2")));
        assert_ne!(
            ClientKey::of(ip("::ffff:198.51.100.1")),
            ClientKey::of(ip("::ffff:198.51.100.2")),
            "not one /64 for every IPv4 client"
        );
        assert_eq!(a.to_string(), "198.51.100.1");
    }

    #[test]
    fn requests_are_keyed_from_their_headers() {
        let p = proxies(&["127.0.0.1"]);
        let mut headers = HeaderMap::new();
        headers.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("2001:db8::5, 127.0.0.1"),
        );
        let key = p.client(Some(ip("127.0.0.1")), &headers);
        assert_eq!(key, ClientKey::of(ip("2001:db8::9")));
        assert_eq!(p.client(None, &headers), ClientKey::unknown());
        assert_eq!(
            p.client(Some(ip("127.0.0.2")), &headers),
            ClientKey::of(ip("127.0.0.2"))
        );
    }
}
