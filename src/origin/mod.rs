//! The HTTP origin: hyper 1.x (HTTP/1.1 keep-alive and h2c) on the I/O cores.
//!
//! No media logic here: routes read the hot store. The operators' routes are
//! `admin`'s, reached through the [`AdminRoutes`] callback `runtime` wires in.

mod blocking;
/// A connection's sans-IO pieces: its header deadline
/// ([`conn::HeaderClock`]) and the request-line scanner every byte passes
/// before hyper ([`conn::RequestLines`]). Public for the fuzz target.
pub mod conn;
mod io;
pub mod limits;
mod listing;
pub mod path;
pub mod playback;
mod player;
pub mod query;
pub mod response;
pub mod routes;
mod runs;
pub mod signing;
mod streaming;
pub mod tls;
mod vod;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;

use glommio::net::TcpListener;
use hyper::service::service_fn;
use hyper_util::server::conn::auto;
use tracing::{debug, warn};

use crate::config::Config;
use crate::store::hot::HotStore;
use crate::telemetry::clock;
use crate::telemetry::shutdown::Shutdown;
use io::{ConnWatch, HyperIo, LocalExec};

/// Answers an operators' route (`/api/…`, `/metrics`, `/healthz`, `/readyz`)
/// from its method, path segments and headers; `None`: not one of them.
pub type AdminRoutes = Arc<
    dyn Fn(&hyper::Method, &[&str], &hyper::HeaderMap) -> Option<hyper::Response<bytes::Bytes>>
        + Send
        + Sync,
>;

/// What the origin needs, built by `runtime`.
pub struct Origin {
    pub config: Arc<Config>,
    pub store: Arc<HotStore>,
    pub http: Arc<HttpStats>,
    pub shutdown: Arc<Shutdown>,
    pub admin: AdminRoutes,
    pub keys: Arc<Keys>,
    /// Per-client caps on the public listener.
    pub limits: Arc<limits::ClientLimits>,
}

/// What SIGHUP reloads: the playback signing key and the TLS certificate.
/// Readers take a snapshot (`Arc`) per request or connection.
#[derive(Default)]
pub struct Keys {
    pub signing: std::sync::RwLock<Option<Arc<signing::SigningKey>>>,
    pub tls: std::sync::RwLock<Option<Arc<rustls::ServerConfig>>>,
    /// SIGHUP reloads that took, and that failed (the old keys stayed).
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
    /// TLS handshakes that failed or did not finish in time.
    pub tls_handshake_failures: AtomicU64,
}

/// Why the keys could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("playback.signing_key: {0}")]
    Signing(#[from] signing::KeyError),
    #[error("server.tls_cert / server.tls_key: {0}")]
    Tls(#[from] tls::TlsError),
}

impl crate::telemetry::metrics::Report for Keys {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        use crate::telemetry::metrics::l;
        for (result, n) in [("ok", &self.reloads), ("error", &self.reload_errors)] {
            m.counter(
                "ladderd_reloads",
                "SIGHUP reloads of the signing key and TLS certificate, by result (error: the old ones stay in use).",
                l(&[("result", result)]),
                n.load(Relaxed),
            );
        }
        m.counter(
            "ladderd_tls_handshake_failures",
            "TLS handshakes on server.https_listen that failed or did not finish within server.http_header_timeout_secs.",
            vec![],
            self.tls_handshake_failures.load(Relaxed),
        );
    }
}

impl Keys {
    /// Reads the files `config` names (start-up: an error stops it).
    pub fn load(config: &Config) -> Result<Keys, KeysError> {
        let keys = Keys::default();
        keys.reload(config)?;
        Ok(keys)
    }

    /// SIGHUP: reads the files again. Both must load or neither changes: a
    /// renewed certificate whose key is not there yet keeps the old pair.
    pub fn reload(&self, config: &Config) -> Result<(), KeysError> {
        let path = &config.playback.signing_key;
        let key = if path.as_os_str().is_empty() {
            None
        } else {
            Some(Arc::new(signing::SigningKey::load(path)?))
        };
        let server = &config.server;
        let tls = match server.https_listen {
            Some(_) => Some(tls::load(&server.tls_cert, &server.tls_key)?),
            None => None,
        };
        *self.signing.write().unwrap_or_else(|e| e.into_inner()) = key;
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
        Ok(())
    }

