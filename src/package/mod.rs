//! From frames to published media: CMAF boxes (`cmaf`), parts and segments
//! (`chunker`), HLS playlists (`hls`), and the per-stream packager that
//! feeds every rendition of a stream into the hot store.
//!
//! One clock for all renditions: decode times are the ingest 90 kHz
//! timestamps minus a per-stream base (audio converted to its sample rate),
//! and program date-times derive from the same pts, so a player can switch
//! renditions at any segment boundary and line audio up with video.

pub mod chunker;
pub mod cmaf;
pub mod hls;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tracing::{info, warn};

use crate::config::Config;
use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::{annexb_nal_units, AvcConfig};
use crate::media::{Packet, TIMESCALE};
use crate::store::hot::{HotStore, Rendition, RenditionKind, StreamMedia};
use crate::transcode::ladder::Rung;
use crate::transcode::ladder_run::{latency_histogram, StageBuckets};
use crate::transcode::EncodedFrame;
use chunker::{Chunk, Chunker, Frame};
use cmaf::TrackConfig;
use hls::Timing;

/// AAC frames are 1024 samples.
const AAC_FRAME: i64 = 1024;
/// AAC frames per audio chunk of a chunked part: ~85 ms at 48 kHz, a fifth
/// of the per-frame box overhead, still several chunks per part.
const AUDIO_CHUNK_FRAMES: i64 = 4;
/// Decode times start this far after the stream's first timestamp, so
/// B-frame and audio offsets never go negative.
const BASE_SLACK: i64 = 2 * TIMESCALE as i64;

/// One rendition being packaged.
struct Output {
    rendition: Arc<Rendition>,
    chunker: Chunker,
    failed: bool,
    /// Ingest arrival → the frame's part published (µs).
    ingest_to_published: Histogram<u64>,
    /// Frame ready (encoded) → its part published (µs).
    ready_to_published: Histogram<u64>,
}

impl Output {
    fn new(rendition: Arc<Rendition>, chunker: Chunker) -> Self {
        Output {
            rendition,
            chunker,
            failed: false,
            ingest_to_published: latency_histogram(),
            ready_to_published: latency_histogram(),
        }
    }

    fn push(&mut self, frame: Frame, stream: &str) {
        match self.chunker.push(frame) {
            Ok(chunks) => self.publish(chunks),
            Err(e) => self.fail(stream, e),
        }
    }

    fn finish(&mut self, stream: &str) {
        match self.chunker.finish() {
            Ok(chunks) => self.publish(chunks),
            Err(e) => self.fail(stream, e),
        }
        self.rendition.end();
    }

    fn publish(&mut self, chunks: Vec<Chunk>) {
        for c in chunks {
            let frames = match &c {
                Chunk::Part { frames, .. } => frames.clone(),
                _ => Vec::new(),
            };
            self.rendition.publish(c);
            let now = Instant::now();
            for (arrival, ready) in frames {
                let _ = self
                    .ingest_to_published
                    .record(now.saturating_duration_since(arrival).as_micros() as u64);
                let _ = self
                    .ready_to_published
                    .record(now.saturating_duration_since(ready).as_micros() as u64);
            }
        }
    }

    fn buckets(&self) -> [StageBuckets; 2] {
        let name = Some(self.rendition.name.clone());
        [
            StageBuckets::of(
                "ingest_to_published",
                name.clone(),
                &self.ingest_to_published,
            ),
            StageBuckets::of("encoded_to_published", name, &self.ready_to_published),
        ]
    }

    fn fail(&mut self, stream: &str, e: cmaf::CmafError) {
        if !self.failed {
            warn!(stream, rendition = %self.rendition.name, "packaging: {e}");
            self.failed = true;
        }
    }
}

/// Packages one stream: the source passthrough, every rung, and the audio.
pub struct StreamPackager {
    media: Arc<StreamMedia>,
    name: String,
    segment_ticks: i64,
    part_ticks: i64,
    frame_ticks: i64,
    fps: f64,
    /// 90 kHz time that maps to decode time `BASE_SLACK`; set by the first packet.
    base: Option<i64>,
    started_unix_ms: u64,
    source: Option<SourceOutput>,
    rungs: Vec<Option<Output>>,
    rung_plan: Vec<Rung>,
    audio: Option<AudioOutput>,
    chunked: bool,
}

struct SourceOutput {
    out: Output,
    nal_length_size: u8,
    last_boundary: Option<i64>,
    /// Only while the ladder cuts segments on source keyframes too.
    follow_ladder: bool,
}

struct AudioOutput {
    out: Output,
    sample_rate: i64,
    next: Option<i64>,
    segment_start: Option<i64>,
}

