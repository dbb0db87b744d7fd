//! The per-stream packager: one clock for every rendition (decode times
//! re-based to the stream's first timestamp, program date-times from the same
//! pts), the breaks in the timeline, new configurations, and the renditions'
//! outputs. `video` and `audio` hold what each kind of input does.

mod audio;
mod output;
mod video;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use tracing::warn;

use super::chunker::Chunker;
use super::cmaf::{self, TrackConfig};
use super::hls::Timing;
use super::input::{PackagerConfig, RungInfo};
use super::published::{Published, RenditionKind};
use crate::media::h264::AvcConfig;
use crate::media::{StreamCtx, TIMESCALE};
use crate::telemetry::latency::StageBuckets;
use output::{Break, Name, NewConfig, Output};

/// Decode times start this far after the stream's first timestamp, so
/// B-frame and audio offsets never go negative.
const BASE_SLACK: i64 = 2 * TIMESCALE as i64;

/// Packages one stream: the source passthrough, every rung, and the audio.
pub struct StreamPackager {
    timing: Timing,
    /// Segments per standard-HLS segment.
    group: u64,
    /// What the call in progress published, returned at its end.
    out: Vec<Published>,
    name: String,
    segment_ticks: i64,
    part_ticks: i64,
    frame_ticks: i64,
    fps: f64,
    /// 90 kHz time that maps to decode time `BASE_SLACK`; set by the first packet.
    base: Option<i64>,
    started_unix_ms: u64,
    /// The latest decode time given out (either track).
    last_t: i64,
    /// The input changed (`rejoin`): the next timestamp re-bases the clock to
    /// go on one frame after `last_t`, with program date-time at this wall
    /// clock (ms), or (`None`) continuing.
    rebase: Option<Option<u64>>,
    source: Option<SourceOutput>,
    rungs: Vec<Option<Output>>,
    rung_plan: Vec<RungInfo>,
    audio: Option<AudioOutput>,
    chunked: bool,
    /// The newest break in the stream's timeline.
    brk: Option<Break>,
    breaks: u64,
    /// A new video configuration came: the timeline breaks at the next keyframe.
    reconfigured: bool,
    /// Decode time of the newest source video packet (audio waits for it).
    video_at: Option<i64>,
}

struct SourceOutput {
    out: Output,
    nal_length_size: u8,
    /// After a new configuration: its init, published with the segment its
    /// first keyframe starts; frames before that keyframe are dropped.
    pending_init: Option<NewConfig>,
    last_boundary: Option<i64>,
    /// Only while the ladder cuts segments on source keyframes too.
    follow_ladder: bool,
}

struct AudioOutput {
    out: Output,
    sample_rate: i64,
    next: Option<i64>,
    segment_start: Option<i64>,
    /// Frames waiting for the video to reach their time.
    queue: VecDeque<QueuedAudio>,
}

struct QueuedAudio {
    t90: i64,
    pdt_ms: u64,
    data: Bytes,
    arrival: Instant,
}

impl StreamPackager {
    /// A stream's packager; the source rendition starts now (see [`Self::take`]
    /// for what that publishes).
    pub fn new(
        config: &PackagerConfig,
        name: &str,
        started_unix_ms: u64,
        video: &AvcConfig,
        fps: f64,
    ) -> Self {
        let frame_ticks = (TIMESCALE as f64 / fps).round().max(1.0) as i64;
        let frames_per_part = (config.part_secs * fps).round().max(1.0) as i64;
        let part_ticks = frames_per_part * frame_ticks;
        let segment_secs = config.segment_secs;
        let timing = Timing {
            // Boundaries keep every segment below this + 0.5 s (see boundary.rs).
            target_duration: crate::media::timeline::target_duration(segment_secs),
            part_target: part_ticks as f64 / TIMESCALE as f64,
            segment_target: segment_secs,
            // Decode times are `pts - base + BASE_SLACK` and program date-times
            // `started + (pts - base)` (see `pdt_ms`): media time 0 is this.
            media_epoch_ms: started_unix_ms.saturating_sub((BASE_SLACK / 90) as u64),
        };
        let group = (config.standard_segment_secs / segment_secs)
            .round()
            .max(1.0) as u64;
        let mut p = StreamPackager {
            timing,
            group,
            out: Vec::new(),
            name: name.to_string(),
            segment_ticks: (segment_secs * TIMESCALE as f64).round() as i64,
            part_ticks,
            frame_ticks,
            fps,
            base: None,
            started_unix_ms,
            last_t: 0,
            rebase: None,
            source: None,
            rungs: Vec::new(),
            rung_plan: Vec::new(),
            audio: None,
            chunked: config.chunked_parts,
            brk: None,
            breaks: 0,
            reconfigured: false,
            video_at: None,
        };
        if config.source_rendition {
            let out = p.video_output("source", video, 0);
            p.source = out.map(|out| SourceOutput {
                out,
                nal_length_size: video.nal_length_size,
                pending_init: None,
                last_boundary: None,
                follow_ladder: config.ladder,
            });
        }
        p
    }

