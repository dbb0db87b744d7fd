//! The per-stream driver on a media core: ingest's packets → the ladder →
//! the packager → the store.
//!
//! Ingest hands each stream's packets over a bounded channel (backpressure
//! reaches the publisher's TCP window, never unbounded memory). The pipeline
//! checks the timeline invariants every later stage relies on, then runs the
//! ladder ([`LadderRun`]: decode once, scale and encode every rung, IDRs
//! aligned). Real-time policy: a packet that waited longer than
//! `ladder.max_lag_secs` makes the stream drop source frames up to its next
//! keyframe (counted per rung), so it catches up instead of falling further
//! behind. While the input pauses (no video for
//! `ingest.decoder_drain_after_ms`), the pictures the decoder holds for
//! reordering go to every rung ([`LadderRun::drain`]). When ingest ends the
//! stream the pipeline drains what is queued, flushes the decoder, then
//! files the session's final record.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use std::time::Duration;

use tracing::{info, warn};

use std::time::Instant;

use crate::config::Config;
use crate::config::Failback;
use crate::media::h264::AvcConfig;
use crate::media::{CodecConfig, Packet, Track};
use crate::package::{PackagerConfig, Published, StreamPackager};
use crate::store::hot::{HotStore, StreamMedia};
use crate::stream::inputs::{Active, InputState, Switch};
use crate::stream::pause::PauseWatch;
use crate::stream::policy::{self, AudioRoute};
use crate::stream::registry::{EndReason, LiveStream, RungCounters};
use crate::stream::slate::Slate;
use crate::stream::{Role, Streams};
use crate::telemetry::shutdown::Shutdown;
use crate::transcode::backend::Backend;
use crate::transcode::ladder::Rung;
use crate::transcode::ladder_run::{LadderRun, RungMode, RungOutput};
use crate::transcode::EncodedFrame;

/// What a media core's drivers share: built once by `runtime`.
pub struct Driver {
    pub config: Arc<Config>,
    pub store: Arc<HotStore>,
    pub backend: Backend,
    pub streams: Arc<Streams>,
    pub shutdown: Arc<Shutdown>,
}

/// A stream whose publisher went away, waiting (showing the slate) for the
/// next publisher of the same NAME within `ingest.reconnect_window_secs`: the
/// way to hand that publisher's [`Job`] to the driver still running it, so
/// the same renditions (playlists, media sequence, URIs) go on.
pub struct Parked {
    pub attach: flume::Sender<Job>,
    /// Tells this parking from a later one of the same NAME.
    pub token: u64,
}

/// A stream's packager and the store media it publishes into.
struct Packaging {
    packager: StreamPackager,
    media: Arc<StreamMedia>,
}

impl Packaging {
    /// End of stream: every rendition ends (`EXT-X-ENDLIST`).
    fn finish(mut self) {
        let published = self.packager.finish(Instant::now());
        self.apply(published);
    }

    fn apply(&self, published: Vec<Published>) {
        for p in published {
            self.media.apply(p);
        }
    }
}

/// What ingest sends down a stream's channel.
#[derive(Debug)]
pub enum Input {
    Config(CodecConfig),
    Packet(Packet),
    /// Ingest is done with the stream; no more input follows.
    End(EndReason),
}

/// One stream for a media core to run.
pub struct Job {
    pub stream: Arc<LiveStream>,
    pub input: flume::Receiver<Input>,
    pub role: Role,
    /// A new driver's token and the way later publishers of its NAME reach
    /// it (see `Streams::publish`); `None` for a publish handed to a running one.
    pub attach: Option<(u64, flume::Receiver<Job>)>,
}

