//! Decode once, fan out to every rung with IDRs aligned: the core of the
//! pipeline, shared by the live path and `ladderd transcode`.
//!
//! Drive contract (values in, values out, after str0m's `handle_input` /
//! `poll_output`): [`LadderRun::handle_packet`] every video packet in
//! decode order, then [`LadderRun::handle_end`] once. After each `handle_*`
//! call (and after [`LadderRun::handle_rung_output`], for what a rung
//! thread finished between packets), call [`LadderRun::poll_output`] until
//! it returns `None`: the encoded frames come out as `(rung index, frame)`,
//! in presentation order per rung. While the input pauses,
//! [`LadderRun::handle_pause_step`] gives out what the decoder holds, a
//! few packets of replay per call, and the packets may go on after it. Callers that take every frame at once
//! (files, benches, tests) may use [`LadderRun::push`], [`LadderRun::drain`],
//! [`LadderRun::accept`] and [`LadderRun::finish`], which do both steps
//! with a callback.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::telemetry::latency::{latency_histogram, LatencySummary, Percentiles, StageBuckets};

use crate::media::h264::AvcConfig;
use crate::media::{Packet, TIMESCALE};
use crate::telemetry::clock;
use crate::transcode::backend::Backend;
use crate::transcode::boundary::{Boundaries, Mode};
use crate::transcode::ladder::{plan, Rung, RungConfig};
use crate::transcode::{Decoder, EncodedFrame, Frame, StageError};

mod drain;
mod fan;
pub mod pool;
mod stats;
mod threads;

