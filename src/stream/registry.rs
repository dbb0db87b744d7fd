//! The live streams: one publisher per NAME, their counters, and recent sessions.
//!
//! Claims and releases take a lock (once per publish); per-packet counters are
//! atomics written by one connection task and read by the API on any core.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use event_listener::Event;
use serde::Serialize;

use crate::media::h264::AvcConfig;
use crate::media::StreamId;
use crate::telemetry::clock;
use crate::telemetry::latency::LatencySummary;

/// Why a publish was refused; the label is used in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    WrongApp,
    BadName,
    UnknownStream,
    MissingKey,
    BadKey,
    AlreadyLive,
    TooManyStreams,
    ShuttingDown,
    /// The address failed too many publish attempts and is waiting out a backoff.
    BackedOff,
}

impl Rejection {
    pub fn label(self) -> &'static str {
        match self {
            Rejection::WrongApp => "wrong_app",
            Rejection::BadName => "bad_name",
            Rejection::UnknownStream => "unknown_stream",
            Rejection::MissingKey => "missing_key",
            Rejection::BadKey => "bad_key",
            Rejection::AlreadyLive => "already_live",
            Rejection::TooManyStreams => "too_many_streams",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::BackedOff => "backed_off",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rejection::WrongApp => "unknown RTMP application",
            Rejection::BadName => "stream name is not valid",
            Rejection::UnknownStream => "no such stream is configured",
            Rejection::MissingKey => "stream key missing (publish as NAME?key=SECRET)",
            Rejection::BadKey => "stream key is wrong",
            Rejection::AlreadyLive => "stream already has a publisher",
            Rejection::TooManyStreams => "server is at its stream limit",
            Rejection::ShuttingDown => "server is shutting down",
            Rejection::BackedOff => {
                "too many failed publish attempts from this address; try again later"
            }
        }
    }
}

/// Sessions remembered after they end, for `/api/v1/sessions`.
const HISTORY: usize = 64;
/// Seconds of the bitrate window; one bucket per second plus slack.
const RATE_WINDOW_SECS: u64 = 5;
const RATE_BUCKETS: usize = 8;

#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    rejected: Mutex<HashMap<&'static str, u64>>,
    /// When each reason's refusals were last logged.
    rejection_log: Mutex<HashMap<&'static str, crate::telemetry::throttle::LogThrottle>>,
    /// Per NAME ever published: which input its renditions follow.
    inputs: Mutex<HashMap<String, Arc<crate::stream::inputs::InputState>>>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Arc<LiveStream>>,
    /// Backup publishers (`role=backup`), by NAME.
    backups: HashMap<String, Arc<LiveStream>>,
    history: VecDeque<SessionRecord>,
    /// Per NAME, the counts of its publishes that ended (see [`Totals`]).
    ended: std::collections::BTreeMap<String, Totals>,
    /// Every publish claimed and not yet folded into `ended` (primary or
    /// backup, live, taken over or draining).
    running: Vec<std::sync::Weak<LiveStream>>,
}

/// Why a publish session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum EndReason {
    /// The publisher unpublished or closed its connection.
    PublisherClosed,
    /// Silent for longer than `limits.rtmp_idle_timeout_secs`.
    Timeout,
    /// Another publisher took the NAME over.
    TakenOver,
    /// The server is shutting down.
    Shutdown,
    /// Stopped by an operator through the API.
    Kicked,
    /// The stream could not be carried (unsupported codec, protocol error).
    Error(String),
}

pub struct LiveStream {
    pub id: StreamId,
    pub name: String,
    pub publisher: SocketAddr,
    /// How the publisher sends: `rtmp`, `srt` or `demo`.
    pub protocol: &'static str,
    pub role: crate::stream::Role,
    /// The transport's own view of the link (SRT: RTT, loss, retransmissions),
    /// refreshed by the connection about once a second.
    pub transport: Mutex<Option<TransportStats>>,
    pub started: Instant,
    pub started_unix_ms: u64,
    pub stats: IngestStats,
    pub pipeline: PipelineStats,
    info: Mutex<SourceInfo>,
    stop: AtomicBool,
    stop_reason: Mutex<Option<EndReason>>,
    stopped: Event,
    /// Its counts are in its NAME's ended totals (set under the registry's
    /// lock by `finish`): `/metrics` counts it there, not again live.
    folded: AtomicBool,
}

