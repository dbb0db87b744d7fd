//! What a ladder counts: per rung ([`RungStats`]) and per stage
//! ([`StageLatency`]).

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::telemetry::latency::latency_histogram;

/// Per-rung output accounting.
#[derive(Debug, Clone)]
pub struct RungStats {
    pub frames: u64,
    /// Pictures this rung skipped because its queue was full (realtime mode),
    /// up to its next segment boundary.
    pub dropped_behind: u64,
    /// Scale or encode errors of this rung (a GPU out of memory, a codec
    /// refusing a picture): the rung alone skips to its next IDR.
    pub errors: u64,
    /// Pictures this rung gave up after such an error, up to its next IDR.
    pub dropped_error: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub scale_time: Duration,
    pub encode_time: Duration,
    /// CPU time of the thread that scaled / encoded (the `bench ladder`
    /// per-stage CPU per picture; wall time counts waiting for a core too).
    pub scale_cpu: Duration,
    pub encode_cpu: Duration,
    /// Microseconds per picture.
    pub scale_us: Histogram<u64>,
    pub encode_us: Histogram<u64>,
}

impl Default for RungStats {
    fn default() -> Self {
        RungStats {
            frames: 0,
            dropped_behind: 0,
            errors: 0,
            dropped_error: 0,
            keyframes: 0,
            bytes: 0,
            scale_time: Duration::ZERO,
            encode_time: Duration::ZERO,
            scale_cpu: Duration::ZERO,
            encode_cpu: Duration::ZERO,
            scale_us: latency_histogram(),
            encode_us: latency_histogram(),
        }
    }
}

/// Per-stage latency of a running ladder (microseconds).
#[derive(Debug, Clone)]
pub struct StageLatency {
    /// Decoding one access unit.
    pub decode_us: Histogram<u64>,
    /// Scaling + encoding every rung's share of one decoded picture.
    pub ladder_us: Histogram<u64>,
    /// Packet arrival at ingest → every rung has encoded that picture.
    pub total_us: Histogram<u64>,
    /// Packet arrival at ingest → its picture decoded (reorder delay included).
    pub decoded_us: Histogram<u64>,
}