impl StreamPackager {
    /// Opens the stream in the store; the source rendition starts now.
    pub fn new(
        store: &HotStore,
        config: &Config,
        name: &str,
        generation: u64,
        started_unix_ms: u64,
        video: &AvcConfig,
        fps: f64,
    ) -> Self {
        let frame_ticks = (TIMESCALE as f64 / fps).round().max(1.0) as i64;
        let frames_per_part = (config.hls.part_secs * fps).round().max(1.0) as i64;
        let part_ticks = frames_per_part * frame_ticks;
        let segment_secs = config.ladder.segment_secs;
        let timing = Timing {
            // Keyframe-aligned segments may run to 1.5× the target before the
            // ladder switches to a fixed cadence.
            target_duration: (segment_secs * 1.5).ceil() as u64,
            part_target: part_ticks as f64 / TIMESCALE as f64,
            segment_target: segment_secs,
        };
        let group = (config.hls.standard_segment_secs / segment_secs)
            .round()
            .max(1.0) as u64;
        let media = store.open(name, generation, timing, group);
        let mut p = StreamPackager {
            media,
            name: name.to_string(),
            segment_ticks: (segment_secs * TIMESCALE as f64).round() as i64,
            part_ticks,
            frame_ticks,
            fps,
            base: None,
            started_unix_ms,
            source: None,
            rungs: Vec::new(),
            rung_plan: Vec::new(),
            audio: None,
            chunked: config.hls.chunked_parts,
        };
        if config.hls.source_rendition {
            let out = p.video_output("source", video, 0);
            p.source = out.map(|out| SourceOutput {
                out,
                nal_length_size: video.nal_length_size,
                last_boundary: None,
                follow_ladder: config.ladder.enabled,
            });
        }
        p
    }

    pub fn timing(&self) -> Timing {
        self.media.timing
    }

    fn video_output(&self, name: &str, cfg: &AvcConfig, nominal_bps: u64) -> Option<Output> {
        let init = match cmaf::init_segment(&TrackConfig::Video(cfg.clone())) {
            Ok(i) => i,
            Err(e) => {
                warn!(stream = %self.name, rendition = name, "init segment: {e}");
                return None;
            }
        };
        let rendition = self.media.add(
            name,
            cfg.codec_string(),
            RenditionKind::Video {
                width: cfg.width,
                height: cfg.height,
                fps: cfg.fps.unwrap_or(self.fps),
                nominal_bps,
            },
        );
        rendition.set_init(init);
        Some(Output::new(
            rendition,
            Chunker::new(TIMESCALE, self.part_ticks, self.frame_ticks).chunked(self.chunked),
        ))
    }

    /// The audio rendition (AAC passthrough).
    pub fn set_audio(&mut self, asc: &AudioSpecificConfig) {
        if self.audio.is_some() || asc.sample_rate == 0 {
            return;
        }
        let track = TrackConfig::Audio(asc.clone());
        let init = match cmaf::init_segment(&track) {
            Ok(i) => i,
            Err(e) => {
                warn!(stream = %self.name, "audio init segment: {e}");
                return;
            }
        };
        let rendition = self.media.add(
            "audio",
            asc.codec_string(),
            RenditionKind::Audio {
                channels: asc.channels,
                nominal_bps: 128_000,
            },
        );
        rendition.set_init(init);
        let sr = asc.sample_rate as i64;
        let part = (self.part_ticks * sr / TIMESCALE as i64).max(AAC_FRAME);
        self.audio = Some(AudioOutput {
            out: Output::new(
                rendition,
                Chunker::new(asc.sample_rate, part, AAC_FRAME)
                    .chunked(self.chunked)
                    .chunk_target(AUDIO_CHUNK_FRAMES * AAC_FRAME),
            ),
            sample_rate: sr,
            next: None,
            segment_start: None,
        });
    }

    /// The rungs the ladder runs; their renditions appear with their first IDR.
    pub fn set_rungs(&mut self, rungs: Vec<Rung>) {
        for r in self.rungs.iter_mut().flatten() {
            r.finish(&self.name);
        }
        self.rungs = rungs.iter().map(|_| None).collect();
        self.rung_plan = rungs;
    }

    fn decode_time(&mut self, t: i64) -> i64 {
        let base = *self.base.get_or_insert(t);
        (t - base + BASE_SLACK).max(0)
    }

    fn pdt_ms(&self, pts: i64) -> u64 {
        let since = pts - self.base.unwrap_or(pts);
        self.started_unix_ms.saturating_add_signed(since / 90)
    }

