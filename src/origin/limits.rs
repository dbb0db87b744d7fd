//! What one HTTP client may take from the public listener: connections, held
//! (blocking) requests, and the size of a request. The checks are plain
//! functions of the request and the counts; the socket glue asks and obeys.
//!
//! A client is an IPv4 address or an IPv6 /64 (one subscriber's prefix: per
//! address would let one host rotate through 2^64 of them). Addresses in
//! `server.limit_exempt` (edge caches, CDN pull ranges) are not capped: they
//! carry many viewers each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hyper::StatusCode;
use tracing::warn;

use super::path::{LiveFile, Route};
use crate::config::{Cidr, Server};
use crate::telemetry::throttle::LogThrottle;

/// Which limit a request or connection ran into (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    PerIpConnections,
    HeldRequests,
    HeaderBytes,
    UriBytes,
    BodyBytes,
}

impl Limit {
    pub const ALL: [Limit; 5] = [
        Limit::PerIpConnections,
        Limit::HeldRequests,
        Limit::HeaderBytes,
        Limit::UriBytes,
        Limit::BodyBytes,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Limit::PerIpConnections => "per_ip_connections",
            Limit::HeldRequests => "held_requests",
            Limit::HeaderBytes => "header_bytes",
            Limit::UriBytes => "uri_bytes",
            Limit::BodyBytes => "body_bytes",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Limit::PerIpConnections => "server.http_max_connections_per_ip",
            Limit::HeldRequests => "server.http_max_held_requests_per_ip",
            Limit::HeaderBytes => "server.http_max_header_bytes",
            Limit::UriBytes => "server.http_max_uri_bytes",
            Limit::BodyBytes => "server.http_max_body_bytes",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Limit::PerIpConnections | Limit::HeldRequests => StatusCode::TOO_MANY_REQUESTS,
            Limit::HeaderBytes => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Limit::UriBytes => StatusCode::URI_TOO_LONG,
            Limit::BodyBytes => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// The request-size limits, checked on a request's head before any route runs.
/// `body_upper`: the most body bytes the request can carry (`None`: unknown, e.g.
/// chunked), from hyper's size hint.
pub fn check_request(
    server: &Server,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
    body_upper: Option<u64>,
) -> Result<(), Limit> {
    let uri_bytes = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > server.http_max_uri_bytes {
        return Err(Limit::UriBytes);
    }
    // As on the wire: "name: value\r\n".
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > server.http_max_header_bytes {
        return Err(Limit::HeaderBytes);
    }
    if body_upper.is_none_or(|n| n > server.http_max_body_bytes) {
        return Err(Limit::BodyBytes);
    }
    Ok(())
}

/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host` header,
/// else it is a `400` (one without was answered 200: issue 30). HTTP/1.0 may
/// leave it out; HTTP/2 names the host in `:authority`.
pub fn host_ok(version: hyper::Version, headers: &hyper::HeaderMap) -> bool {
    let hosts = headers.get_all(hyper::header::HOST).iter().count();
    match version {
        hyper::Version::HTTP_11 => hosts == 1,
        _ => hosts <= 1,
    }
}

/// Requests that may wait on the live edge: a blocking playlist reload, or a
/// part or segment that may still be being written. These are what a client
/// could pile up by the thousand; everything else answers at once.
pub fn may_hold(route: Option<&Route<'_>>, query: Option<&str>) -> bool {
    let Some(Route::Live(named)) = route else {
        return false;
    };
    let media = match named.file {
        LiveFile::Rendition { file, .. } | LiveFile::Run { file, .. } => file.ends_with(".m4s"),
        _ => false,
    };
    media || query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("_HLS_msn=")))
}

/// A client, as the caps count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    /// The /64.
    V6(u64),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.into()),
                None => ClientKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    connections: usize,
    held: usize,
}

/// Per-client counts, shared by every I/O core's listener.
pub struct ClientLimits {
    max_connections: usize,
    max_held: usize,
    exempt: Vec<Cidr>,
    clients: Mutex<HashMap<ClientKey, Counts>>,
    limited: [AtomicU64; 5],
    /// One line a minute per limit (the same throttle as ingest's refusals).
    logged: [LogThrottle; 5],
}

/// A connection's or a held request's place in its client's count; dropping it
/// gives the place back. Exempt clients get one that counts nothing.
pub struct Slot {
    limits: Arc<ClientLimits>,
    key: Option<ClientKey>,
    held: bool,
}

impl ClientLimits {
    pub fn new(server: &Server) -> Arc<ClientLimits> {
        Arc::new(ClientLimits {
            max_connections: server.http_max_connections_per_ip,
            max_held: server.http_max_held_requests_per_ip,
            exempt: server.limit_exempt.clone(),
            clients: Mutex::default(),
            limited: Default::default(),
            logged: Default::default(),
        })
    }

    fn clients(&self) -> MutexGuard<'_, HashMap<ClientKey, Counts>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection from `ip`, or `Err` (counted).
    pub fn connect(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Slot, Limit> {
        self.take(ip, false, now)
    }

    /// A place for a request that may be held, or `Err` (counted).
    pub fn hold(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Slot, Limit> {
        self.take(ip, true, now)
    }

    fn take(self: &Arc<Self>, ip: IpAddr, held: bool, now: Instant) -> Result<Slot, Limit> {
        if self.exempt.iter().any(|c| c.contains(ip)) {
            return Ok(Slot {
                limits: self.clone(),
                key: None,
                held,
            });
        }
        let key = ClientKey::of(ip);
        let mut clients = self.clients();
        let counts = clients.entry(key).or_default();
        let (n, max, limit) = if held {
            (&mut counts.held, self.max_held, Limit::HeldRequests)
        } else {
            (
                &mut counts.connections,
                self.max_connections,
                Limit::PerIpConnections,
            )
        };
        if *n >= max {
            let (connections, held_now) = (counts.connections, counts.held);
            if connections == 0 && held_now == 0 {
                clients.remove(&key);
            }
            drop(clients);
            self.refused(limit, Some(ip), now);
            return Err(limit);
        }
        *n += 1;
        Ok(Slot {
            limits: self.clone(),
            key: Some(key),
            held,
        })
    }

    /// Counts a refusal by `limit`, logging it at most once a minute per limit.
    pub fn refused(&self, limit: Limit, ip: Option<IpAddr>, now: Instant) {
        self.limited[limit as usize].fetch_add(1, Relaxed);
        if let Some(unlogged) = self.logged[limit as usize].hit(now) {
            let client = ip.map(|ip| ip.to_string()).unwrap_or_default();
            warn!(
                limit = limit.label(),
                key = limit.key(),
                client,
                unlogged,
                "http request or connection refused by a client limit; further refusals by this limit only counted for a minute"
            );
        }
    }

    /// Refusals so far, by limit label.
    pub fn limited(&self) -> Vec<(&'static str, u64)> {
        Limit::ALL
            .iter()
            .map(|l| (l.label(), self.limited[*l as usize].load(Relaxed)))
            .collect()
    }

    /// Clients holding a connection or a request now.
    pub fn tracked_clients(&self) -> usize {
        self.clients().len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut clients = self.limits.clients();
        if let Some(c) = clients.get_mut(&key) {
            let n = if self.held {
                &mut c.held
            } else {
                &mut c.connections
            };
            *n = n.saturating_sub(1);
            if c.connections == 0 && c.held == 0 {
                clients.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(extra: &str) -> Server {
        crate::config::Config::parse(&format!("[server]\n{extra}\n"), "t")
            .unwrap()
            .server
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_client_connections_and_held_requests() {
        let limits = ClientLimits::new(&server(
            "http_max_connections_per_ip = 2\nhttp_max_held_requests_per_ip = 1\nlimit_exempt = [\"10.9.0.0/16\"]",
        ));
        let now = Instant::now();
        let a = limits.connect(ip("192.0.2.1"), now).unwrap();
        let _b = limits.connect(ip("192.0.2.1"), now).unwrap();
        assert_eq!(
            limits.connect(ip("192.0.2.1"), now).err(),
            Some(Limit::PerIpConnections)
        );
        // Another client is not affected; held requests count apart.
        let _c = limits.connect(ip("192.0.2.2"), now).unwrap();
        let h = limits.hold(ip("192.0.2.1"), now).unwrap();
        assert_eq!(
            limits.hold(ip("192.0.2.1"), now).err(),
            Some(Limit::HeldRequests)
        );
        drop(h);
        let _h = limits.hold(ip("192.0.2.1"), now).unwrap();
        drop(a);
        let _a = limits.connect(ip("192.0.2.1"), now).unwrap();
        // Exempt addresses are never refused and leave no entry.
        let exempt: Vec<_> = (0..10)
            .map(|_| limits.connect(ip("10.9.3.4"), now).unwrap())
            .collect();
        assert_eq!(limits.tracked_clients(), 2);
        drop(exempt);
        let got: Vec<_> = limits
            .limited()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(got, vec![("per_ip_connections", 1), ("held_requests", 1)]);
    }

    #[test]
    fn ipv6_clients_are_their_64() {
        let limits = ClientLimits::new(&server("http_max_connections_per_ip = 1"));
        let now = Instant::now();
        let _a = limits.connect(ip("2001:db8:1:2::1"), now).unwrap();
        assert!(limits.connect(ip("2001:db8:1:2:ffff::9"), now).is_err());
        let _b = limits.connect(ip("2001:db8:1:3::1"), now).unwrap();
        // An IPv4-mapped address is its IPv4 client.
        let _c = limits.connect(ip("192.0.2.7"), now).unwrap();
        assert!(limits.connect(ip("::ffff:192.0.2.7"), now).is_err());
    }

    #[test]
    fn slots_given_back_leave_no_entries() {
        let limits = ClientLimits::new(&server(""));
        let now = Instant::now();
        let slots: Vec<_> = (0..200u8)
            .flat_map(|i| {
                let ip = IpAddr::from([198, 51, 100, i]);
                [
                    limits.connect(ip, now).unwrap(),
                    limits.hold(ip, now).unwrap(),
                ]
            })
            .collect();
        assert_eq!(limits.tracked_clients(), 200);
        drop(slots);
        assert_eq!(limits.tracked_clients(), 0);
    }

    #[test]
    fn request_sizes() {
        let s = server(
            "http_max_header_bytes = 1024\nhttp_max_uri_bytes = 256\nhttp_max_body_bytes = 10",
        );
        let uri = |n: usize| {
            format!("/live/x?{}", "a".repeat(n))
                .parse::<hyper::Uri>()
                .unwrap()
        };
        let mut h = hyper::HeaderMap::new();
        h.insert("x-pad", "b".repeat(900).parse().unwrap());
        assert_eq!(check_request(&s, &uri(10), &h, Some(0)), Ok(()));
        assert_eq!(
            check_request(&s, &uri(300), &h, Some(0)),
            Err(Limit::UriBytes)
        );
        h.insert("x-more", "c".repeat(200).parse().unwrap());
        assert_eq!(
            check_request(&s, &uri(10), &h, Some(0)),
            Err(Limit::HeaderBytes)
        );
        h.remove("x-more");
        assert_eq!(check_request(&s, &uri(10), &h, Some(10)), Ok(()));
        assert_eq!(
            check_request(&s, &uri(10), &h, Some(11)),
            Err(Limit::BodyBytes)
        );
        assert_eq!(check_request(&s, &uri(10), &h, None), Err(Limit::BodyBytes));
    }

    #[test]
    fn an_http_1_1_request_needs_one_host() {
        use hyper::Version;
        let mut h = hyper::HeaderMap::new();
        assert!(!host_ok(Version::HTTP_11, &h));
        assert!(host_ok(Version::HTTP_10, &h));
        assert!(host_ok(Version::HTTP_2, &h));
        h.insert(hyper::header::HOST, "example.com".parse().unwrap());
        assert!(host_ok(Version::HTTP_11, &h));
        h.append(hyper::header::HOST, "other.example".parse().unwrap());
        for v in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
            assert!(!host_ok(v, &h), "{v:?}");
        }
    }

    #[test]
    fn which_requests_may_hold() {
        let holds =
            |path: &str, query| may_hold(super::super::path::parse_route(path).as_ref(), query);
        assert!(holds(
            "/live/cam/720p/index.m3u8",
            Some("_HLS_msn=4&_HLS_part=1")
        ));
        assert!(holds("/live/cam/720p/part4.1.m4s", None));
        assert!(holds("/live/cam/t/TOKEN/720p/seg4.m4s", None));
        assert!(holds("/live/cam/720p/e17/seg4.m4s", None));
        assert!(!holds("/live/cam/720p/index.m3u8", None));
        assert!(!holds("/live/cam/720p/init.mp4", None));
        assert!(!holds("/vod/cam/720p/seg4.m4s", None));
        assert!(!holds("/metrics", Some("_HLS_msn=1")));
    }
}
