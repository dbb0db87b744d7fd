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
//! behind. When ingest ends the stream the pipeline drains what is queued,
//! flushes the decoder, then files the session's final record.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use std::time::Duration;

use tracing::{info, warn};

use std::time::Instant;

use crate::config::Config;
use crate::media::h264::AvcConfig;
use crate::media::{CodecConfig, Packet, Track};
use crate::package::{PackagerConfig, Published, StreamPackager};
use crate::store::hot::{HotStore, StreamMedia};
use crate::stream::inputs::{Active, InputState, Switch};
use crate::stream::policy::{self, AudioRoute};
use crate::stream::registry::{EndReason, LiveStream, RungCounters};
use crate::stream::slate::Slate;
use crate::stream::Streams;
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
    behind_before: Vec<u64>,
    skipping_to_keyframe: bool,
    logged_decode_error: bool,
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
                    behind_before.push(c.dropped_behind.load(Relaxed));
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
        let late = p.arrival.elapsed() > max_lag;
        if late && !p.keyframe {
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
        let result = self
            .run
            .push(p, &mut rung_sink(&self.counters, stream.started, packager));
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
        if let Err(e) = result {
            stats.decode_errors.fetch_add(1, Relaxed);
            if !self.logged_decode_error {
                warn!(stream = %stream.name, "{e}; skipping to the next keyframe (further errors are only counted)");
                self.logged_decode_error = true;
            }
        }
    }

    /// Results a rung thread finished between packets.
    fn accept(&mut self, stream: &LiveStream, o: RungOutput, packager: &mut Option<Packaging>) {
        let accepted = self
            .run
            .accept(o, &mut rung_sink(&self.counters, stream.started, packager));
        if let Err(e) = accepted {
            warn!(stream = %stream.name, "{e}");
        }
        self.sync_drops();
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
                .store(before + stats.dropped_behind, Relaxed);
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
        let finished = self
            .run
            .finish(&mut rung_sink(&self.counters, stream.started, packager));
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

/// Where a ladder's encoded frames go: counted per rung, then packaged.
fn rung_sink<'a>(
    counters: &'a [RungCounters],
    started: std::time::Instant,
    packager: &'a mut Option<Packaging>,
) -> impl FnMut(usize, EncodedFrame) + 'a {
    move |i, f| {
        count_output(counters, i, &f, started);
        if let Some(pk) = packager.as_mut() {
            let published = pk
                .packager
                .rung_frame(i, &policy::picture(&f), Instant::now());
            pk.apply(published);
        }
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

/// One stream's pipeline across its inputs: the publisher, the slate while
/// nothing arrives, the next publisher of the NAME within the reconnect window.
struct StreamRun<'a> {
    ctx: &'a Driver,
    /// The publish followed now (its counters are the ones updated); the last
    /// one while none is attached.
    stream: Arc<LiveStream>,
    input: Option<flume::Receiver<Input>>,
    /// Why the attached publish ended, once it said so.
    ended: EndReason,
    /// The attached publish's session record was filed.
    filed: bool,
    inputs: Arc<InputState>,
    video_check: TrackCheck,
    audio_check: TrackCheck,
    ladder: Option<Running>,
    packager: Option<Packaging>,
    audio: Option<AudioRoute>,
    video_config: Option<AvcConfig>,
    /// The publisher's own video configuration and frame rate, for the
    /// slate's size and for going back to the publisher after it.
    publisher_video: Option<(AvcConfig, f64)>,
    /// A new publisher's audio configuration, held while the slate is on air.
    publisher_audio: Option<CodecConfig>,
    /// The rungs of a ladder flushed at an input switch, for the next one.
    rejoined_rungs: Option<Vec<Rung>>,
    packaging: PackagerConfig,
    max_lag: Duration,
    /// The publisher's last packet (or when it went away).
    last_input: Instant,
    slate: Option<(Slate, Instant)>,
    slate_failed: bool,
    last_latency_publish: Instant,
}

impl<'a> StreamRun<'a> {
    fn new(job: Job, ctx: &'a Driver) -> Self {
        let inputs = ctx.streams.registry.input(&job.stream.name);
        inputs.set_active(Active::Publisher);
        StreamRun {
            ctx,
            stream: job.stream,
            input: Some(job.input),
            ended: EndReason::PublisherClosed,
            filed: false,
            inputs,
            video_check: TrackCheck::default(),
            audio_check: TrackCheck::default(),
            ladder: None,
            packager: None,
            audio: None,
            video_config: None,
            publisher_video: None,
            publisher_audio: None,
            rejoined_rungs: None,
            packaging: PackagerConfig::from_config(&ctx.config),
            max_lag: Duration::from_secs_f64(ctx.config.ladder.max_lag_secs),
            last_input: Instant::now(),
            slate: None,
            slate_failed: false,
            last_latency_publish: Instant::now(),
        }
    }

