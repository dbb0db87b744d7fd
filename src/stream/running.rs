//! The ladder of one stream ([`Running`]: a [`LadderRun`] and where its
//! output is counted) and the packager it feeds ([`Packaging`]). The driver
//! hands each video packet to [`Running::push`]; the ladder's encoded frames
//! are drained after every call (`LadderRun::poll_output`), counted per rung,
//! packaged and published. A panic in a codec is contained to the stream
//! ([`contained`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::Ladder;
use crate::media::h264::AvcConfig;
use crate::media::Packet;
use crate::package::{Published, StreamPackager};
use crate::store::hot::StreamMedia;
use crate::stream::policy;
use crate::stream::registry::{LiveStream, RungCounters};
use crate::transcode::backend::Backend;
use crate::transcode::ladder::Rung;
use crate::transcode::ladder_run::{LadderRun, RungMode, RungOutput};
use crate::transcode::EncodedFrame;

/// A stream's packager and the store media it publishes into.
pub struct Packaging {
    pub packager: StreamPackager,
    pub media: Arc<StreamMedia>,
}

impl Packaging {
    /// End of stream: every rendition ends (`EXT-X-ENDLIST`).
    pub fn finish(mut self, now: Instant) {
        let published = self.packager.finish(now);
        self.apply(published, now);
    }

    pub fn apply(&self, published: Vec<Published>, now: Instant) {
        for p in published {
            self.media.apply(p, now);
        }
    }
}

/// The ladder of one stream and where its output is counted.
pub struct Running {
    pub run: LadderRun,
    last_latency_publish: Instant,
    counters: Arc<Vec<RungCounters>>,
    /// Per rung, `dropped_behind` of the ladders this publish ran before
    /// (a new video configuration restarts the ladder, not the counts).
    /// Per rung, (`dropped_behind`, `errors`, `dropped_error`,
    /// `dropped_drain`) of the ladders this publish ran before (the ladder's
    /// own counts start at 0).
    behind_before: Vec<(u64, u64, u64, u64)>,
    skipping_to_keyframe: bool,
    logged_decode_error: bool,
    logged_rung_error: bool,
    logged_late: bool,
    logged_drain_error: bool,
}

impl Running {
    /// The ladder for `cfg` at `fps` with `rungs`, on `backend` (None: it
    /// failed to start, logged).
    pub fn start(
        stream: &LiveStream,
        cfg: &AvcConfig,
        fps: f64,
        rungs: Vec<Rung>,
        ladder: &Ladder,
        backend: &Backend,
        now: Instant,
    ) -> Option<Running> {
        let mode = if ladder.rung_threads {
            RungMode::Realtime {
                queue: ladder.rung_queue_frames,
            }
        } else {
            RungMode::Inline
        };
        match LadderRun::with_plan(cfg, fps, rungs, ladder.segment_secs, backend, mode) {
            Ok(run) => {
                let counters: Vec<RungCounters> =
                    run.rungs().map(|(r, _)| RungCounters::new(r)).collect();
                // A rung that goes on keeps its counts.
                let previous = stream
                    .pipeline
                    .rungs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let mut behind_before = Vec::with_capacity(counters.len());
                for c in &counters {
                    let old = previous.iter().find(|o| o.name == c.name);
                    let carry = |f: fn(&RungCounters) -> &std::sync::atomic::AtomicU64| {
                        f(c).store(old.map_or(0, |o| f(o).load(Relaxed)), Relaxed)
                    };
                    carry(|c| &c.frames);
                    carry(|c| &c.keyframes);
                    carry(|c| &c.bytes);
                    carry(|c| &c.dropped);
                    carry(|c| &c.dropped_behind);
                    carry(|c| &c.errors);
                    carry(|c| &c.dropped_error);
                    carry(|c| &c.dropped_drain);
                    behind_before.push((
                        c.dropped_behind.load(Relaxed),
                        c.errors.load(Relaxed),
                        c.dropped_error.load(Relaxed),
                        c.dropped_drain.load(Relaxed),
                    ));
                }
                let names: Vec<&str> = counters.iter().map(|c| c.name.as_str()).collect();
                info!(stream = %stream.name, source = %format!("{}x{}@{fps:.2}", cfg.width, cfg.height), rungs = ?names, "ladder started");
                let counters = Arc::new(counters);
                *stream
                    .pipeline
                    .rungs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = counters.clone();
                Some(Running {
                    run,
                    last_latency_publish: now,
                    counters,
                    behind_before,
                    skipping_to_keyframe: false,
                    logged_decode_error: false,
                    logged_rung_error: false,
                    logged_late: false,
                    logged_drain_error: false,
                })
            }
            Err(e) => {
                warn!("ladder not started: {}", e.in_stream(stream.ctx()));
                None
            }
        }
    }

