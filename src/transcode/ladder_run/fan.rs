//! One decoded picture through every rung ([`FanOut`]): its place in the
//! ladder decided once ([`Due`]: a segment boundary, which rungs take it),
//! then each rung scales and encodes it inline or on its thread
//! (`threads.rs`), and the rung threads' results are taken back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::drain;
use super::pool;
use super::stats::{RungStats, StageLatency};
use super::threads::{RungJob, RungOutput};
use crate::telemetry::clock;
use crate::telemetry::cpu::thread_cpu;
use crate::transcode::boundary::Boundaries;
use crate::transcode::ladder::Rung;
use crate::transcode::{EncodedFrame, Encoder, Frame, Scaler, StageError};

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

pub(super) enum RungExec {
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

pub(super) struct RungState {
    pub(super) rung: Rung,
    pub(super) exec: RungExec,
    pub(super) stats: RungStats,
    /// Failed since its last IDR: its pictures are dropped until the next
    /// one (every later frame would refer to the one lost).
    pub(super) skipping: bool,
}

impl RungState {
    /// A scale or encode error of this rung: counted, and the rung (not the
    /// ladder) skips to its next IDR.
    pub(super) fn failed(&mut self) {
        self.stats.errors += 1;
        self.skipping = true;
    }

    /// Whether an encoded frame of this rung goes out: not while the rung
    /// skips to its next IDR after an error.
    pub(super) fn passes(&mut self, keyframe: bool) -> bool {
        if self.skipping && !keyframe {
            self.stats.dropped_error += 1;
            return false;
        }
        self.skipping = false;
        true
    }
}

/// Everything but the decoder, borrowed while the decoder hands out pictures.
pub(super) struct FanOut<'a> {
    pub(super) rungs: &'a mut [RungState],
    pub(super) boundaries: &'a mut Boundaries,
    pub(super) source_keyframes: &'a mut HashSet<i64>,
    pub(super) frame_ticks: i64,
    pub(super) decoded: &'a mut u64,
    pub(super) latency: &'a mut StageLatency,
    pub(super) telemetry: bool,
    pub(super) mode: RungMode,
    pub(super) outputs: Option<&'a flume::Receiver<RungOutput>>,
    pub(super) pool: &'a mut Vec<Arc<Frame>>,
    pub(super) in_flight: &'a mut HashMap<i64, (usize, Instant, Instant)>,
    /// The decoder is flushing: rung queues block instead of dropping.
    pub(super) flushing: bool,
    pub(super) held: &'a mut drain::Held,
}