use crate::telemetry::cpu::thread_cpu;
pub use fan::RungMode;
use fan::{FanOut, RungExec, RungState};
pub use stats::{RungStats, StageLatency};
pub use threads::RungOutput;

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
    /// The drain under way, a few packets per [`Self::drain_step`].
    replay: Option<drain::Replay>,
    /// Encoded frames not yet taken by [`Self::poll_output`].
    ready: VecDeque<(usize, EncodedFrame)>,
    /// After [`Self::handle_end`]: the rung threads still to hand back their
    /// last pictures (polled by [`Self::poll_output`]), and the last error
    /// among them.
    ending: Option<Result<(), StageError>>,
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
            replay: None,
            ready: VecDeque::new(),
            ending: None,
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

    /// Decodes one video packet and encodes every rung's share of what came
    /// out (taken with [`Self::poll_output`]). A decode error skips this
    /// stream to its next keyframe and is returned once.
    pub fn handle_packet(&mut self, packet: &Packet) -> Result<(), StageError> {
        let mut ready = std::mem::take(&mut self.ready);
        let r = self.push(packet, &mut |i, f| ready.push_back((i, f)));
        self.ready = ready;
        r
    }

    /// The input paused: a drain starts if none is under way
    /// ([`Self::start_drain`]) and replays up to `packets` more packets
    /// ([`Self::drain_step`]); the pictures come out of [`Self::poll_output`].
    /// `Some(pictures given out)` once it is over (0: nothing to drain).
    pub fn handle_pause_step(&mut self, packets: usize) -> Result<Option<usize>, StageError> {
        if !self.start_drain()? {
            return Ok(Some(0));
        }
        let mut ready = std::mem::take(&mut self.ready);
        let r = self.drain_step(packets, &mut |i, f| ready.push_back((i, f)));
        self.ready = ready;
        r
    }

    /// One rung thread's result (from [`Self::output_receiver`]), then any
    /// others already waiting; the frames come out of [`Self::poll_output`].
    pub fn handle_rung_output(&mut self, o: RungOutput) -> Result<(), StageError> {
        let mut ready = std::mem::take(&mut self.ready);
        let r = self.accept(o, &mut |i, f| ready.push_back((i, f)));
        self.ready = ready;
        r
    }

    /// End of stream: the decoder's reorder buffer goes through the rungs
    /// and every rung's queue is closed. Then [`Self::poll_output`] waits
    /// (blocking) for each rung thread to hand back its last pictures, one
    /// at a time, and [`Self::end_result`] says whether one of them failed.
    /// Returns the decoder's or an inline rung's error (a decoder's stops
    /// the end there).
    pub fn handle_end(&mut self) -> Result<(), StageError> {
        if self.replay.take().is_some() {
            // The live decoder's flush gives out what it held.
            self.held.cancelled();
        }
        let mut result = Ok(());
        let mut ready = std::mem::take(&mut self.ready);
        let flushed = {
            let (decoder, mut stage) = self.split();
            // The decoder's held pictures come in one burst with no real
            // time to keep up with: every rung takes each one (a drop here
            // would leave a hole at the end of each rung's timeline, with no
            // next picture to stretch the one before over it).
            stage.flushing = true;
            decoder.flush(&mut |frame| {
                stage.picture(frame, &mut |i, f| ready.push_back((i, f)), &mut result);
            })
        };
        self.ready = ready;
        // A failed flush leaves the rung threads' last pictures out (they
        // close when the ladder is dropped), as the callback drive does.
        flushed?;
        self.close_rungs();
        self.ending = Some(Ok(()));
        result
    }

    /// The next encoded frame, `(rung index, frame)`; `None` once there is
    /// none (yet). Call it until `None` after every `handle_*` call. After
    /// [`Self::handle_end`] it blocks until a rung thread hands one back, and
    /// `None` means every rung is done.
    pub fn poll_output(&mut self) -> Option<(usize, EncodedFrame)> {
        loop {
            if let Some(out) = self.ready.pop_front() {
                return Some(out);
            }
            if self.ending.is_none() {
                return None;
            }
            // Every rung's task ends once its queue is empty and closed.
            let o = self.outputs.as_ref()?.recv().ok()?;
            let mut result = self.ending.take().unwrap_or(Ok(()));
            let mut ready = std::mem::take(&mut self.ready);
            {
                let (_, mut stage) = self.split();
                stage.accept(o, &mut |i, f| ready.push_back((i, f)), &mut result);
            }
            self.ready = ready;
            self.ending = Some(result);
        }
    }

    /// After [`Self::handle_end`] and [`Self::poll_output`]'s last `None`:
    /// the rung threads' last error, if one failed on its last pictures.
    pub fn end_result(&mut self) -> Result<(), StageError> {
        self.ending.replace(Ok(())).unwrap_or(Ok(()))
    }

    /// Decodes one video packet and encodes every rung's share of what came
    /// out, each frame to `out` ([`Self::handle_packet`] with a callback).
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
        if packet.track == crate::media::Track::Video && self.replay.take().is_some() {
            // The input is back: the live decoder gives out what it held.
            self.held.cancelled();
        }
        self.held.pushed(packet);
        let t = clock::now();
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
    /// and counted ([`Self::dropped_after_drain`]). The whole replay at
    /// once: a caller that must stay responsive uses [`Self::start_drain`]
    /// and [`Self::drain_step`].
    pub fn drain(&mut self, out: &mut dyn FnMut(usize, EncodedFrame)) -> Result<usize, StageError> {
        if !self.start_drain()? {
            return Ok(0);
        }
        loop {
            if let Some(gave) = self.drain_step(usize::MAX, out)? {
                return Ok(gave);
            }
        }
    }

    /// Starts a drain ([`Self::drain`]) to be run by [`Self::drain_step`]:
    /// false when none is due (nothing pushed since the last one, no
    /// pictures held, no spare decoder). A drain already under way goes on.
    pub fn start_drain(&mut self) -> Result<bool, StageError> {
        if self.replay.is_some() {
            return Ok(true);
        }
        let Some(make) = self.spare_decoder.as_mut() else {
            return Ok(false);
        };
        let Some(gop) = self.held.take_replay() else {
            return Ok(false);
        };
        self.replay = Some(drain::Replay::new(make()?, gop));
        Ok(true)
    }

    /// Whether a drain is under way (started, not finished or cancelled).
    pub fn draining(&self) -> bool {
        self.replay.is_some()
    }

    /// The drain under way replays up to `packets` more packets, and once
    /// they are all in, flushes the spare decoder: the pictures the rungs
    /// have not had go to them. `Some(pictures given out)` when the drain
    /// is over, `None` while packets remain (or no drain is under way). A
    /// video packet pushed meanwhile cancels it ([`Self::push`]): the live
    /// decoder then gives the held pictures out itself.
    pub fn drain_step(
        &mut self,
        packets: usize,
        out: &mut dyn FnMut(usize, EncodedFrame),
    ) -> Result<Option<usize>, StageError> {
        let Some(mut replay) = self.replay.take() else {
            return Ok(None);
        };
        let mut result = Ok(());
        let stepped = {
            let (_, mut stage) = self.split();
            // As at the end of a feed: a burst with no real time to keep up
            // with, every rung takes every picture; the latency histograms
            // would count the pause.
            stage.flushing = true;
            stage.telemetry = false;
            let mut give = |frame: &mut Frame| {
                if stage.held.drained(frame.pts) {
                    stage.fan(frame, out, &mut result);
                    true
                } else {
                    false
                }
            };
            replay.step(packets, &mut give)
        };
        if let Ok(false) = stepped {
            self.replay = Some(replay);
            return result.map(|()| None);
        }
        // Over (or failed): the drain is counted if it gave anything out.
        self.held.replayed(replay.gave);
        stepped?;
        result.map(|()| Some(replay.gave))
    }

    /// Drains that gave out pictures.
    pub fn drains(&self) -> u64 {
        self.held.drains
    }

    /// Drains cancelled before they were over: the input came back (or
    /// ended) first.
    pub fn drains_cancelled(&self) -> u64 {
        self.held.cancelled
    }

    /// Pictures dropped after a drain for showing before the last one it
    /// gave out (B-frames sent after the pause: the timeline only goes forward).
    pub fn dropped_after_drain(&self) -> u64 {
        self.held.dropped
    }

    /// End of stream: drains the decoder's reorder buffer through the rungs,
    /// then waits for every rung thread to hand back its last pictures
    /// ([`Self::handle_end`] and [`Self::poll_output`] with a callback).
    pub fn finish(&mut self, out: &mut dyn FnMut(usize, EncodedFrame)) -> Result<(), StageError> {
        let ended = self.handle_end();
        while let Some((i, f)) = self.poll_output() {
            out(i, f);
        }
        // A rung thread's error came last, so it is the one to report.
        self.end_result().and(ended)
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

#[cfg(test)]
mod tests;
