//! Per-client request rates: a token bucket per client (a pinned peer by
//! its node id, anyone else by address), refilled at the configured rate up
//! to the configured burst. A request over the rate gets
//! RESOURCE_EXHAUSTED with a message saying which limit and when to retry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use meridian_core::config::Limits;
use meridian_core::metrics::{Counters, Limit, Metrics};
use tonic::{Request, Status};

use crate::tls::PeerConnectInfo;

/// Most clients tracked at once; idle ones are forgotten first.
const MAX_CLIENTS: usize = 65_536;

/// Token buckets of one service's clients.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Where refusals are counted.
    hits: Counters<Limit>,
}

impl RateLimiter {
    /// Buckets at `limits`' rate; refusals are counted in `metrics`.
    pub fn new(limits: &Limits, metrics: &Metrics) -> Self {
        Self {
            per_second: f64::from(limits.requests_per_second),
            burst: f64::from(limits.request_burst),
            buckets: Mutex::new(HashMap::new()),
            hits: metrics.limit_hits.clone(),
        }
    }

    /// Takes one request from `client`'s bucket, or says why it may not.
    pub fn check(&self, client: &str) -> Result<(), Status> {
        let checked = self.take(client);
        if checked.is_err() {
            self.hits.inc(Limit::RequestRate);
        }
        checked
    }

    fn take(&self, client: &str) -> Result<(), Status> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(client) {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= MAX_CLIENTS {
                return Err(Status::resource_exhausted(
                    "too many clients at once; retry later",
                ));
            }
        }
        let (tokens, at) = buckets
            .entry(client.to_owned())
            .or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens < 1.0 {
            let wait = (1.0 - *tokens) / self.per_second;
            return Err(Status::resource_exhausted(format!(
                "too many requests from {client}: at most {} per second (bursts of {}); retry in {:.0} ms",
                self.per_second,
                self.burst,
                (wait * 1000.0).ceil()
            )));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

/// Who a request counts against: `peer` when it is a pinned peer's, else
/// the address it came from.
pub fn client<T>(request: &Request<T>, peer: Option<&str>) -> String {
    let addr = request
        .extensions()
        .get::<PeerConnectInfo>()
        .and_then(|info| info.remote)
        .or_else(|| request.remote_addr());
    client_at(addr, peer)
}

/// Who a request from `addr` counts against (`peer` when it is a pinned
/// peer's): the same bucket whichever protocol the request came by. An
/// IPv6 client counts by its /64, as for connections
/// ([`crate::tls::address_of`]): a host given a /64 could otherwise take a
/// fresh bucket with each of its addresses.
pub fn client_at(addr: Option<std::net::SocketAddr>, peer: Option<&str>) -> String {
    match peer {
        Some(peer) => format!("peer {peer}"),
        None => addr
            .map(|addr| match crate::tls::address_of(addr.ip()) {
                IpAddr::V6(network) => format!("{network}/64"),
                v4 => v4.to_string(),
            })
            .unwrap_or_else(|| "an unknown address".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9, item 5: a client over its rate is refused with
    /// RESOURCE_EXHAUSTED and a message naming the limit; others are not.
    #[test]
    fn limits_on_the_open_listener_rate_each_client() {
        let limits = Limits {
            requests_per_second: 1,
            request_burst: 3,
            ..Limits::default()
        };
        let metrics = Metrics::default();
        let limiter = RateLimiter::new(&limits, &metrics);
        for _ in 0..3 {
            limiter.check("192.0.2.1").unwrap();
        }
        let refused = limiter.check("192.0.2.1").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .starts_with("too many requests from 192.0.2.1: at most 1 per second"),
            "{}",
            refused.message()
        );
        limiter.check("192.0.2.2").unwrap();
        limiter.check("peer uni").unwrap();
        assert_eq!(metrics.limit_hits.get(Limit::RequestRate), 1);
    }

    /// The addresses of one IPv6 /64 share a bucket, so a host cannot take a
    /// fresh one with each address it is given; another /64, and an IPv4
    /// client written as IPv4-mapped IPv6, count as themselves.
    #[test]
    fn an_ipv6_client_is_rated_by_its_64() {
        let limits = Limits {
            requests_per_second: 1,
            request_burst: 2,
            ..Limits::default()
        };
        let limiter = RateLimiter::new(&limits, &Metrics::default());
        let at = |address: &str| client_at(Some(format!("[{address}]:443").parse().unwrap()), None);
        assert_eq!(at("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        limiter.check(&at("2001:db8:1:2::1")).unwrap();
        limiter.check(&at("2001:db8:1:2:ffff::9")).unwrap();
        let refused = limiter.check(&at("2001:db8:1:2:abcd::77")).unwrap_err();
        assert!(
            refused
                .message()
                .starts_with("too many requests from 2001:db8:1:2::/64:"),
            "{}",
            refused.message()
        );
        limiter.check(&at("2001:db8:1:3::1")).unwrap();
        assert_eq!(at("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(
            client_at(Some("192.0.2.7:443".parse().unwrap()), None),
            "192.0.2.7"
        );
        assert_eq!(client_at(None, Some("uni")), "peer uni");
    }
}