/// A NAME's counters summed over its publishes, ended and running, so the
/// `/metrics` counters of a stream never go backwards when a publish ends
/// (Prometheus reads a drop as a counter reset and loses what it counted).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub video_packets: u64,
    pub audio_packets: u64,
    pub bytes: u64,
    pub continuity_errors: u64,
    pub ts: TsDemuxCounts,
    pub decode_errors: u64,
    pub frames_skipped: u64,
    pub ladder_failures: u64,
    pub in_band_reconfigurations: u64,
    pub decoder_drains: u64,
    pub decoder_drain_failures: u64,
}

impl Totals {
    fn of(s: &LiveStream) -> Totals {
        let (i, p) = (&s.stats, &s.pipeline);
        Totals {
            video_packets: i.video_packets.load(Relaxed),
            audio_packets: i.audio_packets.load(Relaxed),
            bytes: i.bytes.load(Relaxed),
            continuity_errors: i.continuity_errors.load(Relaxed),
            ts: i.ts.counts(),
            decode_errors: p.decode_errors.load(Relaxed),
            frames_skipped: p.frames_skipped.load(Relaxed),
            ladder_failures: p.ladder_failures.load(Relaxed),
            in_band_reconfigurations: p.in_band_reconfigurations.load(Relaxed),
            decoder_drains: p.decoder_drains.load(Relaxed),
            decoder_drain_failures: p.decoder_drain_failures.load(Relaxed),
        }
    }

    fn add(&mut self, o: &Totals) {
        self.video_packets += o.video_packets;
        self.audio_packets += o.audio_packets;
        self.bytes += o.bytes;
        self.continuity_errors += o.continuity_errors;
        self.ts.add(&o.ts);
        self.decode_errors += o.decode_errors;
        self.frames_skipped += o.frames_skipped;
        self.ladder_failures += o.ladder_failures;
        self.in_band_reconfigurations += o.in_band_reconfigurations;
        self.decoder_drains += o.decoder_drains;
        self.decoder_drain_failures += o.decoder_drain_failures;
    }
}

/// NAMEs whose ended publishes' totals are kept (beyond it, the NAME that
/// sorts first is forgotten: a bound against strangers' made-up NAMEs).
const TOTALS_KEPT: usize = 4096;

/// A publisher's link as its transport measures it (SRT's `srt_bstats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransportStats {
    pub rtt_ms: f64,
    pub receive_rate_mbps: f64,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub packets_retransmitted: u64,
    /// Given up as too late to play (beyond the receiver latency).
    pub packets_dropped: u64,
    /// Media held in the receive buffer, in milliseconds.
    pub receive_buffer_ms: u64,
    /// Receiver latency agreed in the handshake (ms).
    pub latency_ms: u64,
}

/// What the publisher told us about its media.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    pub video: Option<AvcConfig>,
    pub audio: Option<crate::media::AudioConfig>,
    /// `onMetaData` as the publisher sent it (numbers and strings only).
    pub metadata: Option<serde_json::Value>,
}

/// The MPEG-TS demuxer's own counts for one publish (SRT), beyond
/// continuity errors: what an operator reads to tell a broken encoder
/// (garbage, unreadable PES) from a lossy network.
#[derive(Debug, Default)]
pub struct TsDemuxStats {
    /// Bytes skipped looking for the 0x47 packet cadence.
    pub skipped_bytes: AtomicU64,
    /// Times the cadence was lost and found again.
    pub resyncs: AtomicU64,
    /// PES packets dropped (unreadable, unplaceable, too large, or audio
    /// with a lost TS packet).
    pub dropped_pes: AtomicU64,
    /// Video PES kept though a TS packet was lost (a damaged picture).
    pub damaged_pes: AtomicU64,
    /// PES whose declared length disagreed with the data.
    pub pes_length_mismatches: AtomicU64,
}

/// [`TsDemuxStats`] as numbers (the API, `/metrics`, ended publishes' totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TsDemuxCounts {
    pub skipped_bytes: u64,
    pub resyncs: u64,
    pub dropped_pes: u64,
    pub damaged_pes: u64,
    pub pes_length_mismatches: u64,
}

