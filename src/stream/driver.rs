//! The per-stream driver on a media core: ingest's packets → the ladder →
//! the packager → the store.
//!
//! Ingest hands each stream's packets over a bounded channel (backpressure
//! reaches the publisher's TCP window, never unbounded memory). The pipeline
//! checks the timeline invariants every later stage relies on ([`Feed`]),
//! then runs the ladder ([`Running`]: decode once, scale and encode every
//! rung, IDRs aligned, its output drained as values). Real-time policy: a
//! packet that waited longer than `ladder.max_lag_secs` makes the stream
//! drop source frames up to its next keyframe (counted per rung), so it
//! catches up instead of falling further behind. While the input pauses (no
//! video for `ingest.decoder_drain_after_ms`), the pictures the decoder holds
//! for reordering go to every rung (`LadderRun::handle_pause_step`). Which input
//! the renditions follow (failover, failback, the slate, the reconnect
//! window) is the [`Switcher`]'s to decide; this file applies its
//! decisions. When ingest ends the stream the pipeline drains what is
//! queued, flushes the decoder, then files the session's final record.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::Config;
use crate::media::h264::AvcConfig;
use crate::media::{CodecConfig, Track};
use crate::package::{PackagerConfig, StreamPackager};
use crate::store::hot::HotStore;
use crate::stream::feed::Feed;
/// The job a media core runs (where `runtime` names it).
pub use crate::stream::feed::Job;
use crate::stream::inputs::{Active, InputState, Switch};
use crate::stream::pause::PauseWatch;
use crate::stream::policy::{self, AudioRoute};
use crate::stream::registry::{EndReason, LiveStream};
use crate::stream::running::{contained, stop_ladder, Packaging, Running};
use crate::stream::slate::Slate;
use crate::stream::switcher::{Decision, Event, Rules, Switcher};
use crate::stream::wake::{wake, Waits, Wake};
use crate::stream::{Input, Streams};
use crate::telemetry::clock;
use crate::telemetry::shutdown::Shutdown;
use crate::transcode::backend::Backend;
use crate::transcode::ladder::Rung;
use crate::transcode::ladder_run::RungOutput;

/// Packets a drain replays per wake of the stream's loop: a GOP's decode
/// would hold the core (and its input) for up to a GOP's decode time.
const DRAIN_STEP_PACKETS: usize = 4;

/// What a media core's drivers share: built once by `runtime`.
pub struct Driver {
    pub config: Arc<Config>,
    pub store: Arc<HotStore>,
    pub backend: Backend,
    pub streams: Arc<Streams>,
    pub shutdown: Arc<Shutdown>,
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

/// What the driver loop does after applying the switcher's decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    /// Hand the NAME back (a publish already queued goes on instead).
    Retire {
        window_over: bool,
    },
    End,
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
    /// The slate on air, and since when.
    slate: Option<(Slate, Instant)>,
    last_latency_publish: Instant,
    /// When the ladder's held pictures are due out (the input paused).
    pause: PauseWatch,
    /// Decides failover, failback, the slate and the end of the stream.
    switcher: Switcher,
}

impl<'a> StreamRun<'a> {
    fn new(job: Job, ctx: &'a Driver, now: Instant) -> Self {
        let inputs = ctx.streams.registry.input(&job.stream.name);
        let feed = Feed::new(job);
        inputs.set_active(feed.active());
        let ingest = &ctx.config.ingest;
        let rules = Rules {
            failover_after: Duration::from_millis(ingest.failover_after_ms),
            slate_after: (ingest.slate_after_ms > 0)
                .then(|| Duration::from_millis(ingest.slate_after_ms)),
            failback: ingest.failback,
            reconnect_window: Duration::from_secs_f64(ingest.reconnect_window_secs),
        };
        StreamRun {
            ctx,
            stream: feed.stream.clone(),
            switcher: Switcher::new(rules, feed.role, now),
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
            slate: None,
            last_latency_publish: now,
            pause: PauseWatch::new(ctx.config.ingest.decoder_drain_after_ms),
        }
    }

