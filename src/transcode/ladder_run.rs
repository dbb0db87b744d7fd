//! Decode once, fan out to every rung with IDRs aligned: the core of the
//! pipeline, shared by the live path and `ladderd transcode`.
//!
//! Drive contract: [`LadderRun::push`] every video packet in decode order,
//! then [`LadderRun::finish`] once; encoded frames come out through the
//! callback as `(rung index, frame)`, in presentation order per rung.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::media::h264::AvcConfig;
use crate::media::{Packet, TIMESCALE};
use crate::transcode::backend::Backend;
use crate::transcode::boundary::{Boundaries, Mode};
use crate::transcode::ladder::{plan, Rung, RungConfig};
use crate::transcode::{Decoder, EncodedFrame, Encoder, Frame, Scaler, StageError};

/// Per-rung output accounting.
#[derive(Debug, Clone)]
pub struct RungStats {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub scale_time: Duration,
    pub encode_time: Duration,
    /// Microseconds per picture.
    pub scale_us: Histogram<u64>,
    pub encode_us: Histogram<u64>,
}

impl Default for RungStats {
    fn default() -> Self {
        RungStats {
            frames: 0,
            keyframes: 0,
            bytes: 0,
            scale_time: Duration::ZERO,
            encode_time: Duration::ZERO,
            scale_us: latency_histogram(),
            encode_us: latency_histogram(),
        }
    }
}

/// Microseconds, 1 µs to 60 s, 3 significant figures; values above saturate.
pub fn latency_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 60_000_000, 3) {
        Ok(h) => h,
        Err(_) => unreachable!("constant bounds are valid"),
    }
}

/// Count, p50 and p99 of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        Percentiles {
            count: h.len(),
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

/// Per-stage latency summary of a ladder, for the API and `transcode`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LatencySummary {
    pub decode: Percentiles,
    /// Scale + encode of all rungs for one picture.
    pub ladder: Percentiles,
    /// Ingest arrival → all rungs encoded.
    pub total: Percentiles,
    /// Per rung: (name, scale, encode).
    pub rungs: Vec<(String, Percentiles, Percentiles)>,
    /// Cumulative buckets of every stage, for Prometheus.
    #[serde(skip)]
    pub histograms: Vec<StageBuckets>,
}

/// Bucket bounds for exported stage latencies: 1 ms … 10 s.
pub const BUCKETS_SECS: [f64; 13] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// One stage's latency as Prometheus histogram data.
#[derive(Debug, Clone, Default)]
pub struct StageBuckets {
    pub stage: &'static str,
    pub rung: Option<String>,
    pub count: u64,
    pub sum_secs: f64,
    /// Cumulative counts at each of [`BUCKETS_SECS`].
    pub cumulative: Vec<u64>,
}