    /// The stream's segment and part targets (for its playlists).
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Ladder segments per standard-HLS segment.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// What the calls so far published and nobody took yet (`new` publishes
    /// the source rendition; every other call returns its own).
    #[must_use]
    pub fn take(&mut self) -> Vec<Published> {
        std::mem::take(&mut self.out)
    }

    /// A video rendition's init segment and description for `cfg`.
    fn video_config(
        &self,
        cfg: &AvcConfig,
        nominal_bps: u64,
    ) -> Result<NewConfig, cmaf::CmafError> {
        Ok(NewConfig {
            init: cmaf::init_segment(&TrackConfig::Video(cfg.clone()))?,
            codecs: cfg.codec_string(),
            kind: RenditionKind::Video {
                width: cfg.width,
                height: cfg.height,
                fps: cfg.fps.unwrap_or(self.fps),
                nominal_bps,
            },
        })
    }

    fn video_output(&mut self, name: &str, cfg: &AvcConfig, nominal_bps: u64) -> Option<Output> {
        let new = match self.video_config(cfg, nominal_bps) {
            Ok(n) => n,
            Err(e) => {
                let e = e.in_stream(StreamCtx::new(&self.name).rendition(name));
                warn!("init segment: {e}");
                return None;
            }
        };
        let part_target = self.part_ticks as f64 / TIMESCALE as f64;
        let rendition = self.add_rendition(name, new.codecs, new.kind, new.init, part_target);
        Some(Output::new(
            rendition,
            Chunker::new(TIMESCALE, self.part_ticks, self.frame_ticks)
                .chunked(self.chunked)
                .even_parts(self.segment_ticks),
        ))
    }

    fn add_rendition(
        &mut self,
        name: &str,
        codecs: String,
        kind: RenditionKind,
        init: Bytes,
        part_target: f64,
    ) -> Name {
        self.out.push(Published::Rendition {
            name: name.to_string(),
            codecs,
            kind,
            part_target,
        });
        self.out.push(Published::Init {
            rendition: name.to_string(),
            init,
        });
        Name(name.into())
    }

    /// The rungs the ladder runs; their renditions appear with their first IDR.
    #[must_use]
    pub fn set_rungs(&mut self, rungs: Vec<RungInfo>, now: Instant) -> Vec<Published> {
        for r in self.rungs.iter_mut().flatten() {
            r.finish(&self.name, now, &mut self.out);
        }
        self.rungs = rungs.iter().map(|_| None).collect();
        self.rung_plan = rungs;
        self.take()
    }