impl TsDemuxStats {
    /// The demuxer's counts so far in the publish.
    pub fn set(&self, c: TsDemuxCounts) {
        self.skipped_bytes.store(c.skipped_bytes, Relaxed);
        self.resyncs.store(c.resyncs, Relaxed);
        self.dropped_pes.store(c.dropped_pes, Relaxed);
        self.damaged_pes.store(c.damaged_pes, Relaxed);
        self.pes_length_mismatches
            .store(c.pes_length_mismatches, Relaxed);
    }

    pub fn counts(&self) -> TsDemuxCounts {
        TsDemuxCounts {
            skipped_bytes: self.skipped_bytes.load(Relaxed),
            resyncs: self.resyncs.load(Relaxed),
            dropped_pes: self.dropped_pes.load(Relaxed),
            damaged_pes: self.damaged_pes.load(Relaxed),
            pes_length_mismatches: self.pes_length_mismatches.load(Relaxed),
        }
    }
}

impl TsDemuxCounts {
    fn add(&mut self, o: &TsDemuxCounts) {
        self.skipped_bytes += o.skipped_bytes;
        self.resyncs += o.resyncs;
        self.dropped_pes += o.dropped_pes;
        self.damaged_pes += o.damaged_pes;
        self.pes_length_mismatches += o.pes_length_mismatches;
    }
}

/// Written by the connection task that owns the publish.
#[derive(Default)]
pub struct IngestStats {
    pub video_packets: AtomicU64,
    pub audio_packets: AtomicU64,
    pub keyframes: AtomicU64,
    pub bytes: AtomicU64,
    pub discontinuities: AtomicU64,
    /// Tags dropped because they could not be parsed.
    pub tag_errors: AtomicU64,
    /// MPEG-TS continuity-counter gaps (SRT: TS packets lost or repeated).
    pub continuity_errors: AtomicU64,
    /// What the MPEG-TS demuxer skipped or dropped in this publish (SRT).
    pub ts: TsDemuxStats,
    /// Milliseconds after `started` of the last packet.
    pub last_packet_ms: AtomicU64,
    rate: RateWindow,
}

/// Written by the stream's pipeline on its media core.
#[derive(Default)]
pub struct PipelineStats {
    pub packets: AtomicU64,
    pub video_packets: AtomicU64,
    pub audio_packets: AtomicU64,
    /// Packets whose dts went backwards on their track (must stay 0).
    pub dts_regressions: AtomicU64,
    /// Packets with pts < dts (must stay 0).
    pub pts_before_dts: AtomicU64,
    pub discontinuities: AtomicU64,
    pub frames_decoded: AtomicU64,
    /// Decode errors (each makes the stream skip to its next keyframe).
    pub decode_errors: AtomicU64,
    /// Video packets not decoded because of those errors (the bad one included).
    pub frames_skipped: AtomicU64,
    /// Source frames dropped because the stream fell behind real time.
    pub dropped_late: AtomicU64,
    /// Ladders that failed to start or stopped on a stage failure (a GPU
    /// error, a panic in a codec): the stream goes on without them.
    pub ladder_failures: AtomicU64,
    /// New video configurations announced only by an in-band SPS (a new
    /// size, profile or level without a new sequence header).
    pub in_band_reconfigurations: AtomicU64,
    /// Input pauses whose decoder-held pictures went to every rung, and
    /// drains that failed (the renditions then wait for the next packets).
    pub decoder_drains: AtomicU64,
    pub decoder_drain_failures: AtomicU64,
    /// The running ladder's rungs; replaced when the source's video config changes.
    pub rungs: Mutex<Arc<Vec<RungCounters>>>,
    /// Per-stage latency, refreshed by the pipeline about once a second.
    pub latency: Mutex<LatencySummary>,
}

impl IngestStats {
    /// Accounts one packet of `len` bytes arriving `since_start` into the publish.
    pub fn record(&self, since_start: std::time::Duration, len: usize) {
        self.bytes.fetch_add(len as u64, Relaxed);
        self.last_packet_ms
            .store(since_start.as_millis() as u64, Relaxed);
        self.rate.add(since_start, len as u64);
    }

    /// Bits per second over the last complete 5 s.
    pub fn bitrate(&self, since_start: std::time::Duration) -> u64 {
        self.rate.per_second(since_start) * 8
    }
}

