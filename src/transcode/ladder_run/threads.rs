//! A ladder's rungs on the worker pool ([`super::pool`]): each rung scales
//! and encodes the pictures it is handed, in order; the ladder hands
//! pictures out (dropping, in realtime mode, for a rung that is behind) and
//! takes results back between packets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Due, FanOut, RungExec, RungMode};
use crate::transcode::{EncodedFrame, Encoder, Frame, Scaler, StageError};

/// A picture for one rung's thread.
pub(super) struct RungJob {
    pub(super) frame: Arc<Frame>,
    pub(super) force_idr: bool,
}

/// What a rung's thread made of one picture.
pub struct RungOutput {
    pub(super) rung: usize,
    pub(super) pts: i64,
    pub(super) scale: Duration,
    pub(super) encode: Duration,
    pub(super) scale_cpu: Duration,
    pub(super) encode_cpu: Duration,
    pub(super) result: Result<Option<EncodedFrame>, StageError>,
}

/// One picture through one rung: scale, encode, timed (wall and CPU).
pub(super) fn rung_job(
    index: usize,
    scaler: &mut dyn Scaler,
    encoder: &mut dyn Encoder,
    frame: &mut Frame,
    job: RungJob,
) -> RungOutput {
    let (t, c) = (Instant::now(), super::thread_cpu());
    // A rung the source's size encodes the shared picture itself: no copy.
    let same = (job.frame.width, job.frame.height) == (frame.width, frame.height)
        && job.frame.device.is_none();
    let scaled = if same {
        Ok(())
    } else {
        scaler.scale(&job.frame, frame)
    };
    let (t2, c2) = (Instant::now(), super::thread_cpu());
    let input: &Frame = if same { &job.frame } else { frame };
    let result = scaled.and_then(|()| encoder.encode(input, job.force_idr));
    RungOutput {
        rung: index,
        pts: job.frame.pts,
        scale: t2 - t,
        encode: t2.elapsed(),
        scale_cpu: c2.saturating_sub(c),
        encode_cpu: super::thread_cpu().saturating_sub(c2),
        result,
    }
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
                .insert(frame.pts, (handed, Instant::now(), frame.arrival));
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