    /// Tells the switcher `event`, with what it must know first: whether
    /// the process is shutting down, and what the renditions have.
    fn event(&mut self, now: Instant, event: Event) {
        if self.ctx.shutdown.is_triggered() {
            self.switcher.handle(now, Event::Shutdown);
        }
        self.switcher.handle(
            now,
            Event::Renditions {
                packager: self.packager.is_some(),
                video: self.last_video.is_some(),
            },
        );
        self.switcher.handle(now, event);
    }

    /// Applies the switcher's decisions, in order; `joining`: the feed a
    /// [`Event::Joined`] was about.
    fn apply(&mut self, now: Instant, mut joining: Option<Feed>) -> Flow {
        while let Some(decision) = self.switcher.poll() {
            match decision {
                Decision::OnAir { replaces } => {
                    let Some(feed) = joining.take() else { continue };
                    if replaces {
                        if let Some(mut old) = self.on_air.take() {
                            old.ended = EndReason::TakenOver;
                            self.file(&old);
                        }
                    }
                    self.put_on_air(feed, now);
                }
                Decision::Standby { replaces } => {
                    let Some(feed) = joining.take() else { continue };
                    if replaces {
                        if let Some(mut old) = self.standby.take() {
                            old.ended = EndReason::TakenOver;
                            self.file(&old);
                        }
                    }
                    self.standby = Some(feed);
                }
                Decision::Swap(why) => self.swap(why, now),
                Decision::SlateOn => self.start_slate(now),
                Decision::SlateOff => {
                    // The publisher is back: its own pictures again.
                    let Some(feed) = &self.on_air else { continue };
                    let (video, audio, active) =
                        (feed.video.clone(), feed.audio.clone(), feed.active());
                    self.end_slate(Switch::InputReturned, active, now);
                    self.switch_input(None, now);
                    self.apply_configs(video, audio, now);
                }
                Decision::Retire { window_over } => return Flow::Retire { window_over },
                Decision::End => return Flow::End,
            }
        }
        Flow::Go
    }

    /// Every rendition goes on from a new input: the ladder is flushed (its
    /// rungs kept for the next), the clock re-bases after the last frame,
    /// and the next video configuration restarts the ladder.
    fn switch_input(&mut self, pdt: Option<u64>, now: Instant) {
        self.flush_ladder(now);
        if let Some(p) = &mut self.packager {
            p.packager.rejoin(pdt);
        }
        self.video_config = None;
    }

    /// The ladder gives out every picture it holds (the decoder's reorder
    /// delay, the rungs' queues) and stops; its rungs are kept for the next.
    fn flush_ladder(&mut self, now: Instant) {
        self.pause.clear();
        if let Some(l) = &mut self.ladder {
            let stream = self.stream.clone();
            let packager = &mut self.packager;
            if contained(&stream, "finish", || l.finish(&stream, packager, now)).is_none() {
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
    fn attach(&mut self, job: Job, now: Instant) -> Flow {
        let feed = Feed::new(job);
        info!(stream = %feed.stream.name, id = feed.stream.id, role = ?feed.role, "publisher joins the running stream");
        self.event(now, Event::Joined(feed.role));
        self.apply(now, Some(feed))
    }

    /// A joining feed goes on air. With the slate on air it stays there
    /// until the feed's first packet (see `from_on_air`); else the media has
    /// a gap and program date-time resumes at the wall clock.
    fn put_on_air(&mut self, feed: Feed, now: Instant) {
        self.stream = feed.stream.clone();
        if self.slate.is_none() {
            self.inputs.set_active(feed.active());
            if self.packager.is_some() {
                self.switch_input(Some(crate::telemetry::clock::unix_ms()), now);
            }
        }
        self.on_air = Some(feed);
    }

    /// Input from the feed on air.
    fn from_on_air(&mut self, input: Input, now: Instant) {
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
                    self.from_on_air(Input::Config(CodecConfig::Avc(next)), now);
                    return self.from_on_air(input, now);
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
                    self.handle(Input::Config(CodecConfig::Avc(cfg)), Some(fps), now);
                }
            }
            Input::Config(audio) => {
                feed.audio = Some(audio.clone());
                if self.slate.is_none() {
                    self.handle(Input::Config(audio), None, now);
                }
            }
            Input::Packet(p) => {
                feed.record(&p);
                if p.track == Track::Video {
                    self.pause.video(now);
                }
                // With the slate on air: off it goes (`Decision::SlateOff`).
                self.event(now, Event::OnAirPacket);
                let _ = self.apply(now, None);
                self.handle(Input::Packet(p), None, now);
            }
        }
    }

