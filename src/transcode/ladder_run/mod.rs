//! Decode once, fan out to every rung with IDRs aligned: the core of the
//! pipeline, shared by the live path and `ladderd transcode`.
//!
//! Drive contract: [`LadderRun::push`] every video packet in decode order,
//! then [`LadderRun::finish`] once; encoded frames come out through the
//! callback as `(rung index, frame)`, in presentation order per rung. While
//! the input pauses, [`LadderRun::drain`] gives out what the decoder holds
//! and the pushes may go on after it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub use crate::telemetry::latency::{latency_histogram, LatencySummary, Percentiles, StageBuckets};

use crate::media::h264::AvcConfig;
use crate::media::{Packet, TIMESCALE};
use crate::transcode::backend::Backend;
use crate::transcode::boundary::{Boundaries, Mode};
use crate::transcode::ladder::{plan, Rung, RungConfig};
use crate::transcode::{Decoder, EncodedFrame, Encoder, Frame, Scaler, StageError};

mod drain;
pub mod pool;
mod threads;

use threads::RungJob;
pub use threads::RungOutput;

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

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

/// How a ladder's rungs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RungMode {
    /// One after another in the caller's thread (the GPU backend: its rungs
    /// share one scaler launch per picture).
    Inline,
    /// Each rung on its own thread, in parallel; a full queue waits (files,
    /// benches: nothing is dropped).
    Threads { queue: usize },
    /// Each rung on its own thread; a rung whose queue is full drops the
    /// picture (never a segment boundary's while its spare slot is free),
    /// counted, while the other rungs carry on (live streams).
    Realtime { queue: usize },
}

enum RungExec {
    Inline {
        scaler: Box<dyn Scaler>,
        encoder: Box<dyn Encoder>,
        frame: Frame,
    },
    /// On the worker pool.
    Thread {
        jobs: Option<flume::Sender<RungJob>>,
        task: Arc<pool::Task>,
        /// Whether this rung's first drop was logged.
        warned: bool,
    },
}

struct RungState {
    rung: Rung,
    exec: RungExec,
    stats: RungStats,
    /// Failed since its last IDR: its pictures are dropped until the next
    /// one (every later frame would refer to the one lost).
    skipping: bool,
}

impl RungState {
    /// A scale or encode error of this rung: counted, and the rung (not the
    /// ladder) skips to its next IDR.
    fn failed(&mut self) {
        self.stats.errors += 1;
        self.skipping = true;
    }

    /// Whether an encoded frame of this rung goes out: not while the rung
    /// skips to its next IDR after an error.
    fn passes(&mut self, keyframe: bool) -> bool {
        if self.skipping && !keyframe {
            self.stats.dropped_error += 1;
            return false;
        }
        self.skipping = false;
        true
    }
}

pub struct LadderRun {
    decoder: Box<dyn Decoder>,
    rungs: Vec<RungState>,
    boundaries: Boundaries,
    source_keyframes: HashSet<i64>,
    frame_ticks: i64,
    pub decoded: u64,
    pub decode_time: Duration,
    /// CPU time of decoding (and handing pictures to the rungs).
    pub decode_cpu: Duration,
    pub latency: StageLatency,
    /// Packets not decoded because of a decode error: the bad one and those
    /// skipped up to the next keyframe.
    pub skipped: u64,
    waiting_for_keyframe: bool,
    /// Record per-stage latency (on by default; off only to measure its cost).
    telemetry: bool,
    mode: RungMode,
    /// Every rung thread's results (threaded modes).
    outputs: Option<flume::Receiver<RungOutput>>,
    /// Pictures handed to rung threads: reused once no thread holds them.
    pool: Vec<Arc<Frame>>,
    /// Per picture in flight: rungs still to answer, when it was handed out,
    /// and its ingest arrival.
    in_flight: HashMap<i64, (usize, Instant, Instant)>,
    /// Makes the second decoder a drain replays the GOP into (None: no drains).
    spare_decoder: Option<SpareDecoder>,
    held: drain::Held,
}

/// Makes a decoder of the stream's kind, for [`LadderRun::drain`].
pub type SpareDecoder = Box<dyn FnMut() -> Result<Box<dyn Decoder>, StageError>>;

impl LadderRun {
    /// Plans the rungs for this source and builds the CPU stages.
    pub fn new(
        config: &AvcConfig,
        fps: f64,
        ladder: &[RungConfig],
        segment_secs: f64,
    ) -> Result<Self, StageError> {
        Self::with_backend(config, fps, ladder, segment_secs, &Backend::cpu())
    }

    /// Plans the rungs for this source and builds each stage on `backend`,
    /// rungs in parallel (nothing dropped) where the backend allows.
    pub fn with_backend(
        config: &AvcConfig,
        fps: f64,
        ladder: &[RungConfig],
        segment_secs: f64,
        backend: &Backend,
    ) -> Result<Self, StageError> {
        Self::with_mode(
            config,
            fps,
            ladder,
            segment_secs,
            backend,
            RungMode::Threads { queue: 4 },
        )
    }