    /// Every rendition goes on from a new input: the ladder is flushed (its
    /// rungs kept for the next), the clock re-bases after the last frame,
    /// and the next video configuration restarts the ladder.
    fn switch_input(&mut self, pdt: Option<u64>) {
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
        if let Some(p) = &mut self.packager {
            p.packager.rejoin(pdt);
        }
        self.video_config = None;
    }

    /// A new publisher of the NAME (within the reconnect window).
    fn attach(&mut self, job: Job) {
        info!(stream = %job.stream.name, id = job.stream.id, "publisher back within the reconnect window: playlists continue after a discontinuity");
        // With the slate on air it stays there until the publisher's first
        // packet (see `publisher`); else the media has a gap and program
        // date-time resumes at the wall clock.
        if self.slate.is_none() {
            self.inputs.set_active(Active::Publisher);
            self.switch_input(Some(unix_ms()));
        }
        self.stream = job.stream;
        self.input = Some(job.input);
        self.ended = EndReason::PublisherClosed;
        self.filed = false;
        self.video_check = TrackCheck::default();
        self.audio_check = TrackCheck::default();
        self.publisher_video = None;
        self.last_input = Instant::now();
    }

    /// Files the attached publish's record (once).
    fn file(&mut self) {
        if !self.filed {
            self.filed = true;
            self.ctx
                .streams
                .registry
                .finish(&self.stream, self.ended.clone());
        }
    }

    /// Input from the attached publisher.
    fn publisher(&mut self, input: Input) {
        match input {
            Input::End(reason) => self.ended = reason,
            // Held while the slate is on air, applied when the publisher's
            // first packet takes over from it.
            Input::Config(CodecConfig::Avc(cfg)) if self.slate.is_some() => {
                let fps = policy::source_fps(&cfg, self.stream.info().metadata.as_ref());
                self.publisher_video = Some((cfg, fps));
            }
            Input::Config(audio) if self.slate.is_some() => self.publisher_audio = Some(audio),
            Input::Packet(p) => {
                check_packet(
                    &self.stream,
                    &p,
                    &mut self.video_check,
                    &mut self.audio_check,
                );
                self.last_input = Instant::now();
                if self.slate.is_some() {
                    // The publisher is back: its own pictures again.
                    self.end_slate(Switch::InputReturned);
                    self.inputs.set_active(Active::Publisher);
                    self.switch_input(None);
                    if let Some(audio) = self.publisher_audio.take() {
                        self.handle(Input::Config(audio), false);
                    }
                    if let Some((cfg, _)) = self.publisher_video.clone() {
                        self.handle(Input::Config(CodecConfig::Avc(cfg)), false);
                    }
                }
                self.handle(Input::Packet(p), false);
            }
            config => self.handle(config, false),
        }
    }

    /// When the slate should go on air (None: it should not).
    fn slate_due(&self) -> Option<Instant> {
        let after = self.ctx.config.ingest.slate_after_ms;
        if after == 0
            || self.slate.is_some()
            || self.slate_failed
            || self.packager.is_none()
            || self.publisher_video.is_none()
            || self.ctx.shutdown.is_triggered()
        {
            return None;
        }
        Some(self.last_input + Duration::from_millis(after))
    }