/// A per-second rate over the last complete `RATE_WINDOW_SECS` seconds, lock-free.
/// One writer (the task that owns the stream), any number of readers.
#[derive(Default)]
pub struct RateWindow {
    sec: [AtomicU64; RATE_BUCKETS],
    sum: [AtomicU64; RATE_BUCKETS],
}

impl RateWindow {
    pub fn add(&self, since_start: std::time::Duration, n: u64) {
        let sec = since_start.as_secs() + 1; // 0 marks an empty bucket
        let i = (sec % RATE_BUCKETS as u64) as usize;
        if self.sec[i].load(Relaxed) != sec {
            self.sum[i].store(0, Relaxed);
            self.sec[i].store(sec, Relaxed);
        }
        self.sum[i].fetch_add(n, Relaxed);
    }

    /// Mean per second over the complete seconds of the window (fewer at start).
    pub fn per_second(&self, since_start: std::time::Duration) -> u64 {
        let now = since_start.as_secs() + 1;
        let window = RATE_WINDOW_SECS.min(now.saturating_sub(1)).max(1);
        let total: u64 = (0..RATE_BUCKETS)
            .filter(|&i| {
                let s = self.sec[i].load(Relaxed);
                s < now && s + window >= now
            })
            .map(|i| self.sum[i].load(Relaxed))
            .sum();
        total / window
    }
}

/// Output of one rung of a running ladder.
pub struct RungCounters {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub target_fps: f64,
    pub target_bitrate_bps: u32,
    pub frames: AtomicU64,
    pub keyframes: AtomicU64,
    pub bytes: AtomicU64,
    /// Frames not encoded because the stream fell behind real time (see pipeline).
    pub dropped: AtomicU64,
    /// Frames this rung alone skipped: its encoder fell behind (queue full).
    pub dropped_behind: AtomicU64,
    /// Scale or encode errors of this rung alone (it skips to its next IDR).
    pub errors: AtomicU64,
    /// Frames this rung alone gave up after such an error.
    pub dropped_error: AtomicU64,
    /// Frames sent after an input pause that show before a picture the
    /// pause's drain gave out (B-frames of a mini-GOP the pause cut).
    pub dropped_drain: AtomicU64,
    pub frame_rate: RateWindow,
    pub byte_rate: RateWindow,
}

impl RungCounters {
    pub fn new(rung: &crate::transcode::ladder::Rung) -> Self {
        RungCounters {
            name: rung.name.clone(),
            width: rung.width,
            height: rung.height,
            target_fps: rung.fps,
            target_bitrate_bps: rung.bitrate_bps,
            frames: AtomicU64::new(0),
            keyframes: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_behind: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped_error: AtomicU64::new(0),
            dropped_drain: AtomicU64::new(0),
            frame_rate: RateWindow::default(),
            byte_rate: RateWindow::default(),
        }
    }
}

/// How a publish claims its NAME ([`Registry::claim_with`]).
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    pub takeover: bool,
    pub max_streams: usize,
    pub role: crate::stream::Role,
    /// A holder silent this long yields the NAME (None: it never does).
    pub holder_silent_after: Option<std::time::Duration>,
    pub now: Instant,
}

impl LiveStream {
    /// How long since its last packet (since it started, before the first).
    pub fn silent_for(&self, now: Instant) -> std::time::Duration {
        let last = self.started
            + std::time::Duration::from_millis(self.stats.last_packet_ms.load(Relaxed));
        now.saturating_duration_since(last)
    }

    pub fn info(&self) -> MutexGuard<'_, SourceInfo> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This stream, for an error that happened in it.
    pub fn ctx(&self) -> crate::media::StreamCtx {
        crate::media::StreamCtx::new(&self.name)
    }

    /// Asks the connection that owns this publish to end it.
    pub fn stop(&self, reason: EndReason) {
        {
            let mut r = self.stop_reason.lock().unwrap_or_else(|p| p.into_inner());
            r.get_or_insert(reason);
        }
        self.stop.store(true, Relaxed);
        self.stopped.notify(usize::MAX);
    }

    /// Resolves once [`LiveStream::stop`] has been called; yields the reason.
    pub async fn stopped(&self) -> EndReason {
        loop {
            if let Some(r) = self.stop_reason() {
                return r;
            }
            let listener = self.stopped.listen();
            if let Some(r) = self.stop_reason() {
                return r;
            }
            listener.await;
        }
    }