    pub fn push(
        &mut self,
        stream: &LiveStream,
        p: &Packet,
        max_lag: Duration,
        packager: &mut Option<Packaging>,
        now: Instant,
    ) {
        let stats = &stream.pipeline;
        let lag = now.saturating_duration_since(p.arrival);
        let late = lag > max_lag;
        if late && !p.keyframe {
            if !self.skipping_to_keyframe && !self.logged_late {
                warn!(stream = %stream.name, lag_ms = lag.as_millis() as u64, "ladder behind real time by more than ladder.max_lag_secs: skipping source frames to the next keyframe, the picture held meanwhile (counted in ladderd_frames_dropped_total, reason late; logged once per run)");
                self.logged_late = true;
            }
            self.skipping_to_keyframe = true;
        }
        if self.skipping_to_keyframe {
            if !p.keyframe {
                stats.dropped_late.fetch_add(1, Relaxed);
                for c in self.counters.iter() {
                    c.dropped.fetch_add(1, Relaxed);
                }
                return;
            }
            self.skipping_to_keyframe = false;
        }
        let (decoded_before, skipped_before) = (self.run.decoded, self.run.skipped);
        let result = self.run.handle_packet(p);
        self.take_outputs(stream, packager);
        self.sync_drops();
        stats
            .frames_decoded
            .fetch_add(self.run.decoded - decoded_before, Relaxed);
        stats
            .frames_skipped
            .fetch_add(self.run.skipped - skipped_before, Relaxed);
        if now >= self.last_latency_publish + Duration::from_secs(1) {
            self.publish_latency(stream, packager.as_ref(), now);
        }
        match result {
            Err(e @ crate::transcode::StageError::Decode { .. }) => {
                stats.decode_errors.fetch_add(1, Relaxed);
                if !self.logged_decode_error {
                    warn!(
                        "{}; skipping to the next keyframe (further errors are only counted)",
                        e.in_stream(stream.ctx())
                    );
                    self.logged_decode_error = true;
                }
            }
            Err(e) => self.rung_error(stream, e),
            Ok(()) => {}
        }
    }

    /// Results a rung thread finished between packets.
    pub fn accept(&mut self, stream: &LiveStream, o: RungOutput, packager: &mut Option<Packaging>) {
        let accepted = self.run.handle_rung_output(o);
        self.take_outputs(stream, packager);
        if let Err(e) = accepted {
            self.rung_error(stream, e);
        }
        self.sync_drops();
    }

    /// Where the ladder's encoded frames go, drained after each call into
    /// it: counted per rung, then packaged and published.
    fn take_outputs(&mut self, stream: &LiveStream, packager: &mut Option<Packaging>) {
        // A measurement, not a decision: when each frame reached the
        // packager, after the encode (inline rungs encode inside the call
        // that gave the frame; the wake's `now` would hide that time).
        let stamp = crate::telemetry::clock::now;
        while let Some((i, f)) = self.run.poll_output() {
            count_output(&self.counters, i, &f, stream.started);
            if let Some(pk) = packager.as_mut() {
                let now = stamp();
                let published = pk.packager.rung_frame(i, &policy::picture(&f), now);
                pk.apply(published, now);
            }
        }
    }

    /// A rung's scale or encode error (counted per rung by the ladder): that
    /// rung alone skips to its next IDR. Logged once per ladder.
    fn rung_error(&mut self, stream: &LiveStream, e: crate::transcode::StageError) {
        if !self.logged_rung_error {
            warn!("{}; that rung skips to its next IDR, the other renditions go on (counted in ladderd_rung_errors_total; logged once per ladder)", e.in_stream(stream.ctx()));
            self.logged_rung_error = true;
        }
    }

    /// Copies each rung's own drop count (a rung thread behind) to its counters.
    fn sync_drops(&self) {
        for (((_, stats), c), before) in self
            .run
            .rungs()
            .zip(self.counters.iter())
            .zip(&self.behind_before)
        {
            c.dropped_behind
                .store(before.0 + stats.dropped_behind, Relaxed);
            c.errors.store(before.1 + stats.errors, Relaxed);
            c.dropped_error
                .store(before.2 + stats.dropped_error, Relaxed);
            c.dropped_drain
                .store(before.3 + self.run.dropped_after_drain(), Relaxed);
        }
    }