    fn start_slate(&mut self, now: Instant) {
        let Some((cfg, fps)) = self.publisher_video.clone() else {
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
                info!(stream = %self.stream.name, after_ms = self.ctx.config.ingest.slate_after_ms, "no input: the slate is on air until the publisher is back");
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

    fn end_slate(&mut self, why: Switch) {
        if let Some((_, since)) = self.slate.take() {
            self.inputs.add_slate_ms(since.elapsed().as_millis() as u64);
            self.inputs.switched(why, Active::Publisher);
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
        for input in due {
            self.handle(input, true);
        }
    }

    /// When the loop must wake for the slate or the latency snapshot.
    fn next_wake(&self) -> Instant {
        let mut at = self.last_latency_publish + Duration::from_secs(1);
        if let Some((slate, _)) = &self.slate {
            at = at.min(slate.next_due());
        }
        if let Some(s) = self.slate_due() {
            at = at.min(s);
        }
        at
    }

    fn tick(&mut self, now: Instant) {
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

    /// One input, from the publisher or (`slate`) the slate.
    fn handle(&mut self, input: Input, slate: bool) {
        let ctx = self.ctx;
        let stream = self.stream.clone();
        let stats = &stream.pipeline;
        match input {
            Input::Config(CodecConfig::Avc(cfg)) => {
                let fps = if slate {
                    self.publisher_video.as_ref().map_or(30.0, |v| v.1)
                } else {
                    let fps = policy::source_fps(&cfg, stream.info().metadata.as_ref());
                    self.publisher_video = Some((cfg.clone(), fps));
                    fps
                };
                if self.video_config.as_ref() == Some(&cfg) {
                    return;
                }
                // A new video configuration within the publish (a new size, an
                // encoder restart, the slate): the rungs players hold go on, re-fitted.
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
                    info!(stream = %stream.name, source = %format!("{}x{}@{fps:.2}", cfg.width, cfg.height), slate, "new video configuration: every rendition continues after a discontinuity");
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
                        // The slate's silence is AAC in the rendition's own
                        // layout already: no re-encode.
                        (Track::Audio, Some(_)) if slate => {
                            let published = pk.packager.audio(&p, Instant::now());
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
            Input::End(reason) => self.ended = reason,
        }
    }

    /// End of the stream: the ladder flushed, every rendition ended.
    fn finish(mut self) {
        self.end_slate(Switch::InputReturned);
        if let Some(l) = &mut self.ladder {
            let stream = self.stream.clone();
            let packager = &mut self.packager;
            if contained(&stream, "finish", || l.finish(&stream, packager)).is_none() {
                stop_ladder(&stream, &mut self.ladder);
            }
        }
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
            reason = ?self.ended,
            "pipeline drained"
        );
        self.file();
    }
}

/// What woke a stream's driver.
enum Wake {
    Input(Result<Input, flume::RecvError>),
    Attach(Job),
    Output(RungOutput),
    Tick,
    Shutdown,
}

async fn run_stream(job: Job, ctx: &Driver) {
    let name = job.stream.name.clone();
    let window = Duration::from_secs_f64(ctx.config.ingest.reconnect_window_secs);
    let (attach_tx, attach_rx) = flume::unbounded::<Job>();
    let mut s = StreamRun::new(job, ctx);
    // Set while the publisher is gone and the NAME waits for the next one.
    let mut parked: Option<(u64, Instant)> = None;
    loop {
        let now = Instant::now();
        let mut wake_at = s.next_wake();
        if let Some((_, deadline)) = parked {
            wake_at = wake_at.min(deadline);
        }
        let outputs = s.ladder.as_ref().and_then(|l| l.run.output_receiver());
        let input = s.input.clone();
        let waiting = parked.is_some();
        let next = futures_lite::future::or(
            async {
                match &input {
                    Some(rx) => Wake::Input(rx.recv_async().await),
                    None => futures_lite::future::pending().await,
                }
            },
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
                        if !waiting {
                            return futures_lite::future::pending().await;
                        }
                        futures_lite::future::or(
                            async {
                                match attach_rx.recv_async().await {
                                    Ok(job) => Wake::Attach(job),
                                    Err(_) => futures_lite::future::pending().await,
                                }
                            },
                            async {
                                ctx.shutdown.wait().await;
                                Wake::Shutdown
                            },
                        )
                        .await
                    },
                    async {
                        glommio::timer::sleep(wake_at.saturating_duration_since(now)).await;
                        Wake::Tick
                    },
                ),
            ),
        )
        .await;
        match next {
            Wake::Input(Ok(input)) => {
                s.publisher(input);
                // Let the I/O side of this core breathe between frames.
                glommio::yield_if_needed().await;
            }
            Wake::Input(Err(_)) => {
                // The publisher is gone. Not kicked, not shutdown: the NAME
                // waits for the next one for the window, on the slate.
                s.input = None;
                let park = matches!(
                    s.ended,
                    EndReason::PublisherClosed | EndReason::Timeout | EndReason::Error(_)
                ) && !window.is_zero()
                    && !ctx.shutdown.is_triggered()
                    && s.packager.is_some();
                s.file();
                if !park {
                    break;
                }
                let token = ctx.streams.park(
                    &name,
                    Parked {
                        attach: attach_tx.clone(),
                        token: 0,
                    },
                );
                parked = Some((token, Instant::now() + window));
            }
            Wake::Attach(job) => {
                parked = None;
                s.attach(job);
            }
            Wake::Output(o) => s.output(o),
            Wake::Shutdown => {
                if let Some((token, _)) = parked {
                    ctx.streams.unpark_if(&name, token);
                }
                break;
            }
            Wake::Tick => {
                let now = Instant::now();
                if let Some((token, deadline)) = parked {
                    if now >= deadline {
                        if ctx.streams.unpark_if(&name, token).is_some() {
                            info!(stream = %name, "reconnect window over: the stream's renditions end");
                            break;
                        }
                        // A publisher took the parking just now: its job is on the way.
                        let job = futures_lite::future::or(
                            async { attach_rx.recv_async().await.ok() },
                            async {
                                glommio::timer::sleep(Duration::from_secs(1)).await;
                                None
                            },
                        )
                        .await;
                        match job {
                            Some(job) => {
                                parked = None;
                                s.attach(job);
                            }
                            None => break,
                        }
                        continue;
                    }
                }
                s.tick(now);
            }
        }
    }
    s.finish();
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
