//! What an MPD shows: each rendition's window, the stream's timing, earlier runs.

use crate::package::hls::{RenditionSummary, SegmentEntry, Steering, Timing};

/// One rendition and its window, as the MPD needs them.
#[derive(Debug, Clone)]
pub struct RenditionWindow {
    pub summary: RenditionSummary,
    /// Oldest first; the last one may be incomplete.
    pub segments: Vec<SegmentEntry>,
    /// Media start of the run the oldest segment belongs to, when that run
    /// began at an evicted segment (`None`: the oldest segment starts it).
    pub run_start: Option<u64>,
}

/// Everything an MPD shows.
#[derive(Debug, Clone)]
pub struct Manifest<'a> {
    pub timing: Timing,
    /// Video renditions first (the first is the reference), then audio.
    pub renditions: &'a [RenditionWindow],
    /// The store's window: `timeShiftBufferDepth`.
    pub window_secs: f64,
    /// Wall-clock now (Unix ms): `publishTime`.
    pub now_ms: u64,
    /// LL-DASH: `availabilityTimeOffset`, `ServiceDescription`, and the
    /// segment being written listed (it is served as its parts land).
    pub low_latency: bool,
    /// The audio AdaptationSet alone (the audio-only choice): Periods still
    /// follow the video reference, so they match the full MPD's.
    pub audio_only: bool,
    /// A recording (live-to-VOD): a static MPD over every segment, its
    /// first Period at 0 and `mediaPresentationDuration`; no live timing.
    pub vod: bool,
    /// The `UTCTiming` (http-iso) URL (dynamic MPDs).
    pub utc_timing: &'a str,
    /// Earlier runs of the stream's NAME (the DVR MPD of a resumed NAME),
    /// oldest first, each in Periods of its own before `renditions`'.
    pub earlier: &'a [EarlierRun<'a>],
    /// How far `renditions`' media epoch lies after `timing.media_epoch_ms`
    /// (the `availabilityStartTime`; ms): 0 but in a DVR MPD whose chain
    /// began with an earlier run.
    pub offset_ms: u64,
    /// In front of `renditions`' object URIs (under `$RepresentationID$/`):
    /// the run's directory `e{EPOCH}/` live (a later run of the NAME never
    /// reuses a URI), `""` for a recording.
    pub prefix: &'a str,
    /// Content steering: a `BaseURL` per pathway (`serviceLocation`, the
    /// stream's directory on that CDN) and `<ContentSteering>`.
    pub steering: Option<Steering<'a>>,
}

/// An earlier run of a NAME in a DVR MPD: its own media timeline (counted
/// from its own epoch, `offset_ms` after the `availabilityStartTime`) and
/// its objects under `$RepresentationID$/{prefix}`.
#[derive(Debug, Clone)]
pub struct EarlierRun<'a> {
    pub offset_ms: u64,
    /// `e{EPOCH}/`.
    pub prefix: &'a str,
    pub renditions: &'a [RenditionWindow],
}

/// Why no MPD can be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpdError {
    /// No video rendition has a complete segment yet (or every one ended).
    #[error("no video rendition of the stream has a complete segment")]
    NoVideo,
    /// dash.js 5.2 fails on `<UTCTiming value="">`.
    #[error("the UTCTiming URL is empty")]
    NoUtcTiming,
}