impl StageBuckets {
    pub fn of(stage: &'static str, rung: Option<String>, h: &Histogram<u64>) -> Self {
        StageBuckets {
            stage,
            rung,
            count: h.len(),
            sum_secs: h.mean() * h.len() as f64 / 1e6,
            cumulative: BUCKETS_SECS
                .iter()
                .map(|b| h.count_between(0, (b * 1e6) as u64))
                .collect(),
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

struct RungState {
    rung: Rung,
    scaler: Box<dyn Scaler>,
    encoder: Box<dyn Encoder>,
    frame: Frame,
    stats: RungStats,
}

pub struct LadderRun {
    decoder: Box<dyn Decoder>,
    rungs: Vec<RungState>,
    boundaries: Boundaries,
    source_keyframes: HashSet<i64>,
    frame_ticks: i64,
    pub decoded: u64,
    pub decode_time: Duration,
    pub latency: StageLatency,
    /// Packets not decoded because of a decode error: the bad one and those
    /// skipped up to the next keyframe.
    pub skipped: u64,
    waiting_for_keyframe: bool,
    /// Record per-stage latency (on by default; off only to measure its cost).
    telemetry: bool,
}

impl LadderRun {
    /// Plans the rungs for this source and builds the CPU stages.
    pub fn new(
        config: &AvcConfig,
        fps: f64,
        ladder: &[RungConfig],
        segment_secs: f64,
    ) -> Result<Self, StageError> {
        Self::with_backend(config, fps, ladder, segment_secs, &Backend::Cpu)
    }

    /// Plans the rungs for this source and builds each stage on `backend`.
    pub fn with_backend(
        config: &AvcConfig,
        fps: f64,
        ladder: &[RungConfig],
        segment_secs: f64,
        backend: &Backend,
    ) -> Result<Self, StageError> {
        let rungs = plan(ladder, config.width, config.height, fps);
        let stages = backend.rung_stages(&rungs, segment_secs)?;
        let mut states = Vec::with_capacity(rungs.len());
        for (rung, (scaler, encoder)) in rungs.into_iter().zip(stages) {
            states.push(RungState {
                encoder,
                scaler,
                frame: Frame::new(rung.width, rung.height),
                rung,
                stats: RungStats::default(),
            });
        }
        Ok(LadderRun {
            decoder: backend.decoder(config)?,
            rungs: states,
            boundaries: Boundaries::new(segment_secs),
            source_keyframes: HashSet::new(),
            frame_ticks: (TIMESCALE as f64 / fps).round() as i64,
            decoded: 0,
            decode_time: Duration::ZERO,
            latency: StageLatency {
                decode_us: latency_histogram(),
                ladder_us: latency_histogram(),
                total_us: latency_histogram(),
                decoded_us: latency_histogram(),
            },
            skipped: 0,
            waiting_for_keyframe: false,
            telemetry: true,
        })
    }

    /// Turns latency recording off or on (the `bench telemetry` comparison).
    pub fn set_telemetry(&mut self, on: bool) {
        self.telemetry = on;
    }

    pub fn rungs(&self) -> impl Iterator<Item = (&Rung, &RungStats)> {
        self.rungs.iter().map(|r| (&r.rung, &r.stats))
    }

    pub fn latency_summary(&self) -> LatencySummary {
        LatencySummary {
            decode: Percentiles::of(&self.latency.decode_us),
            ladder: Percentiles::of(&self.latency.ladder_us),
            total: Percentiles::of(&self.latency.total_us),
            rungs: self
                .rungs
                .iter()
                .map(|r| {
                    (
                        r.rung.name.clone(),
                        Percentiles::of(&r.stats.scale_us),
                        Percentiles::of(&r.stats.encode_us),
                    )
                })
                .collect(),
            histograms: [
                StageBuckets::of("decode", None, &self.latency.decode_us),
                StageBuckets::of("ingest_to_decoded", None, &self.latency.decoded_us),
                StageBuckets::of("ladder", None, &self.latency.ladder_us),
                StageBuckets::of("ingest_to_encoded", None, &self.latency.total_us),
            ]
            .into_iter()
            .chain(self.rungs.iter().flat_map(|r| {
                [
                    StageBuckets::of("scale", Some(r.rung.name.clone()), &r.stats.scale_us),
                    StageBuckets::of("encode", Some(r.rung.name.clone()), &r.stats.encode_us),
                ]
            }))
            .collect(),
        }
    }

    pub fn boundary_mode(&self) -> Mode {
        self.boundaries.mode()
    }

    /// Decodes one video packet and encodes every rung's share of what came out.
    /// A decode error skips this stream to its next keyframe and is returned once.
    pub fn push(
        &mut self,
        packet: &Packet,
        out: &mut dyn FnMut(usize, EncodedFrame),
    ) -> Result<(), StageError> {
        if self.waiting_for_keyframe && !packet.keyframe {
            self.skipped += 1;
            return Ok(());
        }
        self.waiting_for_keyframe = false;
        if packet.keyframe {
            self.source_keyframes.insert(packet.pts);
        }
        let t = Instant::now();
        let mut result = Ok(());
        let mut fan_out_time = Duration::ZERO;
        let r = {
            let (decoder, mut stage) = self.split();
            decoder.decode(packet, &mut |frame| {
                let spent = stage.picture(frame, out, &mut result);
                fan_out_time += spent;
            })
        };
        let decode = t.elapsed().saturating_sub(fan_out_time);
        self.decode_time += decode;
        if self.telemetry {
            let _ = self.latency.decode_us.record(decode.as_micros() as u64);
        }
        if let Err(e) = r {
            self.skipped += 1;
            self.waiting_for_keyframe = true;
            return Err(e);
        }
        result
    }

    /// End of stream: drains the decoder's reorder buffer through the rungs.
    pub fn finish(&mut self, out: &mut dyn FnMut(usize, EncodedFrame)) -> Result<(), StageError> {
        let mut result = Ok(());
        let (decoder, mut stage) = self.split();
        decoder.flush(&mut |frame| {
            stage.picture(frame, out, &mut result);
        })?;
        result
    }

    fn split(&mut self) -> (&mut dyn Decoder, FanOut<'_>) {
        (
            self.decoder.as_mut(),
            FanOut {
                rungs: &mut self.rungs,
                boundaries: &mut self.boundaries,
                source_keyframes: &mut self.source_keyframes,
                frame_ticks: self.frame_ticks,
                decoded: &mut self.decoded,
                latency: &mut self.latency,
                telemetry: self.telemetry,
            },
        )
    }
}

/// Everything but the decoder, borrowed while the decoder hands out pictures.
struct FanOut<'a> {
    rungs: &'a mut [RungState],
    boundaries: &'a mut Boundaries,
    source_keyframes: &'a mut HashSet<i64>,
    frame_ticks: i64,
    decoded: &'a mut u64,
    latency: &'a mut StageLatency,
    telemetry: bool,
}

impl FanOut<'_> {
    /// One decoded picture through every rung; returns the time it took.
    fn picture(
        &mut self,
        frame: &Frame,
        out: &mut dyn FnMut(usize, EncodedFrame),
        result: &mut Result<(), StageError>,
    ) -> Duration {
        *self.decoded += 1;
        if self.telemetry {
            let _ = self
                .latency
                .decoded_us
                .record(frame.arrival.elapsed().as_micros() as u64);
        }
        let t = Instant::now();
        if let Err(e) = fan_out(
            frame,
            self.rungs,
            self.boundaries,
            self.source_keyframes,
            self.frame_ticks,
            self.telemetry,
            out,
        ) {
            *result = Err(e);
        }
        let spent = t.elapsed();
        if self.telemetry {
            let _ = self.latency.ladder_us.record(spent.as_micros() as u64);
            let _ = self
                .latency
                .total_us
                .record(frame.arrival.elapsed().as_micros() as u64);
        }
        spent
    }
}

fn fan_out(
    frame: &Frame,
    rungs: &mut [RungState],
    boundaries: &mut Boundaries,
    source_keyframes: &mut HashSet<i64>,
    frame_ticks: i64,
    telemetry: bool,
    out: &mut dyn FnMut(usize, EncodedFrame),
) -> Result<(), StageError> {
    let key = source_keyframes.remove(&frame.pts);
    let decision = boundaries.next(frame.pts, key, frame_ticks);
    if decision.switched_to_cadence {
        tracing::info!(pts = frame.pts, "source GOP longer than the segment target: segmenting on a fixed cadence; the passthrough rendition is not offered");
    }
    let index = boundaries.index_in_segment;
    for (i, r) in rungs.iter_mut().enumerate() {
        if index % r.rung.frame_step as u64 != 0 {
            continue;
        }
        let t = Instant::now();
        r.scaler.scale(frame, &mut r.frame)?;
        let t2 = Instant::now();
        r.stats.scale_time += t2 - t;
        if telemetry {
            let _ = r.stats.scale_us.record((t2 - t).as_micros() as u64);
        }
        let encoded = r.encoder.encode(&r.frame, decision.boundary)?;
        let spent = t2.elapsed();
        r.stats.encode_time += spent;
        if telemetry {
            let _ = r.stats.encode_us.record(spent.as_micros() as u64);
        }
        if let Some(e) = encoded {
            r.stats.frames += 1;
            r.stats.keyframes += e.keyframe as u64;
            r.stats.bytes += e.data.len() as u64;
            out(i, e);
        }
    }
    Ok(())
}
