//! `[ingest]`: publishing, reconnects, failover, the slate, auth backoff.

use std::ops::Bound::{Excluded, Included};

use serde::Deserialize;

use super::invalid::{ensure, range, Invalid};
use super::streams::valid_name;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    /// RTMP application name publishers connect to (`rtmp://HOST/live`).
    pub app: String,
    /// Lab setting: accept any stream NAME without a key. Off by default.
    pub allow_any_key: bool,
    /// A second publisher on a live NAME replaces the first (default: it is rejected).
    pub takeover: bool,
    /// SRT receiver latency (ms): how long libsrt may wait for retransmissions
    /// before it gives a packet up. Per stream: `[[streams]] srt_latency_ms`.
    pub srt_latency_ms: u32,
    /// A publisher that comes back under the same NAME within this many seconds
    /// continues the same renditions (media sequence, URIs); 0: each publish
    /// starts anew.
    pub reconnect_window_secs: f64,
    /// After this many ms without input (a silent or gone publisher, inside
    /// the reconnect window) the stream shows a "signal lost" slate with
    /// silence on the same clock, so players keep playing; 0: no slate.
    pub slate_after_ms: u64,
    /// After this many ms without video on air (at least 4 frame
    /// intervals) every rung gets the pictures the decoder holds for
    /// reordering, so the renditions do not stop short of what was sent
    /// while the input pauses; 0: they wait for the next packets. The
    /// replay runs a few packets per wake of the media core, so it never
    /// holds the core (or the slate's timer) for a GOP's decode.
    pub decoder_drain_after_ms: u64,
    /// A primary without input for this many ms hands the renditions to its
    /// backup (`role=backup`), from the backup's latest keyframe.
    pub failover_after_ms: u64,
    /// Back to the primary when it returns (`auto`), or only when the backup
    /// fails or an operator asks (`manual`: `POST /api/v1/streams/NAME/failback`).
    pub failback: Failback,
    /// Failed publish attempts (wrong or missing key, unknown stream) from one
    /// address within `auth_failure_window_secs` before it is made to wait.
    pub auth_failures_before_backoff: u32,
    pub auth_failure_window_secs: f64,
    /// The first wait; each further round of failures doubles it up to
    /// `auth_backoff_max_secs`. While it lasts every publish from the address is
    /// refused, right key or not.
    pub auth_backoff_secs: f64,
    pub auth_backoff_max_secs: f64,
}

/// `[ingest] failback`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failback {
    #[default]
    Auto,
    Manual,
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            app: "live".into(),
            allow_any_key: false,
            takeover: false,
            srt_latency_ms: 120,
            reconnect_window_secs: 30.0,
            slate_after_ms: 1000,
            decoder_drain_after_ms: 250,
            failover_after_ms: 1000,
            failback: Failback::Auto,
            auth_failures_before_backoff: 5,
            auth_failure_window_secs: 60.0,
            auth_backoff_secs: 10.0,
            auth_backoff_max_secs: 300.0,
        }
    }
}

impl Ingest {
    pub fn validate(&self) -> Result<(), Invalid> {
        range(
            "ingest.srt_latency_ms",
            self.srt_latency_ms,
            20..=8000,
            "must be between 20 and 8000 ms",
        )?;
        range(
            "ingest.reconnect_window_secs",
            self.reconnect_window_secs,
            0.0..=3600.0,
            "must be between 0 and 3600",
        )?;
        range(
            "ingest.failover_after_ms",
            self.failover_after_ms,
            100..=60_000,
            "must be between 100 and 60000",
        )?;
        range(
            "ingest.slate_after_ms",
            self.slate_after_ms,
            ..=60_000,
            "must be between 0 (no slate) and 60000",
        )?;
        range(
            "ingest.decoder_drain_after_ms",
            self.decoder_drain_after_ms,
            ..=60_000,
            "must be between 0 (no drain) and 60000",
        )?;
        range(
            "ingest.auth_failures_before_backoff",
            self.auth_failures_before_backoff,
            1..,
            "must be at least 1",
        )?;
        for (key, secs) in [
            (
                "ingest.auth_failure_window_secs",
                self.auth_failure_window_secs,
            ),
            ("ingest.auth_backoff_secs", self.auth_backoff_secs),
        ] {
            range(
                key,
                secs,
                (Excluded(0.0), Included(86_400.0)),
                "must be more than 0 and at most 86400",
            )?;
        }
        range(
            "ingest.auth_backoff_max_secs",
            self.auth_backoff_max_secs,
            self.auth_backoff_secs..=86_400.0,
            "must be between ingest.auth_backoff_secs and 86400",
        )?;
        ensure(
            valid_name(&self.app),
            "ingest.app",
            "use 1-64 characters from A-Z a-z 0-9 _ - .",
        )
    }
}
