//! `[limits]`: caps on streams and RTMP/SRT connections.

use std::ops::Bound::{Excluded, Included};

use serde::Deserialize;

use super::invalid::{range, Invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Live publishes at once; further publishes are rejected.
    pub max_streams: usize,
    /// Open RTMP connections at once (publishing or not).
    pub max_rtmp_connections: usize,
    /// Seconds an RTMP connection may stay silent (handshake included) before it is closed.
    pub rtmp_idle_timeout_secs: f64,
    /// Packets queued between ingest and a stream's pipeline before ingest waits (backpressure).
    pub packet_queue: usize,
    /// Seconds a new RTMP connection has to finish handshake, `connect` and an accepted
    /// `publish`, however busy it keeps the socket (the idle timeout alone lets a
    /// byte-a-second trickle hold a slot for ever).
    pub rtmp_setup_timeout_secs: f64,
    /// Open RTMP connections from one IP address (publishing or not).
    pub max_rtmp_connections_per_ip: usize,
    /// RTMP connections that have not yet published; beyond it new ones are refused,
    /// so `max_rtmp_connections` minus this many slots are always left for publishers.
    pub max_rtmp_pending_connections: usize,
    /// Bytes all not-yet-publishing RTMP connections together may hold in partial
    /// messages; a connection that would go past it is closed.
    pub rtmp_pending_buffer_bytes: usize,
    /// Open SRT connections from one IP address; beyond it callers are refused (1402).
    pub max_srt_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 64,
            max_rtmp_connections: 256,
            rtmp_idle_timeout_secs: 10.0,
            packet_queue: 1024,
            rtmp_setup_timeout_secs: 5.0,
            max_rtmp_connections_per_ip: 16,
            max_rtmp_pending_connections: 64,
            rtmp_pending_buffer_bytes: 8 << 20,
            max_srt_connections_per_ip: 16,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), Invalid> {
        range(
            "limits.max_srt_connections_per_ip",
            self.max_srt_connections_per_ip,
            1..,
            "must be at least 1",
        )?;
        range(
            "limits.max_streams",
            self.max_streams,
            1..,
            "must be at least 1",
        )?;
        range(
            "limits.max_rtmp_connections",
            self.max_rtmp_connections,
            1..,
            "must be at least 1",
        )?;
        range(
            "limits.rtmp_idle_timeout_secs",
            self.rtmp_idle_timeout_secs,
            (Excluded(0.0), Included(3600.0)),
            "must be in (0, 3600]",
        )?;
        range(
            "limits.rtmp_setup_timeout_secs",
            self.rtmp_setup_timeout_secs,
            (Excluded(0.0), Included(600.0)),
            "must be in (0, 600]",
        )?;
        range(
            "limits.max_rtmp_connections_per_ip",
            self.max_rtmp_connections_per_ip,
            1..,
            "must be at least 1",
        )?;
        range(
            "limits.max_rtmp_pending_connections",
            self.max_rtmp_pending_connections,
            1..=self.max_rtmp_connections,
            "must be between 1 and limits.max_rtmp_connections",
        )?;
        range(
            "limits.rtmp_pending_buffer_bytes",
            self.rtmp_pending_buffer_bytes,
            64 << 10..,
            "must be at least 65536 (one command message)",
        )?;
        range(
            "limits.packet_queue",
            self.packet_queue,
            16..=1 << 20,
            "must be between 16 and 1048576",
        )
    }
}