    /// The input paused: the pictures the decoder holds go to every rung,
    /// the replay up to `packets` packets per call
    /// (`LadderRun::handle_pause_step`); `LadderRun::draining` says
    /// whether it goes on.
    pub fn drain(&mut self, stream: &LiveStream, packager: &mut Option<Packaging>, packets: usize) {
        let stats = &stream.pipeline;
        let (decoded_before, drains_before) = (self.run.decoded, self.run.drains());
        let drained = self.run.handle_pause_step(packets);
        self.take_outputs(stream, packager);
        stats
            .frames_decoded
            .fetch_add(self.run.decoded - decoded_before, Relaxed);
        let drains = self.run.drains() - drains_before;
        stats.decoder_drains.fetch_add(drains, Relaxed);
        self.sync_drops();
        match drained {
            Ok(Some(pictures)) if pictures > 0 => {
                tracing::debug!(stream = %stream.name, pictures, "input paused: the pictures the decoder held went to every rung");
            }
            Ok(_) => {}
            // A rung's own scale or encode error: that rung skips to its
            // next IDR (counted by the ladder), the drain goes on.
            Err(e) if !matches!(e.stage(), crate::transcode::StageError::Decode { .. }) => {
                self.rung_error(stream, e)
            }
            Err(e) => {
                stats.decoder_drain_failures.fetch_add(1, Relaxed);
                if !self.logged_drain_error {
                    warn!("input paused, decoder drain: {}; the renditions wait for the next packets (counted in ladderd_decoder_drain_failures_total; logged once per ladder)", e.in_stream(stream.ctx()));
                    self.logged_drain_error = true;
                }
            }
        }
    }

    pub fn publish_latency(
        &mut self,
        stream: &LiveStream,
        packager: Option<&Packaging>,
        now: Instant,
    ) {
        let mut summary = self.run.latency_summary();
        if let Some(p) = packager {
            summary.histograms.extend(p.packager.latency_buckets());
        }
        *stream
            .pipeline
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = summary;
        self.last_latency_publish = now;
    }

    pub fn finish(&mut self, stream: &LiveStream, packager: &mut Option<Packaging>, now: Instant) {
        let decoded_before = self.run.decoded;
        let flushed = self.run.handle_end();
        // Each rung thread's last pictures are published as they come.
        self.take_outputs(stream, packager);
        // The last error, as the flush and the rung threads gave them.
        let finished = match (flushed, self.run.end_result()) {
            (_, Err(e)) | (Err(e), Ok(())) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        };
        if let Err(e) = finished {
            warn!("ladder flush: {}", e.in_stream(stream.ctx()));
        }
        self.sync_drops();
        stream
            .pipeline
            .frames_decoded
            .fetch_add(self.run.decoded - decoded_before, Relaxed);
        self.publish_latency(stream, packager.as_ref(), now);
    }
}

/// Accounts one encoded frame of rung `i`.
fn count_output(
    counters: &[RungCounters],
    i: usize,
    f: &EncodedFrame,
    started: std::time::Instant,
) {
    if let Some(c) = counters.get(i) {
        let t = f.arrival.saturating_duration_since(started);
        c.frames.fetch_add(1, Relaxed);
        c.keyframes.fetch_add(f.keyframe as u64, Relaxed);
        c.bytes.fetch_add(f.data.len() as u64, Relaxed);
        c.frame_rate.add(t, 1);
        c.byte_rate.add(t, f.data.len() as u64);
    }
}

/// Runs one ladder step with a panic (a codec library or driver binding gone
/// wrong) contained to this stream: logged with the stream and step, `None`.
pub fn contained<T>(stream: &LiveStream, step: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            tracing::error!(stream = %stream.name, step, "ladder failed: {what}; the stream continues without it (source rendition only)");
            None
        }
    }
}

/// Drops a failed ladder (its own drop contained too) and counts it.
pub fn stop_ladder(stream: &LiveStream, ladder: &mut Option<Running>) {
    stream.pipeline.ladder_failures.fetch_add(1, Relaxed);
    if let Some(l) = ladder.take() {
        let _ = contained(stream, "drop", move || drop(l));
    }
}