    /// As [`Self::with_backend`], with the rungs run as `mode` says (the GPU
    /// backend always runs them inline: one scaler launch serves them all).
    pub fn with_mode(
        config: &AvcConfig,
        fps: f64,
        ladder: &[RungConfig],
        segment_secs: f64,
        backend: &Backend,
        mode: RungMode,
    ) -> Result<Self, StageError> {
        let rungs = plan(ladder, config.width, config.height, fps);
        Self::with_plan(config, fps, rungs, segment_secs, backend, mode)
    }

    /// As [`Self::with_mode`], with the rungs already planned (a stream whose
    /// source changed size keeps its rungs: [`crate::transcode::ladder::replan`]).
    pub fn with_plan(
        config: &AvcConfig,
        fps: f64,
        rungs: Vec<Rung>,
        segment_secs: f64,
        backend: &Backend,
        mode: RungMode,
    ) -> Result<Self, StageError> {
        let mode = if matches!(backend, Backend::Gpu { .. }) {
            RungMode::Inline
        } else {
            mode
        };
        let stages = backend.rung_stages(&rungs, segment_secs, (config.width, config.height))?;
        let mut run = Self::assemble(
            backend.decoder(config)?,
            rungs,
            stages,
            fps,
            segment_secs,
            mode,
        )?;
        let (backend, config) = (backend.clone(), config.clone());
        run.set_spare_decoder(Box::new(move || backend.decoder(&config)));
        Ok(run)
    }

    /// How [`Self::drain`] makes its decoder (one like the ladder's own).
    pub fn set_spare_decoder(&mut self, make: SpareDecoder) {
        self.spare_decoder = Some(make);
    }