    pub fn signing(&self) -> Option<Arc<signing::SigningKey>> {
        self.signing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Playback, player, health; the API and /metrics unless `admin.listen` is set.
    Public,
    /// `admin.listen`: the API, /metrics and health only.
    Admin,
}

/// What a refused connection reads before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// What a client over its connection cap reads before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Best effort and brief (the accept loop waits on it): a client that reads
/// the answer retries later; one that does not just sees the close. A TLS
/// client could not read a plain answer: it only sees the close.
async fn refuse(mut stream: glommio::net::TcpStream, answer: &[u8], tls: bool) {
    if tls {
        return;
    }
    let _ = futures_lite::future::or(
        async {
            let _ = stream.write_all(answer).await;
            let _ = stream.close().await;
        },
        glommio::timer::sleep(Duration::from_millis(100)),
    )
    .await;
}

/// A response body that tells the connection's clock when it is done (sent or
/// dropped), holds a held request's place in its client's count till then,
/// and counts its bytes in `http_out_bytes_total` as they go out: counted by
/// length up front, a part streamed as it is written (no length yet) counted
/// nothing (issue 30).
struct Tracked {
    body: response::Body,
    watch: Rc<ConnWatch>,
    stats: Arc<HttpStats>,
    _held: Option<limits::Slot>,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = response::BodyError;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(self.body.as_mut().poll_frame(cx));
        if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
            self.stats.bytes_out.fetch_add(data.len() as u64, Relaxed);
        }
        std::task::Poll::Ready(frame)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.watch.on_response_done();
    }
}

/// Open connections on a listener, counted while the guard lives.
struct Open<'a>(&'a AtomicI64);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// The connections one accept loop handed out, counted while their tasks
/// live, so that at shutdown it can wait for what they are answering: its
/// core exits when the loop returns, and that drops every connection task
/// (SIGTERM cut the parts being streamed mid-body: issue 30).
#[derive(Default)]
struct Conns {
    open: std::cell::Cell<usize>,
    closed: event_listener::Event,
}

/// One connection's place in its listener's [`Conns`].
struct ConnPlace(Rc<Conns>);

impl Conns {
    fn enter(self: &Rc<Self>) -> ConnPlace {
        self.open.set(self.open.get() + 1);
        ConnPlace(self.clone())
    }

    /// Returns when every connection is closed, or at `until`.
    async fn drained(&self, until: Instant) {
        loop {
            let closed = self.closed.listen();
            let left = until.saturating_duration_since(clock::now());
            if self.open.get() == 0 || left.is_zero() {
                return;
            }
            futures_lite::future::or(closed, glommio::timer::sleep(left)).await;
        }
    }
}

impl Drop for ConnPlace {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
        self.0.closed.notify(usize::MAX);
    }
}

/// How long connections may go on answering after shutdown: three quarters
/// of `server.shutdown_grace_secs`, so the cores still exit within it.
fn drain_limit(config: &Config) -> Duration {
    Duration::from_secs_f64(config.server.shutdown_grace_secs * 0.75)
}

