//! The client behind a reverse proxy: a request that arrives from one of
//! the configured proxies (`http.trusted_proxies`) counts against the
//! address its `X-Forwarded-For` names, so that rate limits and anonymous
//! read places apply to each client, not to the proxy as a whole; and the
//! scheme and host the client asked for (`X-Forwarded-Proto`,
//! `X-Forwarded-Host`) are the ones links the node writes use.
//!
//! Each proxy appends the address it received the request from, so the
//! list is read from its right end: the first entry that is not a trusted
//! proxy is the client. Entries to its left were written by the client
//! itself and are never believed. The header of a connection from any
//! other address is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::web::ClientConn;

/// The header proxies (nginx, HAProxy, Apache, Traefik, cloud balancers)
/// append the address they received a request from to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The scheme the client spoke to the proxy (`https` where the proxy ends
/// TLS and passes plain HTTP on).
const FORWARDED_PROTO: &str = "x-forwarded-proto";
/// The host the client asked the proxy for, where the proxy passes on a
/// `Host` of its own.
const FORWARDED_HOST: &str = "x-forwarded-host";

/// How many entries of the list are read at most, from the right: a
/// chain of proxies longer than this is not a deployment, and a client
/// cannot make the node walk a header of thousands of entries.
const MAX_HOPS: usize = 16;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self { networks }
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks
            .iter()
            .any(|network| network.contains(&address))
    }

    /// Who a request from `peer` with `headers` speaks for: `peer` unless
    /// it is a trusted proxy, else the rightmost forwarded address that is
    /// not one. An entry that is not an address ends the walk at the proxy
    /// that passed it on; when every entry is a trusted proxy, the
    /// leftmost is the client.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let mut client = peer.ip().to_canonical();
        // Several headers are one list, in the order they came.
        let entries = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .rev()
            .flat_map(|value| value.as_bytes().rsplit(|&b| b == b','))
            .take(MAX_HOPS);
        for entry in entries {
            let Some(address) = std::str::from_utf8(entry).ok().and_then(parse_entry) else {
                break;
            };
            client = address.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        SocketAddr::new(client, 0)
    }
}

/// The scheme and host a client asked a trusted proxy for, as the proxy
/// says; a request extension, present only on requests from a trusted
/// proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedOrigin {
    /// `http` or `https`; anything else is not believed.
    pub scheme: Option<&'static str>,
    /// A plausible host name or address, with its port if any.
    pub host: Option<String>,
}

impl ForwardedOrigin {
    /// What the proxy `headers` came from says. A header sent more than
    /// once, or listing several values (a chain of proxies), is read at
    /// its last value: the one the nearest proxy set.
    pub fn read(headers: &HeaderMap) -> Self {
        let scheme = last_value(headers, FORWARDED_PROTO).and_then(|value| {
            ["https", "http"]
                .into_iter()
                .find(|scheme| value.eq_ignore_ascii_case(scheme))
        });
        let host = last_value(headers, FORWARDED_HOST)
            .filter(|host| plausible_host(host))
            .map(str::to_owned);
        Self { scheme, host }
    }
}

/// The last comma-separated value of the last `name` header, trimmed.
fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    (!last.is_empty()).then_some(last)
}

/// Whether `host` can stand in a URL as its authority: a name, an IPv4
/// address or a bracketed IPv6 address, with an optional port; nothing
/// that could end the URL or the XML it is written into.
pub fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// One entry of the list: an address, as proxies write it with or without
/// a port (`192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|at| at.ip()))
}