    /// The ladder from stages already built (one scaler and encoder per rung).
    pub fn assemble(
        decoder: Box<dyn Decoder>,
        rungs: Vec<Rung>,
        stages: crate::transcode::backend::RungStages,
        fps: f64,
        segment_secs: f64,
        mode: RungMode,
    ) -> Result<Self, StageError> {
        let mut states = Vec::with_capacity(rungs.len());
        let (out_tx, out_rx) = flume::unbounded();
        for (index, (rung, (scaler, encoder))) in rungs.into_iter().zip(stages).enumerate() {
            let frame = Frame::new(rung.width, rung.height);
            let exec = match mode {
                RungMode::Inline => RungExec::Inline {
                    scaler,
                    encoder,
                    frame,
                },
                RungMode::Threads { queue } | RungMode::Realtime { queue } => {
                    // One slot more than `queue`, kept for segment-boundary
                    // pictures (see `FanOut::dispatch`).
                    let (tx, rx) = flume::bounded(queue.max(1) + 1);
                    RungExec::Thread {
                        jobs: Some(tx),
                        task: pool::Task::new(index, scaler, encoder, frame, rx, out_tx.clone()),
                        warned: false,
                    }
                }
            };
            states.push(RungState {
                exec,
                rung,
                stats: RungStats::default(),
                skipping: false,
            });
        }
        drop(out_tx);
        Ok(LadderRun {
            mode,
            outputs: (mode != RungMode::Inline).then_some(out_rx),
            pool: Vec::new(),
            in_flight: HashMap::new(),
            decoder,
            rungs: states,
            boundaries: Boundaries::new(segment_secs),
            source_keyframes: HashSet::new(),
            frame_ticks: (TIMESCALE as f64 / fps).round() as i64,
            decoded: 0,
            decode_time: Duration::ZERO,
            decode_cpu: Duration::ZERO,
            latency: StageLatency {
                decode_us: latency_histogram(),
                ladder_us: latency_histogram(),
                total_us: latency_histogram(),
                decoded_us: latency_histogram(),
            },
            skipped: 0,
            waiting_for_keyframe: false,
            telemetry: true,
            spare_decoder: None,
            held: drain::Held::default(),
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
        self.held.pushed(packet);
        let t = Instant::now();
        let cpu = thread_cpu();
        let mut result = Ok(());
        let mut fan_out_time = Duration::ZERO;
        let mut fan_out_cpu = Duration::ZERO;
        let r = {
            let (decoder, mut stage) = self.split();
            decoder.decode(packet, &mut |frame| {
                let c = thread_cpu();
                let spent = stage.picture(frame, out, &mut result);
                fan_out_time += spent;
                // Inline rungs (the GPU path) are counted as theirs.
                if spent > Duration::ZERO && stage.inline() {
                    fan_out_cpu += thread_cpu().saturating_sub(c);
                }
            })
        };
        let decode = t.elapsed().saturating_sub(fan_out_time);
        self.decode_time += decode;
        self.decode_cpu += thread_cpu().saturating_sub(cpu).saturating_sub(fan_out_cpu);
        if self.telemetry {
            let _ = self.latency.decode_us.record(decode.as_micros() as u64);
        }
        if let Err(e) = r {
            self.skipped += 1;
            self.waiting_for_keyframe = true;
            self.held.failed();
            return Err(e);
        }
        result
    }

    /// The input paused: every picture the decoder holds for reordering
    /// goes through the rungs now, and [`Self::push`] goes on after it with
    /// the next packet (see `drain.rs`: a second decoder replays the packets
    /// since the latest keyframe). Returns how many pictures it gave out: 0
    /// when nothing was pushed since the last drain. Pictures the decoder
    /// gives out later that show before the last one drained are dropped
    /// and counted ([`Self::dropped_after_drain`]).
    pub fn drain(&mut self, out: &mut dyn FnMut(usize, EncodedFrame)) -> Result<usize, StageError> {
        let Some(make) = self.spare_decoder.as_mut() else {
            return Ok(0);
        };
        let Some(gop) = self.held.take_replay() else {
            return Ok(0);
        };
        let made = make();
        let mut gave = 0;
        let mut result = Ok(());
        let replayed = made.and_then(|mut spare| {
            let (_, mut stage) = self.split();
            // As at the end of a feed: a burst with no real time to keep up
            // with, every rung takes every picture; the latency histograms
            // would count the pause.
            stage.flushing = true;
            stage.telemetry = false;
            let mut give = |frame: &mut Frame| {
                if stage.held.drained(frame.pts) {
                    gave += 1;
                    stage.fan(frame, out, &mut result);
                }
            };
            for p in &gop {
                spare.decode(p, &mut give)?;
            }
            spare.flush(&mut give)
        });
        self.held.replayed(gop, gave);
        replayed?;
        result.map(|()| gave)
    }

    /// Drains that gave out pictures.
    pub fn drains(&self) -> u64 {
        self.held.drains
    }

    /// Pictures dropped after a drain for showing before the last one it
    /// gave out (B-frames sent after the pause: the timeline only goes forward).
    pub fn dropped_after_drain(&self) -> u64 {
        self.held.dropped
    }

    /// End of stream: drains the decoder's reorder buffer through the rungs,
    /// then waits for every rung thread to hand back its last pictures.
    pub fn finish(&mut self, out: &mut dyn FnMut(usize, EncodedFrame)) -> Result<(), StageError> {
        let mut result = Ok(());
        {
            let (decoder, mut stage) = self.split();
            // The decoder's held pictures come in one burst with no real
            // time to keep up with: every rung takes each one (a drop here
            // would leave a hole at the end of each rung's timeline, with no
            // next picture to stretch the one before over it).
            stage.flushing = true;
            decoder.flush(&mut |frame| {
                stage.picture(frame, out, &mut result);
            })?;
        }
        self.close_rungs();
        if let Some(rx) = self.outputs.clone() {
            // Every rung's task ends once its queue is empty and closed.
            for o in rx.iter() {
                let (_, mut stage) = self.split();
                stage.accept(o, out, &mut result);
            }
        }
        result
    }

    /// The channel rung threads answer on (threaded modes), for a caller that
    /// waits on it; hand what it yields to [`Self::accept`].
    pub fn output_receiver(&self) -> Option<flume::Receiver<RungOutput>> {
        self.outputs.clone()
    }

    /// One rung thread's result (from [`Self::output_receiver`]), then any
    /// others already waiting.
    pub fn accept(
        &mut self,
        o: RungOutput,
        out: &mut dyn FnMut(usize, EncodedFrame),
    ) -> Result<(), StageError> {
        let mut result = Ok(());
        let (_, mut stage) = self.split();
        stage.accept(o, out, &mut result);
        stage.drain(out, &mut result);
        result
    }

    /// Closes every rung's queue: its task finishes what is queued, then
    /// drops its stages and its side of the results channel.
    fn close_rungs(&mut self) {
        for r in &mut self.rungs {
            if let RungExec::Thread { jobs, task, .. } = &mut r.exec {
                if jobs.take().is_some() {
                    task.schedule();
                }
            }
        }
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
                mode: self.mode,
                outputs: self.outputs.as_ref(),
                pool: &mut self.pool,
                in_flight: &mut self.in_flight,
                flushing: false,
                held: &mut self.held,
            },
        )
    }
}

impl Drop for LadderRun {
    fn drop(&mut self) {
        self.close_rungs();
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
    mode: RungMode,
    outputs: Option<&'a flume::Receiver<RungOutput>>,
    pool: &'a mut Vec<Arc<Frame>>,
    in_flight: &'a mut HashMap<i64, (usize, Instant, Instant)>,
    /// The decoder is flushing: rung queues block instead of dropping.
    flushing: bool,
    held: &'a mut drain::Held,
}

impl FanOut<'_> {
    /// The rungs run in the decoding thread (their CPU is theirs, not the
    /// decoder's).
    fn inline(&self) -> bool {
        self.mode == RungMode::Inline
    }

