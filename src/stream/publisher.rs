//! The hand-off from a publisher to its stream: one for every ingest
//! protocol (RTMP, SRT, the demo source; WHIP later).
//!
//! [`Streams::publish`](super::Streams::publish) claims a NAME and returns a
//! [`Publisher`]; the protocol glue hands it what it demuxed, in order:
//! [`config`](Publisher::config) for each codec configuration,
//! [`packet`](Publisher::packet) for each packet, then
//! [`end`](Publisher::end) once. The publisher keeps the stream's
//! [`SourceInfo`](super::registry::SourceInfo), its ingest counters and the
//! log lines of the publish, and sends [`Input`]s down the stream's bounded
//! channel (its backpressure reaches the protocol's socket). The `*_blocking`
//! twins are for sources on threads of their own (SRT, the demo); an I/O core
//! must await the others.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tracing::info;

use crate::media::{CodecConfig, Packet, Track};
use crate::stream::input::Input;
use crate::stream::registry::{EndReason, LiveStream, TransportStats, TsDemuxCounts};

/// The stream's pipeline is gone (it stopped, or the process is shutting
/// down): the publish ends.
#[derive(Debug, thiserror::Error)]
#[error("stream {stream}: pipeline stopped")]
pub struct Closed {
    pub stream: String,
}

/// What a publish needs of what claimed its NAME: a way to give it back when
/// the publish ends. [`Streams`](super::Streams) gives its registry's; a
/// [`Publisher`] holds nothing else of it.
pub trait Release: Send + Sync {
    /// `stream`'s claim of its NAME is over.
    fn release(&self, stream: &LiveStream);
}

/// One claimed publish of a NAME, as its protocol glue holds it.
pub struct Publisher {
    stream: Arc<LiveStream>,
    input: flume::Sender<Input>,
    release: Arc<dyn Release>,
}

impl Publisher {
    pub(super) fn new(
        stream: Arc<LiveStream>,
        input: flume::Sender<Input>,
        release: Arc<dyn Release>,
        takeover: bool,
    ) -> Publisher {
        info!(peer = %stream.publisher, stream = %stream.name, id = stream.id, protocol = stream.protocol, role = ?stream.role, takeover, "publish started");
        Publisher {
            stream,
            input,
            release,
        }
    }

    /// The claimed stream (its name, id, stop request, stats).
    pub fn stream(&self) -> &Arc<LiveStream> {
        &self.stream
    }

    /// The publisher's own description of its media (`onMetaData`), for the API.
    pub fn metadata(&self, metadata: serde_json::Value) {
        self.stream.info().metadata = Some(metadata);
    }

    /// A codec configuration: the stream's info says it (logged when it
    /// changes), then it goes down the channel.
    pub async fn config(&self, cfg: CodecConfig) -> Result<(), Closed> {
        self.note_config(&cfg);
        self.send(Input::Config(cfg)).await
    }

    /// [`config`](Self::config), for a source on a thread of its own.
    pub fn config_blocking(&self, cfg: CodecConfig) -> Result<(), Closed> {
        self.note_config(&cfg);
        self.send_blocking(Input::Config(cfg))
    }

    /// One packet, counted as `wire_bytes` received (what the publisher sent
    /// for it: the FLV tag, the TS payload), then sent down the channel.
    pub async fn packet(&self, p: Packet, wire_bytes: usize) -> Result<(), Closed> {
        self.count(&p, wire_bytes);
        self.send(Input::Packet(p)).await
    }

    /// [`packet`](Self::packet), for a source on a thread of its own.
    pub fn packet_blocking(&self, p: Packet, wire_bytes: usize) -> Result<(), Closed> {
        self.count(&p, wire_bytes);
        self.send_blocking(Input::Packet(p))
    }

    /// A tag the demuxer could not parse (dropped); returns how many there
    /// were before it (0: the first, to log).
    pub fn tag_error(&self) -> u64 {
        self.stream.stats.tag_errors.fetch_add(1, Relaxed)
    }

    /// The MPEG-TS demuxer's counts so far in the publish.
    pub fn ts_demux(&self, c: &crate::media::mpegts::Counters) {
        let stats = &self.stream.stats;
        stats.continuity_errors.store(c.continuity_errors, Relaxed);
        stats.ts.set(TsDemuxCounts {
            skipped_bytes: c.skipped_bytes,
            resyncs: c.resyncs,
            dropped_pes: c.dropped_pes,
            damaged_pes: c.damaged_pes,
            pes_length_mismatches: c.pes_length_mismatches,
        });
    }

    /// The transport's own figures (SRT's RTT, losses, buffer).
    pub fn transport(&self, stats: TransportStats) {
        *self
            .stream
            .transport
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(stats);
    }

    /// The publish is over (`reason`): logged, the NAME released, and the
    /// pipeline told (it drains what is queued, then files the session
    /// record).
    pub async fn end(self, reason: EndReason) {
        let input = self.finish(reason);
        let _ = input.0.send_async(input.1).await;
    }

    /// [`end`](Self::end), for a source on a thread of its own.
    pub fn end_blocking(self, reason: EndReason) {
        let input = self.finish(reason);
        let _ = input.0.send(input.1);
    }

    fn finish(self, reason: EndReason) -> (flume::Sender<Input>, Input) {
        info!(peer = %self.stream.publisher, stream = %self.stream.name, id = self.stream.id, protocol = self.stream.protocol, reason = ?reason, "publish ended");
        self.release.release(&self.stream);
        (self.input, Input::End(reason))
    }

    fn note_config(&self, cfg: &CodecConfig) {
        let name = &self.stream.name;
        let mut info = self.stream.info();
        match cfg {
            CodecConfig::Avc(v) => {
                if info.video.as_ref() != Some(v) {
                    info!(stream = %name, codec = %v.codec_string(), width = v.width, height = v.height, fps = ?v.fps, "video config");
                }
                info.video = Some(v.clone());
            }
            audio => {
                if let Some(a) = audio.audio() {
                    if info.audio.as_ref() != Some(&a) {
                        info!(stream = %name, codec = %a.codec_string(), sample_rate = a.sample_rate(), channels = a.channels(), "audio config");
                    }
                    info.audio = Some(a);
                }
            }
        }
    }

    /// The publish's ingest counters: packets per track, keyframes,
    /// discontinuities, bytes and the last packet's time.
    fn count(&self, p: &Packet, wire_bytes: usize) {
        let s = &self.stream.stats;
        match p.track {
            Track::Video => {
                s.video_packets.fetch_add(1, Relaxed);
                s.keyframes.fetch_add(p.keyframe as u64, Relaxed);
            }
            Track::Audio => {
                s.audio_packets.fetch_add(1, Relaxed);
            }
        }
        if p.discontinuity {
            s.discontinuities.fetch_add(1, Relaxed);
        }
        s.record(
            p.arrival.saturating_duration_since(self.stream.started),
            wire_bytes,
        );
    }

    async fn send(&self, input: Input) -> Result<(), Closed> {
        self.input
            .send_async(input)
            .await
            .map_err(|_| self.closed())
    }

    fn send_blocking(&self, input: Input) -> Result<(), Closed> {
        self.input.send(input).map_err(|_| self.closed())
    }

    fn closed(&self) -> Closed {
        Closed {
            stream: self.stream.name.clone(),
        }
    }
}
