//! The hot store: per stream and rendition, a ring of the most recent
//! segments and their parts, in memory. Published objects never change; a
//! publish wakes only the parked requests it reaches (each rendition's
//! [`Waiters`] table; the request's glue sleeps until its deadline).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use event_listener::Event;

use crate::package::chunker::Chunk;
use crate::package::hls::{ObjectName, PartEntry, RenditionSummary, SegmentEntry, Timing};
use crate::package::Published;
pub use crate::package::RenditionKind;
use crate::store::dvr::Dvr;
use crate::store::waiters::{Position, WaiterId, Waiters, Wake};
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

/// A lookup's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Ready(Bytes),
    /// Not published yet, but next in line: worth waiting for.
    Pending,
    /// A part being written: its chunks so far (chunked parts).
    Growing(Vec<Bytes>),
    /// Was published and has left the window.
    Gone,
    Missing,
}

/// How a blocking playlist request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Ready,
    Wait,
    /// Asked too far ahead of the live edge.
    TooFar,
}

pub struct HotStore {
    streams: RwLock<HashMap<String, Arc<StreamMedia>>>,
    window_secs: f64,
    dvr: Option<Arc<Dvr>>,
}

impl HotStore {
    pub fn new(window_secs: f64) -> Self {
        HotStore {
            streams: RwLock::new(HashMap::new()),
            window_secs,
            dvr: None,
        }
    }

    /// Every segment and init object also goes to the DVR.
    pub fn with_dvr(mut self, dvr: Arc<Dvr>) -> Self {
        self.dvr = Some(dvr);
        self
    }

    pub fn dvr(&self) -> Option<&Arc<Dvr>> {
        self.dvr.as_ref()
    }

    /// Starts a stream's media, replacing what an earlier publish left.
    pub fn open(
        &self,
        name: &str,
        generation: u64,
        timing: Timing,
        group: u64,
    ) -> Arc<StreamMedia> {
        let media = Arc::new(StreamMedia {
            name: name.to_string(),
            generation,
            timing,
            group,
            window_secs: self.window_secs,
            renditions: RwLock::new(Vec::new()),
            ended: AtomicBool::new(false),
            requests: RecentCount::default(),
            served: Mutex::new(None),
            dvr: self
                .dvr
                .as_ref()
                .map(|d| DvrTap::new(d.clone(), name, timing.media_epoch_ms)),
        });
        let old = write(&self.streams).insert(name.to_string(), media.clone());
        if let Some(old) = old {
            old.end();
        }
        media
    }