    /// One picture of the decoder through every rung (unless a drain gave
    /// it out already); returns the time it took.
    fn picture(
        &mut self,
        frame: &mut Frame,
        out: &mut dyn FnMut(usize, EncodedFrame),
        result: &mut Result<(), StageError>,
    ) -> Duration {
        if !self.held.passes(frame.pts) {
            return Duration::ZERO;
        }
        self.fan(frame, out, result)
    }

    /// One picture through every rung; returns the time it took.
    fn fan(
        &mut self,
        frame: &mut Frame,
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
        if self.mode != RungMode::Inline {
            self.dispatch(frame);
            self.drain(out, result);
            return t.elapsed();
        }
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

/// One picture's place in the ladder, decided once for every rung (inline or on
/// rung threads): whether it starts a segment (every rung encodes an IDR), and
/// which rungs take it (a 30 fps rung of a 60 fps source takes every other
/// picture, counted from the segment start so every boundary picture is taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Due {
    decision: crate::transcode::boundary::Decision,
    index_in_segment: u64,
}

impl Due {
    fn of(
        pts: i64,
        boundaries: &mut Boundaries,
        source_keyframes: &mut HashSet<i64>,
        frame_ticks: i64,
    ) -> Due {
        let key = source_keyframes.remove(&pts);
        let decision = boundaries.next(pts, key, frame_ticks);
        if decision.switched_to_cadence {
            tracing::info!(pts, "source GOP longer than the segment target: segmenting on a fixed cadence; the passthrough rendition is not offered");
        }
        Due {
            decision,
            index_in_segment: boundaries.index_in_segment,
        }
    }