/// Runs on each media core: starts a pipeline task per stream handed to it.
pub async fn media_core(jobs: flume::Receiver<Job>, ctx: Arc<Driver>) {
    let running = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let next = futures_lite::future::or(async { jobs.recv_async().await.ok() }, async {
            ctx.shutdown.wait().await;
            None
        })
        .await;
        let Some(job) = next else { break };
        let ctx = ctx.clone();
        let running = running.clone();
        running.set(running.get() + 1);
        glommio::spawn_local(async move {
            run_stream(job, &ctx).await;
            running.set(running.get() - 1);
        })
        .detach();
    }
    // Let running pipelines drain (ingest has closed their inputs on shutdown).
    while running.get() > 0 {
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Per-track timeline check: the invariants ingest promises downstream.
#[derive(Default)]
struct TrackCheck {
    last_dts: Option<i64>,
}

/// The ladder of one stream and where its output is counted.
struct Running {
    run: LadderRun,
    last_latency_publish: std::time::Instant,
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
    fn start(
        stream: &LiveStream,
        cfg: &AvcConfig,
        fps: f64,
        rungs: Vec<Rung>,
        ctx: &Driver,
    ) -> Option<Running> {
        let ladder = &ctx.config.ladder;
        let mode = if ladder.rung_threads {
            RungMode::Realtime {
                queue: ladder.rung_queue_frames,
            }
        } else {
            RungMode::Inline
        };
        match LadderRun::with_plan(cfg, fps, rungs, ladder.segment_secs, &ctx.backend, mode) {
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
                    last_latency_publish: std::time::Instant::now(),
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
                warn!(stream = %stream.name, "ladder not started: {e}");
                None
            }
        }
    }

    fn push(
        &mut self,
        stream: &LiveStream,
        p: &Packet,
        max_lag: Duration,
        packager: &mut Option<Packaging>,
    ) {
        let stats = &stream.pipeline;
        let lag = p.arrival.elapsed();
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
        if self.last_latency_publish.elapsed() >= Duration::from_secs(1) {
            self.publish_latency(stream, packager.as_ref());
        }
        match result {
            Err(e @ crate::transcode::StageError::Decode { .. }) => {
                stats.decode_errors.fetch_add(1, Relaxed);
                if !self.logged_decode_error {
                    warn!(stream = %stream.name, "{e}; skipping to the next keyframe (further errors are only counted)");
                    self.logged_decode_error = true;
                }
            }
            Err(e) => self.rung_error(stream, &e),
            Ok(()) => {}
        }
    }

    /// Results a rung thread finished between packets.
    fn accept(&mut self, stream: &LiveStream, o: RungOutput, packager: &mut Option<Packaging>) {
        let accepted = self.run.handle_rung_output(o);
        self.take_outputs(stream, packager);
        if let Err(e) = accepted {
            self.rung_error(stream, &e);
        }
        self.sync_drops();
    }

    /// Where the ladder's encoded frames go, drained after each call into
    /// it: counted per rung, then packaged and published.
    fn take_outputs(&mut self, stream: &LiveStream, packager: &mut Option<Packaging>) {
        while let Some((i, f)) = self.run.poll_output() {
            count_output(&self.counters, i, &f, stream.started);
            if let Some(pk) = packager.as_mut() {
                let published = pk
                    .packager
                    .rung_frame(i, &policy::picture(&f), Instant::now());
                pk.apply(published);
            }
        }
    }

    /// A rung's scale or encode error (counted per rung by the ladder): that
    /// rung alone skips to its next IDR. Logged once per ladder.
    fn rung_error(&mut self, stream: &LiveStream, e: &crate::transcode::StageError) {
        if !self.logged_rung_error {
            warn!(stream = %stream.name, "{e}; that rung skips to its next IDR, the other renditions go on (counted in ladderd_rung_errors_total; logged once per ladder)");
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

    /// The input paused: the pictures the decoder holds go to every rung.
    fn drain(&mut self, stream: &LiveStream, packager: &mut Option<Packaging>) {
        let stats = &stream.pipeline;
        let decoded_before = self.run.decoded;
        let drained = self.run.handle_pause();
        self.take_outputs(stream, packager);
        stats
            .frames_decoded
            .fetch_add(self.run.decoded - decoded_before, Relaxed);
        self.sync_drops();
        match drained {
            Ok(0) => {}
            Ok(pictures) => {
                stats.decoder_drains.fetch_add(1, Relaxed);
                tracing::debug!(stream = %stream.name, pictures, "input paused: the pictures the decoder held went to every rung");
            }
            Err(e) => {
                stats.decoder_drain_failures.fetch_add(1, Relaxed);
                if !self.logged_drain_error {
                    warn!(stream = %stream.name, "input paused, decoder drain: {e}; the renditions wait for the next packets (counted in ladderd_decoder_drain_failures_total; logged once per ladder)");
                    self.logged_drain_error = true;
                }
            }
        }
    }

    fn publish_latency(&mut self, stream: &LiveStream, packager: Option<&Packaging>) {
        let mut summary = self.run.latency_summary();
        if let Some(p) = packager {
            summary.histograms.extend(p.packager.latency_buckets());
        }
        *stream
            .pipeline
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = summary;
        self.last_latency_publish = std::time::Instant::now();
    }

    fn finish(&mut self, stream: &LiveStream, packager: &mut Option<Packaging>) {
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
            warn!(stream = %stream.name, "ladder flush: {e}");
        }
        self.sync_drops();
        stream
            .pipeline
            .frames_decoded
            .fetch_add(self.run.decoded - decoded_before, Relaxed);
        self.publish_latency(stream, packager.as_ref());
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

/// One publisher's input as the driver holds it.
struct Feed {
    role: Role,
    stream: Arc<LiveStream>,
    input: flume::Receiver<Input>,
    /// Why the publish ended, once it said so.
    ended: EndReason,
    video_check: TrackCheck,
    audio_check: TrackCheck,
    /// Its latest video configuration and frame rate.
    video: Option<(AvcConfig, f64)>,
    /// Its latest audio configuration.
    audio: Option<CodecConfig>,
    /// Its latest packet (or when it attached).
    last_input: Instant,
    /// Off air: its packets since its latest video keyframe, replayed (re-timed)
    /// when it goes on air, so the switch needs no wait for a keyframe.
    gop: Vec<Packet>,
}

/// A feed's packets kept off air, at most (a GOP of a few seconds, with audio).
const GOP_PACKETS: usize = 4000;

impl Feed {
    fn new(job: Job) -> Feed {
        Feed {
            role: job.role,
            stream: job.stream,
            input: job.input,
            ended: EndReason::PublisherClosed,
            video_check: TrackCheck::default(),
            audio_check: TrackCheck::default(),
            video: None,
            audio: None,
            last_input: Instant::now(),
            gop: Vec::new(),
        }
    }

    fn record(&mut self, p: &Packet) {
        check_packet(
            &self.stream,
            p,
            &mut self.video_check,
            &mut self.audio_check,
        );
        self.last_input = Instant::now();
    }

    /// Off air: keeps the packets from its latest video keyframe on.
    fn keep(&mut self, p: Packet) {
        if p.track == Track::Video && p.keyframe {
            self.gop.clear();
        }
        if (!self.gop.is_empty() || (p.track == Track::Video && p.keyframe))
            && self.gop.len() < GOP_PACKETS
        {
            self.gop.push(p);
        }
    }

    /// Whether it can go on air now: recent input and a keyframe to start on.
    fn ready(&self, now: Instant, fresh: Duration) -> bool {
        now.saturating_duration_since(self.last_input) < fresh
            && self.video.is_some()
            && !self.gop.is_empty()
    }

    fn active(&self) -> Active {
        match self.role {
            Role::Primary => Active::Publisher,
            Role::Backup => Active::Backup,
        }
    }
}

/// One stream's pipeline across its inputs: the publisher, a backup beside
/// it, the slate while nothing arrives, the next publisher of the NAME within
/// the reconnect window.
struct StreamRun<'a> {
    ctx: &'a Driver,
    /// The on-air feed's publish (its counters are the ones updated); the
    /// last one while none is on air.
    stream: Arc<LiveStream>,
    /// The feed the renditions follow (with the slate on air too: attached,
    /// not yet sending).
    on_air: Option<Feed>,
    /// The other feed: a backup, or the primary waiting to take over again.
    standby: Option<Feed>,
    inputs: Arc<InputState>,
    ladder: Option<Running>,
    packager: Option<Packaging>,
    audio: Option<AudioRoute>,
    video_config: Option<AvcConfig>,
    /// The last on-air video configuration and frame rate (the slate's size).
    last_video: Option<(AvcConfig, f64)>,
    /// The rungs of a ladder flushed at an input switch, for the next one.
    rejoined_rungs: Option<Vec<Rung>>,
    packaging: PackagerConfig,
    max_lag: Duration,
    /// The renditions' last input from a publisher.
    last_input: Instant,
    slate: Option<(Slate, Instant)>,
    slate_failed: bool,
    last_latency_publish: Instant,
    /// When the ladder's held pictures are due out (the input paused).
    pause: PauseWatch,
}

impl<'a> StreamRun<'a> {
    fn new(job: Job, ctx: &'a Driver) -> Self {
        let inputs = ctx.streams.registry.input(&job.stream.name);
        let feed = Feed::new(job);
        inputs.set_active(feed.active());
        StreamRun {
            ctx,
            stream: feed.stream.clone(),
            on_air: Some(feed),
            standby: None,
            inputs,
            ladder: None,
            packager: None,
            audio: None,
            video_config: None,
            last_video: None,
            rejoined_rungs: None,
            packaging: PackagerConfig::from_config(&ctx.config),
            max_lag: Duration::from_secs_f64(ctx.config.ladder.max_lag_secs),
            last_input: Instant::now(),
            slate: None,
            slate_failed: false,
            last_latency_publish: Instant::now(),
            pause: PauseWatch::new(ctx.config.ingest.decoder_drain_after_ms),
        }
    }

    fn failover_after(&self) -> Duration {
        Duration::from_millis(self.ctx.config.ingest.failover_after_ms)
    }

    /// Every rendition goes on from a new input: the ladder is flushed (its
    /// rungs kept for the next), the clock re-bases after the last frame,
    /// and the next video configuration restarts the ladder.
    fn switch_input(&mut self, pdt: Option<u64>) {
        self.flush_ladder();
        if let Some(p) = &mut self.packager {
            p.packager.rejoin(pdt);
        }
        self.video_config = None;
    }

    /// The ladder gives out every picture it holds (the decoder's reorder
    /// delay, the rungs' queues) and stops; its rungs are kept for the next.
    fn flush_ladder(&mut self) {
        self.pause.clear();
        if let Some(l) = &mut self.ladder {
            let stream = self.stream.clone();
            let packager = &mut self.packager;
            if contained(&stream, "finish", || l.finish(&stream, packager)).is_none() {
                stop_ladder(&stream, &mut self.ladder);
            }
        }
        if let Some(l) = self.ladder.take() {
            self.rejoined_rungs = Some(l.run.rungs().map(|(r, _)| r.clone()).collect());
        }
    }

    /// Files a feed's session record.
    fn file(&self, feed: &Feed) {
        self.ctx
            .streams
            .registry
            .finish(&feed.stream, feed.ended.clone());
    }

    /// A publisher of the NAME reached the running driver: a reconnect within
    /// the window, a backup, or a primary back beside its backup.
    fn attach(&mut self, job: Job) {
        let feed = Feed::new(job);
        info!(stream = %feed.stream.name, id = feed.stream.id, role = ?feed.role, "publisher joins the running stream");
        let on_air_role = self.on_air.as_ref().map(|f| f.role);
        match (feed.role, on_air_role) {
            // No feed on air, or this one replaces the one on air (takeover).
            (_, None) => self.put_on_air(feed),
            (role, Some(current)) if role == current => {
                if let Some(mut old) = self.on_air.take() {
                    old.ended = EndReason::TakenOver;
                    self.file(&old);
                }
                self.put_on_air(feed);
            }
            // The other role: it waits beside the one on air.
            _ => {
                if let Some(mut old) = self.standby.take() {
                    old.ended = EndReason::TakenOver;
                    self.file(&old);
                }
                self.standby = Some(feed);
            }
        }
    }

    /// A joining feed goes on air. With the slate on air it stays there
    /// until the feed's first packet (see `from_on_air`); else the media has
    /// a gap and program date-time resumes at the wall clock.
    fn put_on_air(&mut self, feed: Feed) {
        self.stream = feed.stream.clone();
        if self.slate.is_none() {
            self.inputs.set_active(feed.active());
            if self.packager.is_some() {
                self.switch_input(Some(unix_ms()));
            }
        }
        self.on_air = Some(feed);
    }

    /// Input from the feed on air.
    fn from_on_air(&mut self, input: Input) {
        let Some(feed) = self.on_air.as_mut() else {
            return;
        };
        // A keyframe's in-band SPS that changes size, profile or level is a
        // new configuration, as a new sequence header would be (RTMP carries
        // no other sign of it; the TS demuxer announces its own).
        if let (Input::Packet(p), Some((cfg, _))) = (&input, &feed.video) {
            if p.track == Track::Video && p.keyframe {
                if let Some(next) = cfg.in_band_change(&p.data) {
                    info!(stream = %feed.stream.name, from = %format!("{}x{} {}", cfg.width, cfg.height, cfg.codec_string()), to = %format!("{}x{} {}", next.width, next.height, next.codec_string()), "in-band SPS changes the video configuration");
                    feed.stream
                        .pipeline
                        .in_band_reconfigurations
                        .fetch_add(1, Relaxed);
                    self.from_on_air(Input::Config(CodecConfig::Avc(next)));
                    return self.from_on_air(input);
                }
            }
        }
        let Some(feed) = self.on_air.as_mut() else {
            return;
        };
        match input {
            Input::End(reason) => feed.ended = reason,
            Input::Config(CodecConfig::Avc(cfg)) => {
                let fps = policy::source_fps(&cfg, feed.stream.info().metadata.as_ref());
                feed.video = Some((cfg.clone(), fps));
                // Held while the slate is on air, applied when the feed's
                // first packet takes over from it.
                if self.slate.is_none() {
                    self.last_video = Some((cfg.clone(), fps));
                    self.handle(Input::Config(CodecConfig::Avc(cfg)), Some(fps));
                }
            }
            Input::Config(audio) => {
                feed.audio = Some(audio.clone());
                if self.slate.is_none() {
                    self.handle(Input::Config(audio), None);
                }
            }
            Input::Packet(p) => {
                feed.record(&p);
                self.last_input = feed.last_input;
                if p.track == Track::Video {
                    self.pause.video(feed.last_input);
                }
                if self.slate.is_some() {
                    // The publisher is back: its own pictures again.
                    let (video, audio, active) =
                        (feed.video.clone(), feed.audio.clone(), feed.active());
                    self.end_slate(Switch::InputReturned, active);
                    self.switch_input(None);
                    self.apply_configs(video, audio);
                }
                self.handle(Input::Packet(p), None);
            }
        }
    }

    fn apply_configs(&mut self, video: Option<(AvcConfig, f64)>, audio: Option<CodecConfig>) {
        if let Some(audio) = audio {
            self.handle(Input::Config(audio), None);
        }
        if let Some((cfg, fps)) = video {
            self.last_video = Some((cfg.clone(), fps));
            self.handle(Input::Config(CodecConfig::Avc(cfg)), Some(fps));
        }
    }

    /// Input from the feed off air: counted, configurations and the latest
    /// GOP kept.
    fn from_standby(&mut self, input: Input) {
        let Some(feed) = self.standby.as_mut() else {
            return;
        };
        match input {
            Input::End(reason) => feed.ended = reason,
            Input::Config(CodecConfig::Avc(cfg)) => {
                let fps = policy::source_fps(&cfg, feed.stream.info().metadata.as_ref());
                feed.video = Some((cfg, fps));
                feed.gop.clear();
            }
            Input::Config(audio) => feed.audio = Some(audio),
            Input::Packet(p) => {
                feed.record(&p);
                feed.keep(p);
            }
        }
    }

    /// The feed off air goes on air (`why`): re-timed to go on right after
    /// the last frame, from its latest keyframe.
    fn swap(&mut self, why: Switch) {
        let Some(mut next) = self.standby.take() else {
            return;
        };
        let from = self.on_air.as_ref().map(|f| f.role);
        info!(stream = %next.stream.name, from = ?from, to = ?next.role, reason = why.label(), "input switch");
        if let Some((_, since)) = self.slate.take() {
            self.inputs.add_slate_ms(since.elapsed().as_millis() as u64);
        }
        self.switch_input(None);
        self.stream = next.stream.clone();
        let gop = std::mem::take(&mut next.gop);
        let (video, audio) = (next.video.clone(), next.audio.clone());
        self.inputs.switched(why, next.active());
        self.last_input = next.last_input;
        self.standby = self.on_air.replace(next);
        if let Some(old) = &mut self.standby {
            old.gop.clear();
        }
        self.apply_configs(video, audio);
        // Re-timed, so not late: the ladder must not skip them (max_lag).
        let now = Instant::now();
        for mut p in gop {
            p.arrival = now;
            self.handle(Input::Packet(p), None);
        }
    }

    /// When the slate should go on air (None: it should not).
    fn slate_due(&self) -> Option<Instant> {
        let after = self.ctx.config.ingest.slate_after_ms;
        if after == 0
            || self.slate.is_some()
            || self.slate_failed
            || self.packager.is_none()
            || self.last_video.is_none()
            || self.ctx.shutdown.is_triggered()
        {
            return None;
        }
        Some(self.last_input + Duration::from_millis(after))
    }

    fn start_slate(&mut self, now: Instant) {
        let Some((cfg, fps)) = self.last_video.clone() else {
            return;
        };
        let asc = self.audio.as_ref().and_then(|a| a.config());
        // The slate's clock starts where the input stopped: its first
        // `slate_after_ms` go out at once, so the renditions' media keeps up
        // with the wall clock and a player's buffer does not run dry.
        let from = self.last_input.min(now);
        let made = Slate::new(
            &self.stream.name,
            (cfg.width, cfg.height),
            fps,
            self.ctx.config.ladder.segment_secs,
            asc,
            self.stream.id,
            from,
        );
        match made {
            Ok(slate) => {
                info!(stream = %self.stream.name, after_ms = self.ctx.config.ingest.slate_after_ms, "no input: the slate is on air until a publisher is back");
                self.inputs.switched(Switch::InputLost, Active::Slate);
                self.switch_input(None);
                self.slate = Some((slate, now));
            }
            Err(e) => {
                warn!(stream = %self.stream.name, "slate unavailable: {e}; players wait for input");
                self.slate_failed = true;
            }
        }
    }

    fn end_slate(&mut self, why: Switch, to: Active) {
        if let Some((_, since)) = self.slate.take() {
            self.inputs.add_slate_ms(since.elapsed().as_millis() as u64);
            self.inputs.switched(why, to);
            info!(stream = %self.stream.name, "slate off air: {}", why.label());
        }
    }

    /// The slate's pictures and silence due by `now`.
    fn slate_step(&mut self, now: Instant) {
        let Some((slate, _)) = &mut self.slate else {
            return;
        };
        let mut due = Vec::new();
        if let Err(e) = slate.due(now, &mut due) {
            warn!(stream = %self.stream.name, "slate stopped: {e}");
            self.slate = None;
            self.slate_failed = true;
            return;
        }
        let fps = self.last_video.as_ref().map(|v| v.1);
        for input in due {
            self.handle_slate(input, fps);
        }
    }

    /// When the loop must wake: the slate, a failover check, the latency snapshot.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut at = self.last_latency_publish + Duration::from_secs(1);
        if let Some((slate, _)) = &self.slate {
            at = at.min(slate.next_due());
        }
        if let Some(s) = self.slate_due() {
            at = at.min(s);
        }
        if self.standby.is_some() {
            at = at.min(now + Duration::from_millis(100));
        }
        if let Some(d) = self.drain_due() {
            at = at.min(d);
        }
        at
    }

    /// When the ladder's held pictures are due out: the input on air paused
    /// (not while the slate feeds the ladder).
    fn drain_due(&self) -> Option<Instant> {
        if self.slate.is_some() || self.ladder.is_none() {
            return None;
        }
        self.pause.due()
    }

    /// Failover and failback between the two feeds.
    fn choose_feed(&mut self, now: Instant) {
        let fresh = self.failover_after();
        let Some(standby) = &self.standby else {
            return;
        };
        if !standby.ready(now, fresh) {
            return;
        }
        let on_air_silent = self
            .on_air
            .as_ref()
            .is_none_or(|f| now.saturating_duration_since(f.last_input) >= fresh)
            || (self.slate.is_some() && self.on_air.is_none());
        let failback_wanted = standby.role == Role::Primary
            && (self.ctx.config.ingest.failback == Failback::Auto
                || self.inputs.take_failback_request());
        if on_air_silent {
            let why = match standby.role {
                Role::Backup => Switch::Failover,
                Role::Primary => Switch::Failback,
            };
            self.swap(why);
        } else if failback_wanted {
            self.swap(Switch::Failback);
        }
    }

    fn tick(&mut self, now: Instant) {
        self.choose_feed(now);
        if self.drain_due().is_some() && self.pause.poll(now) {
            if let Some(l) = &mut self.ladder {
                let stream = self.stream.clone();
                let packager = &mut self.packager;
                if contained(&stream, "drain", || l.drain(&stream, packager)).is_none() {
                    stop_ladder(&stream, &mut self.ladder);
                }
            }
        }
        if self.slate_due().is_some_and(|at| at <= now) {
            self.start_slate(now);
        }
        self.slate_step(now);
        if now >= self.last_latency_publish + Duration::from_secs(1) {
            if let Some(l) = &mut self.ladder {
                l.publish_latency(&self.stream, self.packager.as_ref());
            }
            self.last_latency_publish = now;
        }
    }

    fn output(&mut self, o: RungOutput) {
        if let Some(l) = &mut self.ladder {
            let stream = self.stream.clone();
            let packager = &mut self.packager;
            if contained(&stream, "accept", || l.accept(&stream, o, packager)).is_none() {
                stop_ladder(&stream, &mut self.ladder);
            }
        }
    }

    /// One input from the slate: its audio goes to the packager as it is.
    fn handle_slate(&mut self, input: Input, fps: Option<f64>) {
        match input {
            Input::Packet(p) if p.track == Track::Audio => {
                if let (Some(pk), Some(_)) = (&mut self.packager, &self.audio) {
                    // Silence in the rendition's own layout: no re-encode.
                    let published = pk.packager.audio(&p, Instant::now());
                    pk.apply(published);
                }
            }
            other => self.handle(other, fps),
        }
    }

    /// One input on air. `fps`: a video configuration's frame rate.
    fn handle(&mut self, input: Input, fps: Option<f64>) {
        if let (Input::Config(CodecConfig::Avc(_)), Some(fps)) = (&input, fps) {
            self.pause.set_fps(fps);
        }
        let ctx = self.ctx;
        let stream = self.stream.clone();
        let stats = &stream.pipeline;
        match input {
            Input::Config(CodecConfig::Avc(cfg)) => {
                let fps = fps
                    .unwrap_or_else(|| policy::source_fps(&cfg, stream.info().metadata.as_ref()));
                if self.video_config.as_ref() == Some(&cfg) {
                    return;
                }
                // A new video configuration (a new size, an encoder restart,
                // another input): the rungs players hold go on, re-fitted.
                let previous: Option<Vec<Rung>> = self
                    .ladder
                    .as_ref()
                    .filter(|_| self.packager.is_some())
                    .map(|l| l.run.rungs().map(|(r, _)| r.clone()).collect())
                    .or_else(|| self.rejoined_rungs.take());
                let rungs = policy::rungs_for(&ctx.config.ladder, previous.as_deref(), &cfg, fps);
                if let Some(l) = &mut self.ladder {
                    l.finish(&stream, &mut self.packager);
                }
                self.ladder = None;
                if ctx.config.ladder.enabled {
                    self.ladder = contained(&stream, "start", || {
                        Running::start(&stream, &cfg, fps, rungs, ctx)
                    })
                    .flatten();
                    if self.ladder.is_none() {
                        stats.ladder_failures.fetch_add(1, Relaxed);
                    }
                }
                let running: Vec<Rung> = self
                    .ladder
                    .as_ref()
                    .map(|l| l.run.rungs().map(|(r, _)| r.clone()).collect())
                    .unwrap_or_default();
                if let Some(p) = &mut self.packager {
                    // Same store, same playlists: new inits and a discontinuity.
                    info!(stream = %stream.name, source = %format!("{}x{}@{fps:.2}", cfg.width, cfg.height), "new video configuration: every rendition continues after a discontinuity");
                    let published = p.packager.reconfigure(
                        &cfg,
                        fps,
                        policy::rung_infos(&running),
                        Instant::now(),
                    );
                    p.apply(published);
                    self.video_config = Some(cfg);
                    return;
                }
                let mut p = StreamPackager::new(
                    &self.packaging,
                    &stream.name,
                    stream.started_unix_ms,
                    &cfg,
                    fps,
                );
                let media = ctx
                    .store
                    .open(&stream.name, stream.id, p.timing(), p.group());
                let mut published = p.take();
                if let Some(a) = self.audio.as_ref().and_then(|a| a.config()) {
                    published.extend(p.set_audio(a));
                }
                if self.ladder.is_some() {
                    published.extend(p.set_rungs(policy::rung_infos(&running), Instant::now()));
                }
                let p = Packaging { packager: p, media };
                p.apply(published);
                self.packager = Some(p);
                self.video_config = Some(cfg);
            }
            Input::Config(config @ (CodecConfig::Aac(_) | CodecConfig::Mp3(_))) => {
                let (route, note) = AudioRoute::choose(&config, &ctx.config.ladder);
                let kbps = ctx.config.ladder.audio_kbps;
                match (&route, &config, note) {
                    (_, _, Some(note)) => warn!(stream = %stream.name, "{note}"),
                    (AudioRoute::Reencode(_), CodecConfig::Mp3(m), None) => {
                        info!(stream = %stream.name, sample_rate = m.sample_rate, channels = m.channels, kbps, "MP3 audio re-encoded as AAC")
                    }
                    (AudioRoute::Reencode(_), _, None) => {
                        info!(stream = %stream.name, kbps, "audio re-encoded")
                    }
                    _ => {}
                }
                if let (Some(p), Some(asc)) = (&mut self.packager, route.config()) {
                    let published = p.packager.set_audio(asc);
                    p.apply(published);
                }
                self.audio = Some(route);
            }
            Input::Packet(p) => {
                if ctx.shutdown.is_triggered() {
                    // On shutdown, drain quickly: account, do not encode.
                    return;
                }
                if let Some(pk) = &mut self.packager {
                    match (p.track, &mut self.audio) {
                        (Track::Video, _) => {
                            let published = pk.packager.source_video(&p, Instant::now());
                            pk.apply(published);
                        }
                        (Track::Audio, Some(route)) => {
                            let pushed = route.push(&p, &mut |o| {
                                let published = pk.packager.audio(o, Instant::now());
                                pk.apply(published);
                            });
                            if let Err(e) = pushed {
                                warn!(stream = %stream.name, pts = p.pts, "audio re-encode: {e}");
                            }
                        }
                        (Track::Audio, None) => {}
                    }
                }
                if p.track == Track::Video {
                    if let Some(l) = &mut self.ladder {
                        let packager = &mut self.packager;
                        let max_lag = self.max_lag;
                        if contained(&stream, "push", || l.push(&stream, &p, max_lag, packager))
                            .is_none()
                        {
                            stop_ladder(&stream, &mut self.ladder);
                        }
                    }
                }
            }
            Input::End(_) => {}
        }
    }

    /// End of the stream: the ladder flushed, every rendition ended.
    fn finish(mut self) {
        if let Some((_, since)) = self.slate.take() {
            self.inputs.add_slate_ms(since.elapsed().as_millis() as u64);
        }
        self.flush_ladder();
        if let Some(p) = self.packager.take() {
            let name = self.stream.name.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.finish())).is_err() {
                tracing::error!(stream = %name, "packager failed while ending the stream");
            }
        }
        self.inputs.set_active(Active::None);
        let stats = &self.stream.pipeline;
        info!(
            stream = %self.stream.name,
            id = self.stream.id,
            packets = stats.packets.load(Relaxed),
            frames_decoded = stats.frames_decoded.load(Relaxed),
            "pipeline drained"
        );
        for f in [self.on_air.take(), self.standby.take()]
            .into_iter()
            .flatten()
        {
            self.file(&f);
        }
    }
}