    pub fn all(&self) -> Vec<Arc<StreamMedia>> {
        read(&self.streams).values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<StreamMedia>> {
        read(&self.streams).get(name).cloned()
    }

    /// Streams that have something to play, by name.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.streams)
            .values()
            .filter(|s| !s.is_ended())
            .map(|s| s.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Forgets an ended stream's media (if no newer publish replaced it).
    pub fn remove(&self, name: &str, generation: u64) {
        let mut streams = write(&self.streams);
        if streams
            .get(name)
            .is_some_and(|s| s.generation == generation)
        {
            streams.remove(name);
        }
    }
}

pub struct StreamMedia {
    pub name: String,
    /// The publish session (stream id) this media belongs to.
    pub generation: u64,
    pub timing: Timing,
    /// LL segments per standard-HLS segment.
    pub group: u64,
    window_secs: f64,
    renditions: RwLock<Vec<Arc<Rendition>>>,
    ended: AtomicBool,
    /// Playback requests per second, for "viewers" (requests in the last seconds).
    requests: RecentCount,
    /// Part published → a parked request for it answered (µs).
    served: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// Where this publish's objects go on disk, with the DVR on.
    pub dvr: Option<DvrTap>,
}

/// A publish's place in the DVR: its key is `NAME/EPOCH` (the media epoch,
/// Unix ms), so a later publish of the NAME never overwrites its files.
#[derive(Clone)]
pub struct DvrTap {
    pub dvr: Arc<Dvr>,
    pub key: String,
    pub name: String,
    pub epoch_ms: u64,
}

impl DvrTap {
    fn new(dvr: Arc<Dvr>, name: &str, epoch_ms: u64) -> DvrTap {
        DvrTap {
            dvr,
            key: format!("{name}/{epoch_ms}"),
            name: name.to_string(),
            epoch_ms,
        }
    }
}

/// Events per wall-clock second over the last few seconds; any thread may add.
#[derive(Default)]
struct RecentCount {
    sec: [AtomicU64; 16],
    count: [AtomicU64; 16],
}

impl RecentCount {
    fn now() -> u64 {
        clock::unix_ms() / 1000
    }

    fn add(&self) {
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

    pub fn count_request(&self) {
        self.requests.add();
    }

    /// Records how long after a publish a parked request was answered.
    pub fn record_served(&self, d: std::time::Duration) {
        let mut h = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let h = h.get_or_insert_with(crate::telemetry::latency::latency_histogram);
        let _ = h.record(d.as_micros() as u64);
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

    /// Applies one value the stream's packager published.
    pub fn apply(&self, p: Published) {
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
                    r.publish(chunk);
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

#[derive(Default)]
struct Timeline {
    /// Init segments still referenced by the window, by version.
    inits: Vec<(u32, Bytes)>,
    entries: VecDeque<SegmentEntry>,
    bodies: VecDeque<Body>,
    discontinuity_sequence: u64,
    /// Every msn below this was published and evicted.
    evicted_before: u64,
    /// The part being written, chunk by chunk: (msn, index, chunks).
    open_part: Option<(u64, u32, Vec<Bytes>)>,
    ended: bool,
    /// Where the oldest segment's continuous run (no discontinuity, one init
    /// version) began, when that was an evicted segment: its media start.
    run_start: Option<u64>,
}

#[derive(Default)]
struct Body {
    parts: Vec<Bytes>,
    /// The whole segment, assembled when its last part lands.
    data: Option<Bytes>,
}

pub struct Rendition {
    dvr: Option<DvrTap>,
    pub name: String,
    /// RFC 6381 codecs of this rendition alone, and what it carries: as the
    /// newest configuration says (a source that changes size mid-publish).
    description: Mutex<(String, RenditionKind)>,
    window_secs: f64,
    timeline: Mutex<Timeline>,
    /// Requests parked on its live edge, each woken by its own event.
    waiters: Mutex<Waiters<Arc<Event>>>,
    pub bytes_published: AtomicU64,
    pub parts_published: AtomicU64,
    pub segments_published: AtomicU64,
    last_publish: Mutex<Option<Instant>>,
    /// Its playlist's PART-TARGET when it differs from the stream's (audio).
    pub part_target: std::sync::OnceLock<f64>,
}

impl Rendition {
    fn lock(&self) -> MutexGuard<'_, Timeline> {
        self.timeline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RFC 6381 codecs of this rendition alone.
    pub fn codecs(&self) -> String {
        self.description
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    pub fn kind(&self) -> RenditionKind {
        self.description
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// A new configuration of the same rendition (new size, profile, level):
    /// the multivariant playlist describes it from now on.
    pub fn describe(&self, codecs: String, kind: RenditionKind) {
        *self.description.lock().unwrap_or_else(|e| e.into_inner()) = (codecs, kind);
    }

    /// Publishes a new init segment; segments started from now on use it.
    pub fn set_init(&self, data: Bytes) -> u32 {
        let mut t = self.lock();
        let version = t.inits.last().map_or(0, |(v, _)| v + 1);
        if let Some(tap) = &self.dvr {
            tap.dvr.init(&tap.key, &self.name, version, data.clone());
        }
        t.inits.push((version, data));
        version
    }

    /// Publishes one chunk from the rendition's chunker, now.
    pub fn publish(&self, chunk: Chunk) {
        self.publish_at(chunk, clock::now());
    }

    /// Publishes one chunk at `now`, then wakes the requests it reaches.
    pub fn publish_at(&self, chunk: Chunk, now: Instant) {
        let at = Position::of(&chunk);
        {
            let mut t = self.lock();
            let version = t.inits.last().map_or(0, |(v, _)| *v);
            match chunk {
                Chunk::SegmentStart {
                    msn,
                    pdt_ms,
                    discontinuity,
                    start,
                    timescale,
                } => {
                    t.entries.push_back(SegmentEntry {
                        msn,
                        duration: 0.0,
                        pdt_ms,
                        discontinuity,
                        init_version: version,
                        parts: Vec::new(),
                        complete: false,
                        start,
                        timescale,
                    });
                    t.bodies.push_back(Body::default());
                }
                Chunk::PartChunk { msn, index, data } => match &mut t.open_part {
                    Some((m, i, chunks)) if *m == msn && *i == index => chunks.push(data),
                    _ => t.open_part = Some((msn, index, vec![data])),
                },
                Chunk::Part {
                    msn,
                    independent,
                    duration,
                    data,
                    ..
                } => {
                    t.open_part = None;
                    self.bytes_published.fetch_add(data.len() as u64, Relaxed);
                    self.parts_published.fetch_add(1, Relaxed);
                    if let Some((e, b)) = t.newest(msn) {
                        e.parts.push(PartEntry {
                            duration,
                            independent,
                        });
                        e.duration += duration;
                        b.parts.push(data);
                    }
                }
                Chunk::SegmentEnd { msn, duration } => {
                    self.segments_published.fetch_add(1, Relaxed);
                    if let Some((e, b)) = t.newest(msn) {
                        e.complete = true;
                        e.duration = duration;
                        let mut all =
                            BytesMut::with_capacity(b.parts.iter().map(|p| p.len()).sum());
                        for p in &b.parts {
                            all.extend_from_slice(p);
                        }
                        let all = all.freeze();
                        if let Some(tap) = &self.dvr {
                            tap.dvr.segment(&tap.key, &self.name, e, all.clone());
                        }
                        b.data = Some(all);
                    }
                    t.evict(self.window_secs);
                }
            }
        }
        *self.last_publish.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        let woken = self.waiters().publish(at);
        for w in woken {
            w.notify(usize::MAX);
        }
    }

    /// Time from the newest publish to `now`: how long a woken waiter took
    /// to answer, or how long the writer has been quiet.
    pub fn since_publish(&self, now: Instant) -> Option<Duration> {
        self.last_publish
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| now.saturating_duration_since(t))
    }

    pub fn end(&self) {
        self.lock().ended = true;
        let woken = self.waiters().end();
        for w in woken {
            w.notify(usize::MAX);
        }
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters<Arc<Event>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks a request until a publish reaches `at` (see [`Position`]), the
    /// rendition ends, or `deadline`. Park *before* looking at the store, so
    /// a publish in between wakes it rather than being missed.
    pub fn park(self: &Arc<Self>, at: Position, deadline: Instant) -> Parking {
        let wake = Arc::new(Event::new());
        let listener = wake.listen();
        let mut waiters = self.waiters();
        let id = waiters.insert(at, deadline, wake.clone());
        if waiters.is_ended() {
            wake.notify(usize::MAX);
        }
        drop(waiters);
        Parking {
            r: self.clone(),
            id,
            deadline,
            listener: Some(listener),
        }
    }

    /// Requests parked on it now.
    pub fn parked(&self) -> usize {
        self.waiters().len()
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended
    }

    /// Runs `f` over the window (oldest first), the discontinuity sequence and
    /// whether the rendition has ended.
    pub fn with_segments<R>(&self, f: impl FnOnce(&[SegmentEntry], u64, bool) -> R) -> R {
        let mut t = self.lock();
        let (disc, ended) = (t.discontinuity_sequence, t.ended);
        f(t.entries.make_contiguous(), disc, ended)
    }

    /// Runs `f` over the window (oldest first) and the media start of the run
    /// (no discontinuity, one init version) the oldest segment belongs to,
    /// `None` when that segment starts it: a timeline that keeps its origin
    /// while the window slides (DASH's Period@start).
    pub fn with_timeline<R>(&self, f: impl FnOnce(&[SegmentEntry], Option<u64>) -> R) -> R {
        let mut t = self.lock();
        let run_start = t.run_start;
        f(t.entries.make_contiguous(), run_start)
    }

    /// The newest published part: (msn, index).
    pub fn last_part(&self) -> Option<(u64, u32)> {
        let t = self.lock();
        t.entries
            .iter()
            .rev()
            .find_map(|e| (!e.parts.is_empty()).then(|| (e.msn, e.parts.len() as u32 - 1)))
    }

    /// Average and peak bits per second over the window's complete segments.
    pub fn measured_bps(&self) -> Option<(u64, u64)> {
        let t = self.lock();
        let (mut bytes, mut secs, mut peak) = (0usize, 0.0, 0.0f64);
        for (e, b) in t.entries.iter().zip(&t.bodies) {
            if let (true, Some(d)) = (e.complete && e.duration > 0.0, &b.data) {
                bytes += d.len();
                secs += e.duration;
                peak = peak.max(d.len() as f64 * 8.0 / e.duration);
            }
        }
        // The peak rounded up: BANDWIDTH (the peak) must not be below any
        // segment's bit rate, not even by a fraction.
        (secs > 0.0).then(|| ((bytes as f64 * 8.0 / secs) as u64, peak.ceil() as u64))
    }

    /// What a listing (multivariant playlist, MPD, a recording) says of it.
    pub fn summary(&self) -> RenditionSummary {
        RenditionSummary {
            name: self.name.clone(),
            codecs: self.codecs(),
            kind: self.kind(),
            measured_bps: self.measured_bps(),
            ended: self.is_ended(),
        }
    }

    pub fn complete_segments(&self) -> usize {
        self.lock().entries.iter().filter(|e| e.complete).count()
    }

    /// Where a blocking reload for `msn` (and `part`) stands.
    pub fn block(&self, msn: u64, part: Option<u32>) -> Block {
        let t = self.lock();
        let edge = t.entries.back().map_or(0, |e| e.msn);
        if msn > edge + 2 {
            return Block::TooFar;
        }
        if t.ended {
            return Block::Ready;
        }
        let Some(last) = t.entries.back() else {
            return Block::Wait;
        };
        let ready = match part {
            // The playlist must contain segment msn, complete.
            None => msn < last.msn || (msn == last.msn && last.complete),
            // A part index past the end of a complete segment means the first
            // part of the next one.
            Some(p) => match t.find(msn) {
                Some(e) => {
                    (p as usize) < e.parts.len()
                        || (e.complete && t.find(msn + 1).is_some_and(|n| !n.parts.is_empty()))
                }
                None => msn < t.entries.front().map_or(0, |e| e.msn),
            },
        };
        if ready {
            Block::Ready
        } else {
            Block::Wait
        }
    }

    pub fn init(&self, version: u32) -> Object {
        let t = self.lock();
        match t.inits.iter().find(|(v, _)| *v == version) {
            Some((_, d)) => Object::Ready(d.clone()),
            None if t.inits.last().is_some_and(|(v, _)| version < *v) => Object::Gone,
            None => Object::Missing,
        }
    }

    pub fn part(&self, msn: u64, index: u32) -> Object {
        let t = self.lock();
        if msn < t.evicted_before {
            return Object::Gone;
        }
        if let Some((m, i, chunks)) = &t.open_part {
            if (*m, *i) == (msn, index) {
                return Object::Growing(chunks.clone());
            }
        }
        match t.position(msn) {
            Some(i) => match t.bodies[i].parts.get(index as usize) {
                Some(p) => Object::Ready(p.clone()),
                None if !t.entries[i].complete && !t.ended => Object::Pending,
                None => Object::Missing,
            },
            None => t.next_in_line(msn, index == 0),
        }
    }

    pub fn segment(&self, msn: u64) -> Object {
        let t = self.lock();
        if msn < t.evicted_before {
            return Object::Gone;
        }
        match t.position(msn) {
            Some(i) => match &t.bodies[i].data {
                Some(d) => Object::Ready(d.clone()),
                None if t.ended => Object::Missing,
                // Still receiving parts: its bytes so far (the parts published,
                // then the chunks of the part being written), which the whole
                // segment will begin with (LL-DASH reads it as it grows).
                None => {
                    let mut so_far = t.bodies[i].parts.clone();
                    if let Some((m, _, chunks)) = &t.open_part {
                        if *m == msn {
                            so_far.extend(chunks.iter().cloned());
                        }
                    }
                    Object::Growing(so_far)
                }
            },
            None => t.next_in_line(msn, true),
        }
    }

    /// The object a URI's file name asks for (`group`: LL segments per
    /// standard one). Every number in it came from a client, so each lookup
    /// takes any value (issue 12 item 6: `long18446744073709551615.m4s`
    /// overflowed into an empty 200).
    pub fn lookup(&self, group: u64, name: ObjectName) -> Object {
        match name {
            ObjectName::Init(v) => self.init(v),
            ObjectName::Part(msn, i) => self.part(msn, i),
            ObjectName::Segment(msn) => self.segment(msn),
            ObjectName::Long(n) => self.long_segment(n, group),
        }
    }

    /// Standard-HLS segment `n`: LL segments `n*group ..` concatenated.
    pub fn long_segment(&self, n: u64, group: u64) -> Object {
        let t = self.lock();
        // `n` comes from a URL: a group past u64 (or an empty one) is no segment,
        // never an empty body (issue 12 item 6).
        let Some((first, end)) = n
            .checked_mul(group)
            .and_then(|first| Some((first, first.checked_add(group)?)))
            .filter(|_| group > 0)
        else {
            return Object::Missing;
        };
        if first < t.evicted_before {
            return Object::Gone;
        }
        let mut out = BytesMut::new();
        for msn in first..end {
            let Some(i) = t.position(msn) else {
                return Object::Missing;
            };
            // A discontinuity inside the group ends it (see `hls::long_segments`).
            if msn > first && t.entries[i].discontinuity {
                break;
            }
            match &t.bodies[i].data {
                Some(d) => out.extend_from_slice(d),
                None => return Object::Missing,
            }
        }
        Object::Ready(out.freeze())
    }
}

/// A request parked on a rendition ([`Rendition::park`]); leaves the
/// table when dropped (answered, or the client went away).
pub struct Parking {
    r: Arc<Rendition>,
    id: WaiterId,
    deadline: Instant,
    /// Fires once, when a publish reaches the waiter or the rendition ends;
    /// `None` once it has.
    listener: Option<event_listener::EventListener>,
}

impl Parking {
    /// When the wait gives up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Resolves when a publish reaches the waiter or the rendition ends
    /// (at once if it already has).
    pub async fn notified(&mut self) {
        std::future::poll_fn(|cx| self.poll_notified(cx)).await
    }

    /// [`Parking::notified`] as a poll, for waiting on several at once.
    pub fn poll_notified(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if let Some(l) = self.listener.as_mut() {
            std::task::ready!(std::future::Future::poll(std::pin::Pin::new(l), cx));
            self.listener = None;
        }
        std::task::Poll::Ready(())
    }

    /// After a wake or at the deadline: how the wait ended at `now`, `None`
    /// while it has not (a timer that fired early).
    pub fn poll(&self, now: Instant) -> Option<Wake> {
        self.r.waiters().poll(self.id, now)
    }
}

impl Drop for Parking {
    fn drop(&mut self) {
        self.r.waiters().remove(self.id);
    }
}

impl Timeline {
    fn position(&self, msn: u64) -> Option<usize> {
        let first = self.entries.front()?.msn;
        let i = usize::try_from(msn.checked_sub(first)?).ok()?;
        (i < self.entries.len()).then_some(i)
    }

    fn find(&self, msn: u64) -> Option<&SegmentEntry> {
        self.position(msn).map(|i| &self.entries[i])
    }

    fn newest(&mut self, msn: u64) -> Option<(&mut SegmentEntry, &mut Body)> {
        match (self.entries.back_mut(), self.bodies.back_mut()) {
            (Some(e), Some(b)) if e.msn == msn => Some((e, b)),
            _ => None,
        }
    }

    /// A segment or first part not yet started is worth waiting for only when
    /// it is the very next one.
    fn next_in_line(&self, msn: u64, first_part: bool) -> Object {
        let next = self.entries.back().map_or(0, |e| e.msn + 1);
        if !self.ended && first_part && msn == next {
            Object::Pending
        } else {
            Object::Missing
        }
    }

    /// Drops whole segments from the front while the rest still covers the window.
    fn evict(&mut self, window_secs: f64) {
        loop {
            let total: f64 = self
                .entries
                .iter()
                .filter(|e| e.complete)
                .map(|e| e.duration)
                .sum();
            let Some(front) = self.entries.front() else {
                break;
            };
            if !front.complete || total - front.duration < window_secs {
                break;
            }
            self.evicted_before = front.msn + 1;
            let (front_start, front_init) = (front.start, front.init_version);
            match self.entries.get(1) {
                Some(next) if next.discontinuity || next.init_version != front_init => {
                    self.run_start = None;
                }
                _ => {
                    self.run_start = Some(self.run_start.unwrap_or(front_start));
                }
            }
            if self.entries.get(1).is_some_and(|e| e.discontinuity) {
                self.discontinuity_sequence += 1;
            }
            self.entries.pop_front();
            self.bodies.pop_front();
        }
        // Keep only the init versions the window still uses.
        if let Some(oldest) = self.entries.front().map(|e| e.init_version) {
            self.inits.retain(|(v, _)| *v >= oldest);
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// A stream "cam" with one 360p30 video rendition (2 s segments, 1/3 s parts,
/// groups of 3 per standard segment) and its init, for tests here and in origin.
#[cfg(test)]
pub(crate) fn test_stream(window_secs: f64) -> (Arc<StreamMedia>, Arc<Rendition>) {
    let store = HotStore::new(window_secs);
    let media = store.open(
        "cam",
        1,
        Timing {
            target_duration: 2,
            part_target: 1.0 / 3.0,
            segment_target: 2.0,
            media_epoch_ms: 0,
        },
        3,
    );
    let r = media.add(
        "360p30",
        "avc1.42c01e".into(),
        RenditionKind::Video {
            width: 640,
            height: 360,
            fps: 30.0,
            nominal_bps: 800_000,
        },
    );
    r.set_init(Bytes::from_static(b"init"));
    (media, r)
}

/// Publishes segment `msn` of `r` whole: 2 s, one independent part of four
/// bytes, each `msn as u8`.
#[cfg(test)]
pub(crate) fn test_segment(r: &Rendition, msn: u64) {
    r.publish(Chunk::SegmentStart {
        msn,
        pdt_ms: 0,
        discontinuity: false,
        start: msn * 180_000,
        timescale: 90_000,
    });
    r.publish(Chunk::Part {
        msn,
        index: 0,
        independent: true,
        duration: 2.0,
        data: Bytes::from(vec![msn as u8; 4]),
        frames: Vec::new(),
    });
    r.publish(Chunk::SegmentEnd { msn, duration: 2.0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendition(window: f64) -> Arc<Rendition> {
        test_stream(window).1
    }

    fn segment(r: &Rendition, msn: u64, parts: u32) {
        r.publish(Chunk::SegmentStart {
            msn,
            pdt_ms: 0,
            discontinuity: false,
            start: msn * 180_000,
            timescale: 90_000,
        });
        for index in 0..parts {
            r.publish(Chunk::Part {
                msn,
                index,
                independent: index == 0,
                duration: 1.0 / 3.0,
                data: Bytes::from(vec![msn as u8, index as u8]),
                frames: Vec::new(),
            });
        }
    }

    fn end(r: &Rendition, msn: u64) {
        r.publish(Chunk::SegmentEnd { msn, duration: 2.0 });
    }

    /// Issue 13 (e): the API listed renditions in the order they first published
    /// (`source, audio, 480p30, 360p30, 720p30, 1080p30`); now ladder order.
    #[test]
    fn renditions_list_in_ladder_order() {
        let store = HotStore::new(30.0);
        let timing = Timing {
            target_duration: 2,
            part_target: 1.0 / 3.0,
            segment_target: 2.0,
            media_epoch_ms: 0,
        };
        let media = store.open("cam", 1, timing, 3);
        let video = |height, fps, nominal_bps| RenditionKind::Video {
            width: height * 16 / 9,
            height,
            fps,
            nominal_bps,
        };
        media.add("source", "avc1".into(), video(720, 30.0, 0));
        media.add(
            "audio",
            "mp4a.40.2".into(),
            RenditionKind::Audio {
                channels: 2,
                nominal_bps: 128_000,
            },
        );
        media.add("480p30", "avc1".into(), video(480, 30.0, 1_500_000));
        media.add("360p30", "avc1".into(), video(360, 30.0, 800_000));
        media.add("720p30", "avc1".into(), video(720, 30.0, 3_000_000));
        media.add("1080p30", "avc1".into(), video(1080, 30.0, 4_500_000));
        media.add("1080p60", "avc1".into(), video(1080, 60.0, 6_000_000));
        let names: Vec<String> = media.renditions().iter().map(|r| r.name.clone()).collect();
        assert_eq!(
            names,
            ["source", "1080p60", "1080p30", "720p30", "480p30", "360p30", "audio"]
        );
    }

    /// The blocking-reload state machine: wait until the asked part exists,
    /// 400 beyond the edge + 2, ready once published.
    #[test]
    fn blocking_reload_states() {
        let r = rendition(30.0);
        assert_eq!(r.block(0, Some(0)), Block::Wait);
        segment(&r, 0, 2);
        assert_eq!(r.block(0, Some(1)), Block::Ready);
        assert_eq!(r.block(0, Some(2)), Block::Wait);
        assert_eq!(r.block(0, None), Block::Wait);
        assert_eq!(r.block(2, Some(0)), Block::Wait);
        assert_eq!(r.block(3, Some(0)), Block::TooFar);
        r.publish(Chunk::Part {
            msn: 0,
            index: 2,
            independent: false,
            duration: 1.0 / 3.0,
            data: Bytes::from_static(b"p"),
            frames: Vec::new(),
        });
        assert_eq!(r.block(0, Some(2)), Block::Ready);
        end(&r, 0);
        assert_eq!(r.block(0, None), Block::Ready);
        // A part index past the end of a complete segment means the next one.
        assert_eq!(r.block(0, Some(3)), Block::Wait);
        r.publish(Chunk::SegmentStart {
            msn: 1,
            pdt_ms: 0,
            discontinuity: false,
            start: 180_000,
            timescale: 90_000,
        });
        assert_eq!(r.block(0, Some(3)), Block::Wait);
        r.publish(Chunk::Part {
            msn: 1,
            index: 0,
            independent: true,
            duration: 1.0 / 3.0,
            data: Bytes::from_static(b"p"),
            frames: Vec::new(),
        });
        assert_eq!(r.block(0, Some(3)), Block::Ready);
        r.end();
        assert_eq!(r.block(1, Some(5)), Block::Ready);
    }

    #[test]
    fn objects_pending_ready_gone() {
        let r = rendition(4.0);
        assert_eq!(r.part(0, 0), Object::Pending);
        assert_eq!(r.part(0, 1), Object::Missing);
        segment(&r, 0, 6);
        assert_eq!(r.part(0, 5), Object::Ready(Bytes::from(vec![0, 5])));
        assert_eq!(r.part(0, 6), Object::Pending);
        // An incomplete segment answers with what it has so far (LL-DASH).
        assert_eq!(
            r.segment(0),
            Object::Growing((0..6).map(|i| Bytes::from(vec![0, i])).collect())
        );
        end(&r, 0);
        match r.segment(0) {
            Object::Ready(d) => assert_eq!(d.len(), 12),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.part(1, 0), Object::Pending);
        assert_eq!(r.segment(5), Object::Missing);
        for msn in 1..4 {
            segment(&r, msn, 6);
            end(&r, msn);
        }
        // A 4 s window keeps two 2 s segments.
        assert_eq!(r.segment(0), Object::Gone);
        assert_eq!(r.part(1, 0), Object::Gone);
        assert!(matches!(r.segment(2), Object::Ready(_)));
        assert!(matches!(r.segment(3), Object::Ready(_)));
        assert_eq!(r.long_segment(0, 3), Object::Gone);
        assert_eq!(r.init(0), Object::Ready(Bytes::from_static(b"init")));
        assert_eq!(r.init(1), Object::Missing);
    }

    /// A long segment never spans a discontinuity (two timelines, or two
    /// init segments): it ends where the break is.
    #[test]
    fn long_segment_ends_at_a_discontinuity() {
        let r = rendition(30.0);
        for msn in 0..3 {
            r.publish(Chunk::SegmentStart {
                msn,
                pdt_ms: 0,
                discontinuity: msn == 2,
                start: msn * 180_000,
                timescale: 90_000,
            });
            r.publish(Chunk::Part {
                msn,
                index: 0,
                independent: true,
                duration: 2.0,
                data: Bytes::from(vec![msn as u8]),
                frames: Vec::new(),
            });
            end(&r, msn);
        }
        assert_eq!(r.long_segment(0, 3), Object::Ready(Bytes::from(vec![0, 1])));
    }

    /// The oldest run's start survives eviction until a discontinuity (or a
    /// new init) becomes the oldest segment: DASH's Period@start stays put
    /// while the window slides.
    #[test]
    fn timeline_keeps_the_oldest_runs_start_while_evicting() {
        let r = rendition(4.0);
        let run_start = |r: &Rendition| r.with_timeline(|s, run| (s[0].msn, run));
        for msn in 0..3 {
            segment(&r, msn, 6);
            end(&r, msn);
        }
        // A 4 s window of 2 s segments: msn 0 evicted, the run began at its start.
        assert_eq!(run_start(&r), (1, Some(0)));
        r.publish(Chunk::SegmentStart {
            msn: 3,
            pdt_ms: 0,
            discontinuity: true,
            start: 900_000,
            timescale: 90_000,
        });
        r.publish(Chunk::PartChunk {
            msn: 3,
            index: 0,
            data: Bytes::from_static(b"c0"),
        });
        // The segment being written: its first part's chunks so far.
        assert_eq!(
            r.segment(3),
            Object::Growing(vec![Bytes::from_static(b"c0")])
        );
        r.publish(Chunk::Part {
            msn: 3,
            index: 0,
            independent: true,
            duration: 2.0,
            data: Bytes::from_static(b"c0"),
            frames: Vec::new(),
        });
        end(&r, 3);
        assert_eq!(run_start(&r), (2, Some(0)));
        segment(&r, 4, 6);
        end(&r, 4);
        // msn 3 (the discontinuity) is now the oldest: it starts its own run.
        assert_eq!(run_start(&r), (3, None));
        segment(&r, 5, 6);
        end(&r, 5);
        assert_eq!(run_start(&r), (4, Some(900_000)));
    }

    #[test]
    fn long_segment_concatenates_its_group() {
        let r = rendition(30.0);
        for msn in 0..3 {
            segment(&r, msn, 1);
            end(&r, msn);
        }
        assert_eq!(
            r.long_segment(0, 3),
            Object::Ready(Bytes::from(vec![0, 0, 1, 0, 2, 0]))
        );
        assert_eq!(r.long_segment(1, 3), Object::Missing);
        assert_eq!(r.measured_bps(), Some((8, 8)));
    }
}
