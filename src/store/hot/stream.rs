//! One publish's media: its renditions in ladder order, its viewers, its DVR tap.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::dvr_tap::DvrTap;
use super::lock::{read, write};
use super::rendition::Rendition;
use super::timeline::Timeline;
use crate::package::hls::Timing;
use crate::package::{Published, RenditionKind};
use crate::telemetry::clock;

/// Sort key: the source rendition, then the rungs largest first (height, frame
/// rate, bitrate), then audio.
fn ladder_order(r: &Rendition) -> (u8, i64, f64, i64) {
    match r.kind() {
        RenditionKind::Video { .. } if r.name == "source" => (0, 0, 0.0, 0),
        RenditionKind::Video {
            height,
            fps,
            nominal_bps,
            ..
        } => (1, -i64::from(height), -fps, -(nominal_bps as i64)),
        RenditionKind::Audio { .. } => (2, 0, 0.0, 0),
    }
}

pub struct StreamMedia {
    pub name: String,
    /// The publish session (stream id) this media belongs to.
    pub generation: u64,
    pub timing: Timing,
    /// LL segments per standard-HLS segment.
    pub group: u64,
    pub(super) window_secs: f64,
    pub(super) renditions: RwLock<Vec<Arc<Rendition>>>,
    pub(super) ended: AtomicBool,
    /// Playback requests per second, for "viewers" (requests in the last seconds).
    pub(super) requests: RecentCount,
    /// Part published → a parked request for it answered (µs).
    pub(super) served: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// Where this publish's objects go on disk, with the DVR on.
    pub dvr: Option<DvrTap>,
}

/// Events per wall-clock second over the last few seconds; any thread may add.
#[derive(Default)]
pub(super) struct RecentCount {
    sec: [AtomicU64; 16],
    count: [AtomicU64; 16],
}

impl RecentCount {
    fn now() -> u64 {
        clock::unix_ms() / 1000
    }

    pub(super) fn add(&self) {
        let now = Self::now();
        let i = (now % 16) as usize;
        let seen = self.sec[i].load(Relaxed);
        if seen != now
            && self.sec[i]
                .compare_exchange(seen, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.count[i].store(0, Relaxed);
        }
        self.count[i].fetch_add(1, Relaxed);
    }

    /// Events in the last `secs` seconds (this one included), up to 15.
    fn last(&self, secs: u64) -> u64 {
        let now = Self::now();
        (0..16)
            .filter(|&i| {
                let s = self.sec[i].load(Relaxed);
                s <= now && s + secs.min(15) > now
            })
            .map(|i| self.count[i].load(Relaxed))
            .sum()
    }
}

impl StreamMedia {
    /// How much media each rendition keeps (DASH's `timeShiftBufferDepth`).
    pub fn window_secs(&self) -> f64 {
        self.window_secs
    }

    /// A request parked on `r` is being answered at `now`: how long after
    /// the publish that woke it (recorded in the stream's
    /// `publish_to_served`); None before `r`'s first publish.
    pub fn answered(&self, r: &Rendition, now: Instant) -> Option<Duration> {
        let d = r.since_publish(now)?;
        let mut h = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let h = h.get_or_insert_with(crate::telemetry::latency::latency_histogram);
        let _ = h.record(d.as_micros() as u64);
        Some(d)
    }

    /// Publish → parked request answered, as Prometheus buckets.
    pub fn served_buckets(&self) -> Option<crate::telemetry::latency::StageBuckets> {
        let h = self.served.lock().unwrap_or_else(|e| e.into_inner());
        h.as_ref()
            .map(|h| crate::telemetry::latency::StageBuckets::of("publish_to_served", None, h))
    }

    /// Playback requests in the last `secs` seconds.
    pub fn recent_requests(&self, secs: u64) -> u64 {
        self.requests.last(secs)
    }

    pub fn add(&self, name: &str, codecs: String, kind: RenditionKind) -> Arc<Rendition> {
        let r = Arc::new(Rendition {
            dvr: self.dvr.clone(),
            name: name.to_string(),
            description: Mutex::new((codecs, kind)),
            window_secs: self.window_secs,
            timeline: Mutex::new(Timeline::default()),
            waiters: Mutex::default(),
            bytes_published: AtomicU64::new(0),
            parts_published: AtomicU64::new(0),
            segments_published: AtomicU64::new(0),
            last_publish: Mutex::new(None),
            part_target: std::sync::OnceLock::new(),
        });
        let mut all = write(&self.renditions);
        all.retain(|x| x.name != name);
        all.push(r.clone());
        // Ladder order whatever order the renditions first published in, so the API
        // and every listing read the same on every call.
        all.sort_by(|a, b| {
            ladder_order(a)
                .partial_cmp(&ladder_order(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        r
    }

    pub fn renditions(&self) -> Vec<Arc<Rendition>> {
        read(&self.renditions).clone()
    }

    pub fn rendition(&self, name: &str) -> Option<Arc<Rendition>> {
        read(&self.renditions)
            .iter()
            .find(|r| r.name == name)
            .cloned()
    }

    /// Applies one value the stream's packager published, at `now`.
    pub fn apply(&self, p: Published, now: Instant) {
        let named = |name: &str| self.rendition(name);
        match p {
            Published::Rendition {
                name,
                codecs,
                kind,
                part_target,
            } => {
                let r = self.add(&name, codecs, kind);
                let _ = r.part_target.set(part_target);
            }
            Published::Init { rendition, init } => {
                if let Some(r) = named(&rendition) {
                    r.set_init(init);
                }
            }
            Published::Describe {
                rendition,
                codecs,
                kind,
            } => {
                if let Some(r) = named(&rendition) {
                    r.describe(codecs, kind);
                }
            }
            Published::Chunk { rendition, chunk } => {
                if let Some(r) = named(&rendition) {
                    r.publish(chunk, now);
                }
            }
            Published::End { rendition } => {
                if let Some(r) = named(&rendition) {
                    r.end();
                }
            }
            Published::StreamEnd => self.end(),
        }
    }

    /// Marks every rendition ended (`EXT-X-ENDLIST`) and wakes all waiters;
    /// the first time, with a DVR set to, the run becomes a recording.
    pub fn end(&self) {
        let first = !self.ended.swap(true, Relaxed);
        if first
            && self
                .dvr
                .as_ref()
                .is_some_and(|t| t.dvr.config().record_on_end)
        {
            self.record("ended");
        }
        for r in self.renditions() {
            r.end();
        }
    }

    /// Asks the DVR for a recording of this run (what it holds so far);
    /// its id, or None without a DVR.
    pub fn record(&self, reason: &str) -> Option<String> {
        let tap = self.dvr.as_ref()?;
        let summaries = self.renditions().iter().map(|r| r.summary()).collect();
        Some(tap.dvr.record(
            &tap.key,
            &self.name,
            self.timing.media_epoch_ms,
            reason,
            self.timing.segment_target,
            summaries,
        ))
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Relaxed)
    }
}