/// What woke a stream's driver.
enum Wake {
    OnAir(Result<Input, flume::RecvError>),
    Standby(Result<Input, flume::RecvError>),
    Attach(Job),
    Output(RungOutput),
    Tick,
    Shutdown,
}

async fn recv_or_pending(rx: Option<flume::Receiver<Input>>) -> Result<Input, flume::RecvError> {
    match rx {
        Some(rx) => rx.recv_async().await,
        None => futures_lite::future::pending().await,
    }
}

async fn run_stream(mut job: Job, ctx: &Driver) {
    let name = job.stream.name.clone();
    let window = Duration::from_secs_f64(ctx.config.ingest.reconnect_window_secs);
    let (token, attach_rx) = match job.attach.take() {
        Some(a) => a,
        None => (0, flume::unbounded().1),
    };
    let mut s = StreamRun::new(job, ctx);
    // Set while no publisher is attached: the NAME waits for the next one.
    let mut deadline: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut wake_at = s.next_wake(now);
        if let Some(d) = deadline {
            wake_at = wake_at.min(d);
        }
        let outputs = s.ladder.as_ref().and_then(|l| l.run.output_receiver());
        let on_air = s.on_air.as_ref().map(|f| f.input.clone());
        let standby = s.standby.as_ref().map(|f| f.input.clone());
        let waiting = deadline.is_some();
        let next = futures_lite::future::or(
            async { Wake::OnAir(recv_or_pending(on_air).await) },
            futures_lite::future::or(
                async { Wake::Standby(recv_or_pending(standby).await) },
                futures_lite::future::or(
                    async {
                        match &outputs {
                            Some(rx) => match rx.recv_async().await {
                                Ok(o) => Wake::Output(o),
                                Err(_) => futures_lite::future::pending().await,
                            },
                            None => futures_lite::future::pending().await,
                        }
                    },
                    futures_lite::future::or(
                        async {
                            match attach_rx.recv_async().await {
                                Ok(job) => Wake::Attach(job),
                                Err(_) => futures_lite::future::pending().await,
                            }
                        },
                        futures_lite::future::or(
                            async {
                                if !waiting {
                                    return futures_lite::future::pending().await;
                                }
                                ctx.shutdown.wait().await;
                                Wake::Shutdown
                            },
                            async {
                                glommio::timer::sleep(wake_at.saturating_duration_since(now)).await;
                                Wake::Tick
                            },
                        ),
                    ),
                ),
            ),
        )
        .await;
        match next {
            Wake::OnAir(Ok(input)) => {
                s.from_on_air(input);
                // Let the I/O side of this core breathe between frames.
                glommio::yield_if_needed().await;
            }
            Wake::Standby(Ok(input)) => s.from_standby(input),
            Wake::OnAir(Err(_)) => {
                if let Some(f) = s.on_air.take() {
                    // Its session record counts every picture it sent.
                    s.flush_ladder();
                    s.file(&f);
                    let parkable = matches!(
                        f.ended,
                        EndReason::PublisherClosed | EndReason::Timeout | EndReason::Error(_)
                    );
                    // Kicked or shut down, with no backup: the renditions
                    // end, unless the publisher that took over is already
                    // queued for this driver: it goes on with them.
                    if !parkable && s.standby.is_none() {
                        if ctx.shutdown.is_triggered() {
                            break;
                        }
                        match ctx.streams.retire(&name, token, &attach_rx) {
                            Some(job) => s.attach(job),
                            None => break,
                        }
                    }
                }
                // The backup (if any) takes over at the next tick.
            }
            Wake::Standby(Err(_)) => {
                if let Some(f) = s.standby.take() {
                    s.file(&f);
                }
            }
            Wake::Attach(job) => {
                deadline = None;
                s.attach(job);
            }
            Wake::Output(o) => s.output(o),
            Wake::Shutdown => break,
            Wake::Tick => {
                let now = Instant::now();
                if let Some(d) = deadline {
                    if now >= d {
                        match ctx.streams.retire(&name, token, &attach_rx) {
                            Some(job) => {
                                deadline = None;
                                s.attach(job);
                                continue;
                            }
                            None => {
                                info!(stream = %name, "reconnect window over: the stream's renditions end");
                                break;
                            }
                        }
                    }
                }
                s.tick(now);
            }
        }
        if s.on_air.is_none() && s.standby.is_none() && deadline.is_none() {
            // Nobody publishes: the NAME waits for the window, on the slate.
            if window.is_zero() || ctx.shutdown.is_triggered() || s.packager.is_none() {
                break;
            }
            deadline = Some(Instant::now() + window);
        }
    }
    // Whatever publish reached the driver as it ended gets a driver of its
    // own (it would otherwise wait on a channel nobody reads); at shutdown
    // it ends.
    let orphan = ctx.streams.retire(&name, token, &attach_rx);
    s.finish();
    // The ladder's pictures and queues went with `s`: hand the pages back.
    crate::telemetry::memory::release_free_heap();
    if let Some(job) = orphan {
        if ctx.shutdown.is_triggered() {
            ctx.streams.registry.release(&job.stream);
        } else {
            ctx.streams.adopt(job);
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs one ladder step with a panic (a codec library or driver binding gone
/// wrong) contained to this stream: logged with the stream and step, `None`.
fn contained<T>(stream: &LiveStream, step: &str, f: impl FnOnce() -> T) -> Option<T> {
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
fn stop_ladder(stream: &LiveStream, ladder: &mut Option<Running>) {
    stream.pipeline.ladder_failures.fetch_add(1, Relaxed);
    if let Some(l) = ladder.take() {
        let _ = contained(stream, "drop", move || drop(l));
    }
}

fn check_packet(stream: &LiveStream, p: &Packet, video: &mut TrackCheck, audio: &mut TrackCheck) {
    let stats = &stream.pipeline;
    stats.packets.fetch_add(1, Relaxed);
    let check = match p.track {
        Track::Video => {
            stats.video_packets.fetch_add(1, Relaxed);
            video
        }
        Track::Audio => {
            stats.audio_packets.fetch_add(1, Relaxed);
            audio
        }
    };
    if p.pts < p.dts {
        stats.pts_before_dts.fetch_add(1, Relaxed);
    }
    if check.last_dts.is_some_and(|last| p.dts < last)
        && stats.dts_regressions.fetch_add(1, Relaxed) == 0
    {
        warn!(stream = %stream.name, track = ?p.track, dts = p.dts, "dts went backwards");
    }
    if p.discontinuity {
        stats.discontinuities.fetch_add(1, Relaxed);
    }
    check.last_dts = Some(p.dts);
}
