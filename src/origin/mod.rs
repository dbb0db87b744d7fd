//! The HTTP origin: hyper 1.x (HTTP/1.1 keep-alive and h2c) on the I/O cores.
//!
//! No media logic here: routes read the registry (and, later, the store).

mod io;
pub mod routes;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use hyper::service::service_fn;
use hyper_util::server::conn::auto;
use tracing::{debug, warn};

use crate::runtime::Context;
use io::{HyperIo, LocalExec};

pub async fn accept_loop(listener: TcpListener, ctx: Arc<Context>) {
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
                async move { Ok::<_, Infallible>(routes::handle(&ctx, req).await) }
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