    fn apply_configs(
        &mut self,
        video: Option<(AvcConfig, f64)>,
        audio: Option<CodecConfig>,
        now: Instant,
    ) {
        if let Some(audio) = audio {
            self.handle(Input::Config(audio), None, now);
        }
        if let Some((cfg, fps)) = video {
            self.last_video = Some((cfg.clone(), fps));
            self.handle(Input::Config(CodecConfig::Avc(cfg)), Some(fps), now);
        }
    }

    /// Input from the feed off air: counted, configurations and the latest
    /// GOP kept.
    fn from_standby(&mut self, input: Input, now: Instant) {
        let Some(feed) = self.standby.as_mut() else {
            return;
        };
        let packet = matches!(input, Input::Packet(_));
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
        let keyed = feed.keyed();
        self.event(now, Event::StandbyInput { packet, keyed });
    }

    /// The feed on air went away (its channel closed): its session record
    /// counts every picture it sent; the backup (if any) takes over at the
    /// next tick, else the renditions wait for the window or end.
    fn on_air_closed(&mut self, now: Instant) -> Flow {
        let Some(f) = self.on_air.take() else {
            return Flow::Go;
        };
        self.flush_ladder(now);
        self.file(&f);
        let parkable = matches!(
            f.ended,
            EndReason::PublisherClosed | EndReason::Timeout | EndReason::Error(_)
        );
        self.event(now, Event::OnAirClosed { parkable });
        self.apply(now, None)
    }

    fn standby_closed(&mut self, now: Instant) -> Flow {
        let Some(f) = self.standby.take() else {
            return Flow::Go;
        };
        self.file(&f);
        self.event(now, Event::StandbyClosed);
        self.apply(now, None)
    }

    /// The feed off air goes on air (`why`): re-timed to go on right after
    /// the last frame, from its latest keyframe.
    fn swap(&mut self, why: Switch, now: Instant) {
        let Some(mut next) = self.standby.take() else {
            return;
        };
        let from = self.on_air.as_ref().map(|f| f.role);
        info!(stream = %next.stream.name, from = ?from, to = ?next.role, reason = why.label(), "input switch");
        if let Some((_, since)) = self.slate.take() {
            self.inputs.add_slate_ms(slate_ms(since, now));
        }
        self.switch_input(None, now);
        self.stream = next.stream.clone();
        let gop = std::mem::take(&mut next.gop);
        let (video, audio) = (next.video.clone(), next.audio.clone());
        self.inputs.switched(why, next.active());
        self.standby = self.on_air.replace(next);
        if let Some(old) = &mut self.standby {
            old.gop.clear();
        }
        self.apply_configs(video, audio, now);
        // Re-timed, so not late: the ladder must not skip them (max_lag);
        // stamped after the ladder's restart, so the latency figures do not
        // count it.
        let retimed = clock::now();
        for mut p in gop {
            p.arrival = retimed;
            self.handle(Input::Packet(p), None, now);
        }
    }