impl FanOut<'_> {
    /// The rungs run in the decoding thread (their CPU is theirs, not the
    /// decoder's).
    pub(super) fn inline(&self) -> bool {
        self.mode == RungMode::Inline
    }

    /// One picture of the decoder through every rung (unless a drain gave
    /// it out already); returns the time it took.
    pub(super) fn picture(
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
    pub(super) fn fan(
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
        let t = clock::now();
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
pub(super) struct Due {
    pub(super) decision: crate::transcode::boundary::Decision,
    pub(super) index_in_segment: u64,
}

impl Due {
    pub(super) fn of(
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

    pub(super) fn takes(&self, rung: &Rung) -> bool {
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
        let t = clock::now();
        let c = thread_cpu();
        if let Err(e) = scaler.scale(frame, scaled) {
            r.failed();
            first_error.get_or_insert(e);
            continue;
        }
        let t2 = clock::now();
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

impl FanOut<'_> {
    /// `frame` as a picture the rung threads can share: its planes move into
    /// a pooled picture no thread holds any more (else a new one; the pool
    /// grows to the pictures in flight), and the decoder gets that one's old
    /// planes to write its next picture into. No pixel is copied.
    pub(super) fn shared(&mut self, frame: &mut Frame) -> Arc<Frame> {
        let take = |f: &mut Frame, frame: &mut Frame| {
            std::mem::swap(&mut f.y, &mut frame.y);
            std::mem::swap(&mut f.u, &mut frame.u);
            std::mem::swap(&mut f.v, &mut frame.v);
            f.width = frame.width;
            f.height = frame.height;
            f.pts = frame.pts;
            f.arrival = frame.arrival;
            f.device = frame.device.clone();
        };
        for slot in self.pool.iter_mut() {
            if let Some(f) = Arc::get_mut(slot) {
                take(f, frame);
                return slot.clone();
            }
        }
        let mut f = Frame::new(0, 0);
        take(&mut f, frame);
        let f = Arc::new(f);
        self.pool.push(f.clone());
        f
    }

    /// Hands one picture to every rung thread that takes it. In realtime mode
    /// a rung whose queue is full drops that picture, counted: a rung behind
    /// real time runs at a lower frame rate, its previous picture held longer,
    /// so its timeline stays contiguous (no hole for a player to stall on).
    /// The decoder's flush at the end of a feed blocks instead.
    pub(super) fn dispatch(&mut self, frame: &mut Frame) {
        let due = Due::of(
            frame.pts,
            &mut self.boundaries,
            &mut self.source_keyframes,
            self.frame_ticks,
        );
        let decision = due.decision;
        let shared = self.shared(frame);
        let realtime = matches!(self.mode, RungMode::Realtime { .. }) && !self.flushing;
        let mut handed = 0;
        for r in self.rungs.iter_mut() {
            if !due.takes(&r.rung) {
                continue;
            }
            let RungExec::Thread {
                jobs: jobs_slot,
                warned,
                task,
            } = &mut r.exec
            else {
                continue;
            };
            let Some(jobs) = jobs_slot.as_ref() else {
                continue;
            };
            let job = RungJob {
                frame: shared.clone(),
                force_idr: decision.boundary,
            };
            let sent = if realtime {
                // A boundary picture may take the queue's spare slot: the
                // rung then resumes on this boundary's IDR instead of
                // skipping a whole segment, which would leave its segment
                // numbers one behind every other rendition's.
                let limit = jobs.capacity().unwrap_or(1).saturating_sub(1);
                if !decision.boundary && jobs.len() >= limit {
                    Ok(false)
                } else {
                    match jobs.try_send(job) {
                        Ok(()) => Ok(true),
                        Err(flume::TrySendError::Full(_)) => Ok(false),
                        Err(flume::TrySendError::Disconnected(_)) => Err(()),
                    }
                }
            } else {
                jobs.send(job).map(|()| true).map_err(|_| ())
            };
            match sent {
                Ok(true) => {
                    task.schedule();
                    handed += 1;
                }
                Ok(false) => {
                    if !*warned {
                        tracing::warn!(rung = %r.rung.name, pts = frame.pts, "rung behind real time: dropping pictures its queue has no room for (counted in ladderd_frames_dropped_total, reason behind; logged once per ladder)");
                    }
                    *warned = true;
                    r.stats.dropped_behind += 1;
                }
                Err(()) => {
                    // The rung's task is gone (a codec panic, logged by the
                    // panic hook): that rung stops, the others go on.
                    tracing::error!(rung = %r.rung.name, pts = frame.pts, "rung stopped (its codec failed); the rest of the ladder continues");
                    *jobs_slot = None;
                }
            }
        }
        if handed > 0 {
            self.in_flight
                .insert(frame.pts, (handed, clock::now(), frame.arrival));
        }
    }

    /// Takes every result the rung threads have ready.
    pub(super) fn drain(
        &mut self,
        out: &mut dyn FnMut(usize, EncodedFrame),
        result: &mut Result<(), StageError>,
    ) {
        let Some(rx) = self.outputs else { return };
        while let Ok(o) = rx.try_recv() {
            self.accept(o, out, result);
        }
    }

    /// Accounts one rung thread's result and passes its frame on.
    pub(super) fn accept(
        &mut self,
        o: RungOutput,
        out: &mut dyn FnMut(usize, EncodedFrame),
        result: &mut Result<(), StageError>,
    ) {
        if let Some(r) = self.rungs.get_mut(o.rung) {
            r.stats.scale_time += o.scale;
            r.stats.encode_time += o.encode;
            r.stats.scale_cpu += o.scale_cpu;
            r.stats.encode_cpu += o.encode_cpu;
            if self.telemetry {
                let _ = r.stats.scale_us.record(o.scale.as_micros() as u64);
                let _ = r.stats.encode_us.record(o.encode.as_micros() as u64);
            }
            match o.result {
                Ok(Some(e)) if !r.passes(e.keyframe) => {}
                Ok(Some(e)) => {
                    r.stats.frames += 1;
                    r.stats.keyframes += e.keyframe as u64;
                    r.stats.bytes += e.data.len() as u64;
                    out(o.rung, e);
                }
                Ok(None) => {}
                Err(e) => {
                    r.failed();
                    *result = Err(e);
                }
            }
        }
        if let Some(entry) = self.in_flight.get_mut(&o.pts) {
            entry.0 -= 1;
            if entry.0 == 0 {
                let (_, handed, arrival) = *entry;
                self.in_flight.remove(&o.pts);
                if self.telemetry {
                    let _ = self
                        .latency
                        .ladder_us
                        .record(handed.elapsed().as_micros() as u64);
                    let _ = self
                        .latency
                        .total_us
                        .record(arrival.elapsed().as_micros() as u64);
                }
            }
        }
    }
}