    fn takes(&self, rung: &Rung) -> bool {
        self.index_in_segment % rung.frame_step.max(1) as u64 == 0
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
    let due = Due::of(frame.pts, boundaries, source_keyframes, frame_ticks);
    let decision = due.decision;
    // A rung's error costs that rung alone: the others take the picture.
    let mut first_error = None;
    for (i, r) in rungs.iter_mut().enumerate() {
        if !due.takes(&r.rung) {
            continue;
        }
        let RungExec::Inline {
            scaler,
            encoder,
            frame: scaled,
        } = &mut r.exec
        else {
            continue;
        };
        let t = Instant::now();
        let c = thread_cpu();
        if let Err(e) = scaler.scale(frame, scaled) {
            r.failed();
            first_error.get_or_insert(e);
            continue;
        }
        let t2 = Instant::now();
        let c2 = thread_cpu();
        r.stats.scale_time += t2 - t;
        r.stats.scale_cpu += c2.saturating_sub(c);
        if telemetry {
            let _ = r.stats.scale_us.record((t2 - t).as_micros() as u64);
        }
        let encoded = match encoder.encode(scaled, decision.boundary) {
            Ok(e) => e,
            Err(e) => {
                r.failed();
                first_error.get_or_insert(e);
                continue;
            }
        };
        let spent = t2.elapsed();
        r.stats.encode_time += spent;
        r.stats.encode_cpu += thread_cpu().saturating_sub(c2);
        if telemetry {
            let _ = r.stats.encode_us.record(spent.as_micros() as u64);
        }
        if let Some(e) = encoded.filter(|e| r.passes(e.keyframe)) {
            r.stats.frames += 1;
            r.stats.keyframes += e.keyframe as u64;
            r.stats.bytes += e.data.len() as u64;
            out(i, e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one "which rungs are due" decision: a half-rate rung takes the
    /// boundary picture and every other one after it, even when a segment has an
    /// odd number of pictures; a full-rate rung takes all.
    #[test]
    fn due_rungs_follow_the_segment_start() {
        let rung = |name: &str, frame_step| Rung {
            name: name.into(),
            width: 640,
            height: 360,
            frame_step,
            fps: 60.0 / frame_step as f64,
            bitrate_bps: 800_000,
        };
        let (full, half) = (rung("360p60", 1), rung("360p30", 2));
        let mut b = Boundaries::new(0.5);
        let mut keys: HashSet<i64> = [0, 15 * 1500, 30 * 1500].into_iter().collect();
        let mut taken = Vec::new();
        for i in 0..45i64 {
            let due = Due::of(i * 1500, &mut b, &mut keys, 1500);
            assert!(due.takes(&full));
            if due.decision.boundary {
                assert!(due.takes(&half), "picture {i} starts a segment");
            }
            if due.takes(&half) {
                taken.push(i);
            }
        }
        // 60 fps, 0.5 s segments of 30 pictures, keyframes every 15: the half-rate
        // rung takes the even pictures of each segment.
        assert_eq!(taken.len(), 23, "{taken:?}");
        assert!(taken.iter().all(|i| i % 2 == 0), "{taken:?}");
    }
    use crate::transcode::cpu::{BilinearScaler, OpenH264Decoder, OpenH264Encoder};
    use crate::transcode::ladder::default_ladder;
    use crate::transcode::{Encoder, Scaler};

    /// 2 s of the demo pattern at 720p30, a keyframe every 0.5 s.
    fn capture() -> (AvcConfig, Vec<Packet>) {
        let mut src =
            crate::transcode::pattern::PatternSource::new(1280, 720, 30, 2000, 15).unwrap();
        let (mut cfg, mut v) = (None, Vec::new());
        while v.len() < 60 {
            if let Some((c, p)) = src.next(1).unwrap() {
                cfg = cfg.or(c);
                v.push(p);
            }
        }
        (cfg.unwrap(), v)
    }

    /// An encoder that takes `delay` per picture: a rung that cannot keep up.
    struct Slow(OpenH264Encoder, Duration);
    impl Encoder for Slow {
        fn encode(&mut self, f: &Frame, idr: bool) -> Result<Option<EncodedFrame>, StageError> {
            std::thread::sleep(self.1);
            self.0.encode(f, idr)
        }
    }

    /// An encoder that panics on its `n`th picture (a codec library bug).
    struct PanicsAt(OpenH264Encoder, usize);
    impl Encoder for PanicsAt {
        fn encode(&mut self, f: &Frame, idr: bool) -> Result<Option<EncodedFrame>, StageError> {
            self.1 -= 1;
            assert!(self.1 > 0, "codec bug (test)");
            self.0.encode(f, idr)
        }
    }

    /// An encoder that fails (an out-of-memory, a refused picture) on its
    /// `n`th picture only.
    struct FailsAt(OpenH264Encoder, usize);
    impl Encoder for FailsAt {
        fn encode(&mut self, f: &Frame, idr: bool) -> Result<Option<EncodedFrame>, StageError> {
            self.1 = self.1.saturating_sub(1);
            if self.1 == 1 {
                return Err(StageError::Encode {
                    rung: "480p30".into(),
                    pts: f.pts,
                    reason: "out of memory (test)".into(),
                });
            }
            self.0.encode(f, idr)
        }
    }

    /// Issue 30: one rung's encode error costs that rung alone, up to its
    /// next IDR (every later frame would refer to the one lost); the other
    /// rung encodes every picture, and the error is returned once, for the
    /// caller to count and log.
    #[test]
    fn a_rung_error_skips_that_rung_alone_to_its_next_idr() {
        let (cfg, packets) = capture();
        for mode in [RungMode::Inline, RungMode::Threads { queue: 4 }] {
            let mut l = ladder(&cfg, mode, |e| Box::new(FailsAt(e, 6)));
            let mut out: Vec<Vec<EncodedFrame>> = vec![Vec::new(), Vec::new()];
            let mut errors = 0;
            for p in &packets {
                errors += l.push(p, &mut |i, f| out[i].push(f)).is_err() as usize;
            }
            errors += l.finish(&mut |i, f| out[i].push(f)).is_err() as usize;
            assert_eq!(errors, 1, "{mode:?}: the error is reported once");
            assert_eq!(
                out[1].len(),
                packets.len(),
                "{mode:?}: the other rung is untouched"
            );
            // Picture 4 failed: 0-3 out, then nothing until the IDR at 15 (0.5 s).
            let pts: Vec<i64> = out[0].iter().map(|f| f.pts).collect();
            let all: Vec<i64> = out[1].iter().map(|f| f.pts).collect();
            assert_eq!(pts[..4], all[..4], "{mode:?}");
            assert_eq!(pts[4], all[15], "{mode:?}: resumes at the next boundary");
            assert!(out[0][4].keyframe, "{mode:?}");
            assert_eq!(pts.len(), packets.len() - 11, "{mode:?}");
            let stats = l.rungs().next().unwrap().1;
            assert_eq!((stats.errors, stats.dropped_error), (1, 10), "{mode:?}");
        }
    }

    /// A rung whose thread dies stops; the other rung and the ladder go on.
    #[test]
    fn a_rung_thread_that_panics_stops_only_that_rung() {
        let (cfg, packets) = capture();
        // Blocking queues: nothing is dropped for lag, so only the panic matters.
        let mut l = ladder(&cfg, RungMode::Threads { queue: 4 }, |e| {
            Box::new(PanicsAt(e, 5))
        });
        let mut out: Vec<Vec<EncodedFrame>> = vec![Vec::new(), Vec::new()];
        for p in &packets {
            l.push(p, &mut |i, f| out[i].push(f)).unwrap();
        }
        l.finish(&mut |i, f| out[i].push(f)).unwrap();
        assert_eq!(
            out[0].len(),
            4,
            "the panicking rung encoded until its panic"
        );
        assert_eq!(out[1].len(), packets.len(), "the other rung is untouched");
    }

    /// The 480p30 and 360p30 rungs of a 720p30 source, the first one's encoder
    /// wrapped by `first` (slow, panicking, gated), 0.5 s segments (several
    /// boundaries in the capture).
    fn ladder(
        cfg: &AvcConfig,
        mode: RungMode,
        first: impl FnOnce(OpenH264Encoder) -> Box<dyn Encoder>,
    ) -> LadderRun {
        let rungs: Vec<Rung> = plan(&default_ladder(), cfg.width, cfg.height, 30.0)
            .into_iter()
            .filter(|r| r.height <= 480)
            .collect();
        assert_eq!(rungs.len(), 2, "480p30 and 360p30 from a 720p30 source");
        let mut first = Some(first);
        let stages = rungs
            .iter()
            .map(|r| {
                let enc = OpenH264Encoder::new(r).unwrap();
                let enc: Box<dyn Encoder> = match first.take() {
                    Some(wrap) => wrap(enc),
                    None => Box::new(enc),
                };
                (Box::new(BilinearScaler::new()) as Box<dyn Scaler>, enc)
            })
            .collect();
        let dec = Box::new(OpenH264Decoder::new(cfg.clone()).unwrap());
        LadderRun::assemble(dec, rungs, stages, 30.0, 0.5, mode).unwrap()
    }

    fn run(mut l: LadderRun, packets: &[Packet]) -> (LadderRun, Vec<Vec<EncodedFrame>>) {
        let mut out: Vec<Vec<EncodedFrame>> = vec![Vec::new(), Vec::new()];
        for p in packets {
            l.push(p, &mut |i, f| out[i].push(f)).unwrap();
        }
        l.finish(&mut |i, f| out[i].push(f)).unwrap();
        (l, out)
    }

    /// Threads, nothing dropped: every rung encodes every picture, in order,
    /// with IDRs at the same pts on both rungs.
    #[test]
    fn rung_threads_encode_every_picture_in_order() {
        let (cfg, packets) = capture();
        let (l, out) = run(
            ladder(&cfg, RungMode::Threads { queue: 2 }, |e| {
                Box::new(Slow(e, Duration::from_millis(5)))
            }),
            &packets,
        );
        for frames in &out {
            assert_eq!(frames.len(), packets.len());
            assert!(
                frames.windows(2).all(|w| w[0].pts < w[1].pts),
                "per-rung order"
            );
        }
        let idr = |v: &Vec<EncodedFrame>| {
            v.iter()
                .filter(|f| f.keyframe)
                .map(|f| f.pts)
                .collect::<Vec<_>>()
        };
        assert_eq!(idr(&out[0]), idr(&out[1]));
        assert!(idr(&out[0]).len() >= 2);
        assert_eq!(l.latency.ladder_us.len() as usize, packets.len());
    }

    /// Six ladders at once (twelve rungs) share the worker pool: every rung
    /// of every ladder encodes every picture, in order, and no thread is
    /// started per rung (the process has only the pool's rung workers).
    #[test]
    fn ladders_share_the_worker_pool() {
        let (cfg, packets) = capture();
        let outs: Vec<Vec<Vec<EncodedFrame>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let cfg = cfg.clone();
                    let packets = &packets;
                    s.spawn(move || {
                        let l = ladder(&cfg, RungMode::Threads { queue: 2 }, |e| Box::new(e));
                        run(l, packets).1
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for out in &outs {
            for frames in out {
                assert_eq!(frames.len(), packets.len());
                assert!(frames.windows(2).all(|w| w[0].pts < w[1].pts));
            }
        }
        let rung_threads = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.starts_with("ladderd-rung"))
            })
            .count();
        assert_eq!(
            rung_threads,
            pool::workers(),
            "rung threads beside the pool"
        );
    }

    /// A decoder that holds every picture until its flush (a reorder delay
    /// as long as the capture): the end of a feed in one burst.
    struct HoldAll(OpenH264Decoder, Vec<Frame>);
    impl Decoder for HoldAll {
        fn decode(&mut self, p: &Packet, _: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError> {
            let held = &mut self.1;
            self.0.decode(p, &mut |f| held.push(f.clone()))
        }
        fn flush(&mut self, out: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError> {
            let held = &mut self.1;
            self.0.flush(&mut |f| held.push(f.clone()))?;
            self.1.drain(..).for_each(|mut f| out(&mut f));
            Ok(())
        }
    }

    /// Realtime: the pictures a decoder gives out at the end of a feed reach
    /// every rung, however slow, however small its queue (a drop there has
    /// no next picture to cover it: a hole before the next input).
    #[test]
    fn the_end_of_feed_flush_drops_nothing_in_realtime_mode() {
        let (cfg, packets) = capture();
        let mut l = ladder(&cfg, RungMode::Realtime { queue: 1 }, |e| {
            Box::new(Slow(e, Duration::from_millis(5)))
        });
        l.decoder = Box::new(HoldAll(
            OpenH264Decoder::new(cfg.clone()).unwrap(),
            Vec::new(),
        ));
        let (l, out) = run(l, &packets);
        for (frames, (_, stats)) in out.iter().zip(l.rungs()) {
            assert_eq!(stats.dropped_behind, 0);
            assert_eq!(frames.len(), packets.len());
        }
    }

    /// The B-frame capture through `ladder` with drains (a spare openh264
    /// decoder), pushed up to `cut`, drained, then the rest pushed.
    fn drained_run(mode: RungMode, cut: impl Fn(&[Packet]) -> usize) -> DrainedRun {
        let (cfg, packets) = crate::transcode::cpu::decoder::tests::capture();
        let cut = cut(&packets);
        let mut l = ladder(&cfg, mode, |e| Box::new(e));
        let spare_cfg = cfg.clone();
        l.set_spare_decoder(Box::new(move || {
            Ok(Box::new(OpenH264Decoder::new(spare_cfg.clone())?) as Box<dyn Decoder>)
        }));
        let mut out: Outputs = vec![Vec::new(), Vec::new()];
        for p in &packets[..cut] {
            l.push(p, &mut |i, f| out[i].push(f)).unwrap();
        }
        if mode == RungMode::Inline {
            assert!(
                out[0].len() < cut,
                "the decoder held nothing back: no test of the drain"
            );
        }
        let gave = l.drain(&mut |i, f| out[i].push(f)).unwrap();
        assert!(gave > 0, "{mode:?}: the drain gave nothing out");
        let sent_max = packets[..cut].iter().map(|p| p.pts).max().unwrap();
        let caught_up = |_: &LadderRun, o: &Outputs| {
            o.iter()
                .all(|r| r.last().is_some_and(|f| f.pts == sent_max))
        };
        if mode != RungMode::Inline {
            wait(&mut l, &mut out, caught_up);
        }
        assert!(
            caught_up(&l, &out),
            "{mode:?}: rungs stop short of the last picture sent"
        );
        assert_eq!(
            l.drain(&mut |i, f| out[i].push(f)).unwrap(),
            0,
            "nothing new"
        );
        for p in &packets[cut..] {
            l.push(p, &mut |i, f| out[i].push(f)).unwrap();
        }
        l.finish(&mut |i, f| out[i].push(f)).unwrap();
        for r in &out {
            assert!(
                r.windows(2).all(|w| w[0].pts < w[1].pts),
                "{mode:?}: pts out of order or twice"
            );
        }
        DrainedRun {
            l,
            out,
            packets,
            cut,
        }
    }

    struct DrainedRun {
        l: LadderRun,
        out: Outputs,
        packets: Vec<Packet>,
        cut: usize,
    }

    /// Latest pts before `k`, earliest from `k` on.
    fn split_pts(packets: &[Packet], k: usize) -> (i64, i64) {
        let before = packets[..k].iter().map(|p| p.pts).max().unwrap();
        let after = packets[k..].iter().map(|p| p.pts).min().unwrap();
        (before, after)
    }

    /// Issue 30: a publisher gone silent left the pictures the decoder holds
    /// for reordering out of every rendition until input came back. A drain
    /// gives them to every rung, and the ladder goes on with the next
    /// packets: every picture once, in order, nothing dropped (the pause
    /// falls between mini-GOPs).
    #[test]
    fn a_drain_gives_out_what_the_decoder_holds_and_the_ladder_goes_on() {
        for mode in [RungMode::Inline, RungMode::Threads { queue: 2 }] {
            let r = drained_run(mode, |packets| {
                (packets.len() / 2..packets.len())
                    .find(|&k| {
                        let (before, after) = split_pts(packets, k);
                        before < after && !packets[k].keyframe
                    })
                    .expect("a cut between mini-GOPs")
            });
            let mut want: Vec<i64> = r.packets.iter().map(|p| p.pts).collect();
            want.sort();
            for frames in &r.out {
                let pts: Vec<i64> = frames.iter().map(|f| f.pts).collect();
                assert_eq!(pts, want, "{mode:?}: cut at {}", r.cut);
            }
            assert_eq!(r.l.decoded, r.packets.len() as u64, "{mode:?}");
            assert_eq!(
                (r.l.drains(), r.l.dropped_after_drain()),
                (1, 0),
                "{mode:?}"
            );
        }
    }

    /// A pause inside a mini-GOP (after a P-frame, before the B-frames that
    /// show before it): the drain gives the P-frame out, so those B-frames,
    /// sent after the pause, are dropped and counted; the timeline only
    /// goes forward.
    #[test]
    fn b_frames_sent_after_a_drain_that_show_before_it_are_dropped() {
        let r = drained_run(RungMode::Inline, |packets| {
            (packets.len() / 2..packets.len())
                .find(|&k| split_pts(packets, k).0 > split_pts(packets, k).1)
                .expect("a cut inside a mini-GOP")
        });
        let (before, _) = split_pts(&r.packets, r.cut);
        let late = r.packets[r.cut..].iter().filter(|p| p.pts < before).count();
        assert!(late > 0);
        assert_eq!(r.l.dropped_after_drain(), late as u64);
        for frames in &r.out {
            assert_eq!(frames.len(), r.packets.len() - late, "cut at {}", r.cut);
        }
    }

    /// An encoder that waits for a token per picture: a rung held back on cue.
    struct Gated(OpenH264Encoder, flume::Receiver<()>);
    impl Encoder for Gated {
        fn encode(&mut self, f: &Frame, idr: bool) -> Result<Option<EncodedFrame>, StageError> {
            // Bounded, so a failing test cannot leave the thread (and the
            // join in LadderRun's drop) waiting forever.
            let _ = self.1.recv_timeout(Duration::from_secs(20));
            self.0.encode(f, idr)
        }
    }

    type Outputs = Vec<Vec<EncodedFrame>>;

    /// Takes rung results until `done` holds (10 s at most).
    fn wait(l: &mut LadderRun, out: &mut Outputs, done: impl Fn(&LadderRun, &Outputs) -> bool) {
        let rx = l.output_receiver().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(l, out) {
            let left = deadline.saturating_duration_since(Instant::now());
            let o = rx.recv_timeout(left).expect("rung results in time");
            l.accept(o, &mut |i, f| out[i].push(f)).unwrap();
        }
    }

    /// Realtime: a rung held back fills its queue, then drops the pictures
    /// it has no room for, except the segment boundary's (picture 15, its
    /// spare slot), and takes every picture again once it can; the other
    /// rung encodes every picture. Deterministic: the held rung waits on a
    /// gate, the test waits for the free rung.
    #[test]
    fn a_rung_behind_drops_pictures_but_never_its_segment_boundary() {
        let (cfg, packets) = capture();
        let (gate_tx, gate_rx) = flume::unbounded();
        // A boundary every 15 pictures (the source's GOP).
        let mut l = ladder(&cfg, RungMode::Realtime { queue: 2 }, |e| {
            Box::new(Gated(e, gate_rx))
        });
        let mut out: Outputs = vec![Vec::new(), Vec::new()];
        // Every picture pushed is answered by the free rung; once released,
        // by the held one too (or dropped by it): nothing races the queues.
        let held_done = |l: &LadderRun, o: &Outputs, n: usize| {
            o[0].len() as u64 + l.rungs().next().unwrap().1.dropped_behind == n as u64 + 1
        };
        for (n, p) in packets.iter().enumerate() {
            l.push(p, &mut |i, f| out[i].push(f)).unwrap();
            let released = n > 20;
            wait(&mut l, &mut out, |l, o| {
                o[1].len() == n + 1 && (!released || held_done(l, o, n))
            });
            if n == 20 {
                for _ in 0..packets.len() {
                    gate_tx.send(()).unwrap();
                }
                wait(&mut l, &mut out, |l, o| held_done(l, o, n));
            }
        }
        l.finish(&mut |i, f| out[i].push(f)).unwrap();
        let stats: Vec<RungStats> = l.rungs().map(|(_, s)| s.clone()).collect();
        assert_eq!(out[1].len(), packets.len(), "the free rung loses nothing");
        assert_eq!(stats[1].dropped_behind, 0);
        // Held with 1 picture in its encoder and 2 queued: 3..=14 and 16..=20
        // dropped (one more if the thread had not taken picture 0 yet).
        assert!(
            (17..=18).contains(&stats[0].dropped_behind),
            "{} dropped",
            stats[0].dropped_behind
        );
        assert_eq!(
            out[0].len() as u64 + stats[0].dropped_behind,
            packets.len() as u64
        );
        let all: Vec<i64> = out[1].iter().map(|f| f.pts).collect();
        let at = |k: usize| out[0].iter().position(|f| f.pts == all[k]);
        let boundary = at(15).expect("the boundary picture was dropped");
        assert!(out[0][boundary].keyframe, "boundary without an IDR");
        assert!((16..=20).all(|k| at(k).is_none()), "a picture without room");
        // Released: every picture from 21 on, IDRs at the boundaries only.
        let resumed = at(21).expect("picture 21 encoded");
        assert_eq!(out[0].len() - resumed, packets.len() - 21);
        assert!(out[0][resumed..]
            .iter()
            .all(|f| f.keyframe == (all.iter().position(|&p| p == f.pts).unwrap() % 15 == 0)));
    }
}