    fn start_slate(&mut self, now: Instant) {
        let Some((cfg, fps)) = self.last_video.clone() else {
            return;
        };
        let asc = self.audio.as_ref().and_then(|a| a.config());
        // The slate's clock starts where the input stopped: its first
        // `slate_after_ms` go out at once, so the renditions' media keeps up
        // with the wall clock and a player's buffer does not run dry.
        let from = self.switcher.last_input().min(now);
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
                self.switch_input(None, now);
                self.slate = Some((slate, now));
            }
            Err(e) => {
                warn!(stream = %self.stream.name, "slate unavailable: {e}; players wait for input");
                self.switcher.handle(now, Event::SlateFailed);
            }
        }
    }

    fn end_slate(&mut self, why: Switch, to: Active, now: Instant) {
        if let Some((_, since)) = self.slate.take() {
            self.inputs.add_slate_ms(slate_ms(since, now));
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
            self.switcher.handle(now, Event::SlateFailed);
            return;
        }
        let fps = self.last_video.as_ref().map(|v| v.1);
        for input in due {
            self.handle_slate(input, fps, now);
        }
    }

    /// When the loop must wake: the slate, the switcher (a failover check,
    /// the slate due, the reconnect window), a drain, the latency snapshot.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut at = self.last_latency_publish + Duration::from_secs(1);
        if let Some((slate, _)) = &self.slate {
            at = at.min(slate.next_due());
        }
        if let Some(s) = self.switcher.poll_timeout(now) {
            at = at.min(s);
        }
        if let Some(d) = self.drain_due() {
            at = at.min(d);
        }
        if self.draining() {
            // The replay's next packets, once the channels are served.
            at = at.min(now);
        }
        at
    }

    /// A drain is under way (replayed a few packets per wake).
    fn draining(&self) -> bool {
        self.slate.is_none() && self.ladder.as_ref().is_some_and(|l| l.run.draining())
    }

    /// When the ladder's held pictures are due out: the input on air paused
    /// (not while the slate feeds the ladder).
    fn drain_due(&self) -> Option<Instant> {
        if self.slate.is_some() || self.ladder.is_none() {
            return None;
        }
        self.pause.due()
    }

    fn tick(&mut self, now: Instant) -> Flow {
        // An operator's failback request is taken only when it can be acted on.
        if self.switcher.wants_failback_request(now) && self.inputs.take_failback_request() {
            self.switcher.handle(now, Event::FailbackRequested);
        }
        self.event(now, Event::Tick);
        let flow = self.apply(now, None);
        if flow != Flow::Go {
            return flow;
        }
        if self.draining() || (self.drain_due().is_some() && self.pause.poll(now)) {
            if let Some(l) = &mut self.ladder {
                let stream = self.stream.clone();
                let packager = &mut self.packager;
                let step = || l.drain(&stream, packager, DRAIN_STEP_PACKETS);
                if contained(&stream, "drain", step).is_none() {
                    stop_ladder(&stream, &mut self.ladder);
                }
            }
        }
        self.event(now, Event::SlateCheck);
        let flow = self.apply(now, None);
        self.slate_step(now);
        if now >= self.last_latency_publish + Duration::from_secs(1) {
            if let Some(l) = &mut self.ladder {
                l.publish_latency(&self.stream, self.packager.as_ref(), now);
            }
            self.last_latency_publish = now;
        }
        flow
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
    fn handle_slate(&mut self, input: Input, fps: Option<f64>, now: Instant) {
        match input {
            Input::Packet(p) if p.track == Track::Audio => {
                if let (Some(pk), Some(_)) = (&mut self.packager, &self.audio) {
                    // Silence in the rendition's own layout: no re-encode.
                    let published = pk.packager.audio(&p, now);
                    pk.apply(published, now);
                }
            }
            other => self.handle(other, fps, now),
        }
    }

    /// One input on air. `fps`: a video configuration's frame rate.
    fn handle(&mut self, input: Input, fps: Option<f64>, now: Instant) {
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
                    l.finish(&stream, &mut self.packager, now);
                }
                self.ladder = None;
                if ctx.config.ladder.enabled {
                    self.ladder = contained(&stream, "start", || {
                        let (ladder, backend) = (&ctx.config.ladder, &ctx.backend);
                        Running::start(&stream, &cfg, fps, rungs, ladder, backend, now)
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
                    let published =
                        p.packager
                            .reconfigure(&cfg, fps, policy::rung_infos(&running), now);
                    p.apply(published, now);
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
                    published.extend(p.set_rungs(policy::rung_infos(&running), now));
                }
                let p = Packaging { packager: p, media };
                p.apply(published, now);
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
                    p.apply(published, now);
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
                            let published = pk.packager.source_video(&p, now);
                            pk.apply(published, now);
                        }
                        (Track::Audio, Some(route)) => {
                            let pushed = route.push(&p, &mut |o| {
                                let published = pk.packager.audio(o, now);
                                pk.apply(published, now);
                            });
                            if let Err(e) = pushed {
                                warn!("audio re-encode: {}", e.in_stream(stream.ctx()));
                            }
                        }
                        (Track::Audio, None) => {}
                    }
                }
                if p.track == Track::Video {
                    if let Some(l) = &mut self.ladder {
                        let packager = &mut self.packager;
                        let max_lag = self.max_lag;
                        if contained(&stream, "push", || {
                            l.push(&stream, &p, max_lag, packager, now)
                        })
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
    fn finish(mut self, now: Instant) {
        if let Some((_, since)) = self.slate.take() {
            self.inputs.add_slate_ms(slate_ms(since, now));
        }
        self.flush_ladder(now);
        if let Some(p) = self.packager.take() {
            let name = self.stream.name.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.finish(now))).is_err() {
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

/// What the driver's next wait is on.
fn waits(s: &StreamRun<'_>, now: Instant) -> Waits {
    Waits {
        wake_at: s.next_wake(now),
        outputs: s.ladder.as_ref().and_then(|l| l.run.output_receiver()),
        on_air: s.on_air.as_ref().map(|f| f.input.clone()),
        standby: s.standby.as_ref().map(|f| f.input.clone()),
        waiting: s.switcher.waiting(),
    }
}

async fn run_stream(mut job: Job, ctx: &Driver) {
    let name = job.stream.name.clone();
    let (token, attach_rx) = match job.attach.take() {
        Some(a) => a,
        None => (0, flume::unbounded().1),
    };
    let mut s = StreamRun::new(job, ctx, clock::now());
    'run: loop {
        // The clock is read to set the wait's timer, then once per wake:
        // every decision the wake leads to (the switcher, the slate, a
        // drain, the ladder's lag, the packager's clock) takes that `now`.
        let now = clock::now();
        let next = wake(waits(&s, now), &attach_rx, &ctx.shutdown, now).await;
        let now = clock::now();
        let mut flow = match next {
            Wake::OnAir(Ok(input)) => {
                s.from_on_air(input, now);
                // Let the I/O side of this core breathe between frames.
                glommio::yield_if_needed().await;
                Flow::Go
            }
            Wake::Standby(Ok(input)) => {
                s.from_standby(input, now);
                Flow::Go
            }
            Wake::OnAir(Err(_)) => s.on_air_closed(now),
            Wake::Standby(Err(_)) => s.standby_closed(now),
            Wake::Attach(job) => s.attach(job, now),
            Wake::Output(o) => {
                s.output(o);
                Flow::Go
            }
            Wake::Shutdown => Flow::End,
            Wake::Tick => {
                let flow = s.tick(now);
                if s.draining() {
                    // A drain's next packets wait their turn: the other
                    // streams on this core (and, on one core, ingest and
                    // the origin) run first. The tick's timer at `now` is
                    // ready at once, so the wait itself never yields.
                    futures_lite::future::yield_now().await;
                }
                flow
            }
        };
        loop {
            match flow {
                Flow::Go => break,
                Flow::End => break 'run,
                Flow::Retire { window_over } => {
                    match ctx.streams.retire(&name, token, &attach_rx) {
                        Some(job) => flow = s.attach(job, now),
                        None => {
                            if window_over {
                                info!(stream = %name, "reconnect window over: the stream's renditions end");
                            }
                            break 'run;
                        }
                    }
                }
            }
        }
    }
    // Whatever publish reached the driver as it ended gets a driver of its
    // own (it would otherwise wait on a channel nobody reads); at shutdown
    // it ends.
    let orphan = ctx.streams.retire(&name, token, &attach_rx);
    s.finish(clock::now());
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

/// Slate time on air, for the inputs' counters.
fn slate_ms(since: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(since).as_millis() as u64
}
