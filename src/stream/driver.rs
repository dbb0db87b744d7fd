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
use crate::stream::policy::{self, AudioRoute};
use crate::stream::registry::{EndReason, LiveStream, RungCounters};
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

/// What a stream leaves behind when its publisher goes away, for the next
/// publisher of the same NAME within `ingest.reconnect_window_secs`: its
/// packager (same playlists, same media sequence) and the rungs players hold.
pub struct Parked {
    packaging: Packaging,
    rungs: Vec<Rung>,
    /// Tells this parking from a later one of the same NAME.
    pub token: u64,
}

impl Parked {
    /// The window ran out (or shutdown): every rendition ends (`EXT-X-ENDLIST`).
    pub fn finish(self) {
        self.packaging.finish();
    }
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

/// What woke a stream's pipeline.
enum Event {
    Input(Result<Input, flume::RecvError>),
    Output(RungOutput),
    Tick,
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

async fn run_stream(job: Job, ctx: &Driver) {
    let stream = job.stream;
    let stats = &stream.pipeline;
    let mut video_check = TrackCheck::default();
    let mut audio_check = TrackCheck::default();
    let mut ended = EndReason::PublisherClosed;
    let mut ladder: Option<Running> = None;
    let mut packager: Option<Packaging> = None;
    let mut audio: Option<AudioRoute> = None;
    let mut video_config: Option<AvcConfig> = None;
    let packaging = PackagerConfig::from_config(&ctx.config);
    let max_lag = Duration::from_secs_f64(ctx.config.ladder.max_lag_secs);
    // A publisher back within the reconnect window: the same renditions go on.
    let mut rejoined_rungs: Option<Vec<Rung>> = None;
    if let Some(parked) = ctx.streams.unpark(&stream.name) {
        let mut p = parked.packaging;
        p.packager.rejoin(unix_ms());
        info!(stream = %stream.name, id = stream.id, "publisher back within the reconnect window: playlists continue after a discontinuity");
        rejoined_rungs = Some(parked.rungs);
        packager = Some(p);
    }
    loop {
        // An idle stream still refreshes its latency snapshot (the API and
        // /metrics read it), once a second. Rung threads' results are taken as
        // soon as they are ready.
        let outputs = ladder.as_ref().and_then(|l| l.run.output_receiver());
        let next = futures_lite::future::or(
            async { Event::Input(job.input.recv_async().await) },
            futures_lite::future::or(
                async {
                    match &outputs {
                        Some(rx) => match rx.recv_async().await {
                            Ok(o) => Event::Output(o),
                            Err(_) => futures_lite::future::pending().await,
                        },
                        None => futures_lite::future::pending().await,
                    }
                },
                async {
                    glommio::timer::sleep(Duration::from_secs(1)).await;
                    Event::Tick
                },
            ),
        )
        .await;
        let input = match next {
            Event::Input(Ok(input)) => input,
            Event::Input(Err(_)) => break,
            Event::Output(o) => {
                if let Some(l) = &mut ladder {
                    if contained(&stream, "accept", || l.accept(&stream, o, &mut packager))
                        .is_none()
                    {
                        stop_ladder(&stream, &mut ladder);
                    }
                }
                continue;
            }
            Event::Tick => {
                if let Some(l) = &mut ladder {
                    l.publish_latency(&stream, packager.as_ref());
                }
                continue;
            }
        };
        match input {
            Input::Config(CodecConfig::Avc(cfg)) => {
                if video_config.as_ref() == Some(&cfg) {
                    continue;
                }
                let fps = policy::source_fps(&cfg, stream.info().metadata.as_ref());
                // A new video configuration within the publish (a new size, an
                // encoder restart): the rungs players hold go on, re-fitted.
                let previous: Option<Vec<Rung>> = ladder
                    .as_ref()
                    .filter(|_| packager.is_some())
                    .map(|l| l.run.rungs().map(|(r, _)| r.clone()).collect())
                    .or_else(|| rejoined_rungs.take());
                let rungs = policy::rungs_for(&ctx.config.ladder, previous.as_deref(), &cfg, fps);
                if let Some(l) = &mut ladder {
                    l.finish(&stream, &mut packager);
                }
                ladder = None;
                if ctx.config.ladder.enabled {
                    ladder = contained(&stream, "start", || {
                        Running::start(&stream, &cfg, fps, rungs, ctx)
                    })
                    .flatten();
                    if ladder.is_none() {
                        stats.ladder_failures.fetch_add(1, Relaxed);
                    }
                }
                let running: Vec<Rung> = ladder
                    .as_ref()
                    .map(|l| l.run.rungs().map(|(r, _)| r.clone()).collect())
                    .unwrap_or_default();
                if let Some(p) = &mut packager {
                    // Same store, same playlists: new inits and a discontinuity.
                    info!(stream = %stream.name, source = %format!("{}x{}@{fps:.2}", cfg.width, cfg.height), "new video configuration: every rendition continues after a discontinuity");
                    let published = p.packager.reconfigure(
                        &cfg,
                        fps,
                        policy::rung_infos(&running),
                        Instant::now(),
                    );
                    p.apply(published);
                    video_config = Some(cfg);
                    continue;
                }
                let mut p = StreamPackager::new(
                    &packaging,
                    &stream.name,
                    stream.started_unix_ms,
                    &cfg,
                    fps,
                );
                let media = ctx
                    .store
                    .open(&stream.name, stream.id, p.timing(), p.group());
                let mut published = p.take();
                if let Some(a) = audio.as_ref().and_then(|a| a.config()) {
                    published.extend(p.set_audio(a));
                }
                if ladder.is_some() {
                    published.extend(p.set_rungs(policy::rung_infos(&running), Instant::now()));
                }
                let p = Packaging { packager: p, media };
                p.apply(published);
                packager = Some(p);
                video_config = Some(cfg);
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
                if let (Some(p), Some(asc)) = (&mut packager, route.config()) {
                    let published = p.packager.set_audio(asc);
                    p.apply(published);
                }
                audio = Some(route);
            }
            Input::Packet(p) => {
                check_packet(&stream, &p, &mut video_check, &mut audio_check);
                if ctx.shutdown.is_triggered() {
                    // On shutdown, drain quickly: account, do not encode.
                    continue;
                }
                if let Some(pk) = &mut packager {
                    match (p.track, &mut audio) {
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
                    if let Some(l) = &mut ladder {
                        if contained(&stream, "push", || {
                            l.push(&stream, &p, max_lag, &mut packager)
                        })
                        .is_none()
                        {
                            stop_ladder(&stream, &mut ladder);
                        }
                        // Let the I/O side of this core breathe between frames.
                        glommio::yield_if_needed().await;
                    }
                }
            }
            Input::End(reason) => ended = reason,
        }
    }
    if let Some(l) = &mut ladder {
        if contained(&stream, "finish", || l.finish(&stream, &mut packager)).is_none() {
            stop_ladder(&stream, &mut ladder);
        }
    }
    let rungs: Vec<Rung> = ladder
        .as_ref()
        .map(|l| l.run.rungs().map(|(r, _)| r.clone()).collect())
        .or(rejoined_rungs)
        .unwrap_or_default();
    let window = Duration::from_secs_f64(ctx.config.ingest.reconnect_window_secs);
    // The publisher went away (not kicked, not shutdown): hold the renditions
    // open for the window; otherwise they end now.
    let park = matches!(
        ended,
        EndReason::PublisherClosed | EndReason::Timeout | EndReason::Error(_)
    ) && !window.is_zero()
        && !ctx.shutdown.is_triggered();
    if let Some(p) = packager.take() {
        if park {
            let token = ctx.streams.park(
                &stream.name,
                Parked {
                    packaging: p,
                    rungs,
                    token: 0,
                },
            );
            let (name, streams, shutdown) = (
                stream.name.clone(),
                ctx.streams.clone(),
                ctx.shutdown.clone(),
            );
            glommio::spawn_local(async move {
                futures_lite::future::or(glommio::timer::sleep(window), shutdown.wait()).await;
                if let Some(p) = streams.unpark_if(&name, token) {
                    info!(stream = %name, "reconnect window over: the stream's renditions end");
                    contained_finish(&name, p);
                }
            })
            .detach();
        } else {
            p.finish();
        }
    }
    info!(
        stream = %stream.name,
        id = stream.id,
        packets = stats.packets.load(Relaxed),
        frames_decoded = stats.frames_decoded.load(Relaxed),
        reason = ?ended,
        "pipeline drained"
    );
    ctx.streams.registry.finish(&stream, ended);
}

fn contained_finish(name: &str, p: Parked) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.finish())).is_err() {
        tracing::error!(stream = %name, "packager failed while ending the stream");
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
