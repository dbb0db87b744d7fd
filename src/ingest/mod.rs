//! Taking streams in: protocol sessions and publish auth. FLV demux is in
//! `media::flv`; a claimed stream's life (registry, driver) is `stream`'s.

pub mod auth;
pub mod rtmp;
pub mod srt;

use std::sync::Arc;

use crate::config::Config;
use crate::stream::Streams;
use crate::telemetry::shutdown::Shutdown;

/// What the ingest listeners need, built by `runtime`.
pub struct Ingest {
    pub config: Arc<Config>,
    /// Claims names and hands streams to media cores.
    pub streams: Arc<Streams>,
    /// RTMP connection slots across all I/O cores.
    pub rtmp: Arc<rtmp::admission::Admission>,
    /// Addresses that failed publish auth too often wait here.
    pub auth: Arc<auth::AuthBackoff>,
    /// Open SRT connections per address.
    pub srt: Arc<srt::access::PerIp>,
    pub shutdown: Arc<Shutdown>,
}

impl crate::telemetry::metrics::Report for auth::AuthBackoff {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        m.counter(
            "ladderd_publish_auth_backoffs",
            "Backoffs imposed on an address after ingest.auth_failures_before_backoff failed publish attempts (wrong or missing key, unknown stream); its publishes are refused (reason backed_off) while one lasts.",
            vec![],
            self.backoffs.load(std::sync::atomic::Ordering::Relaxed),
        );
        m.gauge(
            "ladderd_publish_auth_backed_off_addresses",
            "Addresses waiting out a publish-auth backoff now.",
            vec![],
            self.backed_off(crate::telemetry::clock::now()) as i64,
        );
    }
}
