//! `[server]`: listen addresses, TLS, HTTP limits, shutdown timing.

use std::net::SocketAddr;
use std::ops::Bound::{Excluded, Included};

use serde::Deserialize;

use super::cidr::Cidr;
use super::invalid::{ensure, range, Invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub rtmp_listen: SocketAddr,
    /// SRT publishers (UDP); the listener is bound exclusively (no second
    /// process can share the port).
    pub srt_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// HTTPS (HTTP/2 or HTTP/1.1 by ALPN) with `tls_cert` and `tls_key`; the
    /// same routes and limits as `http_listen`. Unset: no HTTPS.
    pub https_listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) and its private key; read again on SIGHUP.
    pub tls_cert: std::path::PathBuf,
    pub tls_key: std::path::PathBuf,
    /// Seconds the process waits for streams to end on SIGTERM before exiting anyway.
    pub shutdown_grace_secs: f64,
    /// On SIGTERM, seconds `/readyz` answers 503 while everything keeps serving,
    /// so load balancers stop sending viewers before the listeners close.
    pub drain_secs: f64,
    /// An HTTP connection that sends nothing for this long is closed (slow or
    /// stalled clients, half-sent headers, idle keep-alive).
    pub http_idle_timeout_secs: f64,
    /// Seconds an HTTP connection has to send a request's headers, counted from
    /// accept (first request) or from its first byte (later ones), however busy it
    /// keeps the socket: a byte-a-second trickle cannot hold a connection.
    pub http_header_timeout_secs: f64,
    /// Open connections on `http_listen` at once; beyond it new ones get a 503
    /// (`Retry-After: 1`) and are closed, counted in `http_connections_refused_total`.
    pub http_max_connections: usize,
    /// Open connections from one client on `http_listen` (an IPv4 address, or
    /// an IPv6 /64); beyond it new ones get a 429 and are closed.
    pub http_max_connections_per_ip: usize,
    /// Bytes of request header lines (names and values) a request may send; 431 beyond.
    pub http_max_header_bytes: usize,
    /// Bytes of a request's path and query; 414 beyond.
    pub http_max_uri_bytes: usize,
    /// Bytes of request body accepted (no route reads one); 413 and close beyond.
    pub http_max_body_bytes: u64,
    /// Requests one client may have in flight that can wait on the live edge
    /// (blocking playlist reloads, parts and segments still being written); 429 beyond.
    pub http_max_held_requests_per_ip: usize,
    /// Clients the per-client caps above do not apply to (CIDR blocks, e.g. the
    /// Varnish shields or a CDN's pull addresses, which carry many viewers).
    pub limit_exempt: Vec<Cidr>,
    /// Seconds start-up waits for a listen port another process still holds
    /// (e.g. the previous instance draining) before giving up; `/readyz` is
    /// 503 meanwhile. Other bind errors stop start-up at once.
    pub bind_wait_secs: f64,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            rtmp_listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            srt_listen: SocketAddr::from(([0, 0, 0, 0], 9000)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            https_listen: None,
            tls_cert: Default::default(),
            tls_key: Default::default(),
            shutdown_grace_secs: 3.0,
            drain_secs: 0.5,
            http_idle_timeout_secs: 60.0,
            http_header_timeout_secs: 5.0,
            http_max_connections: 4096,
            http_max_connections_per_ip: 256,
            http_max_header_bytes: 16 << 10,
            http_max_uri_bytes: 8 << 10,
            http_max_body_bytes: 1024,
            http_max_held_requests_per_ip: 64,
            limit_exempt: Vec::new(),
            bind_wait_secs: 10.0,
        }
    }
}

impl Server {
    /// Its keys alone and together (addresses that overlap, TLS files that go together).
    pub fn validate(&self) -> Result<(), Invalid> {
        ensure(
            !listen_conflict(self.rtmp_listen, self.http_listen),
            "server.http_listen",
            format!(
                "{} overlaps server.rtmp_listen {}: both are TCP listeners",
                self.http_listen, self.rtmp_listen
            ),
        )?;
        let files = [&self.tls_cert, &self.tls_key].map(|p| !p.as_os_str().is_empty());
        match (self.https_listen, files) {
            (Some(_), [true, true]) | (None, [false, false]) => {}
            (Some(_), _) => {
                return Err(Invalid::new(
                    "server.https_listen",
                    "needs both server.tls_cert and server.tls_key",
                ))
            }
            (None, _) => {
                return Err(Invalid::new(
                    "server.tls_cert",
                    "set with server.tls_key and server.https_listen, or not at all",
                ))
            }
        }
        if let Some(https) = self.https_listen {
            for (key, other) in [
                ("server.http_listen", self.http_listen),
                ("server.rtmp_listen", self.rtmp_listen),
            ] {
                ensure(
                    !listen_conflict(https, other),
                    "server.https_listen",
                    format!("{https} overlaps {key} {other}"),
                )?;
            }
        }
        range(
            "server.drain_secs",
            self.drain_secs,
            0.0..=10.0,
            "must be between 0 and 10",
        )?;
        range(
            "server.shutdown_grace_secs",
            self.shutdown_grace_secs,
            0.0..=60.0,
            "must be between 0 and 60",
        )?;
        range(
            "server.http_idle_timeout_secs",
            self.http_idle_timeout_secs,
            (Excluded(0.0), Included(3600.0)),
            "must be in (0, 3600]",
        )?;
        // Not tied to http_idle_timeout_secs: lowering the idle timeout alone must
        // not fail on a key the operator never set (the shorter of the two applies).
        range(
            "server.http_header_timeout_secs",
            self.http_header_timeout_secs,
            (Excluded(0.0), Included(3600.0)),
            "must be in (0, 3600]",
        )?;
        for (key, n) in [
            ("server.http_max_connections", self.http_max_connections),
            (
                "server.http_max_connections_per_ip",
                self.http_max_connections_per_ip,
            ),
            (
                "server.http_max_held_requests_per_ip",
                self.http_max_held_requests_per_ip,
            ),
        ] {
            range(key, n, 1.., "must be at least 1")?;
        }
        range(
            "server.http_max_header_bytes",
            self.http_max_header_bytes,
            1024..=1 << 20,
            "must be between 1024 and 1048576",
        )?;
        range(
            "server.http_max_uri_bytes",
            self.http_max_uri_bytes,
            256..=1 << 20,
            "must be between 256 and 1048576",
        )?;
        range(
            "server.bind_wait_secs",
            self.bind_wait_secs,
            0.0..=600.0,
            "must be between 0 and 600",
        )
    }
}

/// Two TCP listen addresses that cannot both be bound: the same port on the same
/// IP, or on any IP when one is the wildcard. Port 0 (kernel's pick) never conflicts.
pub fn listen_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