    /// A new video configuration within the same publish (the source changed
    /// size, or its encoder restarted): every rendition goes on in the same
    /// playlists, with the same media sequence and program date-time clock.
    /// The source rendition takes a new init segment (`init1.mp4`, ...) with
    /// the segment its next keyframe starts (earlier frames are dropped: they
    /// need the new parameter sets); each rung in `rungs` (the ladder re-fitted
    /// to the new source, same names) takes one from its encoder's next IDR;
    /// rungs no longer in the plan end. The timeline breaks at that keyframe,
    /// so every rendition, audio included, marks `EXT-X-DISCONTINUITY` there.
    #[must_use]
    pub fn reconfigure(
        &mut self,
        video: &AvcConfig,
        fps: f64,
        rungs: Vec<RungInfo>,
        now: Instant,
    ) -> Vec<Published> {
        self.fps = fps;
        self.reconfigured = true;
        let name = self.name.clone();
        let new = self.video_config(video, 0);
        if let Some(s) = &mut self.source {
            match new {
                Ok(new) => {
                    s.pending_init = Some(new);
                    s.nal_length_size = video.nal_length_size;
                }
                Err(e) => {
                    warn!(stream = %name, "new source configuration: init segment: {e}; the source rendition ends");
                    s.out.finish(&name, now, &mut self.out);
                    self.source = None;
                }
            }
        }
        let mut old: Vec<(String, Output)> = self
            .rung_plan
            .iter()
            .zip(std::mem::take(&mut self.rungs))
            .filter_map(|(r, o)| Some((r.name.clone(), o?)))
            .collect();
        self.rungs = rungs
            .iter()
            .map(|r| {
                let i = old.iter().position(|(n, _)| *n == r.name)?;
                let (_, mut out) = old.swap_remove(i);
                out.reinit = true;
                Some(out)
            })
            .collect();
        for (_, mut out) in old {
            out.finish(&name, now, &mut self.out);
        }
        self.rung_plan = rungs;
        self.take()
    }

    /// The stream's timeline broke at decode time `at`. Breaks closer than a
    /// segment are one (a jump seen on both tracks, a reset that comes with a
    /// new configuration): the earlier time stands. But a new configuration
    /// (`new_init`: a new `EXT-X-MAP`) after a break some rendition already
    /// cut for is a break of its own: RFC 8216 asks for a discontinuity at
    /// every change of encoding sequence (a publisher back soon after the
    /// slate took over: the slate's encoder, then the publisher's).
    fn break_timeline(&mut self, at: i64, new_init: bool) {
        match &mut self.brk {
            Some(b)
                if (at - b.at).abs() < self.segment_ticks
                    && !(new_init && b.boundary.is_some()) =>
            {
                b.at = b.at.min(at)
            }
            _ => {
                self.breaks += 1;
                self.brk = Some(Break {
                    id: self.breaks,
                    at,
                    boundary: None,
                });
            }
        }
    }

    fn decode_time(&mut self, t: i64) -> i64 {
        if let Some(pdt) = self.rebase.take() {
            // The new publisher's first timestamp lands one frame after the last one.
            let at = self.last_t + self.frame_ticks;
            self.base = Some(t - (at - BASE_SLACK));
            if let Some(now_unix_ms) = pdt {
                self.started_unix_ms =
                    now_unix_ms.saturating_sub(((at - BASE_SLACK).max(0) / 90) as u64);
            }
        }
        let base = *self.base.get_or_insert(t);
        let d = (t - base + BASE_SLACK).max(0);
        self.last_t = self.last_t.max(d);
        d
    }

    /// The stream's input changed (a publisher back within the window, the
    /// slate on or off): its timestamps start anywhere, so the clock re-bases
    /// to go on right after the last frame, and every rendition marks
    /// `EXT-X-DISCONTINUITY` at its next keyframe. Program date-time resumes
    /// at `now_unix_ms` (after a gap in the media), or with `None` goes on
    /// from the last frame (no gap: the slate keeps the media on the wall
    /// clock, and a player that aligns discontinuities by PDT sees neither a
    /// hole nor an overlap). Playlists, media sequence numbers and every URI
    /// already listed stay as they are.
    pub fn rejoin(&mut self, now_unix_ms: Option<u64>) {
        self.rebase = Some(now_unix_ms);
        self.reconfigured = true;
        self.video_at = None;
    }

    fn pdt_ms(&self, pts: i64) -> u64 {
        let since = pts - self.base.unwrap_or(pts);
        self.started_unix_ms.saturating_add_signed(since / 90)
    }