/// Puts the forwarded client in place of the proxy's address in the
/// request's connection info, which every route's client address
/// ([`crate::web::ClientAddr`]) reads, and, on a request from a trusted
/// proxy, what it forwarded of the client's URL as a [`ForwardedOrigin`].
pub fn resolve(proxies: &TrustedProxies, request: &mut axum::extract::Request) {
    if proxies.is_empty() {
        return;
    }
    let Some(ConnectInfo(conn)) = request.extensions().get::<ConnectInfo<ClientConn>>() else {
        return;
    };
    if !proxies.trusts(conn.addr.ip()) {
        return;
    }
    let client = proxies.client(conn.addr, request.headers());
    let conn = ClientConn {
        addr: client,
        activity: conn.activity.clone(),
    };
    let origin = ForwardedOrigin::read(request.headers());
    request.extensions_mut().insert(ConnectInfo(conn));
    request.extensions_mut().insert(origin);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn client(proxies: &TrustedProxies, peer: &str, values: &[&str]) -> String {
        proxies
            .client(peer.parse().unwrap(), &headers(values))
            .ip()
            .to_string()
    }

    #[test]
    fn only_a_trusted_proxy_is_believed() {
        let trusted = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            client(&trusted, "127.0.0.1:5000", &["192.0.2.7"]),
            "192.0.2.7"
        );
        // A client that connects directly names whoever it likes in vain.
        assert_eq!(
            trusted
                .client(
                    "198.51.100.9:5000".parse().unwrap(),
                    &headers(&["192.0.2.7"])
                )
                .to_string(),
            "198.51.100.9:5000"
        );
        // No proxies configured: nothing is believed.
        assert_eq!(
            client(&TrustedProxies::default(), "127.0.0.1:5000", &["192.0.2.7"]),
            "127.0.0.1"
        );
        // A trusted proxy that forwards nothing is its own client.
        assert_eq!(client(&trusted, "10.1.2.3:5000", &[]), "10.1.2.3");
    }

    #[test]
    fn the_rightmost_address_that_is_not_a_proxy_is_the_client() {
        let trusted = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        // The client wrote its own first entries; the proxy appended the
        // address it saw.
        assert_eq!(
            client(&trusted, "127.0.0.1:5000", &["1.1.1.1, 2.2.2.2, 192.0.2.7"]),
            "192.0.2.7"
        );
        // Two proxies: the outer one's entry is skipped.
        assert_eq!(
            client(
                &trusted,
                "127.0.0.1:5000",
                &["1.1.1.1, 192.0.2.7, 10.0.0.5"]
            ),
            "192.0.2.7"
        );
        // Several headers are one list in their order.
        assert_eq!(
            client(
                &trusted,
                "127.0.0.1:5000",
                &["1.1.1.1", "192.0.2.7, 10.0.0.5"]
            ),
            "192.0.2.7"
        );
        // Every entry a proxy: the leftmost is the client.
        assert_eq!(
            client(&trusted, "127.0.0.1:5000", &["10.9.9.9, 10.0.0.5"]),
            "10.9.9.9"
        );
    }

    #[test]
    fn a_broken_entry_ends_the_walk_at_the_proxy_that_passed_it_on() {
        let trusted = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            client(
                &trusted,
                "127.0.0.1:5000",
                &["192.0.2.7, unknown, 10.0.0.5"]
            ),
            "10.0.0.5"
        );
        assert_eq!(client(&trusted, "127.0.0.1:5000", &[""]), "127.0.0.1");
        assert_eq!(
            client(&trusted, "127.0.0.1:5000", &["192.0.2.7, , "]),
            "127.0.0.1"
        );
        let mut bytes = HeaderMap::new();
        bytes.append(
            FORWARDED_FOR,
            HeaderValue::from_bytes(b"192.0.2.7, \xff10.0.0.5").unwrap(),
        );
        assert_eq!(
            trusted
                .client("127.0.0.1:5000".parse().unwrap(), &bytes)
                .ip()
                .to_string(),
            "127.0.0.1"
        );
    }

    #[test]
    fn ports_and_ipv6_are_read_and_mapped_addresses_are_plain() {
        let trusted = proxies(&["::1/128", "fd00::/8", "127.0.0.1/32"]);
        assert_eq!(
            client(&trusted, "[::1]:5000", &["[2001:db8::7]:4711, fd00::2"]),
            "2001:db8::7"
        );
        assert_eq!(
            client(&trusted, "[::1]:5000", &["192.0.2.7:4711"]),
            "192.0.2.7"
        );
        // An IPv4 proxy seen through a dual-stack socket is still trusted.
        assert_eq!(
            client(&trusted, "[::ffff:127.0.0.1]:5000", &["::ffff:192.0.2.7"]),
            "192.0.2.7"
        );
    }

    fn origin(values: &[(&str, &str)]) -> ForwardedOrigin {
        let mut headers = HeaderMap::new();
        for (name, value) in values {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        ForwardedOrigin::read(&headers)
    }

    #[test]
    fn the_nearest_proxy_names_the_scheme_and_host() {
        assert_eq!(origin(&[]), ForwardedOrigin::default());
        assert_eq!(
            origin(&[
                ("x-forwarded-proto", "HTTPS"),
                ("x-forwarded-host", "data.example.edu")
            ]),
            ForwardedOrigin {
                scheme: Some("https"),
                host: Some("data.example.edu".into())
            }
        );
        // A chain of proxies: the last value is the nearest one's.
        assert_eq!(
            origin(&[
                ("x-forwarded-proto", "http, https"),
                ("x-forwarded-host", "evil.example"),
                (
                    "x-forwarded-host",
                    "inner.example:8443, data.example.edu:443"
                )
            ]),
            ForwardedOrigin {
                scheme: Some("https"),
                host: Some("data.example.edu:443".into())
            }
        );
        // What could not stand in a URL is not believed.
        assert_eq!(
            origin(&[
                ("x-forwarded-proto", "javascript"),
                ("x-forwarded-host", "a.example/<x>")
            ]),
            ForwardedOrigin::default()
        );
        assert_eq!(
            origin(&[("x-forwarded-proto", "https, "), ("x-forwarded-host", "")]),
            ForwardedOrigin::default()
        );
        assert!(plausible_host("[2001:db8::1]:8443"));
        assert!(!plausible_host(&"a".repeat(256)));
    }

    #[test]
    fn a_long_list_is_read_only_so_far() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let mut list = vec!["192.0.2.7".to_owned()];
        list.extend((0..100).map(|i| format!("10.0.0.{}", i % 250)));
        // The walk stops after MAX_HOPS entries, at a proxy's address.
        let found = client(&trusted, "10.0.0.1:5000", &[&list.join(", ")]);
        assert!(found.starts_with("10.0.0."), "{found}");
    }
}