    /// One ingested video packet (AVCC), for the passthrough rendition.
    pub fn source_video(&mut self, p: &Packet) {
        let dts = self.decode_time(p.dts);
        let pts = self.decode_time(p.pts);
        let pdt_ms = self.pdt_ms(p.pts);
        let (half, target) = (self.frame_ticks / 2, self.segment_ticks);
        let name = self.name.clone();
        let Some(s) = &mut self.source else { return };
        let since = s.last_boundary.map(|b| pts - b);
        let starts_segment = p.keyframe && since.is_none_or(|e| e + half >= target);
        if !p.keyframe && s.follow_ladder && since.is_some_and(|e| e + half >= target * 3 / 2) {
            info!(stream = %name, "source GOP longer than 1.5x the segment target: the ladder segments on a fixed cadence, so the source rendition is withdrawn");
            s.out.rendition.end();
            self.source = None;
            return;
        }
        if starts_segment {
            s.last_boundary = Some(pts);
        }
        let data = cmaf::avcc_to_len4(&p.data, s.nal_length_size);
        s.out.push(
            Frame {
                dts,
                pts,
                keyframe: p.keyframe,
                starts_segment,
                discontinuity: p.discontinuity,
                pdt_ms,
                data,
                arrival: p.arrival,
                ready: Instant::now(),
            },
            &name,
        );
    }

    /// One raw AAC frame.
    pub fn audio(&mut self, p: &Packet) {
        let t90 = self.decode_time(p.pts);
        let pdt_ms = self.pdt_ms(p.pts);
        let (segment_ticks, name) = (self.segment_ticks, self.name.clone());
        let Some(a) = &mut self.audio else { return };
        let sr = a.sample_rate;
        let t = t90 * sr / TIMESCALE as i64;
        // Sample-accurate while the source is continuous; a gap moves ahead,
        // an overlap drops the frame (decode time never goes backwards).
        let at = match a.next {
            Some(n) if t < n - 2 * AAC_FRAME => return,
            Some(n) if t <= n + 2 * AAC_FRAME => n,
            _ => t,
        };
        a.next = Some(at + AAC_FRAME);
        let target = segment_ticks * sr / TIMESCALE as i64;
        let starts_segment = a
            .segment_start
            .is_none_or(|s| at - s + AAC_FRAME / 2 >= target);
        if starts_segment {
            a.segment_start = Some(at);
        }
        a.out.push(
            Frame {
                dts: at,
                pts: at,
                keyframe: true,
                starts_segment,
                discontinuity: p.discontinuity,
                pdt_ms,
                data: p.data.clone(),
                arrival: p.arrival,
                ready: Instant::now(),
            },
            &name,
        );
    }

    /// One encoded frame of rung `i` (Annex-B).
    pub fn rung_frame(&mut self, i: usize, f: &EncodedFrame) {
        if self.rungs.get(i).is_some_and(|r| r.is_none()) && f.keyframe {
            let out = self.rung_output(i, &f.data);
            if let Some(slot) = self.rungs.get_mut(i) {
                *slot = out;
            }
        }
        let dts = self.decode_time(f.dts);
        let pts = self.decode_time(f.pts);
        let pdt_ms = self.pdt_ms(f.pts);
        let name = self.name.clone();
        if let Some(Some(out)) = self.rungs.get_mut(i) {
            out.push(
                Frame {
                    dts,
                    pts,
                    keyframe: f.keyframe,
                    starts_segment: f.keyframe,
                    discontinuity: false,
                    pdt_ms,
                    data: cmaf::annexb_to_avcc(&f.data),
                    arrival: f.arrival,
                    ready: Instant::now(),
                },
                &name,
            );
        }
    }

    /// A rung's rendition, from the SPS/PPS in front of its first IDR.
    fn rung_output(&self, i: usize, annexb: &Bytes) -> Option<Output> {
        let rung = self.rung_plan.get(i)?;
        let (mut sps, mut pps) = (None, None);
        for nal in annexb_nal_units(annexb) {
            match nal.first().map(|h| h & 0x1f) {
                Some(7) if sps.is_none() => sps = Some(nal),
                Some(8) if pps.is_none() => pps = Some(nal),
                _ => {}
            }
        }
        let cfg = match AvcConfig::from_parameter_sets(sps?, pps?) {
            Ok(mut c) => {
                c.fps = Some(rung.fps.min(self.fps));
                c
            }
            Err(e) => {
                warn!(stream = %self.name, rung = %rung.name, "encoder parameter sets: {e}");
                return None;
            }
        };
        self.video_output(&rung.name, &cfg, rung.bitrate_bps as u64)
    }

    /// Part-publication latency of every rendition, for the stage histograms.
    pub fn latency_buckets(&self) -> Vec<StageBuckets> {
        let mut out = Vec::new();
        let outputs = self
            .source
            .iter()
            .map(|s| &s.out)
            .chain(self.rungs.iter().flatten())
            .chain(self.audio.iter().map(|a| &a.out));
        for o in outputs {
            out.extend(o.buckets());
        }
        out
    }

    /// End of stream: closes every rendition (`EXT-X-ENDLIST`).
    pub fn finish(&mut self) {
        let name = self.name.clone();
        if let Some(s) = &mut self.source {
            s.out.finish(&name);
        }
        for r in self.rungs.iter_mut().flatten() {
            r.finish(&name);
        }
        if let Some(a) = &mut self.audio {
            a.out.finish(&name);
        }
        self.media.end();
    }
}