    fn stop_reason(&self) -> Option<EndReason> {
        if !self.stop.load(Relaxed) {
            return None;
        }
        self.stop_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why the publish was asked to end, if it was (for blocking connection threads).
    pub fn stop_requested(&self) -> Option<EndReason> {
        self.stop_reason()
    }

    pub fn snapshot(&self) -> StreamView {
        let elapsed = self.started.elapsed();
        let info = self.info().clone();
        let s = &self.stats;
        let p = &self.pipeline;
        StreamView {
            name: self.name.clone(),
            id: self.id,
            publisher: self.publisher.to_string(),
            protocol: self.protocol,
            role: match self.role {
                crate::stream::Role::Primary => "primary",
                crate::stream::Role::Backup => "backup",
            },
            transport: self
                .transport
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            started_unix_ms: self.started_unix_ms,
            uptime_secs: elapsed.as_secs_f64(),
            video: info.video.as_ref().map(|v| VideoView {
                codec: v.codec_string(),
                profile: v.profile_name().to_string(),
                level: v.level_idc as f64 / 10.0,
                width: v.width,
                height: v.height,
                fps: v
                    .fps
                    .or_else(|| metadata_number(&info.metadata, "framerate")),
            }),
            audio: info.audio.as_ref().map(|a| AudioView {
                codec: a.codec_string(),
                sample_rate: a.sample_rate(),
                channels: a.channels(),
            }),
            metadata: info.metadata.clone(),
            packets: PacketCounts {
                video: s.video_packets.load(Relaxed),
                audio: s.audio_packets.load(Relaxed),
            },
            keyframes: s.keyframes.load(Relaxed),
            bytes_received: s.bytes.load(Relaxed),
            bitrate_bps: s.bitrate(elapsed),
            since_last_packet_ms: (elapsed.as_millis() as u64)
                .saturating_sub(s.last_packet_ms.load(Relaxed)),
            discontinuities: s.discontinuities.load(Relaxed),
            tag_errors: s.tag_errors.load(Relaxed),
            continuity_errors: s.continuity_errors.load(Relaxed),
            ts_demux: s.ts.counts(),
            pipeline: PipelineView {
                frames_decoded: p.frames_decoded.load(Relaxed),
                decode_errors: p.decode_errors.load(Relaxed),
                frames_skipped: p.frames_skipped.load(Relaxed),
                latency: p.latency.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                dropped_late: p.dropped_late.load(Relaxed),
                ladder_failures: p.ladder_failures.load(Relaxed),
                in_band_reconfigurations: p.in_band_reconfigurations.load(Relaxed),
                decoder_drains: p.decoder_drains.load(Relaxed),
                rungs: p
                    .rungs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|r| RungView {
                        name: r.name.clone(),
                        width: r.width,
                        height: r.height,
                        target_fps: r.target_fps,
                        output_fps: r.frame_rate.per_second(elapsed) as f64,
                        target_bitrate_bps: r.target_bitrate_bps,
                        bitrate_bps: r.byte_rate.per_second(elapsed) * 8,
                        frames: r.frames.load(Relaxed),
                        keyframes: r.keyframes.load(Relaxed),
                        dropped: r.dropped.load(Relaxed),
                        dropped_behind: r.dropped_behind.load(Relaxed),
                        errors: r.errors.load(Relaxed),
                        dropped_error: r.dropped_error.load(Relaxed),
                        dropped_drain: r.dropped_drain.load(Relaxed),
                    })
                    .collect(),
                packets: p.packets.load(Relaxed),
                video_packets: p.video_packets.load(Relaxed),
                audio_packets: p.audio_packets.load(Relaxed),
                dts_regressions: p.dts_regressions.load(Relaxed),
                pts_before_dts: p.pts_before_dts.load(Relaxed),
                discontinuities: p.discontinuities.load(Relaxed),
            },
        }
    }
}

fn metadata_number(meta: &Option<serde_json::Value>, key: &str) -> Option<f64> {
    meta.as_ref()?.get(key)?.as_f64()
}