    /// Part-publication latency of every rendition, for the stage histograms.
    pub fn latency_buckets(&self) -> Vec<StageBuckets> {
        let mut out = Vec::new();
        let outputs = self
            .source
            .iter()
            .map(|s| &s.out)
            .chain(self.rungs.iter().flatten())
            .chain(self.audio.iter().map(|a| &a.out));
        for o in outputs {
            out.extend(o.buckets());
        }
        out
    }

    /// End of stream: closes every rendition (`EXT-X-ENDLIST`).
    #[must_use]
    pub fn finish(&mut self, now: Instant) -> Vec<Published> {
        let name = self.name.clone();
        if let Some(s) = &mut self.source {
            s.out.finish(&name, now, &mut self.out);
        }
        for r in self.rungs.iter_mut().flatten() {
            r.finish(&name, now, &mut self.out);
        }
        self.release_audio(true, now);
        if let Some(a) = &mut self.audio {
            a.out.finish(&name, now, &mut self.out);
        }
        self.out.push(Published::StreamEnd);
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::media::Track;
    use std::sync::Arc;

    use crate::media::aac::AudioSpecificConfig;
    use crate::media::Packet;
    use crate::package::hls;
    use crate::package::RungPicture;
    use crate::store::hot::{HotStore, Object, Rendition, StreamMedia};
    use crate::transcode::ladder::{default_ladder, plan, replan, Rung};
    use crate::transcode::EncodedFrame;

    fn infos(rungs: &[Rung]) -> Vec<RungInfo> {
        rungs
            .iter()
            .map(|r| RungInfo {
                name: r.name.clone(),
                fps: r.fps,
                bitrate_bps: r.bitrate_bps,
            })
            .collect()
    }

    use crate::media::h264::tests::sps;

    const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

    fn avc(width: u32, height: u32, level: u8) -> AvcConfig {
        let cfg = AvcConfig::from_parameter_sets(&sps(width, height, level), &PPS).unwrap();
        assert_eq!((cfg.width, cfg.height), (width, height));
        cfg
    }

    /// Drives a packager the way the pipeline does: 30 fps video with an IDR
    /// every 2 s, 48 kHz AAC interleaved by time, and each rung's encoded
    /// frames two pictures behind the source (encoder latency).
    struct Publish {
        store: HotStore,
        media: Arc<StreamMedia>,
        p: StreamPackager,
        plan: Vec<Rung>,
        rungs: Vec<(u32, u32)>,
        rung_level: u8,
        frame: i64,
        audio: i64,
        lagging: Vec<i64>,
        /// The first source frame the (re)started ladder encodes.
        rungs_from: i64,
        /// Frames from one keyframe to the next.
        key_every: i64,
    }

    const STARTED_MS: u64 = 1_764_028_800_000;

    impl Publish {
        fn new(video: &AvcConfig, window_secs: f64) -> Publish {
            let store = HotStore::new(window_secs);
            let config = Config::default();
            let pc = PackagerConfig::from_config(&config);
            let mut p = StreamPackager::new(&pc, "cam", STARTED_MS, video, 30.0);
            let media = store.open("cam", 1, p.timing(), p.group());
            let asc = AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap();
            let mut published = p.take();
            published.extend(p.set_audio(&asc));
            let rungs = plan(&config.ladder.rungs, video.width, video.height, 30.0);
            let dims = rungs.iter().map(|r| (r.width, r.height)).collect();
            published.extend(p.set_rungs(infos(&rungs), Instant::now()));
            for v in published {
                media.apply(v, std::time::Instant::now());
            }
            Publish {
                store,
                media,
                p,
                plan: rungs,
                rungs: dims,
                rung_level: 31,
                frame: 0,
                audio: 0,
                lagging: Vec::new(),
                rungs_from: 0,
                key_every: 60,
            }
        }

        fn packet(
            track: Track,
            t: i64,
            keyframe: bool,
            discontinuity: bool,
            data: Bytes,
        ) -> Packet {
            Packet {
                stream: 1,
                track,
                dts: t,
                pts: t,
                keyframe,
                discontinuity,
                data,
                arrival: Instant::now(),
            }
        }

        /// `n` more frames; the timeline breaks (ingest's flag) before frame `jump`.
        fn run(&mut self, n: i64, jump: Option<i64>) {
            for _ in 0..n {
                let (i, t) = (self.frame, self.frame * 3000);
                let broken = jump == Some(i);
                while self.audio * 1920 < t + 3000 {
                    let at = self.audio * 1920;
                    let disc = jump.is_some_and(|j| at >= j * 3000 && at - 1920 < j * 3000);
                    let data = Bytes::from_static(&[0x21, 0x10, 0x04]);
                    let v = self.p.audio(
                        &Self::packet(Track::Audio, at, true, disc, data),
                        Instant::now(),
                    );
                    self.apply(v);
                    self.audio += 1;
                }
                let key = i % self.key_every == 0;
                let data: &'static [u8] = if key {
                    &[0, 0, 0, 2, 0x65, 0x88]
                } else {
                    &[0, 0, 0, 2, 0x41, 0x9a]
                };
                let pkt = Self::packet(Track::Video, t, key, broken, Bytes::from_static(data));
                let v = self.p.source_video(&pkt, Instant::now());
                self.apply(v);
                self.lagging.push(i);
                if self.lagging.len() > 2 {
                    let f = self.lagging.remove(0);
                    self.rung_frames(f);
                }
                self.frame += 1;
            }
        }

        fn rung_frames(&mut self, i: i64) {
            if i < self.rungs_from {
                return;
            }
            for (r, &(w, h)) in self.rungs.iter().enumerate() {
                let mut data = Vec::new();
                if i % self.key_every == 0 {
                    for nal in [sps(w, h, self.rung_level), PPS.to_vec(), vec![0x65, 0x88]] {
                        data.extend_from_slice(&[0, 0, 0, 1]);
                        data.extend_from_slice(&nal);
                    }
                } else {
                    data.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9a]);
                }
                let f = EncodedFrame {
                    pts: i * 3000,
                    dts: i * 3000,
                    keyframe: i % self.key_every == 0,
                    data: Bytes::from(data),
                    arrival: Instant::now(),
                };
                let pic = RungPicture {
                    pts: f.pts,
                    dts: f.dts,
                    keyframe: f.keyframe,
                    data: &f.data,
                    arrival: f.arrival,
                };
                let v = self.p.rung_frame(r, &pic, Instant::now());
                self.apply(v);
            }
        }

        /// The ladder's end: what the encoders still hold comes out.
        fn flush_rungs(&mut self) {
            for f in std::mem::take(&mut self.lagging) {
                self.rung_frames(f);
            }
        }

        fn apply(&self, published: Vec<Published>) {
            for v in published {
                self.media.apply(v, std::time::Instant::now());
            }
        }

        fn renditions(&self) -> Vec<Arc<Rendition>> {
            self.store.get("cam").unwrap().renditions()
        }
    }

    /// (msn, discontinuity, init version, pdt) of each segment, and the
    /// discontinuity sequence.
    fn timeline(r: &Rendition) -> (Vec<(u64, bool, u32, u64)>, u64) {
        r.with_segments(|segs, disc, _| {
            let v = segs
                .iter()
                .map(|s| (s.msn, s.discontinuity, s.init_version, s.pdt_ms))
                .collect();
            (v, disc)
        })
    }

    fn playlist(r: &Rendition, timing: hls::Timing) -> String {
        r.with_segments(|segments, discontinuity_sequence, ended| {
            hls::media_playlist(&hls::MediaPlaylist {
                timing,
                segments,
                discontinuity_sequence,
                reports: &[],
                part_segments: 3,
                skip: false,
                ended,
                prefix: "",
            })
        })
    }

    fn discontinuities(r: &Rendition) -> Vec<(u64, u64)> {
        timeline(r)
            .0
            .iter()
            .filter(|s| s.1)
            .map(|s| (s.0, s.3))
            .collect()
    }

    /// Issue 12, item 5: a timestamp jump at ingest (flagged on the first
    /// packet after it, mid-GOP) is a break in the stream's timeline: every
    /// rendition, rungs included, marks EXT-X-DISCONTINUITY at the same
    /// boundary, and DISCONTINUITY-SEQUENCE agrees once it leaves the window.
    #[test]
    fn timestamp_jump_marks_discontinuity_on_every_rendition() {
        let mut s = Publish::new(&avc(1280, 720, 31), 8.0);
        s.run(195, None);
        s.run(105, Some(195));
        let names: Vec<String> = s.renditions().iter().map(|r| r.name.clone()).collect();
        assert_eq!(names.len(), 5, "source, 3 rungs, audio: {names:?}");
        let source = discontinuities(&s.renditions()[0]);
        // The jump is mid-GOP: the break is at the next keyframe (frame 240, 8 s).
        assert_eq!(source.len(), 1, "{source:?}");
        assert_eq!(source[0].1, STARTED_MS + 8000);
        for r in s.renditions() {
            let d = discontinuities(&r);
            assert_eq!(d.len(), 1, "{}: {:?}", r.name, timeline(&r));
            assert_eq!(d[0].0, source[0].0, "{}: same msn", r.name);
            // Same boundary in time: audio within one AAC frame.
            assert!(d[0].1.abs_diff(source[0].1) <= 22, "{}: {d:?}", r.name);
            let text = playlist(&r, s.p.timing());
            assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        }
        // Long enough for the break to leave an 8 s window everywhere.
        s.run(360, None);
        s.flush_rungs();
        for r in s.renditions() {
            let (segs, disc) = timeline(&r);
            assert!(segs.iter().all(|s| !s.1), "{}: {segs:?}", r.name);
            assert_eq!(disc, 1, "{}: DISCONTINUITY-SEQUENCE", r.name);
        }
    }

    /// Every object a player may have fetched: URI → bytes.
    fn objects(r: &Rendition) -> Vec<(String, Bytes)> {
        let mut out = Vec::new();
        if let Object::Ready(b) = r.init(0) {
            out.push(("init0.mp4".into(), b));
        }
        let segs = timeline(r).0;
        for &(msn, ..) in &segs {
            if let Object::Ready(b) = r.segment(msn) {
                out.push((hls::segment_uri(msn), b));
            }
            for i in 0.. {
                match r.part(msn, i) {
                    Object::Ready(b) => out.push((hls::part_uri(msn, i), b)),
                    _ => break,
                }
            }
        }
        out
    }

    fn object(r: &Rendition, uri: &str) -> Option<Bytes> {
        objects(r)
            .into_iter()
            .find(|(u, _)| u == uri)
            .map(|(_, b)| b)
    }

    /// Issue 12, item 4: a 720p publish switches to 1080p (new SPS) mid-way.
    /// The same store goes on: nothing published changes, every rendition
    /// (source, each rung of the 720p plan, audio) continues in its playlist
    /// after EXT-X-DISCONTINUITY, video with a new init (`init1.mp4`), media
    /// sequence and PROGRAM-DATE-TIME going on.
    #[test]
    fn resolution_change_mid_publish_continues_renditions() {
        let (v720, v1080) = (avc(1280, 720, 31), avc(1920, 1080, 40));
        let mut s = Publish::new(&v720, 60.0);
        let media = s.store.get("cam").unwrap();
        s.run(130, None);
        s.flush_rungs();
        let before: Vec<(String, Vec<(String, Bytes)>)> = s
            .renditions()
            .iter()
            .map(|r| (r.name.clone(), objects(r)))
            .collect();
        assert_eq!(before.len(), 5);
        let rungs = replan(&s.plan, &default_ladder(), 1920, 1080, 30.0);
        assert_eq!(rungs, s.plan, "the 720p ladder goes on from 1080p");
        let v = s.p.reconfigure(&v1080, 30.0, infos(&rungs), Instant::now());
        s.apply(v);
        // The encoders restart: new parameter sets (here a new level).
        s.rung_level = 40;
        // The new configuration's first packets come before its keyframe
        // (the new ladder's first picture is that keyframe).
        s.rungs_from = 180;
        s.run(150, None);
        s.flush_rungs();

        let now = s.store.get("cam").unwrap();
        assert!(Arc::ptr_eq(&media, &now), "the store was not restarted");
        assert_eq!(s.renditions().len(), 5);
        for (name, objs) in &before {
            let r = now.rendition(name).unwrap();
            assert!(!r.is_ended(), "{name} ended");
            for (uri, bytes) in objs {
                assert_eq!(
                    object(&r, uri).as_ref(),
                    Some(bytes),
                    "{name}/{uri} changed"
                );
            }
            let (segs, _) = timeline(&r);
            // One more segment for every 2 s after the change, msn going on.
            assert!(
                segs.windows(2).all(|w| w[1].0 == w[0].0 + 1),
                "{name}: {segs:?}"
            );
            assert!(segs.windows(2).all(|w| w[1].3 > w[0].3), "{name}: {segs:?}");
            let d: Vec<_> = segs.iter().filter(|s| s.1).collect();
            assert_eq!(d.len(), 1, "{name}: {segs:?}");
            // The change is at frame 180 (6 s), the first keyframe after it.
            // (Audio: its first frame at or after it, within one AAC frame.)
            assert!(d[0].3.abs_diff(STARTED_MS + 6000) <= 22, "{name}: {segs:?}");
            assert!(segs.last().unwrap().0 > d[0].0, "{name}: {segs:?}");
            let text = playlist(&r, s.p.timing());
            let at = text.find("#EXT-X-DISCONTINUITY\n").expect(&text);
            if name == "audio" {
                assert!(!text.contains("init1.mp4"), "{text}");
                continue;
            }
            assert!(
                text[at..].starts_with("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n"),
                "{text}"
            );
            assert!(
                segs.iter().all(|s| s.2 == (s.0 >= d[0].0) as u32),
                "{name}: {segs:?}"
            );
            let Object::Ready(init1) = r.init(1) else {
                panic!("{name}: no init1");
            };
            let (w, h, level) = match name.as_str() {
                "source" => (1920, 1080, 40),
                _ => {
                    let rung = s.plan.iter().find(|x| x.name == *name).unwrap();
                    (rung.width, rung.height, 40)
                }
            };
            let sps = sps(w, h, level);
            assert!(
                init1.windows(sps.len()).any(|x| x == &sps[..]),
                "{name}: init1 has the new SPS"
            );
        }
        // The multivariant describes the source as it is now.
        let source = now.rendition("source").unwrap();
        assert_eq!(source.codecs(), v1080.codec_string());
        assert_eq!(
            source.kind(),
            RenditionKind::Video {
                width: 1920,
                height: 1080,
                fps: 30.0,
                nominal_bps: 0
            }
        );
    }

    /// Issue 30: a publisher back half a second after the slate took over
    /// (two new configurations within one segment target). Each new
    /// `EXT-X-MAP` comes after its own `EXT-X-DISCONTINUITY` on every video
    /// rendition, and the audio marks as many (the renditions' discontinuity
    /// sequences stay aligned).
    #[test]
    fn two_new_configurations_within_a_segment_are_two_discontinuities() {
        let (v720, v1080) = (avc(1280, 720, 31), avc(1920, 1080, 40));
        let mut s = Publish::new(&v720, 60.0);
        s.key_every = 15;
        s.run(130, None);
        s.flush_rungs();
        let rungs = s.plan.clone();
        s.p.rejoin(None);
        let v = s.p.reconfigure(&v1080, 30.0, infos(&rungs), Instant::now());
        s.apply(v);
        s.rung_level = 40;
        s.rungs_from = 135;
        s.run(10, None);
        s.flush_rungs();
        s.p.rejoin(None);
        let v = s.p.reconfigure(&v720, 30.0, infos(&rungs), Instant::now());
        s.apply(v);
        s.rung_level = 31;
        s.rungs_from = 150;
        s.run(60, None);
        s.flush_rungs();
        for r in s.renditions() {
            let text = playlist(&r, s.p.timing());
            assert_eq!(
                text.matches("#EXT-X-DISCONTINUITY\n").count(),
                2,
                "{}:\n{text}",
                r.name
            );
            if r.name == "audio" {
                continue;
            }
            for v in 1..=2 {
                let map = format!("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init{v}.mp4\"\n");
                assert!(text.contains(&map), "{}: no {map}\n{text}", r.name);
            }
        }
    }
}
