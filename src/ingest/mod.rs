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
    pub shutdown: Arc<Shutdown>,
}
