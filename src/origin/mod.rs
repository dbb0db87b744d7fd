//! The HTTP origin: hyper 1.x (HTTP/1.1 keep-alive and h2c) on the I/O cores.
//!
//! No media logic here: routes read the registry and the hot store.

mod io;
pub mod playback;
mod player;
pub mod routes;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glommio::net::TcpListener;
use hyper::service::service_fn;
use hyper_util::server::conn::auto;
use tracing::{debug, warn};

use crate::runtime::Context;
use io::{HyperIo, LocalExec};

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Playback, player, health; the API and /metrics unless `admin.listen` is set.
    Public,
    /// `admin.listen`: the API, /metrics and health only.
    Admin,
}

pub async fn accept_loop(listener: TcpListener, ctx: Arc<Context>, surface: Surface) {
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
        let _ = stream.set_nodelay(true);
        // hyper's own header timeout needs a Send timer (glommio's is not), so the
        // socket's read timeout bounds slow and stalled clients instead.
        let idle = Duration::from_secs_f64(ctx.config.server.http_idle_timeout_secs);
        if let Err(e) = stream.set_read_timeout(Some(idle)) {
            debug!(error = %e, "cannot set http read timeout; dropping connection");
            continue;
        }
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(routes::handle(&ctx, req, surface).await) }
            });
            let mut builder = auto::Builder::new(LocalExec);
            builder.http1().header_read_timeout(None).keep_alive(true);
            if let Err(e) = builder.serve_connection(HyperIo(stream), service).await {
                debug!(error = %e, "http connection ended with an error");
            }
        })
        .detach();
    }
}

/// Origin accounting: requests by route and status, bytes out, waiters.
#[derive(Default)]
pub struct HttpStats {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub bytes_out: AtomicU64,
    /// Requests parked on a blocking reload or a preload hint right now.
    pub blocked_waiters: AtomicI64,
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

    /// Requests so far, by (route, status).
    pub fn requests(&self) -> Vec<((&'static str, u16), u64)> {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn record_wake(&self, d: std::time::Duration) {
        let mut h = self.wake_us.lock().unwrap_or_else(|e| e.into_inner());
        let h = h.get_or_insert_with(crate::transcode::ladder_run::latency_histogram);
        let _ = h.record(d.as_micros() as u64);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
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
            "blocked_wake": self
                .wake_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(crate::transcode::ladder_run::Percentiles::of),
        })
    }
}