/// A publish as the API shows it. Never carries the stream key.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    pub name: String,
    pub id: StreamId,
    pub publisher: String,
    pub protocol: &'static str,
    /// `primary`, or `backup` (a second feed the renditions fail over to).
    pub role: &'static str,
    /// SRT publishers: the link as libsrt measures it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportStats>,
    pub started_unix_ms: u64,
    pub uptime_secs: f64,
    pub video: Option<VideoView>,
    pub audio: Option<AudioView>,
    pub metadata: Option<serde_json::Value>,
    pub packets: PacketCounts,
    pub keyframes: u64,
    pub bytes_received: u64,
    /// Over the last 5 s.
    pub bitrate_bps: u64,
    pub since_last_packet_ms: u64,
    pub discontinuities: u64,
    pub tag_errors: u64,
    pub continuity_errors: u64,
    /// The MPEG-TS demuxer's counts (SRT; zeros for RTMP).
    pub ts_demux: TsDemuxCounts,
    pub pipeline: PipelineView,
}

#[derive(Debug, Clone, Serialize)]
pub struct VideoView {
    pub codec: String,
    pub profile: String,
    pub level: f64,
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AudioView {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct PacketCounts {
    pub video: u64,
    pub audio: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineView {
    pub frames_decoded: u64,
    pub decode_errors: u64,
    pub frames_skipped: u64,
    pub dropped_late: u64,
    pub ladder_failures: u64,
    pub in_band_reconfigurations: u64,
    pub decoder_drains: u64,
    pub latency: LatencySummary,
    pub rungs: Vec<RungView>,
    pub packets: u64,
    pub video_packets: u64,
    pub audio_packets: u64,
    pub dts_regressions: u64,
    pub pts_before_dts: u64,
    pub discontinuities: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RungView {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub target_fps: f64,
    /// Frames per second over the last 5 s.
    pub output_fps: f64,
    pub target_bitrate_bps: u32,
    /// Over the last 5 s.
    pub bitrate_bps: u64,
    pub frames: u64,
    pub keyframes: u64,
    /// Whole-stream drops (the stream fell behind real time).
    pub dropped: u64,
    /// This rung's own drops (its encoder fell behind; up to its next IDR).
    pub dropped_behind: u64,
    pub errors: u64,
    pub dropped_error: u64,
    pub dropped_drain: u64,
}

/// A finished publish: its final counters, once its pipeline has drained.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    #[serde(flatten)]
    pub stream: StreamView,
    pub ended: EndReason,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `name` live for `publisher`. With `takeover`, an existing publisher
    /// is told to stop and replaced; otherwise the claim is refused. (The
    /// unit tests' shorthand for [`Self::claim_with`]; publishes go through
    /// `Streams::publish`.)
    #[cfg(test)]
    pub fn claim(
        &self,
        name: &str,
        publisher: SocketAddr,
        protocol: &'static str,
        takeover: bool,
        max_streams: usize,
        role: crate::stream::Role,
    ) -> Result<Arc<LiveStream>, Rejection> {
        let claim = Claim {
            takeover,
            max_streams,
            role,
            holder_silent_after: None,
            now: clock::now(),
        };
        self.claim_with(name, publisher, protocol, claim)
    }

    /// [`Self::claim`], where a holder silent for `holder_silent_after` (by
    /// `now`) yields the NAME as with takeover: an encoder restarted over SRT
    /// (no close reaches us from a killed peer) or a half-open TCP connection
    /// must not lock its own NAME out until the idle timeout.
    pub fn claim_with(
        &self,
        name: &str,
        publisher: SocketAddr,
        protocol: &'static str,
        c: Claim,
    ) -> Result<Arc<LiveStream>, Rejection> {
        let Claim {
            takeover,
            max_streams,
            role,
            holder_silent_after,
            now,
        } = c;
        let mut inner = self.lock();
        let backup = role == crate::stream::Role::Backup;
        let map = if backup {
            &mut inner.backups
        } else {
            &mut inner.live
        };
        if let Some(existing) = map.get(name) {
            let silent = existing.silent_for(now);
            let stale = holder_silent_after.is_some_and(|after| silent >= after);
            if !takeover && !stale {
                return Err(Rejection::AlreadyLive);
            }
            if stale && !takeover {
                tracing::info!(stream = %name, id = existing.id, silent_ms = silent.as_millis() as u64, "the NAME's publisher has been silent: a new publisher takes over");
            }
            existing.stop(EndReason::TakenOver);
            map.remove(name);
        }
        if !backup && inner.live.len() >= max_streams {
            return Err(Rejection::TooManyStreams);
        }
        let stream = Arc::new(LiveStream {
            id: self.next_id.fetch_add(1, Relaxed) + 1,
            name: name.to_string(),
            publisher,
            protocol,
            role,
            transport: Mutex::new(None),
            started: clock::now(),
            started_unix_ms: clock::unix_ms(),
            stats: IngestStats::default(),
            pipeline: PipelineStats::default(),
            info: Mutex::new(SourceInfo::default()),
            stop: AtomicBool::new(false),
            stop_reason: Mutex::new(None),
            stopped: Event::new(),
            folded: AtomicBool::new(false),
        });
        inner
            .running
            .retain(|w| w.upgrade().is_some_and(|s| !s.folded.load(Relaxed)));
        inner.running.push(Arc::downgrade(&stream));
        let map = if backup {
            &mut inner.backups
        } else {
            &mut inner.live
        };
        map.insert(name.to_string(), stream.clone());
        Ok(stream)
    }

    /// Takes the stream off the live list (if it is still the one live under its name).
    pub fn release(&self, stream: &LiveStream) {
        let mut inner = self.lock();
        let map = match stream.role {
            crate::stream::Role::Backup => &mut inner.backups,
            crate::stream::Role::Primary => &mut inner.live,
        };
        if map.get(&stream.name).is_some_and(|s| s.id == stream.id) {
            map.remove(&stream.name);
        }
    }

    /// Files the final record of a session whose pipeline has drained.
    pub fn finish(&self, stream: &LiveStream, ended: EndReason) {
        let record = SessionRecord {
            stream: stream.snapshot(),
            ended,
        };
        let mut inner = self.lock();
        if !stream.folded.swap(true, Relaxed) {
            let t = Totals::of(stream);
            inner.ended.entry(stream.name.clone()).or_default().add(&t);
            while inner.ended.len() > TOTALS_KEPT {
                inner.ended.pop_first();
            }
        }
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(record);
    }

    /// Counts a refused publish. `Some(unlogged)`: log this one (and that
    /// `unlogged` more of its reason went unlogged since the last line);
    /// `None`: count only. One line a minute per reason: a key guesser or a
    /// misconfigured encoder retrying cannot grow the log.
    pub fn count_rejection(&self, r: Rejection, now: Instant) -> Option<u64> {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(r.label())
            .or_default() += 1;
        self.rejection_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(r.label())
            .or_default()
            .hit(now)
    }

    pub fn rejections(&self) -> HashMap<&'static str, u64> {
        self.rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn live(&self) -> Vec<Arc<LiveStream>> {
        let mut v: Vec<_> = self.lock().live.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Per NAME ever published (within [`TOTALS_KEPT`]), its counters over
    /// every publish: the ended ones' and the running ones', sorted by NAME.
    pub fn totals(&self) -> Vec<(String, Totals)> {
        let inner = self.lock();
        let mut all = inner.ended.clone();
        for s in inner.running.iter().filter_map(|w| w.upgrade()) {
            if !s.folded.load(Relaxed) {
                all.entry(s.name.clone()).or_default().add(&Totals::of(&s));
            }
        }
        all.into_iter().collect()
    }

    /// Backup publishers, sorted by NAME.
    pub fn backups(&self) -> Vec<Arc<LiveStream>> {
        let mut v: Vec<_> = self.lock().backups.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn get(&self, name: &str) -> Option<Arc<LiveStream>> {
        self.lock().live.get(name).cloned()
    }

    /// NAME's input state (made on first use; kept for the process's life,
    /// like the NAMEs configured).
    pub fn input(&self, name: &str) -> Arc<crate::stream::inputs::InputState> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        inputs.entry(name.to_string()).or_default().clone()
    }

    /// Every NAME's input state, sorted by NAME.
    pub fn inputs(&self) -> Vec<(String, Arc<crate::stream::inputs::InputState>)> {
        let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn history(&self) -> Vec<SessionRecord> {
        self.lock().history.iter().cloned().collect()
    }

    /// Tells every live publish to end (shutdown).
    pub fn stop_all(&self, reason: EndReason) {
        for s in self.live().into_iter().chain(self.backups()) {
            s.stop(reason.clone());
        }
    }
}

#[cfg(test)]
mod tests;
