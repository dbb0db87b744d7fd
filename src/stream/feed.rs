//! One publisher's input as the driver holds it: the [`Job`] that hands a
//! claimed stream to a media core, the [`Feed`] it becomes there (its
//! configurations, its latest GOP while off air), and the timeline checks
//! every packet passes.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tracing::warn;

use crate::media::h264::AvcConfig;
use crate::media::{CodecConfig, Packet, Track};
use crate::stream::inputs::Active;
use crate::stream::registry::{EndReason, LiveStream};
use crate::stream::{Input, Role};

/// A stream whose publisher went away, waiting (showing the slate) for the
/// next publisher of the same NAME within `ingest.reconnect_window_secs`: the
/// way to hand that publisher's [`Job`] to the driver still running it, so
/// the same renditions (playlists, media sequence, URIs) go on.
pub struct Parked {
    pub attach: flume::Sender<Job>,
    /// Tells this parking from a later one of the same NAME.
    pub token: u64,
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

/// Per-track timeline check: the invariants ingest promises downstream.
#[derive(Default)]
struct TrackCheck {
    last_dts: Option<i64>,
}

/// One publisher's input as the driver holds it.
pub struct Feed {
    pub role: Role,
    pub stream: Arc<LiveStream>,
    pub input: flume::Receiver<Input>,
    /// Why the publish ended, once it said so.
    pub ended: EndReason,
    video_check: TrackCheck,
    audio_check: TrackCheck,
    /// Its latest video configuration and frame rate.
    pub video: Option<(AvcConfig, f64)>,
    /// Its latest audio configuration.
    pub audio: Option<CodecConfig>,
    /// Off air: its packets since its latest video keyframe, replayed (re-timed)
    /// when it goes on air, so the switch needs no wait for a keyframe.
    pub gop: Vec<Packet>,
}

/// A feed's packets kept off air, at most (a GOP of a few seconds, with audio).
const GOP_PACKETS: usize = 4000;

impl Feed {
    pub fn new(job: Job) -> Feed {
        Feed {
            role: job.role,
            stream: job.stream,
            input: job.input,
            ended: EndReason::PublisherClosed,
            video_check: TrackCheck::default(),
            audio_check: TrackCheck::default(),
            video: None,
            audio: None,
            gop: Vec::new(),
        }
    }

    /// A packet from it: counted and checked.
    pub fn record(&mut self, p: &Packet) {
        check_packet(
            &self.stream,
            p,
            &mut self.video_check,
            &mut self.audio_check,
        );
    }

    /// Off air: keeps the packets from its latest video keyframe on.
    pub fn keep(&mut self, p: Packet) {
        if p.track == Track::Video && p.keyframe {
            self.gop.clear();
        }
        if (!self.gop.is_empty() || (p.track == Track::Video && p.keyframe))
            && self.gop.len() < GOP_PACKETS
        {
            self.gop.push(p);
        }
    }

    /// Whether it has what going on air takes: a video configuration and a
    /// keyframe to start on (the switcher adds: recent input).
    pub fn keyed(&self) -> bool {
        self.video.is_some() && !self.gop.is_empty()
    }

    pub fn active(&self) -> Active {
        match self.role {
            Role::Primary => Active::Publisher,
            Role::Backup => Active::Backup,
        }
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