/// Accepts on one listener; `tls`: `server.https_listen` (a TLS handshake first).
/// At shutdown it stops accepting and returns once its connections have
/// finished the responses they were sending (at most [`drain_limit`]).
pub async fn accept_loop(listener: TcpListener, ctx: Arc<Origin>, surface: Surface, tls: bool) {
    let mut last_full_log: Option<Instant> = None;
    let conns = Rc::new(Conns::default());
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            ctx.shutdown.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                warn!(error = %e, "http accept failed");
                glommio::timer::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        // The public listener is capped; the admin one (a private address) is not,
        // so operators can still read /metrics while the public side is full.
        let counted = surface == Surface::Public;
        if counted {
            let open = ctx.http.open_connections.fetch_add(1, SeqCst);
            if open >= ctx.config.server.http_max_connections as i64 {
                ctx.http.open_connections.fetch_sub(1, SeqCst);
                ctx.http.refused_connections.fetch_add(1, Relaxed);
                // One line a minute at most: a flood must not flood the log too.
                if last_full_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    warn!(
                        limit = ctx.config.server.http_max_connections,
                        "http connection limit reached; refusing connections"
                    );
                    last_full_log = Some(clock::now());
                }
                refuse(stream, REFUSED, tls).await;
                continue;
            }
        }
        let peer = stream.peer_addr().ok().map(|a| a.ip());
        let client = match (counted, peer) {
            (true, Some(ip)) => match ctx.limits.connect(ip, clock::now()) {
                Ok(slot) => Some(slot),
                Err(_) => {
                    ctx.http.open_connections.fetch_sub(1, SeqCst);
                    refuse(stream, TOO_MANY, tls).await;
                    continue;
                }
            },
            _ => None,
        };
        let _ = stream.set_nodelay(true);
        // Silent connections: the socket's read timeout (it restarts with every
        // byte). Slow headers: the connection's header clock below.
        let idle = Duration::from_secs_f64(ctx.config.server.http_idle_timeout_secs);
        if let Err(e) = stream.set_read_timeout(Some(idle)) {
            debug!(error = %e, "cannot set http read timeout; dropping connection");
            if counted {
                ctx.http.open_connections.fetch_sub(1, SeqCst);
            }
            continue;
        }
        let ctx = ctx.clone();
        let place = conns.enter();
        glommio::spawn_local(async move {
            let _place = place;
            let _open = counted.then(|| Open(&ctx.http.open_connections));
            let _client = client;
            // Headers are due within the header timeout or the idle timeout, the shorter.
            let watch = Rc::new(ConnWatch::new(Duration::from_secs_f64(
                ctx.config
                    .server
                    .http_header_timeout_secs
                    .min(ctx.config.server.http_idle_timeout_secs),
            )));
            if !tls {
                let io = HyperIo::new(stream, watch.clone(), ctx.config.server.http_max_uri_bytes);
                serve(&ctx, io, watch, surface, peer).await;
                return;
            }
            let Some(config) = ctx.keys.tls() else {
                return;
            };
            // The handshake is part of the header deadline: a stalled one holds nothing long.
            let handshake = futures_rustls::TlsAcceptor::from(config).accept(stream);
            let limit = Duration::from_secs_f64(ctx.config.server.http_header_timeout_secs);
            let tls_stream = futures_lite::future::or(async { Some(handshake.await) }, async {
                glommio::timer::sleep(limit).await;
                None
            })
            .await;
            match tls_stream {
                Some(Ok(s)) => {
                    let io = HyperIo::new(s, watch.clone(), ctx.config.server.http_max_uri_bytes);
                    serve(&ctx, io, watch, surface, peer).await
                }
                Some(Err(e)) => {
                    ctx.keys.tls_handshake_failures.fetch_add(1, Relaxed);
                    debug!(error = %e, "tls handshake failed");
                }
                None => {
                    ctx.keys.tls_handshake_failures.fetch_add(1, Relaxed);
                    debug!("tls handshake not finished in time");
                }
            }
        })
        .detach();
    }
    let until = clock::now() + drain_limit(&ctx.config);
    drop(listener);
    conns.drained(until).await;
    if conns.open.get() > 0 {
        debug!(
            connections = conns.open.get(),
            "http connections still open at the end of the drain; closing them"
        );
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection (plain or TLS) until it ends
/// or its request headers are overdue.
async fn serve<T>(
    ctx: &Arc<Origin>,
    io: HyperIo<T>,
    watch: Rc<ConnWatch>,
    surface: Surface,
    peer: Option<std::net::IpAddr>,
) where
    T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let service = {
        let (ctx, watch) = (ctx.clone(), watch.clone());
        service_fn(move |req| {
            watch.on_request();
            let (ctx, watch) = (ctx.clone(), watch.clone());
            async move {
                // The path parsed once: admission, dispatch, the metrics
                // label and the handlers read the same route.
                let path = req.uri().path().to_string();
                let route = path::parse_route(&path);
                let (resp, held) = match admit(&ctx, &req, route.as_ref(), surface, peer) {
                    Ok(held) => (routes::handle(&ctx, req, &path, route, surface).await, held),
                    Err(resp) => (resp, None),
                };
                Ok::<_, Infallible>(resp.map(|body| Tracked {
                    body,
                    watch,
                    stats: ctx.http.clone(),
                    _held: held,
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(LocalExec);
    let server = &ctx.config.server;
    // hyper's own read buffer bounds a request head; ours (431/414 with
    // a count) must trip first, so it is a little larger than both. A
    // request line longer than it is answered 414 by `HyperIo` before it
    // overflows (hyper would say 431).
    builder
        .http1()
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size((server.http_max_header_bytes + server.http_max_uri_bytes + 1024).max(8192));
    builder
        .http2()
        .max_header_list_size(server.http_max_header_bytes as u32 + 1024);
    let conn = builder.serve_connection(io, service);
    futures_lite::pin!(conn);
    enum Stop<R> {
        Ended(R),
        Overdue,
        Shutdown,
    }
    let mut stop = futures_lite::future::or(
        async { Stop::Ended(conn.as_mut().await) },
        futures_lite::future::or(
            async {
                watch.overdue().await;
                Stop::Overdue
            },
            async {
                ctx.shutdown.wait().await;
                Stop::Shutdown
            },
        ),
    )
    .await;
    if let Stop::Shutdown = stop {
        // No new requests (keep-alive off, h2 GOAWAY); what is being answered
        // (a part still being written) goes on to its end, then the
        // connection closes. The accept loop bounds the wait.
        conn.as_mut().graceful_shutdown();
        stop = futures_lite::future::or(async { Stop::Ended(conn.as_mut().await) }, async {
            watch.overdue().await;
            Stop::Overdue
        })
        .await;
    }
    match stop {
        Stop::Overdue => {
            ctx.http.header_timeouts.fetch_add(1, Relaxed);
            debug!("http connection closed: request headers not complete in time");
        }
        Stop::Ended(Err(e)) => debug!(error = %e, "http connection ended with an error"),
        Stop::Ended(Ok(())) | Stop::Shutdown => {}
    }
    if watch.uri_too_long.get() {
        if surface == Surface::Public {
            ctx.limits
                .refused(limits::Limit::UriBytes, peer, clock::now());
        }
        ctx.http.count("limited", 414);
    }
}

/// The per-request limits on the public listener: request size, then the
/// client's held-request cap. `Ok` carries the held request's place (if it
/// may hold); `Err` is the answer instead of the route's.
fn admit(
    ctx: &Origin,
    req: &hyper::Request<hyper::body::Incoming>,
    route: Option<&path::Route<'_>>,
    surface: Surface,
    peer: Option<std::net::IpAddr>,
) -> Result<Option<limits::Slot>, hyper::Response<response::Body>> {
    use hyper::body::Body as _;
    if surface != Surface::Public {
        return Ok(None);
    }
    let refused = |limit: limits::Limit| {
        ctx.limits.refused(limit, peer, clock::now());
        limited(ctx, limit)
    };
    let body_upper = req.body().size_hint().upper();
    limits::check_request(&ctx.config.server, req.uri(), req.headers(), body_upper)
        .map_err(refused)?;
    let Some(ip) = peer else { return Ok(None) };
    if !limits::may_hold(route, req.uri().query()) {
        return Ok(None);
    }
    match ctx.limits.hold(ip, clock::now()) {
        Ok(slot) => Ok(Some(slot)),
        Err(limit) => Err(limited(ctx, limit)),
    }
}

/// The answer to a request a limit refused (counted by route like any other).
fn limited(ctx: &Origin, limit: limits::Limit) -> hyper::Response<response::Body> {
    let mut resp = response::text(limit.status(), &format!("{}\n", limit.label()));
    let h = resp.headers_mut();
    if matches!(limit, limits::Limit::HeldRequests) {
        h.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    if matches!(limit, limits::Limit::BodyBytes) {
        // The unread body would be taken for the next request.
        h.insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    ctx.http.count("limited", resp.status().as_u16());
    resp
}

/// Origin accounting: requests by route and status, bytes out, waiters.
#[derive(Default)]
pub struct HttpStats {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub bytes_out: AtomicU64,
    /// Requests parked on a blocking reload or a preload hint right now.
    pub blocked_waiters: AtomicI64,
    /// Connections open on the public listener (capped by `server.http_max_connections`).
    pub open_connections: AtomicI64,
    /// Connections refused at the cap.
    pub refused_connections: AtomicU64,
    /// Connections closed for not sending a request's headers in time.
    pub header_timeouts: AtomicU64,
    /// Playback requests refused (403) for want of a good signed URL, by reason.
    denied: Mutex<BTreeMap<&'static str, u64>>,
    /// Publish → a parked request answered (µs).
    wake_us: Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

impl HttpStats {
    pub fn count(&self, route: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
    }

    pub fn count_denied(&self, reason: &'static str) {
        *self
            .denied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Requests so far, by (route, status).
    pub fn requests(&self) -> Vec<((&'static str, u16), u64)> {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn record_wake(&self, d: std::time::Duration) {
        let mut h = self.wake_us.lock().unwrap_or_else(|e| e.into_inner());
        let h = h.get_or_insert_with(crate::telemetry::latency::latency_histogram);
        let _ = h.record(d.as_micros() as u64);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let requests: Vec<_> = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((route, status), n)| serde_json::json!({"route": route, "status": status, "count": n}))
            .collect();
        serde_json::json!({
            "requests": requests,
            "bytes_out": self.bytes_out.load(Relaxed),
            "blocked_waiters": self.blocked_waiters.load(Relaxed),
            "open_connections": self.open_connections.load(Relaxed),
            "refused_connections": self.refused_connections.load(Relaxed),
            "header_timeouts": self.header_timeouts.load(Relaxed),
            "blocked_wake": self
                .wake_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(crate::telemetry::latency::Percentiles::of),
        })
    }
}

impl crate::telemetry::metrics::Report for HttpStats {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        use crate::telemetry::metrics::l;
        for ((route, status), n) in self.requests() {
            m.counter(
                "ladderd_http_requests",
                "HTTP requests, by route and status.",
                l(&[("route", route), ("status", &status.to_string())]),
                n,
            );
        }
        let denied: Vec<_> = self
            .denied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        for (reason, n) in denied {
            m.counter(
                "ladderd_playback_denied",
                "Playback requests refused (403) under playback.signing_key: missing, malformed, forged, expired or prefix.",
                l(&[("reason", reason)]),
                n,
            );
        }
        m.counter(
            "ladderd_http_out_bytes",
            "HTTP body bytes sent.",
            vec![],
            self.bytes_out.load(Relaxed),
        );
        m.gauge(
            "ladderd_http_blocked_waiters",
            "Requests parked on a blocking reload or a preload hint.",
            vec![],
            self.blocked_waiters.load(Relaxed),
        );
        m.gauge(
            "ladderd_http_connections",
            "HTTP connections open on the public listener.",
            vec![],
            self.open_connections.load(Relaxed),
        );
        m.counter(
            "ladderd_http_connections_refused",
            "HTTP connections refused at server.http_max_connections.",
            vec![],
            self.refused_connections.load(Relaxed),
        );
        m.counter(
        "ladderd_http_header_timeouts",
        "HTTP connections closed for not sending a request's headers within server.http_header_timeout_secs.",
        vec![],
        self.header_timeouts.load(Relaxed),
    );
    }
}

impl crate::telemetry::metrics::Report for limits::ClientLimits {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        use crate::telemetry::metrics::l;
        for (limit, n) in self.limited() {
            m.counter(
                "ladderd_http_limited",
                "HTTP connections (per_ip_connections: 429 and close) and requests (held_requests 429, header_bytes 431, uri_bytes 414, body_bytes 413) refused by a per-client limit.",
                l(&[("limit", limit)]),
                n,
            );
        }
        m.gauge(
            "ladderd_http_clients",
            "Clients (IPv4 address or IPv6 /64) with a connection or held request open on the public listener, limit_exempt ones aside.",
            vec![],
            self.tracked_clients() as i64,
        );
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// Issue 30: `http_out_bytes_total` took a body's length up front, so a
    /// part streamed as it was written (no length yet) counted nothing.
    #[test]
    fn streamed_bodies_count_the_bytes_sent() {
        let stats = Arc::new(HttpStats::default());
        let frames = ["moof", "mdat1234", "moof", "mdat56"].map(|s| {
            Ok::<_, response::BodyError>(hyper::body::Frame::data(bytes::Bytes::from_static(
                s.as_bytes(),
            )))
        });
        let body: response::Body = Box::pin(http_body_util::StreamBody::new(
            futures_lite::stream::iter(frames),
        ));
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), None);
        let tracked = Tracked {
            body,
            watch: Rc::new(ConnWatch::new(Duration::from_secs(5))),
            stats: stats.clone(),
            _held: None,
        };
        let sent = futures_lite::future::block_on(tracked.collect())
            .unwrap()
            .to_bytes();
        assert_eq!(sent.len(), 22);
        assert_eq!(stats.bytes_out.load(Relaxed), 22);
        // A whole body counts the same way.
        let whole = Tracked {
            body: response::full(bytes::Bytes::from_static(b"#EXTM3U\n")),
            watch: Rc::new(ConnWatch::new(Duration::from_secs(5))),
            stats: stats.clone(),
            _held: None,
        };
        futures_lite::future::block_on(whole.collect()).unwrap();
        assert_eq!(stats.bytes_out.load(Relaxed), 30);
    }
}
